//! `inventory-sync`: the scheduled edge of [`InventoryMirror`].
//!
//! EventBridge invokes it on a schedule (every minute by default). One invocation runs the
//! mirror for every connection, one after the other; a connection with `sync_inventory` off
//! is left alone by the core (S4). Each store's report is logged as one line.
//!
//! The invocation **fails only when something must be retried**: the connections could not
//! be listed, or a store's run stopped on an error. The store's cursor then stays on the
//! last page fully applied, and the next scheduled run resumes there, so the schedule is the
//! retry (the template turns Lambda's own asynchronous retries off). Failing still matters:
//! it is what the function's `Errors` alarm counts. A run that ended as planned (completed,
//! deferred by its time or rate-limit budget, busy elsewhere, or switched off) is a success.
//!
//! Each invocation then writes its metrics ([`run_metrics`], [`crate::metrics`]): the stock
//! levels written, its duration, and whether it ran every store (what `MirrorStalledAlarm`
//! watches).

use crate::config::InventorySyncConfig;
use crate::metrics::{self, Sample, Unit};
use crate::wiring::{ApiClients, InitError, configuration, log_failure};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use els_core::inventory::mirror::{InventoryMirror, MirrorError, MirrorReport, RunOutcome};
use els_core::{Clock, EcwidApi, LightspeedApi, StateStore, StoreError};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::{AuthLightspeed, Pacing};
use els_store_aws::DynamoStore;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use std::time::{Duration, Instant};
use thiserror::Error;

/// What an invocation did: one report per connection, in store order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InventorySyncSummary {
    pub reports: Vec<MirrorReport>,
}

/// An invocation whose work must be retried (by the next scheduled run).
#[derive(Debug, Error)]
pub enum InventorySyncError {
    #[error("listing the connections failed: {0}")]
    ListConnections(StoreError),
    /// Some stores failed; the others' reports are logged, and kept in `summary`.
    #[error("inventory mirror failed for {} of {total} stores: {}", failures.len(), describe(failures))]
    StoresFailed {
        total: usize,
        failures: Vec<MirrorError>,
        summary: InventorySyncSummary,
    },
}

fn describe(failures: &[MirrorError]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<InventorySyncError> for lambda_runtime::Diagnostic {
    fn from(e: InventorySyncError) -> Self {
        let error_type = match e {
            InventorySyncError::ListConnections(_) => "ListConnectionsFailed",
            InventorySyncError::StoresFailed { .. } => "InventoryMirrorFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// `inventory-sync` as its `main` runs it: configured and built once, at init.
pub struct InventorySyncFunction {
    mirror: InventoryMirror<DynamoStore, EcwidClient, AuthLightspeed<DynamoStore>, TokioClock>,
    /// The invocation's deadline, for the token refresher.
    deadline: els_core::deadline::Deadline,
    /// The table, to check its schema version before listing connections.
    store: DynamoStore,
}

impl InventorySyncFunction {
    /// Reads the configuration and builds the clients: DynamoDB, Ecwid, and Lightspeed with
    /// token refresh.
    pub async fn from_env() -> Result<Self, InitError> {
        log_failure(Self::build().await)
    }

    async fn build() -> Result<Self, InitError> {
        let config = configuration("inventory-sync", InventorySyncConfig::from_env)?;
        let clients = ApiClients::init(&config.api, Pacing::default()).await?;
        let deadline = clients.deadline.clone();
        let store = clients.store.clone();
        let mirror = InventoryMirror::new(
            clients.store,
            clients.ecwid,
            clients.lightspeed,
            TokioClock,
            config.mirror_config(),
        );
        Ok(Self {
            mirror,
            deadline,
            store,
        })
    }

    /// One invocation: a scheduled event, then its metrics.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<InventorySyncSummary, InventorySyncError> {
        // No token refresh starts that this invocation's end could cut off.
        self.deadline
            .set_from_lambda(event.context.deadline, els_core::Clock::now(&TokioClock));
        let started = Instant::now();
        // Connections saved before the table's migration are not in the index the listing
        // reads: fail loudly (the Errors alarm) rather than skip those stores in silence.
        if let Err(e) = self.store.ensure_migrated().await {
            return Err(InventorySyncError::ListConnections(e));
        }
        let result = sync_all_inventory(&self.mirror, event.payload).await;
        metrics::emit(&run_metrics(&result, started.elapsed()), &[]);
        result
    }
}

/// An invocation's metrics: [`metrics::STOCK_LEVELS_WRITTEN`] (every store's `written`,
/// the failed stores' pages applied before their failure included),
/// [`metrics::MIRROR_RUN_DURATION`], and [`metrics::MIRROR_RUNS_COMPLETED`] = 1 when every
/// store was run, whatever each one's outcome (a store's failure is the `Errors` alarm's
/// business). Listing the connections failed: no store was run, so 0 of both counts.
pub fn run_metrics(
    result: &Result<InventorySyncSummary, InventorySyncError>,
    elapsed: Duration,
) -> Vec<Sample> {
    let written_by =
        |summary: &InventorySyncSummary| -> u64 { summary.reports.iter().map(|r| r.written).sum() };
    let (written, completed) = match result {
        Ok(summary) => (written_by(summary), 1),
        Err(InventorySyncError::StoresFailed {
            failures, summary, ..
        }) => (
            written_by(summary) + failures.iter().map(|f| f.report.written).sum::<u64>(),
            1,
        ),
        Err(InventorySyncError::ListConnections(_)) => (0, 0),
    };
    vec![
        (metrics::STOCK_LEVELS_WRITTEN, written as f64, Unit::Count),
        (
            metrics::MIRROR_RUN_DURATION,
            elapsed.as_millis() as f64,
            Unit::Milliseconds,
        ),
        (
            metrics::MIRROR_RUNS_COMPLETED,
            completed as f64,
            Unit::Count,
        ),
    ]
}

/// Mirrors Lightspeed stock to Ecwid for every connection.
pub async fn sync_all_inventory<S, E, L, C>(
    mirror: &InventoryMirror<S, E, L, C>,
    event: EventBridgeEvent,
) -> Result<InventorySyncSummary, InventorySyncError>
where
    S: StateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    tracing::debug!(event_id = event.id.as_deref(), source = %event.source, detail_type = %event.detail_type, "scheduled inventory sync");
    let results = mirror
        .mirror_all()
        .await
        .map_err(InventorySyncError::ListConnections)?;
    let total = results.len();
    let mut summary = InventorySyncSummary::default();
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(report) => {
                log_report(&report);
                summary.reports.push(report);
            }
            Err(e) => {
                tracing::error!(store_id = e.store_id.get(), error = %e, written = e.report.written, "inventory mirror failed; the next run resumes from the cursor");
                failures.push(e);
            }
        }
    }
    if failures.is_empty() {
        Ok(summary)
    } else {
        Err(InventorySyncError::StoresFailed {
            total,
            failures,
            summary,
        })
    }
}

fn log_report(r: &MirrorReport) {
    if r.outcome == RunOutcome::SyncOff {
        tracing::debug!(
            store_id = r.store_id,
            "sync_inventory is off; store skipped"
        );
        return;
    }
    // SKU samples are product codes, not personal data.
    tracing::info!(
        store_id = r.store_id,
        outcome = ?r.outcome,
        deferred_reason = r.deferred_reason.as_deref(),
        inventory_cursor_from = r.inventory_cursor_from,
        inventory_cursor_to = r.inventory_cursor_to,
        products_cursor_to = r.products_cursor_to,
        records = r.records,
        written = r.written,
        unchanged = r.unchanged,
        unlinked = r.unlinked,
        ambiguous = r.ambiguous,
        rejected = r.rejected,
        unlinked_skus = ?r.unlinked_skus,
        ambiguous_skus = ?r.ambiguous_skus,
        lightspeed_requests = r.lightspeed_requests,
        ecwid_requests = r.ecwid_requests,
        elapsed_ms = r.elapsed_ms,
        "inventory mirrored"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{sandbox_and_store, sandbox_mirror, scheduled_event};
    use els_core::{ConnectionStore, Settings};
    use els_sandbox::{Fault, FaultKind, Route};

    /// The Ecwid stock of the seeded mug, and a way to set its Lightspeed level at the
    /// register's outlet.
    fn mug_ecwid_stock(sb: &els_sandbox::Sandbox) -> Option<rust_decimal::Decimal> {
        sb.ecwid_stock(sb.ids().mug.ecwid_id(), None)
    }

    fn set_mug_level(sb: &els_sandbox::Sandbox, level: u32) {
        let ids = sb.ids();
        sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, level);
    }

    #[test]
    fn sample_event_is_a_scheduled_event() {
        let event = scheduled_event();
        assert_eq!(event.source, "aws.events");
        assert_eq!(event.detail_type, "Scheduled Event");
    }

    #[tokio::test]
    async fn scheduled_run_mirrors_the_outlet_level_to_ecwid() {
        let (sb, store) = sandbox_and_store().await;
        set_mug_level(&sb, 7);

        let summary = sync_all_inventory(&sandbox_mirror(&sb, &store), scheduled_event())
            .await
            .expect("run succeeds");

        assert_eq!(summary.reports.len(), 1);
        assert_eq!(summary.reports[0].outcome, RunOutcome::Completed);
        assert_eq!(mug_ecwid_stock(&sb), Some(7.into()));
    }

    #[tokio::test]
    async fn sync_off_store_is_left_alone_and_succeeds() {
        let (sb, store) = sandbox_and_store().await;
        let mut conn = crate::testing::sandbox_connection(&sb);
        conn.settings = Settings {
            sync_inventory: false,
            ..Settings::default()
        };
        conn.version += 1;
        store
            .put_connection(&conn, Some(1))
            .await
            .expect("setting stored");
        set_mug_level(&sb, 7);

        let summary = sync_all_inventory(&sandbox_mirror(&sb, &store), scheduled_event())
            .await
            .expect("run succeeds");

        assert_eq!(summary.reports[0].outcome, RunOutcome::SyncOff);
        assert_eq!(mug_ecwid_stock(&sb), Some(30.into()), "unchanged");
    }

    #[tokio::test]
    async fn failed_store_run_fails_the_invocation_for_a_retry() {
        let (sb, store) = sandbox_and_store().await;
        // More 503s than the mirror's own retries: the run gives up on this page.
        sb.inject(Fault::times(Route::LsAny, FaultKind::Status(503), 50));

        let err = sync_all_inventory(&sandbox_mirror(&sb, &store), scheduled_event())
            .await
            .expect_err("the run must be retried");

        let InventorySyncError::StoresFailed {
            total,
            failures,
            summary,
        } = &err
        else {
            panic!("unexpected error {err}");
        };
        assert_eq!((*total, failures.len(), summary.reports.len()), (1, 1, 0));
        assert!(err.to_string().contains("store 1003"), "{err}");
        let result = Err(err);
        let samples = run_metrics(&result, Duration::from_millis(1234));
        assert_eq!(
            samples,
            vec![
                (metrics::STOCK_LEVELS_WRITTEN, 0.0, Unit::Count),
                (metrics::MIRROR_RUN_DURATION, 1234.0, Unit::Milliseconds),
                (metrics::MIRROR_RUNS_COMPLETED, 1.0, Unit::Count),
            ],
            "every store was run: the mirror is not stalled"
        );
        let Err(err) = result else { unreachable!() };
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "InventoryMirrorFailed");
    }

    #[tokio::test]
    async fn a_run_reports_the_levels_written_its_duration_and_its_completion_as_emf() {
        let (sb, store) = sandbox_and_store().await;
        set_mug_level(&sb, 7);

        let result = sync_all_inventory(&sandbox_mirror(&sb, &store), scheduled_event()).await;
        let written = result.as_ref().expect("run succeeds").reports[0].written;
        assert!(written >= 1, "the mug's level was written");

        let mut out = Vec::new();
        metrics::emit_to(
            &mut out,
            metrics::DEFAULT_NAMESPACE,
            1,
            &run_metrics(&result, Duration::from_millis(2500)),
            &[],
        )
        .expect("written");
        let lines = crate::metrics::tests::parse_lines(&out);
        assert_eq!(lines.len(), 1);
        let (values, dimensions) =
            crate::metrics::tests::read_emf(&lines[0], metrics::DEFAULT_NAMESPACE);
        assert!(dimensions.is_empty());
        assert_eq!(
            values,
            [
                (
                    "StockLevelsWritten".to_string(),
                    (written as f64, "Count".to_string())
                ),
                (
                    "MirrorRunDuration".to_string(),
                    (2500.0, "Milliseconds".to_string())
                ),
                (
                    "MirrorRunsCompleted".to_string(),
                    (1.0, "Count".to_string())
                ),
            ]
            .into()
        );
    }

    #[test]
    fn a_run_that_could_not_list_the_stores_did_not_complete() {
        let err = InventorySyncError::ListConnections(StoreError::Unavailable("down".into()));
        let samples = run_metrics(&Err(err), Duration::from_millis(3000));
        assert!(samples.contains(&(metrics::MIRROR_RUNS_COMPLETED, 0.0, Unit::Count)));
        assert!(samples.contains(&(metrics::STOCK_LEVELS_WRITTEN, 0.0, Unit::Count)));
    }
}
