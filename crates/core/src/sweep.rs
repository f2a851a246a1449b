//! The order sweep: finds paid orders whose webhook never came and puts them on the work
//! queue, so that rule O6 (a paid order is posted at least once) does not rest on webhook
//! delivery alone.
//!
//! For each connection posting sales or refunds (O5, R5), a run reads Ecwid's orders updated in a window
//! (`GET /orders?updatedFrom=&updatedTo=`, Ecwid's "Finding orders without a webhook", with no
//! payment status filter so that refunds and cancellations are found too) and enqueues every
//! paid order that [`sweep_action`] says needs one, and every refunded or cancelled one that
//! [`refund_sweep_action`] does (R4). The
//! message goes through the same queue, claim and ledger as a webhook's, so a sweep can never
//! make a second sale: at worst the poster answers "already posted".
//!
//! **Windows.** The cursor ([`SweepCursor`]) keeps the end of the last window that was fully
//! handled. The next window starts [`SweepConfig::overlap`] before it (clock skew, Ecwid's own
//! lag in its search) and ends now, cut into windows of at most [`SweepConfig::max_window`] so
//! that a long backlog advances step by step. The cursor is saved only after a window is
//! fully handled; a run stopped by its time or request budget resumes there.
//!
//! **Eligibility.** Orders created before the cursor's `floor` are never swept: the floor is
//! the connection's go-live moment, or the first run's time for a connection saved before
//! go-live existed. Editing an old order bumps its update time, not its creation, so it
//! stays out. A store's history is posted only on purpose, with `els backfill`.
//!
//! **Paging.** Ecwid does not document the order of search results. The window's end is
//! fixed before paging, so no order can enter the result set while it is read, but one can
//! leave it (an update moves its update time past the window), which would shift the pages
//! under us. A page whose `total` differs from the first page's starts the window over (ids
//! already handled are skipped); a window that does not hold still after three passes is left
//! for the next run, cursor unsaved.
//!
//! **Health.** Each run also reads the store's pending web sales (a small index, not the
//! ledger) and calls a store unhealthy when an order is parked or a paid order has waited
//! longer than [`SweepConfig::health_stale_after`] without being posted.

use crate::connection::Connection;
use crate::ecwid::{OrderQuery, OrderSummary};
use crate::error::{ApiError, StoreError};
use crate::ids::StoreId;
use crate::ledger::{LedgerEntry, OrderKey, OrderState, ReasonCode};
use crate::ports::{
    Clock, ConnectionStore, EcwidApi, LedgerStore, OrderMessage, SweepStateStore, WorkQueue,
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The sweep's state of one store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepCursor {
    pub store_id: StoreId,
    /// Orders created before this are never swept (go-live, or the first run).
    pub floor: DateTime<Utc>,
    /// The end of the last fully handled window; None until the first window is done.
    pub swept_to: Option<DateTime<Utc>>,
    /// While a run works on the store; another run leaves the store alone until then.
    pub lease_until: Option<DateTime<Utc>>,
    /// When a run last caught up with the present.
    #[serde(default)]
    pub last_completed_at: Option<DateTime<Utc>>,
    /// Orders the last run enqueued, and all runs together.
    #[serde(default)]
    pub last_found: u64,
    #[serde(default)]
    pub total_found: u64,
    /// The last run's health verdict, for `els status`.
    #[serde(default)]
    pub health: Option<StoreHealth>,
    /// Why the last run stopped early, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version; the stored item has this version.
    pub version: u64,
}

/// Tuning of a sweep run.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// How far before the last window's end the next one starts.
    pub overlap: Duration,
    /// The longest window read in one go; a longer gap is cut into such windows.
    pub max_window: Duration,
    /// Orders per search page (Ecwid's maximum is 100).
    pub page_size: u32,
    /// Ecwid requests one store may spend in one run. Ecwid allows 600 a minute per token,
    /// shared with the poster and the inventory mirror; the default leaves most of it to them.
    pub max_requests_per_store: u32,
    /// The whole run (all stores) stops starting new windows after this.
    pub max_run: std::time::Duration,
    /// How long a run holds a store.
    pub lease: Duration,
    /// A QUEUED or POSTING order untouched this long gets a fresh message (its own may have
    /// been lost with a crashed worker, or dead-lettered without a record).
    pub stuck_after: Duration,
    /// A paid order waiting longer than this makes its store unhealthy.
    pub health_stale_after: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            overlap: Duration::minutes(10),
            max_window: Duration::hours(1),
            page_size: 100,
            max_requests_per_store: 100,
            max_run: std::time::Duration::from_secs(120),
            lease: Duration::minutes(5),
            stuck_after: Duration::minutes(30),
            health_stale_after: Duration::hours(2),
        }
    }
}

/// Why the sweep enqueues an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepReason {
    /// The ledger has never seen it: its webhook was lost.
    Missed,
    /// Skipped as unpaid (a re-fetch that lagged behind the payment); it is paid now.
    Unpaid,
    /// QUEUED or POSTING and untouched for [`SweepConfig::stuck_after`].
    Stuck,
    /// Posted, and refunded or cancelled since: the poster posts what its webhook would
    /// have (R4: the ledger makes a second look harmless).
    Refund,
}

/// What the sweep does with a paid order it found, given its ledger entry. Posted and parked
/// orders are left alone (parked ones wait for an operator), and so are orders skipped for
/// another reason than "not paid": posting was off (O5: they post only when replayed) or
/// they predate go-live.
pub fn sweep_action(
    entry: Option<&LedgerEntry>,
    now: DateTime<Utc>,
    stuck_after: Duration,
) -> Option<SweepReason> {
    let Some(entry) = entry else {
        return Some(SweepReason::Missed);
    };
    if entry.state == OrderState::Posted {
        return None;
    }
    match entry.state {
        OrderState::Skipped
            if entry.reason.as_ref().map(|r| r.code) == Some(ReasonCode::NotPaid) =>
        {
            Some(SweepReason::Unpaid)
        }
        OrderState::Queued | OrderState::Posting if now - entry.updated_at >= stuck_after => {
            Some(SweepReason::Stuck)
        }
        _ => None,
    }
}

/// What the sweep does with a refunded or cancelled order it found (R4): a posted order
/// whose refunds are not held is looked at again; an order partly refunded before the
/// ledger saw it is still a sale (the poster posts it, then its refund). Anything else was
/// never posted and never will be (R1).
pub fn refund_sweep_action(
    entry: Option<&LedgerEntry>,
    status: &str,
    now: DateTime<Utc>,
    stuck_after: Duration,
) -> Option<SweepReason> {
    let partly = status == crate::poster::refunds::PARTIALLY_REFUNDED;
    match entry {
        None if partly => Some(SweepReason::Missed),
        Some(e) if e.state == OrderState::Posted && e.returns.held.is_none() => {
            Some(SweepReason::Refund)
        }
        Some(e) if e.state != OrderState::Posted => {
            match sweep_action(Some(e), now, stuck_after) {
                // Skipped as unpaid, then paid and partly refunded: still a sale.
                Some(SweepReason::Unpaid) if partly => Some(SweepReason::Unpaid),
                // A lost message: the poster settles it (and frees its web quantities).
                Some(SweepReason::Stuck) => Some(SweepReason::Stuck),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A store's health as a sweep run saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreHealth {
    /// Parked orders holding web quantities.
    pub parked: usize,
    /// Paid orders waiting to be posted, and how long the oldest has waited (seconds).
    pub waiting: usize,
    pub oldest_waiting_secs: Option<i64>,
    /// Why the store is unhealthy; None when it is not.
    pub problem: Option<String>,
}

impl StoreHealth {
    pub fn is_healthy(&self) -> bool {
        self.problem.is_none()
    }
}

/// How a store's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepOutcome {
    /// Caught up with the present.
    Completed,
    /// Stopped by the time or request budget, or a window that would not hold still; the
    /// next run resumes from the saved cursor.
    Deferred,
    /// Another run holds the store.
    Busy,
    /// Posting is off for the store (O5): nothing is swept.
    Off,
}

/// What a run did for one store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSweepReport {
    pub store_id: StoreId,
    pub outcome: SweepOutcome,
    /// Ecwid requests made.
    pub requests: u32,
    /// Paid orders read (an order seen in two passes counts once).
    pub orders_seen: u64,
    /// Orders enqueued, by why.
    pub missed: u64,
    pub unpaid: u64,
    pub stuck: u64,
    /// Posted orders refunded or cancelled since.
    pub refunds: u64,
    /// Paid orders created before the floor (not eligible).
    pub before_floor: u64,
    /// The last window fully handled ends here.
    pub swept_to: Option<DateTime<Utc>>,
    pub health: Option<StoreHealth>,
}

impl StoreSweepReport {
    fn new(store_id: StoreId, outcome: SweepOutcome) -> Self {
        Self {
            store_id,
            outcome,
            requests: 0,
            orders_seen: 0,
            missed: 0,
            unpaid: 0,
            stuck: 0,
            refunds: 0,
            before_floor: 0,
            swept_to: None,
            health: None,
        }
    }

    /// Orders enqueued: the sweep's finds.
    pub fn found(&self) -> u64 {
        self.missed + self.unpaid + self.stuck + self.refunds
    }
}

/// Why a store's run failed (its cursor stays where the last full window left it).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("store {store_id}: {what}: {source}")]
    Store {
        store_id: StoreId,
        what: &'static str,
        source: StoreError,
    },
    #[error("store {store_id}: searching Ecwid's orders: {source}")]
    Ecwid { store_id: StoreId, source: ApiError },
    #[error("store {store_id}: enqueueing order {order_id}: {detail}")]
    Queue {
        store_id: StoreId,
        order_id: String,
        detail: String,
    },
}

/// A run over every connection.
#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    pub stores: Vec<StoreSweepReport>,
    /// Stores whose run failed, with why.
    pub failures: Vec<(StoreId, String)>,
    pub elapsed_ms: u64,
}

impl SweepReport {
    /// Orders enqueued across all stores.
    pub fn found(&self) -> u64 {
        self.stores.iter().map(StoreSweepReport::found).sum()
    }

    /// Stores whose health check failed, with why.
    pub fn unhealthy(&self) -> Vec<(StoreId, String)> {
        self.stores
            .iter()
            .filter_map(|r| {
                let problem = r.health.as_ref()?.problem.clone()?;
                Some((r.store_id, problem))
            })
            .collect()
    }
}

/// The service: state, Ecwid, the work queue and a clock.
pub struct OrderSweep<S, E, Q, C> {
    store: S,
    ecwid: E,
    queue: Q,
    clock: C,
    config: SweepConfig,
}

impl<S, E, Q, C> OrderSweep<S, E, Q, C>
where
    S: ConnectionStore + LedgerStore + SweepStateStore,
    E: EcwidApi,
    Q: WorkQueue,
    C: Clock,
{
    pub fn new(store: S, ecwid: E, queue: Q, clock: C, config: SweepConfig) -> Self {
        Self {
            store,
            ecwid,
            queue,
            clock,
            config,
        }
    }

    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    /// Sweeps every connection, one after the other, within [`SweepConfig::max_run`]. A
    /// store's failure is reported and the others go on; only failing to list the
    /// connections fails the run.
    pub async fn sweep_all(&self) -> Result<SweepReport, StoreError> {
        let connections = self.store.list_connections().await?;
        Ok(self.sweep_connections(&connections).await)
    }

    /// Sweeps `connections`, one after the other, within [`SweepConfig::max_run`]; a
    /// store's failure is reported and the others go on.
    pub async fn sweep_connections(&self, connections: &[Connection]) -> SweepReport {
        let started = self.clock.now();
        let deadline = started + to_chrono(self.config.max_run);
        let mut report = SweepReport::default();
        for conn in connections {
            match self.sweep_store(conn, deadline).await {
                Ok(r) => report.stores.push(r),
                Err(e) => {
                    tracing::warn!(store_id = conn.store_id.get(), error = %e, "order sweep failed for the store");
                    report.failures.push((conn.store_id, e.to_string()));
                }
            }
        }
        report.elapsed_ms = (self.clock.now() - started).num_milliseconds().max(0) as u64;
        report
    }

    /// Sweeps one store until it is caught up, its request budget is spent or `deadline`
    /// passes.
    pub async fn sweep_store(
        &self,
        conn: &Connection,
        deadline: DateTime<Utc>,
    ) -> Result<StoreSweepReport, SweepError> {
        let store_id = conn.store_id;
        // Off only when neither sales nor refunds are posted (O5, R5).
        if !conn.settings.post_sales && !conn.settings.post_refunds {
            return Ok(StoreSweepReport::new(store_id, SweepOutcome::Off));
        }
        let Some(mut cursor) = self.claim(conn).await? else {
            return Ok(StoreSweepReport::new(store_id, SweepOutcome::Busy));
        };
        let mut report = StoreSweepReport::new(store_id, SweepOutcome::Deferred);
        // The present, fixed for this run: windows end at or before it.
        let present = self.clock.now();
        let run = self
            .sweep_windows(conn, &mut cursor, &mut report, present, deadline)
            .await;
        let health = self.health(store_id).await;
        if let Err(e) = &health {
            tracing::warn!(store_id = store_id.get(), error = %e, "reading pending orders for the health check failed");
        }
        report.health = health.ok();
        let caught_up = cursor.swept_to.is_some_and(|t| t >= present);
        if run.is_ok() && caught_up {
            report.outcome = SweepOutcome::Completed;
        }
        report.swept_to = cursor.swept_to;
        self.release(&mut cursor, &report, run.as_ref().err(), caught_up)
            .await?;
        run.map(|()| report)
    }

    /// Takes the store's run lease: a new cursor on the first run, else the stored one if its
    /// lease is free. None: another run holds it.
    async fn claim(&self, conn: &Connection) -> Result<Option<SweepCursor>, SweepError> {
        let store_id = conn.store_id;
        let store_err = |what| {
            move |source| SweepError::Store {
                store_id,
                what,
                source,
            }
        };
        let now = self.clock.now();
        let existing = self
            .store
            .get_sweep_cursor(store_id)
            .await
            .map_err(store_err("reading the sweep cursor"))?;
        let (mut cursor, expected) = match existing {
            Some(c) if c.lease_until.is_some_and(|until| until > now) => return Ok(None),
            Some(c) => {
                let expected = Some(c.version);
                (c, expected)
            }
            None => (
                SweepCursor {
                    store_id,
                    floor: conn.go_live_at.unwrap_or(now),
                    swept_to: None,
                    lease_until: None,
                    last_completed_at: None,
                    last_found: 0,
                    total_found: 0,
                    health: None,
                    last_error: None,
                    updated_at: now,
                    version: 0,
                },
                None,
            ),
        };
        cursor.lease_until = Some(now + self.config.lease);
        cursor.updated_at = now;
        cursor.version += 1;
        match self.store.put_sweep_cursor(&cursor, expected).await {
            Ok(()) => Ok(Some(cursor)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(store_err("claiming the sweep cursor")(e)),
        }
    }

    /// Saves the cursor after a fully handled window (still under the lease).
    async fn save(&self, cursor: &mut SweepCursor) -> Result<(), SweepError> {
        let mut next = cursor.clone();
        next.version += 1;
        next.updated_at = self.clock.now();
        self.store
            .put_sweep_cursor(&next, Some(cursor.version))
            .await
            .map_err(|source| SweepError::Store {
                store_id: cursor.store_id,
                what: "saving the sweep cursor",
                source,
            })?;
        *cursor = next;
        Ok(())
    }

    async fn release(
        &self,
        cursor: &mut SweepCursor,
        report: &StoreSweepReport,
        error: Option<&SweepError>,
        caught_up: bool,
    ) -> Result<(), SweepError> {
        let now = self.clock.now();
        cursor.lease_until = None;
        cursor.last_found = report.found();
        cursor.total_found += report.found();
        cursor.health = report.health.clone();
        cursor.last_error = error.map(ToString::to_string);
        if caught_up {
            cursor.last_completed_at = Some(now);
        }
        self.save(cursor).await
    }

    /// Reads and handles windows from the cursor up to `present`.
    async fn sweep_windows(
        &self,
        conn: &Connection,
        cursor: &mut SweepCursor,
        report: &mut StoreSweepReport,
        present: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Result<(), SweepError> {
        loop {
            let from = match cursor.swept_to {
                None => cursor.floor,
                Some(to) => (to - self.config.overlap).max(cursor.floor),
            };
            if cursor.swept_to.is_some_and(|t| t >= present) {
                return Ok(());
            }
            let to = (from + self.config.max_window).min(present);
            if to <= from {
                // Go-live is still ahead: nothing can be eligible yet.
                cursor.swept_to = Some(present);
                return self.save(cursor).await;
            }
            if self.clock.now() >= deadline {
                return Ok(());
            }
            if !self.sweep_window(conn, cursor, report, from, to).await? {
                return Ok(());
            }
            cursor.swept_to = Some(to);
            // The lease is renewed with each saved window.
            cursor.lease_until = Some(self.clock.now() + self.config.lease);
            self.save(cursor).await?;
        }
    }

    /// Reads one window and enqueues what it must. Ok(false): stopped by the request budget
    /// or a result set that would not hold still (the window is read again next time).
    async fn sweep_window(
        &self,
        conn: &Connection,
        cursor: &SweepCursor,
        report: &mut StoreSweepReport,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, SweepError> {
        // Every payment status: paid orders to post, refunded and cancelled ones to return.
        let query = OrderQuery {
            payment_status: None,
            updated_from: Some(from.timestamp()),
            updated_to: Some(to.timestamp()),
            limit: self.config.page_size,
            ..OrderQuery::default()
        };
        let budget = self
            .config
            .max_requests_per_store
            .saturating_sub(report.requests);
        let search = search_all(&self.ecwid, conn, &query, budget).await;
        report.requests += search.requests;
        let orders = match search.result {
            Ok(Some(orders)) => orders,
            Ok(None) => return Ok(false),
            Err(source) => {
                return Err(SweepError::Ecwid {
                    store_id: conn.store_id,
                    source,
                });
            }
        };
        for order in &orders {
            report.orders_seen += 1;
            self.handle(conn, cursor, report, order, to).await?;
        }
        Ok(true)
    }

    async fn handle(
        &self,
        conn: &Connection,
        cursor: &SweepCursor,
        report: &mut StoreSweepReport,
        order: &OrderSummary,
        window_end: DateTime<Utc>,
    ) -> Result<(), SweepError> {
        let store_id = conn.store_id;
        let status = order.payment_status.as_deref().unwrap_or_default();
        let refund = crate::ingest::WORK_STATUSES.contains(&status) && !order.is_paid();
        if (!order.is_paid() && !refund)
            || (order.is_paid() && !conn.settings.post_sales)
            || (refund && !conn.settings.post_refunds)
        {
            return Ok(());
        }
        let key = OrderKey::new(store_id, order.id.clone());
        let load = || async {
            self.store
                .load_order(&key)
                .await
                .map_err(|source| SweepError::Store {
                    store_id,
                    what: "reading the ledger",
                    source,
                })
        };
        // An order Ecwid gives no creation time for is looked at (the poster decides). One
        // created before the floor is not a sale to find; but a posted one (a backfill) still
        // has its refunds found.
        let entry = if order
            .create_timestamp
            .is_some_and(|t| t < cursor.floor.timestamp())
        {
            match load().await? {
                Some(e) if refund && e.state == OrderState::Posted => Some(e),
                _ => {
                    report.before_floor += 1;
                    return Ok(());
                }
            }
        } else {
            load().await?
        };
        let why = if refund {
            refund_sweep_action(
                entry.as_ref(),
                status,
                self.clock.now(),
                self.config.stuck_after,
            )
        } else {
            sweep_action(entry.as_ref(), self.clock.now(), self.config.stuck_after)
        };
        let Some(why) = why else {
            return Ok(());
        };
        self.queue
            .enqueue(&OrderMessage::sweep(&key, window_end.timestamp()))
            .await
            .map_err(|e| SweepError::Queue {
                store_id,
                order_id: order.id.clone(),
                detail: e.to_string(),
            })?;
        match why {
            SweepReason::Missed => report.missed += 1,
            SweepReason::Unpaid => report.unpaid += 1,
            SweepReason::Stuck => report.stuck += 1,
            SweepReason::Refund => report.refunds += 1,
        }
        tracing::info!(store_id = store_id.get(), order_id = %order.id, reason = ?why, "order sweep enqueued an order");
        Ok(())
    }

    /// The store's health from its pending web sales.
    async fn health(&self, store_id: StoreId) -> Result<StoreHealth, StoreError> {
        let pending = self.store.list_pending_web_sales(store_id).await?;
        Ok(health_of(
            &pending,
            self.clock.now(),
            self.config.health_stale_after,
        ))
    }
}

/// What [`search_all`] read, and how many requests it took.
pub struct Search {
    pub requests: u32,
    /// Every order of the query, each once; None: stopped by the request budget, or the
    /// result set would not hold still.
    pub result: Result<Option<Vec<OrderSummary>>, ApiError>,
}

/// Every order a search finds, paged, within `max_requests`. Ecwid does not document the
/// order of results; a page whose `total` differs from the first page's starts the search
/// over (orders already read are kept once), at most three times (see the module doc).
pub async fn search_all<E: EcwidApi>(
    ecwid: &E,
    conn: &Connection,
    query: &OrderQuery,
    max_requests: u32,
) -> Search {
    let mut requests = 0;
    let mut seen: HashSet<String> = HashSet::new();
    let mut orders = Vec::new();
    'passes: for _pass in 0..3 {
        let mut offset = 0u64;
        let mut expected_total: Option<u64> = None;
        loop {
            if requests >= max_requests {
                return Search {
                    requests,
                    result: Ok(None),
                };
            }
            requests += 1;
            let page = match ecwid
                .search_orders(
                    conn,
                    &OrderQuery {
                        offset,
                        ..query.clone()
                    },
                )
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    return Search {
                        requests,
                        result: Err(e),
                    };
                }
            };
            if *expected_total.get_or_insert(page.total) != page.total {
                // An order left the result set while we paged: read it again.
                continue 'passes;
            }
            let read = page.items.len() as u64;
            for order in page.items {
                if seen.insert(order.id.clone()) {
                    orders.push(order);
                }
            }
            offset += read;
            if read == 0 || offset >= page.total {
                return Search {
                    requests,
                    result: Ok(Some(orders)),
                };
            }
        }
    }
    tracing::warn!(
        store_id = conn.store_id.get(),
        "Ecwid's order search kept changing while it was read; it is read again next run"
    );
    Search {
        requests,
        result: Ok(None),
    }
}

/// The health verdict on a store's pending web sales.
pub fn health_of(
    pending: &[crate::inventory::PendingWebSale],
    now: DateTime<Utc>,
    stale_after: Duration,
) -> StoreHealth {
    let parked = pending
        .iter()
        .filter(|p| p.state == Some(OrderState::Parked))
        .count();
    let waiting: Vec<DateTime<Utc>> = pending
        .iter()
        .filter(|p| p.state != Some(OrderState::Parked))
        .filter_map(|p| p.since)
        .collect();
    let oldest = waiting.iter().min().map(|t| (now - *t).num_seconds());
    let problem = if parked > 0 {
        Some(format!(
            "{parked} parked order(s) wait for an operator (els status --state PARKED)"
        ))
    } else {
        oldest
            .filter(|age| *age >= stale_after.num_seconds())
            .map(|age| {
                format!(
                    "a paid order has waited {} min without being posted",
                    age / 60
                )
            })
    };
    StoreHealth {
        parked,
        waiting: waiting.len(),
        oldest_waiting_secs: oldest,
        problem,
    }
}

fn to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecwid::{EcwidOrder, PAID};
    use crate::fakes::{FakeEcwid, FakeQueue, STORE, TestClock, connection};
    use crate::ledger::{self, Outcome, Reason};
    use crate::memory::MemoryStore;

    const T0: i64 = 1_800_000_000;

    fn order(id: &str, status: &str, created: i64, updated: i64) -> EcwidOrder {
        serde_json::from_value(serde_json::json!({
            "id": id, "paymentStatus": status, "total": 10,
            "createTimestamp": created, "updateTimestamp": updated,
        }))
        .unwrap()
    }

    struct Setup {
        store: MemoryStore,
        ecwid: FakeEcwid,
        queue: FakeQueue,
        clock: TestClock,
    }

    impl Setup {
        /// A store whose connection went live at T0 - 1 h; the clock at T0.
        async fn new() -> Self {
            let store = MemoryStore::new();
            let mut conn = connection();
            conn.go_live_at = DateTime::from_timestamp(T0 - 3600, 0);
            store.put_connection(&conn, None).await.unwrap();
            Self {
                store,
                ecwid: FakeEcwid::default(),
                queue: FakeQueue::default(),
                clock: TestClock::new(),
            }
        }

        fn sweep(
            &self,
            config: SweepConfig,
        ) -> OrderSweep<MemoryStore, FakeEcwid, &FakeQueue, TestClock> {
            OrderSweep::new(
                self.store.clone(),
                self.ecwid.clone(),
                &self.queue,
                self.clock.clone(),
                config,
            )
        }

        fn enqueued(&self) -> Vec<String> {
            let mut ids: Vec<String> = self
                .queue
                .accepted()
                .into_iter()
                .map(|m| m.order_id)
                .collect();
            ids.sort();
            ids.dedup();
            ids
        }

        async fn record(&self, id: &str, outcome: Outcome) {
            let key = OrderKey::new(STORE, id);
            let ledger::ClaimDecision::Claim {
                entry,
                expected_version,
                ..
            } = ledger::claim(None, &key, self.clock.now(), Duration::seconds(60))
            else {
                panic!("claim");
            };
            self.store
                .save_order(&entry, expected_version)
                .await
                .unwrap();
            let done = ledger::finish(&entry, outcome, self.clock.now());
            self.store
                .save_order(&done, Some(entry.version))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn paid_orders_the_ledger_has_not_seen_are_enqueued_once_and_nothing_else() {
        let s = Setup::new().await;
        let (created, updated) = (T0 - 1800, T0 - 1700);
        for (id, status) in [
            ("MISSED", "PAID"),
            ("POSTED", "PAID"),
            ("PARKED", "PAID"),
            ("LAGGED", "PAID"),
            ("OFF", "PAID"),
            ("UNPAID", "AWAITING_PAYMENT"),
        ] {
            s.ecwid.add_order(order(id, status, created, updated));
        }
        // Created before go-live, edited since: never eligible.
        s.ecwid
            .add_order(order("OLD", "PAID", T0 - 86_400, T0 - 60));
        s.record(
            "POSTED",
            Outcome::Posted {
                sale_id: "s1".into(),
                adopted: false,
            },
        )
        .await;
        s.record(
            "PARKED",
            Outcome::Parked(Reason::new(ReasonCode::UnknownSku, "x")),
        )
        .await;
        s.record(
            "LAGGED",
            Outcome::Skipped(Reason::new(ReasonCode::NotPaid, "lag")),
        )
        .await;
        s.record(
            "OFF",
            Outcome::Skipped(Reason::new(ReasonCode::PostSalesOff, "off")),
        )
        .await;

        let report = s.sweep(SweepConfig::default()).sweep_all().await.unwrap();
        let store = &report.stores[0];
        assert_eq!(store.outcome, SweepOutcome::Completed);
        assert_eq!((store.missed, store.unpaid, store.stuck), (1, 1, 0));
        assert_eq!(store.before_floor, 1);
        assert_eq!(s.enqueued(), vec!["LAGGED", "MISSED"]);
        // The parked order makes the store unhealthy... only if it holds lines; this one
        // has none (never fetched), so the store is healthy.
        let cursor = s.store.get_sweep_cursor(STORE).await.unwrap().unwrap();
        assert_eq!(cursor.swept_to, Some(s.clock.now()));
        assert_eq!(cursor.floor.timestamp(), T0 - 3600);
        assert_eq!(cursor.lease_until, None);
        assert_eq!((cursor.last_found, cursor.total_found), (2, 2));
        assert!(cursor.last_completed_at.is_some());

        // The next run reads from the cursor minus the overlap: the same orders are seen,
        // the queue's dedup and the ledger make that harmless; an order paid since is found.
        s.clock.advance(std::time::Duration::from_secs(300));
        s.ecwid
            .add_order(order("LATER", "PAID", T0 + 100, T0 + 200));
        let report = s.sweep(SweepConfig::default()).sweep_all().await.unwrap();
        assert_eq!(report.stores[0].missed, 1, "{report:?}");
        assert_eq!(s.enqueued(), vec!["LAGGED", "LATER", "MISSED"]);
    }

    #[tokio::test]
    async fn with_posting_off_nothing_is_read_and_a_busy_store_is_left_alone() {
        let s = Setup::new().await;
        s.ecwid.add_order(order("A", "PAID", T0 - 60, T0 - 60));
        let mut conn = s.store.get_connection(STORE).await.unwrap().unwrap();
        conn.settings.post_sales = false;
        let expected = conn.version;
        conn.version += 1;
        s.store.put_connection(&conn, Some(expected)).await.unwrap();
        // Refunds still posted: the store is read, but a paid order is not enqueued.
        let report = s.sweep(SweepConfig::default()).sweep_all().await.unwrap();
        assert_eq!(report.stores[0].outcome, SweepOutcome::Completed);
        assert_eq!(report.stores[0].found(), 0);
        let calls = s.ecwid.calls();
        conn.settings.post_refunds = false;
        let expected = conn.version;
        conn.version += 1;
        s.store.put_connection(&conn, Some(expected)).await.unwrap();
        let report = s.sweep(SweepConfig::default()).sweep_all().await.unwrap();
        assert_eq!(report.stores[0].outcome, SweepOutcome::Off);
        assert_eq!(s.ecwid.calls(), calls, "off: nothing read");
        conn.settings.post_refunds = true;

        conn.settings.post_sales = true;
        let expected = conn.version;
        conn.version += 1;
        s.store.put_connection(&conn, Some(expected)).await.unwrap();
        let sweep = s.sweep(SweepConfig::default());
        let held = sweep.claim(&conn).await.unwrap().expect("first claim");
        assert!(held.lease_until.is_some());
        let report = sweep.sweep_all().await.unwrap();
        assert_eq!(report.stores[0].outcome, SweepOutcome::Busy);
        assert!(s.enqueued().is_empty());
        // After the lease, the next run takes the store.
        s.clock.advance(std::time::Duration::from_secs(301));
        let report = sweep.sweep_all().await.unwrap();
        assert_eq!(report.stores[0].outcome, SweepOutcome::Completed);
        assert_eq!(s.enqueued(), vec!["A"]);
    }

    #[tokio::test]
    async fn a_run_out_of_budget_saves_its_full_windows_and_the_next_run_resumes() {
        let s = Setup::new().await;
        // 250 paid orders spread over the last 3 hours since go-live... (go-live is 1 h
        // back: move it 3 h back).
        let mut conn = s.store.get_connection(STORE).await.unwrap().unwrap();
        conn.go_live_at = DateTime::from_timestamp(T0 - 3 * 3600, 0);
        let expected = conn.version;
        conn.version += 1;
        s.store.put_connection(&conn, Some(expected)).await.unwrap();
        for i in 0..250 {
            let t = T0 - 3 * 3600 + i * 40;
            s.ecwid.add_order(order(&format!("O{i:03}"), "PAID", t, t));
        }
        let config = SweepConfig {
            page_size: 10,
            max_requests_per_store: 12,
            ..SweepConfig::default()
        };
        let mut runs = 0;
        loop {
            runs += 1;
            let report = s.sweep(config.clone()).sweep_all().await.unwrap();
            let store = &report.stores[0];
            assert!(store.requests <= 12);
            if store.outcome == SweepOutcome::Completed {
                break;
            }
            assert_eq!(store.outcome, SweepOutcome::Deferred);
            assert!(runs < 10, "the sweep does not progress");
        }
        assert!(runs > 1, "the budget should have cut the first run");
        assert_eq!(s.enqueued().len(), 250);
    }

    /// The note's cost figures: Ecwid requests per 5-minute run for a store taking 10,000
    /// orders a day, and for an idle store.
    #[tokio::test]
    async fn a_run_costs_two_requests_at_ten_thousand_orders_a_day_and_one_when_idle() {
        let s = Setup::new().await;
        let sweep = s.sweep(SweepConfig::default());
        // Caught up first (go-live an hour ago, nothing since).
        sweep.sweep_all().await.unwrap();
        let per_minute = 10_000.0 / 1440.0;
        let mut placed = 0u64;
        let mut requests = Vec::new();
        for run in 0..12 {
            // Five minutes of orders, paid as they come, then the run.
            for _ in 0..5 {
                s.clock.advance(std::time::Duration::from_secs(60));
                let now = s.clock.now().timestamp();
                let due = ((run * 5 + 5) as f64 * per_minute) as u64;
                while placed < due {
                    s.ecwid
                        .add_order(order(&format!("B{placed}"), "PAID", now - 30, now - 30));
                    placed += 1;
                }
            }
            let before = s.ecwid.calls();
            let report = sweep.sweep_all().await.unwrap();
            assert_eq!(report.stores[0].outcome, SweepOutcome::Completed);
            requests.push(s.ecwid.calls() - before);
        }
        assert_eq!(s.enqueued().len() as u64, placed, "every order found once");
        // A 15-minute window (5 minutes and the 10-minute overlap) holds about 104 orders:
        // two pages of 100.
        assert!(requests.iter().all(|r| *r <= 2), "{requests:?}");
        // Idle: one empty page per run.
        s.clock.advance(std::time::Duration::from_secs(3600));
        sweep.sweep_all().await.unwrap();
        let before = s.ecwid.calls();
        s.clock.advance(std::time::Duration::from_secs(300));
        sweep.sweep_all().await.unwrap();
        assert_eq!(s.ecwid.calls() - before, 1);
    }

    /// Ecwid's search, with one order updated (moved out of the window) right after the
    /// first page was read: the pages under the reader shift.
    struct ShiftsAfterFirstPage {
        inner: FakeEcwid,
        moved: std::sync::Mutex<Option<EcwidOrder>>,
    }

    impl EcwidApi for ShiftsAfterFirstPage {
        async fn get_order(&self, c: &Connection, id: &str) -> Result<EcwidOrder, ApiError> {
            self.inner.get_order(c, id).await
        }
        async fn search_orders(
            &self,
            c: &Connection,
            q: &OrderQuery,
        ) -> Result<crate::ecwid::OrderSearchPage, ApiError> {
            let page = self.inner.search_orders(c, q).await;
            if let Some(order) = self.moved.lock().unwrap().take() {
                self.inner.add_order(order);
            }
            page
        }
        async fn find_products_by_sku(
            &self,
            c: &Connection,
            sku: &crate::Sku,
        ) -> Result<Vec<crate::inventory::EcwidCatalogProduct>, ApiError> {
            self.inner.find_products_by_sku(c, sku).await
        }
        async fn list_products(
            &self,
            c: &Connection,
            offset: u64,
            limit: u64,
        ) -> Result<crate::inventory::EcwidProductPage, ApiError> {
            self.inner.list_products(c, offset, limit).await
        }
        async fn set_stock(
            &self,
            c: &Connection,
            t: &crate::inventory::EcwidTarget,
            l: crate::inventory::StockLevel,
        ) -> Result<(), ApiError> {
            self.inner.set_stock(c, t, l).await
        }
        async fn submit_batch(
            &self,
            c: &Connection,
            key: &str,
            w: &[(crate::inventory::EcwidTarget, crate::inventory::StockLevel)],
        ) -> Result<String, ApiError> {
            self.inner.submit_batch(c, key, w).await
        }
        async fn batch_status(
            &self,
            c: &Connection,
            ticket: &str,
        ) -> Result<crate::inventory::BatchStatus, ApiError> {
            self.inner.batch_status(c, ticket).await
        }
    }

    #[tokio::test]
    async fn a_result_set_that_shifts_while_paged_is_read_again_and_nothing_is_skipped() {
        let ecwid = FakeEcwid::default();
        for i in 0..25 {
            ecwid.add_order(order(&format!("S{i:02}"), "PAID", T0 - 100, T0 - 100));
        }
        // After the first page, S00 is edited: it leaves the window [.., T0].
        let shifting = ShiftsAfterFirstPage {
            inner: ecwid,
            moved: std::sync::Mutex::new(Some(order("S00", "PAID", T0 - 100, T0 + 60))),
        };
        let query = OrderQuery {
            payment_status: Some(PAID.into()),
            updated_to: Some(T0),
            limit: 10,
            ..OrderQuery::default()
        };
        let search = search_all(&shifting, &connection(), &query, 100).await;
        let found = search.result.unwrap().expect("complete");
        let mut ids: Vec<&str> = found.iter().map(|o| o.id.as_str()).collect();
        ids.sort();
        // S00 was read before it moved; every other order is there once, none skipped.
        assert_eq!(ids.len(), 25, "{ids:?}");
        assert!(search.requests > 3, "the window was read again");
    }

    #[test]
    fn refunded_orders_are_looked_at_again_only_when_posted_and_not_held() {
        let now = DateTime::from_timestamp(T0, 0).unwrap();
        let key = OrderKey::new(STORE, "R");
        let ledger::ClaimDecision::Claim { entry, .. } =
            ledger::claim(None, &key, now, Duration::seconds(60))
        else {
            panic!("claim")
        };
        let posted = ledger::finish(
            &entry,
            Outcome::Posted {
                sale_id: "s".into(),
                adopted: false,
            },
            now,
        );
        for status in ["REFUNDED", "PARTIALLY_REFUNDED", "CANCELLED"] {
            assert_eq!(
                refund_sweep_action(Some(&posted), status, now, Duration::minutes(30)),
                Some(SweepReason::Refund)
            );
            assert_eq!(
                refund_sweep_action(Some(&entry), status, now, Duration::minutes(30)),
                None,
                "not posted"
            );
        }
        let mut held = posted.clone();
        held.returns.held = Some(Reason::new(ReasonCode::RefundsOff, "off"));
        assert_eq!(
            refund_sweep_action(Some(&held), "REFUNDED", now, Duration::minutes(30)),
            None
        );
        // Never seen: a partial refund is still a sale; a cancelled order never is (R1).
        assert_eq!(
            refund_sweep_action(None, "PARTIALLY_REFUNDED", now, Duration::minutes(30)),
            Some(SweepReason::Missed)
        );
        assert_eq!(
            refund_sweep_action(None, "CANCELLED", now, Duration::minutes(30)),
            None
        );
        assert_eq!(
            refund_sweep_action(None, "REFUNDED", now, Duration::minutes(30)),
            None
        );
    }

    #[test]
    fn stuck_orders_get_a_fresh_message_and_live_ones_do_not() {
        let now = DateTime::from_timestamp(T0, 0).unwrap();
        let key = OrderKey::new(STORE, "Q");
        let ledger::ClaimDecision::Claim { entry, .. } =
            ledger::claim(None, &key, now - Duration::hours(1), Duration::seconds(60))
        else {
            panic!("claim")
        };
        let released = ledger::finish(
            &entry,
            Outcome::Released {
                error: "503".into(),
                post_may_exist: false,
            },
            now - Duration::hours(1),
        );
        let stuck_after = Duration::minutes(30);
        assert_eq!(
            sweep_action(Some(&released), now, stuck_after),
            Some(SweepReason::Stuck)
        );
        assert_eq!(
            sweep_action(Some(&released), now - Duration::minutes(45), stuck_after),
            None
        );
        assert_eq!(
            sweep_action(None, now, stuck_after),
            Some(SweepReason::Missed)
        );
    }

    #[test]
    fn parked_orders_and_long_waits_make_a_store_unhealthy() {
        use crate::inventory::PendingWebSale;
        let now = DateTime::from_timestamp(T0, 0).unwrap();
        let pending = |state, mins: i64| PendingWebSale {
            order_id: "X".into(),
            lines: vec![],
            state: Some(state),
            since: Some(now - Duration::minutes(mins)),
        };
        let stale = Duration::hours(2);
        assert!(health_of(&[pending(OrderState::Queued, 10)], now, stale).is_healthy());
        let slow = health_of(&[pending(OrderState::Queued, 180)], now, stale);
        assert_eq!(slow.oldest_waiting_secs, Some(180 * 60));
        assert!(slow.problem.unwrap().contains("180 min"));
        let parked = health_of(&[pending(OrderState::Parked, 1)], now, stale);
        assert_eq!(parked.parked, 1);
        assert!(!parked.is_healthy());
    }
}
