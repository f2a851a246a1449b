//! The adapter contract on the embedded SQLite store and queue.

use els_core::ConnectionStore;
use els_store_sqlite::{QueueConfig, SqliteStore};
use els_tests::contract::{self, QueueSemantics};

const SEMANTICS: QueueSemantics = QueueSemantics::sqs_fifo(3);

fn fresh_queue() -> SqliteStore {
    SqliteStore::open_in_memory_with(QueueConfig {
        max_receives: SEMANTICS.max_receives,
        ..QueueConfig::default()
    })
    .expect("in-memory SQLite")
}

/// A database file in a directory removed on drop (WAL needs a real file).
struct TempDb(std::path::PathBuf);

impl TempDb {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("els-contract-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections() {
    let store = SqliteStore::open_in_memory().unwrap();
    contract::connection_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ledger() {
    let store = SqliteStore::open_in_memory().unwrap();
    contract::ledger_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn links() {
    let store = SqliteStore::open_in_memory().unwrap();
    contract::link_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_state() {
    let store = SqliteStore::open_in_memory().unwrap();
    contract::inventory_state_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_events() {
    let store = SqliteStore::open_in_memory().unwrap();
    contract::webhook_event_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn state_store_on_a_file_survives_reopening() {
    let dir = TempDb::new();
    let path = dir.0.join("els.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    contract::state_store_contract(&store).await;
    let conn = contract::sample_connection(contract::unique_store_id());
    ConnectionStore::put_connection(&store, &conn, None)
        .await
        .unwrap();
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(
        ConnectionStore::get_connection(&reopened, conn.store_id)
            .await
            .unwrap(),
        Some(conn)
    );
    contract::state_store_contract(&reopened).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_round_trip() {
    contract::queue_round_trip_contract(&fresh_queue()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_dedup() {
    contract::queue_dedup_contract(&fresh_queue(), SEMANTICS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_visibility() {
    contract::queue_visibility_contract(&fresh_queue(), SEMANTICS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_retry_after() {
    contract::queue_retry_after_contract(&fresh_queue()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_fifo_groups() {
    contract::queue_fifo_group_contract(&fresh_queue()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_dead_letter() {
    contract::queue_dead_letter_contract(&fresh_queue(), SEMANTICS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_on_a_file() {
    let dir = TempDb::new();
    let path = dir.0.join("queue.sqlite");
    let config = QueueConfig {
        max_receives: SEMANTICS.max_receives,
        ..QueueConfig::default()
    };
    let mut n = 0;
    contract::work_queue_contract(
        || {
            n += 1;
            let store = SqliteStore::open_with(path.with_extension(format!("{n}")), config)
                .expect("SQLite file");
            async move { store }
        },
        SEMANTICS,
    )
    .await;
}
