//! The chaos suite's refunds (issue #15): once the orders are posted, a seeded 20% of them
//! are refunded in Ecwid, half partially (some twice) and half fully (some after a partial
//! refund, the rest), and Ecwid's `order.updated` webhooks go through the same edge as the
//! PAID ones: duplicated, shuffled, some lost (the order sweep must find those), some whose
//! first re-fetch lags, while the sandbox faults the Lightspeed routes (returns started then
//! dropped, reads and searches failing, 429s, dropped completions) and workers are killed at
//! random moments.
//!
//! Pass, for every order: each refund is posted exactly once (the ledger's returns sum to
//! Ecwid's `refundedAmount`, nothing pending or held), Lightspeed's closed returns of the sale
//! (referenced) plus its money-only return sales (`ECWIDR-{store}-{order}-{n}`) sum to minus
//! the refunded amount, the sale plus its returns equals what the order is still worth (its
//! value as posted, gift card included, less `refundedAmount`), to the cent, and no return
//! exists twice for one (order, n).

use crate::chaos::{ChaosQueue, ChaosReport, ChaosSettings, WorkStats, json_decimal, sale_total};
use els_core::StateStore;
use els_core::ids::StoreId;
use els_core::ledger::{OrderKey, OrderState, ReturnKind, return_invoice_number};
use els_core::sweep::OrderSweep;
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_sandbox::Sandbox;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Mixed into the suite's seed for the gift cards, the refunds and the random kills.
pub const REFUND_SEED_SALT: u64 = 0x5EF0_0D15_0000_0015;

/// How a picked order is refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundPlan {
    /// One partial refund: PARTIALLY_REFUNDED.
    Partial,
    /// Two partial refunds, one after the other: PARTIALLY_REFUNDED.
    TwoPartials,
    /// The whole total at once: REFUNDED.
    Full,
    /// A partial refund, then the rest: REFUNDED.
    PartialThenRest,
}

/// One picked order and its refunds, in Ecwid's order.
#[derive(Debug, Clone)]
pub struct PlannedRefund {
    pub order_id: String,
    pub plan: RefundPlan,
    pub amounts: Vec<Decimal>,
}

/// What the refund phase did and found.
#[derive(Debug, Default)]
pub struct RefundReport {
    /// Orders refunded, by plan.
    pub orders: usize,
    pub partial: usize,
    pub two_partials: usize,
    pub full: usize,
    pub partial_then_rest: usize,
    /// Refunds made in Ecwid (an order refunded twice counts twice).
    pub ecwid_refunds: usize,
    /// `order.updated` webhooks sent (copies included), refunds whose webhook was lost, and
    /// refunds whose first re-fetch lagged.
    pub webhooks: u64,
    pub lost_webhooks: usize,
    pub lagged: usize,
    /// Posted orders refunded since that the order sweep enqueued.
    pub swept: u64,
    /// Deliveries answered with posted returns, with a held refund; workers killed.
    pub refunded_deliveries: u64,
    pub held_deliveries: u64,
    pub kills: u64,
    /// Kills landed within this long after a delivery started.
    pub kill_window: Duration,
    /// Returns in the ledgers: posted, found after an unknown outcome (adopted), by kind.
    pub posted: usize,
    pub adopted: usize,
    pub restock: usize,
    pub money_only: usize,
    /// Orders with a held refund, a pending return, or a refund lease left with a return
    /// pending, at the end.
    pub held: usize,
    pub pending: usize,
    pub leases_left: usize,
    /// Orders whose refund lease was left, live or expired, with nothing pending (a worker
    /// killed after claiming and before deciding what to return; a refund that comes
    /// later waits for the lease to run out and claims over it): reported, not a failure.
    pub stale_leases: usize,
    /// Orders whose ledger returns do not sum to Ecwid's refundedAmount.
    pub wrong_ledger: usize,
    /// Orders whose Lightspeed returns do not sum to minus the refunded amount, or whose
    /// sale plus returns is not the order's worth less the refunded amount.
    pub wrong_lightspeed: usize,
    pub wrong_worth: usize,
    /// Ledger returns whose Lightspeed sale is missing, not closed or of another amount.
    pub wrong_records: usize,
    /// (order, n) with more than one return sale in Lightspeed.
    pub duplicate_returns: usize,
    /// Returns left parked or voided in Lightspeed (a start whose answer was lost): not
    /// money, reported only.
    pub parked_returns: usize,
    pub elapsed: Duration,
    /// The first problems found, for the failure message.
    pub problems: Vec<String>,
}

impl RefundReport {
    pub fn summary(&self) -> String {
        format!(
            "refunds[{:.1}s]: orders={} (partial={} two_partials={} full={} partial_then_rest={}) ecwid_refunds={} webhooks={} lost_webhooks={} lagged={} swept={} refunded_deliveries={} held_deliveries={} kills={} (within {:?}) | returns posted={} adopted={} (restock={} money_only={}) held={} pending={} leases_left={} stale_leases={} parked_returns={} | wrong_ledger={} wrong_lightspeed={} wrong_worth={} wrong_records={} duplicate_returns={}",
            self.elapsed.as_secs_f64(),
            self.orders,
            self.partial,
            self.two_partials,
            self.full,
            self.partial_then_rest,
            self.ecwid_refunds,
            self.webhooks,
            self.lost_webhooks,
            self.lagged,
            self.swept,
            self.refunded_deliveries,
            self.held_deliveries,
            self.kills,
            self.kill_window,
            self.posted,
            self.adopted,
            self.restock,
            self.money_only,
            self.held,
            self.pending,
            self.leases_left,
            self.stale_leases,
            self.parked_returns,
            self.wrong_ledger,
            self.wrong_lightspeed,
            self.wrong_worth,
            self.wrong_records,
            self.duplicate_returns,
        )
    }

    fn problem(&mut self, text: String) {
        eprintln!("chaos refunds: {text}");
        if self.problems.len() < 20 {
            self.problems.push(text);
        }
    }
}

fn cents(d: Decimal) -> i64 {
    i64::try_from((d * Decimal::from(100)).trunc()).expect("cents")
}

/// A refund in cents within `lo..=hi`, the edges more often than their share.
fn amount_between(rng: &mut StdRng, lo: i64, hi: i64) -> i64 {
    match rng.random_range(0..20) {
        0..=2 => lo,
        3..=5 => hi,
        _ => rng.random_range(lo..=hi),
    }
}

/// Picks `rate` of the orders (seeded) and their refunds: the first half partially (a third
/// of those twice), the rest fully (a quarter of those after a partial refund).
pub fn plan_refunds(
    sandbox: &Sandbox,
    orders: &[(String, Decimal)],
    rate: f64,
    rng: &mut StdRng,
) -> Vec<PlannedRefund> {
    let count = (orders.len() as f64 * rate).round() as usize;
    let mut picked: Vec<usize> = (0..orders.len()).collect();
    picked.shuffle(rng);
    picked.truncate(count);
    let partly = count / 2;
    picked
        .into_iter()
        .enumerate()
        .map(|(i, idx)| {
            let order_id = orders[idx].0.clone();
            let order = sandbox.ecwid_order(&order_id).expect("placed order");
            // What Ecwid can refund: the total (a gift card's part is not refunded).
            let total = cents(json_decimal(&order["total"]));
            assert!(total >= 3, "order {order_id}: total {total} cents");
            let (plan, amounts) = if i < partly {
                if rng.random_bool(1.0 / 3.0) {
                    let first = amount_between(rng, 1, total - 2);
                    let second = amount_between(rng, 1, total - first - 1);
                    (RefundPlan::TwoPartials, vec![first, second])
                } else {
                    (RefundPlan::Partial, vec![amount_between(rng, 1, total - 1)])
                }
            } else if rng.random_bool(0.25) {
                let first = amount_between(rng, 1, total - 1);
                (RefundPlan::PartialThenRest, vec![first, total - first])
            } else {
                (RefundPlan::Full, vec![total])
            };
            PlannedRefund {
                order_id,
                plan,
                amounts: amounts.into_iter().map(|c| Decimal::new(c, 2)).collect(),
            }
        })
        .collect()
}

/// Everything the refund phase needs from the run.
pub(crate) struct RefundPhase<'a, S, Q> {
    pub backend: &'a str,
    pub sandbox: &'a Sandbox,
    pub queue: &'a Q,
    pub sweep: &'a OrderSweep<S, EcwidClient, Q, TokioClock>,
    pub url: &'a str,
    pub settings: &'a ChaosSettings,
    pub orders: &'a [(String, Decimal)],
    pub stats: &'a WorkStats,
    pub started: Instant,
    pub deadline: Instant,
    pub rng: &'a mut StdRng,
}

fn payment_status(sandbox: &Sandbox, order_id: &str) -> String {
    sandbox.ecwid_order(order_id).expect("order")["paymentStatus"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Refunds the planned orders round by round (the first refunds, then the second ones),
/// sending each round's webhooks and letting the workers drain the queue; then the order
/// sweep finds what no webhook brought.
pub(crate) async fn refund_phase<S, Q>(phase: RefundPhase<'_, S, Q>) -> RefundReport
where
    S: StateStore + Clone + 'static,
    Q: ChaosQueue,
{
    let RefundPhase {
        backend,
        sandbox,
        queue,
        sweep,
        url,
        settings,
        orders,
        stats,
        started,
        deadline,
        rng,
    } = phase;
    let began = Instant::now();
    let plans = plan_refunds(sandbox, orders, settings.refund_rate, rng);
    let mut report = RefundReport {
        orders: plans.len(),
        ..RefundReport::default()
    };
    for p in &plans {
        *match p.plan {
            RefundPlan::Partial => &mut report.partial,
            RefundPlan::TwoPartials => &mut report.two_partials,
            RefundPlan::Full => &mut report.full,
            RefundPlan::PartialThenRest => &mut report.partial_then_rest,
        } += 1;
    }
    let now = chrono::Utc::now().timestamp();
    for round in 0..2 {
        let mut hooks = Vec::new();
        for p in plans.iter().filter(|p| p.amounts.len() > round) {
            let old = payment_status(sandbox, &p.order_id);
            sandbox
                .refund_order(&p.order_id, p.amounts[round])
                .unwrap_or_else(|e| panic!("refund {:?}: {e}", p));
            report.ecwid_refunds += 1;
            let new = payment_status(sandbox, &p.order_id);
            if rng.random_bool(settings.lost_webhook_rate) {
                report.lost_webhooks += 1;
                continue;
            }
            let event = uuid::Uuid::from_u128(rng.random()).to_string();
            let hook = sandbox.order_webhook_at(
                &event,
                now,
                "order.updated",
                &p.order_id,
                Some(&old),
                &new,
            );
            if rng.random_bool(settings.lagged_payment_rate) {
                // One delivery whose re-fetch does not show the refund yet.
                report.lagged += 1;
                sandbox.lag_payment_status(&p.order_id, 1);
                hooks.push(hook);
                continue;
            }
            for _ in 0..rng.random_range(1..=3) {
                hooks.push(hook.clone());
            }
        }
        hooks.shuffle(rng);
        report.webhooks += hooks.len() as u64;
        crate::chaos::send_webhooks(url, hooks, settings.senders).await;
        crate::chaos::wait_until_drained(backend, queue, stats, started, deadline).await;
    }
    for _ in 0..5 {
        let swept = sweep.sweep_all().await.expect("connections listed");
        report.swept += swept.stores.iter().map(|s| s.refunds).sum::<u64>();
        if swept.failures.is_empty() {
            break;
        }
        eprintln!(
            "chaos[{backend}]: refund sweep failures {:?}; again",
            swept.failures
        );
    }
    crate::chaos::wait_until_drained(backend, queue, stats, started, deadline).await;
    report.elapsed = began.elapsed();
    report
}

/// Checks every order's returns, in the ledger and in Lightspeed, against Ecwid.
pub(crate) async fn check<S: StateStore>(
    sandbox: &Sandbox,
    store: &S,
    store_id: StoreId,
    orders: &[(String, Decimal)],
    report: &mut RefundReport,
) {
    let all_sales = sandbox.sales();
    let mut by_invoice: HashMap<&str, Vec<&serde_json::Value>> = HashMap::new();
    let mut by_id: HashMap<&str, &serde_json::Value> = HashMap::new();
    for s in &all_sales {
        by_invoice
            .entry(s["invoice_number"].as_str().unwrap_or_default())
            .or_default()
            .push(s);
        by_id.insert(s["id"].as_str().unwrap_or_default(), s);
    }
    for (order_id, worth) in orders {
        let key = OrderKey::new(store_id, order_id.clone());
        let Some(entry) = store.load_order(&key).await.expect("ledger readable") else {
            continue; // a lost order: the PAID checks report it
        };
        let Some(sale_id) = entry
            .sale_id
            .clone()
            .filter(|_| entry.state == OrderState::Posted)
        else {
            continue;
        };
        let order = sandbox.ecwid_order(order_id).expect("order");
        let refunded = match &order["refundedAmount"] {
            serde_json::Value::Null => Decimal::ZERO,
            v => json_decimal(v),
        };
        let r = &entry.returns;
        for rec in &r.done {
            if rec.adopted {
                report.adopted += 1;
            } else {
                report.posted += 1;
            }
            match rec.kind {
                ReturnKind::Restock => report.restock += 1,
                ReturnKind::MoneyOnly => report.money_only += 1,
                // The suite edits no order: an edit adjustment is a finding.
                ReturnKind::EditReturn | ReturnKind::EditSale => {
                    report.problem(format!(
                        "order {order_id}: unexpected edit adjustment {rec:?}"
                    ));
                }
            }
        }
        if let Some(held) = &r.held {
            report.held += 1;
            report.problem(format!("order {order_id}: refund held: {held}"));
        }
        if let Some(p) = &r.pending {
            report.pending += 1;
            report.problem(format!("order {order_id}: return still pending: {p:?}"));
        }
        // The queue is drained, so no worker holds the lease: with nothing pending it is
        // stale whether or not its time ran out yet.
        match r.lease_until {
            Some(_) if r.pending.is_none() => report.stale_leases += 1,
            Some(until) => {
                report.leases_left += 1;
                report.problem(format!(
                    "order {order_id}: refund lease (until {until}) left with a return pending"
                ));
            }
            None => {}
        }
        let seqs: Vec<u32> = r.done.iter().map(|d| d.seq).collect();
        let expected: Vec<u32> = (1..=r.done.len() as u32).collect();
        if r.returned() != refunded || seqs != expected {
            report.wrong_ledger += 1;
            report.problem(format!(
                "order {order_id}: the ledger returned {} (returns {seqs:?}), Ecwid refunded {refunded}; history: {:#?}",
                r.returned(),
                entry.history
            ));
        }
        // Lightspeed: the closed referenced returns of the sale, and the money-only ones.
        let referenced: Decimal = sandbox
            .returns_for(&sale_id)
            .iter()
            .filter(|ret| ret.status == "CLOSED")
            .map(|ret| ret.total)
            .sum();
        report.parked_returns += sandbox
            .returns_for(&sale_id)
            .iter()
            .filter(|ret| ret.status != "CLOSED")
            .count();
        let mut money_only = Decimal::ZERO;
        for seq in 1..=(r.done.len() as u32 + 3) {
            let invoice = return_invoice_number(&key.invoice_number(), seq);
            let found: Vec<&&serde_json::Value> = by_invoice
                .get(invoice.as_str())
                .map(|v| v.iter().filter(|s| s["status"] != "VOIDED").collect())
                .unwrap_or_default();
            if found.len() > 1 {
                report.duplicate_returns += 1;
                report.problem(format!(
                    "order {order_id}: {} return sales carry {invoice}: {:?}",
                    found.len(),
                    found
                        .iter()
                        .map(|s| (
                            s["id"].clone(),
                            s["status"].clone(),
                            s["return_for"].clone()
                        ))
                        .collect::<Vec<_>>()
                ));
            }
            money_only += found
                .iter()
                .filter(|s| s["return_for"].is_null() && s["status"] == "CLOSED")
                .map(|s| sale_total(s))
                .sum::<Decimal>();
        }
        if referenced + money_only != -refunded {
            report.wrong_lightspeed += 1;
            report.problem(format!(
                "order {order_id}: Lightspeed returns {referenced} referenced + {money_only} money only, Ecwid refunded {refunded}; ledger: {:?}",
                r.done
            ));
        }
        let sale = by_invoice
            .get(key.invoice_number().as_str())
            .and_then(|v| v.iter().find(|s| s["id"] == sale_id.as_str()));
        let sale_worth = sale.map(|s| sale_total(s)).unwrap_or_default();
        if sale_worth + referenced + money_only != *worth - refunded {
            report.wrong_worth += 1;
            report.problem(format!(
                "order {order_id}: sale {sale_worth} + returns {} != worth {worth} - refunded {refunded}",
                referenced + money_only
            ));
        }
        for rec in &r.done {
            let ok = by_id.get(rec.sale_id.as_str()).is_some_and(|s| {
                s["status"] == "CLOSED"
                    && sale_total(s) == -rec.amount
                    && match rec.kind {
                        ReturnKind::Restock => s["return_for"] == sale_id.as_str(),
                        ReturnKind::MoneyOnly => s["return_for"].is_null(),
                        ReturnKind::EditReturn | ReturnKind::EditSale => false,
                    }
            });
            if !ok {
                report.wrong_records += 1;
                report.problem(format!(
                    "order {order_id}: ledger return {rec:?} is not a closed Lightspeed return of that amount: {:?}",
                    by_id.get(rec.sale_id.as_str())
                ));
            }
        }
    }
}

/// The refund phase's pass criteria.
pub fn assert_refunds_passed(report: &ChaosReport) {
    let r = &report.refunds;
    let fail = |what: &str| format!("{what}: {:#?}\n{}", r.problems, report.summary());
    assert_eq!(r.held, 0, "{}", fail("held refunds"));
    assert_eq!(r.pending, 0, "{}", fail("pending returns"));
    assert_eq!(r.leases_left, 0, "{}", fail("refund leases left"));
    assert_eq!(
        r.wrong_ledger,
        0,
        "{}",
        fail("ledger returns != refundedAmount")
    );
    assert_eq!(
        r.wrong_lightspeed,
        0,
        "{}",
        fail("Lightspeed returns != -refundedAmount")
    );
    assert_eq!(
        r.wrong_worth,
        0,
        "{}",
        fail("sale + returns != worth - refundedAmount")
    );
    assert_eq!(
        r.wrong_records,
        0,
        "{}",
        fail("ledger returns vs Lightspeed")
    );
    assert_eq!(r.duplicate_returns, 0, "{}", fail("duplicate returns"));
    assert_eq!(
        r.posted + r.adopted,
        r.restock + r.money_only,
        "{}",
        fail("returns counted")
    );
    if r.orders > 0 {
        assert!(
            r.posted + r.adopted >= r.orders,
            "{}",
            fail("every refunded order has a return")
        );
        // The sweep reads every refunded posted order (not held): the lost webhooks are
        // among them.
        assert!(
            r.swept >= r.orders as u64,
            "{}",
            fail("the sweep must find every refunded order")
        );
    }
    if report.orders >= 100 {
        assert!(
            r.lost_webhooks > 0 && r.kills > 0 && r.two_partials > 0 && r.partial_then_rest > 0,
            "{}",
            fail("the refund phase shook nothing")
        );
    }
}
