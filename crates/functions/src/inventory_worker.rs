//! `inventory-worker`: runs the store jobs ([`els_core::jobs`]) the schedule and the
//! Lightspeed webhooks enqueue, one store per job.
//!
//! The SQS event source hands it a batch of jobs (`InventoryWorkerBatchSize`, from as many
//! stores). The batch's stores run **concurrently**, each under its own cursor lease
//! ([`InventoryMirror::mirror_store`]); two jobs of one store in a batch (a tick's and a
//! webhook's) make one run, which starts after both were enqueued and so sees both
//! changes. A store whose run fails is reported as a **batch item failure**: only its
//! messages come back (after the queue's visibility timeout), and after
//! `maxReceiveCount` receives they go to the store-jobs dead-letter queue; the other stores
//! of the batch are done. The next tick enqueues a fresh job anyway, so a dead-lettered job
//! only says a store keeps failing (`MirrorStoresFailed`, the DLQ alarm); its cursor keeps
//! the last page applied.
//!
//! A body that is not a job is a failure too (it dead-letters, for someone to look at); a
//! job for a store with no connection any more is done (nothing to mirror).
//!
//! Each invocation writes [`metrics::STOCK_LEVELS_WRITTEN`], [`metrics::MIRROR_RUN_DURATION`]
//! (the longest run), [`metrics::MIRROR_STORES_FAILED`] and [`metrics::MIRROR_JOB_LAG`] (the
//! longest wait from enqueued to run: the stock lag the queue adds).

use crate::config::InventoryWorkerConfig;
use crate::metrics::{self, Sample, Unit};
use crate::wiring::{ApiClients, InitError, configuration, log_failure};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use els_core::inventory::mirror::{InventoryMirror, MirrorReport, RunOutcome};
use els_core::jobs::StoreJob;
use els_core::{Clock, EcwidApi, LightspeedApi, StateStore, StoreId};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::{AuthLightspeed, Pacing};
use els_store_aws::DynamoStore;
use lambda_runtime::LambdaEvent;
use std::collections::BTreeMap;
use std::convert::Infallible;

/// What one batch did, per store (for the logs and the tests).
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    /// The stores run and how each ended (`None`: no connection any more).
    pub runs: BTreeMap<u64, Option<RunOutcome>>,
    /// Stores whose run failed: their messages come back.
    pub failed: Vec<u64>,
    /// Messages that were not store jobs.
    pub invalid: usize,
    pub written: u64,
    pub longest_run_ms: u64,
    pub longest_lag_ms: u64,
}

/// `inventory-worker` as its `main` runs it: configured and built once, at init.
pub struct InventoryWorkerFunction {
    mirror: InventoryMirror<DynamoStore, EcwidClient, AuthLightspeed<DynamoStore>, TokioClock>,
    /// The invocation's deadline, for the token refresher.
    deadline: els_core::deadline::Deadline,
}

impl InventoryWorkerFunction {
    /// Reads the configuration and builds the clients: DynamoDB, Ecwid, and Lightspeed with
    /// token refresh.
    pub async fn from_env() -> Result<Self, InitError> {
        log_failure(Self::build().await)
    }

    async fn build() -> Result<Self, InitError> {
        let config = configuration("inventory-worker", InventoryWorkerConfig::from_env)?;
        let clients = ApiClients::init(&config.api, Pacing::default()).await?;
        let deadline = clients.deadline.clone();
        let mirror = InventoryMirror::new(
            clients.store,
            clients.ecwid,
            clients.lightspeed,
            TokioClock,
            config.mirror_config(),
        );
        Ok(Self { mirror, deadline })
    }

    /// One batch of jobs, then its metrics. Never an invocation error: each failed store is
    /// its own batch item failure.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Infallible> {
        // No token refresh starts that this invocation's end could cut off.
        self.deadline
            .set_from_lambda(event.context.deadline, Clock::now(&TokioClock));
        let (response, summary) = run_jobs(&self.mirror, event.payload).await;
        metrics::emit(&worker_metrics(&summary), &[]);
        Ok(response)
    }
}

/// Runs a batch of store jobs (see the module doc): every store once, concurrently; the
/// messages of failed stores and the invalid ones are the batch item failures.
pub async fn run_jobs<S, E, L, C>(
    mirror: &InventoryMirror<S, E, L, C>,
    event: SqsEvent,
) -> (SqsBatchResponse, WorkerSummary)
where
    S: StateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    let mut response = SqsBatchResponse::default();
    let mut summary = WorkerSummary::default();
    let now = mirror.clock().now();
    // Each store's message ids, and the oldest job's time.
    let mut stores: BTreeMap<StoreId, (Vec<String>, DateTime<Utc>)> = BTreeMap::new();
    for record in event.records {
        let id = record.message_id.unwrap_or_default();
        match StoreJob::from_body(record.body.as_deref().unwrap_or_default()) {
            Ok(job) => {
                let entry = stores
                    .entry(job.store_id)
                    .or_insert_with(|| (Vec::new(), job.enqueued_at));
                entry.0.push(id);
                entry.1 = entry.1.min(job.enqueued_at);
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "not a store job; it dead-letters");
                summary.invalid += 1;
                response.batch_item_failures.push(failure(id));
            }
        }
    }
    for (_, enqueued_at) in stores.values() {
        let lag = (now - *enqueued_at).num_milliseconds().max(0) as u64;
        summary.longest_lag_ms = summary.longest_lag_ms.max(lag);
    }
    let runs = futures::future::join_all(
        stores
            .keys()
            .map(|&store_id| async move { (store_id, mirror.mirror_store(store_id).await) }),
    )
    .await;
    for (store_id, result) in runs {
        match result {
            Ok(report) => {
                if let Some(r) = &report {
                    log_report(r);
                    summary.written += r.written;
                    summary.longest_run_ms = summary.longest_run_ms.max(r.elapsed_ms);
                } else {
                    tracing::info!(
                        store_id = store_id.get(),
                        "no connection for this store any more; its job is done"
                    );
                }
                summary
                    .runs
                    .insert(store_id.get(), report.map(|r| r.outcome));
            }
            Err(e) => {
                tracing::error!(store_id = store_id.get(), error = %e, written = e.report.written, "inventory run failed; its job comes back, and the cursor keeps the last page applied");
                summary.written += e.report.written;
                summary.failed.push(store_id.get());
                for id in stores.remove(&store_id).map(|s| s.0).unwrap_or_default() {
                    response.batch_item_failures.push(failure(id));
                }
            }
        }
    }
    (response, summary)
}

fn failure(item_identifier: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = item_identifier;
    f
}

/// A batch's metrics (see the module doc).
pub fn worker_metrics(summary: &WorkerSummary) -> Vec<Sample> {
    vec![
        (
            metrics::STOCK_LEVELS_WRITTEN,
            summary.written as f64,
            Unit::Count,
        ),
        (
            metrics::MIRROR_RUN_DURATION,
            summary.longest_run_ms as f64,
            Unit::Milliseconds,
        ),
        (
            metrics::MIRROR_STORES_FAILED,
            summary.failed.len() as f64,
            Unit::Count,
        ),
        (
            metrics::MIRROR_JOB_LAG,
            summary.longest_lag_ms as f64,
            Unit::Milliseconds,
        ),
    ]
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
    use crate::testing::{sandbox_and_store, sandbox_mirror};
    use aws_lambda_events::sqs::SqsMessage;
    use els_core::{ConnectionStore, Settings};
    use els_sandbox::{Fault, FaultKind, Route};

    fn mug_ecwid_stock(sb: &els_sandbox::Sandbox) -> Option<rust_decimal::Decimal> {
        sb.ecwid_stock(sb.ids().mug.ecwid_id(), None)
    }

    fn set_mug_level(sb: &els_sandbox::Sandbox, level: u32) {
        let ids = sb.ids();
        sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, level);
    }

    fn event(bodies: &[(&str, String)]) -> SqsEvent {
        let mut event = SqsEvent::default();
        for (id, body) in bodies {
            let mut m = SqsMessage::default();
            m.message_id = Some(id.to_string());
            m.body = Some(body.clone());
            event.records.push(m);
        }
        event
    }

    fn job(sb: &els_sandbox::Sandbox, at: DateTime<Utc>) -> String {
        let store = StoreId::new(sb.config().ecwid_store_id).unwrap();
        StoreJob::scheduled(store, at).to_body()
    }

    fn failed_ids(r: &SqsBatchResponse) -> Vec<String> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_job_mirrors_its_store_and_two_jobs_of_one_store_make_one_run() {
        let (sb, store) = sandbox_and_store().await;
        set_mug_level(&sb, 7);
        let mirror = sandbox_mirror(&sb, &store);
        let now = Utc::now();
        let hook = StoreJob::from_lightspeed_webhook(
            StoreId::new(sb.config().ecwid_store_id).unwrap(),
            now,
        );

        let (response, summary) = run_jobs(
            &mirror,
            event(&[("a", job(&sb, now)), ("b", hook.to_body())]),
        )
        .await;

        assert!(failed_ids(&response).is_empty());
        assert_eq!(summary.runs.len(), 1, "one run for the store");
        assert_eq!(
            summary.runs.values().next().unwrap(),
            &Some(RunOutcome::Completed)
        );
        assert_eq!(mug_ecwid_stock(&sb), Some(7.into()));
        assert!(summary.written >= 1);
    }

    #[tokio::test]
    async fn a_failing_store_fails_only_its_messages_and_garbage_dead_letters() {
        let (sb, store) = sandbox_and_store().await;
        // More 503s than the mirror's own retries: the run gives up.
        sb.inject(Fault::times(Route::LsAny, FaultKind::Status(503), 50));
        let mirror = sandbox_mirror(&sb, &store);
        let gone = StoreJob::scheduled(StoreId::new(999_999).unwrap(), Utc::now()).to_body();

        let (response, summary) = run_jobs(
            &mirror,
            event(&[
                ("store", job(&sb, Utc::now())),
                ("garbage", "{}".into()),
                ("gone", gone),
            ]),
        )
        .await;

        assert_eq!(failed_ids(&response), vec!["garbage", "store"]);
        assert_eq!(summary.failed, vec![sb.config().ecwid_store_id]);
        assert_eq!(summary.invalid, 1);
        assert_eq!(
            summary.runs.get(&999_999),
            Some(&None),
            "no connection: done"
        );
        assert!(worker_metrics(&summary).contains(&(
            metrics::MIRROR_STORES_FAILED,
            1.0,
            Unit::Count
        )));
    }

    #[tokio::test]
    async fn a_store_with_inventory_off_is_done_without_a_call() {
        let (sb, store) = sandbox_and_store().await;
        let mut conn = crate::testing::sandbox_connection(&sb);
        conn.settings = Settings {
            sync_inventory: false,
            ..Settings::default()
        };
        conn.version += 1;
        store.put_connection(&conn, Some(1)).await.unwrap();
        set_mug_level(&sb, 7);

        let (response, summary) = run_jobs(
            &sandbox_mirror(&sb, &store),
            event(&[("a", job(&sb, Utc::now()))]),
        )
        .await;

        assert!(failed_ids(&response).is_empty());
        assert_eq!(
            summary.runs.values().next().unwrap(),
            &Some(RunOutcome::SyncOff)
        );
        assert_eq!(mug_ecwid_stock(&sb), Some(30.into()), "unchanged");
    }
}
