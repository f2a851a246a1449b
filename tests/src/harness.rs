//! The embedded app on a fresh SQLite file, wired to an in-process sandbox over real HTTP.

use els_cli::embedded::{Embedded, WEBHOOK_PATH, WorkerOptions};
use els_cli::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use els_core::ingest::{IngestConfig, Ingestor};
use els_core::inventory::mirror::{InventoryMirror, MirrorConfig, MirrorReport};
use els_core::ledger::{LedgerEntry, OrderKey, OrderState};
use els_core::lightspeed::LsApiVersion;
use els_core::poster::{PosterConfig, SalePoster};
use els_core::{Connection, ConnectionStore, LedgerStore, Secret};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::LightspeedClient;
use els_sandbox::{Sandbox, SandboxConfig};
use els_store_sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub type App = Embedded<SqliteStore, SqliteStore, EcwidClient, LightspeedClient, TokioClock>;
pub type Mirror = InventoryMirror<SqliteStore, EcwidClient, LightspeedClient, TokioClock>;

pub struct Harness {
    pub sandbox: Sandbox,
    pub store: SqliteStore,
    pub app: Arc<App>,
    pub webhook_url: String,
    pub connection: Connection,
    http_timeout: Duration,
    /// The generation the poster and the mirror speak.
    pub lightspeed_api: LsApiVersion,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// Options for a harness.
pub struct HarnessOptions {
    pub sandbox: SandboxConfig,
    /// Start the background worker (off: tests drive the queue by hand).
    pub worker: bool,
    pub poster: PosterConfig,
    pub http_timeout: Duration,
    pub visibility: Duration,
    /// The SQLite queue's dead-letter threshold.
    pub max_receives: u32,
    /// The poster's Lightspeed pacing (default: the poster's reserve, a wait cap below the
    /// 5 s test lease).
    pub lightspeed_pacing: els_lightspeed::Pacing,
    /// The poster's Lightspeed API generation (default: the newest dated version).
    pub lightspeed_api: LsApiVersion,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            sandbox: SandboxConfig::default(),
            worker: true,
            poster: PosterConfig {
                lease: Duration::from_secs(5),
                retry_base: Duration::from_millis(50),
                retry_cap: Duration::from_millis(500),
                search_delay: Duration::from_millis(100),
                ..PosterConfig::default()
            },
            http_timeout: Duration::from_secs(2),
            visibility: Duration::from_secs(10),
            max_receives: 5,
            lightspeed_pacing: els_lightspeed::Pacing {
                reserve: els_lightspeed::POSTER_RESERVE,
                max_wait: Duration::from_secs(4),
                ..els_lightspeed::Pacing::default()
            },
            lightspeed_api: LsApiVersion::default(),
        }
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(HarnessOptions::default()).await
    }

    pub async fn start_with(opts: HarnessOptions) -> Self {
        let sandbox = Sandbox::start(opts.sandbox.clone())
            .await
            .expect("sandbox starts");
        let dir = tempfile::Builder::new()
            .prefix("els-test-")
            .tempdir()
            .expect("temp dir");
        let store = SqliteStore::open_with(
            dir.path().join("els.sqlite"),
            els_store_sqlite::QueueConfig {
                max_receives: opts.max_receives,
                ..els_store_sqlite::QueueConfig::default()
            },
        )
        .expect("sqlite opens");
        let connection = els_cli::ops::upsert_connection(&store, sandbox_connection(&sandbox))
            .await
            .expect("connection saved");
        let ingestor = Ingestor::new(
            store.clone(),
            store.clone(),
            IngestConfig::new(Secret::new(sandbox.config().webhook_client_secret.clone())),
            TokioClock,
        );
        let poster = SalePoster::new(
            store.clone(),
            EcwidClient::new(sandbox.ecwid_api_url(), opts.http_timeout).unwrap(),
            LightspeedClient::new(lightspeed_url_template(&sandbox), opts.http_timeout)
                .unwrap()
                .with_api_version(opts.lightspeed_api)
                .with_pacing(opts.lightspeed_pacing),
            TokioClock,
            opts.poster.clone(),
        );
        let app = Embedded::new(
            ingestor,
            poster,
            store.clone(),
            WorkerOptions {
                batch: 10,
                visibility: opts.visibility,
                idle_poll: Duration::from_millis(20),
                max_receives: store.queue_config().max_receives,
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let webhook_url = format!("http://{}{WEBHOOK_PATH}", listener.local_addr().unwrap());
        let (stop, stop_rx) = watch::channel(false);
        app.spawn_server(listener, stop_rx.clone());
        if opts.worker {
            tokio::spawn(app.clone().run_worker(stop_rx));
        }
        Self {
            sandbox,
            store,
            app,
            webhook_url,
            connection,
            http_timeout: opts.http_timeout,
            lightspeed_api: opts.lightspeed_api,
            stop,
            _dir: dir,
        }
    }

    /// An inventory mirror on the harness's store and sandbox (test timings: no waiting
    /// between batch polls).
    pub fn mirror(&self) -> Mirror {
        self.mirror_with(Self::test_mirror_config())
    }

    fn test_mirror_config() -> MirrorConfig {
        MirrorConfig {
            batch_poll_interval: Duration::from_millis(20),
            retry_base: Duration::from_millis(20),
            ..MirrorConfig::default()
        }
    }

    pub fn mirror_with(&self, config: MirrorConfig) -> Mirror {
        self.mirror_on(self.lightspeed_api, config)
    }

    /// A mirror (test timings) speaking `api` to stores without their own setting.
    pub fn mirror_with_api(&self, api: LsApiVersion) -> Mirror {
        self.mirror_on(api, Self::test_mirror_config())
    }

    fn mirror_on(&self, api: LsApiVersion, config: MirrorConfig) -> Mirror {
        InventoryMirror::new(
            self.store.clone(),
            EcwidClient::new(self.sandbox.ecwid_api_url(), self.http_timeout).unwrap(),
            LightspeedClient::new(lightspeed_url_template(&self.sandbox), self.http_timeout)
                .unwrap()
                .with_api_version(api),
            TokioClock,
            config,
        )
    }

    /// One mirror run of the harness's connection (as stored now); panics on failure.
    pub async fn mirror_once(&self) -> MirrorReport {
        let conn = self
            .store
            .get_connection(self.connection.store_id)
            .await
            .unwrap()
            .expect("connection");
        match self.mirror().mirror_connection(&conn).await {
            Ok(r) => r,
            Err(e) => panic!("mirror run failed: {e}\n{:#?}", e.report),
        }
    }

    /// Works the queue by hand (a harness without its worker) until a delivery settles with
    /// an outcome; a `RetryLater` comes back after its delay and is worked again.
    pub async fn next_outcome(&self) -> els_core::poster::PostOutcome {
        use els_core::WorkQueue;
        for _ in 0..100 {
            let batch = self
                .store
                .receive(10, Duration::from_secs(2))
                .await
                .unwrap();
            if batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for delivery in batch {
                match self.app.settle(delivery).await {
                    Ok(outcome) => return outcome,
                    Err(retry) => eprintln!("retry later: {}", retry.reason),
                }
            }
        }
        panic!("no delivery settled with an outcome");
    }

    pub fn key(&self, order_id: &str) -> OrderKey {
        OrderKey::new(self.connection.store_id, order_id)
    }

    /// Sends a signed order webhook like Ecwid would and returns the HTTP status.
    pub async fn send_webhook(
        &self,
        event_type: &str,
        order_id: &str,
        old: Option<&str>,
        new: &str,
    ) -> u16 {
        let hook = self.sandbox.order_webhook(event_type, order_id, old, new);
        self.sandbox
            .deliver(&self.webhook_url, &hook)
            .await
            .expect("delivered")
            .as_u16()
    }

    pub async fn ledger(&self, order_id: &str) -> Option<LedgerEntry> {
        self.store
            .load_order(&self.key(order_id))
            .await
            .expect("ledger readable")
    }

    /// Waits until the order's ledger item is in `state`, or panics after `timeout`.
    pub async fn wait_for(
        &self,
        order_id: &str,
        state: OrderState,
        timeout: Duration,
    ) -> LedgerEntry {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.ledger(order_id).await
                && e.state == state
            {
                return e;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "order {order_id} did not reach {state} within {timeout:?}; ledger: {:#?}",
                    self.ledger(order_id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Lightspeed sales that carry this order's invoice number.
    pub fn sales_for(&self, order_id: &str) -> Vec<serde_json::Value> {
        let invoice = self.key(order_id).invoice_number();
        self.sandbox
            .sales()
            .into_iter()
            .filter(|s| s["invoice_number"].as_str() == Some(invoice.as_str()))
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
