//! The state contract on the in-memory store (`els_core::memory`), the adapter the services'
//! unit tests use: it must behave like SQLite and DynamoDB.

use els_core::memory::MemoryStore;
use els_tests::contract;

#[tokio::test(flavor = "multi_thread")]
async fn connections() {
    contract::connection_contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ledger() {
    contract::ledger_contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn links() {
    contract::link_contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inventory_state() {
    contract::inventory_state_contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_events() {
    contract::webhook_event_contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_port_on_one_store() {
    contract::state_store_contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clones_share_one_state() {
    let store = MemoryStore::new();
    let conn = contract::sample_connection(contract::unique_store_id());
    els_core::ConnectionStore::put_connection(&store.clone(), &conn, None)
        .await
        .unwrap();
    assert_eq!(
        els_core::ConnectionStore::get_connection(&store, conn.store_id)
            .await
            .unwrap(),
        Some(conn)
    );
}
