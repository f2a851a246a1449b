//! The order ledger: one item per Ecwid order, and the state machine that makes posting
//! at-most-once (invariant 3) and at-least-once (invariant 4).
//!
//! ```text
//!            claim                      mark_posted
//! (none) ─────────────▶ POSTING ──────────────────────▶ POSTED (final)
//! QUEUED ─────────────▶ (lease)  ── park ─────────────▶ PARKED ──replay──▶ QUEUED
//! SKIPPED ────────────▶          ── skip ─────────────▶ SKIPPED
//!                                ── release (retry) ──▶ QUEUED
//!  POSTING, lease expired ──claim──▶ POSTING with `search_first`
//! ```
//!
//! Adapters store entries with a version-conditioned write; every transition here takes the
//! entry it read and yields the entry to write, with `version` bumped. A transition made from
//! a stale copy therefore fails at the store, never silently.

mod returns;
pub use returns::{
    EditUnits, EditedOrder, PendingReturn, ReturnClaim, ReturnKind, ReturnOutcome, ReturnRecord,
    Returns, begin_return, claim_returns, edit_difference, finish_returns, release_held_returns,
    return_invoice_number, return_started,
};

use crate::ids::StoreId;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The key of one order: Ecwid store id and Ecwid order id (the string `id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    pub store_id: StoreId,
    pub order_id: String,
}

impl OrderKey {
    pub fn new(store_id: StoreId, order_id: impl Into<String>) -> Self {
        Self {
            store_id,
            order_id: order_id.into(),
        }
    }

    /// The deterministic Lightspeed `invoice_number` / `source_id` for this order.
    /// Store id is included so two stores sharing one retailer cannot collide.
    pub fn invoice_number(&self) -> String {
        format!("ECWID-{}-{}", self.store_id, self.order_id)
    }
}

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.store_id, self.order_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    Queued,
    Posting,
    Posted,
    Parked,
    Skipped,
}

impl OrderState {
    pub const ALL: [OrderState; 5] = [
        OrderState::Queued,
        OrderState::Posting,
        OrderState::Posted,
        OrderState::Parked,
        OrderState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Queued => "QUEUED",
            OrderState::Posting => "POSTING",
            OrderState::Posted => "POSTED",
            OrderState::Parked => "PARKED",
            OrderState::Skipped => "SKIPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an order was parked or skipped. Codes are stable; `replay --reason CODE` uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    /// Skipped: the fetched order is not PAID (O1, O2).
    NotPaid,
    /// Skipped: the connection's post_sales setting is off (O5).
    PostSalesOff,
    /// Skipped: the order was created before the connection went live.
    BeforeGoLive,
    /// Parked: Ecwid says the order does not exist.
    OrderNotFound,
    /// Parked: an item has no SKU (P1).
    BlankSku,
    /// Parked: no Lightspeed product has the SKU (P2).
    UnknownSku,
    /// Parked: several Lightspeed products have the SKU (P1).
    AmbiguousSku,
    /// Parked: the order uses a money feature the mapping does not support.
    UnsupportedAdjustment,
    /// Parked: no Lightspeed tax has the Ecwid tax rate.
    TaxNotMapped,
    /// Parked: the mapped lines do not sum to the Ecwid total.
    TotalsMismatch,
    /// Parked: the order data is not usable (bad quantity, no items...).
    InvalidOrder,
    /// Parked: Lightspeed refused the sale.
    LightspeedRejected,
    /// Parked: a token was refused by Ecwid or Lightspeed.
    Unauthorized,
    /// Parked: the queue gave up on the message after its maximum receives.
    DeadLettered,
    /// Skipped: the order was cancelled or refunded before it was posted (R1).
    RefundedBeforePosting,
    /// A refund held: "Post Ecwid refunds to Lightspeed" is off (R5).
    RefundsOff,
    /// A refund held: it cannot be posted faithfully (R6): the sale voided in the POS, an
    /// amount larger than what is left, no refund product...
    RefundNotPostable,
    /// A refund held: a partial refund without `refundedAmount` (R3).
    RefundAmountUnknown,
    /// Held: the posted order was edited in Ecwid while PAID (R7).
    EditedAfterPosting,
    /// Held: refunded or cancelled, and posted by a release before refunds were handled
    /// (its refund may have been handled by hand).
    PostedBeforeRefunds,
}

impl ReasonCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::NotPaid => "NOT_PAID",
            ReasonCode::PostSalesOff => "POST_SALES_OFF",
            ReasonCode::BeforeGoLive => "BEFORE_GO_LIVE",
            ReasonCode::OrderNotFound => "ORDER_NOT_FOUND",
            ReasonCode::BlankSku => "BLANK_SKU",
            ReasonCode::UnknownSku => "UNKNOWN_SKU",
            ReasonCode::AmbiguousSku => "AMBIGUOUS_SKU",
            ReasonCode::UnsupportedAdjustment => "UNSUPPORTED_ADJUSTMENT",
            ReasonCode::TaxNotMapped => "TAX_NOT_MAPPED",
            ReasonCode::TotalsMismatch => "TOTALS_MISMATCH",
            ReasonCode::InvalidOrder => "INVALID_ORDER",
            ReasonCode::LightspeedRejected => "LIGHTSPEED_REJECTED",
            ReasonCode::Unauthorized => "UNAUTHORIZED",
            ReasonCode::DeadLettered => "DEAD_LETTERED",
            ReasonCode::RefundedBeforePosting => "REFUNDED_BEFORE_POSTING",
            ReasonCode::RefundsOff => "REFUNDS_OFF",
            ReasonCode::RefundNotPostable => "REFUND_NOT_POSTABLE",
            ReasonCode::RefundAmountUnknown => "REFUND_AMOUNT_UNKNOWN",
            ReasonCode::EditedAfterPosting => "EDITED_AFTER_POSTING",
            ReasonCode::PostedBeforeRefunds => "POSTED_BEFORE_REFUNDS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use ReasonCode::*;
        [
            NotPaid,
            PostSalesOff,
            BeforeGoLive,
            OrderNotFound,
            BlankSku,
            UnknownSku,
            AmbiguousSku,
            UnsupportedAdjustment,
            TaxNotMapped,
            TotalsMismatch,
            InvalidOrder,
            LightspeedRejected,
            Unauthorized,
            DeadLettered,
            RefundedBeforePosting,
            RefundsOff,
            RefundNotPostable,
            RefundAmountUnknown,
            EditedAfterPosting,
            PostedBeforeRefunds,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code and a sentence an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

impl Reason {
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// A SKU and quantity sold online, kept so the stock mirror can subtract quantities that
/// are paid but not yet in Lightspeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerLine {
    pub sku: String,
    pub quantity: Decimal,
}

/// One step in an order's history, for `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub at: DateTime<Utc>,
    pub state: OrderState,
    pub detail: String,
}

/// How many history events an entry keeps; older ones are dropped first.
pub const HISTORY_LIMIT: usize = 50;

/// The ledger item of one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub key: OrderKey,
    pub state: OrderState,
    /// Number of claims so far; the current claim's number identifies its lease.
    pub attempts: u32,
    /// While POSTING: the lease expiry. Another worker may take over after it.
    pub lease_until: Option<DateTime<Utc>>,
    /// A sale POST may have reached Lightspeed without us learning its id (timeout,
    /// dropped connection, crash): search by invoice number before posting again.
    pub post_may_exist: bool,
    pub invoice_number: String,
    pub sale_id: Option<String>,
    pub reason: Option<Reason>,
    /// The last retryable error, kept for `status` and the dead-letter path.
    pub last_error: Option<String>,
    pub total: Option<Decimal>,
    pub lines: Vec<LedgerLine>,
    /// When the poster first saw the order PAID: the sale's date, the same on every retry
    /// (Ecwid reports no payment time). Absent on entries written before it existed.
    #[serde(default)]
    pub paid_at: Option<DateTime<Utc>>,
    /// Refunds and cancellations of the posted order (R1–R6).
    #[serde(default, skip_serializing_if = "returns_empty")]
    pub returns: Returns,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub history: Vec<HistoryEvent>,
    /// Optimistic-concurrency version; the stored item has this version.
    pub version: u64,
}

impl LedgerEntry {
    fn new(key: &OrderKey, now: DateTime<Utc>) -> Self {
        Self {
            invoice_number: key.invoice_number(),
            key: key.clone(),
            state: OrderState::Queued,
            attempts: 0,
            lease_until: None,
            post_may_exist: false,
            sale_id: None,
            reason: None,
            last_error: None,
            total: None,
            lines: Vec::new(),
            paid_at: None,
            returns: Returns::default(),
            created_at: now,
            updated_at: now,
            history: Vec::new(),
            version: 0,
        }
    }

    /// Whether the order still holds web quantities that Lightspeed has not seen
    /// (paid online, not yet posted).
    pub fn is_pending_web_sale(&self) -> bool {
        matches!(
            self.state,
            OrderState::Queued | OrderState::Posting | OrderState::Parked
        ) && !self.lines.is_empty()
    }

    /// When the last claimed attempt ended (released, parked or skipped): the last moment
    /// its sale POST could have been sent. Falls back to the last update when the history
    /// does not tell (an expired lease, a trimmed history).
    pub fn last_attempt_end(&self) -> DateTime<Utc> {
        self.history
            .iter()
            .rposition(|h| h.state == OrderState::Posting)
            .and_then(|i| self.history.get(i + 1))
            .map_or(self.updated_at, |h| h.at)
    }

    fn step(&self, now: DateTime<Utc>, state: OrderState, detail: impl Into<String>) -> Self {
        let mut next = self.clone();
        next.state = state;
        next.updated_at = now;
        next.version = self.version + 1;
        next.history.push(HistoryEvent {
            at: now,
            state,
            detail: detail.into(),
        });
        if next.history.len() > HISTORY_LIMIT {
            let excess = next.history.len() - HISTORY_LIMIT;
            next.history.drain(..excess);
        }
        next
    }
}

fn returns_empty(r: &Returns) -> bool {
    *r == Returns::default()
}

/// What a claim attempt decided.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimDecision {
    /// Write `entry` with the version condition `expected_version` (None: must not exist),
    /// then work on the order under lease number `entry.attempts`.
    Claim {
        entry: Box<LedgerEntry>,
        expected_version: Option<u64>,
        /// A previous attempt may have created the sale: search Lightspeed first.
        search_first: bool,
    },
    /// The order is already a sale; acknowledge and stop.
    AlreadyPosted { sale_id: String },
    /// Another worker holds a live lease; look again after this long.
    Busy { retry_in: std::time::Duration },
    /// Parked orders wait for an operator's replay.
    Parked { reason: Reason },
}

/// Decides a claim on `existing` (None when the order has no ledger item yet), with no wait
/// before a search (see [`claim_after_search_delay`]).
pub fn claim(
    existing: Option<&LedgerEntry>,
    key: &OrderKey,
    now: DateTime<Utc>,
    lease: Duration,
) -> ClaimDecision {
    claim_after_search_delay(existing, key, now, lease, Duration::zero())
}

/// Decides a claim on `existing`. A claim that must search Lightspeed for an earlier sale
/// first waits until `search_delay` has passed since that sale's POST could last have been
/// sent, because the search is an index that may lag: after an expired lease, from the
/// lease's end (the holder renews its lease right before its POST, so the POST went out
/// before the lease ran out); after a released (or parked, then replayed) attempt, from the
/// end of that attempt ([`LedgerEntry::last_attempt_end`]). Until then the claim is
/// [`ClaimDecision::Busy`].
pub fn claim_after_search_delay(
    existing: Option<&LedgerEntry>,
    key: &OrderKey,
    now: DateTime<Utc>,
    lease: Duration,
    search_delay: Duration,
) -> ClaimDecision {
    let not_yet = |from: DateTime<Utc>| {
        let due = from + search_delay;
        (due > now).then(|| ClaimDecision::Busy {
            retry_in: (due - now).to_std().unwrap_or_default(),
        })
    };
    let take = |base: &LedgerEntry, expected: Option<u64>, search_first: bool, detail: &str| {
        let mut entry = base.step(now, OrderState::Posting, detail);
        entry.attempts = base.attempts + 1;
        entry.lease_until = Some(now + lease);
        entry.reason = None;
        entry.post_may_exist = search_first;
        ClaimDecision::Claim {
            entry: Box::new(entry),
            expected_version: expected,
            search_first,
        }
    };
    match existing {
        None => {
            let fresh = LedgerEntry::new(key, now);
            take(&fresh, None, false, "claimed")
        }
        Some(e) => match e.state {
            OrderState::Posted => ClaimDecision::AlreadyPosted {
                sale_id: e.sale_id.clone().unwrap_or_default(),
            },
            OrderState::Parked => ClaimDecision::Parked {
                reason: e.reason.clone().unwrap_or_else(|| {
                    Reason::new(ReasonCode::InvalidOrder, "parked without a reason")
                }),
            },
            OrderState::Queued | OrderState::Skipped => match e.post_may_exist {
                true => not_yet(e.last_attempt_end())
                    .unwrap_or_else(|| take(e, Some(e.version), true, "claimed")),
                false => take(e, Some(e.version), false, "claimed"),
            },
            OrderState::Posting => match e.lease_until {
                Some(until) if until > now => ClaimDecision::Busy {
                    retry_in: (until - now).to_std().unwrap_or_default(),
                },
                // The holder crashed or timed out, possibly after its POST landed.
                until => not_yet(until.unwrap_or(e.updated_at)).unwrap_or_else(|| {
                    take(e, Some(e.version), true, "took over an expired lease")
                }),
            },
        },
    }
}

/// How a claimed attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Posted {
        sale_id: String,
        adopted: bool,
    },
    Parked(Reason),
    Skipped(Reason),
    /// A retryable failure: back to QUEUED so the next delivery claims it again.
    Released {
        error: String,
        /// The failure happened while or after a sale POST was sent.
        post_may_exist: bool,
    },
}

/// Applies the outcome of the attempt that holds `claimed` (the entry as written by the
/// claim). The result is written with the condition `version == claimed.version`.
pub fn finish(claimed: &LedgerEntry, outcome: Outcome, now: DateTime<Utc>) -> LedgerEntry {
    match outcome {
        Outcome::Posted { sale_id, adopted } => {
            let detail = if adopted {
                format!("adopted existing Lightspeed sale {sale_id}")
            } else {
                format!("posted as Lightspeed sale {sale_id}")
            };
            let mut e = claimed.step(now, OrderState::Posted, detail);
            e.returns.tracked = true;
            e.sale_id = Some(sale_id);
            e.lease_until = None;
            e.post_may_exist = false;
            e.reason = None;
            e.last_error = None;
            e
        }
        Outcome::Parked(reason) => {
            let mut e = claimed.step(now, OrderState::Parked, reason.to_string());
            e.lease_until = None;
            e.reason = Some(reason);
            e
        }
        Outcome::Skipped(reason) => {
            let mut e = claimed.step(now, OrderState::Skipped, reason.to_string());
            e.lease_until = None;
            e.reason = Some(reason);
            e
        }
        Outcome::Released {
            error,
            post_may_exist,
        } => {
            let mut e = claimed.step(now, OrderState::Queued, format!("will retry: {error}"));
            e.lease_until = None;
            e.post_may_exist = claimed.post_may_exist || post_may_exist;
            e.last_error = Some(error);
            e
        }
    }
}

/// After the state was restored from a backup, an order that is not POSTED in the restored
/// ledger may have been posted after the backup was taken: its next claim must search
/// Lightspeed by invoice number first (and adopt what it finds). The entry to write, or None
/// when the order is POSTED or already marked.
pub fn mark_restored(entry: &LedgerEntry, now: DateTime<Utc>) -> Option<LedgerEntry> {
    if entry.state == OrderState::Posted || entry.post_may_exist {
        return None;
    }
    let mut next = entry.clone();
    next.post_may_exist = true;
    next.updated_at = now;
    next.version = entry.version + 1;
    next.history.push(HistoryEvent {
        at: now,
        state: entry.state,
        detail: "state restored from a backup: Lightspeed is searched before this order is posted"
            .into(),
    });
    if next.history.len() > HISTORY_LIMIT {
        let excess = next.history.len() - HISTORY_LIMIT;
        next.history.drain(..excess);
    }
    Some(next)
}

/// The queue's last delivery of an order failed with a retryable error: park it with that
/// error instead of leaving it to the dead-letter queue, so it has a status and can be
/// replayed. Only a released (QUEUED) or never-claimed order is parked; one that another
/// worker is posting, or that is already final, is left alone (None).
pub fn dead_letter(
    existing: Option<&LedgerEntry>,
    key: &OrderKey,
    receives: u32,
    last_error: &str,
    now: DateTime<Utc>,
) -> Option<(LedgerEntry, Option<u64>)> {
    let reason = Reason::new(
        ReasonCode::DeadLettered,
        format!(
            "order {}: gave up after {receives} deliveries; last error: {last_error}; replay it once the cause is fixed",
            key.order_id
        ),
    );
    let (base, expected) = match existing {
        None => (LedgerEntry::new(key, now), None),
        Some(e) if e.state == OrderState::Queued => (e.clone(), Some(e.version)),
        // A posted order's refund work that kept failing (a return pending, or the last
        // refund attempt failed): held, so it shows and alarms (unless another worker holds
        // its lease, or it is held already).
        Some(e)
            if e.state == OrderState::Posted
                && (e.returns.pending.is_some() || e.returns.last_error.is_some())
                && e.returns.held.is_none()
                && e.returns.lease_until.is_none_or(|until| until <= now) =>
        {
            let mut held = e.clone();
            held.version = e.version + 1;
            held.updated_at = now;
            held.returns.lease_until = None;
            held.returns.last_error = Some(last_error.to_string());
            held.returns.held = Some(reason.clone());
            held.history.push(HistoryEvent {
                at: now,
                state: OrderState::Posted,
                detail: format!("refund held: {reason}"),
            });
            return Some((held, Some(e.version)));
        }
        Some(_) => return None,
    };
    let mut parked = base.step(now, OrderState::Parked, reason.to_string());
    parked.lease_until = None;
    parked.last_error = Some(last_error.to_string());
    parked.reason = Some(reason);
    Some((parked, expected))
}

/// Operator replay: a PARKED or SKIPPED order goes back to QUEUED, and so does a POSTING
/// order whose lease ran out (its worker died and its message is gone, say to a DLQ); that
/// one keeps `post_may_exist`, so the next attempt searches before posting. Posted orders are
/// left alone (replay never duplicates a sale), and so are live POSTING and QUEUED ones.
pub fn requeue_for_replay(entry: &LedgerEntry, now: DateTime<Utc>) -> Option<LedgerEntry> {
    match entry.state {
        OrderState::Parked | OrderState::Skipped => {
            let mut e = entry.step(now, OrderState::Queued, "replay requested");
            e.reason = None;
            Some(e)
        }
        OrderState::Posting if entry.lease_until.is_none_or(|until| until <= now) => {
            let mut e = entry.step(
                now,
                OrderState::Queued,
                "replay requested after an expired lease",
            );
            e.lease_until = None;
            e.post_may_exist = true;
            Some(e)
        }
        _ => None,
    }
}

/// Records the order's lines and total once the order was fetched and mapped.
pub fn with_order_facts(
    claimed: &LedgerEntry,
    total: Decimal,
    lines: Vec<LedgerLine>,
) -> LedgerEntry {
    let mut e = claimed.clone();
    e.total = Some(total);
    e.lines = lines;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }
    fn key() -> OrderKey {
        OrderKey::new(StoreId::literal(1003), "K8XTQ")
    }
    fn claimed(
        existing: Option<&LedgerEntry>,
        now: DateTime<Utc>,
    ) -> (LedgerEntry, Option<u64>, bool) {
        match claim(existing, &key(), now, Duration::seconds(60)) {
            ClaimDecision::Claim {
                entry,
                expected_version,
                search_first,
            } => (*entry, expected_version, search_first),
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[test]
    fn first_claim_creates_a_posting_entry_with_a_lease() {
        let (e, expected, search) = claimed(None, t(0));
        assert_eq!(e.state, OrderState::Posting);
        assert_eq!(expected, None);
        assert!(!search);
        assert_eq!(e.attempts, 1);
        assert_eq!(e.version, 1);
        assert_eq!(e.lease_until, Some(t(60)));
        assert_eq!(e.invoice_number, "ECWID-1003-K8XTQ");
    }

    #[test]
    fn a_live_lease_is_busy_and_an_expired_one_is_taken_over_with_a_search() {
        let (e, _, _) = claimed(None, t(0));
        assert_eq!(
            claim(Some(&e), &key(), t(10), Duration::seconds(60)),
            ClaimDecision::Busy {
                retry_in: std::time::Duration::from_secs(50)
            }
        );
        let (e2, expected, search) = claimed(Some(&e), t(61));
        assert!(search, "a crash after POST must lead to a search first");
        assert_eq!(expected, Some(1));
        assert_eq!(e2.attempts, 2);
        assert_eq!(e2.version, 2);
    }

    #[test]
    fn a_search_waits_for_the_search_delay_after_the_last_possible_post() {
        let delay = Duration::seconds(90);
        let decide = |e: &LedgerEntry, now| {
            claim_after_search_delay(Some(e), &key(), now, Duration::seconds(60), delay)
        };
        // An expired lease (it ended at t(60)): no takeover before t(150).
        let (held, _, _) = claimed(None, t(0));
        assert_eq!(
            decide(&held, t(100)),
            ClaimDecision::Busy {
                retry_in: std::time::Duration::from_secs(50)
            }
        );
        match decide(&held, t(150)) {
            ClaimDecision::Claim { search_first, .. } => assert!(search_first),
            other => panic!("expected a takeover, got {other:?}"),
        }
        // A released attempt whose POST may exist: no claim before its release + 90 s.
        let released = finish(
            &held,
            Outcome::Released {
                error: "timeout".into(),
                post_may_exist: true,
            },
            t(20),
        );
        assert!(matches!(
            decide(&released, t(60)),
            ClaimDecision::Busy { .. }
        ));
        // Parked on its last delivery, replayed much later: the wait counts from the
        // attempt's end, not from the replay.
        let parked = released.step(t(30), OrderState::Parked, "dead-lettered");
        let replayed = requeue_for_replay(&parked, t(500)).unwrap();
        assert!(replayed.post_may_exist);
        assert!(matches!(
            decide(&replayed, t(501)),
            ClaimDecision::Claim {
                search_first: true,
                ..
            }
        ));
        let replayed_soon = requeue_for_replay(&parked, t(40)).unwrap();
        assert!(matches!(
            decide(&replayed_soon, t(41)),
            ClaimDecision::Busy { .. }
        ));
        assert!(matches!(
            decide(&released, t(110)),
            ClaimDecision::Claim {
                search_first: true,
                ..
            }
        ));
        // Without a possible earlier POST nothing waits.
        let clean = finish(
            &held,
            Outcome::Released {
                error: "503".into(),
                post_may_exist: false,
            },
            t(20),
        );
        assert!(matches!(
            decide(&clean, t(21)),
            ClaimDecision::Claim {
                search_first: false,
                ..
            }
        ));
    }

    #[test]
    fn posted_is_final_and_parked_waits_for_replay() {
        let (e, _, _) = claimed(None, t(0));
        let posted = finish(
            &e,
            Outcome::Posted {
                sale_id: "s1".into(),
                adopted: false,
            },
            t(1),
        );
        assert_eq!(posted.state, OrderState::Posted);
        assert_eq!(
            claim(Some(&posted), &key(), t(2), Duration::seconds(60)),
            ClaimDecision::AlreadyPosted {
                sale_id: "s1".into()
            }
        );
        assert!(requeue_for_replay(&posted, t(3)).is_none());
        // A live lease is left alone; an expired one is requeued with a search first.
        assert!(requeue_for_replay(&e, t(30)).is_none());
        let stranded = requeue_for_replay(&e, t(61)).unwrap();
        assert_eq!(stranded.state, OrderState::Queued);
        assert!(stranded.post_may_exist);

        let parked = finish(
            &e,
            Outcome::Parked(Reason::new(ReasonCode::UnknownSku, "SKU X")),
            t(1),
        );
        assert!(matches!(
            claim(Some(&parked), &key(), t(2), Duration::seconds(60)),
            ClaimDecision::Parked { reason } if reason.code == ReasonCode::UnknownSku
        ));
        let requeued = requeue_for_replay(&parked, t(3)).unwrap();
        assert_eq!(requeued.state, OrderState::Queued);
        assert_eq!(requeued.version, parked.version + 1);
        let (again, _, _) = claimed(Some(&requeued), t(4));
        assert_eq!(again.attempts, 2);
    }

    #[test]
    fn skipped_orders_can_be_claimed_again_when_paid_later() {
        let (e, _, _) = claimed(None, t(0));
        let skipped = finish(
            &e,
            Outcome::Skipped(Reason::new(ReasonCode::NotPaid, "AWAITING_PAYMENT")),
            t(1),
        );
        let (again, expected, search) = claimed(Some(&skipped), t(2));
        assert_eq!(expected, Some(skipped.version));
        assert!(!search);
        assert_eq!(again.state, OrderState::Posting);
    }

    #[test]
    fn a_release_after_an_unknown_post_outcome_forces_a_search_on_the_next_claim() {
        let (e, _, _) = claimed(None, t(0));
        let released = finish(
            &e,
            Outcome::Released {
                error: "timeout".into(),
                post_may_exist: true,
            },
            t(1),
        );
        assert_eq!(released.state, OrderState::Queued);
        let (_, _, search) = claimed(Some(&released), t(2));
        assert!(search);
        // A later release without a POST keeps the flag: the earlier POST may still exist.
        let (e3, _, _) = claimed(Some(&released), t(2));
        let released2 = finish(
            &e3,
            Outcome::Released {
                error: "429".into(),
                post_may_exist: false,
            },
            t(3),
        );
        assert!(released2.post_may_exist);
    }

    #[test]
    fn the_last_failed_delivery_parks_a_released_order_but_not_one_in_flight() {
        let (e, _, _) = claimed(None, t(0));
        let released = finish(
            &e,
            Outcome::Released {
                error: "HTTP 503".into(),
                post_may_exist: true,
            },
            t(1),
        );
        let (parked, expected) = dead_letter(Some(&released), &key(), 5, "HTTP 503", t(2)).unwrap();
        assert_eq!(expected, Some(released.version));
        assert_eq!(parked.state, OrderState::Parked);
        assert_eq!(
            parked.reason.as_ref().unwrap().code,
            ReasonCode::DeadLettered
        );
        assert!(
            parked
                .reason
                .as_ref()
                .unwrap()
                .message
                .contains("after 5 deliveries")
        );
        assert!(parked.post_may_exist, "a replay still searches first");
        let requeued = requeue_for_replay(&parked, t(3)).unwrap();
        let (_, _, search) = claimed(Some(&requeued), t(4));
        assert!(search);
        // In flight elsewhere, or final: left alone.
        assert!(dead_letter(Some(&e), &key(), 5, "x", t(2)).is_none());
        assert!(dead_letter(Some(&parked), &key(), 5, "x", t(2)).is_none());
        // Never claimed (the failure came before the claim): a new parked item.
        let (fresh, expected) = dead_letter(None, &key(), 5, "store down", t(2)).unwrap();
        assert_eq!(
            (fresh.state, expected, fresh.version),
            (OrderState::Parked, None, 1)
        );
    }

    #[test]
    fn history_is_bounded() {
        let (mut e, _, _) = claimed(None, t(0));
        for i in 0..200 {
            e = finish(
                &e,
                Outcome::Released {
                    error: format!("e{i}"),
                    post_may_exist: false,
                },
                t(i),
            );
        }
        assert_eq!(e.history.len(), HISTORY_LIMIT);
        assert!(e.history.last().unwrap().detail.contains("e199"));
    }

    #[test]
    fn codes_round_trip() {
        for s in OrderState::ALL {
            assert_eq!(OrderState::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            ReasonCode::parse("unknown_sku"),
            Some(ReasonCode::UnknownSku)
        );
        assert_eq!(
            serde_json::to_string(&ReasonCode::TotalsMismatch).unwrap(),
            "\"TOTALS_MISMATCH\""
        );
    }
}
