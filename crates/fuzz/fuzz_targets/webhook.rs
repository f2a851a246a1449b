//! Webhook bodies and signatures through verification and a real `Ingestor` (SQLite store
//! and queue, in memory). See `els_core::fuzz::webhook_ingest` for the input format and the
//! properties. Each input gets a fresh store, so a crash replays from its input alone (the
//! ingestor remembers event ids).
#![no_main]

use els_core::fuzz::{ingestor, prepare_store, webhook_ingest};
use els_store_sqlite::SqliteStore;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let store = SqliteStore::open_in_memory().expect("an in-memory store");
        prepare_store(&store).await;
        let ingestor = ingestor(&store);
        webhook_ingest(&ingestor, &store, data).await;
    });
});
