//! `els`: run ecwid-lightspeed-sync in one process, and operate it.
//!
//! This file parses the command line and dispatches; each subcommand's flags and handler live
//! in `commands/`, and what they call lives in the library (`els_cli`).

mod commands;

use clap::{Parser, Subcommand};
use commands::bench::{BenchArgs, BenchInventoryArgs, BenchRateLimitArgs};
use commands::connect::ConnectArgs;
use commands::cost::CostArgs;
use commands::doctor::DoctorArgs;
use commands::inventory::{ReconcileArgs, SyncInventoryArgs};
use commands::migrate::MigrateArgs;
use commands::orders::{ReplayArgs, StatusArgs};
use commands::restore::RestoreCheckArgs;
use commands::serve::ServeArgs;
use commands::settings::SettingsArgs;
use commands::sweep::{BackfillArgs, SweepArgs};

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
    /// Check both tokens, choose the register, user, payment types and products by name,
    /// and save the connection of one Ecwid store to a Lightspeed register.
    Connect(Box<ConnectArgs>),
    /// Show a connection, or change its switches, register, user, payment types or
    /// products without touching its tokens.
    Settings(Box<SettingsArgs>),
    /// Say whether a store is ready to post and, if not, why: tokens, register, user,
    /// payment types, products, tax rates of recent orders, catalog links, parked orders.
    Doctor(Box<DoctorArgs>),
    /// Benchmark the embedded mode against the sandbox: ingest throughput and latency.
    Bench(BenchArgs),
    /// Benchmark the inventory mirror against the sandbox on a large catalog.
    BenchInventory(BenchInventoryArgs),
    /// Benchmark a burst of orders against the sandbox's Lightspeed rate limit.
    BenchRateLimit(BenchRateLimitArgs),
    /// Count what each function does per order and per store-minute on AWS (moto) and price
    /// it at the us-east-1 list prices.
    Cost(Box<CostArgs>),
    /// Run the inventory mirror (Lightspeed stock → Ecwid) once, for every connection or one.
    SyncInventory(SyncInventoryArgs),
    /// Find paid orders whose webhook never came (Ecwid's order search since the last
    /// sweep) and put them on the queue; `els serve` runs this every 5 minutes.
    Sweep(SweepArgs),
    /// Post older paid orders, created in a date range, through the same path; `--dry-run`
    /// lists what would happen to each and changes nothing.
    Backfill(Box<BackfillArgs>),
    /// After restoring the state from a backup: mark every unposted order (and every order
    /// created before now) to search Lightspeed before posting, so nothing posts twice.
    RestoreCheck(RestoreCheckArgs),
    /// DynamoDB only: bring the table to the current schema and list the connections whose
    /// tokens are in plain text or one ciphertext per token; `--encrypt-tokens` seals them
    /// in one ciphertext with the token key.
    Migrate(MigrateArgs),
    /// Compare every linked product's level in Lightspeed and Ecwid and print the drift;
    /// `--fix` writes Lightspeed's level (minus pending web sales) to Ecwid.
    Reconcile(ReconcileArgs),
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
    init_tracing(match &cli.command {
        Command::Bench(_)
        | Command::BenchInventory(_)
        | Command::BenchRateLimit(_)
        | Command::Cost(_) => "warn",
        Command::Serve(args) if args.demo => "warn",
        _ => "info,hyper=warn,reqwest=warn",
    });
    match cli.command {
        Command::Serve(args) => commands::serve::serve(args).await,
        Command::Status(args) => commands::orders::status(args).await,
        Command::Replay(args) => commands::orders::replay(args).await,
        Command::Connect(args) => commands::connect::connect(*args).await,
        Command::Settings(args) => commands::settings::settings(*args).await,
        Command::Doctor(args) => commands::doctor::doctor(*args).await,
        Command::Bench(args) => commands::bench::bench(args).await,
        Command::BenchInventory(args) => commands::bench::bench_inventory(args).await,
        Command::BenchRateLimit(args) => commands::bench::bench_rate_limit(args).await,
        Command::Cost(args) => commands::cost::cost(*args).await,
        Command::RestoreCheck(args) => commands::restore::restore_check(args).await,
        Command::Sweep(args) => commands::sweep::sweep(args).await,
        Command::Backfill(args) => commands::sweep::backfill(*args).await,
        Command::SyncInventory(args) => commands::inventory::sync_inventory(args).await,
        Command::Reconcile(args) => commands::inventory::reconcile(args).await,
        Command::Migrate(args) => commands::migrate::migrate(args).await,
    }
}

#[cfg(test)]
mod tests {
    /// Every subcommand's flags are well formed (unique ids and names across flattened
    /// groups): clap checks them only when that subcommand is parsed.
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
