//! `els sweep` and `els backfill`: paid orders that no webhook brought, found in Ecwid and
//! posted through the queue, the claim and the ledger like any other.

use super::api::ApiArgs;
use super::backend::{BackendArgs, open_backend, with_backend};
use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use els_cli::embedded::{WorkerOptions, drain_until};
use els_cli::sweep::{describe_backfill, describe_sweep_run};
use els_core::ledger::OrderKey;
use els_core::poster::{PosterConfig, SalePoster};
use els_core::sweep::{OrderSweep, SweepConfig};
use els_core::{ConnectionStore, LedgerStore, OrderState, StoreId, WorkQueue};
use els_http::TokioClock;
use std::time::Duration;

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// Only this Ecwid store (default: every connection with posting on).
    #[arg(long, env = "ELS_STORE_ID")]
    store: Option<StoreId>,
    /// Stop starting new windows after this many seconds; the next run resumes.
    #[arg(long, env = "SWEEP_MAX_RUN_SECONDS", default_value_t = 120)]
    max_run_secs: u64,
    /// Ecwid requests one store may spend in one run (Ecwid allows 600 a minute per token).
    #[arg(long, default_value_t = 100)]
    max_requests: u32,
}

#[derive(Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, env = "ELS_STORE_ID", default_value_t = StoreId::literal(1003))]
    store: StoreId,
    /// Paid orders created at or after this: a date (2026-11-01, midnight UTC) or an RFC 3339
    /// time.
    #[arg(long, value_parser = parse_when)]
    since: DateTime<Utc>,
    /// ... and at or before this (default: now).
    #[arg(long, value_parser = parse_when)]
    until: Option<DateTime<Utc>>,
    /// List each order with what would happen, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// On SQLite, how long to work the queue for the enqueued orders (0: only enqueue, for a
    /// running `els serve` to post).
    #[arg(long, default_value_t = 600)]
    wait_secs: u64,
}

fn parse_when(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("'{s}' is not a date (2026-11-01) or an RFC 3339 time"))
}

pub async fn sweep(args: SweepArgs) -> anyhow::Result<()> {
    let backend = open_backend(&args.backend).await?;
    let ecwid = args.api.ecwid_client()?;
    let config = SweepConfig {
        max_run: Duration::from_secs(args.max_run_secs),
        max_requests_per_store: args.max_requests,
        ..SweepConfig::default()
    };
    with_backend!(backend, |store, queue| {
        let sweep = OrderSweep::new(store.clone(), ecwid, queue.clone(), TokioClock, config);
        let report = match args.store {
            None => sweep.sweep_all().await?,
            Some(id) => {
                let conn = store
                    .get_connection(id)
                    .await?
                    .with_context(|| format!("store {id} has no connection"))?;
                sweep.sweep_connections(&[conn]).await
            }
        };
        if report.stores.is_empty() && report.failures.is_empty() {
            println!("no connections");
        }
        for r in &report.stores {
            println!("{}", describe_sweep_run(r));
        }
        for (id, e) in &report.failures {
            println!("store {id}: failed: {e}");
        }
        println!(
            "{} order(s) enqueued; {} unhealthy store(s)",
            report.found(),
            report.unhealthy().len()
        );
        if !report.failures.is_empty() {
            bail!(
                "the sweep failed for {} store(s); the next run resumes from the cursor",
                report.failures.len()
            );
        }
    });
    Ok(())
}

pub async fn backfill(args: BackfillArgs) -> anyhow::Result<()> {
    let until = args.until.unwrap_or_else(Utc::now);
    if until < args.since {
        bail!("--until ({until}) is before --since ({})", args.since);
    }
    let backend = open_backend(&args.backend).await?;
    // On SQLite the command works the queue itself (see `--wait-secs`).
    let drain_options = match &backend {
        super::backend::Backend::Sqlite(s) if args.wait_secs > 0 => Some(WorkerOptions {
            max_receives: s.queue_config().max_receives,
            ..WorkerOptions::default()
        }),
        _ => None,
    };
    let ecwid = args.api.ecwid_client()?;
    with_backend!(backend, |store, queue| {
        let conn = store
            .get_connection(args.store)
            .await?
            .with_context(|| format!("store {} has no connection", args.store))?;
        let lightspeed = args.api.lightspeed_client(store.clone())?;
        let poster = SalePoster::new(
            store.clone(),
            ecwid,
            lightspeed,
            TokioClock,
            PosterConfig::default(),
        );
        let plan = poster
            .plan_backfill(&conn, args.since, until)
            .await
            .map_err(anyhow::Error::msg)?;
        if args.dry_run {
            print!("{}", describe_backfill(&plan, true, 0));
            return Ok(());
        }
        let nonce = format!("{}", Utc::now().timestamp_millis());
        let messages = plan.messages(&nonce);
        for m in &messages {
            queue
                .enqueue(m)
                .await
                .with_context(|| format!("enqueueing order {}", m.order_id))?;
        }
        print!("{}", describe_backfill(&plan, false, messages.len()));
        if let Some(options) = &drain_options
            && !messages.is_empty()
        {
            let keys: Vec<OrderKey> = messages.iter().map(|m| m.key()).collect();
            let settled = || async {
                for key in &keys {
                    match store.load_order(key).await {
                        Ok(Some(e))
                            if !matches!(e.state, OrderState::Queued | OrderState::Posting) => {}
                        _ => return false,
                    }
                }
                true
            };
            let done = drain_until(
                &poster,
                queue,
                options,
                Duration::from_secs(args.wait_secs),
                settled,
            )
            .await;
            let counts = count(store, &keys).await?;
            println!(
                "posted {}, parked {}, other {}{}",
                counts.0,
                counts.1,
                counts.2,
                if done {
                    ""
                } else {
                    " (still working: run els status later)"
                }
            );
        }
    });
    Ok(())
}

/// (posted, parked, other) among `keys`.
async fn count<S: LedgerStore>(
    store: &S,
    keys: &[OrderKey],
) -> anyhow::Result<(usize, usize, usize)> {
    let mut counts = (0, 0, 0);
    for key in keys {
        match store.load_order(key).await?.map(|e| e.state) {
            Some(OrderState::Posted) => counts.0 += 1,
            Some(OrderState::Parked) => counts.1 += 1,
            _ => counts.2 += 1,
        }
    }
    Ok(counts)
}
