//! Deliveries of Lightspeed X-Series webhooks: what the sandbox POSTs to the registrations of
//! [`super::webhooks`] when its state changes.
//!
//! Source: `x-series-api.lightspeedhq.com/docs/webhooks` ("Webhooks"; the same text as Vend's
//! `docs.vendhq.com/tutorials/guides/webhooks/introduction`), cited by section:
//! - **When** ("every time an entity changes ... Lightspeed will forward HTTP messages to
//!   notify the configured destinations"): `inventory.update` for every inventory record whose
//!   level or version changed (a sale or return posted or completed, a sale voided or edited,
//!   a POS sale, a level set by a test or the admin API, the records a new product gets at each
//!   outlet); `product.update` for a product created (API or helper) or deleted. One delivery
//!   per changed record and active registration of that type, with the record as it is once
//!   the change committed: the changes are noted under the state lock ([`touch`]) and turned
//!   into deliveries when the lock is released ([`drain`], called by `server::StateGuard`'s
//!   drop), then POSTed by a spawned task, never inside the request that made the change nor
//!   under the lock. ASSUMPTION: several changes to one record under one lock (a sale replaced:
//!   stock put back, then taken again) make one delivery.
//! - **Payload**: "a POST request ... in the UTF-8 charset, and
//!   application/x-www-form-urlencoded encoding"; "a field named payload ... a JSON-encoded
//!   object with details of the object"; "Other form fields (such as environment or
//!   domain_prefix) may be present but are not guaranteed to be". ASSUMPTION (the fields the
//!   guide lists for the older Vend webhooks): `type`, `retailer_id`, `domain_prefix` and
//!   `environment` (`"prod"`) are sent too. The docs say the payload objects are API 1.0's;
//!   the sandbox has no 1.0, so ASSUMPTION: an inventory record as `GET /api/2.0/inventory`
//!   lists it (`id`, `product_id`, `outlet_id`, `inventory_level`, `reorder_point`,
//!   `reorder_amount`, `version`...), a product as `GET /api/2.0/products` does.
//! - **Request timeout and retries**: "5 seconds to respond with a 2xx"; "retried up to 20
//!   times over 48h ... with exponential back-off". Scaled down for tests:
//!   [`crate::SandboxConfig::ls_webhook_retries`] retries (default 3), the first after
//!   [`crate::SandboxConfig::ls_webhook_retry_delay`] (default 100 ms), each next one twice as
//!   late; [`crate::SandboxConfig::ls_webhook_timeout`] per attempt (default 5 s). A delivery
//!   that gets no 2xx after the last attempt is given up (`Counters::ls_webhook_failures`).
//! - **Not guaranteed** ("webhooks are reliable, but we can't guarantee they'll be delivered.
//!   ... polling APIs is the right way"): [`crate::Sandbox::set_ls_webhook_drop`] loses every
//!   delivery while on (`Counters::ls_webhook_dropped`), and
//!   [`crate::Sandbox::set_ls_webhook_delay`] makes them late.
//! - **Verification**: "webhooks sent to OAuth-authorised applications are signed";
//!   `X-Signature: signature=...,algorithm=HMAC-SHA256`, "generate a signature by hashing the
//!   webhook request body". The key is not stated: ASSUMPTION, the OAuth app's client secret
//!   (OAuth mode's [`crate::OAuthMode::client_secret`], else the default mode's; see
//!   [`crate::Sandbox::ls_webhook_secret`]), over the raw form-encoded body, the digest in
//!   lower-case hex ([`sign_ls_webhook`]). ASSUMPTION: the sandbox signs every delivery, even
//!   without OAuth mode; [`crate::SandboxConfig::ls_webhook_signed`] off sends none.
//!
//! Nothing waits for deliveries: [`crate::Sandbox::shutdown`] stops their retries, and a task
//! whose sandbox is gone ends. [`crate::Sandbox::ls_webhooks_settled`] waits for the pending
//! ones.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Notify;

use super::webhooks::{self, INVENTORY_UPDATE, LsWebhook, PRODUCT_UPDATE};
use super::{render_inventory, render_product};
use crate::Sandbox;
use crate::config::SandboxConfig;
use crate::server::Inner;
use crate::state::State;

/// ASSUMPTION: the `environment` form field of every delivery.
const ENVIRONMENT: &str = "prod";

/// A record whose change the webhooks of its type must hear of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Touched {
    /// An inventory record, by its id.
    Inventory(String),
    /// A product, by its id.
    Product(String),
}

impl Touched {
    fn webhook_type(&self) -> &'static str {
        match self {
            Touched::Inventory(_) => INVENTORY_UPDATE,
            Touched::Product(_) => PRODUCT_UPDATE,
        }
    }

    /// The payload: the record as it is now (`None` when it is gone).
    fn payload(&self, st: &State) -> Option<Value> {
        match self {
            Touched::Inventory(id) => st
                .inventory
                .iter()
                .find(|i| i.id == *id)
                .map(render_inventory),
            Touched::Product(id) => st.ls_product(id).map(|p| render_product(st, p)),
        }
    }
}

/// Note a change, under the state lock: kept only when an active registration of its type
/// would get it, once per record until the lock is released.
pub(crate) fn touch(st: &mut State, touched: Touched) {
    let kind = touched.webhook_type();
    if st
        .ls_webhooks
        .iter()
        .any(|w| w.active && w.webhook_type == kind)
        && !st.ls_webhook_outbox.contains(&touched)
    {
        st.ls_webhook_outbox.push(touched);
    }
}

/// One POST to make.
pub(crate) struct Delivery {
    url: String,
    body: String,
    signature: Option<String>,
}

/// `X-Signature`'s value for a body: `signature={hex HMAC-SHA256(key = secret, body)},
/// algorithm=HMAC-SHA256` (docs "Verification"; the key and the hex encoding are ASSUMPTIONS,
/// see the module's doc).
pub fn sign_ls_webhook(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!(
        "signature={},algorithm=HMAC-SHA256",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The form body of a delivery.
fn form(st: &State, webhook_type: &str, payload: &Value) -> String {
    let fields = [
        ("payload", payload.to_string()),
        ("type", webhook_type.to_string()),
        ("retailer_id", st.retailer_id.clone()),
        ("domain_prefix", st.cfg.ls_domain_prefix.clone()),
        ("environment", ENVIRONMENT.to_string()),
    ];
    serde_html_form::to_string(fields).expect("string pairs encode")
}

/// Turn the noted changes into deliveries, still under the lock (so each payload is the record
/// as this commit left it). The drop switch applies here. Counts them as pending.
pub(crate) fn drain(st: &mut State, rt: &Runtime) -> Vec<Delivery> {
    if st.ls_webhook_outbox.is_empty() {
        return Vec::new();
    }
    let touched = std::mem::take(&mut st.ls_webhook_outbox);
    let secret = crate::oauth::client_secret(st);
    let mut out = Vec::new();
    for t in touched {
        let kind = t.webhook_type();
        let urls: Vec<String> = st
            .ls_webhooks
            .iter()
            .filter(|w| w.active && w.webhook_type == kind)
            .map(|w| w.url.clone())
            .collect();
        let Some(payload) = t.payload(st).filter(|_| !urls.is_empty()) else {
            continue;
        };
        let body = form(st, kind, &payload);
        let signature = st
            .cfg
            .ls_webhook_signed
            .then(|| sign_ls_webhook(&secret, body.as_bytes()));
        for url in urls {
            if rt.drop.load(Ordering::SeqCst) {
                st.counters.ls_webhook_dropped += 1;
                continue;
            }
            out.push(Delivery {
                url,
                body: body.clone(),
                signature: signature.clone(),
            });
        }
    }
    rt.pending.count.fetch_add(out.len(), Ordering::SeqCst);
    out
}

/// Deliveries still to finish, and a wake-up when there are none.
#[derive(Default)]
struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

/// One pending delivery: done when dropped (delivered, given up, or its task cancelled).
struct PendingOne(Arc<Pending>);

impl Drop for PendingOne {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The delivery machinery of one sandbox: where tasks run, the HTTP client, the test switches.
pub(crate) struct Runtime {
    handle: tokio::runtime::Handle,
    client: OnceLock<reqwest::Client>,
    timeout: Duration,
    retries: u32,
    retry_delay: Duration,
    drop: AtomicBool,
    delay_ms: AtomicU64,
    stopped: AtomicBool,
    pending: Arc<Pending>,
}

impl Runtime {
    /// Deliveries run on `handle` (the runtime that started the sandbox).
    pub fn new(handle: tokio::runtime::Handle, cfg: &SandboxConfig) -> Runtime {
        Runtime {
            handle,
            client: OnceLock::new(),
            timeout: cfg.ls_webhook_timeout,
            retries: cfg.ls_webhook_retries,
            retry_delay: cfg.ls_webhook_retry_delay,
            drop: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            pending: Arc::default(),
        }
    }

    /// Made on the first delivery (building one loads the TLS roots).
    fn client(&self) -> reqwest::Client {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(self.timeout)
                    .build()
                    .expect("a reqwest client builds")
            })
            .clone()
    }

    /// No more attempts after this (the sandbox is shutting down).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// See [`Sandbox::set_ls_webhook_drop`].
    pub fn set_drop(&self, drop: bool) {
        self.drop.store(drop, Ordering::SeqCst);
    }

    /// See [`Sandbox::set_ls_webhook_delay`].
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Deliveries not finished yet.
    pub fn pending(&self) -> usize {
        self.pending.count.load(Ordering::SeqCst)
    }

    /// Start a task per delivery, after the state lock was released.
    pub fn spawn(&self, me: &Weak<Inner>, deliveries: Vec<Delivery>) {
        let delay = Duration::from_millis(self.delay_ms.load(Ordering::SeqCst));
        for d in deliveries {
            let pending = PendingOne(self.pending.clone());
            let me = me.clone();
            self.handle.spawn(async move {
                let _pending = pending;
                deliver(me, d, delay).await;
            });
        }
    }
}

/// The wait before retry `n` (1-based): the retry delay, doubled for each retry before it.
fn backoff(first: Duration, n: u32) -> Duration {
    first.saturating_mul(1u32 << (n - 1).min(16))
}

/// POST one delivery until a 2xx, at most 1 + `retries` times; count the outcome.
async fn deliver(me: Weak<Inner>, d: Delivery, delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Some(retries) = me.upgrade().map(|inner| inner.hooks.retries) else {
        return;
    };
    for attempt in 0..=retries {
        if attempt > 0 {
            let first = match me.upgrade() {
                Some(inner) => inner.hooks.retry_delay,
                None => return,
            };
            tokio::time::sleep(backoff(first, attempt)).await;
        }
        // Only a weak link across the POST: the state lock is taken for the counters only.
        let client = {
            let Some(inner) = me.upgrade() else { return };
            if inner.hooks.stopped.load(Ordering::SeqCst) {
                return;
            }
            inner.lock().counters.ls_webhook_attempts += 1;
            inner.hooks.client()
        };
        let mut req = client
            .post(&d.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=UTF-8",
            )
            .body(d.body.clone());
        if let Some(signature) = &d.signature {
            req = req.header("X-Signature", signature);
        }
        let delivered = matches!(req.send().await, Ok(r) if r.status().is_success());
        if delivered {
            if let Some(inner) = me.upgrade() {
                inner.lock().counters.ls_webhook_deliveries += 1;
            }
            return;
        }
    }
    if let Some(inner) = me.upgrade() {
        inner.lock().counters.ls_webhook_failures += 1;
    }
}

impl Sandbox {
    /// Every Lightspeed webhook registration (either generation's), oldest first.
    pub fn ls_webhooks(&self) -> Vec<LsWebhook> {
        self.st().ls_webhooks.clone()
    }

    /// Register a Lightspeed webhook as `POST /api/2026-07/webhooks` would, with its checks
    /// (a known `WebhookType`, an http(s) URL, no other registration of the same type and
    /// URL). Returns its id.
    pub fn add_ls_webhook(
        &self,
        webhook_type: &str,
        url: &str,
        active: bool,
    ) -> anyhow::Result<String> {
        let body = serde_json::json!({"type": webhook_type, "url": url, "active": active});
        let mut st = self.st();
        match webhooks::register(&mut st, &body) {
            Ok(idx) => Ok(st.ls_webhooks[idx].id.clone()),
            Err(refused) => Err(anyhow::anyhow!(
                "webhook refused: {}",
                webhooks::refusal(&refused)
            )),
        }
    }

    /// Lost webhooks (docs: delivery is not guaranteed): while on, every delivery is dropped
    /// before its first attempt and counted in `Counters::ls_webhook_dropped`.
    pub fn set_ls_webhook_drop(&self, drop: bool) {
        self.inner.hooks.set_drop(drop);
    }

    /// Late webhooks: each delivery made from now on waits `delay` before its first attempt.
    pub fn set_ls_webhook_delay(&self, delay: Duration) {
        self.inner.hooks.set_delay(delay);
    }

    /// Wait until no delivery is pending (delays and retries included). `false` when some
    /// still are after `timeout`.
    pub async fn ls_webhooks_settled(&self, timeout: Duration) -> bool {
        let pending = self.inner.hooks.pending.clone();
        tokio::time::timeout(timeout, async move {
            loop {
                // Created before the check: it hears a notification sent after it.
                let idle = pending.idle.notified();
                if pending.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
    }

    /// The key of the deliveries' `X-Signature` (ASSUMPTION, see [`sign_ls_webhook`]): the
    /// Lightspeed OAuth app's client secret.
    pub fn ls_webhook_secret(&self) -> String {
        crate::oauth::client_secret(&self.st())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign_ls_webhook("Jefe", b"what do ya want for nothing?"),
            "signature=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843,\
             algorithm=HMAC-SHA256"
        );
    }

    #[test]
    fn retries_back_off_exponentially() {
        let first = Duration::from_millis(100);
        assert_eq!(backoff(first, 1), first);
        assert_eq!(backoff(first, 2), Duration::from_millis(200));
        assert_eq!(backoff(first, 4), Duration::from_millis(800));
    }
}
