//! `els cost`: what each function really does per order and per store-minute on AWS, and
//! what that costs at the us-east-1 list prices (the model is `els_cli::cost_model`).

use clap::Args;
use els_cli::cost_model::lines::{Assumptions, CostReport, report};
use els_cli::cost_model::measure::{self, MeasureOptions};
use els_cli::cost_model::{PricedLine, Scenario};
use els_store_aws::metering::OperationCount;
use rust_decimal::Decimal;

#[derive(Args)]
pub struct CostArgs {
    /// The moto server (DynamoDB, SQS, KMS) to run against.
    #[arg(long, env = "ELS_MOTO_ENDPOINT")]
    moto_endpoint: Option<String>,
    /// Orders sent through webhook-ingest and the sale-poster.
    #[arg(long, default_value_t = 200)]
    orders: usize,
    /// SQS messages per sale-poster invocation (template.yaml PosterBatchSize).
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Store jobs per store-worker invocation (template.yaml InventoryWorkerBatchSize).
    #[arg(long, default_value_t = 10)]
    worker_batch_size: usize,
    /// Connections mirrored each minute.
    #[arg(long, default_value_t = 4)]
    stores: usize,
    /// Minutes of the inventory schedule measured (after one warm-up minute).
    #[arg(long, default_value_t = 5)]
    minutes: usize,
    /// Lightspeed levels changed per store each minute.
    #[arg(long, default_value_t = 2)]
    changes: usize,
    /// Keep the poster's token cache between orders (by default it is emptied before each
    /// order: a store's orders are hours apart at a million orders over 10,000 stores).
    #[arg(long)]
    warm_token_cache: bool,
    /// Memory of each function in MB (template.yaml MemorySize).
    #[arg(long, default_value_t = 256)]
    memory_mb: u32,
    /// Price Lambda duration as x86_64 (template.yaml says arm64).
    #[arg(long)]
    x86: bool,
    /// Orders a month and stores in the deployment the total is for.
    #[arg(long, default_value_t = 1_000_000)]
    orders_per_month: u64,
    #[arg(long, default_value_t = 10_000)]
    deployment_stores: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn cost(args: CostArgs) -> anyhow::Result<()> {
    let Some(moto_endpoint) = args.moto_endpoint.filter(|e| !e.is_empty()) else {
        anyhow::bail!(
            "els cost needs a moto server (DynamoDB, SQS, KMS): start one with \
             `.venv/bin/moto_server -H 127.0.0.1 -p 5000` (tests/run.sh installs it in .venv) \
             and pass --moto-endpoint http://127.0.0.1:5000 or set ELS_MOTO_ENDPOINT"
        );
    };
    let measured = measure::run(MeasureOptions {
        moto_endpoint,
        orders: args.orders,
        batch_size: args.batch_size,
        worker_batch_size: args.worker_batch_size,
        stores: args.stores,
        minutes: args.minutes,
        changes_per_minute: args.changes,
        cold_token_cache: !args.warm_token_cache,
    })
    .await?;
    let assumptions = Assumptions {
        memory_mb: args.memory_mb,
        arm64: !args.x86,
        scenario: Scenario {
            orders_per_month: args.orders_per_month,
            stores: args.deployment_stores,
            ..Scenario::goal()
        },
        ..Assumptions::default()
    };
    let r = report(&measured, &assumptions);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print(&r);
    }
    Ok(())
}

fn requests(title: &str, ops: &[OperationCount], per: f64) {
    println!("  {title}");
    for c in ops {
        let units = if c.service == els_store_aws::metering::DYNAMODB {
            format!(
                "  RCU {:.2}  WCU {:.2} (computed from item sizes; moto reported {:.2})",
                c.read_units / per,
                c.write_units / per,
                c.reported_units / per
            )
        } else {
            String::new()
        };
        println!(
            "    {:<8} {:<26} {:>7.2} requests{units}",
            c.service,
            c.operation,
            c.requests as f64 / per
        );
    }
}

fn money(d: Decimal) -> String {
    format!("${:.4}", d.round_dp(4))
}

fn table(title: &str, unit: &str, lines: &[PricedLine], total: Decimal) {
    println!("\n{title}");
    println!(
        "  {:<16} {:<40} {:>12} {:<24} {:>12}",
        "service", "item", "quantity", "basis", unit
    );
    for p in lines {
        let l = &p.line;
        println!(
            "  {:<16} {:<40} {:>12} {:<24} {:>12}",
            l.service,
            l.item,
            l.quantity.round_dp(9).normalize(),
            l.basis.label(),
            money(p.dollars)
        );
        if !l.note.is_empty() {
            println!("  {:<16}   {}", "", l.note);
        }
    }
    println!("  {:<95} {:>12}", "total", money(total));
}

fn print(r: &CostReport) {
    let (n, sm) = (r.orders as f64, r.store_minutes as f64);
    println!(
        "els cost: {} orders (batches of {}, token cache {}), {} store-minutes ({} stores x {} minutes, {} level changes per store-minute), on moto and the sandbox",
        r.orders,
        r.options.batch_size,
        if r.options.cold_token_cache {
            "cold"
        } else {
            "warm"
        },
        r.store_minutes,
        r.options.stores,
        r.options.minutes,
        r.options.changes_per_minute
    );
    println!(
        "{} of {} orders POSTED; {} ledger saves read back from the table",
        r.posted, r.orders, r.ledger_saves
    );
    println!("\nAWS requests per order (measured)");
    requests("webhook-ingest", &r.ingest, n);
    requests("sale-poster", &r.poster, n);
    println!(
        "  local duration per order: webhook-ingest {:.1} ms, sale-poster {:.1} ms; sale-poster invocations {:.2}",
        1000.0 * r.ingest_secs / n,
        1000.0 * r.poster_secs / n,
        r.poster_invocations as f64 / n
    );
    println!("\nAWS requests per store-minute (measured)");
    requests("inventory-sync tick", &r.tick, sm);
    requests("store-worker (and its SQS event source)", &r.worker, sm);
    println!(
        "  local duration per store-minute: tick {:.2} ms, worker {:.1} ms; worker invocations {:.2}; KMS Decrypts per store on a cold cache {:.1}",
        1000.0 * r.tick_secs / sm,
        1000.0 * r.worker_secs / sm,
        r.worker_invocations as f64 / sm,
        r.cold_decrypts_per_store
    );
    let t = &r.table;
    table(
        "Dollars per million orders",
        "$/M orders",
        &t.per_order,
        t.dollars_per_million_orders,
    );
    table(
        "Dollars per store-month (43,200 store-minutes)",
        "$/store-mo",
        &t.per_store_minute,
        t.dollars_per_store_month,
    );
    println!(
        "\nA month of {} orders and {} stores: orders {} + stores {} = {}, i.e. {} per million orders (goal ${}: {})",
        t.scenario.orders_per_month,
        t.scenario.stores,
        money(t.monthly_orders_dollars),
        money(t.monthly_stores_dollars),
        money(t.monthly_dollars),
        money(t.all_in_per_million_orders),
        t.scenario.goal_per_million_orders,
        if t.within_goal { "met" } else { "NOT met" }
    );
    println!(
        "What dominates: {} = {}% of the month",
        t.dominant,
        (t.dominant_share * Decimal::from(100)).round_dp(1)
    );
    println!(
        "\nPrices: us-east-1 list prices taken {} (see --json for each source); measured = counted on this run, \
         computed = DynamoDB units from the measured item sizes (moto's ConsumedCapacity is a fixed placeholder), \
         derived = from the design, estimate = assumed (the note says what). Durations are a floor.",
        r.prices_taken
    );
}
