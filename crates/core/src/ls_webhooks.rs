//! Lightspeed's webhooks as a **hint** for the inventory mirror.
//!
//! Lightspeed can POST `inventory.update` (and `product.update`) to a URL registered per
//! retailer (`POST /webhooks {url, active, type}`). A delivery only makes us read sooner:
//! it enqueues the store's "mirror store S" job at once ([`StoreJob::from_lightspeed_webhook`])
//! and the worker reads Lightspeed's own inventory feed from the store's cursor, exactly
//! as the minute's schedule does. Nothing in a delivery's body is trusted or used, so a
//! forged or replayed delivery can at worst cost a mirror run (coalesced per store into one
//! job per [`crate::jobs::HOOK_COALESCE`] slot); a lost one costs the lag until the next
//! tick (Lightspeed documents delivery as not guaranteed and polling as the reliable way).
//!
//! **How a delivery is authenticated.** Lightspeed signs each delivery
//! (`X-Signature: signature=...,algorithm=HMAC-SHA256` over the body), but its key is not
//! documented (our reference marks it UNCERTAIN), so a check against a guessed key would
//! either refuse every real delivery or prove nothing. Instead, the URL we register for a
//! store carries a random 128-bit-plus secret of that store: `/webhooks/lightspeed/{store}/{token}`.
//! The connection keeps only the token's SHA-256 ([`LsWebhooks::token_sha256`]), never the
//! token, and a delivery is accepted only when the SHA-256 of its path's token equals it
//! (compared in constant time). The URL travels only between Lightspeed and our endpoint,
//! over HTTPS.
//!
//! The answer is quick (one GetItem and one SendMessage; Lightspeed wants a 2xx within 5 s):
//! 200 when the job is queued; 401 for a token that does not match (a stale registration
//! after a reconnect); 404 for a store with no connection or no webhooks registered; 503
//! when the job could not be queued (Lightspeed retries; the schedule still mirrors).

use crate::connection::Connection;
use crate::error::QueueError;
use crate::ids::StoreId;
use crate::jobs::{JobQueue, StoreJob};
use crate::ports::ConnectionStore;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The path prefix of Lightspeed deliveries: `{prefix}/{store}/{token}`.
pub const LS_WEBHOOK_PATH_PREFIX: &str = "/webhooks/lightspeed";

/// The webhook types we register: a level changed; a product changed (a new product, a
/// SKU or tracking change, which the mirror's products feed follows).
pub const LS_WEBHOOK_TYPES: [&str; 2] = ["inventory.update", "product.update"];

/// A connection's Lightspeed webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsWebhooks {
    /// Hex SHA-256 of the token in the registered URL (the token itself is not kept).
    pub token_sha256: String,
    /// The URL registered, without its token (for `els doctor`; the token is the secret).
    pub url_base: String,
    /// Lightspeed's ids of the webhooks registered, to delete them on a reconnect.
    #[serde(default)]
    pub ids: Vec<String>,
    pub registered_at: DateTime<Utc>,
}

/// A new random token for a store's webhook URL: 244 random bits (two UUIDv4), hex.
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Hex SHA-256 of a token.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `{base}/webhooks/lightspeed/{store}`: the part of a store's URL that is not secret.
pub fn url_base(public_base: &str, store_id: StoreId) -> String {
    format!(
        "{}{LS_WEBHOOK_PATH_PREFIX}/{store_id}",
        public_base.trim_end_matches('/')
    )
}

/// The URL registered for a store.
pub fn webhook_url(public_base: &str, store_id: StoreId, token: &str) -> String {
    format!("{}/{token}", url_base(public_base, store_id))
}

/// `(store, token)` of a delivery's path (`/webhooks/lightspeed/{store}/{token}`, a stage
/// prefix before it allowed); `None` for any other path.
pub fn parse_path(path: &str) -> Option<(StoreId, &str)> {
    let rest = &path[path.find(LS_WEBHOOK_PATH_PREFIX)? + LS_WEBHOOK_PATH_PREFIX.len()..];
    let mut parts = rest.trim_start_matches('/').split('/');
    let store = parts.next()?.parse().ok()?;
    let token = parts.next()?;
    let well_formed =
        !token.is_empty() && token.len() <= 128 && token.bytes().all(|b| b.is_ascii_alphanumeric());
    (well_formed && parts.next().is_none()).then_some((store, token))
}

/// What a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// The store's job is queued.
    Queued(StoreJob),
    /// No connection for the store, or no webhooks registered for it.
    UnknownStore,
    /// The token does not match the store's.
    BadToken,
    /// The connection could not be read or the job not queued: retry.
    Unavailable(String),
}

impl HookOutcome {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HookOutcome::Queued(_) => 200,
            HookOutcome::UnknownStore => 404,
            HookOutcome::BadToken => 401,
            HookOutcome::Unavailable(_) => 503,
        }
    }
}

/// Whether `token` is the one whose SHA-256 `conn` keeps (constant time).
pub fn token_matches(conn: &Connection, token: &str) -> bool {
    let Some(hooks) = &conn.lightspeed_webhooks else {
        return false;
    };
    let given = token_sha256(token);
    given.len() == hooks.token_sha256.len()
        && bool::from(given.as_bytes().ct_eq(hooks.token_sha256.as_bytes()))
}

/// Handles a delivery to `path` at `now` (see the module doc) and logs what it came to
/// (never the path: it holds the secret). The body is not read.
pub async fn accept_delivery<S, Q>(
    store: &S,
    jobs: &Q,
    path: &str,
    now: DateTime<Utc>,
) -> HookOutcome
where
    S: ConnectionStore,
    Q: JobQueue,
{
    let outcome = decide(store, jobs, path, now).await;
    match &outcome {
        HookOutcome::Queued(job) => {
            tracing::info!(
                store_id = job.store_id.get(),
                "Lightspeed webhook: store job queued"
            )
        }
        HookOutcome::Unavailable(e) => tracing::warn!(error = %e, "Lightspeed webhook not queued"),
        other => tracing::info!(outcome = ?other, "Lightspeed webhook refused"),
    }
    outcome
}

async fn decide<S, Q>(store: &S, jobs: &Q, path: &str, now: DateTime<Utc>) -> HookOutcome
where
    S: ConnectionStore,
    Q: JobQueue,
{
    let Some((store_id, token)) = parse_path(path) else {
        return HookOutcome::UnknownStore;
    };
    let conn = match store.get_connection(store_id).await {
        Ok(Some(conn)) => conn,
        Ok(None) => return HookOutcome::UnknownStore,
        Err(e) => return HookOutcome::Unavailable(e.to_string()),
    };
    if conn.lightspeed_webhooks.is_none() {
        return HookOutcome::UnknownStore;
    }
    if !token_matches(&conn, token) {
        return HookOutcome::BadToken;
    }
    let job = StoreJob::from_lightspeed_webhook(store_id, now);
    match jobs.enqueue_jobs(std::slice::from_ref(&job)).await {
        Ok(()) => HookOutcome::Queued(job),
        Err(QueueError::Unavailable(e) | QueueError::InvalidMessage(e)) => {
            HookOutcome::Unavailable(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Jobs(Mutex<Vec<StoreJob>>);

    impl JobQueue for Jobs {
        async fn enqueue_jobs(&self, jobs: &[StoreJob]) -> Result<(), QueueError> {
            self.0.lock().unwrap().extend_from_slice(jobs);
            Ok(())
        }
    }

    fn store(n: u64) -> StoreId {
        StoreId::new(n).unwrap()
    }

    async fn connected(token: Option<&str>) -> MemoryStore {
        let s = MemoryStore::default();
        let mut conn = crate::fakes::connection();
        conn.store_id = store(7);
        conn.lightspeed_webhooks = token.map(|t| LsWebhooks {
            token_sha256: token_sha256(t),
            url_base: url_base("https://hooks.example", store(7)),
            ids: vec!["wh-1".into()],
            registered_at: Utc::now(),
        });
        s.put_connection(&conn, None).await.unwrap();
        s
    }

    #[test]
    fn paths_parse_with_or_without_a_stage_and_nothing_else_does() {
        let token = new_token();
        assert_eq!(token.len(), 64);
        let url = webhook_url(
            "https://x.execute-api.us-east-1.amazonaws.com/",
            store(7),
            &token,
        );
        assert_eq!(
            url,
            format!("https://x.execute-api.us-east-1.amazonaws.com/webhooks/lightspeed/7/{token}")
        );
        for path in [
            format!("/webhooks/lightspeed/7/{token}"),
            format!("/prod/webhooks/lightspeed/7/{token}"),
        ] {
            assert_eq!(
                parse_path(&path),
                Some((store(7), token.as_str())),
                "{path}"
            );
        }
        for bad in [
            "/webhooks/lightspeed/7".to_string(),
            "/webhooks/lightspeed/0/abc".into(),
            "/webhooks/lightspeed/x/abc".into(),
            "/webhooks/lightspeed/7/abc/more".into(),
            "/webhooks/lightspeed/7/ab%2Fc".into(),
            format!("/webhooks/lightspeed/7/{}", "a".repeat(129)),
            "/webhooks/ecwid".into(),
        ] {
            assert_eq!(parse_path(&bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_right_token_queues_the_store_job_and_anything_else_queues_nothing() {
        let token = new_token();
        let s = connected(Some(&token)).await;
        let jobs = Jobs::default();
        let now = Utc::now();

        let ok = accept_delivery(&s, &jobs, &format!("/webhooks/lightspeed/7/{token}"), now).await;
        assert_eq!(
            ok,
            HookOutcome::Queued(StoreJob::from_lightspeed_webhook(store(7), now))
        );
        assert_eq!(ok.status(), 200);

        let wrong = accept_delivery(
            &s,
            &jobs,
            &format!("/webhooks/lightspeed/7/{}", new_token()),
            now,
        )
        .await;
        assert_eq!((wrong.status(), wrong), (401, HookOutcome::BadToken));
        let other =
            accept_delivery(&s, &jobs, &format!("/webhooks/lightspeed/8/{token}"), now).await;
        assert_eq!(other.status(), 404, "no connection for store 8");
        assert_eq!(
            jobs.0.lock().unwrap().len(),
            1,
            "only the good delivery queued a job"
        );
    }

    #[tokio::test]
    async fn a_store_without_webhooks_registered_accepts_no_delivery() {
        let s = connected(None).await;
        let jobs = Jobs::default();
        let out = accept_delivery(
            &s,
            &jobs,
            &format!("/webhooks/lightspeed/7/{}", new_token()),
            Utc::now(),
        )
        .await;
        assert_eq!(out, HookOutcome::UnknownStore);
        assert!(jobs.0.lock().unwrap().is_empty());
    }
}
