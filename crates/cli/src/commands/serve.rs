//! `els serve`: the webhook endpoint, the worker and the inventory timer in one process on a
//! SQLite file, against the built-in sandbox unless `--live`.

use super::api::ApiArgs;
use super::backend::{BackendArgs, BackendKind};
use anyhow::{Context, bail};
use clap::Args;
use els_cli::embedded::{Embedded, WEBHOOK_PATH, WorkerOptions, run_sweep_timer};
use els_cli::lightspeed_auth::serve_lightspeed;
use els_cli::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use els_cli::{demo, ops, stock_jobs, stock_webhooks};
use els_core::Secret;
use els_core::ingest::{IngestConfig, Ingestor};
use els_core::inventory::mirror::{InventoryMirror, MirrorConfig};
use els_core::poster::{PosterConfig, SalePoster};
use els_core::sweep::{OrderSweep, SweepConfig};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_sandbox::{Sandbox, SandboxConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Args)]
pub struct ServeArgs {
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
    pub demo: bool,
    /// Stop after the demo (for scripts and CI).
    #[arg(long, requires = "demo")]
    exit_after_demo: bool,
    /// The Ecwid app's client_secret, the key of webhook signatures (live mode).
    #[arg(long, env = "ECWID_CLIENT_SECRET", hide_env_values = true)]
    ecwid_client_secret: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
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
    /// How often the order sweep looks for paid orders whose webhook never came, in
    /// seconds; 0 turns it off.
    #[arg(long, env = "SWEEP_INTERVAL_SECS", default_value_t = 300)]
    sweep_interval_secs: u64,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.backend.backend != BackendKind::Sqlite {
        bail!(
            "serve runs the embedded mode on SQLite; deploy the Lambda functions for DynamoDB/SQS"
        );
    }
    let store = args.backend.open_sqlite()?;
    let timeout = args.api.http_timeout();
    let (sandbox, client_secret, ecwid_url, ls_template) = if args.live {
        let secret = args
            .ecwid_client_secret
            .clone()
            .context("live mode needs ECWID_CLIENT_SECRET (the Ecwid app's client_secret)")?;
        (
            None,
            secret,
            args.api.ecwid_api_url.clone(),
            args.api.lightspeed_url_template.clone(),
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
        TokioClock,
    );
    // One client per API for the process: the poster and the mirror share Ecwid's pool and
    // Lightspeed's rate gate.
    let ecwid = EcwidClient::new(ecwid_url.clone(), timeout)?;
    let ecwid_for_sweep = ecwid.clone();
    let lightspeed = serve_lightspeed(
        args.api.lightspeed_on(&ls_template)?,
        args.api.max_rate_wait(),
        store.clone(),
        args.api.oauth_credentials()?,
    );
    let poster = SalePoster::new(
        store.clone(),
        ecwid.clone(),
        lightspeed.poster,
        TokioClock,
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
        TokioClock,
        MirrorConfig::default(),
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    let webhook_url = format!("http://{local}{WEBHOOK_PATH}");
    let (stop_tx, stop_rx) = watch::channel(false);
    // Lightspeed's stock webhooks put a store's job here; the inventory loop runs it.
    let (jobs, jobs_rx) = stock_jobs::local_jobs();
    let server = app.spawn_server_with(
        listener,
        stock_jobs::router(store.clone(), jobs),
        stop_rx.clone(),
    );
    if let Some(sandbox) = &sandbox {
        // The sandbox's retailer reports stock changes to this process, as a live one does
        // to the URL `els connect --public-url` registers.
        let mut conn = sandbox_connection(sandbox);
        stock_webhooks::register(
            &args.api.lightspeed_on(&ls_template)?,
            &mut conn,
            &format!("http://{local}"),
        )
        .await
        .context("registering the sandbox's stock webhooks")?;
        ops::upsert_connection(&store, conn).await?;
    }
    let worker = tokio::spawn(app.clone().run_worker(stop_rx.clone()));
    if args.demo {
        // The first run links the catalogs; done before the demo places orders, so the
        // demo shows steady-state behaviour rather than this bootstrap.
        for result in mirror.mirror_all().await? {
            result?;
        }
    }
    let inventory = tokio::spawn(stock_jobs::run_inventory(
        mirror.clone(),
        (args.inventory_interval_secs > 0)
            .then(|| Duration::from_secs(args.inventory_interval_secs)),
        jobs_rx,
        stop_rx.clone(),
    ));

    let sweeper = (args.sweep_interval_secs > 0).then(|| {
        let sweep = Arc::new(OrderSweep::new(
            store.clone(),
            ecwid_for_sweep.clone(),
            store.clone(),
            TokioClock,
            SweepConfig::default(),
        ));
        let app = app.clone();
        tokio::spawn(run_sweep_timer(
            sweep,
            Duration::from_secs(args.sweep_interval_secs),
            move || app.wake_worker(),
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
        println!(
            "  inventory mirror   off (--inventory-interval-secs 0); Lightspeed webhooks only"
        );
    }
    println!("  Lightspeed hooks   POST http://{local}/webhooks/lightspeed/<store>/<secret>");
    if args.sweep_interval_secs > 0 {
        println!(
            "  order sweep        every {} s (paid orders no webhook brought)",
            args.sweep_interval_secs
        );
    } else {
        println!("  order sweep        off (--sweep-interval-secs 0)");
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
        demo_result = demo::run(sandbox, &store, &webhook_url, &mirror).await;
    }
    if !args.exit_after_demo {
        println!("\nListening. Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop_tx.send(true);
    let _ = worker.await;
    let _ = inventory.await;
    if let Some(sweeper) = sweeper {
        let _ = sweeper.await;
    }
    let _ = server.await;
    demo_result
}
