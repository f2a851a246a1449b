//! [`InventoryMirror`]: the service that mirrors Lightspeed stock to Ecwid (the rules are in
//! the parent module). It is generic over the ports, like [`crate::poster::SalePoster`]:
//! the `inventory-sync` Lambda, the embedded timer of `els serve` and `els sync-inventory`
//! all run the same code.
//!
//! ```ignore
//! let mirror = InventoryMirror::new(store, ecwid, lightspeed, SystemClock, MirrorConfig::default());
//! // The scheduled function: every connection with sync_inventory on, one after another.
//! for result in mirror.mirror_all().await? {
//!     match result {
//!         Ok(report) => tracing::info!(?report, "inventory mirrored"),
//!         Err(e) => tracing::error!(error = %e, "inventory mirror failed; the next run retries"),
//!     }
//! }
//! ```
//!
//! # One run of one connection
//! 1. With `sync_inventory` off (S4): nothing at all. Otherwise **claim** the store's cursor
//!    (a lease), or report `Busy` when another run holds it.
//! 2. Read the **pending web quantities** from the ledger (once, before the feeds).
//! 3. **Products feed** (`/api/2.0/products?after=`): update the catalog links; look up new
//!    or changed SKUs in Ecwid (one `GET /products?sku=` each, or one scan of the Ecwid
//!    catalog when that is cheaper); publish `unlimited` for untracked products; re-read the
//!    level of products whose link or tracking changed. Save the cursor after each page.
//! 4. **Inventory feed** (`/api/2.0/inventory?after=`): keep the records at the connection's
//!    outlet, compute the levels, write the changed ones (PUTs for a few, the batch API for
//!    many), record them, then save the cursor: page by page.
//! 5. When both feeds were drained: re-publish products whose pending quantity dropped.
//! 6. Release the lease.
//!
//! Rate limits: a 429 is waited out in the run when its `Retry-After` fits the run's budget
//! ([`MirrorConfig::max_rate_limit_wait`], [`MirrorConfig::max_run`]); otherwise the run
//! fails and the next run resumes from the cursor. When Lightspeed's
//! `X-RateLimit-Remaining` falls to [`MirrorConfig::lightspeed_reserve`], the run stops
//! early (`Deferred`), leaving the rest of the budget to the sale poster.

use super::reconcile::{self, ReconcileReport};
use super::{
    BatchRequest, BatchResponse, BatchState, BatchStatus, CatalogLink, CatalogLinkUpdate,
    CursorClaim, EcwidCatalogIndex, EcwidTarget, FeedPage, InventoryCursor, InventoryRecord,
    PushedStock, Resolution, Skip, StockLevel, WriteOutcome, batch_dedup_key, batch_requests,
    claim_cursor, classify_batch_response, eligibility, level_to_publish, next_pending_snapshot,
    pending_by_sku, pending_dropped,
};
use crate::connection::Connection;
use crate::error::{ApiError, StoreError};
use crate::lightspeed::LsProduct;
use crate::ports::{
    Clock, ConnectionStore, EcwidApi, InventoryStateStore, LedgerStore, LightspeedApi,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Tunables of the mirror.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// `page_size` of the Lightspeed feeds.
    pub page_size: usize,
    /// A page with more writes than this uses Ecwid's batch API instead of single PUTs.
    pub batch_threshold: usize,
    /// Sub-requests per batch (Ecwid allows 500).
    pub batch_max: usize,
    /// Page size of Ecwid catalog reads (Ecwid allows 100).
    pub ecwid_page_size: u64,
    /// Looking up this many SKUs or more at once considers one scan of the Ecwid catalog
    /// instead; the scan is taken when it needs fewer requests.
    pub catalog_scan_min: usize,
    /// A SKU that no (or several) Ecwid products had is looked up again when its product
    /// changes and the last lookup is older than this (Ecwid products created later get
    /// linked).
    pub recheck_unlinked_after: Duration,
    /// A scan of the Ecwid catalog (the first run on a large catalog) may take this long,
    /// beyond `max_run`: it cannot be resumed by the next run. At Ecwid's 600 requests per
    /// minute, 100,000 products take about 100 s. The lease is renewed meanwhile.
    pub max_catalog_scan: Duration,
    /// How long a run holds the store's cursor; renewed with every page. It must exceed
    /// the longest page (all its HTTP timeouts and waits).
    pub lease: Duration,
    /// A run stops after the page during which this much time has passed (the schedule is
    /// every minute). The rest is done by the next run.
    pub max_run: Duration,
    /// The longest 429 `Retry-After` waited out within a run.
    pub max_rate_limit_wait: Duration,
    /// The wait after a 429 without `Retry-After`.
    pub default_rate_limit_wait: Duration,
    /// The run stops early when Lightspeed's `X-RateLimit-Remaining` is this low, leaving
    /// the budget to the sale poster.
    pub lightspeed_reserve: u32,
    /// Retries of a call that failed with a 5xx or a lost connection (all mirror calls are
    /// idempotent), with exponential backoff from `retry_base`.
    pub retries: u32,
    pub retry_base: Duration,
    /// Batch polling: interval, and how long to wait for a batch before the page is retried.
    pub batch_poll_interval: Duration,
    pub batch_poll_timeout: Duration,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        Self {
            page_size: 1000,
            batch_threshold: 20,
            batch_max: 500,
            ecwid_page_size: 100,
            catalog_scan_min: 25,
            recheck_unlinked_after: Duration::from_secs(15 * 60),
            max_catalog_scan: Duration::from_secs(600),
            lease: Duration::from_secs(300),
            max_run: Duration::from_secs(50),
            max_rate_limit_wait: Duration::from_secs(30),
            default_rate_limit_wait: Duration::from_secs(5),
            lightspeed_reserve: 20,
            retries: 2,
            retry_base: Duration::from_millis(250),
            batch_poll_interval: Duration::from_millis(500),
            batch_poll_timeout: Duration::from_secs(60),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Both feeds were read to their end.
    #[default]
    Completed,
    /// Stopped early (time budget, Lightspeed rate-limit reserve); the next run continues
    /// from the cursor.
    Deferred,
    /// `sync_inventory` is off (S4): nothing was read or written.
    SyncOff,
    /// Another run holds the store's cursor.
    Busy,
}

/// What one run of one connection did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MirrorReport {
    pub store_id: u64,
    pub outcome: RunOutcome,
    pub deferred_reason: Option<String>,
    pub inventory_cursor_from: u64,
    pub inventory_cursor_to: u64,
    pub products_cursor_from: u64,
    pub products_cursor_to: u64,
    pub product_pages: u64,
    pub inventory_pages: u64,
    /// Product rows read from the products feed.
    pub products_seen: u64,
    /// Inventory records read (every outlet).
    pub records: u64,
    /// Records at other outlets, dropped (S3).
    pub other_outlet: u64,
    /// Levels written to Ecwid, and how.
    pub written: u64,
    pub written_by_put: u64,
    pub written_by_batch: u64,
    /// Of `written`, levels set to unlimited (untracked in Lightspeed).
    pub set_unlimited: u64,
    pub batches: u64,
    pub batch_polls: u64,
    /// Levels equal to the last one pushed: not written.
    pub unchanged: u64,
    /// Not written: blank SKU or no Ecwid product/combination has it.
    pub unlinked: u64,
    /// Not written: several Ecwid products/combinations, or Lightspeed products, have it.
    pub ambiguous: u64,
    /// Not written: deleted in Lightspeed.
    pub deleted: u64,
    /// Ecwid answered 404 for a linked product: the link is looked up again next time.
    pub stale_links: u64,
    /// Ecwid refused a write for good (a 4xx other than 404/429).
    pub rejected: u64,
    pub unlinked_skus: Vec<String>,
    pub ambiguous_skus: Vec<String>,
    /// Links looked up in Ecwid, and how.
    pub links_resolved: u64,
    pub ecwid_sku_lookups: u64,
    pub catalog_scans: u64,
    /// SKUs with a pending web quantity, and products re-published because it dropped.
    pub pending_skus: u64,
    pub pending_republished: u64,
    /// Requests sent (retries included).
    pub lightspeed_requests: u64,
    pub ecwid_requests: u64,
    /// 429s waited out.
    pub rate_limit_waits: u64,
    /// The last `X-RateLimit-Remaining` Lightspeed reported.
    pub lightspeed_rate_remaining: Option<u32>,
    pub elapsed_ms: u64,
}

impl MirrorReport {
    fn new(store_id: u64) -> Self {
        Self {
            store_id,
            ..Self::default()
        }
    }

    fn note_skip(&mut self, skip: Skip, sku: &str) {
        let (count, sample) = match skip {
            Skip::Deleted => {
                self.deleted += 1;
                return;
            }
            Skip::Unlinked => (&mut self.unlinked, &mut self.unlinked_skus),
            Skip::Ambiguous => (&mut self.ambiguous, &mut self.ambiguous_skus),
        };
        *count += 1;
        if sample.len() < reconcile::SAMPLE && !sample.iter().any(|s| s == sku) {
            sample.push(sku.to_string());
        }
    }
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorFailure {
    Api(ApiError),
    Store(StoreError),
    /// Another run took the cursor over (this run outlived its lease).
    LeaseLost,
    /// `reconcile --fix` found a mirror run holding the cursor.
    Busy {
        until: DateTime<Utc>,
    },
}

impl std::fmt::Display for MirrorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MirrorFailure::Api(e) => write!(f, "{e}"),
            MirrorFailure::Store(e) => write!(f, "{e}"),
            MirrorFailure::LeaseLost => f.write_str("another run took the cursor over"),
            MirrorFailure::Busy { until } => {
                write!(f, "a mirror run holds the cursor until {until}")
            }
        }
    }
}

/// A failed run. The cursor stays on the last page that was fully applied, so the next run
/// repeats only the rest; `report` says what was done before the failure.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorError {
    pub store_id: u64,
    pub doing: String,
    pub failure: MirrorFailure,
    pub report: Box<MirrorReport>,
}

impl std::fmt::Display for MirrorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "inventory mirror of store {} failed while {}: {}",
            self.store_id, self.doing, self.failure
        )
    }
}

impl std::error::Error for MirrorError {}

impl MirrorError {
    /// When a retry makes sense: the `Retry-After` of a rate limit, if that was the cause.
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.failure {
            MirrorFailure::Api(ApiError::RateLimited { retry_after }) => *retry_after,
            _ => None,
        }
    }
}

/// An internal failure, turned into a [`MirrorError`] with the report at the top.
#[derive(Debug)]
struct Fail {
    doing: String,
    failure: MirrorFailure,
}

impl Fail {
    fn api(doing: impl Into<String>, e: ApiError) -> Self {
        Fail {
            doing: doing.into(),
            failure: MirrorFailure::Api(e),
        }
    }
    fn store(doing: impl Into<String>, e: StoreError) -> Self {
        Fail {
            doing: doing.into(),
            failure: MirrorFailure::Store(e),
        }
    }
}

/// A product whose level may be published, with the Lightspeed level it has (None:
/// unknown, only meaningful for untracked products).
#[derive(Debug, Clone)]
struct Candidate {
    link: CatalogLink,
    ls_level: Option<Decimal>,
}

/// A write to make, and what to record once it succeeded.
#[derive(Debug, Clone)]
struct Write {
    record: PushedStock,
    link: CatalogLink,
}

/// What became of one batch.
enum BatchRun {
    /// Ecwid's result, final for the batch's key: re-sent under that key, the batch would
    /// get this result again.
    Final(Vec<WriteOutcome>),
    /// Not known (the POST or the polling failed): a re-send keeps the key.
    Unknown(Vec<WriteOutcome>),
}

/// The state of one run.
struct Run {
    store_id: u64,
    outlet_id: String,
    cursor: InventoryCursor,
    /// Whether `cursor` is claimed (a reconcile without `--fix` reads only).
    claimed: bool,
    /// The pending snapshot the cursor had when the run started.
    snapshot_before: BTreeMap<String, Decimal>,
    pending: BTreeMap<String, Decimal>,
    /// The whole Ecwid catalog, once a run scanned it.
    catalog: Option<EcwidCatalogIndex>,
    /// A scan was judged dearer than single lookups (no need to ask again this run).
    scan_declined: bool,
    /// When the lease was last renewed (reconcile renews it while it reads).
    renewed_at: DateTime<Utc>,
    report: MirrorReport,
    deadline: DateTime<Utc>,
    /// Names this run in the key of a batch re-sent after a known failure, so that key is
    /// new to Ecwid (see [`batch_dedup_key`]): the cursor's version as claimed (every claim
    /// writes a new one) and the start time.
    batch_salt: String,
}

#[derive(Clone, Copy)]
enum System {
    Lightspeed,
    Ecwid,
}

/// Calls an idempotent API method, waiting out 429s and retrying transient failures as the
/// run's budget allows. `$call` is evaluated again for every attempt.
macro_rules! api {
    ($self:ident, $run:ident, $system:ident, $call:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            $self.count(&mut *$run, System::$system);
            match $call.await {
                Ok(v) => break Ok(v),
                Err(e) => match $self.pause_for(&*$run, &e, attempt) {
                    Some(wait) => {
                        if matches!(e, ApiError::RateLimited { .. }) {
                            $run.report.rate_limit_waits += 1;
                        }
                        tracing::debug!(store_id = $run.store_id, error = %e, ?wait, "waiting before a retry");
                        attempt += 1;
                        $self.clock.sleep(wait).await;
                    }
                    None => break Err(e),
                },
            }
        }
    }};
}

/// The inventory mirror of every connection, generic over the ports.
pub struct InventoryMirror<S, E, L, C> {
    store: S,
    ecwid: E,
    lightspeed: L,
    clock: C,
    config: MirrorConfig,
}

impl<S, E, L, C> InventoryMirror<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + InventoryStateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    pub fn new(store: S, ecwid: E, lightspeed: L, clock: C, config: MirrorConfig) -> Self {
        Self {
            store,
            ecwid,
            lightspeed,
            clock,
            config,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn config(&self) -> &MirrorConfig {
        &self.config
    }

    /// Mirrors every connection, one after another. Connections with `sync_inventory` off
    /// are reported as `SyncOff` without a call. `Err` only when the connections cannot be
    /// listed; each connection's own failure is its entry.
    pub async fn mirror_all(&self) -> Result<Vec<Result<MirrorReport, MirrorError>>, StoreError> {
        let connections = self.store.list_connections().await?;
        let mut out = Vec::with_capacity(connections.len());
        for conn in &connections {
            out.push(self.mirror_connection(conn).await);
        }
        Ok(out)
    }

    /// Mirrors the connection of one store; `Ok(None)` when the store has none.
    pub async fn mirror_store(&self, store_id: u64) -> Result<Option<MirrorReport>, MirrorError> {
        let conn = self
            .store
            .get_connection(store_id)
            .await
            .map_err(|e| MirrorError {
                store_id,
                doing: "loading the connection".into(),
                failure: MirrorFailure::Store(e),
                report: Box::new(MirrorReport::new(store_id)),
            })?;
        match conn {
            None => Ok(None),
            Some(c) => self.mirror_connection(&c).await.map(Some),
        }
    }

    /// One run for one connection (see the module doc). `Ok` when the run ended as planned
    /// (completed, deferred, busy or off); `Err` when a page could not be applied: the
    /// cursor then stays on the last complete page and the next run repeats the rest.
    pub async fn mirror_connection(&self, conn: &Connection) -> Result<MirrorReport, MirrorError> {
        let started = self.clock.now();
        let store_id = conn.store_id;
        let mut report = MirrorReport::new(store_id);
        if !conn.settings.sync_inventory {
            report.outcome = RunOutcome::SyncOff;
            tracing::debug!(store_id, "sync_inventory is off; nothing mirrored (S4)");
            return Ok(report);
        }
        let cursor = match self.claim(store_id).await {
            Ok(Ok(c)) => c,
            Ok(Err(until)) => {
                report.outcome = RunOutcome::Busy;
                tracing::info!(store_id, %until, "another inventory run holds the cursor");
                return Ok(report);
            }
            Err(e) => {
                return Err(MirrorError {
                    store_id,
                    doing: "claiming the inventory cursor".into(),
                    failure: MirrorFailure::Store(e),
                    report: Box::new(report),
                });
            }
        };
        report.inventory_cursor_from = cursor.inventory_version;
        report.products_cursor_from = cursor.products_version;
        let batch_salt = run_salt(&cursor, started);
        let mut run = Run {
            store_id,
            outlet_id: conn.outlet_id.clone(),
            snapshot_before: cursor.pending_snapshot.clone(),
            cursor,
            claimed: true,
            pending: BTreeMap::new(),
            catalog: None,
            scan_declined: false,
            renewed_at: started,
            report,
            deadline: started + chrono_duration(self.config.max_run),
            batch_salt,
        };
        let result = self.run_feeds(conn, &mut run).await;
        let drained = matches!(result, Ok(true));
        let released = self.release(&mut run, drained).await;
        run.report.inventory_cursor_to = run.cursor.inventory_version;
        run.report.products_cursor_to = run.cursor.products_version;
        run.report.elapsed_ms = (self.clock.now() - started).num_milliseconds().max(0) as u64;
        let failure = match (result, released) {
            (Err(f), _) | (Ok(_), Err(f)) => f,
            (Ok(_), Ok(())) => {
                let r = &run.report;
                tracing::info!(
                    store_id,
                    outcome = ?r.outcome,
                    written = r.written,
                    batches = r.batches,
                    unchanged = r.unchanged,
                    unlinked = r.unlinked,
                    ambiguous = r.ambiguous,
                    other_outlet = r.other_outlet,
                    inventory_cursor = r.inventory_cursor_to,
                    "inventory mirrored"
                );
                return Ok(run.report);
            }
        };
        let error = MirrorError {
            store_id,
            doing: failure.doing,
            failure: failure.failure,
            report: Box::new(run.report),
        };
        tracing::warn!(store_id, error = %error, "inventory mirror run failed; the next run resumes from the cursor");
        Err(error)
    }

    // -----------------------------------------------------------------------------------
    // The run
    // -----------------------------------------------------------------------------------

    /// Both feeds, then the pending re-publish. `Ok(true)` when both feeds were drained.
    async fn run_feeds(&self, conn: &Connection, run: &mut Run) -> Result<bool, Fail> {
        let pending = self
            .store
            .list_pending_web_sales(run.store_id)
            .await
            .map_err(|e| Fail::store("reading pending web sales", e))?;
        run.pending = pending_by_sku(&pending);
        run.report.pending_skus = run.pending.len() as u64;

        loop {
            if self.stop_early(run) {
                return Ok(false);
            }
            let after = run.cursor.products_version;
            let page: FeedPage<LsProduct> = api!(
                self,
                run,
                Lightspeed,
                self.lightspeed
                    .product_changes(conn, after, self.config.page_size)
            )
            .map_err(|e| Fail::api("reading Lightspeed product changes", e))?;
            run.report.lightspeed_rate_remaining = page
                .rate_limit_remaining
                .or(run.report.lightspeed_rate_remaining);
            if page.items.is_empty() {
                break;
            }
            let max = next_after(after, page.max_version, "products")?;
            self.apply_products(conn, run, page.items, &format!("products:{after}:{max}"))
                .await?;
            self.save_cursor(run, false, |c| c.products_version = max)
                .await?;
            run.report.product_pages += 1;
        }

        loop {
            if self.stop_early(run) {
                return Ok(false);
            }
            let after = run.cursor.inventory_version;
            let page: FeedPage<InventoryRecord> = api!(
                self,
                run,
                Lightspeed,
                self.lightspeed
                    .inventory_changes(conn, after, self.config.page_size)
            )
            .map_err(|e| Fail::api("reading Lightspeed inventory changes", e))?;
            run.report.lightspeed_rate_remaining = page
                .rate_limit_remaining
                .or(run.report.lightspeed_rate_remaining);
            if page.items.is_empty() {
                break;
            }
            let max = next_after(after, page.max_version, "inventory")?;
            self.apply_inventory(conn, run, page.items, &format!("inventory:{after}:{max}"))
                .await?;
            self.save_cursor(run, false, |c| c.inventory_version = max)
                .await?;
            run.report.inventory_pages += 1;
        }

        self.republish_pending_drops(conn, run).await?;
        Ok(true)
    }

    /// Whether the run should stop before the next page (and why, in the report).
    fn stop_early(&self, run: &mut Run) -> bool {
        let why = if self.clock.now() >= run.deadline {
            Some("time budget of the run used up".to_string())
        } else {
            run.report
                .lightspeed_rate_remaining
                .filter(|r| *r <= self.config.lightspeed_reserve)
                .map(|r| {
                    format!("Lightspeed rate limit nearly used ({r} requests left in the window)")
                })
        };
        match why {
            Some(why) => {
                tracing::info!(store_id = run.store_id, reason = %why, "inventory run deferred");
                run.report.outcome = RunOutcome::Deferred;
                run.report.deferred_reason = Some(why);
                true
            }
            None => false,
        }
    }

    /// One page of the products feed.
    async fn apply_products(
        &self,
        conn: &Connection,
        run: &mut Run,
        rows: Vec<LsProduct>,
        context: &str,
    ) -> Result<(), Fail> {
        let now = self.clock.now();
        run.report.products_seen += rows.len() as u64;
        // The newest row of each product (a page is in version order).
        let mut latest: Vec<LsProduct> = Vec::with_capacity(rows.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        for p in rows {
            match at.get(&p.id) {
                Some(&i) => latest[i] = p,
                None => {
                    at.insert(p.id.clone(), latest.len());
                    latest.push(p);
                }
            }
        }
        let ids: Vec<String> = latest.iter().map(|p| p.id.clone()).collect();
        let stored = self.links_by_id(run.store_id, &ids).await?;
        let mut links: Vec<CatalogLink> = latest
            .iter()
            .map(|p| CatalogLink::observe(stored.get(&p.id), p, now))
            .collect();
        let observed = self.resolve(conn, run, &mut links).await?;
        let updates: Vec<CatalogLinkUpdate> = links
            .iter()
            .filter(|l| stored.get(&l.lightspeed_product_id) != Some(*l))
            .map(|l| CatalogLinkUpdate {
                link: l.clone(),
                previous_sku_key: stored
                    .get(&l.lightspeed_product_id)
                    .map(|p| p.sku_key.clone()),
            })
            .collect();
        self.put_links(run.store_id, &updates).await?;
        self.seed_baselines(run, &links, &observed).await?;

        // Products whose level must be published now: untracked ones that are new or
        // changed, and tracked ones whose link or tracking changed (their inventory records
        // may be older than the cursor, so their level is read directly).
        let mut candidates = Vec::new();
        for link in &links {
            let before = stored.get(&link.lightspeed_product_id);
            let changed = before.is_none_or(|b| {
                b.target != link.target
                    || b.status != link.status
                    || b.has_inventory != link.has_inventory
                    || b.live != link.live
            });
            if !changed || !link.live {
                continue;
            }
            if !link.has_inventory {
                candidates.push(Candidate {
                    link: link.clone(),
                    ls_level: None,
                });
            } else if before.is_some() && link.status == super::LinkStatus::Linked {
                let records = api!(
                    self,
                    run,
                    Lightspeed,
                    self.lightspeed
                        .product_inventory(conn, &link.lightspeed_product_id)
                )
                .map_err(|e| Fail::api("reading a product's Lightspeed inventory", e))?;
                let level = records
                    .iter()
                    .filter(|r| r.outlet_id == run.outlet_id)
                    .max_by_key(|r| r.version)
                    .map(|r| r.inventory_level)
                    .unwrap_or_default();
                candidates.push(Candidate {
                    link: link.clone(),
                    ls_level: Some(level),
                });
            }
        }
        self.publish(conn, run, candidates, context).await
    }

    /// One page of the inventory feed.
    async fn apply_inventory(
        &self,
        conn: &Connection,
        run: &mut Run,
        records: Vec<InventoryRecord>,
        context: &str,
    ) -> Result<(), Fail> {
        let now = self.clock.now();
        run.report.records += records.len() as u64;
        // S3: only the outlet of the connection's register; the newest record per product.
        let mut levels: Vec<(String, Decimal)> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        for r in records {
            if r.outlet_id != run.outlet_id {
                run.report.other_outlet += 1;
                continue;
            }
            match at.get(&r.product_id) {
                Some(&i) => levels[i].1 = r.inventory_level,
                None => {
                    at.insert(r.product_id.clone(), levels.len());
                    levels.push((r.product_id, r.inventory_level));
                }
            }
        }
        if levels.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = levels.iter().map(|(id, _)| id.clone()).collect();
        let stored = self.links_by_id(run.store_id, &ids).await?;
        let mut links: Vec<CatalogLink> = Vec::with_capacity(ids.len());
        for id in &ids {
            match stored.get(id) {
                Some(l) => links.push(l.clone()),
                None => {
                    // A product newer than the products cursor: read it once.
                    let product =
                        api!(self, run, Lightspeed, self.lightspeed.get_product(conn, id))
                            .map_err(|e| Fail::api("reading a Lightspeed product", e))?;
                    if let Some(p) = product {
                        links.push(CatalogLink::observe(None, &p, now));
                    } else {
                        run.report.deleted += 1;
                    }
                }
            }
        }
        let observed = self.resolve(conn, run, &mut links).await?;
        let updates: Vec<CatalogLinkUpdate> = links
            .iter()
            .filter(|l| stored.get(&l.lightspeed_product_id) != Some(*l))
            .map(|l| CatalogLinkUpdate {
                link: l.clone(),
                previous_sku_key: stored
                    .get(&l.lightspeed_product_id)
                    .map(|p| p.sku_key.clone()),
            })
            .collect();
        self.put_links(run.store_id, &updates).await?;
        self.seed_baselines(run, &links, &observed).await?;
        let level_of: HashMap<&str, Decimal> =
            levels.iter().map(|(id, l)| (id.as_str(), *l)).collect();
        let candidates = links
            .into_iter()
            .map(|link| {
                let ls_level = level_of.get(link.lightspeed_product_id.as_str()).copied();
                Candidate { link, ls_level }
            })
            .collect();
        self.publish(conn, run, candidates, context).await
    }

    /// Re-publishes products whose pending web quantity dropped since the last runs, from
    /// the Lightspeed level they were last published with (see the parent module).
    async fn republish_pending_drops(&self, conn: &Connection, run: &mut Run) -> Result<(), Fail> {
        let dropped = pending_dropped(&run.snapshot_before, &run.pending);
        if dropped.is_empty() {
            return Ok(());
        }
        let owners = self
            .store
            .lightspeed_products_with_sku(run.store_id, &dropped)
            .await
            .map_err(|e| Fail::store("reading the SKU index", e))?;
        let ids: Vec<String> = owners.into_values().flatten().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let links = self.links_by_id(run.store_id, &ids).await?;
        let pushed = self.pushed_by_id(run.store_id, &ids).await?;
        let mut candidates = Vec::new();
        for (id, p) in &pushed {
            let Some(link) = links.get(id) else { continue };
            let now_pending = run.pending.get(&link.sku_key).copied().unwrap_or_default();
            if p.ls_level.is_some() && p.pending > now_pending {
                candidates.push(Candidate {
                    link: link.clone(),
                    ls_level: p.ls_level,
                });
            }
        }
        run.report.pending_republished += candidates.len() as u64;
        let context = format!(
            "pending:{}:{}",
            run.cursor.inventory_version, run.cursor.version
        );
        self.publish(conn, run, candidates, &context).await
    }

    /// Decides, writes and records the levels of `candidates` (invariant 6).
    async fn publish(
        &self,
        conn: &Connection,
        run: &mut Run,
        candidates: Vec<Candidate>,
        context: &str,
    ) -> Result<(), Fail> {
        if candidates.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let keys: Vec<String> = candidates
            .iter()
            .filter(|c| c.link.live && !c.link.sku_key.is_empty())
            .map(|c| c.link.sku_key.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let owners = if keys.is_empty() {
            HashMap::new()
        } else {
            self.store
                .lightspeed_products_with_sku(run.store_id, &keys)
                .await
                .map_err(|e| Fail::store("reading the SKU index", e))?
        };
        let ids: Vec<String> = candidates
            .iter()
            .map(|c| c.link.lightspeed_product_id.clone())
            .collect();
        let pushed = self.pushed_by_id(run.store_id, &ids).await?;

        let mut writes: Vec<Write> = Vec::new();
        let mut refresh: Vec<PushedStock> = Vec::new();
        for c in candidates {
            let link = c.link;
            let n_owners = owners.get(&link.sku_key).map_or(1, Vec::len);
            let target = match eligibility(&link, n_owners) {
                Ok(t) => t,
                Err(skip) => {
                    run.report.note_skip(skip, &link.sku);
                    continue;
                }
            };
            let pending = if link.has_inventory {
                run.pending.get(&link.sku_key).copied().unwrap_or_default()
            } else {
                Decimal::ZERO
            };
            let level = match (link.has_inventory, c.ls_level) {
                (false, _) => StockLevel::Unlimited,
                (true, Some(l)) => level_to_publish(true, l, pending),
                (true, None) => continue,
            };
            let record = PushedStock {
                lightspeed_product_id: link.lightspeed_product_id.clone(),
                target,
                level,
                ls_level: c.ls_level.filter(|_| link.has_inventory),
                pending,
                updated_at: now,
            };
            match pushed.get(&link.lightspeed_product_id) {
                Some(p) if p.target == target && p.level == level => {
                    run.report.unchanged += 1;
                    if p.ls_level != record.ls_level || p.pending != record.pending {
                        refresh.push(record);
                    }
                }
                _ => writes.push(Write { record, link }),
            }
        }

        let outcomes = self.write_levels(conn, run, &writes, context).await?;
        let mut done = refresh;
        let mut stale: Vec<CatalogLinkUpdate> = Vec::new();
        let mut retry: Option<String> = None;
        for (w, outcome) in writes.into_iter().zip(outcomes) {
            match outcome {
                WriteOutcome::Written => {
                    run.report.written += 1;
                    if w.record.level == StockLevel::Unlimited {
                        run.report.set_unlimited += 1;
                    }
                    done.push(w.record);
                }
                WriteOutcome::Gone => {
                    run.report.stale_links += 1;
                    tracing::warn!(store_id = run.store_id, sku = %w.link.sku, target = %w.record.target, "Ecwid has no such product or combination any more; the link is looked up again next time");
                    stale.push(CatalogLinkUpdate {
                        previous_sku_key: Some(w.link.sku_key.clone()),
                        link: w.link.stale(now),
                    });
                }
                WriteOutcome::Rejected(detail) => {
                    run.report.rejected += 1;
                    tracing::error!(store_id = run.store_id, sku = %w.link.sku, target = %w.record.target, %detail, "Ecwid refused a stock write");
                }
                WriteOutcome::Retry(detail) => {
                    retry.get_or_insert(detail);
                }
            }
        }
        // What succeeded is recorded even when the page fails, so its repeat does not
        // write it again.
        if !done.is_empty() {
            self.store
                .put_pushed_stock(run.store_id, &done)
                .await
                .map_err(|e| Fail::store("recording pushed stock", e))?;
        }
        self.put_links(run.store_id, &stale).await?;
        match retry {
            None => Ok(()),
            Some(detail) => Err(Fail::api(
                "writing stock to Ecwid",
                ApiError::Unavailable { detail },
            )),
        }
    }

    /// Writes levels to Ecwid: single PUTs for a few, batches of up to `batch_max` for many.
    /// Returns one outcome per write, in order.
    async fn write_levels(
        &self,
        conn: &Connection,
        run: &mut Run,
        writes: &[Write],
        context: &str,
    ) -> Result<Vec<WriteOutcome>, Fail> {
        let mut outcomes = Vec::with_capacity(writes.len());
        if writes.is_empty() {
            return Ok(outcomes);
        }
        if writes.len() <= self.config.batch_threshold {
            for w in writes {
                let result = api!(
                    self,
                    run,
                    Ecwid,
                    self.ecwid.set_stock(conn, &w.record.target, w.record.level)
                );
                let outcome = match result {
                    Ok(()) => {
                        run.report.written_by_put += 1;
                        WriteOutcome::Written
                    }
                    Err(ApiError::NotFound { .. }) => WriteOutcome::Gone,
                    Err(e @ ApiError::Unauthorized { .. }) => {
                        return Err(Fail::api("writing stock to Ecwid", e));
                    }
                    Err(e) if e.is_retryable() => WriteOutcome::Retry(e.to_string()),
                    Err(e) => WriteOutcome::Rejected(e.to_string()),
                };
                outcomes.push(outcome);
            }
            return Ok(outcomes);
        }
        for (i, chunk) in writes
            .chunks(self.config.batch_max.clamp(1, 500))
            .enumerate()
        {
            let pairs: Vec<(EcwidTarget, StockLevel)> = chunk
                .iter()
                .map(|w| (w.record.target, w.record.level))
                .collect();
            let batch_context = format!("{context}:{i}");
            outcomes.extend(self.write_batch(conn, run, &pairs, &batch_context).await?);
        }
        Ok(outcomes)
    }

    /// Writes one batch; one outcome per write, in order. See [`batch_dedup_key`] for which
    /// key a batch carries. First the page's deterministic key: a batch whose outcome an
    /// earlier attempt left unknown is found again rather than sent twice. When Ecwid's
    /// answer under it is a known failure (this run's, or the replay of an earlier run's),
    /// the failed sub-requests are sent once more under a key that names this run, which
    /// Ecwid has never seen; what still fails then fails the page, and the next run repeats
    /// this under its own fresh key.
    async fn write_batch(
        &self,
        conn: &Connection,
        run: &mut Run,
        pairs: &[(EcwidTarget, StockLevel)],
        context: &str,
    ) -> Result<Vec<WriteOutcome>, Fail> {
        let requests = batch_requests(pairs);
        let key = batch_dedup_key(run.store_id, context, &requests);
        let mut outcomes = match self.run_batch(conn, run, &key, &requests).await? {
            BatchRun::Final(outcomes) => outcomes,
            BatchRun::Unknown(outcomes) => return Ok(outcomes),
        };
        let failed: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, WriteOutcome::Retry(_)))
            .map(|(j, _)| j)
            .collect();
        if failed.is_empty() {
            return Ok(outcomes);
        }
        // The key is spent. A short pause first, as for any retry, when the run has time.
        let Some(wait) = self.pause_for(
            run,
            &ApiError::Unavailable {
                detail: "batch failed".into(),
            },
            0,
        ) else {
            return Ok(outcomes);
        };
        self.clock.sleep(wait).await;
        let retry_pairs: Vec<(EcwidTarget, StockLevel)> =
            failed.iter().map(|&j| pairs[j]).collect();
        let retry_requests = batch_requests(&retry_pairs);
        let retry_key = batch_dedup_key(
            run.store_id,
            &format!("{context}:resend:{}", run.batch_salt),
            &retry_requests,
        );
        tracing::info!(
            store_id = run.store_id,
            failed = failed.len(),
            spent_key = %key,
            %retry_key,
            "Ecwid batch had failed sub-requests; re-sending them under a fresh key"
        );
        let retried = match self
            .run_batch(conn, run, &retry_key, &retry_requests)
            .await?
        {
            BatchRun::Final(o) | BatchRun::Unknown(o) => o,
        };
        for (j, outcome) in failed.into_iter().zip(retried) {
            outcomes[j] = outcome;
        }
        Ok(outcomes)
    }

    /// Sends one batch under `key` and waits for its result: one outcome per request.
    async fn run_batch(
        &self,
        conn: &Connection,
        run: &mut Run,
        key: &str,
        requests: &[BatchRequest],
    ) -> Result<BatchRun, Fail> {
        let all = |outcome: WriteOutcome| requests.iter().map(|_| outcome.clone()).collect();
        // A POST that failed is re-sent with the same key (its outcome is unknown).
        let ticket = api!(
            self,
            run,
            Ecwid,
            self.ecwid.submit_batch(conn, key, requests)
        );
        let ticket = match ticket {
            Ok(t) => t,
            Err(e @ ApiError::Unauthorized { .. }) => {
                return Err(Fail::api("sending a batch to Ecwid", e));
            }
            // Refused as a whole: the same batch would be refused again.
            Err(e) if !e.is_retryable() => {
                return Ok(BatchRun::Final(all(WriteOutcome::Rejected(e.to_string()))));
            }
            Err(e) => return Ok(BatchRun::Unknown(all(WriteOutcome::Retry(e.to_string())))),
        };
        run.report.batches += 1;
        let status = match self.poll_batch(conn, run, &ticket).await {
            Ok(status) => status,
            Err(e) => return Ok(BatchRun::Unknown(all(WriteOutcome::Retry(e.to_string())))),
        };
        if let BatchState::Failed(s) = status.state() {
            return Ok(BatchRun::Final(all(WriteOutcome::Retry(format!(
                "batch {ticket} ended {s}"
            )))));
        }
        let by_id: HashMap<&str, &BatchResponse> = status
            .responses
            .iter()
            .map(|r| (r.id.as_str(), r))
            .collect();
        let mut outcomes = Vec::with_capacity(requests.len());
        for (j, r) in requests.iter().enumerate() {
            let outcome = classify_batch_response(by_id.get(r.id.as_str()).copied());
            if outcome == WriteOutcome::Written {
                run.report.written_by_batch += 1;
            }
            debug_assert_eq!(r.id, j.to_string());
            outcomes.push(outcome);
        }
        Ok(BatchRun::Final(outcomes))
    }

    /// Polls a batch until Ecwid reports it ended, or the poll timeout passes. `QUEUED` and
    /// `IN_PROGRESS` (whose `responses` are `null`) mean not done yet.
    async fn poll_batch(
        &self,
        conn: &Connection,
        run: &mut Run,
        ticket: &str,
    ) -> Result<BatchStatus, ApiError> {
        let give_up = self.clock.now() + chrono_duration(self.config.batch_poll_timeout);
        loop {
            let status = api!(self, run, Ecwid, self.ecwid.batch_status(conn, ticket))?;
            run.report.batch_polls += 1;
            if status.state() != BatchState::Pending {
                return Ok(status);
            }
            if self.clock.now() >= give_up {
                return Err(ApiError::Unavailable {
                    detail: format!("batch {ticket} still {} after polling", status.status),
                });
            }
            self.clock.sleep(self.config.batch_poll_interval).await;
        }
    }

    /// Looks up the Ecwid side of every link that needs it, in place. Returns the level
    /// Ecwid shows for each newly linked product.
    async fn resolve(
        &self,
        conn: &Connection,
        run: &mut Run,
        links: &mut [CatalogLink],
    ) -> Result<HashMap<String, Option<StockLevel>>, Fail> {
        let mut observed = HashMap::new();
        let now = self.clock.now();
        let recheck = chrono_duration(self.config.recheck_unlinked_after);
        let due = |l: &CatalogLink| {
            l.needs_lookup()
                || (l.live
                    && !l.sku_key.is_empty()
                    && matches!(
                        l.status,
                        super::LinkStatus::Missing | super::LinkStatus::Ambiguous
                    )
                    && l.checked_at.is_none_or(|at| now - at >= recheck))
        };
        let need: Vec<usize> = (0..links.len()).filter(|&i| due(&links[i])).collect();
        if need.is_empty() {
            return Ok(observed);
        }
        if run.catalog.is_none() && !run.scan_declined && need.len() >= self.config.catalog_scan_min
        {
            self.maybe_scan_catalog(conn, run, need.len()).await?;
        }
        for i in need {
            let key = links[i].sku_key.clone();
            let resolution = match &run.catalog {
                Some(catalog) => catalog.lookup(&key),
                None => {
                    let sku = links[i].sku.trim().to_string();
                    let found = api!(
                        self,
                        run,
                        Ecwid,
                        self.ecwid.find_products_by_sku(conn, &sku)
                    )
                    .map_err(|e| Fail::api("looking a SKU up in Ecwid", e))?;
                    run.report.ecwid_sku_lookups += 1;
                    EcwidCatalogIndex::from_products(&found).lookup(&key)
                }
            };
            if let Resolution::Linked { level, .. } = &resolution {
                observed.insert(links[i].lightspeed_product_id.clone(), *level);
            }
            links[i] = links[i].resolved(&resolution, now);
            run.report.links_resolved += 1;
        }
        Ok(observed)
    }

    /// Reads the whole Ecwid catalog into the run when that costs fewer requests than
    /// `lookups` single SKU lookups.
    async fn maybe_scan_catalog(
        &self,
        conn: &Connection,
        run: &mut Run,
        lookups: usize,
    ) -> Result<(), Fail> {
        let limit = self.config.ecwid_page_size.clamp(1, 100);
        let first = api!(self, run, Ecwid, self.ecwid.list_products(conn, 0, limit))
            .map_err(|e| Fail::api("reading the Ecwid catalog", e))?;
        let pages = first.total.div_ceil(limit);
        if pages as usize > lookups {
            run.scan_declined = true;
            return Ok(());
        }
        // The scan may outlast the run's budget (it cannot be resumed); the lease is renewed.
        let budget = run.deadline;
        run.deadline = budget.max(self.clock.now() + chrono_duration(self.config.max_catalog_scan));
        let scanned = self.scan_rest(conn, run, first, limit).await;
        run.deadline = budget;
        run.catalog = Some(scanned?);
        run.report.catalog_scans += 1;
        Ok(())
    }

    async fn scan_rest(
        &self,
        conn: &Connection,
        run: &mut Run,
        first: super::EcwidProductPage,
        limit: u64,
    ) -> Result<EcwidCatalogIndex, Fail> {
        let mut index = EcwidCatalogIndex::new();
        let mut page = first;
        let mut offset = 0u64;
        loop {
            let n = page.items.len() as u64;
            for p in &page.items {
                index.add(p);
            }
            offset += n;
            if n == 0 || offset >= page.total {
                break;
            }
            self.renew_if_due(run).await?;
            page = api!(
                self,
                run,
                Ecwid,
                self.ecwid.list_products(conn, offset, limit)
            )
            .map_err(|e| Fail::api("reading the Ecwid catalog", e))?;
        }
        Ok(index)
    }

    /// For newly linked products without a pushed level for that target, records the level
    /// Ecwid shows now, so a level Ecwid already has is not written again.
    async fn seed_baselines(
        &self,
        run: &mut Run,
        links: &[CatalogLink],
        observed: &HashMap<String, Option<StockLevel>>,
    ) -> Result<(), Fail> {
        let seen: Vec<(&CatalogLink, StockLevel)> = links
            .iter()
            .filter_map(|l| {
                let level = (*observed.get(&l.lightspeed_product_id)?)?;
                Some((l, level))
            })
            .collect();
        if seen.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = seen
            .iter()
            .map(|(l, _)| l.lightspeed_product_id.clone())
            .collect();
        let pushed = self.pushed_by_id(run.store_id, &ids).await?;
        let now = self.clock.now();
        let baselines: Vec<PushedStock> = seen
            .into_iter()
            .filter_map(|(l, level)| {
                let target = l.target?;
                let known = pushed
                    .get(&l.lightspeed_product_id)
                    .is_some_and(|p| p.target == target);
                (!known).then(|| PushedStock {
                    lightspeed_product_id: l.lightspeed_product_id.clone(),
                    target,
                    level,
                    ls_level: None,
                    pending: Decimal::ZERO,
                    updated_at: now,
                })
            })
            .collect();
        if baselines.is_empty() {
            return Ok(());
        }
        self.store
            .put_pushed_stock(run.store_id, &baselines)
            .await
            .map_err(|e| Fail::store("recording the levels Ecwid shows", e))
    }

    // -----------------------------------------------------------------------------------
    // The cursor
    // -----------------------------------------------------------------------------------

    /// Claims the cursor: `Ok(Ok(cursor))`, or `Ok(Err(until))` when another run holds it.
    async fn claim(
        &self,
        store_id: u64,
    ) -> Result<Result<InventoryCursor, DateTime<Utc>>, StoreError> {
        let lease = chrono_duration(self.config.lease);
        for _ in 0..3 {
            let existing = self.store.get_inventory_cursor(store_id).await?;
            match claim_cursor(existing.as_ref(), store_id, self.clock.now(), lease) {
                CursorClaim::Busy { until } => return Ok(Err(until)),
                CursorClaim::Claim {
                    cursor,
                    expected_version,
                } => match self
                    .store
                    .put_inventory_cursor(&cursor, expected_version)
                    .await
                {
                    Ok(()) => return Ok(Ok(cursor)),
                    Err(StoreError::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                },
            }
        }
        let until = self.clock.now();
        Ok(Err(until))
    }

    /// Saves the cursor after `change`, renewing the lease (or releasing it), conditional on
    /// the version this run wrote last.
    async fn save_cursor(
        &self,
        run: &mut Run,
        release: bool,
        change: impl FnOnce(&mut InventoryCursor),
    ) -> Result<(), Fail> {
        if !run.claimed {
            change(&mut run.cursor);
            return Ok(());
        }
        let now = self.clock.now();
        let mut next = run.cursor.clone();
        change(&mut next);
        next.lease_until = if release {
            None
        } else {
            Some(now + chrono_duration(self.config.lease))
        };
        next.updated_at = now;
        next.version = run.cursor.version + 1;
        match self
            .store
            .put_inventory_cursor(&next, Some(run.cursor.version))
            .await
        {
            Ok(()) => {
                run.cursor = next;
                run.renewed_at = now;
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Err(Fail {
                doing: "saving the inventory cursor".into(),
                failure: MirrorFailure::LeaseLost,
            }),
            Err(e) => Err(Fail::store("saving the inventory cursor", e)),
        }
    }

    /// Renews a claimed lease once a third of it has passed (long reads of a reconcile).
    async fn renew_if_due(&self, run: &mut Run) -> Result<(), Fail> {
        let due = run.renewed_at + chrono_duration(self.config.lease / 3);
        if run.claimed && self.clock.now() >= due {
            self.save_cursor(run, false, |_| {}).await?;
        }
        Ok(())
    }

    /// Releases the lease and leaves the pending snapshot for the next run.
    async fn release(&self, run: &mut Run, drained: bool) -> Result<(), Fail> {
        let snapshot = next_pending_snapshot(&run.snapshot_before, &run.pending, drained);
        self.save_cursor(run, true, move |c| c.pending_snapshot = snapshot)
            .await
    }

    // -----------------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------------

    fn count(&self, run: &mut Run, system: System) {
        match system {
            System::Lightspeed => run.report.lightspeed_requests += 1,
            System::Ecwid => run.report.ecwid_requests += 1,
        }
    }

    /// How long to wait before retrying after `e`, or None to give up.
    fn pause_for(&self, run: &Run, e: &ApiError, attempt: u32) -> Option<Duration> {
        let wait = match e {
            ApiError::RateLimited { retry_after } => {
                let wait = retry_after.unwrap_or(self.config.default_rate_limit_wait);
                if wait > self.config.max_rate_limit_wait || attempt >= 10 {
                    return None;
                }
                wait
            }
            ApiError::Unavailable { .. } | ApiError::OutcomeUnknown { .. } => {
                if attempt >= self.config.retries {
                    return None;
                }
                self.config.retry_base * 2u32.saturating_pow(attempt.min(8))
            }
            _ => return None,
        };
        (self.clock.now() + chrono_duration(wait) < run.deadline).then_some(wait)
    }

    async fn links_by_id(
        &self,
        store_id: u64,
        ids: &[String],
    ) -> Result<HashMap<String, CatalogLink>, Fail> {
        Ok(self
            .store
            .get_catalog_links(store_id, ids)
            .await
            .map_err(|e| Fail::store("reading catalog links", e))?
            .into_iter()
            .map(|l| (l.lightspeed_product_id.clone(), l))
            .collect())
    }

    async fn pushed_by_id(
        &self,
        store_id: u64,
        ids: &[String],
    ) -> Result<HashMap<String, PushedStock>, Fail> {
        Ok(self
            .store
            .get_pushed_stock(store_id, ids)
            .await
            .map_err(|e| Fail::store("reading pushed stock", e))?
            .into_iter()
            .map(|p| (p.lightspeed_product_id.clone(), p))
            .collect())
    }

    async fn put_links(&self, store_id: u64, updates: &[CatalogLinkUpdate]) -> Result<(), Fail> {
        if updates.is_empty() {
            return Ok(());
        }
        self.store
            .put_catalog_links(store_id, updates)
            .await
            .map_err(|e| Fail::store("saving catalog links", e))
    }
}

// ---------------------------------------------------------------------------------------
// Reconcile
// ---------------------------------------------------------------------------------------

/// What `reconcile` reports while it reads (for a progress bar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileProgress {
    /// A new phase starts; `total` items are expected when known.
    Phase {
        name: &'static str,
        total: Option<u64>,
    },
    /// `n` more items of the current phase are done.
    Advance(u64),
}

impl<S, E, L, C> InventoryMirror<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + InventoryStateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    /// Compares every Lightspeed product's expected Ecwid level (the mirror's rule) with
    /// what Ecwid shows, reading both catalogs in full. With `fix`, writes the expected
    /// level of every drifted product (under the cursor's lease, so no mirror run races
    /// it) and records it as pushed. Nothing is ever written to Lightspeed (S2).
    pub async fn reconcile(
        &self,
        conn: &Connection,
        fix: bool,
        progress: &(dyn Fn(ReconcileProgress) + Send + Sync),
    ) -> Result<ReconcileReport, MirrorError> {
        let store_id = conn.store_id;
        let started = self.clock.now();
        let fail = |f: Fail, report: MirrorReport| MirrorError {
            store_id,
            doing: f.doing,
            failure: f.failure,
            report: Box::new(report),
        };
        let (cursor, claimed) = if fix {
            match self.claim(store_id).await {
                Ok(Ok(c)) => (c, true),
                Ok(Err(until)) => {
                    return Err(fail(
                        Fail {
                            doing: "claiming the inventory cursor".into(),
                            failure: MirrorFailure::Busy { until },
                        },
                        MirrorReport::new(store_id),
                    ));
                }
                Err(e) => {
                    return Err(fail(
                        Fail::store("claiming the inventory cursor", e),
                        MirrorReport::new(store_id),
                    ));
                }
            }
        } else {
            let c = match claim_cursor(None, store_id, started, chrono::Duration::zero()) {
                CursorClaim::Claim { cursor, .. } => cursor,
                CursorClaim::Busy { .. } => unreachable!("a fresh cursor is never busy"),
            };
            (c, false)
        };
        let batch_salt = run_salt(&cursor, started);
        // Reads are not bound by the schedule's budget: a reconcile of a large catalog
        // takes as long as the rate limits make it.
        let mut run = Run {
            store_id,
            outlet_id: conn.outlet_id.clone(),
            snapshot_before: cursor.pending_snapshot.clone(),
            cursor,
            claimed,
            pending: BTreeMap::new(),
            catalog: None,
            scan_declined: false,
            renewed_at: started,
            report: MirrorReport::new(store_id),
            deadline: started + chrono::Duration::days(1),
            batch_salt,
        };
        let result = self.reconcile_run(conn, &mut run, fix, progress).await;
        let released = if run.claimed {
            self.save_cursor(&mut run, true, |_| {}).await
        } else {
            Ok(())
        };
        match (result, released) {
            (Ok(report), Ok(())) => Ok(report),
            (Err(f), _) | (Ok(_), Err(f)) => Err(fail(f, run.report)),
        }
    }

    async fn reconcile_run(
        &self,
        conn: &Connection,
        run: &mut Run,
        fix: bool,
        progress: &(dyn Fn(ReconcileProgress) + Send + Sync),
    ) -> Result<ReconcileReport, Fail> {
        // Lightspeed products, every page.
        progress(ReconcileProgress::Phase {
            name: "Lightspeed products",
            total: None,
        });
        let mut products: HashMap<String, LsProduct> = HashMap::new();
        let mut after = 0u64;
        loop {
            let page = api!(
                self,
                run,
                Lightspeed,
                self.lightspeed
                    .product_changes(conn, after, self.config.page_size)
            )
            .map_err(|e| Fail::api("reading Lightspeed products", e))?;
            if page.items.is_empty() {
                break;
            }
            progress(ReconcileProgress::Advance(page.items.len() as u64));
            self.renew_if_due(run).await?;
            after = next_after(after, page.max_version, "products")?;
            for p in page.items {
                products.insert(p.id.clone(), p);
            }
        }
        // Lightspeed levels at the connection's outlet.
        progress(ReconcileProgress::Phase {
            name: "Lightspeed inventory",
            total: None,
        });
        let mut levels: HashMap<String, (u64, Decimal)> = HashMap::new();
        let mut after = 0u64;
        loop {
            let page = api!(
                self,
                run,
                Lightspeed,
                self.lightspeed
                    .inventory_changes(conn, after, self.config.page_size)
            )
            .map_err(|e| Fail::api("reading Lightspeed inventory", e))?;
            if page.items.is_empty() {
                break;
            }
            progress(ReconcileProgress::Advance(page.items.len() as u64));
            self.renew_if_due(run).await?;
            after = next_after(after, page.max_version, "inventory")?;
            for r in page.items {
                if r.outlet_id == run.outlet_id {
                    let e = levels.entry(r.product_id).or_insert((0, Decimal::ZERO));
                    if r.version >= e.0 {
                        *e = (r.version, r.inventory_level);
                    }
                }
            }
        }
        // The Ecwid catalog.
        let limit = self.config.ecwid_page_size.clamp(1, 100);
        let mut catalog = EcwidCatalogIndex::new();
        let mut offset = 0u64;
        let mut phase_started = false;
        loop {
            let page = api!(
                self,
                run,
                Ecwid,
                self.ecwid.list_products(conn, offset, limit)
            )
            .map_err(|e| Fail::api("reading the Ecwid catalog", e))?;
            if !phase_started {
                progress(ReconcileProgress::Phase {
                    name: "Ecwid products",
                    total: Some(page.total),
                });
                phase_started = true;
            }
            let n = page.items.len() as u64;
            progress(ReconcileProgress::Advance(n));
            self.renew_if_due(run).await?;
            for p in &page.items {
                catalog.add(p);
            }
            offset += n;
            if n == 0 || offset >= page.total {
                break;
            }
        }
        let pending = self
            .store
            .list_pending_web_sales(run.store_id)
            .await
            .map_err(|e| Fail::store("reading pending web sales", e))?;
        let pending = pending_by_sku(&pending);
        let mut products: Vec<LsProduct> = products.into_values().collect();
        products.sort_by(|a, b| a.id.cmp(&b.id));
        let levels: HashMap<String, Decimal> =
            levels.into_iter().map(|(k, (_, l))| (k, l)).collect();
        let mut report = reconcile::compare(run.store_id, &products, &levels, &catalog, &pending);

        if fix && !report.drift.is_empty() {
            progress(ReconcileProgress::Phase {
                name: "writing Ecwid stock",
                total: Some(report.drift.len() as u64),
            });
            let now = self.clock.now();
            let by_id: HashMap<&str, &LsProduct> =
                products.iter().map(|p| (p.id.as_str(), p)).collect();
            let ids: Vec<String> = report
                .drift
                .iter()
                .map(|d| d.lightspeed_product_id.clone())
                .collect();
            let stored = self.links_by_id(run.store_id, &ids).await?;
            let mut writes = Vec::with_capacity(report.drift.len());
            let mut link_updates = Vec::new();
            for d in &report.drift {
                let Some(p) = by_id.get(d.lightspeed_product_id.as_str()) else {
                    continue;
                };
                let before = stored.get(&d.lightspeed_product_id);
                let link = CatalogLink::observe(before, p, now).resolved(
                    &Resolution::Linked {
                        target: d.target,
                        level: d.actual,
                    },
                    now,
                );
                if before != Some(&link) {
                    link_updates.push(CatalogLinkUpdate {
                        link: link.clone(),
                        previous_sku_key: before.map(|b| b.sku_key.clone()),
                    });
                }
                writes.push(Write {
                    record: PushedStock {
                        lightspeed_product_id: d.lightspeed_product_id.clone(),
                        target: d.target,
                        level: d.expected,
                        ls_level: d.ls_level,
                        pending: d.pending,
                        updated_at: now,
                    },
                    link,
                });
            }
            self.put_links(run.store_id, &link_updates).await?;
            let context = format!("reconcile:{}", now.timestamp_nanos_opt().unwrap_or(0));
            let outcomes = self.write_levels(conn, run, &writes, &context).await?;
            let mut done = Vec::new();
            for (w, outcome) in writes.into_iter().zip(outcomes) {
                let ok = outcome == WriteOutcome::Written;
                if let Some(row) = report
                    .drift
                    .iter_mut()
                    .find(|d| d.lightspeed_product_id == w.record.lightspeed_product_id)
                {
                    row.fixed = ok;
                }
                if ok {
                    report.fixed += 1;
                    done.push(w.record);
                } else {
                    report.fix_failed += 1;
                }
                progress(ReconcileProgress::Advance(1));
            }
            if !done.is_empty() {
                self.store
                    .put_pushed_stock(run.store_id, &done)
                    .await
                    .map_err(|e| Fail::store("recording pushed stock", e))?;
            }
        }
        Ok(report)
    }
}

/// The `after` of the next page: the page's `version.max`, which must move forward.
fn next_after(after: u64, max_version: Option<u64>, feed: &str) -> Result<u64, Fail> {
    match max_version {
        Some(max) if max > after => Ok(max),
        _ => Err(Fail::api(
            format!("reading the Lightspeed {feed} feed"),
            ApiError::Decode {
                detail: format!("a page after version {after} did not move the version forward"),
            },
        )),
    }
}

/// What names a run in the key of a re-sent batch ([`Run::batch_salt`]).
fn run_salt(cursor: &InventoryCursor, started: DateTime<Utc>) -> String {
    format!("{}@{}", cursor.version, started.timestamp_millis())
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d)
        .unwrap_or(chrono::Duration::days(365))
        .min(chrono::Duration::days(365))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeEcwid, FakeLightspeed, OUTLET, STORE, TestClock, connection};
    use crate::ledger::{self, ClaimDecision, LedgerEntry, LedgerLine, OrderKey, Outcome};
    use crate::memory::MemoryStore;

    struct World {
        store: MemoryStore,
        ecwid: FakeEcwid,
        lightspeed: FakeLightspeed,
        clock: TestClock,
    }

    impl World {
        async fn new(connection: Connection) -> Self {
            let world = Self {
                store: MemoryStore::new(),
                ecwid: FakeEcwid::default(),
                lightspeed: FakeLightspeed::default(),
                clock: TestClock::new(),
            };
            world.store.put_connection(&connection, None).await.unwrap();
            world
        }

        /// Lightspeed's `ls-mug` (SKU MUG, `level` at the outlet) and Ecwid's product 11
        /// (SKU MUG, `ecwid_level`).
        async fn with_mug(level: i64, ecwid_level: i64) -> Self {
            let world = Self::new(connection()).await;
            world.lightspeed.add_product("ls-mug", "MUG", true);
            world.lightspeed.set_level("ls-mug", OUTLET, level);
            world.ecwid.add_product(11, "MUG", ecwid_level);
            world
        }

        fn mirror(&self) -> InventoryMirror<MemoryStore, FakeEcwid, FakeLightspeed, TestClock> {
            InventoryMirror::new(
                self.store.clone(),
                self.ecwid.clone(),
                self.lightspeed.clone(),
                self.clock.clone(),
                MirrorConfig::default(),
            )
        }

        async fn run(&self) -> Result<MirrorReport, MirrorError> {
            self.mirror()
                .mirror_store(STORE)
                .await
                .map(|r| r.expect("a connection"))
        }

        async fn cursor(&self) -> InventoryCursor {
            self.store
                .get_inventory_cursor(STORE)
                .await
                .unwrap()
                .expect("a cursor")
        }

        /// A paid order whose sale is not in Lightspeed yet: `quantity` units of `sku`.
        async fn pending_order(&self, order_id: &str, sku: &str, quantity: i64) -> LedgerEntry {
            let key = OrderKey::new(STORE, order_id);
            let now = self.clock.now();
            let ClaimDecision::Claim {
                entry,
                expected_version,
                ..
            } = ledger::claim(None, &key, now, chrono::Duration::seconds(60))
            else {
                panic!("a new order is claimed");
            };
            self.store
                .save_order(&entry, expected_version)
                .await
                .unwrap();
            let lines = vec![LedgerLine {
                sku: sku.into(),
                quantity: Decimal::from(quantity),
            }];
            let released = ledger::finish(
                &ledger::with_order_facts(&entry, Decimal::from(10), lines),
                Outcome::Released {
                    error: "Lightspeed unavailable".into(),
                    post_may_exist: false,
                },
                now,
            );
            self.store
                .save_order(&released, Some(entry.version))
                .await
                .unwrap();
            released
        }
    }

    #[tokio::test]
    async fn a_lightspeed_level_reaches_ecwid() {
        let w = World::with_mug(7, 0).await;
        let report = w.run().await.unwrap();
        assert_eq!(report.outcome, RunOutcome::Completed);
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(7)));
        assert_eq!(report.written, 1);

        // A POS sale in Lightspeed.
        w.lightspeed.set_level("ls-mug", OUTLET, 4);
        w.run().await.unwrap();
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(4)));
        assert_eq!(
            w.ecwid.writes(),
            vec![
                (EcwidTarget::product(11), StockLevel::Quantity(7)),
                (EcwidTarget::product(11), StockLevel::Quantity(4)),
            ]
        );
    }

    #[tokio::test]
    async fn a_level_ecwid_already_has_is_not_written_again() {
        // Ecwid shows the Lightspeed level already: nothing to write.
        let w = World::with_mug(7, 7).await;
        let report = w.run().await.unwrap();
        assert_eq!(report.unchanged, 1);
        assert!(w.ecwid.writes().is_empty());

        // A new inventory record with the same level (a count that found no difference).
        w.lightspeed.set_level("ls-mug", OUTLET, 7);
        let report = w.run().await.unwrap();
        assert_eq!((report.records, report.unchanged), (1, 1));
        assert!(w.ecwid.writes().is_empty());
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(7)));
    }

    #[tokio::test]
    async fn pending_web_quantities_are_subtracted_until_the_order_leaves_the_pending_set() {
        let w = World::with_mug(7, 0).await;
        let pending = w.pending_order("K1", "mug", 2).await;
        let report = w.run().await.unwrap();
        assert_eq!(report.pending_skus, 1);
        assert_eq!(
            w.ecwid.level(11),
            Some(StockLevel::Quantity(5)),
            "Ecwid took the 2 units off at checkout; Lightspeed has not seen them"
        );

        // The order leaves the pending set without a Lightspeed change (it was cancelled
        // and skipped): the next run gives the 2 units back.
        let skipped = ledger::finish(
            &pending,
            Outcome::Skipped(crate::ledger::Reason::new(
                crate::ledger::ReasonCode::NotPaid,
                "CANCELLED",
            )),
            w.clock.now(),
        );
        w.store
            .save_order(&skipped, Some(pending.version))
            .await
            .unwrap();
        let report = w.run().await.unwrap();
        assert_eq!(report.pending_republished, 1);
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(7)));
    }

    #[tokio::test]
    async fn the_cursor_moves_only_after_the_pages_writes_succeeded() {
        let w = World::with_mug(7, 0).await;
        // The write and both of its retries fail.
        w.ecwid.fail_writes((0..3).map(|i| ApiError::Unavailable {
            detail: format!("503 #{i}"),
        }));
        let failed = w.run().await.unwrap_err();
        assert!(
            matches!(
                failed.failure,
                MirrorFailure::Api(ApiError::Unavailable { .. })
            ),
            "{failed}"
        );
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(0)));
        let cursor = w.cursor().await;
        assert_eq!(cursor.inventory_version, 0, "the page is read again");
        assert_eq!(cursor.lease_until, None, "the lease is released");

        let report = w.run().await.unwrap();
        assert_eq!(report.outcome, RunOutcome::Completed);
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(7)));
        assert!(w.cursor().await.inventory_version > 0);
        assert_eq!(
            w.ecwid.writes(),
            vec![(EcwidTarget::product(11), StockLevel::Quantity(7))]
        );
    }

    #[tokio::test]
    async fn a_sku_two_lightspeed_products_share_is_never_written() {
        let w = World::with_mug(7, 0).await;
        w.lightspeed.add_product("ls-mug-2", "mug ", true);
        w.lightspeed.set_level("ls-mug-2", OUTLET, 3);
        let report = w.run().await.unwrap();
        assert!(w.ecwid.writes().is_empty());
        assert_eq!(report.ambiguous, 2);
        assert_eq!(
            report.ambiguous_skus,
            vec!["MUG".to_string(), "mug ".to_string()]
        );
    }

    #[tokio::test]
    async fn a_sku_two_ecwid_products_share_is_never_written() {
        let w = World::with_mug(7, 0).await;
        w.ecwid.add_product(12, "MUG", 0);
        let report = w.run().await.unwrap();
        assert!(w.ecwid.writes().is_empty());
        assert_eq!(report.ambiguous, 1);
        assert_eq!(report.ambiguous_skus, vec!["MUG".to_string()]);
    }

    #[tokio::test]
    async fn other_outlets_and_untracked_products_follow_their_rules() {
        let w = World::with_mug(7, 0).await;
        // S3: a level at another outlet is dropped.
        w.lightspeed.set_level("ls-mug", "outlet-2", 50);
        // Untracked in Lightspeed: unlimited in Ecwid, whatever its level.
        w.lightspeed.add_product("ls-gift", "GIFT-WRAP", false);
        w.ecwid.add_product(13, "GIFT-WRAP", 0);
        let report = w.run().await.unwrap();
        assert_eq!(report.other_outlet, 1);
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(7)));
        assert_eq!(w.ecwid.level(13), Some(StockLevel::Unlimited));
        assert_eq!(report.set_unlimited, 1);
    }

    #[tokio::test]
    async fn with_sync_off_nothing_is_read_or_written() {
        let mut conn = connection();
        conn.settings.sync_inventory = false;
        let w = World::new(conn).await;
        w.lightspeed.add_product("ls-mug", "MUG", true);
        let report = w.run().await.unwrap();
        assert_eq!(report.outcome, RunOutcome::SyncOff);
        assert!(w.lightspeed.calls().is_empty());
        assert_eq!(w.ecwid.calls(), 0);
        assert_eq!(w.store.get_inventory_cursor(STORE).await.unwrap(), None);
    }
}
