//! The dead-letter path, end to end: an order that keeps failing is parked `DEAD_LETTERED`
//! on its last receive while its message goes on to the dead-letter queue, and
//! `els replay --dlq` (the ops function the CLI calls) takes it back to exactly one sale.
//!
//! On moto (SQS FIFO with a redrive policy, DynamoDB) the `sale-poster` Lambda handler is
//! driven the way the event source mapping drives it; on SQLite the embedded worker runs.

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use els_cli::ops::{self, DlqReport, SqliteDeadLetters, SqsDeadLetters};
use els_cli::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use els_core::ledger::{LedgerEntry, OrderKey, OrderState, ReasonCode};
use els_core::poster::{PosterConfig, SalePoster};
use els_core::{LedgerStore, OrderMessage, StoreId, WorkQueue};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::LightspeedClient;
use els_sandbox::{Fault, FaultKind, OrderItemSpec, OrderSpec, Route, Sandbox, SandboxConfig};
use els_store_aws::{DynamoStore, SqsQueue};
use els_tests::harness::{Harness, HarnessOptions};
use els_tests::moto::{aws_config, moto_endpoint};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

/// The queues' `maxReceiveCount`: small, so an order dead-letters after two failures.
const MAX_RECEIVES: u32 = 2;
const WAIT: Duration = Duration::from_secs(30);

fn poster_config() -> PosterConfig {
    PosterConfig {
        lease: Duration::from_secs(5),
        retry_base: Duration::from_millis(50),
        retry_cap: Duration::from_millis(500),
        search_delay: Duration::from_millis(100),
        ..PosterConfig::default()
    }
}

fn paid_order(sandbox: &Sandbox) -> String {
    sandbox.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 1)],
        ..OrderSpec::default()
    })
}

fn lightspeed_down(sandbox: &Sandbox) {
    sandbox.inject(Fault::times(
        Route::LsPostSale,
        FaultKind::Status(503),
        10_000,
    ));
}

fn assert_dead_lettered(entry: &LedgerEntry) {
    assert_eq!(entry.state, OrderState::Parked, "{entry:#?}");
    let reason = entry.reason.as_ref().expect("a parked order has a reason");
    assert_eq!(reason.code, ReasonCode::DeadLettered);
    assert!(
        reason.message.contains(&entry.key.order_id)
            && reason
                .message
                .contains(&format!("after {MAX_RECEIVES} deliveries"))
            && reason.message.contains("503"),
        "the reason names the order and the last error: {}",
        reason.message
    );
    assert!(
        entry
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("503")),
        "{:?}",
        entry.last_error
    );
}

// --- moto: the Lambda handler on SQS FIFO + DLQ --------------------------------------------

type AwsPoster = SalePoster<DynamoStore, EcwidClient, LightspeedClient, TokioClock>;

struct Aws {
    sqs: aws_sdk_sqs::Client,
    store: DynamoStore,
    queue: SqsQueue,
    dlq_url: String,
}

impl Aws {
    async fn start() -> Self {
        let config = aws_config(&moto_endpoint().await).await;
        let name = format!("els-dlq-{}", uuid::Uuid::new_v4().simple());
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        DynamoStore::create_table(&dynamo, &name).await.unwrap();
        let sqs = aws_sdk_sqs::Client::new(&config);
        let (queue_url, dlq_url) = SqsQueue::create_fifo_with_dlq(&sqs, &name, MAX_RECEIVES)
            .await
            .unwrap();
        Self {
            store: DynamoStore::new(dynamo, name),
            queue: SqsQueue::new(sqs.clone(), queue_url),
            sqs,
            dlq_url,
        }
    }

    /// `(visible, in_flight)` of a queue, from the SQS API.
    async fn depth(&self, url: &str) -> (u64, u64) {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let get = |n: &QueueAttributeName| attributes.get(n).map_or(0, |v| v.parse().unwrap());
        (
            get(&QueueAttributeName::ApproximateNumberOfMessages),
            get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Sends a message straight to the dead-letter queue.
    async fn send_to_dlq(&self, group: &str, dedup: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.dlq_url)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// The bodies in the DLQ: received, then made visible again at once.
    async fn dlq_bodies(&self) -> Vec<String> {
        let messages = self
            .sqs
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        for m in &messages {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.dlq_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
        messages.into_iter().filter_map(|m| m.body).collect()
    }

    /// One poll of the event source mapping: receive a batch, invoke the `sale-poster`
    /// handler, delete the records it did not report as failed. Returns the batch size.
    async fn lambda_poll(&self, poster: &AwsPoster) -> usize {
        let messages = self
            .sqs
            .receive_message()
            .queue_url(self.queue.queue_url())
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return 0;
        }
        let records: Vec<_> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<_, _> = m
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                    .collect();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders.fifo",
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        let response =
            els_functions::poster::post_sqs_batch(poster, &self.queue, MAX_RECEIVES, event)
                .await
                .expect("the batch is answered record by record");
        let failed: HashSet<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        for m in &messages {
            if !failed.contains(m.message_id().unwrap_or_default()) {
                self.sqs
                    .delete_message()
                    .queue_url(self.queue.queue_url())
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        messages.len()
    }

    /// Polls like the event source mapping until `done` holds, or panics after [`WAIT`].
    async fn poll_until<F, Fut>(&self, poster: &AwsPoster, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done().await {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            if self.lambda_poll(poster).await == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    async fn ledger(&self, key: &OrderKey) -> Option<LedgerEntry> {
        self.store.load_order(key).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqs_a_failing_order_is_parked_dead_lettered_and_replayed_from_the_dlq_once() {
    let aws = Aws::start().await;
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    ops::upsert_connection(&aws.store, sandbox_connection(&sandbox))
        .await
        .unwrap();
    let timeout = Duration::from_secs(5);
    let poster = SalePoster::new(
        aws.store.clone(),
        EcwidClient::new(sandbox.ecwid_api_url(), timeout).unwrap(),
        LightspeedClient::new(lightspeed_url_template(&sandbox), timeout).unwrap(),
        TokioClock,
        poster_config(),
    );
    let store_id = StoreId::literal(sandbox.ids().ecwid_store_id);

    // An order that posts normally: later a stale message of it sits in the DLQ.
    let posted = paid_order(&sandbox);
    let posted_key = OrderKey::new(store_id, posted.clone());
    aws.queue
        .enqueue(&OrderMessage::from_webhook(store_id, &posted, "evt-posted"))
        .await
        .unwrap();
    aws.poll_until(&poster, "the first order posted", || async {
        aws.ledger(&posted_key)
            .await
            .is_some_and(|e| e.state == OrderState::Posted)
    })
    .await;

    // Lightspeed fails every sale POST: the order is received MAX_RECEIVES times, parked on
    // the last, and its message goes on to the DLQ.
    lightspeed_down(&sandbox);
    let failing = paid_order(&sandbox);
    let key = OrderKey::new(store_id, failing.clone());
    aws.queue
        .enqueue(&OrderMessage::from_webhook(store_id, &failing, "evt-1"))
        .await
        .unwrap();
    aws.poll_until(&poster, "the message reached the DLQ", || async {
        aws.depth(&aws.dlq_url).await == (1, 0)
    })
    .await;
    assert_dead_lettered(&aws.ledger(&key).await.unwrap());
    assert_eq!(aws.depth(aws.queue.queue_url()).await, (0, 0));
    assert_eq!(sandbox.sale_count(), 1);
    let moved: OrderMessage = serde_json::from_str(&aws.dlq_bodies().await[0]).unwrap();
    assert_eq!(moved.key(), key);
    // Next to it: a stale message of the posted order, and one that is not ours at all.
    aws.send_to_dlq(
        &store_id.to_string(),
        "posted",
        &serde_json::to_string(&OrderMessage::from_webhook(store_id, &posted, "evt-old")).unwrap(),
    )
    .await;
    let junk = r#"{"hello": "not an order message"}"#;
    aws.send_to_dlq("junk", "junk", junk).await;
    assert_eq!(aws.depth(&aws.dlq_url).await, (3, 0));

    sandbox.clear_faults();
    // The DLQ is found through the main queue's redrive policy, as `els replay --dlq` does.
    let dlq = SqsDeadLetters::for_queue(&aws.queue, None).await.unwrap();
    assert_eq!(dlq.url(), aws.dlq_url);

    // A dry run changes nothing and leaves every message visible.
    let dry = ops::replay_dead_letters(&aws.store, &aws.queue, &dlq, chrono::Utc::now(), true)
        .await
        .unwrap();
    assert_replay_report(&dry, &key, &posted_key, true);
    assert_eq!(aws.depth(&aws.dlq_url).await, (3, 0));
    assert_eq!(aws.depth(aws.queue.queue_url()).await, (0, 0));
    assert_eq!(aws.ledger(&key).await.unwrap().state, OrderState::Parked);

    let report = ops::replay_dead_letters(&aws.store, &aws.queue, &dlq, chrono::Utc::now(), false)
        .await
        .unwrap();
    assert_replay_report(&report, &key, &posted_key, false);
    let summary = ops::describe_dlq_replay(&report);
    assert!(summary.contains("left in the DLQ"), "{summary}");
    // The order is QUEUED with a fresh message on the main queue.
    assert_eq!(aws.ledger(&key).await.unwrap().state, OrderState::Queued);
    assert_eq!(aws.depth(aws.queue.queue_url()).await, (1, 0));

    aws.poll_until(&poster, "the replayed order posted", || async {
        aws.ledger(&key)
            .await
            .is_some_and(|e| e.state == OrderState::Posted)
    })
    .await;
    assert_eq!(
        sandbox.sales_with_invoice(&key.invoice_number()).len(),
        1,
        "exactly one sale for the replayed order"
    );
    assert_eq!(sandbox.sale_count(), 2);
    // Only the undecodable message is left, visible, for an operator to look at.
    assert_eq!(aws.depth(&aws.dlq_url).await, (1, 0));
    assert_eq!(aws.dlq_bodies().await, vec![junk.to_owned()]);
}

fn assert_replay_report(r: &DlqReport, replayed: &OrderKey, posted: &OrderKey, dry_run: bool) {
    assert_eq!(r.dry_run, dry_run);
    assert_eq!(r.replayed, vec![replayed.clone()], "{r:#?}");
    assert_eq!(r.already_posted, vec![posted.clone()], "{r:#?}");
    assert_eq!(r.left.len(), 1, "{r:#?}");
    assert!(r.left[0].1.contains("not an order message"), "{r:#?}");
}

// --- SQLite: the embedded worker and its dead-letter table ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_failing_order_is_parked_dead_lettered_and_replayed_from_the_dlq_once() {
    let h = Harness::start_with(HarnessOptions {
        max_receives: MAX_RECEIVES,
        poster: poster_config(),
        ..HarnessOptions::default()
    })
    .await;
    lightspeed_down(&h.sandbox);
    let order_id = paid_order(&h.sandbox);
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    let parked = h.wait_for(&order_id, OrderState::Parked, WAIT).await;
    assert_dead_lettered(&parked);
    // The worker did not delete the message: the queue dead-letters it on its next receive.
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.store.dead_letter_count().unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let letters = h.store.dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].key(), h.key(&order_id));
    assert_eq!(h.store.queue_depth().unwrap(), (0, 0));
    assert!(h.sales_for(&order_id).is_empty());

    h.sandbox.clear_faults();
    let now = chrono::Utc::now();
    let dry = ops::replay_dead_letters(
        &h.store,
        &h.store,
        &SqliteDeadLetters::new(&h.store),
        now,
        true,
    )
    .await
    .unwrap();
    assert_eq!(dry.replayed, vec![h.key(&order_id)]);
    assert_eq!(h.store.dead_letter_count().unwrap(), 1);
    assert_eq!(h.ledger(&order_id).await.unwrap().state, OrderState::Parked);

    let report = ops::replay_dead_letters(
        &h.store,
        &h.store,
        &SqliteDeadLetters::new(&h.store),
        now,
        false,
    )
    .await
    .unwrap();
    assert_eq!(report.replayed, vec![h.key(&order_id)]);
    assert!(report.already_posted.is_empty() && report.left.is_empty());
    assert_eq!(h.store.dead_letter_count().unwrap(), 0);

    h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    assert_eq!(h.sales_for(&order_id).len(), 1);
    // Nothing is left to replay.
    let again = ops::replay_dead_letters(
        &h.store,
        &h.store,
        &SqliteDeadLetters::new(&h.store),
        chrono::Utc::now(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(again, DlqReport::default());
}
