//! `order-sweep`: the scheduled edge of [`OrderSweep`] (its own function and schedule, every
//! 5 minutes by default: it needs only the state table, the work queue and Ecwid, so its
//! role holds no Lightspeed secret and no SSM read).
//!
//! One invocation sweeps every connection with posting on, within `SWEEP_MAX_RUN_SECONDS`,
//! enqueueing the paid orders no webhook brought; the `sale-poster` posts them through the
//! same claim and ledger. It emits `SweepFinds`, `SweepRunDuration`, `SweepRunsCompleted` and
//! `StoresUnhealthy` (a count; the stores are named in a log line, never as a metric
//! dimension). Like `inventory-sync`, it fails only when something must be retried (the
//! connections could not be listed, or a store's run failed): the schedule is the retry.

use crate::config::{OrderSweepConfig, load_aws_config};
use crate::metrics;
use crate::tls::api_http_client;
use crate::wiring::{InitError, configuration, log_failure, token_store};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use els_core::StoreError;
use els_core::sweep::{OrderSweep, SweepReport};
use els_core::{Clock, EcwidApi, StateStore, WorkQueue};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_store_aws::{DynamoStore, SqsQueue};
use lambda_runtime::LambdaEvent;
use thiserror::Error;

/// An invocation whose work must be retried (by the next scheduled run).
#[derive(Debug, Error)]
pub enum OrderSweepError {
    #[error("listing the connections failed: {0}")]
    ListConnections(StoreError),
    #[error("the order sweep failed for {} store(s): {}", .0.len(), describe(.0))]
    StoresFailed(Vec<(els_core::StoreId, String)>),
}

fn describe(failures: &[(els_core::StoreId, String)]) -> String {
    failures
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<OrderSweepError> for lambda_runtime::Diagnostic {
    fn from(e: OrderSweepError) -> Self {
        let error_type = match e {
            OrderSweepError::ListConnections(_) => "ListConnectionsFailed",
            OrderSweepError::StoresFailed(_) => "OrderSweepFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// `order-sweep` as its `main` runs it: configured and built once, at init.
pub struct OrderSweepFunction {
    sweep: OrderSweep<DynamoStore, EcwidClient, SqsQueue, TokioClock>,
    /// The table, to check its schema version before listing connections.
    store: DynamoStore,
}

impl OrderSweepFunction {
    pub async fn from_env() -> Result<Self, InitError> {
        log_failure(Self::build().await)
    }

    async fn build() -> Result<Self, InitError> {
        let config = configuration("order-sweep", OrderSweepConfig::from_env)?;
        let aws = load_aws_config(config.aws_operation_timeout).await;
        let store = token_store(&aws, &config.table_name, &config.token_kms_key_id);
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), config.queue_url.clone());
        let ecwid = EcwidClient::with_http(
            api_http_client(config.http_timeout)?,
            config.ecwid_api_url.clone(),
        );
        let sweep = OrderSweep::new(
            store.clone(),
            ecwid,
            queue,
            TokioClock,
            config.sweep_config(),
        );
        Ok(Self { sweep, store })
    }

    /// One invocation: a scheduled event.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent>,
    ) -> Result<SweepSummary, OrderSweepError> {
        // Connections saved before the table's migration are not in the index the listing
        // reads: fail loudly (the Errors alarm) rather than skip those stores in silence.
        self.store
            .ensure_migrated()
            .await
            .map_err(OrderSweepError::ListConnections)?;
        sweep_all_stores(&self.sweep, event.payload).await
    }
}

/// What an invocation returns (and logs).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SweepSummary {
    pub stores: usize,
    pub found: u64,
    pub unhealthy: usize,
    pub elapsed_ms: u64,
}

/// Sweeps every connection once, logs each store that found something or is unhealthy,
/// and emits the run's metrics.
pub async fn sweep_all_stores<S, E, Q, C>(
    sweep: &OrderSweep<S, E, Q, C>,
    event: EventBridgeEvent,
) -> Result<SweepSummary, OrderSweepError>
where
    S: StateStore,
    E: EcwidApi,
    Q: WorkQueue,
    C: Clock,
{
    tracing::debug!(event_id = event.id.as_deref(), "scheduled order sweep");
    let report = sweep
        .sweep_all()
        .await
        .map_err(OrderSweepError::ListConnections)?;
    log_report(&report);
    let unhealthy = report.unhealthy();
    let mut samples = vec![
        (
            metrics::SWEEP_FINDS,
            report.found() as f64,
            metrics::Unit::Count,
        ),
        (
            metrics::SWEEP_RUN_DURATION,
            report.elapsed_ms as f64,
            metrics::Unit::Milliseconds,
        ),
        (
            metrics::STORES_UNHEALTHY,
            unhealthy.len() as f64,
            metrics::Unit::Count,
        ),
    ];
    if report.failures.is_empty() {
        samples.push((metrics::SWEEP_RUNS_COMPLETED, 1.0, metrics::Unit::Count));
    }
    metrics::emit(&samples, &[]);
    let summary = SweepSummary {
        stores: report.stores.len(),
        found: report.found(),
        unhealthy: unhealthy.len(),
        elapsed_ms: report.elapsed_ms,
    };
    if report.failures.is_empty() {
        Ok(summary)
    } else {
        Err(OrderSweepError::StoresFailed(report.failures))
    }
}

fn log_report(report: &SweepReport) {
    for r in &report.stores {
        if r.found() > 0 {
            tracing::info!(store_id = r.store_id.get(), outcome = ?r.outcome, missed = r.missed, unpaid = r.unpaid, stuck = r.stuck, refunds = r.refunds, orders_seen = r.orders_seen, ecwid_requests = r.requests, "order sweep found orders no webhook brought");
        }
    }
    let unhealthy = report.unhealthy();
    if !unhealthy.is_empty() {
        let stores: Vec<String> = unhealthy
            .iter()
            .map(|(id, problem)| format!("{id}: {problem}"))
            .collect();
        tracing::warn!(count = unhealthy.len(), stores = ?stores, "stores unhealthy");
    }
    for (id, e) in &report.failures {
        tracing::error!(store_id = id.get(), error = %e, "order sweep failed; the next run resumes from the cursor");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{sandbox_and_store, scheduled_event};
    use els_core::sweep::SweepConfig;
    use els_core::{ConnectionStore, OrderMessage};

    #[tokio::test]
    async fn a_paid_order_without_a_webhook_is_enqueued_by_the_scheduled_run() {
        let (sb, store) = sandbox_and_store().await;
        let mut conn = store
            .get_connection(crate::testing::sandbox_connection(&sb).store_id)
            .await
            .unwrap()
            .unwrap();
        conn.go_live_at = Some(chrono::Utc::now() - chrono::Duration::minutes(5));
        let version = conn.version;
        conn.version += 1;
        store.put_connection(&conn, Some(version)).await.unwrap();
        let order_id = sb.place_order(els_sandbox::OrderSpec {
            items: vec![els_sandbox::OrderItemSpec::new("MUG-001", 1)],
            ..Default::default()
        });
        let sweep = OrderSweep::new(
            store.clone(),
            EcwidClient::new(sb.ecwid_api_url(), std::time::Duration::from_secs(5)).unwrap(),
            store.clone(),
            TokioClock,
            SweepConfig::default(),
        );
        let summary = sweep_all_stores(&sweep, scheduled_event()).await.unwrap();
        assert_eq!(
            (summary.stores, summary.found, summary.unhealthy),
            (1, 1, 0)
        );
        let delivered =
            els_core::WorkQueue::receive(&store, 10, std::time::Duration::from_secs(30))
                .await
                .unwrap();
        let messages: Vec<&OrderMessage> = delivered.iter().map(|d| &d.message).collect();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].order_id, order_id);
        assert!(messages[0].dedup_id.contains(":sweep:"));
    }
}
