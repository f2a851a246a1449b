//! `sale-poster`: the SQS edge of [`els_core::poster::SalePoster`].
//!
//! The event source mapping uses `ReportBatchItemFailures`: a record listed in
//! `batchItemFailures` stays in the queue, every other record is deleted by Lambda. So a
//! record is left out of the list only once the core says its outcome is recorded.
//!
//! How a record is settled is the core's rule ([`els_core::settle`]), the same as in
//! `els serve`; this edge carries it out:
//!
//! * [`Settlement::Ack`]: the record is left out of the list, and Lambda deletes it.
//! * [`Settlement::RetryAfter`]: its visibility is set to the delay (a 429's `Retry-After`
//!   is honoured that way) and it is reported as failed.
//! * [`Settlement::DeadLetter`], on the record's **last** receive (`ApproximateReceiveCount`
//!   ≥ the queue's `maxReceiveCount`, passed as `MAX_RECEIVE_COUNT`): the core has parked the
//!   order as `DEAD_LETTERED`; the record is reported as failed with visibility 0, and SQS
//!   moves it to the DLQ on its next receive, where `els replay --dlq` takes it back. A stray
//!   redelivery of it before then (say `MAX_RECEIVE_COUNT` set below the real
//!   `maxReceiveCount`) posts nothing: the claim on a PARKED order answers "parked" and the
//!   record is deleted.
//! * A body that is not an [`OrderMessage`]: logged and reported as failed with visibility 0,
//!   so it reaches the DLQ after `maxReceiveCount` quick receives instead of holding up its
//!   store's FIFO group for several visibility timeouts.
//!
//! Each invocation then writes its [`BatchMetrics`] ([`crate::metrics`]): orders posted,
//! parked (by reason) and dead-lettered, and the age of the batch's oldest message.
//!
//! [`Settlement::Ack`]: els_core::settle::Settlement::Ack
//! [`Settlement::RetryAfter`]: els_core::settle::Settlement::RetryAfter
//! [`Settlement::DeadLetter`]: els_core::settle::Settlement::DeadLetter

use crate::config::SalePosterConfig;
use crate::metrics::{self, Dimension, Sample, Unit};
use crate::wiring::{ApiClients, InitError, configuration, log_failure};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use els_core::deadline::Deadline;
use els_core::ledger::ReasonCode;
use els_core::poster::{PostOutcome, SalePoster};
use els_core::settle::{Settled, Settlement, post_delivered};
use els_core::{Clock, EcwidApi, LightspeedApi, OrderMessage, StateStore, WorkQueue};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::AuthLightspeed;
use els_store_aws::{DynamoStore, SqsQueue};
use lambda_runtime::LambdaEvent;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tracing::Instrument as _;

/// A batch the handler cannot answer record by record. Returning it fails the whole
/// invocation, so Lambda redelivers every record of the batch: nothing is dropped.
#[derive(Debug, Error)]
pub enum BatchError {
    #[error("SQS record {index} of the batch has no messageId, so it cannot be reported")]
    MissingMessageId { index: usize },
}

impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(e: BatchError) -> Self {
        let error_type = match e {
            BatchError::MissingMessageId { .. } => "MissingMessageId",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// `sale-poster` as its `main` runs it: configured and built once, at init.
pub struct SalePosterFunction {
    poster: SalePoster<DynamoStore, EcwidClient, AuthLightspeed<DynamoStore>, TokioClock>,
    queue: SqsQueue,
    max_receive_count: u32,
    deadline: Deadline,
}

impl SalePosterFunction {
    /// Reads the configuration and builds the clients: DynamoDB, SQS, Ecwid, and Lightspeed
    /// with token refresh, paced to leave the inventory mirror its share.
    pub async fn from_env() -> Result<Self, InitError> {
        log_failure(Self::build().await)
    }

    async fn build() -> Result<Self, InitError> {
        let config = configuration("sale-poster", SalePosterConfig::from_env)?;
        let clients = ApiClients::init(&config.api, config.lightspeed_pacing()).await?;
        let queue = SqsQueue::new(
            aws_sdk_sqs::Client::new(&clients.aws),
            config.queue_url.clone(),
        );
        let deadline = clients.deadline.clone();
        let poster = SalePoster::new(
            clients.store,
            clients.ecwid,
            clients.lightspeed,
            TokioClock,
            config.poster_config(),
        )
        .with_deadline(deadline.clone());
        Ok(Self {
            poster,
            queue,
            max_receive_count: config.max_receive_count,
            deadline,
        })
    }

    /// One invocation: a batch of SQS records, then its metrics.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, BatchError> {
        // No sale POST or token refresh starts that this invocation's end could cut off.
        self.deadline
            .set_from_lambda(event.context.deadline, els_core::Clock::now(&TokioClock));
        let mut measured = BatchMetrics::for_batch(&event.payload, SystemTime::now());
        let response = post_sqs_batch_measured(
            &self.poster,
            &self.queue,
            self.max_receive_count,
            event.payload,
            &mut measured,
        )
        .await;
        measured.emit();
        response
    }
}

/// What one invocation reports to CloudWatch ([`crate::metrics`]).
///
/// Counts are of the poster's answers, so an order that is already parked and is delivered
/// again (a later webhook for it) counts as parked again; a record that asks for a retry
/// counts nowhere until it is settled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchMetrics {
    /// Orders posted as a sale, or adopted (an earlier attempt's sale, found).
    pub posted: u64,
    /// Orders answered "parked", per reason, in the order first seen.
    pub parked: Vec<(ReasonCode, u64)>,
    /// Records settled as [`Settlement::DeadLetter`]: their last receive failed, the order
    /// is parked `DEAD_LETTERED` (or could not be) and the message goes to the DLQ.
    pub dead_lettered: u64,
    /// How long the batch's oldest message had been queued when the invocation started.
    pub oldest_age: Option<Duration>,
}

impl BatchMetrics {
    /// Empty counts, and the age of the oldest record of `event` at `now` (from each
    /// record's `SentTimestamp`, milliseconds since the epoch; records without one are
    /// left out).
    pub fn for_batch(event: &SqsEvent, now: SystemTime) -> Self {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let oldest_age = event
            .records
            .iter()
            .filter_map(|r| r.attributes.get("SentTimestamp"))
            .filter_map(|sent| sent.trim().parse::<u64>().ok())
            .map(|sent_ms| Duration::from_millis(now_ms.saturating_sub(sent_ms)))
            .max();
        Self {
            oldest_age,
            ..Self::default()
        }
    }

    /// Counts one settled record.
    pub fn record(&mut self, settled: &Settled) {
        if settled.settlement == Settlement::DeadLetter {
            self.dead_lettered += 1;
        }
        match &settled.outcome {
            Ok(PostOutcome::Posted { .. } | PostOutcome::Adopted { .. }) => self.posted += 1,
            // A held refund waits for an operator like a parked order (R5, R6, R7).
            Ok(PostOutcome::Parked(reason) | PostOutcome::RefundHeld(reason)) => {
                match self
                    .parked
                    .iter_mut()
                    .find(|(code, _)| *code == reason.code)
                {
                    Some((_, n)) => *n += 1,
                    None => self.parked.push((reason.code, 1)),
                }
            }
            _ => {}
        }
    }

    /// The lines to write: posted, dead-lettered (both also when 0, so a quiet hour of
    /// deliveries still has data points) and the age without dimension, then one line per
    /// parked reason.
    pub fn lines(&self) -> Vec<(Vec<Sample>, Vec<Dimension>)> {
        let mut plain = vec![
            (metrics::ORDERS_POSTED, self.posted as f64, Unit::Count),
            (
                metrics::ORDERS_DEAD_LETTERED,
                self.dead_lettered as f64,
                Unit::Count,
            ),
        ];
        if let Some(age) = self.oldest_age {
            plain.push((
                metrics::OLDEST_QUEUED_ORDER_AGE,
                age.as_millis() as f64 / 1000.0,
                Unit::Seconds,
            ));
        }
        let mut lines = vec![(plain, Vec::new())];
        for &(code, n) in &self.parked {
            lines.push((
                vec![(metrics::ORDERS_PARKED, n as f64, Unit::Count)],
                vec![Dimension::Reason(code)],
            ));
        }
        lines
    }

    /// Writes [`Self::lines`] to `out`.
    pub fn emit_to(
        &self,
        out: &mut impl io::Write,
        namespace: &str,
        timestamp_ms: u64,
    ) -> io::Result<()> {
        for (samples, dimensions) in self.lines() {
            metrics::emit_to(out, namespace, timestamp_ms, &samples, &dimensions)?;
        }
        Ok(())
    }

    /// Writes [`Self::lines`] to stdout.
    pub fn emit(&self) {
        for (samples, dimensions) in self.lines() {
            metrics::emit(&samples, &dimensions);
        }
    }
}

/// Posts every record of the batch, one after the other, and lists the ones to redeliver.
/// `max_receive_count` is the queue's `maxReceiveCount`: the receive after which SQS moves a
/// message to the DLQ.
pub async fn post_sqs_batch<S, E, L, C, Q>(
    poster: &SalePoster<S, E, L, C>,
    queue: &Q,
    max_receive_count: u32,
    event: SqsEvent,
) -> Result<SqsBatchResponse, BatchError>
where
    S: StateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
    Q: WorkQueue,
{
    let mut unused = BatchMetrics::default();
    post_sqs_batch_measured(poster, queue, max_receive_count, event, &mut unused).await
}

/// [`post_sqs_batch`], counting each settled record into `measured`.
pub async fn post_sqs_batch_measured<S, E, L, C, Q>(
    poster: &SalePoster<S, E, L, C>,
    queue: &Q,
    max_receive_count: u32,
    event: SqsEvent,
    measured: &mut BatchMetrics,
) -> Result<SqsBatchResponse, BatchError>
where
    S: StateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
    Q: WorkQueue,
{
    // Checked before any work: a failure entry without an id would make Lambda fail the whole
    // batch anyway, after some records were already settled.
    if let Some(index) = event
        .records
        .iter()
        .position(|r| r.message_id.as_deref().is_none_or(str::is_empty))
    {
        tracing::error!(index, "SQS record without messageId; failing the batch");
        return Err(BatchError::MissingMessageId { index });
    }

    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!(
            "sqs_record",
            message_id = %message_id,
            receive_count = record.attributes.get("ApproximateReceiveCount").map(String::as_str),
        );
        let settled = post_record(poster, queue, max_receive_count, record, measured)
            .instrument(span)
            .await;
        if !settled {
            response.add_failure(message_id);
        }
    }
    Ok(response)
}

/// Handles one record; `true` when its outcome is recorded and Lambda may delete it.
async fn post_record<S, E, L, C, Q>(
    poster: &SalePoster<S, E, L, C>,
    queue: &Q,
    max_receive_count: u32,
    record: &SqsMessage,
    measured: &mut BatchMetrics,
) -> bool
where
    S: StateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
    Q: WorkQueue,
{
    let body = record.body.as_deref().unwrap_or_default();
    let message: OrderMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            // The body is ours (ingest or replay), so this is a bug or a foreign producer.
            // Its content is not logged: it may hold anything.
            tracing::error!(error = %e, body_bytes = body.len(), "SQS body is not an order message; it goes to the DLQ after maxReceiveCount receives");
            delay_redelivery(queue, record, Duration::ZERO).await;
            return false;
        }
    };
    let span = tracing::info_span!("order", store_id = message.store_id.get(), order_id = %message.order_id);
    let settled = post_delivered(
        poster,
        queue,
        &message,
        receive_count(record),
        max_receive_count,
    )
    .instrument(span)
    .await;
    measured.record(&settled);
    match settled.settlement.redeliver_after() {
        None => true,
        Some(delay) => {
            delay_redelivery(queue, record, delay).await;
            false
        }
    }
}

/// The record's `ApproximateReceiveCount` (1 on the first receive); `None` when absent, and
/// then the record is never taken for its last receive.
fn receive_count(record: &SqsMessage) -> Option<u32> {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.trim().parse().ok())
}

/// Sets when the record comes back. If that fails, the record still comes back, only after
/// the queue's visibility timeout instead.
async fn delay_redelivery<Q: WorkQueue>(queue: &Q, record: &SqsMessage, delay: Duration) {
    let Some(receipt) = record.receipt_handle.as_deref().filter(|r| !r.is_empty()) else {
        tracing::warn!("SQS record without receiptHandle; it returns after the visibility timeout");
        return;
    };
    if let Err(e) = queue.retry_after(receipt, delay).await {
        tracing::warn!(error = %e, delay_ms = delay.as_millis() as u64, "could not change the message visibility; it returns after the visibility timeout");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{sandbox_and_store, sandbox_poster};
    use els_core::ledger::{OrderState, Reason};
    use els_core::{Delivery, LedgerStore, OrderKey};
    use els_sandbox::{Fault, FaultKind, OrderItemSpec, OrderSpec, Route, Sandbox};
    use els_store_sqlite::SqliteStore;
    use serde_json::json;
    use std::time::Instant;

    /// The template's default `MaxReceiveCount`.
    const MAX_RECEIVES: u32 = 5;

    /// An SQS event as the event source mapping delivers a FIFO message.
    fn sqs_event(records: &[(&str, &Delivery, String)]) -> SqsEvent {
        let records: Vec<_> = records
            .iter()
            .map(|(message_id, delivery, body)| {
                json!({
                    "messageId": message_id,
                    "receiptHandle": delivery.receipt,
                    "body": body,
                    "attributes": {
                        "ApproximateReceiveCount": delivery.receive_count.to_string(),
                        "MessageGroupId": delivery.message.group_id(),
                        "MessageDeduplicationId": delivery.message.dedup_id,
                        "SentTimestamp": "1764237601000"
                    },
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders.fifo",
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        serde_json::from_value(json!({ "Records": records })).expect("SQS event")
    }

    fn place_paid_order(sb: &Sandbox) -> String {
        sb.place_order(OrderSpec {
            items: vec![OrderItemSpec::new("123123", 2)],
            email: "ann@example.com".into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            ..OrderSpec::default()
        })
    }

    /// Queues the order like ingest does and receives it like the event source mapping.
    async fn queue_and_receive(
        sb: &Sandbox,
        store: &SqliteStore,
        order_id: &str,
        visibility: Duration,
    ) -> Delivery {
        let message = OrderMessage::from_webhook(
            els_core::StoreId::literal(sb.ids().ecwid_store_id),
            order_id,
            "evt-1",
        );
        store.enqueue(&message).await.expect("enqueue");
        let mut got = store.receive(1, visibility).await.expect("receive");
        assert_eq!(got.len(), 1);
        got.remove(0)
    }

    fn body_of(delivery: &Delivery) -> String {
        serde_json::to_string(&delivery.message).expect("JSON")
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn paid_order_becomes_one_closed_sale_and_the_record_is_settled() {
        let (sb, store) = sandbox_and_store().await;
        let poster = sandbox_poster(&sb, &store);
        let order_id = place_paid_order(&sb);
        let delivery = queue_and_receive(&sb, &store, &order_id, Duration::from_secs(30)).await;

        let response = post_sqs_batch(
            &poster,
            &store,
            MAX_RECEIVES,
            sqs_event(&[("m-1", &delivery, body_of(&delivery))]),
        )
        .await
        .expect("batch handled");

        assert!(failed_ids(&response).is_empty());
        let sales = sb.sales();
        assert_eq!(sales.len(), 1, "{sales:#?}");
        assert_eq!(sales[0]["status"], "CLOSED");
        let entry = store
            .load_order(&OrderKey::new(
                els_core::StoreId::literal(sb.ids().ecwid_store_id),
                order_id.clone(),
            ))
            .await
            .expect("ledger read")
            .expect("ledger entry");
        assert_eq!(entry.state, OrderState::Posted);
        assert_eq!(entry.sale_id.as_deref(), sales[0]["id"].as_str());
    }

    #[tokio::test]
    async fn rate_limited_sale_post_is_redelivered_after_retry_after() {
        let (sb, store) = sandbox_and_store().await;
        let poster = sandbox_poster(&sb, &store);
        let order_id = place_paid_order(&sb);
        sb.inject(Fault::once(
            Route::LsPostSale,
            FaultKind::RateLimit {
                retry_after: Duration::from_secs(3),
            },
        ));
        // A short receive visibility: only the handler's retry delay can keep it hidden.
        let delivery = queue_and_receive(&sb, &store, &order_id, Duration::from_millis(100)).await;
        let started = Instant::now();

        let response = post_sqs_batch(
            &poster,
            &store,
            MAX_RECEIVES,
            sqs_event(&[("m-429", &delivery, body_of(&delivery))]),
        )
        .await
        .expect("batch handled");

        assert_eq!(failed_ids(&response), vec!["m-429"]);
        assert_eq!(sb.sale_count(), 0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            store.queue_depth().expect("depth"),
            (0, 1),
            "the message is hidden past the receive's 100 ms visibility"
        );
        assert!(
            store
                .receive(1, Duration::from_secs(30))
                .await
                .expect("receive")
                .is_empty()
        );

        // It comes back once Retry-After (an HTTP date, so 2-3 s from now) has passed...
        let redelivered = loop {
            let got = store
                .receive(1, Duration::from_secs(30))
                .await
                .expect("receive");
            if let Some(d) = got.into_iter().next() {
                break d;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never redelivered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(redelivered.receive_count, 2);

        // ...and then it posts exactly one sale.
        let response = post_sqs_batch(
            &poster,
            &store,
            MAX_RECEIVES,
            sqs_event(&[("m-429", &redelivered, body_of(&redelivered))]),
        )
        .await
        .expect("batch handled");
        assert!(failed_ids(&response).is_empty());
        assert_eq!(sb.sale_count(), 1);
    }

    /// Posts `delivery` as if SQS had received it `receive_count` times, with every sale
    /// POST failing with a 503 (a retryable failure).
    async fn post_with_lightspeed_down(
        sb: &Sandbox,
        store: &SqliteStore,
        receive_count: u32,
    ) -> (String, SqsBatchResponse, BatchMetrics) {
        let poster = sandbox_poster(sb, store);
        let order_id = place_paid_order(sb);
        sb.inject(Fault::times(Route::LsPostSale, FaultKind::Status(503), 100));
        let mut delivery = queue_and_receive(sb, store, &order_id, Duration::from_secs(30)).await;
        delivery.receive_count = receive_count;
        let mut measured = BatchMetrics::default();
        let response = post_sqs_batch_measured(
            &poster,
            store,
            MAX_RECEIVES,
            sqs_event(&[("m-last", &delivery, body_of(&delivery))]),
            &mut measured,
        )
        .await
        .expect("batch handled");
        (order_id, response, measured)
    }

    #[tokio::test]
    async fn failure_on_the_last_receive_parks_the_order_as_dead_lettered() {
        let (sb, store) = sandbox_and_store().await;

        let (order_id, response, measured) =
            post_with_lightspeed_down(&sb, &store, MAX_RECEIVES).await;

        // A batch item failure: Lambda keeps the message and SQS moves it to the DLQ.
        assert_eq!(failed_ids(&response), vec!["m-last"]);
        assert_eq!(
            (measured.posted, measured.dead_lettered, measured.parked),
            (0, 1, vec![(ReasonCode::DeadLettered, 1)])
        );
        assert_eq!(sb.sale_count(), 0);
        let key = OrderKey::new(
            els_core::StoreId::literal(sb.ids().ecwid_store_id),
            order_id,
        );
        let entry = store
            .load_order(&key)
            .await
            .expect("ledger read")
            .expect("ledger entry");
        assert_eq!(entry.state, OrderState::Parked);
        let reason = entry.reason.expect("a parked order has a reason");
        assert_eq!(reason.code, ReasonCode::DeadLettered);
        assert!(
            reason.message.contains("503") && reason.message.contains(&key.order_id),
            "the last error and the order are named: {}",
            reason.message
        );
        // Visible again at once (no wait for the visibility timeout): the queue's next
        // receive is the one that dead-letters it.
        assert_eq!(store.queue_depth().expect("depth"), (1, 0));

        // A stray redelivery (Lightspeed is back) posts nothing: the order stays parked
        // until an operator replays it, and this record is settled.
        sb.clear_faults();
        let poster = sandbox_poster(&sb, &store);
        let again = store
            .receive(1, Duration::from_secs(30))
            .await
            .expect("receive")
            .remove(0);
        let response = post_sqs_batch(
            &poster,
            &store,
            MAX_RECEIVES + 1,
            sqs_event(&[("m-stray", &again, body_of(&again))]),
        )
        .await
        .expect("batch handled");
        assert!(failed_ids(&response).is_empty(), "{response:?}");
        assert_eq!(sb.sale_count(), 0);
        let entry = store.load_order(&key).await.unwrap().unwrap();
        assert_eq!(entry.state, OrderState::Parked);
    }

    #[tokio::test]
    async fn failure_before_the_last_receive_is_redelivered_not_parked() {
        let (sb, store) = sandbox_and_store().await;

        let (order_id, response, measured) =
            post_with_lightspeed_down(&sb, &store, MAX_RECEIVES - 1).await;

        assert_eq!(failed_ids(&response), vec!["m-last"]);
        assert_eq!(
            measured,
            BatchMetrics::default(),
            "a retry counts nowhere yet"
        );
        let entry = store
            .load_order(&OrderKey::new(
                els_core::StoreId::literal(sb.ids().ecwid_store_id),
                order_id,
            ))
            .await
            .expect("ledger read")
            .expect("ledger entry");
        assert_ne!(entry.state, OrderState::Parked);
        assert!(entry.reason.is_none(), "{:?}", entry.reason);
    }

    #[tokio::test]
    async fn unparseable_body_is_a_failure_that_returns_at_once() {
        let (sb, store) = sandbox_and_store().await;
        let poster = sandbox_poster(&sb, &store);
        let order_id = place_paid_order(&sb);
        let delivery = queue_and_receive(&sb, &store, &order_id, Duration::from_secs(30)).await;

        let response = post_sqs_batch(
            &poster,
            &store,
            MAX_RECEIVES,
            sqs_event(&[("m-bad", &delivery, "{\"not\": \"an order message\"}".into())]),
        )
        .await
        .expect("batch handled");

        assert_eq!(failed_ids(&response), vec!["m-bad"]);
        assert_eq!(sb.sale_count(), 0);
        // Visibility 0: the next receive gets it again (towards the DLQ), no 30 s wait.
        let again = store
            .receive(1, Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
    }

    #[tokio::test]
    async fn record_without_message_id_fails_the_whole_batch() {
        let (sb, store) = sandbox_and_store().await;
        let poster = sandbox_poster(&sb, &store);
        let order_id = place_paid_order(&sb);
        let delivery = queue_and_receive(&sb, &store, &order_id, Duration::from_secs(30)).await;
        let mut event = sqs_event(&[("m-1", &delivery, body_of(&delivery))]);
        event.records[0].message_id = None;

        let result = post_sqs_batch(&poster, &store, MAX_RECEIVES, event).await;

        assert!(matches!(
            result,
            Err(BatchError::MissingMessageId { index: 0 })
        ));
        assert_eq!(
            sb.sale_count(),
            0,
            "nothing is worked on in a batch that cannot be reported"
        );
    }

    /// The SentTimestamp of [`sqs_event`]'s records.
    const SENT_MS: u64 = 1_764_237_601_000;

    #[tokio::test]
    async fn a_posted_order_and_the_batch_age_are_measured_and_written_as_emf() {
        let (sb, store) = sandbox_and_store().await;
        let poster = sandbox_poster(&sb, &store);
        let order_id = place_paid_order(&sb);
        let delivery = queue_and_receive(&sb, &store, &order_id, Duration::from_secs(30)).await;
        let event = sqs_event(&[("m-1", &delivery, body_of(&delivery))]);
        let received = UNIX_EPOCH + Duration::from_millis(SENT_MS) + Duration::from_millis(90_500);

        let mut measured = BatchMetrics::for_batch(&event, received);
        post_sqs_batch_measured(&poster, &store, MAX_RECEIVES, event, &mut measured)
            .await
            .expect("batch handled");

        assert_eq!(sb.sale_count(), 1);
        assert_eq!(
            measured,
            BatchMetrics {
                posted: 1,
                parked: vec![],
                dead_lettered: 0,
                oldest_age: Some(Duration::from_millis(90_500)),
            }
        );
        let mut out = Vec::new();
        measured
            .emit_to(&mut out, "EcwidLightspeedSync", SENT_MS)
            .expect("written");
        let lines = crate::metrics::tests::parse_lines(&out);
        assert_eq!(lines.len(), 1, "nothing parked: one line");
        let (values, dimensions) =
            crate::metrics::tests::read_emf(&lines[0], "EcwidLightspeedSync");
        assert!(dimensions.is_empty());
        assert_eq!(values["OrdersPosted"], (1.0, "Count".to_string()));
        assert_eq!(values["OrdersDeadLettered"], (0.0, "Count".to_string()));
        assert_eq!(
            values["OldestQueuedOrderAge"],
            (90.5, "Seconds".to_string())
        );
    }

    #[test]
    fn parked_orders_are_counted_per_reason_on_lines_of_their_own() {
        let settled = |settlement, outcome| Settled {
            settlement,
            outcome,
        };
        let parked = |code| Ok(PostOutcome::Parked(Reason::new(code, "why")));
        let mut measured = BatchMetrics::default();
        for s in [
            settled(Settlement::Ack, parked(ReasonCode::UnknownSku)),
            settled(
                Settlement::Ack,
                Ok(PostOutcome::Adopted {
                    sale_id: "s-1".into(),
                }),
            ),
            settled(Settlement::Ack, parked(ReasonCode::TaxNotMapped)),
            settled(Settlement::Ack, parked(ReasonCode::UnknownSku)),
            settled(
                Settlement::Ack,
                Ok(PostOutcome::AlreadyPosted {
                    sale_id: "s-0".into(),
                }),
            ),
            settled(
                Settlement::Ack,
                Ok(PostOutcome::Skipped(Reason::new(ReasonCode::NotPaid, "no"))),
            ),
            settled(
                Settlement::RetryAfter(Duration::from_secs(5)),
                Err(els_core::poster::RetryLater {
                    delay: Duration::from_secs(5),
                    reason: "503".into(),
                }),
            ),
            settled(Settlement::DeadLetter, parked(ReasonCode::DeadLettered)),
        ] {
            measured.record(&s);
        }

        assert_eq!(
            measured.posted, 1,
            "adopted counts, already posted does not"
        );
        assert_eq!(measured.dead_lettered, 1);
        assert_eq!(
            measured.parked,
            vec![
                (ReasonCode::UnknownSku, 2),
                (ReasonCode::TaxNotMapped, 1),
                (ReasonCode::DeadLettered, 1)
            ]
        );

        let mut out = Vec::new();
        measured.emit_to(&mut out, "Ns", 1).expect("written");
        let lines = crate::metrics::tests::parse_lines(&out);
        let read: Vec<_> = lines
            .iter()
            .map(|l| crate::metrics::tests::read_emf(l, "Ns"))
            .collect();
        assert_eq!(read.len(), 4);
        assert_eq!(
            read[0].0.keys().collect::<Vec<_>>(),
            ["OrdersDeadLettered", "OrdersPosted"]
        );
        let by_reason: Vec<(String, f64)> = read[1..]
            .iter()
            .map(|(values, dimensions)| {
                assert_eq!(values.len(), 1);
                (dimensions["Reason"].clone(), values["OrdersParked"].0)
            })
            .collect();
        assert_eq!(
            by_reason,
            vec![
                ("UNKNOWN_SKU".to_string(), 2.0),
                ("TAX_NOT_MAPPED".to_string(), 1.0),
                ("DEAD_LETTERED".to_string(), 1.0)
            ]
        );
    }

    #[test]
    fn the_batch_age_is_of_its_oldest_record_and_never_negative() {
        let mut event: SqsEvent = serde_json::from_value(json!({ "Records": [
            { "messageId": "a", "attributes": { "SentTimestamp": "1000" } },
            { "messageId": "b", "attributes": { "SentTimestamp": " 4000 " } },
            { "messageId": "c", "attributes": {} },
            { "messageId": "d", "attributes": { "SentTimestamp": "later" } }
        ] }))
        .expect("SQS event");
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(
            BatchMetrics::for_batch(&event, at(61_000)).oldest_age,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            BatchMetrics::for_batch(&event, at(500)).oldest_age,
            Some(Duration::ZERO),
            "a clock behind SQS's"
        );
        event.records.truncate(0);
        assert_eq!(BatchMetrics::for_batch(&event, at(5_000)).oldest_age, None);
        let lines = BatchMetrics::default().lines();
        assert_eq!(lines.len(), 1);
        assert!(
            !lines[0]
                .0
                .iter()
                .any(|(name, _, _)| *name == crate::metrics::OLDEST_QUEUED_ORDER_AGE),
            "no age without records"
        );
    }

    /// `infra/events/sale-poster.sqs.json` is what `sam local invoke` sends.
    #[test]
    fn sample_event_carries_an_order_message() {
        let event: SqsEvent =
            serde_json::from_str(include_str!("../../../infra/events/sale-poster.sqs.json"))
                .expect("sample SQS event parses");
        let body = event.records[0].body.as_deref().expect("body");
        let message: OrderMessage = serde_json::from_str(body).expect("an OrderMessage");
        assert_eq!(
            message,
            OrderMessage::from_webhook(
                els_core::StoreId::literal(1003),
                "K8XTQ",
                "80aece08-40e8-4145-8d8b-b2d9ee3c1e2a"
            )
        );
    }
}
