//! [`InventoryMirror`]: the service that mirrors Lightspeed stock to Ecwid (the rules are in
//! the parent module). It is generic over the ports, like [`crate::poster::SalePoster`]:
//! the `inventory-sync` Lambda, the embedded timer of `els serve` and `els sync-inventory`
//! all run the same code.
//!
//! ```ignore
//! let mirror = InventoryMirror::new(store, ecwid, lightspeed, TokioClock, MirrorConfig::default());
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
//!
//! # Where the parts are
//! This file holds the service, its run state, the cursor lease and the retrying of calls
//! (by the one policy of [`crate::retry`]);
//! the submodules hold the `feeds` (steps 2 to 4), `publishing` (deciding, writing and
//! recording levels; step 5), `batch` (Ecwid's batch API for many writes), `reconcile`
//! (the run behind `els reconcile`) and the `report` of a run.

use super::{
    CatalogLink, CatalogLinkUpdate, CursorClaim, EcwidCatalogIndex, InventoryCursor, PushedStock,
    claim_cursor, next_pending_snapshot, pending_by_sku,
};
use crate::connection::Connection;
use crate::error::{ApiError, StoreError};
use crate::ids::StoreId;
use crate::lightspeed::LsApiVersion;
use crate::ports::{
    Clock, ConnectionStore, EcwidApi, InventoryStateStore, LedgerStore, LightspeedApi,
};
use crate::retry::{Backoff, NoJitter, retry};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
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

impl MirrorConfig {
    /// The retries of a call that failed with a 5xx or a lost connection: `retries` of
    /// them, doubling from `retry_base` (at most 256 times it).
    pub fn backoff(&self) -> Backoff {
        Backoff::exponential(
            self.retries.saturating_add(1),
            self.retry_base,
            self.retry_base.saturating_mul(256),
        )
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

/// The state of one run.
struct Run {
    store_id: StoreId,
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
    /// The outlet changed since the last run: every level read is written, even one equal
    /// to the last pushed (which was the old outlet's).
    rewrite_all: bool,
    /// When the lease was last renewed (reconcile renews it while it reads).
    renewed_at: DateTime<Utc>,
    report: MirrorReport,
    deadline: DateTime<Utc>,
    /// Names this run in the key of a batch re-sent after a known failure, so that key is
    /// new to Ecwid (see [`batch_dedup_key`]): the cursor's version as claimed (every claim
    /// writes a new one) and the start time.
    batch_salt: String,
}

impl Run {
    /// A run of `conn`'s store from `cursor` (`claimed`: its lease is this run's), started at
    /// `started`, that stops starting pages at `deadline`.
    fn new(
        conn: &Connection,
        cursor: InventoryCursor,
        claimed: bool,
        report: MirrorReport,
        started: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Self {
        Run {
            store_id: conn.store_id,
            outlet_id: conn.outlet_id.clone(),
            snapshot_before: cursor.pending_snapshot.clone(),
            batch_salt: format!("{}@{}", cursor.version, started.timestamp_millis()),
            cursor,
            claimed,
            pending: BTreeMap::new(),
            catalog: None,
            scan_declined: false,
            rewrite_all: false,
            renewed_at: started,
            report,
            deadline,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum System {
    Lightspeed,
    Ecwid,
}

mod batch;
mod feeds;
mod publishing;
mod reconcile;
mod report;

pub use reconcile::ReconcileProgress;
pub use report::{MirrorError, MirrorFailure, MirrorReport, RunOutcome};

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

    pub fn clock(&self) -> &C {
        &self.clock
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
    pub async fn mirror_store(
        &self,
        store_id: StoreId,
    ) -> Result<Option<MirrorReport>, MirrorError> {
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
            tracing::debug!(
                store_id = store_id.get(),
                "sync_inventory is off; nothing mirrored (S4)"
            );
            return Ok(report);
        }
        if self.is_quiet(conn).await {
            report.quiet = true;
            report.elapsed_ms = (self.clock.now() - started).num_milliseconds().max(0) as u64;
            tracing::debug!(store_id = store_id.get(), "nothing changed; no lease taken");
            return Ok(report);
        }
        let cursor = match self.claim(store_id).await {
            Ok(Ok(c)) => c,
            Ok(Err(until)) => {
                report.outcome = RunOutcome::Busy;
                tracing::info!(store_id = store_id.get(), %until, "another inventory run holds the cursor");
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
        let deadline = started + chrono_duration(self.config.max_run);
        let mut run = Run::new(conn, cursor, true, report, started, deadline);
        let result = match self.follow_outlet(conn, &mut run).await {
            Ok(()) => self.run_feeds(conn, &mut run).await,
            Err(e) => Err(e),
        };
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
                    store_id = store_id.get(),
                    outcome = ?r.outcome,
                    written = r.written,
                    batches = r.batches,
                    unchanged = r.unchanged,
                    unlinked = r.unlinked,
                    ambiguous = r.ambiguous,
                    other_outlet = r.other_outlet,
                    rejected = r.rejected,
                    inventory_cursor = r.inventory_cursor_to,
                    products_cursor = r.products_cursor_to,
                    deferred_reason = r.deferred_reason.as_deref(),
                    // SKU samples are product codes, not personal data.
                    unlinked_skus = ?r.unlinked_skus,
                    ambiguous_skus = ?r.ambiguous_skus,
                    lightspeed_requests = r.lightspeed_requests,
                    ecwid_requests = r.ecwid_requests,
                    elapsed_ms = (self.clock.now() - started).num_milliseconds().max(0),
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
        tracing::warn!(store_id = store_id.get(), error = %error, "inventory mirror run failed; the next run resumes from the cursor");
        Err(error)
    }

    // -----------------------------------------------------------------------------------
    // The cursor
    // -----------------------------------------------------------------------------------

    /// Whether this run has nothing to do, found without writing: the cursor (read, not
    /// claimed) is free, at the connection's outlet and API generation; the pending web
    /// quantities equal its snapshot; and neither Lightspeed feed has a row after it (one
    /// page of one row each). A quiet store-minute then costs two reads and two Lightspeed
    /// requests instead of the lease's three writes. Any doubt (no cursor, a lease held,
    /// an error) is not quiet: the full run decides, and reports it.
    async fn is_quiet(&self, conn: &Connection) -> bool {
        let Ok(Some(cursor)) = self.store.get_inventory_cursor(conn.store_id).await else {
            return false;
        };
        let generation = self
            .lightspeed
            .generation_for(conn)
            .map(|g| g.as_str().to_string());
        let free = cursor.lease_until.is_none_or(|u| u <= self.clock.now());
        let same_place = cursor.outlet_id.as_deref() == Some(conn.outlet_id.as_str())
            && (generation.is_none() || cursor.api_version == generation);
        if !free || !same_place {
            return false;
        }
        match self.store.list_pending_web_sales(conn.store_id).await {
            Ok(pending) if pending_by_sku(&pending) == cursor.pending_snapshot => {}
            _ => return false,
        }
        let (inventory, products) = futures::join!(
            self.lightspeed
                .inventory_changes(conn, cursor.inventory_version, 1),
            self.lightspeed
                .product_changes(conn, cursor.products_version, 1)
        );
        matches!((inventory, products), (Ok(i), Ok(p)) if i.items.is_empty() && p.items.is_empty())
    }

    /// Claims the cursor: `Ok(Ok(cursor))`, or `Ok(Err(until))` when another run holds it.
    async fn claim(
        &self,
        store_id: StoreId,
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
    /// Records the outlet the cursor reads at; after a change of outlet (a new register),
    /// restarts the inventory feed and has this run write every level it reads. Records the
    /// API generation too; after a switch, both feeds restart (their versions may not carry
    /// over) without rewriting levels that already agree.
    async fn follow_outlet(&self, conn: &Connection, run: &mut Run) -> Result<(), Fail> {
        let outlet = run.outlet_id.clone();
        let generation = self
            .lightspeed
            .generation_for(conn)
            .map(|g| g.as_str().to_string());
        // A cursor written before generations were recorded was read on the legacy feeds.
        if run.cursor.api_version.is_none()
            && (run.cursor.inventory_version > 0 || run.cursor.products_version > 0)
        {
            run.cursor.api_version = Some(LsApiVersion::Legacy.as_str().to_string());
        }
        let same_outlet = run.cursor.outlet_id.as_deref() == Some(outlet.as_str());
        let same_generation = generation.is_none() || run.cursor.api_version == generation;
        if same_outlet && same_generation {
            return Ok(());
        }
        if let Some(previous) = run.cursor.outlet_id.as_deref().filter(|_| !same_outlet) {
            tracing::info!(
                store_id = run.store_id.get(),
                previous_outlet = previous,
                outlet = %outlet,
                "the register's outlet changed; every level is read and written again"
            );
            run.rewrite_all = true;
            run.report.inventory_cursor_from = 0;
        }
        let switched = !same_generation && run.cursor.api_version.is_some();
        if switched {
            tracing::info!(
                store_id = run.store_id.get(),
                previous = run.cursor.api_version.as_deref().unwrap_or_default(),
                now = generation.as_deref().unwrap_or_default(),
                "the Lightspeed API generation changed; the feeds are read from the start"
            );
            run.report.inventory_cursor_from = 0;
            run.report.products_cursor_from = 0;
        }
        let restart = run.rewrite_all || switched;
        self.save_cursor(run, false, move |c| {
            c.outlet_id = Some(outlet);
            if generation.is_some() {
                c.api_version = generation;
            }
            if restart {
                c.inventory_version = 0;
            }
            if switched {
                c.products_version = 0;
            }
        })
        .await
    }

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

    /// Calls an idempotent API method (`call` makes one request), waiting out 429s and
    /// retrying transient failures as the run's budget allows; counts the requests.
    async fn call<T, Fut>(
        &self,
        run: &mut Run,
        system: System,
        call: impl FnMut() -> Fut,
    ) -> Result<T, ApiError>
    where
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let result = retry(&self.clock, call, |e, failures| {
            self.count(run, system);
            let wait = self.pause_for(run, e, failures)?;
            if matches!(e, ApiError::RateLimited { .. }) {
                run.report.rate_limit_waits += 1;
            }
            tracing::debug!(store_id = run.store_id.get(), error = %e, ?wait, "waiting before a retry");
            Some(wait)
        })
        .await;
        if result.is_ok() {
            self.count(run, system);
        }
        result
    }

    /// How long to wait before retrying after `e`, the `failures`-th failure of a call, or
    /// None to give up. A 429 is waited out as Lightspeed or Ecwid asks (ten times at
    /// most, each within [`MirrorConfig::max_rate_limit_wait`]); a 5xx or a lost connection
    /// is retried by [`MirrorConfig::backoff`]; neither beyond the run's deadline.
    fn pause_for(&self, run: &Run, e: &ApiError, failures: u32) -> Option<Duration> {
        let wait = match e {
            ApiError::RateLimited { retry_after } => {
                let wait = retry_after.unwrap_or(self.config.default_rate_limit_wait);
                if wait > self.config.max_rate_limit_wait || failures > 10 {
                    return None;
                }
                wait
            }
            ApiError::Unavailable { .. } | ApiError::OutcomeUnknown { .. } => {
                self.config.backoff().wait(failures, &mut NoJitter)?
            }
            _ => return None,
        };
        (self.clock.now() + chrono_duration(wait) < run.deadline).then_some(wait)
    }

    async fn links_by_id(
        &self,
        store_id: StoreId,
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
        store_id: StoreId,
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

    async fn put_links(
        &self,
        store_id: StoreId,
        updates: &[CatalogLinkUpdate],
    ) -> Result<(), Fail> {
        if updates.is_empty() {
            return Ok(());
        }
        self.store
            .put_catalog_links(store_id, updates)
            .await
            .map_err(|e| Fail::store("saving catalog links", e))
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

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d)
        .unwrap_or(chrono::Duration::days(365))
        .min(chrono::Duration::days(365))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeEcwid, FakeLightspeed, OUTLET, STORE, TestClock, World, connection};
    use crate::inventory::{EcwidTarget, StockLevel};
    use crate::ledger::{self, ClaimDecision, LedgerEntry, LedgerLine, OrderKey, Outcome};
    use crate::memory::MemoryStore;

    impl World {
        /// Lightspeed's `ls-mug` (SKU MUG, `level` at the outlet) and Ecwid's product 11
        /// (SKU MUG, `ecwid_level`).
        async fn with_mug(level: i64, ecwid_level: i64) -> Self {
            let world = World::new(connection()).await;
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
    async fn a_run_with_nothing_to_do_writes_nothing_and_a_change_is_still_seen() {
        let w = World::with_mug(7, 0).await;
        w.run().await.unwrap();
        let before = w.cursor().await;

        let quiet = w.run().await.unwrap();
        assert!(quiet.quiet, "{quiet:?}");
        assert_eq!(quiet.outcome, RunOutcome::Completed);
        assert_eq!(w.cursor().await, before, "no lease taken, nothing saved");

        w.lightspeed.set_level("ls-mug", OUTLET, 5);
        let busy = w.run().await.unwrap();
        assert!(!busy.quiet);
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(5)));
        // A pending web quantity that moves (an order not yet posted) is not quiet: the
        // full run compares it with the snapshot (and re-publishes on a drop).
        w.pending_order("o-1", "MUG", 2).await;
        assert!(!w.run().await.unwrap().quiet);
        assert!(w.run().await.unwrap().quiet, "the snapshot now holds it");
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
    async fn a_new_register_outlet_restarts_the_feed_and_writes_every_level_again() {
        let w = World::with_mug(7, 0).await;
        w.lightspeed.set_level("ls-mug", "outlet-2", 7);
        w.run().await.unwrap();
        assert_eq!(w.cursor().await.outlet_id.as_deref(), Some(OUTLET));
        assert_eq!(w.ecwid.writes().len(), 1);

        // The merchant moves the connection to a register of outlet-2 (same level there).
        let mut conn = w.store.get_connection(STORE).await.unwrap().unwrap();
        let version = conn.version;
        conn.outlet_id = "outlet-2".into();
        conn.version += 1;
        w.store.put_connection(&conn, Some(version)).await.unwrap();
        let report = w.run().await.unwrap();
        assert_eq!(report.inventory_cursor_from, 0);
        assert_eq!(report.unchanged, 0, "nothing is taken as already pushed");
        assert_eq!(w.ecwid.writes().len(), 2, "the level is written again");
        assert_eq!(w.cursor().await.outlet_id.as_deref(), Some("outlet-2"));

        // From now on the old outlet's stock is ignored (S3) and the new one's is mirrored.
        w.lightspeed.set_level("ls-mug", OUTLET, 1);
        w.run().await.unwrap();
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(7)));
        w.lightspeed.set_level("ls-mug", "outlet-2", 3);
        let report = w.run().await.unwrap();
        assert_ne!(
            report.inventory_cursor_from, 0,
            "the feed restarts only once"
        );
        assert_eq!(w.ecwid.level(11), Some(StockLevel::Quantity(3)));
        assert_eq!(w.ecwid.writes().len(), 3);
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
