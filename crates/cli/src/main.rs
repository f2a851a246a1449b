//! `els`: run ecwid-lightspeed-sync in one process, and operate it.

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use els_cli::embedded::{Embedded, WEBHOOK_PATH, WorkerOptions, run_inventory_timer};
use els_cli::lightspeed_auth::{self, AuthLightspeed, authenticated_lightspeed, serve_lightspeed};
use els_cli::ops;
use els_cli::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use els_core::ingest::{IngestConfig, Ingestor};
use els_core::inventory::mirror::{InventoryMirror, MirrorConfig, RunOutcome};
use els_core::ledger::{OrderKey, OrderState, ReasonCode};
use els_core::poster::{PosterConfig, SalePoster};
use els_core::{
    Connection, ConnectionStore, DomainPrefix, LedgerStore, LightspeedAccount, Secret, Settings,
    StateStore, SystemClock,
};
use els_ecwid::EcwidClient;
use els_lightspeed::{LightspeedClient, Pacing};
use els_sandbox::{OrderItemSpec, OrderSpec, Sandbox, SandboxConfig};
use els_store_sqlite::SqliteStore;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "els",
    version,
    about = "Ecwid → Lightspeed Retail X-Series sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the webhook endpoint and the sale poster in one process on a SQLite file.
    /// By default it runs against the built-in sandbox and needs no credentials.
    Serve(ServeArgs),
    /// Ledger counts by state, or one order's full history.
    Status(StatusArgs),
    /// Put a parked or skipped order (or all with one reason) back on the queue.
    Replay(ReplayArgs),
    /// Create or update the connection of one Ecwid store to a Lightspeed register.
    Connect(ConnectArgs),
    /// Benchmark the embedded mode against the sandbox: ingest throughput and latency.
    Bench(BenchArgs),
    /// Benchmark the inventory mirror against the sandbox on a large catalog.
    BenchInventory(BenchInventoryArgs),
    /// Benchmark a burst of orders against the sandbox's Lightspeed rate limit.
    BenchRateLimit(BenchRateLimitArgs),
    /// Run the inventory mirror (Lightspeed stock → Ecwid) once, for every connection or one.
    SyncInventory(SyncInventoryArgs),
    /// Compare every linked product's level in Lightspeed and Ecwid and print the drift;
    /// `--fix` writes Lightspeed's level (minus pending web sales) to Ecwid.
    Reconcile(ReconcileArgs),
}

/// Where the real (or a stand-in) Ecwid and Lightspeed APIs are.
#[derive(Args, Clone)]
struct ApiArgs {
    #[arg(long, env = "ECWID_API_URL", default_value = els_ecwid::DEFAULT_API_URL)]
    ecwid_api_url: String,
    #[arg(long, env = "LIGHTSPEED_URL_TEMPLATE", default_value = els_lightspeed::DEFAULT_URL_TEMPLATE)]
    lightspeed_url_template: String,
    /// Timeout of each Ecwid / Lightspeed request, in milliseconds.
    #[arg(long, env = "HTTP_TIMEOUT_MS", default_value_t = 10_000)]
    http_timeout_ms: u64,
    /// The longest a Lightspeed request waits in-process for the rate-limit budget, in
    /// milliseconds; a longer wait defers the order (its message comes back later).
    #[arg(long, env = "LIGHTSPEED_MAX_RATE_WAIT_MS", default_value_t = 20_000)]
    max_rate_wait_ms: u64,
    #[command(flatten)]
    lightspeed_oauth: LightspeedOAuthArgs,
}

/// The Lightspeed OAuth app that refreshes expiring tokens (both or neither; neither:
/// personal tokens only).
#[derive(Args, Clone)]
struct LightspeedOAuthArgs {
    #[arg(long, env = "LIGHTSPEED_CLIENT_ID")]
    lightspeed_client_id: Option<String>,
    #[arg(long, env = "LIGHTSPEED_CLIENT_SECRET", hide_env_values = true)]
    lightspeed_client_secret: Option<String>,
}

impl LightspeedOAuthArgs {
    fn credentials(&self) -> anyhow::Result<Option<els_lightspeed::oauth::OAuthCredentials>> {
        lightspeed_auth::oauth_credentials(
            self.lightspeed_client_id.clone(),
            self.lightspeed_client_secret.clone(),
        )
    }
}

#[derive(Args)]
struct SyncInventoryArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// Only this Ecwid store (default: every connection).
    #[arg(long, env = "ELS_STORE_ID")]
    store: Option<u64>,
    /// Stop after the page during which this many seconds passed; the next run continues.
    #[arg(long, default_value_t = 300)]
    max_run_secs: u64,
}

#[derive(Args)]
struct ReconcileArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, env = "ELS_STORE_ID", default_value_t = 1003)]
    store: u64,
    /// Write the expected level of every drifted product to Ecwid.
    #[arg(long)]
    fix: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Signed webhooks sent in the ingest phase.
    #[arg(long, default_value_t = 20_000)]
    webhooks: usize,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Orders timed from webhook to recorded sale.
    #[arg(long, default_value_t = 500)]
    orders: usize,
}

#[derive(Args)]
struct BenchRateLimitArgs {
    /// Paid orders sent at once.
    #[arg(long, default_value_t = 1000)]
    orders: usize,
    /// Lightspeed requests allowed per window.
    #[arg(long, default_value_t = 350)]
    limit: u32,
    /// The rate-limit window in milliseconds (Lightspeed's is 300000).
    #[arg(long, default_value_t = 10_000)]
    window_ms: u64,
}

#[derive(Args)]
struct BenchInventoryArgs {
    /// Products in both catalogs.
    #[arg(long, default_value_t = 100_000)]
    catalog: usize,
    /// Lightspeed levels changed before a timed run (repeatable).
    #[arg(long, default_values_t = [1000, 10])]
    changes: Vec<usize>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum BackendKind {
    /// The embedded SQLite file (`--db`).
    Sqlite,
    /// DynamoDB + SQS (`--table`, `--queue-url`; endpoint and credentials from the AWS environment).
    Aws,
}

#[derive(Args, Clone)]
struct BackendArgs {
    #[arg(long, value_enum, default_value = "sqlite", env = "ELS_BACKEND")]
    backend: BackendKind,
    /// SQLite file of the embedded mode.
    #[arg(long, default_value = "els.sqlite", env = "ELS_DB")]
    db: PathBuf,
    /// DynamoDB table (aws backend).
    #[arg(long, env = "TABLE_NAME")]
    table: Option<String>,
    /// SQS FIFO queue URL (aws backend).
    #[arg(long, env = "QUEUE_URL")]
    queue_url: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Where the webhook endpoint listens.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ELS_LISTEN")]
    listen: SocketAddr,
    /// Talk to the real Ecwid and Lightspeed instead of the built-in sandbox.
    #[arg(long, env = "ELS_LIVE")]
    live: bool,
    /// Sandbox port (0: any free port).
    #[arg(long, default_value_t = 0, env = "ELS_SANDBOX_PORT")]
    sandbox_port: u16,
    /// Place demo orders in the sandbox, send their signed webhooks, and print the sales.
    #[arg(long)]
    demo: bool,
    /// Stop after the demo (for scripts and CI).
    #[arg(long, requires = "demo")]
    exit_after_demo: bool,
    /// The Ecwid app's client_secret, the key of webhook signatures (live mode).
    #[arg(long, env = "ECWID_CLIENT_SECRET", hide_env_values = true)]
    ecwid_client_secret: Option<String>,
    #[arg(long, env = "ECWID_API_URL", default_value = els_ecwid::DEFAULT_API_URL)]
    ecwid_api_url: String,
    #[arg(long, env = "LIGHTSPEED_URL_TEMPLATE", default_value = els_lightspeed::DEFAULT_URL_TEMPLATE)]
    lightspeed_url_template: String,
    /// Timeout of each Ecwid / Lightspeed request, in milliseconds.
    #[arg(long, env = "HTTP_TIMEOUT_MS", default_value_t = 10_000)]
    http_timeout_ms: u64,
    /// The longest a Lightspeed request waits in-process for the rate-limit budget, in
    /// milliseconds; a longer wait defers the order (its message comes back later).
    #[arg(long, env = "LIGHTSPEED_MAX_RATE_WAIT_MS", default_value_t = 20_000)]
    max_rate_wait_ms: u64,
    /// How long a claim on an order is exclusive, in seconds.
    #[arg(long, env = "LEASE_SECONDS", default_value_t = 120)]
    lease_seconds: u64,
    /// After a sale POST whose outcome is unknown, how long to wait before searching
    /// Lightspeed for it, in seconds (its search index may lag).
    #[arg(long, env = "SEARCH_DELAY_SECONDS", default_value_t = 90)]
    search_delay_seconds: u64,
    /// How often the inventory mirror runs (Lightspeed stock → Ecwid), in seconds; 0 turns
    /// the timer off.
    #[arg(long, env = "INVENTORY_INTERVAL_SECS", default_value_t = 60)]
    inventory_interval_secs: u64,
    #[command(flatten)]
    lightspeed_oauth: LightspeedOAuthArgs,
}

#[derive(Args)]
struct StatusArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long, env = "ELS_STORE_ID", default_value_t = 1003)]
    store: u64,
    /// Show one order's full history.
    #[arg(long)]
    order: Option<String>,
    /// List the orders in this state.
    #[arg(long)]
    state: Option<String>,
    /// The SQS dead-letter queue (aws backend); default: the one the queue's redrive policy
    /// names.
    #[arg(long, env = "DLQ_URL")]
    dlq_url: Option<String>,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long, env = "ELS_STORE_ID", default_value_t = 1003)]
    store: u64,
    #[arg(long, conflicts_with_all = ["reason", "dlq"], required_unless_present_any = ["reason", "dlq"])]
    order: Option<String>,
    /// A reason code, e.g. UNKNOWN_SKU or POST_SALES_OFF: replay every order with it.
    #[arg(long, conflicts_with = "dlq")]
    reason: Option<String>,
    /// Take every message of the dead-letter queue back (any store): requeue its order and
    /// put a fresh message on the main queue, then delete it from the DLQ.
    #[arg(long)]
    dlq: bool,
    /// With --dlq: list what would be replayed, change nothing.
    #[arg(long, requires = "dlq")]
    dry_run: bool,
    /// The SQS dead-letter queue (aws backend); default: the one the queue's redrive policy
    /// names.
    #[arg(long, env = "DLQ_URL")]
    dlq_url: Option<String>,
}

#[derive(Args)]
struct ConnectArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long)]
    store: u64,
    #[arg(long, env = "ECWID_TOKEN", hide_env_values = true)]
    ecwid_token: String,
    /// The Lightspeed store's domain prefix (`myshop` of myshop.retail.lightspeed.app; the
    /// store URL is accepted too).
    #[arg(long, value_parser = DomainPrefix::from_input)]
    domain_prefix: DomainPrefix,
    #[arg(long, env = "LIGHTSPEED_TOKEN", hide_env_values = true)]
    lightspeed_token: String,
    /// The OAuth refresh token that came with `--lightspeed-token` (none: a personal token).
    #[arg(long, env = "LIGHTSPEED_REFRESH_TOKEN", hide_env_values = true)]
    lightspeed_refresh_token: Option<String>,
    /// When the OAuth access token expires (RFC 3339); unknown: refreshed after a 401.
    #[arg(long, requires = "lightspeed_refresh_token")]
    lightspeed_token_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long)]
    register_id: String,
    #[arg(long)]
    outlet_id: String,
    #[arg(long)]
    user_id: String,
    #[arg(long)]
    payment_type_id: String,
    /// Turn "Post Ecwid Sales to Lightspeed Retail" on or off (default on).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    post_sales: bool,
    /// Turn "Update Ecwid with inventory changes" on or off (default on).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sync_inventory: bool,
}

/// The state store alone (the inventory commands need no queue).
enum StateBackend {
    Sqlite(SqliteStore),
    Dynamo(els_store_aws::DynamoStore),
}

async fn open_state(args: &BackendArgs) -> anyhow::Result<StateBackend> {
    match args.backend {
        BackendKind::Sqlite => Ok(StateBackend::Sqlite(
            SqliteStore::open(&args.db)
                .with_context(|| format!("opening {}", args.db.display()))?,
        )),
        BackendKind::Aws => {
            let table = args
                .table
                .clone()
                .context("--table (or TABLE_NAME) is required with --backend aws")?;
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            Ok(StateBackend::Dynamo(els_store_aws::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&config),
                table,
            )))
        }
    }
}

/// Runs `$body` with `$store` bound (by value) to the chosen state store.
macro_rules! with_state {
    ($backend:expr, |$store:ident| $body:expr) => {
        match $backend {
            StateBackend::Sqlite(s) => {
                let $store = s;
                $body
            }
            StateBackend::Dynamo(s) => {
                let $store = s;
                $body
            }
        }
    };
}

fn api_clients(api: &ApiArgs) -> anyhow::Result<EcwidClient> {
    let timeout = Duration::from_millis(api.http_timeout_ms);
    Ok(EcwidClient::new(api.ecwid_api_url.clone(), timeout)?)
}

/// The Lightspeed client, refreshing OAuth tokens stored in `store`.
fn api_lightspeed<S: StateStore>(api: &ApiArgs, store: S) -> anyhow::Result<AuthLightspeed<S>> {
    authenticated_lightspeed(
        &api.lightspeed_url_template,
        Duration::from_millis(api.http_timeout_ms),
        Pacing {
            max_wait: Duration::from_millis(api.max_rate_wait_ms),
            ..Pacing::default()
        },
        store,
        api.lightspeed_oauth.credentials()?,
    )
}

/// The backend an operator command works on.
enum Backend {
    Sqlite(SqliteStore),
    Aws(els_store_aws::DynamoStore, els_store_aws::SqsQueue),
}

async fn open_backend(args: &BackendArgs) -> anyhow::Result<Backend> {
    match args.backend {
        BackendKind::Sqlite => Ok(Backend::Sqlite(
            SqliteStore::open(&args.db)
                .with_context(|| format!("opening {}", args.db.display()))?,
        )),
        BackendKind::Aws => {
            let table = args
                .table
                .clone()
                .context("--table (or TABLE_NAME) is required with --backend aws")?;
            let queue_url = args
                .queue_url
                .clone()
                .context("--queue-url (or QUEUE_URL) is required with --backend aws")?;
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            Ok(Backend::Aws(
                els_store_aws::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table),
                els_store_aws::SqsQueue::new(aws_sdk_sqs::Client::new(&config), queue_url),
            ))
        }
    }
}

/// Runs `$body` with `$store` and `$queue` bound to the chosen backend's adapters.
macro_rules! with_backend {
    ($backend:expr, |$store:ident, $queue:ident| $body:expr) => {
        match $backend {
            Backend::Sqlite(s) => {
                let $store = &s;
                let $queue = &s;
                $body
            }
            Backend::Aws(s, q) => {
                let $store = &s;
                let $queue = &q;
                $body
            }
        }
    };
}

fn init_tracing(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .compact()
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The benchmark and the demo print their own report; logs would drown it.
    init_tracing(match cli.command {
        Command::Bench(_) | Command::BenchInventory(_) | Command::BenchRateLimit(_) => "warn",
        Command::Serve(ServeArgs { demo: true, .. }) => "warn",
        _ => "info,hyper=warn,reqwest=warn",
    });
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Status(args) => status(args).await,
        Command::Replay(args) => replay(args).await,
        Command::Connect(args) => connect(args).await,
        Command::SyncInventory(args) => sync_inventory(args).await,
        Command::BenchRateLimit(args) => {
            let dir = std::env::temp_dir().join(format!("els-bench-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir)?;
            let report = els_cli::bench::run_rate_limit(
                &dir,
                els_cli::bench::RateLimitBenchOptions {
                    orders: args.orders,
                    limit: args.limit,
                    window: Duration::from_millis(args.window_ms),
                },
            )
            .await;
            let _ = std::fs::remove_dir_all(&dir);
            report?.print();
            Ok(())
        }
        Command::BenchInventory(args) => {
            let dir = std::env::temp_dir().join(format!("els-bench-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir)?;
            let result = els_cli::bench::run_inventory(
                &dir,
                els_cli::bench::InventoryBenchOptions {
                    catalog: args.catalog,
                    changes: args.changes,
                },
            )
            .await;
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
        Command::Reconcile(args) => reconcile(args).await,
        Command::Bench(args) => {
            let dir = std::env::temp_dir().join(format!("els-bench-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir)?;
            let report = els_cli::bench::run(
                &dir,
                els_cli::bench::BenchOptions {
                    webhooks: args.webhooks,
                    concurrency: args.concurrency,
                    orders: args.orders,
                },
            )
            .await;
            let _ = std::fs::remove_dir_all(&dir);
            report?.print();
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.backend.backend != BackendKind::Sqlite {
        bail!(
            "serve runs the embedded mode on SQLite; deploy the Lambda functions for DynamoDB/SQS"
        );
    }
    let store = SqliteStore::open(&args.backend.db)
        .with_context(|| format!("opening {}", args.backend.db.display()))?;
    let timeout = Duration::from_millis(args.http_timeout_ms);

    let (sandbox, client_secret, ecwid_url, ls_template) = if args.live {
        let secret = args
            .ecwid_client_secret
            .clone()
            .context("live mode needs ECWID_CLIENT_SECRET (the Ecwid app's client_secret)")?;
        (
            None,
            secret,
            args.ecwid_api_url.clone(),
            args.lightspeed_url_template.clone(),
        )
    } else {
        let sandbox = Sandbox::start_on(
            SandboxConfig::default(),
            SocketAddr::from(([127, 0, 0, 1], args.sandbox_port)),
        )
        .await
        .context("starting the sandbox")?;
        ops::upsert_connection(&store, sandbox_connection(&sandbox)).await?;
        let secret = sandbox.config().webhook_client_secret.clone();
        let (e, l) = (sandbox.ecwid_api_url(), lightspeed_url_template(&sandbox));
        (Some(sandbox), secret, e, l)
    };

    let ingestor = Ingestor::new(
        store.clone(),
        store.clone(),
        IngestConfig::new(Secret::new(client_secret)),
    );
    // One client per API for the process: the poster and the mirror share Ecwid's pool and
    // Lightspeed's rate gate.
    let ecwid = EcwidClient::new(ecwid_url.clone(), timeout)?;
    let lightspeed = serve_lightspeed(
        LightspeedClient::new(ls_template.clone(), timeout)?,
        Duration::from_millis(args.max_rate_wait_ms),
        store.clone(),
        args.lightspeed_oauth.credentials()?,
    );
    let poster = SalePoster::new(
        store.clone(),
        ecwid.clone(),
        lightspeed.poster,
        SystemClock,
        PosterConfig {
            lease: Duration::from_secs(args.lease_seconds),
            search_delay: Duration::from_secs(args.search_delay_seconds),
            ..PosterConfig::default()
        },
    );
    let worker_options = WorkerOptions {
        max_receives: store.queue_config().max_receives,
        ..WorkerOptions::default()
    };
    let app = Embedded::new(ingestor, poster, store.clone(), worker_options);
    let mirror = Arc::new(InventoryMirror::new(
        store.clone(),
        ecwid,
        lightspeed.mirror,
        SystemClock,
        MirrorConfig::default(),
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let webhook_url = format!("http://{}{WEBHOOK_PATH}", listener.local_addr()?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = {
        let router = app.router();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await
        })
    };
    let worker = tokio::spawn(app.clone().run_worker(stop_rx.clone()));
    if args.demo {
        // The first run links the catalogs; done before the demo places orders, so the
        // demo shows steady-state behaviour rather than this bootstrap.
        for result in mirror.mirror_all().await? {
            result?;
        }
    }
    let inventory = (args.inventory_interval_secs > 0).then(|| {
        tokio::spawn(run_inventory_timer(
            mirror.clone(),
            Duration::from_secs(args.inventory_interval_secs),
            stop_rx.clone(),
        ))
    });

    println!("ecwid-lightspeed-sync (embedded)");
    println!("  webhook endpoint   POST {webhook_url}");
    println!("  state and queue    {}", args.backend.db.display());
    println!("  Ecwid API          {ecwid_url}");
    println!("  Lightspeed API     {ls_template}");
    if args.inventory_interval_secs > 0 {
        println!(
            "  inventory mirror   every {} s (Lightspeed stock -> Ecwid)",
            args.inventory_interval_secs
        );
    } else {
        println!("  inventory mirror   off (--inventory-interval-secs 0)");
    }
    if sandbox.is_some() {
        println!(
            "  mode               sandbox (built-in fake Ecwid store 1003 and Lightspeed retailer)"
        );
    }

    let mut demo_result = Ok(());
    if args.demo {
        let sandbox = sandbox
            .as_ref()
            .context("--demo needs the sandbox (drop --live)")?;
        demo_result = els_cli_demo::run(sandbox, &store, &webhook_url, &mirror).await;
    }
    if !args.exit_after_demo {
        println!("\nListening. Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop_tx.send(true);
    let _ = worker.await;
    if let Some(inventory) = inventory {
        let _ = inventory.await;
    }
    let _ = server.await;
    demo_result
}

use tokio::sync::watch;

/// The visible demo: one order paid at checkout, one paid later.
mod els_cli_demo {
    use super::*;

    async fn wait_for_state(
        store: &SqliteStore,
        key: &OrderKey,
        want: OrderState,
    ) -> anyhow::Result<els_core::LedgerEntry> {
        for _ in 0..200 {
            if let Some(e) = store.load_order(key).await?
                && e.state == want
            {
                return Ok(e);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("order {key} did not reach {want} within 10 s")
    }

    fn print_sale(sandbox: &Sandbox, invoice: &str) -> anyhow::Result<()> {
        let sales: Vec<_> = sandbox
            .sales()
            .into_iter()
            .filter(|s| s["invoice_number"].as_str() == Some(invoice))
            .collect();
        let [sale] = sales.as_slice() else {
            bail!(
                "expected exactly one Lightspeed sale with invoice {invoice}, found {}",
                sales.len()
            );
        };
        println!(
            "  Lightspeed sale {} ({}), invoice {}",
            sale["id"].as_str().unwrap_or("?"),
            sale["status"].as_str().unwrap_or("?"),
            invoice
        );
        for line in sale["register_sale_products"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let product = line["product_id"]
                .as_str()
                .and_then(|id| sandbox.ls_product(id))
                .map(|p| {
                    format!(
                        "{} ({})",
                        p["name"].as_str().unwrap_or("?"),
                        p["sku"].as_str().unwrap_or("?")
                    )
                })
                .unwrap_or_else(|| "?".into());
            println!(
                "    {:>3} x {:<28} unit price {:>6} + tax {:>5}",
                line["quantity"].to_string(),
                product,
                line["price"].to_string(),
                line["tax"].to_string()
            );
        }
        println!(
            "    total_price {}  total_tax {}",
            sale["total_price"], sale["total_tax"]
        );
        for p in sale["register_sale_payments"]
            .as_array()
            .into_iter()
            .flatten()
        {
            println!("    payment {}", p["amount"]);
        }
        Ok(())
    }

    pub async fn run(
        sandbox: &Sandbox,
        store: &SqliteStore,
        webhook_url: &str,
        mirror: &InventoryMirror<
            SqliteStore,
            EcwidClient,
            AuthLightspeed<SqliteStore>,
            SystemClock,
        >,
    ) -> anyhow::Result<()> {
        let store_id = sandbox.config().ecwid_store_id;
        println!("\n== Demo 1: an order paid at checkout ==");
        let order_id = sandbox.place_order(OrderSpec {
            items: vec![
                OrderItemSpec::new("TSHIRT-M", 2),
                OrderItemSpec::new("MUG-001", 1),
            ],
            email: "jane@example.com".into(),
            first_name: "Jane".into(),
            last_name: "Doe".into(),
            ..OrderSpec::default()
        });
        let order = sandbox
            .ecwid_order(&order_id)
            .context("the sandbox lost the order")?;
        println!(
            "  Ecwid order {order_id}: total {}, paymentStatus {}",
            order["total"], order["paymentStatus"]
        );
        let hook = sandbox.order_webhook("order.created", &order_id, None, "PAID");
        let status = sandbox.deliver(webhook_url, &hook).await?;
        println!("  signed webhook order.created delivered: HTTP {status}");
        let key = OrderKey::new(store_id, order_id.clone());
        let entry = wait_for_state(store, &key, OrderState::Posted).await?;
        print_sale(sandbox, &entry.invoice_number)?;
        println!("  ledger:\n{}", indent(&ops::describe(&entry)));

        println!("== Demo 2: an order awaiting payment, paid later ==");
        let order_id = sandbox.place_order(OrderSpec {
            items: vec![OrderItemSpec::new("123123", 1)],
            payment_status: "AWAITING_PAYMENT".into(),
            prices_include_tax: true,
            ..OrderSpec::default()
        });
        let key = OrderKey::new(store_id, order_id.clone());
        let hook = sandbox.order_webhook("order.created", &order_id, None, "AWAITING_PAYMENT");
        let status = sandbox.deliver(webhook_url, &hook).await?;
        println!(
            "  order {order_id} created AWAITING_PAYMENT: webhook HTTP {status}; not posted (rule O2)"
        );
        sandbox.set_payment_status(&order_id, "PAID")?;
        let hook =
            sandbox.order_webhook("order.updated", &order_id, Some("AWAITING_PAYMENT"), "PAID");
        let status = sandbox.deliver(webhook_url, &hook).await?;
        println!("  order {order_id} marked PAID: webhook HTTP {status}");
        let entry = wait_for_state(store, &key, OrderState::Posted).await?;
        print_sale(sandbox, &entry.invoice_number)?;

        println!("== Demo 3: a sale in the POS reaches Ecwid (rules S1, S3) ==");
        let ids = sandbox.ids();
        let mug = &ids.mug;
        let show = |when: &str| {
            println!(
                "  {when:<22} Lightspeed (Main Outlet) {}   Ecwid {}",
                sandbox.inventory_level(mug.ls_id(), &ids.outlet_id),
                sandbox
                    .ecwid_stock(mug.ecwid_id(), None)
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "unlimited".into())
            );
        };
        show("MUG-001 before:");
        sandbox.pos_sale(mug.ls_id(), 3, &ids.register_id);
        show("after a POS sale of 3:");
        let report = loop {
            // The serve timer may be mid-run; wait for the cursor rather than race it.
            let report = mirror
                .mirror_store(store_id)
                .await?
                .context("the demo store has no connection")?;
            if report.outcome != RunOutcome::Busy {
                break report;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        show("after a mirror run:");
        println!("  {}", ops::describe_mirror_run(&report));

        let counts = ops::counts_by_state(store, store_id).await?;
        println!("\nLedger of store {store_id}: {counts:?}");
        println!(
            "Ecwid order writes by the connector: {} (rule O4)",
            sandbox.counters().ecwid_order_writes
        );
        Ok(())
    }

    fn indent(s: &str) -> String {
        s.lines().map(|l| format!("    {l}\n")).collect()
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let backend = open_backend(&args.backend).await?;
    let dlq_depth = match args.order {
        None => Some(dead_letter_depth(&backend, args.dlq_url.clone()).await),
        Some(_) => None,
    };
    with_backend!(backend, |store, _queue| {
        if let Some(order) = &args.order {
            match store
                .load_order(&OrderKey::new(args.store, order.clone()))
                .await?
            {
                Some(e) => print!("{}", ops::describe(&e)),
                None => bail!("order {order} of store {} is not in the ledger", args.store),
            }
        } else {
            let counts = ops::counts_by_state(store, args.store).await?;
            println!("store {}", args.store);
            for (state, n) in &counts {
                println!("  {state:<8} {n}");
            }
            match &dlq_depth {
                Some(Ok(n)) => println!("dead-letter queue (all stores): {n} message(s)"),
                Some(Err(e)) => println!("dead-letter queue: unknown ({e:#})"),
                None => {}
            }
            if let Some(state) = &args.state {
                let st =
                    OrderState::parse(state).with_context(|| format!("unknown state {state}"))?;
                for e in store.list_orders(args.store, Some(st), usize::MAX).await? {
                    let why = e.reason.as_ref().map(|r| r.to_string()).unwrap_or_default();
                    println!("  {:<12} {:<8} {}", e.key.order_id, e.state, why);
                }
            }
        }
        Ok(())
    })
}

/// How many messages the dead-letter queue holds (all stores).
async fn dead_letter_depth(backend: &Backend, dlq_url: Option<String>) -> anyhow::Result<usize> {
    use ops::DeadLetterQueue as _;
    match backend {
        Backend::Sqlite(s) => ops::SqliteDeadLetters::new(s).depth().await,
        Backend::Aws(_, q) => {
            ops::SqsDeadLetters::for_queue(q, dlq_url)
                .await?
                .depth()
                .await
        }
    }
}

async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let backend = open_backend(&args.backend).await?;
    let now = chrono::Utc::now();
    if args.dlq {
        let report = match &backend {
            Backend::Sqlite(s) => {
                let dlq = ops::SqliteDeadLetters::new(s);
                ops::replay_dead_letters(s, s, &dlq, now, args.dry_run).await?
            }
            Backend::Aws(store, queue) => {
                let dlq = ops::SqsDeadLetters::for_queue(queue, args.dlq_url.clone()).await?;
                ops::replay_dead_letters(store, queue, &dlq, now, args.dry_run).await?
            }
        };
        print!("{}", ops::describe_dlq_replay(&report));
        return Ok(());
    }
    with_backend!(backend, |store, queue| {
        if let Some(order) = &args.order {
            let key = OrderKey::new(args.store, order.clone());
            let result = ops::replay_order(store, queue, &key, now).await?;
            println!("{key}: {result:?}");
        } else if let Some(reason) = &args.reason {
            let code = ReasonCode::parse(reason)
                .with_context(|| format!("unknown reason code {reason}"))?;
            let keys = ops::replay_parked(store, queue, args.store, code, now).await?;
            println!("requeued {} order(s) with reason {code}", keys.len());
            for k in keys {
                println!("  {k}");
            }
        }
        Ok(())
    })
}

async fn connect(args: ConnectArgs) -> anyhow::Result<()> {
    let backend = open_backend(&args.backend).await?;
    let conn = Connection {
        store_id: args.store,
        ecwid_token: Secret::new(args.ecwid_token),
        lightspeed: LightspeedAccount {
            domain_prefix: args.domain_prefix,
            access_token: Secret::new(args.lightspeed_token),
            refresh_token: args.lightspeed_refresh_token.map(Secret::new),
            expires_at: args.lightspeed_token_expires_at,
            refresh_lease_until: None,
        },
        register_id: args.register_id,
        outlet_id: args.outlet_id,
        user_id: args.user_id,
        payment_type_id: args.payment_type_id,
        shipping_product_id: None,
        discount_product_id: None,
        fees_product_id: None,
        gift_card_payment_type_id: None,
        settings: Settings {
            post_sales: args.post_sales,
            sync_inventory: args.sync_inventory,
        },
        version: 0,
    };
    let saved = with_backend!(backend, |store, _queue| ops::upsert_connection(store, conn)
        .await?);
    println!(
        "connection of store {} saved (version {})",
        saved.store_id, saved.version
    );
    Ok(())
}

async fn sync_inventory(args: SyncInventoryArgs) -> anyhow::Result<()> {
    let backend = open_state(&args.backend).await?;
    let ecwid = api_clients(&args.api)?;
    let config = MirrorConfig {
        max_run: Duration::from_secs(args.max_run_secs),
        ..MirrorConfig::default()
    };
    let mut failed = 0;
    with_state!(backend, |store| {
        let lightspeed = api_lightspeed(&args.api, store.clone())?;
        let mirror = InventoryMirror::new(store, ecwid, lightspeed, SystemClock, config);
        let results = match args.store {
            Some(id) => match mirror.mirror_store(id).await {
                Ok(Some(r)) => vec![Ok(r)],
                Ok(None) => bail!("store {id} has no connection"),
                Err(e) => vec![Err(e)],
            },
            None => mirror.mirror_all().await?,
        };
        if results.is_empty() {
            println!("no connections");
        }
        for result in results {
            match result {
                Ok(report) => println!("{}", ops::describe_mirror_run(&report)),
                Err(e) => {
                    failed += 1;
                    println!("{e}");
                    println!("  before failing: {}", ops::describe_mirror_run(&e.report));
                }
            }
        }
    });
    if failed > 0 {
        bail!("{failed} inventory run(s) failed; the next run resumes from the cursor");
    }
    Ok(())
}

async fn reconcile(args: ReconcileArgs) -> anyhow::Result<()> {
    let backend = open_state(&args.backend).await?;
    let ecwid = api_clients(&args.api)?;
    let show_progress = std::io::stdout().is_terminal();
    with_state!(backend, |store| {
        let lightspeed = api_lightspeed(&args.api, store.clone())?;
        let conn = store
            .get_connection(args.store)
            .await?
            .with_context(|| format!("store {} has no connection", args.store))?;
        let mirror = InventoryMirror::new(
            store,
            ecwid,
            lightspeed,
            SystemClock,
            MirrorConfig::default(),
        );
        let report = ops::reconcile_with_progress(&mirror, &conn, args.fix, show_progress).await?;
        print!("{}", ops::describe_reconcile(&report, args.fix));
        if args.fix && report.fix_failed > 0 {
            bail!("{} level(s) could not be written", report.fix_failed);
        }
    });
    Ok(())
}
