//! The adapter contract on DynamoDB and SQS, served by moto. Each test gets its own table
//! or queue pair.

use els_store_aws::{DynamoStore, SqsQueue};
use els_tests::contract::{self, QueueSemantics};
use els_tests::moto::{aws_config, moto_endpoint};

/// moto deviates from SQS in two places (see `QueueSemantics`); the rest is real SQS FIFO.
const SEMANTICS: QueueSemantics = QueueSemantics {
    max_receives: 3,
    stale_receipt_cannot_ack: false,
    dedup_outlives_ack: false,
};

fn unique_name() -> String {
    format!("els-contract-{}", uuid::Uuid::new_v4().simple())
}

async fn fresh_table() -> DynamoStore {
    let config = aws_config(&moto_endpoint().await).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name();
    DynamoStore::create_table(&client, &table)
        .await
        .expect("create table on moto");
    DynamoStore::new(client, table)
}

async fn fresh_queue() -> SqsQueue {
    let config = aws_config(&moto_endpoint().await).await;
    let client = aws_sdk_sqs::Client::new(&config);
    let (queue_url, _dlq_url) =
        SqsQueue::create_fifo_with_dlq(&client, &unique_name(), SEMANTICS.max_receives)
            .await
            .expect("create queues on moto");
    SqsQueue::new(client, queue_url)
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_on_dynamodb() {
    contract::connection_contract(&fresh_table().await).await;
}

/// The same contract with the tokens stored as KMS ciphertext (moto's KMS).
#[tokio::test(flavor = "multi_thread")]
async fn connections_on_dynamodb_with_encrypted_tokens() {
    contract::connection_contract(&els_tests::moto::encrypted_table("els-contract").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ledger_on_dynamodb() {
    contract::ledger_contract(&fresh_table().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn links_on_dynamodb() {
    contract::link_contract(&fresh_table().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_state_on_dynamodb() {
    contract::inventory_state_contract(&fresh_table().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_events_on_dynamodb() {
    contract::webhook_event_contract(&fresh_table().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn create_table_is_idempotent() {
    let store = fresh_table().await;
    DynamoStore::create_table(store.client(), store.table())
        .await
        .expect("an existing table is fine");
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_round_trip() {
    contract::queue_round_trip_contract(&fresh_queue().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_dedup() {
    contract::queue_dedup_contract(&fresh_queue().await, SEMANTICS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_visibility() {
    contract::queue_visibility_contract(&fresh_queue().await, SEMANTICS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_retry_after() {
    contract::queue_retry_after_contract(&fresh_queue().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_fifo_groups() {
    contract::queue_fifo_group_contract(&fresh_queue().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_dead_letter() {
    contract::queue_dead_letter_contract(&fresh_queue().await, SEMANTICS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letter_queue_is_found_from_the_redrive_policy() {
    let config = aws_config(&moto_endpoint().await).await;
    let client = aws_sdk_sqs::Client::new(&config);
    let (queue_url, dlq_url) = SqsQueue::create_fifo_with_dlq(&client, &unique_name(), 3)
        .await
        .unwrap();
    let queue = SqsQueue::new(client, queue_url);
    assert_eq!(queue.dead_letter_queue_url().await.unwrap(), Some(dlq_url));
    assert_eq!(queue.dead_letters().await.unwrap(), vec![]);
    assert_eq!(queue.queue_depth().await.unwrap(), (0, 0));
}
