//! The embedded adapters: state ([`StateStore`]) and the work queue ([`WorkQueue`]) in one
//! SQLite file, for `serve` on a single machine.
//!
//! State mirrors the DynamoDB single table: one table per item kind, the item as JSON next
//! to its key columns and `version`. Conditional writes are a `WHERE version = ?` update or
//! an insert that must not collide, so a lost race is [`StoreError::Conflict`], as on
//! DynamoDB.
//!
//! The queue behaves like SQS FIFO: per message group (one order) a single message is
//! in flight at a time, a `dedup_id` seen within the deduplication window is dropped, every
//! delivery gets a fresh receipt handle, and a message received more than `max_receives`
//! times moves to a dead-letter table (a redrive policy). Only the head of each group is
//! ever delivered, and a receive hands out at most one message per group, so one store's
//! orders are worked strictly in order.
//!
//! Durability: WAL with `synchronous = NORMAL`. A commit survives a crash of the process
//! (the webhook is acked only after it); a power cut may lose the last commits.
//!
//! The file holds every merchant's tokens: on unix it and its `-wal` and `-shm` files are
//! `0600`, and a wider existing one is tightened with a warning (`file_mode`).

mod file_mode;
mod queue;
mod state;

use els_core::{QueueError, StoreError};
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Queue behaviour, with SQS FIFO's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// A message received this many times is dead-lettered instead of delivered again
    /// (SQS `maxReceiveCount`; 10, as the SAM template deploys).
    pub max_receives: u32,
    /// A message whose `dedup_id` was enqueued within this window is dropped.
    pub dedup_window: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_receives: 10,
            dedup_window: Duration::from_secs(5 * 60),
        }
    }
}

/// State store and work queue on one SQLite database. Clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    config: QueueConfig,
    /// Enqueues since the last prune of expired deduplication ids.
    enqueues: AtomicU64,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS connections (
    store_id INTEGER PRIMARY KEY,
    version  INTEGER NOT NULL,
    item     TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    store_id   INTEGER NOT NULL,
    order_id   TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    created_at INTEGER NOT NULL, -- microseconds since the epoch
    version    INTEGER NOT NULL,
    item       TEXT    NOT NULL,
    PRIMARY KEY (store_id, order_id)
);
CREATE INDEX IF NOT EXISTS orders_by_created ON orders (store_id, created_at, order_id);
CREATE INDEX IF NOT EXISTS orders_by_state ON orders (store_id, state, created_at, order_id);
CREATE TABLE IF NOT EXISTS product_links (
    store_id INTEGER NOT NULL,
    sku      TEXT    NOT NULL,
    item     TEXT    NOT NULL,
    PRIMARY KEY (store_id, sku)
);
CREATE TABLE IF NOT EXISTS customer_links (
    store_id INTEGER NOT NULL,
    email    TEXT    NOT NULL, -- normalised: trimmed, lower-cased
    version  INTEGER NOT NULL,
    item     TEXT    NOT NULL,
    PRIMARY KEY (store_id, email)
);
-- The inventory mirror (els_core::inventory).
CREATE TABLE IF NOT EXISTS inventory_cursors (
    store_id INTEGER PRIMARY KEY,
    version  INTEGER NOT NULL,
    item     TEXT    NOT NULL
);
-- The order sweep (els_core::sweep).
CREATE TABLE IF NOT EXISTS sweep_cursors (
    store_id INTEGER PRIMARY KEY,
    version  INTEGER NOT NULL,
    item     TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS catalog_links (
    store_id      INTEGER NOT NULL,
    ls_product_id TEXT    NOT NULL,
    sku_key       TEXT    NOT NULL, -- trimmed, lower-cased; '' when blank
    live          INTEGER NOT NULL,
    item          TEXT    NOT NULL,
    PRIMARY KEY (store_id, ls_product_id)
);
-- Covers the SKU index query (live owners of a SKU, in id order).
CREATE INDEX IF NOT EXISTS catalog_links_by_sku
    ON catalog_links (store_id, sku_key, live, ls_product_id);
CREATE TABLE IF NOT EXISTS pushed_stock (
    store_id      INTEGER NOT NULL,
    ls_product_id TEXT    NOT NULL,
    item          TEXT    NOT NULL,
    PRIMARY KEY (store_id, ls_product_id)
);
CREATE TABLE IF NOT EXISTS queue (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id      TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    enqueued_at   INTEGER NOT NULL, -- milliseconds since the epoch
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT,
    -- 1 for the oldest message of its group: the only one that may be delivered.
    is_head       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_by_group ON queue (group_id, seq);
CREATE INDEX IF NOT EXISTS queue_heads ON queue (seq) WHERE is_head = 1;
CREATE TABLE IF NOT EXISTS queue_dedup (
    dedup_id   TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_dedup_expiry ON queue_dedup (expires_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id       TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    enqueued_at    INTEGER NOT NULL,
    receive_count  INTEGER NOT NULL,
    dead_lettered_at INTEGER NOT NULL
);
-- Webhook event ids seen by ingest (replay protection), keyed by the event id alone.
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id   TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL, -- microseconds since the epoch
    item       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_events_expiry ON webhook_events (expires_at);
PRAGMA user_version = 1;
"#;

impl SqliteStore {
    /// Opens (or creates) the database file at `path` with the default [`QueueConfig`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, QueueConfig::default())
    }

    /// Opens (or creates) the database file at `path`. On unix the file and its `-wal` and
    /// `-shm` companions are readable by their owner only (`0600`); an existing one open to
    /// others is tightened, with a warning naming it.
    pub fn open_with(path: impl AsRef<Path>, config: QueueConfig) -> Result<Self, StoreError> {
        let path = path.as_ref();
        file_mode::before_open(path);
        let conn = Connection::open(path).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open SQLite database {}: {e}",
                path.display()
            ))
        })?;
        // Setting WAL mode and the schema creates the companions.
        let store = Self::init(conn, config)?;
        file_mode::after_open(path);
        Ok(store)
    }

    /// A private in-memory database (tests). Clones share it.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::open_in_memory_with(QueueConfig::default())
    }

    pub fn open_in_memory_with(config: QueueConfig) -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite: {e}")))?;
        Self::init(conn, config)
    }

    fn init(conn: Connection, config: QueueConfig) -> Result<Self, StoreError> {
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(5))?;
            // `journal_mode` answers with the mode; an in-memory database stays "memory".
            let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)
        };
        setup().map_err(|e| StoreError::Unavailable(format!("cannot set up SQLite: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                config,
                enqueues: AtomicU64::new(0),
            }),
        })
    }

    pub fn queue_config(&self) -> QueueConfig {
        self.inner.config
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Inner) -> Result<T, Failure> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&inner.conn);
            f(&mut conn, &inner)
        })
        .await
        .map_err(|e| Failure::Join(e.to_string()))?
    }
}

impl SqliteStore {
    /// Runs `f` on the connection on the calling thread.
    fn run_now<T, F>(&self, f: F) -> Result<T, Failure>
    where
        F: FnOnce(&mut Connection, &Inner) -> Result<T, Failure>,
    {
        let mut conn = lock(&self.inner.conn);
        f(&mut conn, &self.inner)
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock rolled its transaction back (the guard dropped it), so
    // the connection is still consistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds since the epoch on the wall clock.
fn now_millis() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// SQLite integers are signed; ids and versions are stored bit for bit.
fn to_sql_int(v: u64) -> i64 {
    v as i64
}

/// A store id as its SQLite column holds it.
fn store_int(id: els_core::StoreId) -> i64 {
    to_sql_int(id.get())
}

/// An internal failure, converted into the port's error type at the boundary.
#[derive(Debug)]
enum Failure {
    Sql(rusqlite::Error),
    Join(String),
    Conflict(String),
    Corrupt { key: String, detail: String },
    InvalidMessage(String),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Sql(e) => StoreError::Unavailable(format!("SQLite: {e}")),
            Failure::Join(e) => StoreError::Unavailable(format!("SQLite task failed: {e}")),
            Failure::Conflict(what) => StoreError::Conflict(what),
            Failure::Corrupt { key, detail } => StoreError::Corrupt { key, detail },
            Failure::InvalidMessage(detail) => StoreError::Unavailable(detail),
        }
    }
}

impl From<Failure> for QueueError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Sql(e) => QueueError::Unavailable(format!("SQLite: {e}")),
            Failure::Join(e) => QueueError::Unavailable(format!("SQLite task failed: {e}")),
            Failure::Conflict(what) => QueueError::Unavailable(what),
            Failure::Corrupt { key, detail } => {
                QueueError::InvalidMessage(format!("{key}: {detail}"))
            }
            Failure::InvalidMessage(detail) => QueueError::InvalidMessage(detail),
        }
    }
}
