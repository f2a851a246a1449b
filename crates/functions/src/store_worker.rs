//! `store-worker`: runs the store jobs ([`els_core::jobs`]) the schedules and the Lightspeed
//! webhooks enqueue, one store per job: "mirror store S" ([`InventoryMirror::mirror_store`])
//! and "sweep store S" ([`OrderSweep::sweep_store`]).
//!
//! The SQS event source hands it a batch of jobs (`StoreWorkerBatchSize`, from as many
//! stores). The batch's jobs run **concurrently**, each store under its own cursor lease; two
//! jobs of one kind for one store in a batch (a tick's and a webhook's) make one run, which
//! starts after both were enqueued and so sees both changes. A job whose run fails is
//! reported as a **batch item failure**: only its messages come back, after
//! [`JOB_RETRY_DELAY`] (set on the message, not the queue's long visibility timeout: while
//! a store's job is in flight or waiting, the store's later jobs wait behind it in its FIFO
//! group), and after `maxReceiveCount` receives they go to the store-jobs dead-letter
//! queue; the other jobs of the batch are done. A dead-lettered job only says a store keeps
//! failing (`MirrorStoresFailed`, the DLQ alarm): the next tick brings a new one, and the
//! store's cursor keeps what was done.
//!
//! A body that is not a job is a failure too, made visible again at once so it dead-letters
//! quickly, for someone to look at; a job for a store with no connection any more is done
//! (nothing to do).
//!
//! Each invocation writes [`metrics::STOCK_LEVELS_WRITTEN`], [`metrics::MIRROR_RUN_DURATION`]
//! (the longest mirror run), [`metrics::MIRROR_STORES_FAILED`] (failed jobs of either kind),
//! [`metrics::MIRROR_JOB_LAG`] (the longest wait from enqueued to run: the stock lag the
//! queue adds), and for its sweeps [`metrics::SWEEP_FINDS`], [`metrics::SWEEP_RUN_DURATION`]
//! and [`metrics::STORES_UNHEALTHY`] (the stores are named in a log line).

use crate::config::StoreWorkerConfig;
use crate::metrics::{self, Sample, Unit};
use crate::wiring::{ApiClients, InitError, configuration, log_failure};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use els_core::inventory::mirror::{InventoryMirror, MirrorReport, RunOutcome};
use els_core::jobs::{JobKind, StoreJob};
use els_core::sweep::{OrderSweep, SweepOutcome};
use els_core::{Clock, EcwidApi, LightspeedApi, StateStore, StoreId, WorkQueue};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::{AuthLightspeed, Pacing};
use els_store_aws::{DynamoStore, SqsJobQueue, SqsQueue};
use lambda_runtime::LambdaEvent;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

/// When a failed job is tried again (its store's later jobs wait until then).
pub const JOB_RETRY_DELAY: Duration = Duration::from_secs(30);

/// What one batch did (for the logs, the metrics and the tests).
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    /// The stores mirrored and how each ended (`None`: no connection any more).
    pub runs: BTreeMap<u64, Option<RunOutcome>>,
    /// The stores swept and how each ended (`None`: no connection any more).
    pub sweeps: BTreeMap<u64, Option<SweepOutcome>>,
    /// Stores whose job failed (either kind): their messages come back.
    pub failed: Vec<u64>,
    /// Messages that were not store jobs (their ids).
    pub invalid: Vec<String>,
    pub written: u64,
    pub longest_run_ms: u64,
    pub longest_lag_ms: u64,
    /// Orders the sweeps found and queued.
    pub found: u64,
    pub longest_sweep_ms: u64,
    /// Stores a sweep judged unhealthy, and why.
    pub unhealthy: Vec<(u64, String)>,
}

type Mirror = InventoryMirror<DynamoStore, EcwidClient, AuthLightspeed<DynamoStore>, TokioClock>;
type Sweep = OrderSweep<DynamoStore, EcwidClient, SqsQueue, TokioClock>;

/// `store-worker` as its `main` runs it: configured and built once, at init.
pub struct StoreWorkerFunction {
    mirror: Mirror,
    sweep: Sweep,
    /// To set a failed job's retry.
    jobs: SqsJobQueue,
    /// The invocation's deadline, for the token refresher.
    deadline: els_core::deadline::Deadline,
}

impl StoreWorkerFunction {
    /// Reads the configuration and builds the clients: DynamoDB, SQS, Ecwid, and Lightspeed
    /// with token refresh.
    pub async fn from_env() -> Result<Self, InitError> {
        log_failure(Self::build().await)
    }

    async fn build() -> Result<Self, InitError> {
        let config = configuration("store-worker", StoreWorkerConfig::from_env)?;
        let clients = ApiClients::init(&config.api, Pacing::default()).await?;
        let deadline = clients.deadline.clone();
        let aws = crate::config::load_aws_config(config.api.aws_operation_timeout).await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let queue = SqsQueue::new(sqs.clone(), config.queue_url.clone());
        let jobs = SqsJobQueue::new(sqs, config.jobs_queue_url.clone());
        let sweep = OrderSweep::new(
            clients.store.clone(),
            clients.ecwid.clone(),
            queue,
            TokioClock,
            config.sweep_config(),
        );
        let mirror = InventoryMirror::new(
            clients.store,
            clients.ecwid,
            clients.lightspeed,
            TokioClock,
            config.mirror_config(),
        );
        Ok(Self {
            mirror,
            sweep,
            jobs,
            deadline,
        })
    }

    /// One batch of jobs, then its metrics. Never an invocation error: each failed job is
    /// its own batch item failure.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, Infallible> {
        // No token refresh starts that this invocation's end could cut off.
        self.deadline
            .set_from_lambda(event.context.deadline, Clock::now(&TokioClock));
        let receipts: HashMap<String, String> = event
            .payload
            .records
            .iter()
            .filter_map(|r| Some((r.message_id.clone()?, r.receipt_handle.clone()?)))
            .collect();
        let (response, summary) = run_jobs(&self.mirror, &self.sweep, event.payload).await;
        for f in &response.batch_item_failures {
            let Some(receipt) = receipts.get(&f.item_identifier) else {
                continue;
            };
            let delay = if summary.invalid.contains(&f.item_identifier) {
                Duration::ZERO
            } else {
                JOB_RETRY_DELAY
            };
            // Best effort: without it the message comes back after the queue's timeout.
            if let Err(e) = self.jobs.retry_after(receipt, delay).await {
                tracing::warn!(error = %e, "a failed store job's retry could not be set");
            }
        }
        metrics::emit(&worker_metrics(&summary), &[]);
        Ok(response)
    }
}

/// How one job ended.
enum Ran {
    Mirror(Result<Option<MirrorReport>, els_core::inventory::mirror::MirrorError>),
    Sweep(Result<Option<els_core::sweep::StoreSweepReport>, String>),
}

/// Runs a batch of store jobs (see the module doc): every (kind, store) once,
/// concurrently; the messages of failed jobs and the invalid ones are the batch item
/// failures.
pub async fn run_jobs<S, E, L, Q, C>(
    mirror: &InventoryMirror<S, E, L, C>,
    sweep: &OrderSweep<S, E, Q, C>,
    event: SqsEvent,
) -> (SqsBatchResponse, WorkerSummary)
where
    S: StateStore,
    E: EcwidApi,
    L: LightspeedApi,
    Q: WorkQueue,
    C: Clock,
{
    let mut response = SqsBatchResponse::default();
    let mut summary = WorkerSummary::default();
    let now = mirror.clock().now();
    // Each (kind, store)'s message ids, and the oldest job's time.
    let mut jobs: BTreeMap<(JobKind, StoreId), (Vec<String>, DateTime<Utc>)> = BTreeMap::new();
    for record in event.records {
        let id = record.message_id.unwrap_or_default();
        match StoreJob::from_body(record.body.as_deref().unwrap_or_default()) {
            Ok(job) => {
                let entry = jobs
                    .entry((job.kind, job.store_id))
                    .or_insert_with(|| (Vec::new(), job.enqueued_at));
                entry.0.push(id);
                entry.1 = entry.1.min(job.enqueued_at);
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "not a store job; it dead-letters");
                summary.invalid.push(id.clone());
                response.batch_item_failures.push(failure(id));
            }
        }
    }
    for (_, enqueued_at) in jobs.values() {
        let lag = (now - *enqueued_at).num_milliseconds().max(0) as u64;
        summary.longest_lag_ms = summary.longest_lag_ms.max(lag);
    }
    let ran = futures::future::join_all(jobs.keys().map(|&(kind, store_id)| async move {
        let started = std::time::Instant::now();
        let ran = match kind {
            JobKind::Mirror => Ran::Mirror(mirror.mirror_store(store_id).await),
            JobKind::Sweep => Ran::Sweep(sweep_one(mirror.store(), sweep, store_id, now).await),
        };
        (kind, store_id, ran, started.elapsed())
    }))
    .await;
    for (kind, store_id, ran, elapsed) in ran {
        let failed = match ran {
            Ran::Mirror(Ok(report)) => {
                record_mirror(&mut summary, store_id, report);
                false
            }
            Ran::Mirror(Err(e)) => {
                tracing::error!(store_id = store_id.get(), error = %e, written = e.report.written, "inventory run failed; its job comes back, and the cursor keeps the last page applied");
                summary.written += e.report.written;
                true
            }
            Ran::Sweep(Ok(report)) => {
                record_sweep(&mut summary, store_id, report);
                summary.longest_sweep_ms = summary.longest_sweep_ms.max(elapsed.as_millis() as u64);
                false
            }
            Ran::Sweep(Err(e)) => {
                tracing::error!(store_id = store_id.get(), error = %e, "order sweep failed; its job comes back, and the cursor keeps the last window done");
                true
            }
        };
        if failed {
            summary.failed.push(store_id.get());
            for id in jobs
                .remove(&(kind, store_id))
                .map(|j| j.0)
                .unwrap_or_default()
            {
                response.batch_item_failures.push(failure(id));
            }
        }
    }
    if !summary.unhealthy.is_empty() {
        let stores: Vec<String> = summary
            .unhealthy
            .iter()
            .map(|(id, problem)| format!("{id}: {problem}"))
            .collect();
        tracing::warn!(count = stores.len(), stores = ?stores, "stores unhealthy");
    }
    (response, summary)
}

/// One store's sweep, within the sweep's own time budget from `now`.
async fn sweep_one<S, E, Q, C>(
    store: &S,
    sweep: &OrderSweep<S, E, Q, C>,
    store_id: StoreId,
    now: DateTime<Utc>,
) -> Result<Option<els_core::sweep::StoreSweepReport>, String>
where
    S: StateStore,
    E: EcwidApi,
    Q: WorkQueue,
    C: Clock,
{
    let conn = store
        .get_connection(store_id)
        .await
        .map_err(|e| format!("loading the connection: {e}"))?;
    let Some(conn) = conn else { return Ok(None) };
    let deadline = now
        + chrono::Duration::from_std(sweep.config().max_run)
            .unwrap_or(chrono::Duration::seconds(50));
    sweep
        .sweep_store(&conn, deadline)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

fn record_mirror(summary: &mut WorkerSummary, store_id: StoreId, report: Option<MirrorReport>) {
    match &report {
        // The mirror logs each run itself.
        Some(r) => {
            summary.written += r.written;
            summary.longest_run_ms = summary.longest_run_ms.max(r.elapsed_ms);
        }
        None => tracing::info!(
            store_id = store_id.get(),
            "no connection for this store any more; its job is done"
        ),
    }
    summary
        .runs
        .insert(store_id.get(), report.map(|r| r.outcome));
}

fn record_sweep(
    summary: &mut WorkerSummary,
    store_id: StoreId,
    report: Option<els_core::sweep::StoreSweepReport>,
) {
    if let Some(r) = &report {
        if r.found() > 0 {
            tracing::info!(store_id = store_id.get(), outcome = ?r.outcome, missed = r.missed, unpaid = r.unpaid, stuck = r.stuck, refunds = r.refunds, orders_seen = r.orders_seen, ecwid_requests = r.requests, "order sweep found orders no webhook brought");
        }
        summary.found += r.found();
        if let Some(problem) = r.health.as_ref().and_then(|h| h.problem.clone()) {
            summary.unhealthy.push((store_id.get(), problem));
        }
    }
    summary
        .sweeps
        .insert(store_id.get(), report.map(|r| r.outcome));
}

fn failure(item_identifier: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = item_identifier;
    f
}

/// A batch's metrics (see the module doc).
pub fn worker_metrics(summary: &WorkerSummary) -> Vec<Sample> {
    let mut samples = vec![
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
    ];
    if !summary.sweeps.is_empty() {
        samples.extend([
            (metrics::SWEEP_FINDS, summary.found as f64, Unit::Count),
            (
                metrics::SWEEP_RUN_DURATION,
                summary.longest_sweep_ms as f64,
                Unit::Milliseconds,
            ),
            (
                metrics::STORES_UNHEALTHY,
                summary.unhealthy.len() as f64,
                Unit::Count,
            ),
        ]);
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{sandbox_and_store, sandbox_mirror};
    use aws_lambda_events::sqs::SqsMessage;
    use els_core::sweep::SweepConfig;
    use els_core::{ConnectionStore, Settings};
    use els_sandbox::{Fault, FaultKind, Route};
    use els_store_sqlite::SqliteStore;

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
        StoreJob::scheduled(store, JobKind::Mirror, at).to_body()
    }

    /// The sweep as the worker builds it, on the SQLite store (state and work queue).
    fn sweep(
        sb: &els_sandbox::Sandbox,
        store: &SqliteStore,
    ) -> OrderSweep<SqliteStore, EcwidClient, SqliteStore, TokioClock> {
        OrderSweep::new(
            store.clone(),
            EcwidClient::new(sb.ecwid_api_url(), std::time::Duration::from_secs(5)).unwrap(),
            store.clone(),
            TokioClock,
            SweepConfig::default(),
        )
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
            &sweep(&sb, &store),
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
        let gone = StoreJob::scheduled(StoreId::new(999_999).unwrap(), JobKind::Mirror, Utc::now())
            .to_body();

        let (response, summary) = run_jobs(
            &mirror,
            &sweep(&sb, &store),
            event(&[
                ("store", job(&sb, Utc::now())),
                ("garbage", "{}".into()),
                ("gone", gone),
            ]),
        )
        .await;

        assert_eq!(failed_ids(&response), vec!["garbage", "store"]);
        assert_eq!(summary.failed, vec![sb.config().ecwid_store_id]);
        assert_eq!(summary.invalid, vec!["garbage"]);
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
            &sweep(&sb, &store),
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

    #[tokio::test]
    async fn a_sweep_job_queues_a_paid_order_no_webhook_brought() {
        let (sb, store) = sandbox_and_store().await;
        let mut conn = store
            .get_connection(crate::testing::sandbox_connection(&sb).store_id)
            .await
            .unwrap()
            .unwrap();
        conn.go_live_at = Some(Utc::now() - chrono::Duration::minutes(5));
        let version = conn.version;
        conn.version += 1;
        store.put_connection(&conn, Some(version)).await.unwrap();
        let order_id = sb.place_order(els_sandbox::OrderSpec {
            items: vec![els_sandbox::OrderItemSpec::new("MUG-001", 1)],
            ..Default::default()
        });
        let job = StoreJob::scheduled(conn.store_id, JobKind::Sweep, Utc::now()).to_body();

        let (response, summary) = run_jobs(
            &sandbox_mirror(&sb, &store),
            &sweep(&sb, &store),
            event(&[("s", job)]),
        )
        .await;

        assert!(failed_ids(&response).is_empty());
        assert_eq!(summary.found, 1);
        assert!(summary.runs.is_empty(), "a sweep job mirrors nothing");
        assert_eq!(
            summary.sweeps.get(&conn.store_id.get()),
            Some(&Some(SweepOutcome::Completed))
        );
        let delivered = WorkQueue::receive(&store, 10, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].message.order_id, order_id);
        assert!(delivered[0].message.dedup_id.contains(":sweep:"));
        assert!(worker_metrics(&summary).contains(&(metrics::SWEEP_FINDS, 1.0, Unit::Count)));
    }
}
