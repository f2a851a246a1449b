//! The adapter contract on DynamoDB and SQS, served by moto. Each test gets its own table
//! or queue pair.

use aws_sdk_dynamodb::types::AttributeValue;
use els_core::LedgerStore;
use els_core::ledger::{self, ClaimDecision, LedgerLine, OrderKey, Outcome};
use els_store_aws::metering::{DYNAMODB, Meter};
use els_store_aws::{DynamoStore, SqsQueue};
use els_tests::contract::{self, PENDING_STEPS, QueueSemantics};
use els_tests::moto::{aws_config, moto_endpoint};
use rust_decimal::Decimal;

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

/// A fresh table on a DynamoDB client that carries the cost meter.
async fn metered_table() -> (DynamoStore, Meter) {
    let config = aws_config(&moto_endpoint().await).await;
    let meter = Meter::new();
    let client = meter.dynamodb((&config).into());
    let table = unique_name();
    DynamoStore::create_table(&client, &table)
        .await
        .expect("create table on moto");
    meter.take();
    (DynamoStore::new(client, table), meter)
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

/// The pending quantities stay right through claim → facts → released → claim → renewed →
/// posted → refund, and only the saves that change the order's `PENDING#` item are
/// transactions: the others are one conditional PutItem.
#[tokio::test(flavor = "multi_thread")]
async fn only_saves_that_change_the_pending_item_are_transactions() {
    let (store, meter) = metered_table().await;
    let mut counted = Vec::new();
    contract::pending_quantities_contract(&store, |step| {
        let m = meter.take();
        counted.push((
            step,
            m.requests(DYNAMODB, "TransactWriteItems"),
            m.requests(DYNAMODB, "PutItem"),
        ));
    })
    .await;
    // (step, TransactWriteItems, PutItem): a save whose PENDING# item changes first tries
    // the plain PutItem (its condition fails on the digest), then is the transaction.
    let expected = [
        (PENDING_STEPS[0], 1, 2), // Q-0 claimed (new, no lines: PutItem), parked with lines
        (PENDING_STEPS[1], 0, 1),
        (PENDING_STEPS[2], 1, 1), // the PENDING# item put
        (PENDING_STEPS[3], 1, 1), // its state QUEUED → POSTING (the sweep's health reads it)
        (PENDING_STEPS[4], 0, 1), // unchanged: no transaction
        (PENDING_STEPS[5], 0, 1), // another version stored: a conflict, no transaction
        (PENDING_STEPS[6], 1, 1), // the PENDING# item deleted
        (PENDING_STEPS[7], 0, 1), // unchanged (none before, none after)
    ];
    assert_eq!(counted, expected);
}

/// A typical order's life (claimed before its lines are known, the lease renewed before
/// the sale POST, posted) writes its ledger with three conditional PutItems and no
/// transaction, and never has a `PENDING#` item.
#[tokio::test(flavor = "multi_thread")]
async fn a_typical_order_life_costs_no_transaction() {
    let (store, meter) = metered_table().await;
    let key = OrderKey::new(contract::unique_store_id(), "T-1");
    let now = chrono::Utc::now();
    let lease = chrono::Duration::seconds(60);
    let ClaimDecision::Claim {
        entry: claimed,
        expected_version,
        ..
    } = ledger::claim(None, &key, now, lease)
    else {
        panic!("a new order is claimed");
    };
    store.save_order(&claimed, expected_version).await.unwrap();
    let mut renewed = (*claimed).clone();
    renewed.version += 1;
    renewed.lease_until = Some(now + chrono::Duration::seconds(120));
    store
        .save_order(&renewed, Some(claimed.version))
        .await
        .unwrap();
    let posted = ledger::finish(
        &ledger::with_order_facts(
            &renewed,
            Decimal::from(12),
            vec![LedgerLine {
                sku: "MUG-001".into(),
                quantity: Decimal::from(1),
            }],
        ),
        Outcome::Posted {
            sale_id: "s-1".into(),
            adopted: false,
        },
        now,
    );
    store
        .save_order(&posted, Some(renewed.version))
        .await
        .unwrap();
    let m = meter.take();
    assert_eq!(m.requests(DYNAMODB, "TransactWriteItems"), 0);
    assert_eq!(m.requests(DYNAMODB, "PutItem"), 3);
    assert_eq!(m.get(DYNAMODB, "PutItem").unwrap().errors, 0);
    assert_eq!(m.item_writes("PENDING").items, 0);
    assert_eq!(store.load_order(&key).await.unwrap(), Some(posted));
    assert!(
        store
            .list_pending_web_sales(key.store_id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A pending ledger item written before `pending_digest` existed: the save that ends its
/// pending sale still deletes its `PENDING#` item (the digest condition fails on the
/// missing attribute, and the save is the transaction).
#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_item_from_before_the_digest_still_clears_its_pending_item() {
    let (store, meter) = metered_table().await;
    let key = OrderKey::new(contract::unique_store_id(), "OLD-1");
    let now = chrono::Utc::now();
    let lease = chrono::Duration::seconds(60);
    let ClaimDecision::Claim { entry, .. } = ledger::claim(None, &key, now, lease) else {
        panic!("a new order is claimed");
    };
    store.save_order(&entry, None).await.unwrap();
    let released = ledger::finish(
        &ledger::with_order_facts(
            &entry,
            Decimal::from(12),
            vec![LedgerLine {
                sku: "MUG-001".into(),
                quantity: Decimal::from(4),
            }],
        ),
        Outcome::Released {
            error: "503".into(),
            post_may_exist: false,
        },
        now,
    );
    store
        .save_order(&released, Some(entry.version))
        .await
        .unwrap();
    assert_eq!(
        store
            .list_pending_web_sales(key.store_id)
            .await
            .unwrap()
            .len(),
        1
    );
    // As an older version wrote it: no digest.
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("STORE#{}", key.store_id)))
        .key("sk", AttributeValue::S("ORDER#OLD-1".into()))
        .update_expression("REMOVE pending_digest")
        .send()
        .await
        .unwrap();
    meter.take();
    // Its outcome recorded at the version the older code left.
    let posted = ledger::finish(
        &released,
        Outcome::Posted {
            sale_id: "s-9".into(),
            adopted: false,
        },
        now,
    );
    store
        .save_order(&posted, Some(released.version))
        .await
        .unwrap();
    let m = meter.take();
    assert_eq!(m.requests(DYNAMODB, "TransactWriteItems"), 1);
    assert!(
        store
            .list_pending_web_sales(key.store_id)
            .await
            .unwrap()
            .is_empty(),
        "the PENDING# item is gone"
    );
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
