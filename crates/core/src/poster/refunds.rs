//! Refunds and cancellations of posted orders become Lightspeed returns, each at most once
//! and at least once (rules R2–R6, invariant 9).
//!
//! A delivery for a POSTED order fetches the order; when Ecwid says it was cancelled or
//! refunded beyond what the ledger has returned, the order's refund work is claimed under a
//! lease, the next return's identity (sequence number, kind, amount, invoice number) is
//! written before anything is sent, and the return is posted:
//! - **restock** (referenced, R2): the return is started on the sale, its id written to the
//!   ledger, then completed on that id, so a retry completes the same return or finds it
//!   closed;
//! - **money only** (unreferenced, R3): a sale POST of negative lines on the refund product,
//!   found by its invoice number after an unknown outcome, like a sale.

use super::{PostOutcome, RetryLater, SalePoster};
use crate::connection::Connection;
use crate::ecwid::EcwidOrder;
use crate::error::{ApiError, StoreError};
use crate::ledger::{
    self, LedgerEntry, OrderKey, PendingReturn, Reason, ReasonCode, ReturnClaim, ReturnKind,
    ReturnOutcome, Returns,
};
use crate::lightspeed::LsSale;
use crate::money::{self, returns::ReturnHeader};
use crate::ports::{Clock, ConnectionStore, EcwidApi, LedgerStore, LightspeedApi, LinkStore};
use chrono::SecondsFormat;
use rust_decimal::Decimal;

/// Payment statuses that ask for money back.
pub const CANCELLED: &str = "CANCELLED";
pub const REFUNDED: &str = "REFUNDED";
pub const PARTIALLY_REFUNDED: &str = "PARTIALLY_REFUNDED";

/// What Ecwid asks of a posted order's returns, before the sale is read.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundTarget {
    /// Nothing (more) to return.
    Nothing,
    /// Money back until `refunded` in all is returned (`None`: the whole sale), with the
    /// lines put back when `restock`.
    Return {
        refunded: Option<Decimal>,
        restock: bool,
    },
    /// Held until replayed.
    Hold(Reason),
}

/// Decides from the fetched order and what was returned so far (R2, R3, R5). Pure.
pub fn refund_target(order: &EcwidOrder, returns: &Returns, conn: &Connection) -> RefundTarget {
    let status = order.payment_status.as_deref().unwrap_or_default();
    // A refunded order that says 0 refunded says nothing (a processor that does not fill
    // it): the status decides, as for an absent amount.
    let amount = order.refunded_amount.filter(|a| !a.is_zero());
    let (refunded, restock) = match status {
        CANCELLED => (None, true),
        REFUNDED => (amount, conn.settings.restock_refunds),
        PARTIALLY_REFUNDED => match amount {
            Some(amount) => (Some(amount), false),
            None => {
                return RefundTarget::Hold(Reason::new(
                    ReasonCode::RefundAmountUnknown,
                    format!(
                        "order {}: partially refunded in Ecwid, and the order does not say how much (no refundedAmount); post the return by hand in Lightspeed, or replay once Ecwid shows the amount",
                        order.id
                    ),
                ));
            }
        },
        _ => return RefundTarget::Nothing,
    };
    let more_money = refunded
        .or(returns.worth)
        .is_none_or(|r| r > returns.returned());
    let more_stock = restock && !returns.restocked();
    if !more_money && !more_stock {
        return RefundTarget::Nothing;
    }
    if returns.refunds_by_hand {
        return RefundTarget::Nothing;
    }
    if returns.edited_after_posting() || returns.edited_by_hand {
        return RefundTarget::Hold(Reason::new(
            ReasonCode::RefundNotPostable,
            format!(
                "order {}: {status} in Ecwid after an edit of the paid order was posted as an adjustment; post this refund by hand in Lightspeed (how Ecwid counts a refund against an edited total is not documented)",
                order.id
            ),
        ));
    }
    if !returns.tracked {
        return RefundTarget::Hold(Reason::new(
            ReasonCode::PostedBeforeRefunds,
            format!(
                "order {}: {status} in Ecwid, and it was posted before this release posted refunds; if the refund was not handled by hand in Lightspeed, els replay --order {} posts it",
                order.id, order.id
            ),
        ));
    }
    if !conn.settings.post_refunds {
        return RefundTarget::Hold(Reason::new(
            ReasonCode::RefundsOff,
            format!(
                "order {}: {status} in Ecwid, and \"Post Ecwid refunds to Lightspeed\" is off for store {}; replay it after turning the setting on",
                order.id, conn.store_id
            ),
        ));
    }
    RefundTarget::Return { refunded, restock }
}

/// Whether the order asks for another return than those in the ledger: an edit of a paid
/// order not yet adjusted, or a refund not yet returned. Pure; checked before the lease is
/// taken again for another pass, so a finished order is not claimed once more (a write, a
/// sale read and a write saved per refund, and no lease left behind by a worker killed
/// between them).
fn more_to_return(order: &EcwidOrder, entry: &LedgerEntry, conn: &Connection) -> bool {
    if order.is_paid() {
        edited_since_posted(order, entry)
    } else {
        refund_target(order, &entry.returns, conn) != RefundTarget::Nothing
    }
}

/// Whether the order's lines or total differ from the ledger's baseline (as posted, moved
/// by the adjustments since). Pure.
fn edited_since_posted(order: &EcwidOrder, entry: &LedgerEntry) -> bool {
    let now = money::ledger_lines(order);
    ledger::edit_difference(entry.total, &entry.lines, order.total, &now).is_some()
}

/// The next return, from the target and the sale as Lightspeed has it. `Ok(None)`: nothing
/// to post. Pure.
pub fn next_return(
    target: &RefundTarget,
    returns: &Returns,
    original: &LsSale,
    sale_invoice: &str,
) -> Result<Option<PendingReturn>, Reason> {
    let RefundTarget::Return { refunded, restock } = target else {
        return Ok(None);
    };
    let worth = original.total();
    let returned = returns.returned();
    let amount = refunded.unwrap_or(worth) - returned;
    let kind = if *restock && !returns.restocked() {
        ReturnKind::Restock
    } else {
        ReturnKind::MoneyOnly
    };
    if amount > worth - returned {
        return Err(Reason::new(
            ReasonCode::RefundNotPostable,
            format!(
                "Ecwid has refunded {} in all, more than the Lightspeed sale {} is worth ({worth}) minus what was returned ({returned})",
                refunded.unwrap_or(worth),
                original.id
            ),
        ));
    }
    if amount < Decimal::ZERO || (kind == ReturnKind::MoneyOnly && amount.is_zero()) {
        // A refund that shrank (or nothing new) changes nothing that was returned.
        return Ok(None);
    }
    let seq = returns.next_seq();
    Ok(Some(PendingReturn {
        seq,
        kind,
        amount,
        invoice_number: ledger::return_invoice_number(sale_invoice, seq),
        return_id: None,
        may_exist: false,
        payments: Vec::new(),
        units: Vec::new(),
    }))
}

/// The next adjustment for an edit of a paid posted order (R7), from its baseline (the
/// lines and total as posted, moved by earlier adjustments), the order now, the sale as
/// Lightspeed has it and the products of the changed SKUs. Removed or reduced units come
/// back first (a referenced return), then added units are sold, each at the price the sale
/// charged; the change of the items must equal the change of the order's total to the cent.
/// `Ok(None)`: nothing changed. `Err`: the edit cannot be expressed exactly (held).
pub fn next_edit(
    entry: &LedgerEntry,
    order: &EcwidOrder,
    original: &LsSale,
    products: &std::collections::HashMap<String, String>,
) -> Result<Option<PendingReturn>, Reason> {
    let now = money::ledger_lines(order);
    let diff = ledger::edit_difference(entry.total, &entry.lines, order.total, &now);
    let Some(diff) = diff else {
        return Ok(None);
    };
    let cannot = |why: String| {
        Reason::new(
            ReasonCode::EditedAfterPosting,
            format!(
                "order {}: edited in Ecwid after it was posted as Lightspeed sale {} ({diff}); {why}; post the difference in Lightspeed by hand, then els replay --order {} to take the edited order as posted",
                order.id, original.id, order.id
            ),
        )
    };
    let mut by_sku: std::collections::BTreeMap<&str, Decimal> = Default::default();
    for l in &entry.lines {
        *by_sku.entry(l.sku.as_str()).or_default() -= l.quantity;
    }
    for l in &now {
        *by_sku.entry(l.sku.as_str()).or_default() += l.quantity;
    }
    let (mut back, mut more, mut value) = (Vec::new(), Vec::new(), Decimal::ZERO);
    for (sku, delta) in by_sku.into_iter().filter(|(_, d)| !d.is_zero()) {
        let Some(product_id) = products.get(sku) else {
            return Err(cannot(format!("SKU {sku} has no Lightspeed product link")));
        };
        let Some(line) = money::returns::sold_at(original, product_id) else {
            return Err(cannot(format!(
                "SKU {sku} is not on the sale, so its price is not known"
            )));
        };
        value += delta * (line.price + line.tax);
        let units = ledger::EditUnits {
            sku: sku.to_string(),
            product_id: product_id.clone(),
            quantity: delta.abs(),
        };
        if delta < Decimal::ZERO {
            back.push(units)
        } else {
            more.push(units)
        }
    }
    let total_change = order.total - entry.total.unwrap_or(order.total);
    if value != total_change {
        return Err(cannot(format!(
            "the items changed by {value} at the prices sold but the total by {total_change}"
        )));
    }
    if !back.is_empty()
        && entry
            .returns
            .done
            .iter()
            .any(|r| r.kind == ReturnKind::EditSale)
    {
        return Err(cannot(
            "units added by an earlier adjustment are on another Lightspeed sale".to_string(),
        ));
    }
    let (kind, units) = if back.is_empty() {
        (ReturnKind::EditSale, more)
    } else {
        (ReturnKind::EditReturn, back)
    };
    let amount = units
        .iter()
        .map(|u| {
            let l = money::returns::sold_at(original, &u.product_id).expect("checked above");
            u.quantity * (l.price + l.tax)
        })
        .sum();
    let seq = entry.returns.next_seq();
    Ok(Some(PendingReturn {
        seq,
        kind,
        amount,
        invoice_number: ledger::return_invoice_number(&entry.invoice_number, seq),
        return_id: None,
        may_exist: false,
        payments: Vec::new(),
        units,
    }))
}

/// How one step of the refund work ended, before it is recorded.
type Step = Result<ReturnOutcome, ReturnOutcome>;

impl<S, E, L, C> SalePoster<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + LinkStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    /// A delivery for a POSTED order: posts what Ecwid refunded since (or `posted` when
    /// there is nothing to return).
    pub(super) async fn settle_refunds(
        &self,
        conn: &Connection,
        key: &OrderKey,
        posted: PostOutcome,
    ) -> Result<PostOutcome, RetryLater> {
        let order = match self.ecwid.get_order(conn, &key.order_id).await {
            Ok(o) if o.id == key.order_id => o,
            Ok(_) | Err(ApiError::NotFound { .. }) => return Ok(posted),
            Err(e) => return Err(self.refund_retry(key, "fetching the order from Ecwid", &e)),
        };
        let entry = self.load_posted(key).await?;
        let Some(entry) = entry else {
            return Ok(posted);
        };
        // A pending return is settled whatever Ecwid says now (a lagging read, a status set
        // back): its outcome may be unknown, and only the claim holder may resolve it.
        if order.is_paid() && entry.returns.pending.is_none() {
            // An edit since it was posted is posted as adjustments below (R7).
            if let Some(early) = self.unedited(key, &order, &entry, &posted)? {
                return Ok(early);
            }
        } else if entry.returns.pending.is_none() && !more_to_return(&order, &entry, conn) {
            return Ok(posted);
        }
        let search_delay = chrono::Duration::from_std(self.config.search_delay)
            .unwrap_or(chrono::Duration::seconds(90));
        let mut claimed = match ledger::claim_returns(
            &entry,
            self.clock.now(),
            self.lease(),
            search_delay,
        ) {
            ReturnClaim::Claim {
                entry: next,
                expected,
            } => {
                self.write(key, &next, expected).await?;
                *next
            }
            ReturnClaim::Busy { retry_in } => {
                return Err(RetryLater {
                    delay: retry_in.max(std::time::Duration::from_millis(100)),
                    reason: format!(
                        "order {key}: its refunds are being posted by another worker, or wait for Lightspeed's search"
                    ),
                });
            }
            ReturnClaim::Held { reason } => return Ok(PostOutcome::RefundHeld(reason)),
            ReturnClaim::NotPosted => return Ok(posted),
        };
        // Read the order again under the claim: a read taken before it may predate what
        // another worker just posted (an edit can go either way).
        let order = match self.ecwid.get_order(conn, &key.order_id).await {
            Ok(o) if o.id == key.order_id => o,
            other => {
                let error = match other {
                    Err(e) => format!("fetching the order from Ecwid: {e}"),
                    Ok(_) => "Ecwid returned another order".to_string(),
                };
                let next = ledger::finish_returns(
                    &claimed,
                    ReturnOutcome::Released {
                        error: error.clone(),
                        may_exist: false,
                    },
                    self.clock.now(),
                );
                self.write(key, &next, claimed.version).await?;
                return Err(RetryLater {
                    delay: self.config.retry_base,
                    reason: format!("order {key}: {error}"),
                });
            }
        };
        let mut return_ids = Vec::new();
        // Each pass posts one return; a cancellation after partial refunds may need two.
        for pass in 0..4 {
            let step = self.one_return(conn, &order, &mut claimed).await;
            let (outcome, stop) = match step {
                Ok(ReturnOutcome::Idle) => (ReturnOutcome::Idle, true),
                Ok(done) => (done, false),
                Err(other) => (other, true),
            };
            if let ReturnOutcome::Done { sale_id, .. } = &outcome {
                return_ids.push(sale_id.clone());
            }
            let mut next = ledger::finish_returns(&claimed, outcome.clone(), self.clock.now());
            if let ReturnOutcome::Parked(_) = &outcome
                && order.is_paid()
            {
                // A replay takes the order as edited for posted (settled by hand).
                next.returns.edited = Some(ledger::EditedOrder {
                    total: order.total,
                    lines: money::ledger_lines(&order),
                });
            }
            self.write(key, &next, claimed.version).await?;
            claimed = next;
            match outcome {
                ReturnOutcome::Released { error, may_exist } => {
                    let mut delay = self.config.retry_base;
                    if may_exist {
                        delay = delay.max(self.config.search_delay);
                    }
                    tracing::warn!(store_id = key.store_id.get(), order_id = %key.order_id, %error, ?delay, "refund will be retried");
                    return Err(RetryLater {
                        delay,
                        reason: error,
                    });
                }
                ReturnOutcome::Parked(reason) | ReturnOutcome::Skipped(reason) => {
                    tracing::warn!(store_id = key.store_id.get(), order_id = %key.order_id, code = %reason.code, reason = %reason.message, "refund held");
                    return Ok(PostOutcome::RefundHeld(reason));
                }
                _ => {}
            }
            if stop || pass == 3 || !more_to_return(&order, &claimed, conn) {
                break;
            }
            // Take the lease again for the next pass (the record released it).
            let again =
                ledger::claim_returns(&claimed, self.clock.now(), self.lease(), search_delay);
            let ReturnClaim::Claim {
                entry: next,
                expected,
            } = again
            else {
                break;
            };
            self.write(key, &next, expected).await?;
            claimed = *next;
        }
        let sale_id = claimed.sale_id.clone().unwrap_or_default();
        if return_ids.is_empty() {
            return Ok(posted);
        }
        tracing::info!(store_id = key.store_id.get(), order_id = %key.order_id, %sale_id, returns = return_ids.len(), "refund posted as a Lightspeed return");
        Ok(PostOutcome::Refunded {
            sale_id,
            return_ids,
        })
    }

    /// A posted order that is still PAID: `Some` answer when there is nothing to adjust
    /// (unchanged, held, no baseline), `None` when it was edited since it was posted (R7).
    fn unedited(
        &self,
        key: &OrderKey,
        order: &EcwidOrder,
        entry: &LedgerEntry,
        posted: &PostOutcome,
    ) -> Result<Option<PostOutcome>, RetryLater> {
        if let Some(held) = &entry.returns.held {
            return Ok(Some(PostOutcome::RefundHeld(held.clone())));
        }
        if entry.lines.is_empty() && entry.total.is_none() {
            return Ok(Some(posted.clone()));
        }
        if !edited_since_posted(order, entry) {
            return Ok(Some(posted.clone()));
        }
        tracing::info!(store_id = key.store_id.get(), order_id = %key.order_id, "posted order edited in Ecwid");
        Ok(None)
    }

    /// Decides and posts the next return under the claim. `Ok`: Done or Idle; `Err`: the
    /// outcome that ends this delivery (held or retry).
    async fn one_return(
        &self,
        conn: &Connection,
        order: &EcwidOrder,
        claimed: &mut LedgerEntry,
    ) -> Step {
        let key = claimed.key.clone();
        let sale_id = claimed.sale_id.clone().unwrap_or_default();
        let original = match self.lightspeed.get_sale(conn, &sale_id).await {
            Ok(Some(s)) => s,
            // A sale just posted may not be readable yet (the read lags like the search);
            // retried, and held after the queue's last delivery (DEAD_LETTERED).
            Ok(None) => {
                return Err(ReturnOutcome::Released {
                    error: format!("Lightspeed does not show sale {sale_id} (yet)"),
                    may_exist: false,
                });
            }
            Err(e) => return Err(self.refund_failure(&key, "reading the posted sale", e, false)),
        };
        if original.is_voided() {
            return Err(ReturnOutcome::Parked(not_postable(
                &key,
                format!(
                    "the Lightspeed sale {sale_id} was voided in the POS; nothing is returned against it"
                ),
            )));
        }
        let mut pending = match claimed.returns.pending.clone() {
            Some(p) => p,
            None if order.is_paid() && !claimed.returns.tracked => {
                // Posted before this release, whose edits were ignored: the difference may
                // have been settled by hand already.
                return Err(ReturnOutcome::Parked(Reason::new(
                    ReasonCode::PostedBeforeRefunds,
                    format!(
                        "order {}: edited in Ecwid, and it was posted before this release posted edits; if the difference was not settled by hand in Lightspeed, post it by hand, then els replay --order {} takes the edited order as posted",
                        order.id, order.id
                    ),
                )));
            }
            None if order.is_paid() && claimed.returns.done.iter().any(|r| r.kind.is_refund()) => {
                return Err(ReturnOutcome::Parked(Reason::new(
                    ReasonCode::EditedAfterPosting,
                    format!(
                        "order {}: edited in Ecwid after a refund was posted as a return; post the difference by hand, then els replay --order {} takes the edited order as posted",
                        order.id, order.id
                    ),
                )));
            }
            None if order.is_paid() => {
                let products = self.products_of_changed(&key, claimed, order).await?;
                match next_edit(claimed, order, &original, &products) {
                    Ok(Some(p)) => {
                        let next = ledger::begin_return(claimed, p.clone(), self.clock.now());
                        self.write_step(&key, &next, claimed.version).await?;
                        *claimed = next;
                        p
                    }
                    Ok(None) => return Ok(ReturnOutcome::Idle),
                    Err(reason) => return Err(ReturnOutcome::Parked(reason)),
                }
            }
            None => {
                let target = refund_target(order, &claimed.returns, conn);
                if let RefundTarget::Hold(reason) = target {
                    return Err(match reason.code {
                        ReasonCode::RefundsOff => ReturnOutcome::Skipped(reason),
                        _ => ReturnOutcome::Parked(reason),
                    });
                }
                match next_return(
                    &target,
                    &claimed.returns,
                    &original,
                    &claimed.invoice_number,
                ) {
                    Ok(Some(p)) => {
                        let mut next = ledger::begin_return(claimed, p.clone(), self.clock.now());
                        next.returns.worth = Some(original.total());
                        self.write_step(&key, &next, claimed.version).await?;
                        *claimed = next;
                        p
                    }
                    Ok(None) => return Ok(ReturnOutcome::Idle),
                    Err(reason) => {
                        return Err(ReturnOutcome::Parked(not_postable(&key, reason.message)));
                    }
                }
            }
        };
        // After a restore from a backup, a money-only return of this number may exist
        // though the restored ledger does not know it: look first.
        let look = pending.may_exist
            || (conn.restored_at.is_some()
                && matches!(pending.kind, ReturnKind::MoneyOnly | ReturnKind::EditSale));
        // A partial edit return could be accepted twice: after a restore, search for it too.
        if conn.restored_at.is_some()
            && pending.kind == ReturnKind::EditReturn
            && pending.return_id.is_none()
            && let Ok(found) = self
                .lightspeed
                .find_sales_by_invoice(conn, &pending.invoice_number)
                .await
            && let Some(sale) = found.into_iter().next()
        {
            return Ok(ReturnOutcome::Done {
                sale_id: sale.id,
                adopted: true,
            });
        }
        if look && let Some(found) = self.find_return(conn, &pending).await? {
            return Ok(found);
        }
        let setup = match self.sale_setup(conn).await {
            Ok(s) => s,
            Err(e) => {
                return Err(self.refund_failure(&key, "reading the retailer's setup", e, false));
            }
        };
        let head = ReturnHeader {
            register_id: original.register_id.as_deref().unwrap_or(&conn.register_id),
            user_id: &conn.user_id,
            customer_id: None,
            date: self.clock.now().to_rfc3339_opts(SecondsFormat::Secs, true),
            invoice_number: pending.invoice_number.clone(),
            note: format!(
                "Ecwid order {}: {} {} of {}",
                order.id,
                pending.kind.as_str(),
                pending.seq,
                order.payment_status.as_deref().unwrap_or_default()
            ),
            scale: money::minor_unit_scale(setup.currency.as_deref()),
            refunded_by_type: claimed.returns.refunded_by_type(),
        };
        let built = match pending.kind {
            ReturnKind::Restock => money::returns::restock_return(&original, pending.amount, &head),
            ReturnKind::EditReturn => money::returns::edit_return(&original, &pending.units, &head),
            ReturnKind::EditSale => {
                money::returns::edit_sale(&original, &pending.units, &head, &conn.payment_type_id)
            }
            ReturnKind::MoneyOnly => match &conn.refund_product_id {
                Some(product) => {
                    money::returns::money_only_return(&original, pending.amount, product, &head)
                }
                None => Err(Reason::new(
                    ReasonCode::RefundNotPostable,
                    "no refund product is set for this connection (els settings --refund-product SKU: a Lightspeed product that does not track stock)",
                )),
            },
        };
        let mut draft = match built {
            Ok(d) => d,
            Err(reason) => return Err(ReturnOutcome::Parked(not_postable(&key, reason.message))),
        };
        // The payments are fixed with the lease renewal, before the POST.
        if let Some(p) = &mut claimed.returns.pending {
            p.payments = draft
                .register_sale_payments
                .iter()
                .map(|p| (p.retailer_payment_type_id.clone(), p.amount.abs()))
                .collect();
        }
        self.renew_returns(&key, claimed).await?;
        match pending.kind {
            ReturnKind::MoneyOnly | ReturnKind::EditSale
                if !self
                    .deadline
                    .allows(self.clock.now(), self.config.post_time_needed) =>
            {
                Err(ReturnOutcome::Released {
                    error: "too little time left in this invocation to post the return".into(),
                    may_exist: false,
                })
            }
            ReturnKind::MoneyOnly | ReturnKind::EditSale => {
                match self.lightspeed.post_sale(conn, &draft).await {
                    Ok(posted) => Ok(ReturnOutcome::Done {
                        sale_id: posted.id,
                        adopted: false,
                    }),
                    Err(e) => {
                        Err(self.refund_failure(&key, "posting the money-only return", e, true))
                    }
                }
            }
            ReturnKind::Restock | ReturnKind::EditReturn => {
                // A return started earlier: closed is done; parked is completed again (an
                // update of that one sale); voided or gone moved nothing, so start another.
                let mut started_id = pending.return_id.clone();
                if let Some(id) = &started_id {
                    match self.lightspeed.get_sale(conn, id).await {
                        Ok(Some(sale)) if sale.is_closed() => {
                            return Ok(ReturnOutcome::Done {
                                sale_id: sale.id,
                                adopted: true,
                            });
                        }
                        Ok(Some(sale)) if !sale.is_voided() => {}
                        Ok(_) => started_id = None,
                        Err(e) => {
                            return Err(self.refund_failure_plain(
                                "reading the started return",
                                e,
                                true,
                            ));
                        }
                    }
                }
                let return_id = match started_id {
                    Some(id) => id,
                    None => {
                        if !self
                            .deadline
                            .allows(self.clock.now(), self.config.post_time_needed)
                        {
                            return Err(ReturnOutcome::Released {
                                error:
                                    "too little time left in this invocation to start the return"
                                        .into(),
                                may_exist: false,
                            });
                        }
                        let started = match self.lightspeed.start_return(conn, &original.id).await {
                            Ok(s) => s,
                            Err(e) => {
                                return Err(self.refund_failure(
                                    &key,
                                    "starting the return",
                                    e,
                                    false,
                                ));
                            }
                        };
                        let next = ledger::return_started(claimed, &started.id, self.clock.now());
                        self.write_step(&key, &next, claimed.version).await?;
                        *claimed = next;
                        pending.return_id = Some(started.id.clone());
                        started.id
                    }
                };
                draft.return_for = Some(original.id.clone());
                match self
                    .lightspeed
                    .complete_return(conn, &return_id, &draft)
                    .await
                {
                    Ok(_) => Ok(ReturnOutcome::Done {
                        sale_id: return_id,
                        adopted: false,
                    }),
                    // A closed sale cannot be updated: an earlier completion whose answer
                    // was lost may have closed it. Look before calling it a refusal.
                    Err(ApiError::Rejected {
                        status: 409,
                        detail,
                    }) => match self.lightspeed.get_sale(conn, &return_id).await {
                        Ok(Some(sale)) if sale.is_closed() => Ok(ReturnOutcome::Done {
                            sale_id: sale.id,
                            adopted: true,
                        }),
                        Ok(_) => Err(self.refund_failure(
                            &key,
                            "completing the return",
                            ApiError::Rejected {
                                status: 409,
                                detail,
                            },
                            false,
                        )),
                        Err(e) => Err(self.refund_failure_plain("looking for the return", e, true)),
                    },
                    Err(e) => Err(self.refund_failure(&key, "completing the return", e, true)),
                }
            }
        }
    }

    /// The Lightspeed products of the SKUs an edit changed, from the product links.
    async fn products_of_changed(
        &self,
        key: &OrderKey,
        entry: &LedgerEntry,
        order: &EcwidOrder,
    ) -> Result<std::collections::HashMap<String, String>, ReturnOutcome> {
        let mut out = std::collections::HashMap::new();
        let skus = entry
            .lines
            .iter()
            .map(|l| l.sku.clone())
            .chain(money::ledger_lines(order).into_iter().map(|l| l.sku));
        for sku in skus {
            let Ok(parsed) = crate::ids::Sku::parse(&sku) else {
                continue;
            };
            match self.store.get_product_link(key.store_id, &parsed).await {
                Ok(Some(link)) => {
                    out.insert(sku, link.lightspeed_product_id);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(ReturnOutcome::Released {
                        error: format!("reading the product links: {e}"),
                        may_exist: false,
                    });
                }
            }
        }
        Ok(out)
    }

    /// After an unknown outcome: the pending return, if it reached Lightspeed.
    async fn find_return(
        &self,
        conn: &Connection,
        pending: &PendingReturn,
    ) -> Result<Option<ReturnOutcome>, ReturnOutcome> {
        match (&pending.kind, &pending.return_id) {
            // A started return is looked at where it is completed.
            (ReturnKind::Restock | ReturnKind::EditReturn, _) => Ok(None),
            (ReturnKind::MoneyOnly | ReturnKind::EditSale, _) => match self
                .lightspeed
                .find_sales_by_invoice(conn, &pending.invoice_number)
                .await
            {
                Ok(found) => Ok(found.into_iter().next().map(|s| ReturnOutcome::Done {
                    sale_id: s.id,
                    adopted: true,
                })),
                Err(e) => {
                    Err(self.refund_failure_plain("searching Lightspeed for the return", e, true))
                }
            },
        }
    }

    /// Extends the refund lease right before a POST; a conflict means another worker took
    /// the work over, and nothing is sent.
    async fn renew_returns(
        &self,
        key: &OrderKey,
        claimed: &mut LedgerEntry,
    ) -> Result<(), ReturnOutcome> {
        let mut next = claimed.clone();
        next.version += 1;
        next.updated_at = self.clock.now();
        next.returns.lease_until = Some(self.clock.now() + self.lease());
        self.write_step(key, &next, claimed.version).await?;
        *claimed = next;
        Ok(())
    }

    async fn load_posted(&self, key: &OrderKey) -> Result<Option<LedgerEntry>, RetryLater> {
        self.store
            .load_order(key)
            .await
            .map_err(|e| self.store_retry("loading the ledger", e))
    }

    /// A conditional write outside a step: a conflict asks for a redelivery.
    async fn write(
        &self,
        key: &OrderKey,
        next: &LedgerEntry,
        expected: u64,
    ) -> Result<(), RetryLater> {
        match self.store.save_order(next, Some(expected)).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(RetryLater {
                delay: self.config.retry_base,
                reason: format!("order {key}: another worker changed its refunds first"),
            }),
            Err(e) => Err(self.store_retry("recording the refund", e)),
        }
    }

    /// A conditional write inside a step: any failure ends the attempt before a POST.
    async fn write_step(
        &self,
        key: &OrderKey,
        next: &LedgerEntry,
        expected: u64,
    ) -> Result<(), ReturnOutcome> {
        self.write(key, next, expected)
            .await
            .map_err(|r| ReturnOutcome::Released {
                error: r.reason,
                may_exist: false,
            })
    }

    fn refund_retry(&self, key: &OrderKey, doing: &str, e: &ApiError) -> RetryLater {
        let delay = match e {
            ApiError::RateLimited { retry_after } => retry_after.unwrap_or(self.config.retry_base),
            _ => self.config.retry_base,
        };
        RetryLater {
            delay,
            reason: format!("order {key}: {doing}: {e}"),
        }
    }

    fn refund_failure(
        &self,
        key: &OrderKey,
        doing: &str,
        e: ApiError,
        sent: bool,
    ) -> ReturnOutcome {
        match e {
            ApiError::Rejected { status, detail } => ReturnOutcome::Parked(not_postable(
                key,
                format!("Lightspeed refused the return ({status}) while {doing}: {detail}"),
            )),
            // Possibly a read that lags a write: retried, held after the last delivery.
            ApiError::NotFound { detail } => ReturnOutcome::Released {
                error: format!("Lightspeed answered 404 while {doing}: {detail}"),
                may_exist: sent,
            },
            ApiError::Unauthorized { status, detail } => ReturnOutcome::Parked(Reason::new(
                ReasonCode::Unauthorized,
                format!(
                    "order {}: Lightspeed refused our token ({status}) while {doing}: {detail}",
                    key.order_id
                ),
            )),
            other => self.refund_failure_plain(doing, other, sent),
        }
    }

    fn refund_failure_plain(&self, doing: &str, e: ApiError, sent: bool) -> ReturnOutcome {
        let may_exist = sent && !matches!(e, ApiError::RateLimited { .. });
        ReturnOutcome::Released {
            error: format!("{doing}: {e}"),
            may_exist,
        }
    }
}

fn not_postable(key: &OrderKey, message: impl std::fmt::Display) -> Reason {
    Reason::new(
        ReasonCode::RefundNotPostable,
        format!("order {}: {message}", key.order_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeEcwid, FakeLightspeed, STORE, TestClock, World, connection};
    use crate::memory::MemoryStore;
    use crate::ports::OrderMessage;
    use crate::poster::PosterConfig;
    use std::time::Duration;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// Two mugs at 12 plus 10% GST: 26.40.
    fn order(status: &str, refunded: Option<&str>) -> EcwidOrder {
        let mut o: EcwidOrder = serde_json::from_value(serde_json::json!({
            "id": "K1", "total": 26.4, "pricesIncludeTax": false, "paymentStatus": status,
            "items": [{"sku": "MUG", "quantity": 2, "price": 12, "tax": 2.4,
                       "taxes": [{"name": "GST", "value": 10, "total": 2.4, "includeInPrice": false}]}]
        }))
        .unwrap();
        o.refunded_amount = refunded.map(d);
        o
    }

    fn poster(w: &World) -> SalePoster<MemoryStore, FakeEcwid, FakeLightspeed, TestClock> {
        SalePoster::new(
            w.store.clone(),
            w.ecwid.clone(),
            w.lightspeed.clone(),
            w.clock.clone(),
            PosterConfig::default(),
        )
    }

    fn message(n: u32) -> OrderMessage {
        OrderMessage::from_webhook(STORE, "K1", format!("ev-{n}"))
    }

    /// A world where K1 is posted as `sale-1`.
    async fn posted(
        conn: Connection,
    ) -> (
        World,
        SalePoster<MemoryStore, FakeEcwid, FakeLightspeed, TestClock>,
    ) {
        let w = World::new(conn).await;
        w.lightspeed.add_product("ls-mug", "MUG", true);
        w.ecwid.add_order(order("PAID", None));
        let p = poster(&w);
        assert!(matches!(
            p.post_paid_order(&message(0)).await,
            Ok(PostOutcome::Posted { .. })
        ));
        (w, p)
    }

    async fn ledger(w: &World) -> LedgerEntry {
        w.store
            .load_order(&OrderKey::new(STORE, "K1"))
            .await
            .unwrap()
            .unwrap()
    }

    /// What `els replay` does to a held order: its held returns released, saved; the entry.
    async fn replay(w: &World) -> LedgerEntry {
        let e = ledger(w).await;
        let released = ledger::release_held_returns(&e, w.clock.now()).unwrap();
        w.store
            .save_order(&released, Some(e.version))
            .await
            .unwrap();
        released
    }

    #[tokio::test]
    async fn a_full_refund_is_one_referenced_return_of_every_line_and_a_repeat_adds_none() {
        let (w, p) = posted(connection()).await;
        w.ecwid.add_order(order("REFUNDED", Some("26.4")));
        let (reads, version) = (w.lightspeed.calls().len(), ledger(&w).await.version);
        let out = p.post_paid_order(&message(1)).await;
        let sale_reads = w.lightspeed.calls()[reads..]
            .iter()
            .filter(|c| **c == "get_sale")
            .count();
        assert_eq!(sale_reads, 1, "no second pass once the refund is returned");
        assert_eq!(
            ledger(&w).await.version,
            version + 5,
            "claim, return begun, lease renewed with the payments, return started, return recorded: no lease taken again"
        );
        assert_eq!(
            out,
            Ok(PostOutcome::Refunded {
                sale_id: "sale-1".into(),
                return_ids: vec!["sale-2".into()]
            })
        );
        let sales = w.lightspeed.sales();
        assert_eq!(sales.len(), 2);
        let ret = &sales[1].1;
        assert_eq!(ret.return_for.as_deref(), Some("sale-1"));
        assert_eq!(ret.status, "CLOSED");
        assert_eq!(ret.register_sale_products[0].product_id, "ls-mug");
        assert_eq!(ret.register_sale_products[0].quantity, d("-2"));
        assert_eq!(ret.total(), d("-26.40"));
        assert_eq!(ret.payments_total(), d("-26.40"));
        let e = ledger(&w).await;
        assert_eq!(e.returns.done.len(), 1);
        assert_eq!(e.returns.returned(), d("26.40"));
        assert!(e.returns.lease_until.is_none() && e.returns.pending.is_none());
        for n in 2..5 {
            assert_eq!(
                p.post_paid_order(&message(n)).await,
                Ok(PostOutcome::AlreadyPosted {
                    sale_id: "sale-1".into()
                })
            );
        }
        assert_eq!(
            w.lightspeed.sales().len(),
            2,
            "the same refund never returns twice"
        );
    }

    #[tokio::test]
    async fn two_partial_refunds_then_a_full_one_sum_exactly_to_the_sale() {
        let mut conn = connection();
        conn.refund_product_id = Some("ls-refund".into());
        let (w, p) = posted(conn).await;
        for (n, (status, amount)) in [
            ("PARTIALLY_REFUNDED", "5"),
            ("PARTIALLY_REFUNDED", "12.01"),
            ("REFUNDED", "26.4"),
        ]
        .into_iter()
        .enumerate()
        {
            w.ecwid.add_order(order(status, Some(amount)));
            assert!(matches!(
                p.post_paid_order(&message(n as u32 + 1)).await,
                Ok(PostOutcome::Refunded { .. })
            ));
        }
        let sales = w.lightspeed.sales();
        assert_eq!(sales.len(), 4);
        let totals: Vec<Decimal> = sales[1..].iter().map(|(_, s)| s.total()).collect();
        assert_eq!(totals, vec![d("-5.00"), d("-7.01"), d("-14.39")]);
        assert_eq!(sales[1].1.register_sale_products[0].product_id, "ls-refund");
        assert_eq!(sales[1].1.return_for, None, "money only: unreferenced");
        assert_eq!(sales[3].1.return_for.as_deref(), Some("sale-1"));
        let mugs: Decimal = sales[3]
            .1
            .register_sale_products
            .iter()
            .map(|l| l.quantity)
            .sum();
        assert_eq!(mugs, d("-2"), "the full refund puts both mugs back");
        assert_eq!(sales[1].1.invoice_number, "ECWIDR-1003-K1-1");
        assert_eq!(sales[2].1.invoice_number, "ECWIDR-1003-K1-2");
    }

    #[tokio::test]
    async fn a_lost_answer_is_found_by_its_invoice_number_not_posted_again() {
        let mut conn = connection();
        conn.settings.restock_refunds = false;
        conn.refund_product_id = Some("ls-refund".into());
        let (w, p) = posted(conn).await;
        w.ecwid.add_order(order("REFUNDED", Some("26.4")));
        w.lightspeed.lose_next_sale_answer();
        let retry = p.post_paid_order(&message(1)).await.unwrap_err();
        assert!(
            retry.delay >= PosterConfig::default().search_delay,
            "{retry:?}"
        );
        assert_eq!(w.lightspeed.sales().len(), 2);
        // Too early: the search may not show it yet.
        assert!(p.post_paid_order(&message(2)).await.is_err());
        w.clock.advance(Duration::from_secs(120));
        let out = p.post_paid_order(&message(3)).await;
        assert_eq!(
            out,
            Ok(PostOutcome::Refunded {
                sale_id: "sale-1".into(),
                return_ids: vec!["sale-2".into()]
            })
        );
        assert_eq!(w.lightspeed.sales().len(), 2, "found, not posted again");
        assert!(ledger(&w).await.returns.done[0].adopted);
    }

    #[tokio::test]
    async fn refunds_that_cannot_be_posted_are_held_with_a_reason() {
        // Money only without a refund product.
        let mut conn = connection();
        conn.settings.restock_refunds = false;
        let (w, p) = posted(conn).await;
        w.ecwid.add_order(order("REFUNDED", Some("26.4")));
        let Ok(PostOutcome::RefundHeld(reason)) = p.post_paid_order(&message(1)).await else {
            panic!("held");
        };
        assert_eq!(reason.code, ReasonCode::RefundNotPostable);
        assert!(reason.message.contains("refund product"), "{reason}");
        assert_eq!(w.lightspeed.sales().len(), 1);
        // Held: later deliveries change nothing until replayed.
        assert!(matches!(
            p.post_paid_order(&message(2)).await,
            Ok(PostOutcome::RefundHeld(_))
        ));
        replay(&w).await;
        assert!(matches!(
            p.post_paid_order(&message(3)).await,
            Ok(PostOutcome::RefundHeld(_))
        ));

        // A partial refund whose amount Ecwid does not give.
        let (w, p) = posted(connection()).await;
        w.ecwid.add_order(order("PARTIALLY_REFUNDED", None));
        let Ok(PostOutcome::RefundHeld(reason)) = p.post_paid_order(&message(1)).await else {
            panic!("held");
        };
        assert_eq!(reason.code, ReasonCode::RefundAmountUnknown);

        // More refunded than the sale is worth.
        let (w, p) = posted(connection()).await;
        w.ecwid.add_order(order("PARTIALLY_REFUNDED", Some("30")));
        let Ok(PostOutcome::RefundHeld(reason)) = p.post_paid_order(&message(1)).await else {
            panic!("held");
        };
        assert_eq!(reason.code, ReasonCode::RefundNotPostable);
        assert_eq!(w.lightspeed.sales().len(), 1);
    }

    #[tokio::test]
    async fn with_refunds_off_a_refund_is_skipped_and_posted_after_a_replay_with_it_on() {
        let mut conn = connection();
        conn.settings.post_refunds = false;
        let (w, p) = posted(conn.clone()).await;
        w.ecwid.add_order(order("CANCELLED", None));
        let Ok(PostOutcome::RefundHeld(reason)) = p.post_paid_order(&message(1)).await else {
            panic!("held");
        };
        assert_eq!(reason.code, ReasonCode::RefundsOff);
        assert_eq!(w.lightspeed.sales().len(), 1);
        conn.settings.post_refunds = true;
        conn.version = 1;
        w.store.put_connection(&conn, Some(1)).await.unwrap();
        replay(&w).await;
        assert!(matches!(
            p.post_paid_order(&message(2)).await,
            Ok(PostOutcome::Refunded { .. })
        ));
        assert_eq!(w.lightspeed.sales()[1].1.total(), d("-26.40"));
    }

    #[tokio::test]
    async fn edits_of_a_paid_posted_order_are_posted_once_as_adjustments() {
        let (w, p) = posted(connection()).await;
        // Unchanged: nothing to do.
        assert!(matches!(
            p.post_paid_order(&message(1)).await,
            Ok(PostOutcome::AlreadyPosted { .. })
        ));
        // A quantity lowered to 1: one mug back, by a referenced return.
        let mut edited = order("PAID", None);
        edited.items[0].quantity = d("1");
        edited.total = d("13.2");
        w.ecwid.add_order(edited.clone());
        let Ok(PostOutcome::Refunded { return_ids, .. }) = p.post_paid_order(&message(2)).await
        else {
            panic!("adjusted");
        };
        assert_eq!(return_ids, vec!["sale-2".to_string()]);
        let sales = w.lightspeed.sales();
        assert_eq!(sales[1].1.return_for.as_deref(), Some("sale-1"));
        assert_eq!(sales[1].1.total(), d("-13.20"));
        for n in 3..5 {
            assert!(matches!(
                p.post_paid_order(&message(n)).await,
                Ok(PostOutcome::AlreadyPosted { .. })
            ));
        }
        assert_eq!(w.lightspeed.sales().len(), 2, "posted once");
        let e = ledger(&w).await;
        assert_eq!(e.total, Some(d("13.20")));
        assert_eq!(e.lines[0].quantity, d("1"));

        // Raised to 3: two mugs sold at the price of the sale.
        edited.items[0].quantity = d("3");
        edited.total = d("39.6");
        w.ecwid.add_order(edited.clone());
        assert!(matches!(
            p.post_paid_order(&message(5)).await,
            Ok(PostOutcome::Refunded { .. })
        ));
        let sales = w.lightspeed.sales();
        assert_eq!(sales.len(), 3);
        let more = &sales[2].1;
        assert_eq!(more.register_sale_products[0].quantity, d("2"));
        assert_eq!(more.total(), d("26.40"));
        assert_eq!(more.payments_total(), d("26.40"));
        assert_eq!(more.return_for, None);
        assert!(matches!(
            p.post_paid_order(&message(6)).await,
            Ok(PostOutcome::AlreadyPosted { .. })
        ));
        // Lowered again: the added mugs are on another sale, so it is held.
        edited.items[0].quantity = d("2");
        edited.total = d("26.4");
        w.ecwid.add_order(edited);
        let Ok(PostOutcome::RefundHeld(reason)) = p.post_paid_order(&message(7)).await else {
            panic!("held");
        };
        assert_eq!(reason.code, ReasonCode::EditedAfterPosting);
        assert_eq!(w.lightspeed.sales().len(), 3);
    }

    #[tokio::test]
    async fn an_edit_that_cannot_be_expressed_is_held_with_the_difference_until_replayed() {
        let (w, p) = posted(connection()).await;
        // The total changed without the items (a new shipping price, say).
        let mut edited = order("PAID", None);
        edited.total = d("30");
        w.ecwid.add_order(edited);
        let Ok(PostOutcome::RefundHeld(reason)) = p.post_paid_order(&message(2)).await else {
            panic!("held");
        };
        assert_eq!(reason.code, ReasonCode::EditedAfterPosting);
        assert!(reason.message.contains("total 26.4 -> 30"), "{reason}");
        assert!(matches!(
            p.post_paid_order(&message(3)).await,
            Ok(PostOutcome::RefundHeld(_))
        ));
        assert_eq!(w.lightspeed.sales().len(), 1, "nothing posted on its own");
        let released = replay(&w).await;
        assert_eq!(released.total, Some(d("30")));
        assert!(matches!(
            p.post_paid_order(&message(4)).await,
            Ok(PostOutcome::AlreadyPosted { .. })
        ));
    }

    #[tokio::test]
    async fn a_refund_after_an_edit_settled_by_hand_is_held_then_left_to_the_operator() {
        let (w, p) = posted(connection()).await;
        let mut edited = order("PAID", None);
        edited.total = d("30");
        w.ecwid.add_order(edited);
        assert!(matches!(
            p.post_paid_order(&message(1)).await,
            Ok(PostOutcome::RefundHeld(_))
        ));
        replay(&w).await;
        let mut cancelled = order("CANCELLED", None);
        cancelled.total = d("30");
        w.ecwid.add_order(cancelled);
        let Ok(PostOutcome::RefundHeld(reason)) = p.post_paid_order(&message(2)).await else {
            panic!("held");
        };
        assert_eq!(reason.code, ReasonCode::RefundNotPostable);
        replay(&w).await;
        assert!(matches!(
            p.post_paid_order(&message(3)).await,
            Ok(PostOutcome::AlreadyPosted { .. })
        ));
        assert_eq!(w.lightspeed.sales().len(), 1, "nothing posted on its own");
    }

    #[tokio::test]
    async fn an_edit_of_an_order_posted_before_this_release_is_held_not_posted() {
        let (w, p) = posted(connection()).await;
        let mut e = ledger(&w).await;
        e.returns.tracked = false;
        e.version += 1;
        w.store.save_order(&e, Some(e.version - 1)).await.unwrap();
        let mut edited = order("PAID", None);
        edited.items[0].quantity = d("3");
        edited.total = d("39.6");
        w.ecwid.add_order(edited);
        let Ok(PostOutcome::RefundHeld(reason)) = p.post_paid_order(&message(2)).await else {
            panic!("held");
        };
        assert_eq!(reason.code, ReasonCode::PostedBeforeRefunds);
        assert_eq!(w.lightspeed.sales().len(), 1);
        let released = replay(&w).await;
        assert_eq!(
            released.total,
            Some(d("39.6")),
            "replay takes the edited order"
        );
        assert!(matches!(
            p.post_paid_order(&message(3)).await,
            Ok(PostOutcome::AlreadyPosted { .. })
        ));
    }

    #[tokio::test]
    async fn a_cancellation_after_a_lost_sale_answer_adopts_the_sale_and_returns_it() {
        let w = World::new(connection()).await;
        w.lightspeed.add_product("ls-mug", "MUG", true);
        w.ecwid.add_order(order("PAID", None));
        let p = poster(&w);
        w.lightspeed.lose_next_sale_answer();
        assert!(p.post_paid_order(&message(0)).await.is_err());
        w.ecwid.add_order(order("CANCELLED", None));
        w.clock.advance(Duration::from_secs(120));
        assert_eq!(
            p.post_paid_order(&message(1)).await,
            Ok(PostOutcome::Refunded {
                sale_id: "sale-1".into(),
                return_ids: vec!["sale-2".into()]
            })
        );
        let e = ledger(&w).await;
        assert_eq!(e.state, crate::ledger::OrderState::Posted);
        assert_eq!(e.returns.returned(), d("26.40"));
        assert_eq!(w.lightspeed.sales().len(), 2);
        // Fully returned: later deliveries do nothing, not even a claim.
        let version = e.version;
        assert!(matches!(
            p.post_paid_order(&message(2)).await,
            Ok(PostOutcome::AlreadyPosted { .. })
        ));
        assert_eq!(ledger(&w).await.version, version);
    }

    #[tokio::test]
    async fn an_order_cancelled_before_it_was_posted_is_skipped_for_good() {
        let w = World::new(connection()).await;
        w.lightspeed.add_product("ls-mug", "MUG", true);
        w.ecwid.add_order(order("CANCELLED", None));
        let p = poster(&w);
        for n in 0..3 {
            let Ok(PostOutcome::Skipped(reason)) = p.post_paid_order(&message(n)).await else {
                panic!("skipped");
            };
            assert_eq!(reason.code, ReasonCode::RefundedBeforePosting);
        }
        assert!(w.lightspeed.sales().is_empty());
    }
}
