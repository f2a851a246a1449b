//! `els doctor`: is a store ready to post, and if not, why (a table, or `--json`). Exits
//! non-zero when something blocks posting.

use super::api::ApiArgs;
use super::backend::{Backend, BackendArgs, open_backend, with_backend};
use anyhow::bail;
use clap::Args;
use els_cli::doctor::{self, Diagnosis};
use els_core::doctor::{Check, Status};
use els_core::{ConnectionStore, InventoryStateStore, LedgerStore, StoreId};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// One store (default: every connection).
    #[arg(long)]
    store: Option<StoreId>,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

/// How many entries of each catalog list the table shows (`--json` has them all).
const SHOWN: usize = 20;

pub async fn doctor(args: DoctorArgs) -> anyhow::Result<()> {
    let backend = open_backend(&args.backend).await?;
    // The dead-letter queue serves the whole deployment: each store's report shows it.
    let dead_letters = super::orders::dead_letter_depth(&backend, None).await;
    let queued = match &backend {
        Backend::Sqlite(s) => s.queue_depth().map_err(anyhow::Error::from),
        Backend::Aws(_, q) => q.queue_depth().await.map_err(anyhow::Error::from),
    };
    let mut diagnoses = with_backend!(backend, |store, _queue| run(store, &args).await?);
    for d in &mut diagnoses {
        d.checks.push(match &queued {
            Ok((visible, in_flight)) => Check::new(
                "Queue",
                Status::Ok,
                format!("{visible} waiting, {in_flight} being posted (all stores)"),
            ),
            Err(e) => Check::new("Queue", Status::Warn, format!("could not be read: {e}")),
        });
        d.checks.push(match &dead_letters {
            Ok(0) => Check::new("Dead letters", Status::Ok, "none"),
            Ok(n) => Check::new(
                "Dead letters",
                Status::Warn,
                format!("{n} message(s) in the dead-letter queue: els replay --dlq once the cause is fixed"),
            ),
            Err(e) => Check::new("Dead letters", Status::Warn, format!("could not be read: {e}")),
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&diagnoses)?);
    } else {
        for d in &diagnoses {
            print(d);
        }
    }
    let blocked: Vec<String> = diagnoses
        .iter()
        .filter(|d| !d.ready)
        .map(|d| d.store_id.to_string())
        .collect();
    if !blocked.is_empty() {
        bail!("not ready to post: store {}", blocked.join(", "));
    }
    Ok(())
}

async fn run<S: ConnectionStore + LedgerStore + InventoryStateStore + Clone>(
    store: &S,
    args: &DoctorArgs,
) -> anyhow::Result<Vec<Diagnosis>> {
    let connections = match args.store {
        Some(id) => match store.get_connection(id).await? {
            Some(c) => vec![c],
            None => bail!("store {id} has no connection: run `els connect --store {id}` first"),
        },
        None => store.list_connections().await?,
    };
    if connections.is_empty() {
        bail!("no connection yet: run `els connect` first");
    }
    let ecwid = args.api.ecwid_client()?;
    // One client (one rate gate): it refreshes OAuth tokens, and its inner client reads.
    let client = args.api.lightspeed_client(store.clone())?;
    let lightspeed = client.inner();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("reading the Ecwid catalog {pos}/{len} products")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let on_page = |read: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(read);
    };
    let mut out = Vec::new();
    for conn in connections {
        let conn = args.api.fresh_connection(&client, store, conn).await?;
        out.push(doctor::diagnose(store, &conn, &ecwid, lightspeed, &on_page).await?);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn print(d: &Diagnosis) {
    println!(
        "store {}: {}",
        d.store_id,
        if d.ready { "ready" } else { "NOT READY" }
    );
    let width = d.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &d.checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        println!("  {mark}  {:<width$}  {}", c.name, c.detail);
    }
    if let Some(cat) = &d.catalog {
        for (title, list) in [
            ("Ecwid SKUs no Lightspeed product has", &cat.unmatched),
            ("Ecwid items with a blank SKU", &cat.blank),
            ("SKUs several Ecwid items share", &cat.shared_in_ecwid),
            (
                "SKUs several Lightspeed products share",
                &cat.shared_in_lightspeed,
            ),
        ] {
            if list.is_empty() {
                continue;
            }
            println!("  {title}:");
            for item in list.iter().take(SHOWN) {
                println!("    {item}");
            }
            if list.len() > SHOWN {
                println!(
                    "    … and {} more (--json lists them all)",
                    list.len() - SHOWN
                );
            }
        }
    }
    println!(
        "  ledger: {}",
        d.ledger
            .iter()
            .map(|(state, n)| format!("{state} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
