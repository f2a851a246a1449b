//! The chaos suite's machinery: N paid orders through ingest → queue → poster against the
//! sandbox, with seeded random faults everywhere the design says a worker must survive them:
//! repeated and shuffled webhooks, Ecwid 5xx and timeouts, Lightspeed 429/5xx and dropped
//! connections after the sale was committed, workers killed between any two steps, and
//! queue messages redelivered while an attempt is still running.
//!
//! A killed worker is simulated by a [`CrashHook`] that panics with a [`SimulatedCrash`]
//! payload; the driver runs each delivery in its own task, so the panic ends that task only,
//! and the message is neither acked nor retried: it comes back after its visibility
//! timeout, exactly as after a real crash.

use crate::contract::DeadLetters;
use els_cli::embedded::{Embedded, WorkerOptions};
use els_cli::ops;
use els_cli::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use els_core::ingest::{IngestConfig, Ingestor};
use els_core::ledger::{OrderKey, OrderState};
use els_core::lightspeed::LsApiVersion;
use els_core::ports::{Delivery, OrderMessage};
use els_core::poster::{CrashHook, CrashPoint, PostOutcome, PosterConfig, SalePoster};
use els_core::sweep::{OrderSweep, SweepConfig};
use els_core::{QueueError, Secret, StateStore, WorkQueue};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::{LightspeedClient, Pacing};
use els_sandbox::{
    ChanceFault, ChaosPlan, FaultKind, FaultTally, OrderItemSpec, OrderSpec, ProductSpec, Route,
    Sandbox, SandboxConfig, ShippingSpec, SignedWebhook,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// The default number of orders (`ELS_CHAOS_ORDERS` overrides it).
pub const DEFAULT_ORDERS: usize = 300;
/// The default seed (`ELS_CHAOS_SEED` overrides it).
pub const DEFAULT_SEED: u64 = 20_261_128;

/// The size and seed of a run, and how hard it shakes.
#[derive(Debug, Clone)]
pub struct ChaosSettings {
    pub orders: usize,
    pub seed: u64,
    /// The clients' HTTP timeout; an Ecwid "timeout" fault delays the answer past it.
    pub http_timeout: Duration,
    /// The poster's lease: longer than any attempt here (one fetch timeout plus fast calls).
    pub lease: Duration,
    /// Shorter than an attempt that meets a timeout, so such messages are redelivered to
    /// another worker while the first is still working on them.
    pub visibility: Duration,
    /// Generous: no order may end dead-lettered.
    pub max_receives: u32,
    /// Concurrent worker loops.
    pub workers: usize,
    /// Concurrent webhook senders.
    pub senders: usize,
    /// Probability of a simulated kill each time the poster passes a crash point.
    pub crash_rates: Vec<(CrashPoint, f64)>,
    /// Probability of each sandbox fault per matching request.
    pub fault_rates: Vec<(Route, FaultKind, f64)>,
    /// Share of orders that never get a webhook (the order sweep must find them).
    pub lost_webhook_rate: f64,
    /// Share of orders that get one PAID webhook whose first re-fetch still says unpaid.
    pub lagged_payment_rate: f64,
    /// The poster's Lightspeed API generation (`ELS_CHAOS_API`, default the newest).
    pub lightspeed_api: LsApiVersion,
    /// Share of orders partly paid by a gift card (the sale is worth total + gift card).
    pub gift_card_rate: f64,
    /// Share of the posted orders refunded afterwards (half partially, half fully; see
    /// [`crate::chaos_refunds`]).
    pub refund_rate: f64,
    /// While refunds are worked: the probability that a delivery's worker is killed at a
    /// random moment within twice the mean time a delivery took so far (the poster has no
    /// crash point on its refund path, so the kill drops the attempt wherever it is; the
    /// window follows the backend's speed, so moto is not killed more than SQLite).
    pub refund_kill_rate: f64,
    /// Sandbox faults added while refunds are worked (on the return routes).
    pub refund_fault_rates: Vec<(Route, FaultKind, f64)>,
}

impl ChaosSettings {
    /// The CI size, with `ELS_CHAOS_ORDERS`, `ELS_CHAOS_SEED` and `ELS_CHAOS_API` applied.
    pub fn from_env() -> Self {
        let lightspeed_api = match std::env::var("ELS_CHAOS_API") {
            Ok(v) => v.parse().unwrap_or_else(|e| panic!("ELS_CHAOS_API: {e}")),
            Err(_) => LsApiVersion::default(),
        };
        let orders = std::env::var("ELS_CHAOS_ORDERS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_ORDERS);
        let seed = std::env::var("ELS_CHAOS_SEED")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_SEED);
        let http_timeout = Duration::from_millis(300);
        Self {
            orders,
            seed,
            http_timeout,
            lease: Duration::from_millis(1200),
            visibility: Duration::from_millis(300),
            max_receives: 50,
            workers: 2,
            senders: 4,
            crash_rates: vec![
                (CrashPoint::AfterClaim, 0.015),
                (CrashPoint::AfterFetch, 0.015),
                (CrashPoint::AfterPost, 0.03),
                (CrashPoint::AfterRecord, 0.02),
            ],
            fault_rates: vec![
                (Route::EcwidGetOrder, FaultKind::Status(503), 0.03),
                (
                    Route::EcwidGetOrder,
                    FaultKind::Delay(http_timeout * 2),
                    0.02,
                ),
                (
                    Route::LsPostSale,
                    FaultKind::RateLimit {
                        retry_after: Duration::from_millis(800),
                    },
                    0.02,
                ),
                (Route::LsPostSale, FaultKind::Status(500), 0.02),
                (Route::LsPostSale, FaultKind::DropAfterCommit, 0.03),
                (Route::LsAny, FaultKind::Status(502), 0.01),
            ],
            lost_webhook_rate: 0.2,
            lagged_payment_rate: 0.05,
            lightspeed_api,
            gift_card_rate: 0.1,
            refund_rate: 0.2,
            refund_kill_rate: 0.12,
            refund_fault_rates: vec![
                (Route::LsStartReturn, FaultKind::DropAfterCommit, 0.05),
                (Route::LsStartReturn, FaultKind::Status(503), 0.03),
                (Route::LsGetSale, FaultKind::Status(503), 0.03),
                (Route::LsSearch, FaultKind::Status(503), 0.03),
            ],
        }
    }
}

/// The panic payload of a simulated kill.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedCrash(pub CrashPoint);

/// Silences the panic message of simulated kills (other panics print as usual). Once per
/// process.
pub fn silence_simulated_crashes() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<SimulatedCrash>().is_none() {
                previous(info);
            }
        }));
    });
}

/// Kills the worker at random crash points (seeded), counting each kill.
pub struct CrashInjector {
    rng: Mutex<StdRng>,
    rates: Vec<(CrashPoint, f64)>,
    armed: AtomicBool,
    fired: Mutex<BTreeMap<String, u64>>,
}

impl CrashInjector {
    pub fn new(seed: u64, rates: Vec<(CrashPoint, f64)>) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            rates,
            armed: AtomicBool::new(true),
            fired: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// Kills per crash point.
    pub fn fired(&self) -> BTreeMap<String, u64> {
        self.fired.lock().unwrap().clone()
    }
}

impl CrashHook for CrashInjector {
    fn reached(&self, point: CrashPoint, _key: &OrderKey) {
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        let rate = self
            .rates
            .iter()
            .find(|(p, _)| *p == point)
            .map_or(0.0, |(_, r)| *r);
        let hit = self.rng.lock().unwrap().random::<f64>() < rate;
        if hit {
            *self
                .fired
                .lock()
                .unwrap()
                .entry(format!("{point:?}"))
                .or_default() += 1;
            std::panic::panic_any(SimulatedCrash(point));
        }
    }
}

/// A queue the chaos run can also inspect: depth and dead letters.
pub trait ChaosQueue: WorkQueue + DeadLetters + Clone + 'static {
    /// `(visible, in flight)`.
    fn depth(&self) -> impl std::future::Future<Output = (usize, usize)> + Send;
}

impl ChaosQueue for els_store_sqlite::SqliteStore {
    async fn depth(&self) -> (usize, usize) {
        self.queue_depth().expect("queue depth")
    }
}

impl ChaosQueue for els_store_aws::SqsQueue {
    async fn depth(&self) -> (usize, usize) {
        self.queue_depth().await.expect("queue depth")
    }
}

/// Makes one queue call at a time. For moto only: its SQS is not thread-safe (a
/// `DeleteMessage` rebuilds the message list unlocked, so a concurrent `SendMessage` can be
/// lost, and a concurrent `ReceiveMessage` can leave a deleted message "in flight", blocking
/// its FIFO group forever; seen in a chaos run as a queue stuck with messages visible and
/// none deliverable). Real SQS has no such race. The poster's attempts still overlap; only
/// the queue API calls are serialised.
#[derive(Clone)]
pub struct OneCallAtATime<Q> {
    inner: Q,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<Q: Clone + Send + Sync + 'static> OneCallAtATime<Q> {
    pub fn new(inner: Q) -> Self {
        Self {
            inner,
            lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Runs `call` on the inner queue under the lock, in a task of its own that keeps the
    /// lock until the call is over: a caller killed meanwhile (the refund phase kills
    /// workers at random moments) cannot let the next call overlap one still in moto.
    async fn one<T, F>(&self, call: impl FnOnce(Q) -> F) -> T
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let one = self.lock.clone().lock_owned().await;
        let running = call(self.inner.clone());
        tokio::spawn(async move {
            let out = running.await;
            drop(one);
            out
        })
        .await
        .expect("queue call")
    }
}

impl<Q: WorkQueue + Clone + Sync + 'static> WorkQueue for OneCallAtATime<Q> {
    async fn enqueue(&self, message: &OrderMessage) -> Result<(), QueueError> {
        let message = message.clone();
        self.one(|q| async move { q.enqueue(&message).await }).await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.one(|q| async move { q.receive(max, visibility).await })
            .await
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        let receipt = receipt.to_string();
        self.one(|q| async move { q.ack(&receipt).await }).await
    }

    async fn retry_after(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let receipt = receipt.to_string();
        self.one(|q| async move { q.retry_after(&receipt, delay).await })
            .await
    }
}

impl<Q: DeadLetters + Clone + Send + Sync + 'static> DeadLetters for OneCallAtATime<Q> {
    async fn dead_letter_messages(&self) -> Vec<OrderMessage> {
        self.one(|q| async move { q.dead_letter_messages().await })
            .await
    }
}

impl<Q: ChaosQueue + Sync> ChaosQueue for OneCallAtATime<Q> {
    async fn depth(&self) -> (usize, usize) {
        self.one(|q| async move { q.depth().await }).await
    }
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct ChaosReport {
    pub backend: String,
    pub lightspeed_api: LsApiVersion,
    pub orders: usize,
    pub seed: u64,
    pub webhooks_sent: u64,
    pub deliveries: u64,
    pub posted: u64,
    pub adopted: u64,
    pub already_posted: u64,
    pub retries: u64,
    /// Redeliveries that met another worker's live lease.
    pub busy: u64,
    /// Attempts overtaken after their lease expired (nothing posted or recorded).
    pub lease_lost: u64,
    pub max_receive_count: u32,
    pub crashes: BTreeMap<String, u64>,
    pub faults: FaultTally,
    /// Sales in Lightspeed per order with a count other than one, and the total.
    pub duplicates: usize,
    pub lost: usize,
    pub wrong_totals: usize,
    pub sales: usize,
    pub ledger: BTreeMap<&'static str, usize>,
    pub dead_letters: usize,
    /// Lightspeed customers per buyer email with a count other than one.
    pub duplicate_customers: usize,
    /// Orders that got no webhook, and orders whose first re-fetch said unpaid.
    pub lost_webhooks: usize,
    pub lagged_payments: usize,
    /// Orders the order sweep enqueued.
    pub swept: u64,
    /// Lightspeed sales that are returns (referenced, parked or closed, and money-only).
    pub return_sales: usize,
    /// Orders partly paid by a gift card.
    pub gift_cards: usize,
    /// The refund phase (issue #15).
    pub refunds: crate::chaos_refunds::RefundReport,
    pub elapsed: Duration,
}

impl ChaosReport {
    pub fn summary(&self) -> String {
        format!(
            "chaos[{} on Lightspeed {}] N={} seed={} elapsed={:.1}s | lost_webhooks={} lagged_payments={} swept={} gift_cards={} | webhooks={} deliveries={} posted={} adopted={} already_posted={} retries={} (busy={} lease_lost={}) max_receive_count={} | crashes: {} | faults: {} | sales={} return_sales={} duplicates={} lost={} wrong_totals={} ledger={:?} dead_letters={} duplicate_customers={} | {}",
            self.backend,
            self.lightspeed_api,
            self.orders,
            self.seed,
            self.elapsed.as_secs_f64(),
            self.lost_webhooks,
            self.lagged_payments,
            self.swept,
            self.gift_cards,
            self.webhooks_sent,
            self.deliveries,
            self.posted,
            self.adopted,
            self.already_posted,
            self.retries,
            self.busy,
            self.lease_lost,
            self.max_receive_count,
            self.crashes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.faults,
            self.sales,
            self.return_sales,
            self.duplicates,
            self.lost,
            self.wrong_totals,
            self.ledger,
            self.dead_letters,
            self.duplicate_customers,
            self.refunds.summary(),
        )
    }
}

/// The products the orders buy: different tax rates and awkward prices; Ecwid stock is
/// untracked so N is not limited by it.
fn chaos_products() -> Vec<ProductSpec> {
    let product = |sku: &str, price: &str, tax: Option<&str>| ProductSpec {
        sku: sku.into(),
        name: format!("Chaos {sku}"),
        price_excl_tax: Decimal::from_str(price).unwrap(),
        tax_percent: tax.map(|t| Decimal::from_str(t).unwrap()),
        ecwid_stock: None,
        ls_stock: Decimal::from(100_000),
        ..ProductSpec::default()
    };
    vec![
        product("CHAOS-A", "12.34", Some("10")),
        product("CHAOS-B", "7.99", Some("20")),
        product("CHAOS-C", "3.33", None),
        product("CHAOS-D", "19.95", Some("15")),
    ]
}

const BUYERS: usize = 25;

fn buyer_email(i: usize) -> String {
    format!("chaos.buyer{i}@example.com")
}

/// Places `n` paid orders (seeded contents); returns `(order id, Ecwid total)`.
fn place_orders(sandbox: &Sandbox, n: usize, rng: &mut StdRng) -> Vec<(String, Decimal)> {
    let skus: Vec<String> = chaos_products().into_iter().map(|p| p.sku).collect();
    (0..n)
        .map(|_| {
            let lines = rng.random_range(1..=3);
            let items = (0..lines)
                .map(|_| {
                    OrderItemSpec::new(
                        skus[rng.random_range(0..skus.len())].clone(),
                        rng.random_range(1..=4),
                    )
                })
                .collect();
            let buyer = rng.random_range(0..BUYERS);
            let id = sandbox.place_order(OrderSpec {
                items,
                prices_include_tax: rng.random_bool(0.3),
                email: buyer_email(buyer),
                first_name: "Chaos".into(),
                last_name: format!("Buyer{buyer}"),
                shipping: rng.random_bool(0.3).then(|| ShippingSpec {
                    method_name: "Courier".into(),
                    rate: Decimal::new(495, 2),
                }),
                ..OrderSpec::default()
            });
            let order = sandbox.ecwid_order(&id).expect("placed order");
            (id, json_decimal(&order["total"]))
        })
        .collect()
}

/// Lets a gift card pay part of a share of the orders (Ecwid's `giftCardRedemption`, the
/// order's `total` is what is left to pay); returns `(order id, worth)`, the worth being
/// what the Lightspeed sale must come to: `total + giftCardRedemption`.
fn with_gift_cards(
    sandbox: &Sandbox,
    orders: Vec<(String, Decimal)>,
    rate: f64,
    rng: &mut StdRng,
) -> (Vec<(String, Decimal)>, usize) {
    let mut paid_by_card = 0;
    for (id, total) in &orders {
        let cents = (*total * Decimal::from(100)).trunc();
        if !rng.random_bool(rate) || cents < Decimal::from(200) {
            continue;
        }
        let half = i64::try_from(cents / Decimal::from(2)).unwrap_or(100);
        let card = Decimal::new(rng.random_range(100..=half), 2);
        let number =
            |d: Decimal| serde_json::from_str::<serde_json::Value>(&d.to_string()).unwrap();
        sandbox
            .update_order(
                id,
                serde_json::json!({
                    "giftCardRedemption": number(card),
                    "totalBeforeGiftCardRedemption": number(*total),
                    "total": number(*total - card),
                    "giftCardCode": "GC-CHAOS",
                }),
            )
            .expect("gift card");
        paid_by_card += 1;
    }
    (orders, paid_by_card)
}

pub fn json_decimal(v: &serde_json::Value) -> Decimal {
    match v {
        serde_json::Value::String(s) => Decimal::from_str(s).unwrap(),
        serde_json::Value::Number(n) => Decimal::from_str(&n.to_string()).unwrap(),
        other => panic!("not a number: {other}"),
    }
}

/// A sale's total as Lightspeed reports it (API 0.9 shape).
pub fn sale_total(sale: &serde_json::Value) -> Decimal {
    json_decimal(&sale["total_price"]) + json_decimal(&sale["total_tax"])
}

/// Counters the worker loops share.
#[derive(Default)]
pub(crate) struct WorkStats {
    pub(crate) deliveries: AtomicU64,
    pub(crate) posted: AtomicU64,
    pub(crate) adopted: AtomicU64,
    pub(crate) already_posted: AtomicU64,
    /// Deliveries that posted returns, and deliveries answered with a held refund.
    pub(crate) refunded: AtomicU64,
    pub(crate) refund_held: AtomicU64,
    pub(crate) other_outcomes: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) busy: AtomicU64,
    pub(crate) lease_lost: AtomicU64,
    pub(crate) kills: AtomicU64,
    /// Deliveries worked to an end, and the time they took together.
    pub(crate) settled: AtomicU64,
    pub(crate) settle_micros: AtomicU64,
    /// Workers killed at a random moment (the refund phase).
    pub(crate) random_kills: AtomicU64,
    pub(crate) max_receive_count: AtomicU32,
}

/// Kills a delivery's worker at a random moment (seeded), once armed: the attempt is
/// dropped at whatever it awaits (an HTTP call, a ledger write, the queue's ack), the
/// message is neither acked nor retried and comes back after its visibility timeout.
pub(crate) struct RandomKiller {
    rng: Mutex<StdRng>,
    rate: f64,
    /// Kills land within this window after the delivery starts; `None`: disarmed.
    window: Mutex<Option<Duration>>,
    /// Deliveries still to be killed for sure, before they do anything (set when armed):
    /// random kills land only when the attempt outlasts the drawn moment, and a fast phase
    /// could otherwise end with none.
    certain: AtomicU64,
}

impl RandomKiller {
    fn new(seed: u64, rate: f64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            rate,
            window: Mutex::new(None),
            certain: AtomicU64::new(0),
        }
    }

    /// Kills from now on within twice the mean delivery time in `stats` (5 ms to 1 s), the
    /// first delivery for sure.
    pub(crate) fn arm(&self, stats: &WorkStats) -> Duration {
        let settled = stats.settled.load(Ordering::Relaxed).max(1);
        let mean = Duration::from_micros(stats.settle_micros.load(Ordering::Relaxed) / settled);
        let window = (mean * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
        *self.window.lock().unwrap() = Some(window);
        self.certain.store(1, Ordering::SeqCst);
        window
    }

    pub(crate) fn disarm(&self) {
        *self.window.lock().unwrap() = None;
    }

    /// When to kill the next delivery, if it is to be killed.
    fn next(&self) -> Option<Duration> {
        let window = (*self.window.lock().unwrap())?;
        let certain = self
            .certain
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if certain.is_ok() {
            // Killed at its first await: the attempt has not yet finished anything.
            return Some(Duration::ZERO);
        }
        let mut rng = self.rng.lock().unwrap();
        rng.random_bool(self.rate)
            .then(|| window.mul_f64(rng.random::<f64>()))
    }
}

/// Sends `hooks` from `senders` concurrent senders, each retrying a delivery that did not
/// get a 2xx as Ecwid does; returns when all were accepted.
pub(crate) async fn send_webhooks(url: &str, hooks: Vec<SignedWebhook>, senders: usize) {
    let per_sender = hooks.len().div_ceil(senders.max(1));
    let mut tasks = Vec::new();
    for chunk in hooks.chunks(per_sender.max(1)) {
        let chunk = chunk.to_vec();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            for hook in chunk {
                // Ecwid retries a delivery that did not get a 2xx.
                let mut tries = 0;
                loop {
                    tries += 1;
                    match els_sandbox::deliver(&url, &hook).await {
                        Ok(s) if s.is_success() => break,
                        other if tries >= 5 => panic!("webhook not accepted: {other:?}"),
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("webhook sender");
    }
}

/// Runs the chaos scenario on `store` and `queue` (both fresh) and returns the report; it
/// does not assert (the caller does, after printing the summary).
pub async fn run<S, Q>(backend: &str, store: S, queue: Q, settings: &ChaosSettings) -> ChaosReport
where
    S: StateStore + Clone + 'static,
    Q: ChaosQueue,
{
    silence_simulated_crashes();
    let started = Instant::now();
    let n = settings.orders;
    let sandbox = Sandbox::start(SandboxConfig {
        // The sandbox's rate limiters are not under test here; the injected 429s are.
        ls_rate_limit: 1_000_000,
        ecwid_rate_limit: 1_000_000,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts");
    for p in chaos_products() {
        sandbox.add_product(p);
    }
    // Live from a minute ago: every order placed below is eligible for the order sweep.
    let mut connection = sandbox_connection(&sandbox);
    connection.go_live_at = Some(chrono::Utc::now() - chrono::Duration::minutes(1));
    // Partial refunds are money only: on a refund product that does not track stock.
    let refund_product = sandbox.add_ls_product_only(ProductSpec {
        sku: "ELS-REFUND".into(),
        name: "Refund".into(),
        has_inventory: false,
        ..ProductSpec::default()
    });
    connection.refund_product_id = refund_product.ls_product_id.clone();
    let conn = ops::upsert_connection(&store, connection)
        .await
        .expect("connection saved");
    assert!(
        conn.refund_product_id.is_some(),
        "the refund product is set"
    );
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let orders = place_orders(&sandbox, n, &mut rng);
    // Gift cards, refunds and random kills draw from their own stream, so the orders and
    // the PAID phase stay what the seed made them before refunds were added.
    let mut refund_rng =
        StdRng::seed_from_u64(settings.seed ^ crate::chaos_refunds::REFUND_SEED_SALT);
    let (orders, gift_cards) =
        with_gift_cards(&sandbox, orders, settings.gift_card_rate, &mut refund_rng);
    let killer = Arc::new(RandomKiller::new(
        refund_rng.random(),
        settings.refund_kill_rate,
    ));

    let crash = Arc::new(CrashInjector::new(
        rng.random(),
        settings.crash_rates.clone(),
    ));
    let poster = SalePoster::new(
        store.clone(),
        EcwidClient::new(sandbox.ecwid_api_url(), settings.http_timeout).unwrap(),
        LightspeedClient::new(lightspeed_url_template(&sandbox), settings.http_timeout)
            .unwrap()
            .with_api_version(settings.lightspeed_api)
            // In-process waits for a 429's Retry-After stay well below the lease.
            .with_pacing(Pacing {
                reserve: 0,
                max_wait: settings.http_timeout,
                ..Pacing::default()
            }),
        TokioClock,
        PosterConfig {
            lease: settings.lease,
            retry_base: Duration::from_millis(50),
            retry_cap: Duration::from_millis(500),
            search_delay: Duration::from_millis(100),
            ..PosterConfig::default()
        },
    )
    .with_crash_hook(crash.clone());
    let app = Embedded::new(
        Ingestor::new(
            store.clone(),
            queue.clone(),
            IngestConfig::new(Secret::new(sandbox.config().webhook_client_secret.clone())),
            TokioClock,
        ),
        poster,
        queue.clone(),
        WorkerOptions {
            batch: 10,
            visibility: settings.visibility,
            idle_poll: Duration::from_millis(20),
            max_receives: settings.max_receives,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/ecwid", listener.local_addr().unwrap());
    let router = app.router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    sandbox.set_chaos(Some(ChaosPlan {
        seed: rng.random(),
        faults: settings
            .fault_rates
            .iter()
            .map(|(route, kind, p)| ChanceFault::new(*route, kind.clone(), *p))
            .collect(),
    }));

    // Webhooks: each order's order.created 1–3 times, and for some an order.updated (a
    // different eventId) too; shuffled, from several concurrent senders.
    let now = chrono::Utc::now().timestamp();
    let mut hooks = Vec::new();
    let (mut lost_webhooks, mut lagged_payments) = (0, 0);
    for (id, _) in &orders {
        if rng.random_bool(settings.lost_webhook_rate) {
            // Ecwid gave up on this delivery (an outage longer than its retries).
            lost_webhooks += 1;
            continue;
        }
        let created = uuid::Uuid::from_u128(rng.random()).to_string();
        let hook = sandbox.order_webhook_at(&created, now, "order.created", id, None, "PAID");
        if rng.random_bool(settings.lagged_payment_rate) {
            // One delivery, and its re-fetch still says unpaid: skipped as NOT_PAID.
            lagged_payments += 1;
            sandbox.lag_payment_status(id, 1);
            hooks.push(hook);
            continue;
        }
        for _ in 0..rng.random_range(1..=3) {
            hooks.push(hook.clone());
        }
        if rng.random_bool(0.3) {
            let updated = uuid::Uuid::from_u128(rng.random()).to_string();
            let hook = sandbox.order_webhook_at(
                &updated,
                now,
                "order.updated",
                id,
                Some("AWAITING_PAYMENT"),
                "PAID",
            );
            for _ in 0..rng.random_range(1..=2) {
                hooks.push(hook.clone());
            }
        }
    }
    hooks.shuffle(&mut rng);
    let webhooks_sent = hooks.len() as u64;

    // Workers.
    let stats = Arc::new(WorkStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..settings.workers {
        let (app, queue, stats, stop, killer) = (
            app.clone(),
            queue.clone(),
            stats.clone(),
            stop.clone(),
            killer.clone(),
        );
        let visibility = settings.visibility;
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let batch = match queue.receive(10, visibility).await {
                    Ok(b) => b,
                    Err(e) => panic!("receive failed: {e}"),
                };
                if batch.is_empty() {
                    // While one worker holds the FIFO group, the other finds nothing: poll
                    // gently, as the queue's own calls compete with these.
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                for d in batch {
                    stats.deliveries.fetch_add(1, Ordering::Relaxed);
                    stats
                        .max_receive_count
                        .fetch_max(d.receive_count, Ordering::Relaxed);
                    let app = app.clone();
                    let kill_after = killer.next();
                    let began = Instant::now();
                    let mut settling = tokio::spawn(async move { app.settle(d).await });
                    let settled = match kill_after {
                        None => settling.await,
                        Some(after) => match tokio::time::timeout(after, &mut settling).await {
                            Ok(settled) => settled,
                            Err(_) => {
                                // Killed mid-attempt; the rest of the batch comes back too.
                                settling.abort();
                                stats.random_kills.fetch_add(1, Ordering::Relaxed);
                                stats.kills.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        },
                    };
                    stats.settled.fetch_add(1, Ordering::Relaxed);
                    stats
                        .settle_micros
                        .fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
                    match settled {
                        Ok(Ok(outcome)) => {
                            let counter = match outcome {
                                PostOutcome::Posted { .. } => &stats.posted,
                                PostOutcome::Adopted { .. } => &stats.adopted,
                                PostOutcome::AlreadyPosted { .. } => &stats.already_posted,
                                PostOutcome::Refunded { .. } => &stats.refunded,
                                PostOutcome::RefundHeld(_) => &stats.refund_held,
                                _ => &stats.other_outcomes,
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(retry)) => {
                            stats.retries.fetch_add(1, Ordering::Relaxed);
                            if retry.reason.contains("being posted by another worker") {
                                stats.busy.fetch_add(1, Ordering::Relaxed);
                            } else if retry.reason.contains("lease lost") {
                                stats.lease_lost.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) if e.is_panic() => {
                            let payload = e.into_panic();
                            if payload.downcast_ref::<SimulatedCrash>().is_none() {
                                std::panic::resume_unwind(payload);
                            }
                            // The worker died: the rest of its batch is abandoned too, and
                            // comes back after the visibility timeout.
                            stats.kills.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(e) => panic!("settle task failed: {e}"),
                    }
                }
            }
        }));
    }

    send_webhooks(&url, hooks, settings.senders).await;
    // Until the queue has drained (AfterRecord kills leave messages that resolve as
    // AlreadyPosted), or the deadline; then the order sweep finds what no webhook brought,
    // and the queue drains again.
    let deadline =
        Instant::now() + Duration::from_secs(300) + Duration::from_millis(n as u64 * 400);
    wait_until_drained(backend, &queue, &stats, started, deadline).await;
    let sweep = OrderSweep::new(
        store.clone(),
        EcwidClient::new(sandbox.ecwid_api_url(), settings.http_timeout).unwrap(),
        queue.clone(),
        TokioClock,
        SweepConfig::default(),
    );
    let mut swept = 0;
    for _ in 0..5 {
        let report = sweep.sweep_all().await.expect("connections listed");
        swept += report.found();
        if report.failures.is_empty() {
            break;
        }
        eprintln!(
            "chaos[{backend}]: sweep failures {:?}; again",
            report.failures
        );
    }
    wait_until_drained(backend, &queue, &stats, started, deadline).await;

    // Refunds (issue #15): a share of the posted orders, under the same faults and more.
    let mut refund_faults = settings.fault_rates.clone();
    refund_faults.extend(settings.refund_fault_rates.iter().cloned());
    sandbox.set_chaos(Some(ChaosPlan {
        seed: refund_rng.random(),
        faults: refund_faults
            .iter()
            .map(|(route, kind, p)| ChanceFault::new(*route, kind.clone(), *p))
            .collect(),
    }));
    let kill_window = killer.arm(&stats);
    let mut refunds = crate::chaos_refunds::refund_phase(crate::chaos_refunds::RefundPhase {
        backend,
        sandbox: &sandbox,
        queue: &queue,
        sweep: &sweep,
        url: &url,
        settings,
        orders: &orders,
        stats: &stats,
        started,
        deadline,
        rng: &mut refund_rng,
    })
    .await;
    killer.disarm();
    refunds.kill_window = kill_window;
    stop.store(true, Ordering::SeqCst);
    crash.disarm();
    for w in workers {
        if let Err(e) = w.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    server.abort();
    sandbox.set_chaos(None);

    // Findings.
    let all_sales = sandbox.sales();
    let is_return = |s: &serde_json::Value| {
        !s["return_for"].is_null()
            || s["invoice_number"]
                .as_str()
                .is_some_and(|i| i.starts_with("ECWIDR-"))
    };
    let return_sales = all_sales.iter().filter(|s| is_return(s)).count();
    let mut by_invoice: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for s in all_sales.iter().filter(|s| !is_return(s)) {
        by_invoice
            .entry(s["invoice_number"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(s);
    }
    let (mut duplicates, mut lost, mut wrong_totals) = (0, 0, 0);
    for (id, total) in &orders {
        let invoice = OrderKey::new(conn.store_id, id.clone()).invoice_number();
        match by_invoice.get(&invoice).map(Vec::as_slice) {
            None | Some([]) => lost += 1,
            Some([one]) => {
                if sale_total(one) != *total {
                    eprintln!(
                        "chaos[{backend}]: order {id}: sale total {} != Ecwid total {total}",
                        sale_total(one)
                    );
                    wrong_totals += 1;
                }
            }
            Some(several) => {
                let key = OrderKey::new(conn.store_id, id.clone());
                let history = store
                    .load_order(&key)
                    .await
                    .ok()
                    .flatten()
                    .map(|e| e.history);
                eprintln!(
                    "chaos[{backend}]: order {id}: {} sales carry its invoice number: {:#?}; ledger history: {history:#?}",
                    several.len(),
                    several
                        .iter()
                        .map(|s| (s["id"].clone(), s["sale_date"].clone()))
                        .collect::<Vec<_>>()
                );
                duplicates += several.len() - 1;
            }
        }
    }
    let mut customers: HashMap<String, usize> = HashMap::new();
    for c in sandbox.customers() {
        if let Some(email) = c["email"].as_str() {
            *customers.entry(email.to_lowercase()).or_default() += 1;
        }
    }
    let duplicate_customers = (0..BUYERS)
        .filter_map(|i| customers.get(&buyer_email(i)))
        .filter(|count| **count > 1)
        .count();
    let ledger = ops::counts_by_state(&store, conn.store_id)
        .await
        .expect("ledger counts");
    // An order left unposted is explained by its history (what each attempt did, when).
    for entry in store
        .list_orders(conn.store_id, None, usize::MAX)
        .await
        .expect("ledger entries")
        .iter()
        .filter(|e| e.state != OrderState::Posted)
    {
        eprintln!(
            "chaos[{backend}]: order {} left {}: history {:#?}",
            entry.key.order_id, entry.state, entry.history
        );
    }
    let dead_letters = queue.dead_letter_messages().await.len();
    crate::chaos_refunds::check(&sandbox, &store, conn.store_id, &orders, &mut refunds).await;
    refunds.kills = stats.random_kills.load(Ordering::Relaxed);
    refunds.refunded_deliveries = stats.refunded.load(Ordering::Relaxed);
    refunds.held_deliveries = stats.refund_held.load(Ordering::Relaxed);

    ChaosReport {
        backend: backend.to_string(),
        lightspeed_api: settings.lightspeed_api,
        orders: n,
        seed: settings.seed,
        webhooks_sent,
        deliveries: stats.deliveries.load(Ordering::Relaxed),
        posted: stats.posted.load(Ordering::Relaxed),
        adopted: stats.adopted.load(Ordering::Relaxed),
        already_posted: stats.already_posted.load(Ordering::Relaxed),
        retries: stats.retries.load(Ordering::Relaxed),
        busy: stats.busy.load(Ordering::Relaxed),
        lease_lost: stats.lease_lost.load(Ordering::Relaxed),
        max_receive_count: stats.max_receive_count.load(Ordering::Relaxed),
        crashes: crash.fired(),
        faults: sandbox.fault_tally(),
        duplicates,
        lost,
        wrong_totals,
        sales: all_sales.len() - return_sales,
        return_sales,
        gift_cards,
        refunds,
        ledger,
        dead_letters,
        duplicate_customers,
        lost_webhooks,
        lagged_payments,
        swept,
        elapsed: started.elapsed(),
    }
}

/// Waits until every message is settled (the queue is empty: nothing visible, nothing in
/// flight), printing progress every 10 s, or until `deadline`.
pub(crate) async fn wait_until_drained<Q: ChaosQueue>(
    backend: &str,
    queue: &Q,
    stats: &WorkStats,
    started: Instant,
    deadline: Instant,
) {
    let mut last_progress = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let depth = queue.depth().await;
        if depth == (0, 0) {
            break;
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            last_progress = Instant::now();
            eprintln!(
                "chaos[{backend}]: {:.0}s: {} deliveries, {} kills, {} retries; queue (visible, in flight) = {depth:?}",
                started.elapsed().as_secs_f64(),
                stats.deliveries.load(Ordering::Relaxed),
                stats.kills.load(Ordering::Relaxed),
                stats.retries.load(Ordering::Relaxed),
            );
        }
        if Instant::now() > deadline {
            eprintln!("chaos[{backend}]: deadline passed with the queue at {depth:?}");
            break;
        }
    }
}

/// The pass criteria of the chaos suite, asserted on a report.
pub fn assert_passed(report: &ChaosReport) {
    let n = report.orders;
    assert_eq!(report.lost, 0, "lost orders: {}", report.summary());
    assert_eq!(
        report.duplicates,
        0,
        "duplicate sales: {}",
        report.summary()
    );
    assert_eq!(report.wrong_totals, 0, "wrong totals: {}", report.summary());
    crate::chaos_refunds::assert_refunds_passed(report);
    assert_eq!(report.sales, n, "exactly N sales: {}", report.summary());
    assert_eq!(
        report.ledger.get("POSTED").copied(),
        Some(n),
        "N POSTED: {}",
        report.summary()
    );
    for (state, count) in &report.ledger {
        if *state != "POSTED" {
            assert_eq!(
                *count,
                0,
                "{state} (POSTING = stuck lease): {}",
                report.summary()
            );
        }
    }
    assert_eq!(report.dead_letters, 0, "dead letters: {}", report.summary());
    assert_eq!(
        report.duplicate_customers,
        0,
        "duplicate customers: {}",
        report.summary()
    );
    assert!(
        report.swept >= report.lost_webhooks as u64,
        "the sweep must find at least every order without a webhook: {}",
        report.summary()
    );
    if n >= 100 {
        assert!(
            report.lost_webhooks > 0 && report.lagged_payments > 0,
            "no webhook was lost or lagged: {}",
            report.summary()
        );
        // At this size the plan always fires faults and kills; a run without them would
        // prove nothing.
        assert!(
            report.faults.total() > 0,
            "no fault fired: {}",
            report.summary()
        );
        assert!(
            report.crashes.values().sum::<u64>() > 0,
            "no worker was killed: {}",
            report.summary()
        );
    }
}
