//! What a posted order has returned to Lightspeed (refunds and cancellations, rules R1–R6),
//! kept on the order's ledger item so each refund is posted at most once and at least once
//! (R4).
//!
//! ```text
//! POSTED ── claim_returns (lease) ──▶ begin_return (pending, written before any POST)
//!        ──▶ [return_started: the referenced return's id, written before completing it]
//!        ──▶ finish_returns: Done (a record per return) | Parked | Skipped | Released | Idle
//! ```
//! The order stays POSTED throughout; only its `returns` change, under the same
//! version-conditioned writes as the sale.

use super::{HistoryEvent, LedgerEntry, OrderState, Reason};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How a return reaches Lightspeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReturnKind {
    /// A referenced return of the sale's lines: stock goes back (R2).
    Restock,
    /// An unreferenced return on the refund product: money only (R3).
    MoneyOnly,
    /// An edit of the paid order removed or reduced lines: a referenced return of those
    /// units (R7).
    EditReturn,
    /// An edit of the paid order raised quantities: a sale of the added units (R7).
    EditSale,
}

impl ReturnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnKind::Restock => "restock",
            ReturnKind::MoneyOnly => "money only",
            ReturnKind::EditReturn => "edit: return",
            ReturnKind::EditSale => "edit: sale",
        }
    }

    /// Money given back for a refund (R2, R3), as opposed to an edit's adjustment.
    pub fn is_refund(self) -> bool {
        matches!(self, ReturnKind::Restock | ReturnKind::MoneyOnly)
    }
}

/// Units of one SKU an edit adjustment returns or sells (R7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditUnits {
    pub sku: String,
    pub product_id: String,
    /// Positive: units returned (an `EditReturn`) or sold (an `EditSale`).
    pub quantity: Decimal,
}

/// One return that reached Lightspeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnRecord {
    /// 1, 2, 3... in the order they were posted.
    pub seq: u32,
    pub kind: ReturnKind,
    /// The return sale's id in Lightspeed.
    pub sale_id: String,
    /// The money paid back, positive.
    pub amount: Decimal,
    /// Found in Lightspeed after an unknown outcome rather than posted by this attempt.
    #[serde(default)]
    pub adopted: bool,
    pub at: DateTime<Utc>,
    /// What it paid back, per payment type (positive amounts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<(String, Decimal)>,
}

/// The return being posted: its identity is fixed before anything is sent, so a retry
/// posts the same return or finds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingReturn {
    pub seq: u32,
    pub kind: ReturnKind,
    pub amount: Decimal,
    /// The deterministic invoice number (and source id) of the return.
    pub invoice_number: String,
    /// A referenced return's id once Lightspeed started it (written before completing it).
    #[serde(default)]
    pub return_id: Option<String>,
    /// A POST may have reached Lightspeed without us learning the outcome: look before
    /// posting again.
    #[serde(default)]
    pub may_exist: bool,
    /// What it pays back, per payment type (positive), fixed before it is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<(String, Decimal)>,
    /// An edit adjustment's units (R7); empty for refunds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<EditUnits>,
}

/// The returns of one order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Returns {
    /// The order was posted by a release that handles refunds. An order posted before may
    /// have had its refund handled by hand in Lightspeed: its refunds are held once for the
    /// operator (`POSTED_BEFORE_REFUNDS`) instead of being posted a second time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tracked: bool,
    /// An edit was settled by hand (a replay took the edited order as posted): refunds
    /// can no longer be computed from the sale, so they are held.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited_by_hand: bool,
    /// A refund held because of an edit was replayed: the operator posts this order's
    /// refunds by hand from now on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refunds_by_hand: bool,
    /// The sale's value as Lightspeed holds it, once a return was prepared: a cancellation
    /// or a refund without an amount asks for this much in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worth: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<ReturnRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingReturn>,
    /// While a worker settles refunds: its lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime<Utc>>,
    /// When the last attempt ended (a search after an unknown outcome waits from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_end: Option<DateTime<Utc>>,
    /// A refund that could not be posted faithfully (R6) or was not to be posted (R5):
    /// nothing more is done until `els replay` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// An edit of the posted order held for the operator (R7): the order as edited. A
    /// replay takes it as the order's new baseline (the difference was settled by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<EditedOrder>,
}

/// The total and lines of an order edited after it was posted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditedOrder {
    pub total: Decimal,
    pub lines: Vec<super::LedgerLine>,
}

/// What changed in a posted order that is still PAID (R7): `None` when its lines (SKU and
/// quantity, in any order) and total are what was posted, else the difference, readable.
pub fn edit_difference(
    posted_total: Option<Decimal>,
    posted: &[super::LedgerLine],
    total: Decimal,
    now: &[super::LedgerLine],
) -> Option<String> {
    use std::collections::BTreeMap;
    fn tally(lines: &[super::LedgerLine]) -> BTreeMap<&str, Decimal> {
        let mut m: BTreeMap<&str, Decimal> = BTreeMap::new();
        for l in lines {
            *m.entry(l.sku.as_str()).or_default() += l.quantity;
        }
        m
    }
    let (before, after) = (tally(posted), tally(now));
    let mut changes = Vec::new();
    for sku in before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (b, a) = (
            before.get(sku).copied().unwrap_or_default(),
            after.get(sku).copied().unwrap_or_default(),
        );
        if a != b {
            changes.push(format!("{sku} {b} -> {a}"));
        }
    }
    let total_changed = posted_total.is_some_and(|t| t != total);
    if changes.is_empty() && !total_changed {
        return None;
    }
    if total_changed {
        changes.push(format!(
            "total {} -> {total}",
            posted_total.unwrap_or_default()
        ));
    }
    Some(changes.join(", "))
}

impl Returns {
    /// The money returned so far for refunds (edit adjustments are not refunds).
    pub fn returned(&self) -> Decimal {
        self.done
            .iter()
            .filter(|r| r.kind.is_refund())
            .map(|r| r.amount)
            .sum()
    }

    /// Whether an edit of the paid order was posted as an adjustment (R7).
    pub fn edited_after_posting(&self) -> bool {
        self.done.iter().any(|r| !r.kind.is_refund())
    }

    /// Whether a referenced return already put the sale's lines back.
    pub fn restocked(&self) -> bool {
        self.done.iter().any(|r| r.kind == ReturnKind::Restock)
    }

    /// What the returns paid back so far, per payment type.
    pub fn refunded_by_type(&self) -> Vec<(String, Decimal)> {
        self.done
            .iter()
            .filter(|r| r.kind != ReturnKind::EditSale)
            .flat_map(|r| r.payments.iter().cloned())
            .collect()
    }

    /// The sequence number of the next return.
    pub fn next_seq(&self) -> u32 {
        self.pending
            .as_ref()
            .map_or(self.done.len() as u32 + 1, |p| p.seq)
    }
}

/// The invoice number (and source id) of an order's return number `seq`. It does not
/// contain the sale's own invoice number, so a search for the sale never finds a return.
pub fn return_invoice_number(sale_invoice: &str, seq: u32) -> String {
    match sale_invoice.strip_prefix("ECWID-") {
        Some(rest) => format!("ECWIDR-{rest}-{seq}"),
        None => format!("R-{sale_invoice}-{seq}"),
    }
}

/// What claiming an order's refund work decided.
#[derive(Debug, Clone, PartialEq)]
pub enum ReturnClaim {
    /// Write `entry` under the condition `version == expected`, then settle the refunds.
    Claim {
        entry: Box<LedgerEntry>,
        expected: u64,
    },
    /// Another worker holds the lease, or a search must wait; look again after this long.
    Busy { retry_in: std::time::Duration },
    /// A refund is held (parked or skipped) until replayed.
    Held { reason: Reason },
    /// The order is not posted: there is no sale to return against.
    NotPosted,
}

/// Claims the refund work of a POSTED order. A pending return that may have reached
/// Lightspeed is looked for only after `search_delay` since the attempt that sent it ended.
pub fn claim_returns(
    entry: &LedgerEntry,
    now: DateTime<Utc>,
    lease: Duration,
    search_delay: Duration,
) -> ReturnClaim {
    if entry.state != OrderState::Posted {
        return ReturnClaim::NotPosted;
    }
    let r = &entry.returns;
    if let Some(reason) = &r.held {
        return ReturnClaim::Held {
            reason: reason.clone(),
        };
    }
    let busy = |until: DateTime<Utc>| ReturnClaim::Busy {
        retry_in: (until - now).to_std().unwrap_or_default(),
    };
    if let Some(until) = r.lease_until
        && until > now
    {
        return busy(until);
    }
    let expired_lease = r.lease_until.is_some();
    let may_exist =
        r.pending.as_ref().is_some_and(|p| p.may_exist) || (expired_lease && r.pending.is_some());
    if may_exist {
        let from = r
            .lease_until
            .or(r.last_attempt_end)
            .unwrap_or(entry.updated_at);
        if from + search_delay > now {
            return busy(from + search_delay);
        }
    }
    let mut next = touch(entry, now);
    next.returns.lease_until = Some(now + lease);
    if let Some(p) = &mut next.returns.pending {
        p.may_exist = may_exist;
    }
    ReturnClaim::Claim {
        entry: Box::new(next),
        expected: entry.version,
    }
}

/// Fixes the identity of the return about to be posted (before anything is sent).
pub fn begin_return(
    claimed: &LedgerEntry,
    pending: PendingReturn,
    now: DateTime<Utc>,
) -> LedgerEntry {
    let mut next = touch(claimed, now);
    next.returns.pending = Some(pending);
    next
}

/// Records the id of the referenced return Lightspeed started, before it is completed.
pub fn return_started(claimed: &LedgerEntry, return_id: &str, now: DateTime<Utc>) -> LedgerEntry {
    let mut next = touch(claimed, now);
    if let Some(p) = &mut next.returns.pending {
        p.return_id = Some(return_id.to_string());
    }
    next
}

/// How an attempt at an order's refunds ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ReturnOutcome {
    /// The pending return is in Lightspeed as `sale_id`.
    Done { sale_id: String, adopted: bool },
    /// Nothing (more) to return.
    Idle,
    /// Held until replayed: could not be posted faithfully (R6).
    Parked(Reason),
    /// Held until replayed: refunds are not to be posted (R5).
    Skipped(Reason),
    /// A retryable failure; `may_exist`: it happened while or after a POST was sent.
    Released { error: String, may_exist: bool },
}

/// Applies the outcome to the claimed entry (written under `version == claimed.version`).
pub fn finish_returns(
    claimed: &LedgerEntry,
    outcome: ReturnOutcome,
    now: DateTime<Utc>,
) -> LedgerEntry {
    let mut next = touch(claimed, now);
    let r = &mut next.returns;
    r.lease_until = None;
    r.last_attempt_end = Some(now);
    let detail = match outcome {
        ReturnOutcome::Done { sale_id, adopted } => {
            let Some(p) = r.pending.take() else {
                return next;
            };
            r.last_error = None;
            let detail = format!(
                "return {} ({}, {}) {} Lightspeed sale {sale_id}",
                p.seq,
                p.kind.as_str(),
                p.amount,
                if adopted { "found as" } else { "posted as" }
            );
            r.done.push(ReturnRecord {
                seq: p.seq,
                kind: p.kind,
                sale_id,
                amount: p.amount,
                adopted,
                at: now,
                payments: p.payments,
            });
            // An edit adjustment moves the order's baseline by what it posted.
            let sign = match p.kind {
                ReturnKind::EditReturn => Decimal::NEGATIVE_ONE,
                ReturnKind::EditSale => Decimal::ONE,
                _ => Decimal::ZERO,
            };
            if !sign.is_zero() {
                next.total = next.total.map(|t| t + sign * p.amount);
                for u in &p.units {
                    match next.lines.iter_mut().find(|l| l.sku == u.sku) {
                        Some(l) => l.quantity += sign * u.quantity,
                        None => next.lines.push(super::LedgerLine {
                            sku: u.sku.clone(),
                            quantity: sign * u.quantity,
                        }),
                    }
                }
                next.lines.retain(|l| !l.quantity.is_zero());
            }
            detail
        }
        ReturnOutcome::Idle => {
            r.last_error = None;
            return next;
        }
        ReturnOutcome::Parked(reason) | ReturnOutcome::Skipped(reason) => {
            if r.pending
                .as_ref()
                .is_some_and(|p| !p.may_exist && p.return_id.is_none())
            {
                // Nothing was sent for it: the replay decides afresh.
                r.pending = None;
            }
            let detail = format!("refund held: {reason}");
            r.held = Some(reason);
            detail
        }
        ReturnOutcome::Released { error, may_exist } => {
            if let Some(p) = &mut r.pending {
                p.may_exist |= may_exist;
            }
            let detail = format!("refund will retry: {error}");
            r.last_error = Some(error);
            detail
        }
    };
    push_history(&mut next, now, detail);
    next
}

/// `els replay` on a held refund: the next delivery decides it again.
pub fn release_held_returns(entry: &LedgerEntry, now: DateTime<Utc>) -> Option<LedgerEntry> {
    if entry.state != OrderState::Posted || entry.returns.held.is_none() {
        return None;
    }
    let mut next = touch(entry, now);
    let was = next.returns.held.take();
    next.returns.tracked = true;
    if let Some(held) = was
        && held.code == super::ReasonCode::RefundNotPostable
        && (next.returns.edited_after_posting() || next.returns.edited_by_hand)
    {
        next.returns.refunds_by_hand = true;
        push_history(
            &mut next,
            now,
            "replay: this order's refunds after its edit are posted by hand".to_string(),
        );
        return Some(next);
    }
    if let Some(edited) = next.returns.edited.take() {
        next.returns.edited_by_hand = true;
        // The operator settled the edit by hand: the edited order is the baseline now.
        next.total = Some(edited.total);
        next.lines = edited.lines;
        push_history(
            &mut next,
            now,
            "replay: the order as edited in Ecwid is taken as posted".to_string(),
        );
        return Some(next);
    }
    push_history(&mut next, now, "refund replay requested".to_string());
    Some(next)
}

/// The entry with its version bumped and its update time set.
fn touch(entry: &LedgerEntry, now: DateTime<Utc>) -> LedgerEntry {
    let mut next = entry.clone();
    next.version = entry.version + 1;
    next.updated_at = now;
    next
}

fn push_history(entry: &mut LedgerEntry, now: DateTime<Utc>, detail: String) {
    entry.history.push(HistoryEvent {
        at: now,
        state: entry.state,
        detail,
    });
    if entry.history.len() > super::HISTORY_LIMIT {
        let excess = entry.history.len() - super::HISTORY_LIMIT;
        entry.history.drain(..excess);
    }
}
