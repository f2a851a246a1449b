//! The sale poster: one paid Ecwid order in, at most one completed Lightspeed sale out.
//!
//! Order of work, and why:
//! 1. **Claim** the ledger item with a conditional write and a lease, so two workers never
//!    post the same order at once (invariant 3).
//! 2. **Fetch** the order from Ecwid and decide on the fetched `paymentStatus`: the webhook
//!    body is unsigned (invariant 2, rules O1/O2).
//! 3. If an earlier attempt may have posted (expired lease, unknown outcome), **search**
//!    Lightspeed by the deterministic invoice number and adopt what is there (O6).
//! 4. **Map** with exact money and post one `CLOSED` sale (O3), then **record** the outcome.
//!
//! Retryable failures release the claim and tell the caller when to redeliver the message
//! (invariant 4). Permanent ones park the order with a readable reason (P2).
//!
//! Which Lightspeed product each line is sold as (P1) is in the `products` submodule, which
//! customer the sale is assigned to (C1–C4) in `customers`: each asks only for the ports it
//! uses (the link store and Lightspeed).

use crate::connection::Connection;
use crate::deadline::Deadline;
use crate::ecwid::EcwidOrder;
use crate::error::QueueError;
use crate::error::{ApiError, StoreError};
use crate::ids::{Sku, StoreId};
use crate::ledger::{self, LedgerEntry, OrderKey, Outcome, Reason, ReasonCode};
use crate::lightspeed::SaleSetup;
use crate::money::{self, MappingContext};
use crate::ports::{
    Clock, ConnectionStore, EcwidApi, LedgerStore, LightspeedApi, LinkStore, OrderMessage,
};
use crate::retry::Backoff;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
#[cfg(feature = "testing")]
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

mod backfill;
mod claim;
mod customers;
mod products;
pub mod refunds;
pub use backfill::{BackfillAction, BackfillItem, BackfillPlan};
pub use refunds::{RefundTarget, next_return, refund_target};

/// Tunables of the poster.
#[derive(Debug, Clone)]
pub struct PosterConfig {
    /// How long a claim is exclusive. The claim is renewed right before the sale POST, so
    /// a slow attempt that was overtaken posts nothing; the lease must still exceed one sale
    /// POST (its HTTP timeout) and, for customer links, one customer search and create.
    pub lease: Duration,
    /// First retry delay for errors that carry none; doubled per attempt, capped.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How long the retailer's taxes stay cached.
    pub setup_ttl: Duration,
    /// After a sale POST whose outcome is unknown, wait at least this long before the next
    /// attempt searches for it: Lightspeed's search is an index, and how soon a new sale
    /// shows in it is not documented. Searching too early would post a duplicate.
    pub search_delay: Duration,
    /// The time a sale POST needs before the invocation's deadline ([`Deadline`]): twice
    /// its request timeout, plus the longest rate-limit wait before it. With less left the
    /// order is released for a prompt retry instead of being posted.
    pub post_time_needed: Duration,
}

impl PosterConfig {
    /// The redelivery delays of errors that carry none: doubling from `retry_base`, at
    /// most `retry_cap`, for as many receives as the queue allows.
    pub fn backoff(&self) -> Backoff {
        Backoff::exponential(u32::MAX, self.retry_base, self.retry_cap)
    }
}

impl Default for PosterConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(900),
            setup_ttl: Duration::from_secs(600),
            post_time_needed: Duration::from_secs(20),
            search_delay: Duration::from_secs(90),
        }
    }
}

/// What happened to an order; the message can be acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub enum PostOutcome {
    Posted {
        sale_id: String,
    },
    /// A sale from an earlier attempt was found and recorded instead of posting again.
    Adopted {
        sale_id: String,
    },
    AlreadyPosted {
        sale_id: String,
    },
    Skipped(Reason),
    Parked(Reason),
    /// No connection for the store (it was removed after the webhook was queued).
    NoConnection,
    /// The posted order's refunds reached Lightspeed as these returns (R2–R4).
    Refunded {
        sale_id: String,
        return_ids: Vec<String>,
    },
    /// A refund of the posted order is held until replayed (R5, R6).
    RefundHeld(Reason),
}

/// Queues a follow-up message on the work queue a delivery came from (see
/// [`SalePoster::post_delivered_order`]); any `Fn(OrderMessage) -> future` is one.
pub trait FollowUp: Sync {
    fn queue(&self, message: OrderMessage) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl<F, Fut> FollowUp for F
where
    F: Fn(OrderMessage) -> Fut + Sync,
    Fut: Future<Output = Result<(), QueueError>> + Send,
{
    fn queue(&self, message: OrderMessage) -> impl Future<Output = Result<(), QueueError>> + Send {
        self(message)
    }
}

/// The message must come back later; nothing is lost.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryLater {
    pub delay: Duration,
    pub reason: String,
}

impl std::fmt::Display for RetryLater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "retry in {:?}: {}", self.delay, self.reason)
    }
}

/// The outcome of the work done under a claim.
struct Attempt {
    outcome: Outcome,
    retry_delay: Option<Duration>,
    facts: Option<(rust_decimal::Decimal, Vec<ledger::LedgerLine>)>,
    /// The order was partly refunded before it was posted: its refund follows the sale.
    refunded_already: bool,
}

impl Attempt {
    fn done(outcome: Outcome) -> Self {
        Self {
            outcome,
            retry_delay: None,
            facts: None,
            refunded_already: false,
        }
    }
}

/// The steps between which a worker can die, for crash tests ([`CrashHook`]). Only in
/// builds with the `testing` feature (the chaos suite); production has no hook.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// The ledger item is claimed (POSTING with a lease); nothing else happened.
    AfterClaim,
    /// The order was fetched from Ecwid; nothing was sent to Lightspeed yet.
    AfterFetch,
    /// The sale POST succeeded; its outcome is not recorded.
    AfterPost,
    /// The outcome is recorded; the queue message is not settled.
    AfterRecord,
}

#[cfg(feature = "testing")]
impl CrashPoint {
    pub const ALL: [CrashPoint; 4] = [
        CrashPoint::AfterClaim,
        CrashPoint::AfterFetch,
        CrashPoint::AfterPost,
        CrashPoint::AfterRecord,
    ];
}

/// Called when the poster passes a [`CrashPoint`]. A test hook simulates a killed worker
/// by panicking there.
#[cfg(feature = "testing")]
pub trait CrashHook: Send + Sync {
    fn reached(&self, point: CrashPoint, key: &OrderKey);
}

pub struct SalePoster<S, E, L, C> {
    store: S,
    ecwid: E,
    lightspeed: L,
    clock: C,
    config: PosterConfig,
    setup_cache: Mutex<HashMap<StoreId, (DateTime<Utc>, SaleSetup)>>,
    /// The current invocation's deadline (none in `els serve`).
    deadline: Deadline,
    #[cfg(feature = "testing")]
    crash_hook: Option<Arc<dyn CrashHook>>,
}

/// What every part of an attempt uses, whatever ports it needs.
impl<S, E, L, C> SalePoster<S, E, L, C> {
    /// The claim lease as a ledger duration.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(120))
    }

    /// A store failure: the message comes back after the base delay.
    fn store_retry(&self, what: &str, e: StoreError) -> RetryLater {
        RetryLater {
            delay: self.config.retry_base,
            reason: format!("{what}: {e}"),
        }
    }

    /// Turns an API failure into a retry (retryable) or a parked order (permanent).
    fn api_failure(
        &self,
        key: &OrderKey,
        doing: &str,
        e: ApiError,
        post_may_exist: bool,
        system: &str,
    ) -> Attempt {
        let order_id = &key.order_id;
        match e {
            ApiError::RateLimited { retry_after } => Attempt {
                outcome: Outcome::Released {
                    error: format!(
                        "{system} rate limit while {doing} (a 429, or the request was held back by pacing)"
                    ),
                    post_may_exist: false,
                },
                retry_delay: Some(retry_after.unwrap_or(self.config.retry_base)),
                facts: None,
                refunded_already: false,
            },
            ApiError::Unavailable { .. }
            | ApiError::OutcomeUnknown { .. }
            | ApiError::Decode { .. } => Attempt {
                outcome: Outcome::Released {
                    error: format!("{doing}: {e}"),
                    post_may_exist,
                },
                retry_delay: None,
                facts: None,
                refunded_already: false,
            },
            ApiError::NotFound { detail } if system == "Ecwid" => {
                Attempt::done(Outcome::Parked(Reason::new(
                    ReasonCode::OrderNotFound,
                    format!("order {order_id}: Ecwid has no such order ({detail})"),
                )))
            }
            ApiError::Unauthorized { status, detail } => {
                Attempt::done(Outcome::Parked(Reason::new(
                    ReasonCode::Unauthorized,
                    format!(
                        "order {order_id}: {system} refused our token ({status}) while {doing}: {detail}"
                    ),
                )))
            }
            ApiError::NotFound { detail } => Attempt::done(Outcome::Parked(Reason::new(
                ReasonCode::LightspeedRejected,
                format!("order {order_id}: {system} answered 404 while {doing}: {detail}"),
            ))),
            ApiError::Rejected { status, detail } => {
                let code = if system == "Lightspeed" {
                    ReasonCode::LightspeedRejected
                } else {
                    ReasonCode::InvalidOrder
                };
                Attempt::done(Outcome::Parked(Reason::new(
                    code,
                    format!(
                        "order {order_id}: {system} refused the request ({status}) while {doing}: {detail}"
                    ),
                )))
            }
        }
    }
}

impl<S, E, L, C> SalePoster<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + LinkStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    pub fn new(store: S, ecwid: E, lightspeed: L, clock: C, config: PosterConfig) -> Self {
        Self {
            store,
            ecwid,
            lightspeed,
            clock,
            config,
            setup_cache: Mutex::new(HashMap::new()),
            deadline: Deadline::none(),
            #[cfg(feature = "testing")]
            crash_hook: None,
        }
    }

    /// Starts no sale POST with less than [`PosterConfig::post_time_needed`] left before
    /// `deadline` (the Lambda function sets it per invocation).
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = deadline;
        self
    }

    /// Calls `hook` at each [`CrashPoint`] (tests only; none by default).
    #[cfg(feature = "testing")]
    pub fn with_crash_hook(mut self, hook: Arc<dyn CrashHook>) -> Self {
        self.crash_hook = Some(hook);
        self
    }

    #[cfg(feature = "testing")]
    fn crash_point(&self, point: CrashPoint, key: &OrderKey) {
        if let Some(hook) = &self.crash_hook {
            hook.reached(point, key);
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Posts the order named by `message`, at most once. `Ok` means the outcome is recorded
    /// and the message can be deleted; `Err` means it must be redelivered after the delay.
    /// With no queue at hand, nothing is queued before a skipped order is reopened (see
    /// [`Self::post_delivered_order`], which the queue's settle path uses).
    pub async fn post_paid_order(&self, message: &OrderMessage) -> Result<PostOutcome, RetryLater> {
        self.post_delivered_order(message, &|_| std::future::ready(Ok(())))
            .await
    }

    /// [`Self::post_paid_order`] for a message delivered by the work queue. `follow_up`
    /// queues a message on it: it is called with [`OrderMessage::reopened`] before this
    /// delivery reopens the order's SKIPPED entry, because the skip was acknowledged and this
    /// message may be gone (a late delivery of it); if it fails, nothing is reopened and the
    /// delivery is retried.
    pub async fn post_delivered_order(
        &self,
        message: &OrderMessage,
        follow_up: &impl FollowUp,
    ) -> Result<PostOutcome, RetryLater> {
        let key = message.key();
        let loaded = match self.store.get_connection(key.store_id).await {
            // Tokens that cannot be decrypted (copied from another store, key disabled): no
            // retry helps, so the order parks asking for the store to be reconnected.
            Err(StoreError::Undecryptable { detail, .. }) => {
                return self
                    .park_unreadable_connection(message, follow_up, &detail)
                    .await;
            }
            loaded => loaded,
        };
        let Some(conn) = loaded.map_err(|e| self.store_retry("loading the connection", e))? else {
            tracing::warn!(store_id = key.store_id.get(), order_id = %key.order_id, "no connection for store; message dropped");
            return Ok(PostOutcome::NoConnection);
        };

        let (mut claimed, search_first) = match self.claim(message, follow_up).await? {
            Ok(c) => c,
            Err(posted @ PostOutcome::AlreadyPosted { .. }) => {
                return self.settle_refunds(&conn, &key, posted).await;
            }
            Err(done) => return Ok(done),
        };
        #[cfg(feature = "testing")]
        self.crash_point(CrashPoint::AfterClaim, &key);
        let attempt = self
            .attempt(&conn, &key, &mut claimed, search_first, message.backfill)
            .await;
        let refunded_already = attempt.refunded_already;
        let result = self.record(&key, &claimed, attempt).await;
        if result.is_ok() {
            #[cfg(feature = "testing")]
            self.crash_point(CrashPoint::AfterRecord, &key);
        }
        match result {
            // Paid, partly refunded before it was posted: the refund follows at once.
            Ok(posted @ (PostOutcome::Posted { .. } | PostOutcome::Adopted { .. }))
                if refunded_already =>
            {
                self.settle_refunds(&conn, &key, posted).await
            }
            other => other,
        }
    }

    /// Writes the attempt's outcome under the claim's version condition.
    async fn record(
        &self,
        key: &OrderKey,
        claimed: &LedgerEntry,
        attempt: Attempt,
    ) -> Result<PostOutcome, RetryLater> {
        let base = match &attempt.facts {
            Some((total, lines)) => ledger::with_order_facts(claimed, *total, lines.clone()),
            None => claimed.clone(),
        };
        let outcome = attempt.outcome.clone();
        let next = ledger::finish(&base, attempt.outcome, self.clock.now());
        match self.store.save_order(&next, Some(claimed.version)).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                // Another worker took the order over after our lease expired. If we posted,
                // its search by invoice number finds our sale; redeliver to let it settle.
                tracing::error!(store_id = key.store_id.get(), order_id = %key.order_id, "lease lost before the outcome was recorded");
                return Err(RetryLater {
                    delay: self.config.retry_base,
                    reason: format!("order {key}: lease lost before recording the outcome"),
                });
            }
            Err(e) => return Err(self.store_retry("recording the outcome", e)),
        }
        let span_fields = (key.store_id.get(), key.order_id.as_str(), claimed.attempts);
        match outcome {
            Outcome::Posted { sale_id, adopted } => {
                tracing::info!(store_id = span_fields.0, order_id = span_fields.1, attempt = span_fields.2, %sale_id, adopted, "order posted");
                Ok(if adopted {
                    PostOutcome::Adopted { sale_id }
                } else {
                    PostOutcome::Posted { sale_id }
                })
            }
            Outcome::Parked(reason) => {
                tracing::warn!(store_id = span_fields.0, order_id = span_fields.1, code = %reason.code, reason = %reason.message, "order parked");
                Ok(PostOutcome::Parked(reason))
            }
            Outcome::Skipped(reason) => {
                tracing::info!(store_id = span_fields.0, order_id = span_fields.1, code = %reason.code, reason = %reason.message, "order skipped");
                Ok(PostOutcome::Skipped(reason))
            }
            Outcome::Released {
                error,
                post_may_exist,
            } => {
                let mut delay = attempt
                    .retry_delay
                    .unwrap_or_else(|| self.config.backoff().delay(claimed.attempts));
                if post_may_exist {
                    delay = delay.max(self.config.search_delay);
                }
                tracing::warn!(store_id = span_fields.0, order_id = span_fields.1, attempt = span_fields.2, %error, ?delay, "order will be retried");
                Err(RetryLater {
                    delay,
                    reason: error,
                })
            }
        }
    }

    /// Everything between claim and record. Never returns early without an outcome.
    /// `claimed` is updated when the claim is renewed before the sale POST.
    async fn attempt(
        &self,
        conn: &Connection,
        key: &OrderKey,
        claimed: &mut LedgerEntry,
        search_first: bool,
        backfill: bool,
    ) -> Attempt {
        if !conn.settings.post_sales {
            return Attempt::done(Outcome::Skipped(Reason::new(
                ReasonCode::PostSalesOff,
                format!(
                    "order {}: \"Post Ecwid Sales to Lightspeed Retail\" is off for store {}; replay it after turning the setting on",
                    key.order_id, key.store_id
                ),
            )));
        }
        let order = match self.ecwid.get_order(conn, &key.order_id).await {
            Ok(o) => o,
            Err(e) => {
                return self.api_failure(key, "fetching the order from Ecwid", e, false, "Ecwid");
            }
        };
        #[cfg(feature = "testing")]
        self.crash_point(CrashPoint::AfterFetch, key);
        if order.id != key.order_id {
            // The ledger key came from the unsigned webhook body; it must name the order
            // itself, or two keys (and two invoice numbers) could exist for one order.
            return Attempt::done(Outcome::Parked(Reason::new(
                ReasonCode::InvalidOrder,
                format!(
                    "order {}: Ecwid returned order {} for it; only the order's own id is accepted",
                    key.order_id, order.id
                ),
            )));
        }
        let status = order.payment_status.as_deref().unwrap_or_default();
        // Not paid (any more) while an earlier attempt may have posted: look before skipping.
        // A sale found is adopted, and the refund or cancellation follows as a return.
        if !order.is_paid()
            && status != refunds::PARTIALLY_REFUNDED
            && (search_first || restored_after(conn, &order))
        {
            match self
                .find_earlier_sale(conn, key, &claimed.invoice_number)
                .await
            {
                Ok(Some(sale_id)) => {
                    return Attempt {
                        outcome: Outcome::Posted {
                            sale_id,
                            adopted: true,
                        },
                        retry_delay: None,
                        facts: Some((order.total, money::ledger_lines(&order))),
                        refunded_already: true,
                    };
                }
                Ok(None) => {}
                Err(failed) => return failed,
            }
        }
        if matches!(status, refunds::CANCELLED | refunds::REFUNDED) {
            return Attempt::done(Outcome::Skipped(Reason::new(
                ReasonCode::RefundedBeforePosting,
                format!(
                    "order {}: {status} in Ecwid before it was posted; no sale is posted for it (R1)",
                    key.order_id
                ),
            )));
        }
        // Partly refunded before it was posted: the goods were still bought. The sale is
        // posted as paid, and the refund follows as a return.
        let refunded_already = status == refunds::PARTIALLY_REFUNDED;
        if !order.is_paid() && !refunded_already {
            return Attempt::done(Outcome::Skipped(Reason::new(
                ReasonCode::NotPaid,
                format!(
                    "order {}: payment status is {}; it is posted when it becomes PAID",
                    key.order_id,
                    order.payment_status.as_deref().unwrap_or("unknown")
                ),
            )));
        }
        // A backfill names its orders on purpose: the go-live moment does not hold them back.
        if !backfill && let Some(reason) = before_go_live(conn, &order) {
            return Attempt::done(Outcome::Skipped(reason));
        }
        let facts = Some((order.total, money::ledger_lines(&order)));
        let mut attempt = self
            .attempt_paid(conn, key, claimed, search_first, &order)
            .await;
        attempt.facts = facts;
        attempt.refunded_already = refunded_already;
        attempt
    }

    /// The sale an earlier attempt may have posted, found by the order's invoice number:
    /// its id, `None` when there is none, or the attempt's failure when the search failed.
    async fn find_earlier_sale(
        &self,
        conn: &Connection,
        key: &OrderKey,
        invoice_number: &str,
    ) -> Result<Option<String>, Attempt> {
        match self
            .lightspeed
            .find_sales_by_invoice(conn, invoice_number)
            .await
        {
            Ok(sales) => {
                if sales.len() > 1 {
                    tracing::error!(store_id = key.store_id.get(), order_id = %key.order_id, count = sales.len(), "several Lightspeed sales carry this order's invoice number");
                }
                Ok(sales.into_iter().next().map(|s| s.id))
            }
            Err(e) => Err(self.api_failure(
                key,
                "searching Lightspeed for an earlier sale",
                e,
                true,
                "Lightspeed",
            )),
        }
    }

    async fn attempt_paid(
        &self,
        conn: &Connection,
        key: &OrderKey,
        claimed: &mut LedgerEntry,
        search_first: bool,
        order: &EcwidOrder,
    ) -> Attempt {
        if search_first || restored_after(conn, order) {
            match self
                .find_earlier_sale(conn, key, &claimed.invoice_number)
                .await
            {
                Ok(Some(sale_id)) => {
                    return Attempt::done(Outcome::Posted {
                        sale_id,
                        adopted: true,
                    });
                }
                Ok(None) => {}
                Err(failed) => return failed,
            }
        }
        let setup = match self.sale_setup(conn).await {
            Ok(s) => s,
            Err(e) => {
                return self.api_failure(
                    key,
                    "reading the retailer's taxes",
                    e,
                    false,
                    "Lightspeed",
                );
            }
        };
        // A cached link can go stale (the product was deleted or re-created in Lightspeed).
        // If Lightspeed refuses a sale built from cached links, the links are looked up
        // again once; a sale is re-posted only if that changed a product id.
        let mut previous: Option<(HashMap<Sku, String>, String)> = None;
        loop {
            let bypass_cache = previous.is_some();
            let (products, used_cache) =
                match self.resolve_products(conn, key, order, bypass_cache).await {
                    Ok(p) => p,
                    Err(a) => return a,
                };
            if let Some((old, refusal)) = &previous
                && *old == products
            {
                return Attempt::done(Outcome::Parked(Reason::new(
                    ReasonCode::LightspeedRejected,
                    format!(
                        "order {}: Lightspeed refused the sale: {refusal}",
                        key.order_id
                    ),
                )));
            }
            // The sale is dated when the order was first seen paid; the date is kept in the
            // claim (written before the POST), so a retry posts the same date.
            let paid_at = *claimed.paid_at.get_or_insert_with(|| self.clock.now());
            let customer_id = match self.resolve_customer(conn, key, order).await {
                Ok(c) => c,
                Err(a) => return a,
            };
            let ctx = MappingContext {
                connection: conn,
                setup: &setup,
                products: &products,
                paid_at,
                customer_id,
            };
            let sale = match money::map_order_to_sale(order, key, &ctx) {
                Ok(s) => s,
                Err(reason) => return Attempt::done(Outcome::Parked(reason)),
            };
            if !self
                .deadline
                .allows(self.clock.now(), self.config.post_time_needed)
            {
                // Killed mid-POST the sale could exist unrecorded; let the next invocation,
                // with its full time, post it.
                return Attempt {
                    outcome: Outcome::Released {
                        error: "too little time left in this invocation to post the sale".into(),
                        post_may_exist: false,
                    },
                    retry_delay: Some(Duration::from_secs(1)),
                    facts: None,
                    refunded_already: false,
                };
            }
            if let Err(lost) = self.renew_claim(key, claimed).await {
                return lost;
            }
            return match self.lightspeed.post_sale(conn, &sale).await {
                Ok(posted) => {
                    #[cfg(feature = "testing")]
                    self.crash_point(CrashPoint::AfterPost, key);
                    if let Some(total) = posted.total
                        && total != sale.total()
                    {
                        tracing::error!(store_id = key.store_id.get(), order_id = %key.order_id, sale_id = %posted.id, lightspeed_total = %total, our_total = %sale.total(), "Lightspeed reports a different sale total");
                    }
                    Attempt::done(Outcome::Posted {
                        sale_id: posted.id,
                        adopted: false,
                    })
                }
                Err(ApiError::Rejected { status, detail }) if used_cache && previous.is_none() => {
                    tracing::warn!(store_id = key.store_id.get(), order_id = %key.order_id, status, "sale refused; refreshing cached product links once");
                    previous = Some((products, format!("({status}) {detail}")));
                    continue;
                }
                Err(ApiError::RateLimited { retry_after }) => Attempt {
                    outcome: Outcome::Released {
                        error: "Lightspeed rate limit on the sale POST (a 429, or the request was held back by pacing)".into(),
                        post_may_exist: false,
                    },
                    retry_delay: Some(retry_after.unwrap_or(self.config.retry_base)),
                    facts: None,
                    refunded_already: false,
                },
                // A 5xx, a timeout or a dropped connection: the sale may exist now.
                Err(e) => {
                    self.api_failure(key, "posting the sale to Lightspeed", e, true, "Lightspeed")
                }
            };
        }
    }

    /// Renews the claim just before the sale POST, the one step that must not run twice:
    /// a conditional write that extends the lease from now. If another worker took the
    /// order over meanwhile (this attempt outlived its lease: a slow Ecwid, a slow store),
    /// the write conflicts and nothing is posted; the taker searched before posting, but
    /// only what was posted before its search, so posting now could duplicate the sale.
    /// The lease then only has to outlast the POST itself, not the whole attempt.
    async fn renew_claim(&self, key: &OrderKey, claimed: &mut LedgerEntry) -> Result<(), Attempt> {
        let now = self.clock.now();
        let lease = self.lease();
        let mut renewed = claimed.clone();
        renewed.version = claimed.version + 1;
        renewed.lease_until = Some(now + lease);
        renewed.updated_at = now;
        let released = |error: String| Attempt {
            outcome: Outcome::Released {
                error,
                post_may_exist: false,
            },
            retry_delay: None,
            facts: None,
            refunded_already: false,
        };
        match self.store.save_order(&renewed, Some(claimed.version)).await {
            Ok(()) => {
                *claimed = renewed;
                Ok(())
            }
            Err(StoreError::Conflict(_)) => {
                // Recording against the old version conflicts too: the message is retried
                // and the taker's outcome stands.
                tracing::warn!(store_id = key.store_id.get(), order_id = %key.order_id, "lease lost before the sale POST; not posting");
                Err(released(format!(
                    "order {key}: lease lost before the sale POST"
                )))
            }
            Err(e) => Err(released(format!(
                "renewing the claim before the sale POST: {e}"
            ))),
        }
    }

    /// What posting `order` would do, without claiming, posting or creating anything: the
    /// sale it would post, or why it would park (for `els backfill --dry-run`). The order's
    /// buyer is not looked up (that may create a customer); product links found on the way
    /// are cached as a post would cache them. Err: the answer is not known (a retryable
    /// failure, with why).
    pub async fn preview(
        &self,
        conn: &Connection,
        order: &EcwidOrder,
    ) -> Result<Result<crate::lightspeed::SaleDraft, Reason>, String> {
        let key = OrderKey::new(conn.store_id, order.id.clone());
        let undecided = |attempt: Attempt| match attempt.outcome {
            Outcome::Parked(reason) | Outcome::Skipped(reason) => Ok(Err(reason)),
            Outcome::Released { error, .. } => Err(error),
            Outcome::Posted { .. } => Err("unexpected outcome".to_string()),
        };
        let setup = match self.sale_setup(conn).await {
            Ok(s) => s,
            Err(e) => {
                return undecided(self.api_failure(
                    &key,
                    "reading the retailer's taxes",
                    e,
                    false,
                    "Lightspeed",
                ));
            }
        };
        let products = match self.resolve_products(conn, &key, order, false).await {
            Ok((products, _)) => products,
            Err(attempt) => return undecided(attempt),
        };
        let ctx = MappingContext {
            connection: conn,
            setup: &setup,
            products: &products,
            paid_at: self.clock.now(),
            customer_id: None,
        };
        Ok(money::map_order_to_sale(order, &key, &ctx))
    }

    async fn sale_setup(&self, conn: &Connection) -> Result<SaleSetup, ApiError> {
        let now = self.clock.now();
        let ttl = chrono::Duration::from_std(self.config.setup_ttl)
            .unwrap_or(chrono::Duration::minutes(10));
        if let Some((at, setup)) = self
            .setup_cache
            .lock()
            .expect("setup cache poisoned")
            .get(&conn.store_id)
            && now - *at < ttl
        {
            return Ok(setup.clone());
        }
        let setup = self.lightspeed.sale_setup(conn).await?;
        self.setup_cache
            .lock()
            .expect("setup cache poisoned")
            .insert(conn.store_id, (now, setup.clone()));
        Ok(setup)
    }
}

/// Whether the state was restored from a backup after this order was created (see
/// [`Connection::restored_at`]): it may have been posted after the backup was taken. An
/// undated order counts as created before.
fn restored_after(conn: &Connection, order: &EcwidOrder) -> bool {
    conn.restored_at.is_some_and(|restored| {
        order
            .create_timestamp
            .is_none_or(|created| created <= restored.timestamp())
    })
}

/// Why a paid order is not posted because it predates the connection's go-live moment.
/// An order whose creation time Ecwid does not give is posted (losing a sale is worse than
/// the rare double post of an undated old order). ASSUMPTION: `createTimestamp` is the
/// order's creation in Unix seconds, as Ecwid's order reference describes it.
fn before_go_live(conn: &Connection, order: &EcwidOrder) -> Option<Reason> {
    let go_live = conn.go_live_at?;
    let created = DateTime::from_timestamp(order.create_timestamp?, 0)?;
    // Whole seconds, as Ecwid dates orders: an order of the connecting second is posted.
    (created.timestamp() < go_live.timestamp()).then(|| {
        Reason::new(
            ReasonCode::BeforeGoLive,
            format!(
                "order {}: created {} before the connection went live at {}; to post older orders, run els backfill --since DATE",
                order.id,
                created.to_rfc3339(),
                go_live.to_rfc3339()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeEcwid, FakeLightspeed, STORE, TestClock, World, connection};
    use crate::ledger::{LedgerLine, OrderState};
    use crate::memory::MemoryStore;
    use rust_decimal::Decimal;

    /// A world with `connection`, where Lightspeed has one product, `ls-mug`, with SKU MUG.
    async fn world(connection: Connection) -> World {
        let world = World::new(connection).await;
        world.lightspeed.add_product("ls-mug", "MUG", true);
        world
    }

    impl World {
        fn poster(&self) -> SalePoster<MemoryStore, FakeEcwid, FakeLightspeed, TestClock> {
            SalePoster::new(
                self.store.clone(),
                self.ecwid.clone(),
                self.lightspeed.clone(),
                self.clock.clone(),
                PosterConfig::default(),
            )
        }

        async fn ledger(&self, order_id: &str) -> LedgerEntry {
            self.store
                .load_order(&OrderKey::new(STORE, order_id))
                .await
                .unwrap()
                .expect("a ledger entry")
        }
    }

    /// Two mugs at 12 plus 10% GST: 26.40.
    fn order(id: &str, payment_status: &str, sku: &str, email: Option<&str>) -> EcwidOrder {
        serde_json::from_value(serde_json::json!({
            "id": id, "total": 26.4, "pricesIncludeTax": false, "paymentStatus": payment_status,
            "email": email,
            "billingPerson": {"firstName": "Ann", "lastName": "Lee"},
            "items": [{"sku": sku, "quantity": 2, "price": 12, "tax": 2.4,
                       "taxes": [{"name": "GST", "value": 10, "total": 2.4, "includeInPrice": false}]}]
        }))
        .unwrap()
    }

    fn message(order_id: &str) -> OrderMessage {
        OrderMessage::from_webhook(STORE, order_id, format!("ev-{order_id}"))
    }

    #[tokio::test]
    async fn a_paid_order_is_posted_once_and_recorded_in_the_ledger() {
        let w = world(connection()).await;
        w.ecwid.add_order(order("K1", "PAID", "MUG", None));
        let poster = w.poster();

        let outcome = poster.post_paid_order(&message("K1")).await;
        assert_eq!(
            outcome,
            Ok(PostOutcome::Posted {
                sale_id: "sale-1".into()
            })
        );
        let sales = w.lightspeed.sales();
        assert_eq!(sales.len(), 1);
        let sale = &sales[0].1;
        assert_eq!(sale.invoice_number, "ECWID-1003-K1");
        assert_eq!(sale.status, "CLOSED");
        assert_eq!(sale.total(), Decimal::new(2640, 2));
        assert_eq!(sale.payments_total(), Decimal::new(2640, 2));
        assert_eq!(sale.register_sale_products[0].product_id, "ls-mug");
        assert_eq!(sale.customer_id, None, "the order has no email");

        let entry = w.ledger("K1").await;
        assert_eq!(entry.state, OrderState::Posted);
        assert_eq!(entry.sale_id.as_deref(), Some("sale-1"));
        assert_eq!(entry.total, Some(Decimal::new(2640, 2)));
        assert_eq!(
            entry.lines,
            vec![LedgerLine {
                sku: "MUG".into(),
                quantity: Decimal::from(2)
            }]
        );
        assert_eq!(
            w.store
                .get_product_link(STORE, &Sku::parse("MUG").unwrap())
                .await
                .unwrap()
                .map(|l| l.lightspeed_product_id),
            Some("ls-mug".into()),
            "the SKU link is cached"
        );

        // Ecwid's retry of the webhook, a queue redelivery: nothing is posted again.
        let again = poster.post_paid_order(&message("K1")).await;
        assert_eq!(
            again,
            Ok(PostOutcome::AlreadyPosted {
                sale_id: "sale-1".into()
            })
        );
        assert_eq!(w.lightspeed.sales().len(), 1);
    }

    #[tokio::test]
    async fn an_unpaid_order_is_skipped_then_posted_once_paid() {
        let w = world(connection()).await;
        w.ecwid
            .add_order(order("K2", "AWAITING_PAYMENT", "MUG", None));
        let poster = w.poster();

        let Ok(PostOutcome::Skipped(reason)) = poster.post_paid_order(&message("K2")).await else {
            panic!("an unpaid order is skipped");
        };
        assert_eq!(reason.code, ReasonCode::NotPaid);
        assert!(reason.message.contains("AWAITING_PAYMENT"), "{reason}");
        assert!(w.lightspeed.sales().is_empty());
        assert_eq!(w.ledger("K2").await.state, OrderState::Skipped);

        // The buyer pays: Ecwid's next webhook posts it.
        w.ecwid.add_order(order("K2", "PAID", "MUG", None));
        let outcome = poster.post_paid_order(&message("K2")).await;
        assert!(
            matches!(outcome, Ok(PostOutcome::Posted { .. })),
            "{outcome:?}"
        );
        assert_eq!(w.lightspeed.sales().len(), 1);
    }

    #[tokio::test]
    async fn with_posting_off_the_order_is_skipped_with_the_setting_as_reason() {
        let mut conn = connection();
        conn.settings.post_sales = false;
        let w = world(conn).await;
        w.ecwid.add_order(order("K3", "PAID", "MUG", None));

        let Ok(PostOutcome::Skipped(reason)) = w.poster().post_paid_order(&message("K3")).await
        else {
            panic!("posting off skips the order (O5)");
        };
        assert_eq!(reason.code, ReasonCode::PostSalesOff);
        assert!(
            reason
                .message
                .contains("\"Post Ecwid Sales to Lightspeed Retail\" is off"),
            "{reason}"
        );
        assert_eq!(w.ecwid.calls(), 0, "the order is not even fetched");
        assert!(w.lightspeed.calls().is_empty());
        let entry = w.ledger("K3").await;
        assert_eq!(entry.state, OrderState::Skipped);
        assert_eq!(entry.reason.map(|r| r.code), Some(ReasonCode::PostSalesOff));
    }

    #[tokio::test]
    async fn an_unknown_sku_parks_the_order_and_posts_nothing() {
        let w = world(connection()).await;
        w.ecwid.add_order(order("K4", "PAID", "TOTE", None));
        let poster = w.poster();

        let Ok(PostOutcome::Parked(reason)) = poster.post_paid_order(&message("K4")).await else {
            panic!("an unknown SKU parks the order");
        };
        assert_eq!(reason.code, ReasonCode::UnknownSku);
        assert!(reason.message.contains("SKU TOTE"), "{reason}");
        assert!(w.lightspeed.sales().is_empty());
        let entry = w.ledger("K4").await;
        assert_eq!(entry.state, OrderState::Parked);
        assert_eq!(entry.reason, Some(reason.clone()));

        // A redelivery waits for the operator's replay: no call at all.
        let calls = w.lightspeed.calls().len();
        assert_eq!(
            poster.post_paid_order(&message("K4")).await,
            Ok(PostOutcome::Parked(reason))
        );
        assert_eq!(w.lightspeed.calls().len(), calls);
    }

    #[tokio::test]
    async fn a_sale_whose_answer_was_lost_is_found_and_adopted_not_posted_again() {
        let w = world(connection()).await;
        w.ecwid.add_order(order("K5", "PAID", "MUG", None));
        w.lightspeed.lose_next_sale_answer();
        let poster = w.poster();
        let search_delay = PosterConfig::default().search_delay;

        // The POST went out, its answer did not come back: retry, after the search delay.
        let Err(retry) = poster.post_paid_order(&message("K5")).await else {
            panic!("an unknown outcome is retried");
        };
        assert!(retry.delay >= search_delay, "{retry}");
        assert_eq!(
            w.lightspeed.sales().len(),
            1,
            "the sale exists in Lightspeed"
        );
        let entry = w.ledger("K5").await;
        assert_eq!(entry.state, OrderState::Queued);
        assert!(entry.post_may_exist);

        // A redelivery before the search can show the sale waits.
        assert!(poster.post_paid_order(&message("K5")).await.is_err());

        w.clock.advance(search_delay);
        let outcome = poster.post_paid_order(&message("K5")).await;
        assert_eq!(
            outcome,
            Ok(PostOutcome::Adopted {
                sale_id: "sale-1".into()
            })
        );
        assert_eq!(w.lightspeed.sales().len(), 1, "no second sale");
        let calls = w.lightspeed.calls();
        let search = calls
            .iter()
            .position(|c| *c == "find_sales_by_invoice")
            .expect("a search");
        assert_eq!(
            calls.iter().filter(|c| **c == "post_sale").count(),
            1,
            "{calls:?}"
        );
        assert!(search > calls.iter().position(|c| *c == "post_sale").unwrap());
        let entry = w.ledger("K5").await;
        assert_eq!(entry.state, OrderState::Posted);
        assert_eq!(entry.sale_id.as_deref(), Some("sale-1"));
    }

    #[tokio::test]
    async fn a_failed_claim_write_is_retried_and_posts_nothing() {
        let w = world(connection()).await;
        w.ecwid.add_order(order("K6", "PAID", "MUG", None));
        w.store.fail_next_writes(1);
        let poster = w.poster();

        assert!(poster.post_paid_order(&message("K6")).await.is_err());
        assert!(w.lightspeed.sales().is_empty());
        assert_eq!(
            w.store
                .load_order(&OrderKey::new(STORE, "K6"))
                .await
                .unwrap(),
            None
        );
        assert!(matches!(
            poster.post_paid_order(&message("K6")).await,
            Ok(PostOutcome::Posted { .. })
        ));
    }

    #[tokio::test]
    async fn a_buyers_email_finds_or_creates_one_customer_for_all_their_orders() {
        let w = world(connection()).await;
        w.lightspeed.add_customer("cust-ann", "ann.lee@example.com");
        w.ecwid
            .add_order(order("K7", "PAID", "MUG", Some("Ann.Lee@Example.com")));
        w.ecwid
            .add_order(order("K8", "PAID", "MUG", Some("new.buyer@example.com")));
        w.ecwid
            .add_order(order("K9", "PAID", "MUG", Some("new.buyer@example.com")));
        let poster = w.poster();
        for id in ["K7", "K8", "K9"] {
            let outcome = poster.post_paid_order(&message(id)).await;
            assert!(
                matches!(outcome, Ok(PostOutcome::Posted { .. })),
                "{outcome:?}"
            );
        }

        let customers: Vec<_> = w
            .lightspeed
            .sales()
            .into_iter()
            .map(|(_, s)| s.customer_id)
            .collect();
        assert_eq!(
            customers,
            vec![
                Some("cust-ann".to_string()),
                Some("cust-2".to_string()),
                Some("cust-2".to_string())
            ],
            "the existing customer is matched (C2); a new email creates one customer"
        );
        assert_eq!(w.lightspeed.customers().len(), 2);
        let calls = w.lightspeed.calls();
        assert_eq!(calls.iter().filter(|c| **c == "create_customer").count(), 1);
        assert_eq!(
            calls
                .iter()
                .filter(|c| **c == "search_customers_by_email")
                .count(),
            2,
            "the third order uses the link"
        );
    }

    #[test]
    fn orders_created_before_go_live_are_skipped_to_the_second() {
        let go_live = DateTime::from_timestamp(1_800_000_000, 500_000_000).unwrap();
        let conn = Connection {
            go_live_at: Some(go_live),
            ..connection()
        };
        let dated = |ts: Option<i64>| EcwidOrder {
            create_timestamp: ts,
            ..order("G1", "PAID", "MUG", None)
        };
        let reason = before_go_live(&conn, &dated(Some(1_799_999_999))).expect("skipped");
        assert_eq!(reason.code, ReasonCode::BeforeGoLive);
        assert!(reason.message.contains("before the connection went live"));
        // The connecting second itself, later ones, undated orders and no go-live: posted.
        assert_eq!(before_go_live(&conn, &dated(Some(1_800_000_000))), None);
        assert_eq!(before_go_live(&conn, &dated(Some(1_800_000_100))), None);
        assert_eq!(before_go_live(&conn, &dated(None)), None);
        assert_eq!(before_go_live(&connection(), &dated(Some(1))), None);
    }
}
