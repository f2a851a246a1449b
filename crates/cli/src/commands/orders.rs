//! `els status` and `els replay`: the ledger and the dead-letter queue, as an operator reads
//! and repairs them.

use super::backend::{Backend, BackendArgs, open_backend, with_backend};
use anyhow::{Context, bail};
use clap::Args;
use els_cli::ops;
use els_core::LedgerStore;
use els_core::StoreId;
use els_core::ledger::{OrderKey, OrderState, ReasonCode};

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long, env = "ELS_STORE_ID", default_value_t = StoreId::literal(1003))]
    store: StoreId,
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
pub struct ReplayArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long, env = "ELS_STORE_ID", default_value_t = StoreId::literal(1003))]
    store: StoreId,
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

pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
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
            let entries = store.list_orders(args.store, None, usize::MAX).await?;
            let counts = ops::count_states(&entries);
            println!("store {}", args.store);
            for (state, n) in &counts {
                println!("  {state:<8} {n}");
            }
            let returned: Vec<_> = entries
                .iter()
                .filter(|e| !e.returns.done.is_empty())
                .collect();
            let held: Vec<_> = entries
                .iter()
                .filter(|e| e.returns.held.is_some())
                .collect();
            println!(
                "  refunds  {} order(s) with returns ({} returns), {} held",
                returned.len(),
                returned.iter().map(|e| e.returns.done.len()).sum::<usize>(),
                held.len()
            );
            for e in held {
                if let Some(r) = &e.returns.held {
                    println!("  {:<12} refund held: {r}", e.key.order_id);
                }
            }
            print!(
                "{}",
                ops::store_activity(store, args.store, &entries).await?
            );
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
pub(crate) async fn dead_letter_depth(
    backend: &Backend,
    dlq_url: Option<String>,
) -> anyhow::Result<usize> {
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

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
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
