//! The schedules' edge of the store fan-out ([`els_core::jobs`]): `inventory-sync` (every
//! minute, [`JobKind::Mirror`]) and `order-sweep` (every 5 minutes, [`JobKind::Sweep`]) are
//! this one function with another kind.
//!
//! A tick does not run any store itself: it lists the connections (a Query of the table's
//! keys-only connections index, then BatchGetItem; never a Scan) and enqueues one job per
//! connection that has the work on, onto the store-jobs queue, where `store-worker`
//! ([`crate::store_worker`]) runs each store on its own. So one tick costs about one SQS
//! request per ten stores whatever the stores' catalogs or orders, and a slow or failing
//! store delays nobody else.
//!
//! It reads no token: the store is opened without the token key, so the connections'
//! ciphertext is never decrypted (its role has no KMS permission), and it needs no API
//! client.
//!
//! The invocation **fails** only when the tick must be retried (the connections could not
//! be listed, or some jobs could not be enqueued), which the function's `Errors` alarm
//! counts; the next tick is the retry (the template turns Lambda's own asynchronous retries
//! off). Each tick writes its kind's jobs enqueued and, when every job was enqueued, 1 tick
//! completed ([`tick_metrics`]; what `MirrorStalledAlarm` and `SweepStalledAlarm` watch).

use crate::config::{ScheduleConfig, load_aws_config};
use crate::metrics::{self, Sample, Unit};
use crate::wiring::{InitError, configuration, log_failure};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use els_core::jobs::{JobKind, JobQueue, TickReport, tick_jobs};
use els_core::{ConnectionStore, QueueError, StoreError};
use els_store_aws::{DynamoStore, SqsJobQueue};
use lambda_runtime::LambdaEvent;
use std::time::Instant;
use thiserror::Error;

/// A tick that must be retried (by the next one).
#[derive(Debug, Error)]
pub enum TickError {
    #[error("listing the connections failed: {0}")]
    ListConnections(StoreError),
    #[error("enqueueing the store jobs failed ({report:?}): {source}")]
    Enqueue {
        source: QueueError,
        report: TickReport,
    },
}

impl From<TickError> for lambda_runtime::Diagnostic {
    fn from(e: TickError) -> Self {
        let error_type = match e {
            TickError::ListConnections(_) => "ListConnectionsFailed",
            TickError::Enqueue { .. } => "EnqueueStoreJobsFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// `inventory-sync` or `order-sweep` as its `main` runs it: configured and built once, at
/// init.
pub struct TickFunction {
    kind: JobKind,
    store: DynamoStore,
    jobs: SqsJobQueue,
}

impl TickFunction {
    /// Reads the configuration and builds the DynamoDB and SQS clients (no network I/O).
    pub async fn from_env(function: &'static str, kind: JobKind) -> Result<Self, InitError> {
        log_failure(Self::build(function, kind).await)
    }

    async fn build(function: &'static str, kind: JobKind) -> Result<Self, InitError> {
        let config = configuration(function, ScheduleConfig::from_env)?;
        let aws = load_aws_config(config.aws_operation_timeout).await;
        Ok(Self {
            kind,
            // No token cipher: the tick reads settings, never tokens.
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name),
            jobs: SqsJobQueue::new(aws_sdk_sqs::Client::new(&aws), &config.jobs_queue_url),
        })
    }

    /// One tick: the schema check, the jobs, then the tick's metrics.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<TickReport, TickError> {
        let started = Instant::now();
        // Connections saved before the table's migration are not in the index the listing
        // reads: fail loudly (the Errors alarm) rather than skip those stores in silence.
        let result = match self.store.ensure_migrated().await {
            Err(e) => Err(TickError::ListConnections(e)),
            Ok(()) => {
                let tick = event.payload.time.unwrap_or_else(Utc::now);
                enqueue_tick(&self.store, &self.jobs, self.kind, tick).await
            }
        };
        metrics::emit(&tick_metrics(self.kind, &result), &[]);
        match &result {
            Ok(report) => tracing::info!(
                kind = self.kind.as_str(),
                connections = report.connections,
                enqueued = report.enqueued,
                off = report.off,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "store jobs enqueued"
            ),
            Err(e) => tracing::error!(error = %e, "the tick failed; the next one repeats it"),
        }
        result
    }
}

/// One tick: lists the connections and enqueues one job of `kind` per store with that work
/// on, stamped with the tick's time (so a repeated delivery of the same tick collapses).
pub async fn enqueue_tick<S, Q>(
    store: &S,
    queue: &Q,
    kind: JobKind,
    tick: DateTime<Utc>,
) -> Result<TickReport, TickError>
where
    S: ConnectionStore,
    Q: JobQueue,
{
    let connections = store
        .list_connections()
        .await
        .map_err(TickError::ListConnections)?;
    let (jobs, report) = tick_jobs(&connections, kind, tick);
    match queue.enqueue_jobs(&jobs).await {
        Ok(()) => Ok(report),
        Err(source) => Err(TickError::Enqueue { source, report }),
    }
}

/// A tick's metrics: its kind's jobs enqueued, and 1 tick completed when all of them were.
pub fn tick_metrics(kind: JobKind, result: &Result<TickReport, TickError>) -> Vec<Sample> {
    let (enqueued, completed) = match result {
        Ok(report) => (report.enqueued, 1),
        Err(_) => (0, 0),
    };
    let (jobs, ticks) = match kind {
        JobKind::Mirror => (
            metrics::MIRROR_JOBS_ENQUEUED,
            metrics::MIRROR_TICKS_COMPLETED,
        ),
        JobKind::Sweep => (metrics::SWEEP_JOBS_ENQUEUED, metrics::SWEEP_TICKS_COMPLETED),
    };
    vec![
        (jobs, enqueued as f64, Unit::Count),
        (ticks, completed as f64, Unit::Count),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::scheduled_event;
    use els_core::Settings;
    use els_core::jobs::{JobTrigger, StoreJob};
    use els_store_sqlite::SqliteStore;
    use std::sync::Mutex;

    /// A queue that keeps what it was given, or refuses everything.
    #[derive(Default)]
    struct Jobs {
        sent: Mutex<Vec<StoreJob>>,
        refuse: bool,
    }

    impl JobQueue for Jobs {
        async fn enqueue_jobs(&self, jobs: &[StoreJob]) -> Result<(), QueueError> {
            if self.refuse {
                return Err(QueueError::Unavailable("down".into()));
            }
            self.sent.lock().unwrap().extend_from_slice(jobs);
            Ok(())
        }
    }

    async fn store_with(stores: &[(u64, bool)]) -> SqliteStore {
        let store = SqliteStore::open_in_memory().unwrap();
        for &(id, sync_inventory) in stores {
            let mut conn =
                crate::testing::placeholder_connection(els_core::StoreId::new(id).unwrap());
            conn.settings = Settings {
                sync_inventory,
                ..Settings::default()
            };
            store.put_connection(&conn, None).await.unwrap();
        }
        store
    }

    #[tokio::test]
    async fn a_sweep_tick_enqueues_the_stores_that_post_sales_or_refunds() {
        let store = store_with(&[(11, false), (12, true)]).await;
        let mut quiet = crate::testing::placeholder_connection(els_core::StoreId::new(13).unwrap());
        quiet.settings.post_sales = false;
        quiet.settings.post_refunds = false;
        store.put_connection(&quiet, None).await.unwrap();
        let queue = Jobs::default();

        let report = enqueue_tick(&store, &queue, JobKind::Sweep, Utc::now())
            .await
            .unwrap();

        assert_eq!((report.enqueued, report.off), (2, 1));
        let sent = queue.sent.lock().unwrap().clone();
        assert!(sent.iter().all(|j| j.kind == JobKind::Sweep));
        let stores: Vec<u64> = sent.iter().map(|j| j.store_id.get()).collect();
        assert_eq!(
            stores,
            vec![11, 12],
            "inventory off does not matter to the sweep"
        );
    }

    #[test]
    fn sample_event_is_a_scheduled_event() {
        let event = scheduled_event();
        assert_eq!(event.source, "aws.events");
        assert_eq!(event.detail_type, "Scheduled Event");
        assert!(event.time.is_some(), "the tick's time names its jobs");
    }

    #[tokio::test]
    async fn a_tick_enqueues_one_job_per_store_with_inventory_on() {
        let store = store_with(&[(11, true), (12, false), (13, true)]).await;
        let queue = Jobs::default();
        let tick = scheduled_event().time.unwrap();

        let report = enqueue_tick(&store, &queue, JobKind::Mirror, tick)
            .await
            .unwrap();

        assert_eq!(
            report,
            TickReport {
                connections: 3,
                enqueued: 2,
                off: 1
            }
        );
        let sent = queue.sent.lock().unwrap().clone();
        let stores: Vec<u64> = sent.iter().map(|j| j.store_id.get()).collect();
        assert_eq!(stores, vec![11, 13]);
        assert!(sent.iter().all(|j| j.trigger == JobTrigger::Schedule
            && j.kind == JobKind::Mirror
            && j.enqueued_at == tick));
        assert_eq!(
            tick_metrics(JobKind::Mirror, &Ok(report)),
            vec![
                (metrics::MIRROR_JOBS_ENQUEUED, 2.0, Unit::Count),
                (metrics::MIRROR_TICKS_COMPLETED, 1.0, Unit::Count),
            ]
        );
    }

    #[tokio::test]
    async fn a_tick_whose_jobs_could_not_be_enqueued_fails_and_did_not_complete() {
        let store = store_with(&[(11, true)]).await;
        let queue = Jobs {
            refuse: true,
            ..Jobs::default()
        };
        let result = enqueue_tick(&store, &queue, JobKind::Sweep, Utc::now()).await;
        let Err(err @ TickError::Enqueue { .. }) = &result else {
            panic!("expected an enqueue failure, got {result:?}");
        };
        assert!(err.to_string().contains("down"), "{err}");
        assert!(tick_metrics(JobKind::Sweep, &result).contains(&(
            metrics::SWEEP_TICKS_COMPLETED,
            0.0,
            Unit::Count
        )));
        let Err(err) = result else { unreachable!() };
        assert_eq!(
            lambda_runtime::Diagnostic::from(err).error_type,
            "EnqueueStoreJobsFailed"
        );
    }
}
