//! `els sync-inventory` and `els reconcile`: the inventory mirror run once, and the drift
//! report (with `--fix`, the repair).

use super::api::ApiArgs;
use super::backend::{BackendArgs, open_state, with_state};
use anyhow::{Context, bail};
use clap::Args;
use els_cli::ops;
use els_core::ConnectionStore;
use els_core::StoreId;
use els_core::inventory::mirror::{InventoryMirror, MirrorConfig};
use els_http::TokioClock;
use std::io::IsTerminal;
use std::time::Duration;

#[derive(Args)]
pub struct SyncInventoryArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// Only this Ecwid store (default: every connection).
    #[arg(long, env = "ELS_STORE_ID")]
    store: Option<StoreId>,
    /// Stop after the page during which this many seconds passed; the next run continues.
    #[arg(long, default_value_t = 300)]
    max_run_secs: u64,
}

#[derive(Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, env = "ELS_STORE_ID", default_value_t = StoreId::literal(1003))]
    store: StoreId,
    /// Write the expected level of every drifted product to Ecwid.
    #[arg(long)]
    fix: bool,
}

pub async fn sync_inventory(args: SyncInventoryArgs) -> anyhow::Result<()> {
    let backend = open_state(&args.backend).await?;
    let ecwid = args.api.ecwid_client()?;
    let config = MirrorConfig {
        max_run: Duration::from_secs(args.max_run_secs),
        ..MirrorConfig::default()
    };
    let mut failed = 0;
    with_state!(backend, |store| {
        let lightspeed = args.api.lightspeed_client(store.clone())?;
        let mirror = InventoryMirror::new(store, ecwid, lightspeed, TokioClock, config);
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

pub async fn reconcile(args: ReconcileArgs) -> anyhow::Result<()> {
    let backend = open_state(&args.backend).await?;
    let ecwid = args.api.ecwid_client()?;
    let show_progress = std::io::stdout().is_terminal();
    with_state!(backend, |store| {
        let lightspeed = args.api.lightspeed_client(store.clone())?;
        let conn = store
            .get_connection(args.store)
            .await?
            .with_context(|| format!("store {} has no connection", args.store))?;
        let mirror = InventoryMirror::new(
            store,
            ecwid,
            lightspeed,
            TokioClock,
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
