//! `els bench`, `els bench-inventory` and `els bench-rate-limit`: the benchmarks against the
//! sandbox, each on a SQLite file in a scratch directory removed afterwards.

use clap::Args;
use els_cli::bench::{
    self, BenchOptions, InventoryBenchOptions, RateLimitBenchOptions, scratch_dir,
};
use els_core::lightspeed::LsApiVersion;
use std::time::Duration;

#[derive(Args)]
pub struct BenchArgs {
    /// Signed webhooks sent in the ingest phase.
    #[arg(long, default_value_t = 20_000)]
    webhooks: usize,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Orders timed from webhook to recorded sale.
    #[arg(long, default_value_t = 500)]
    orders: usize,
    /// The Lightspeed API generation (`2026-07` or `legacy`).
    #[arg(long, env = "LIGHTSPEED_API_VERSION", default_value_t = LsApiVersion::LATEST)]
    lightspeed_api_version: LsApiVersion,
}

#[derive(Args)]
pub struct BenchInventoryArgs {
    /// Products in both catalogs.
    #[arg(long, default_value_t = 100_000)]
    catalog: usize,
    /// Lightspeed levels changed before a timed run (repeatable).
    #[arg(long, default_values_t = [1000, 10])]
    changes: Vec<usize>,
    /// The Lightspeed API generation (`2026-07` or `legacy`).
    #[arg(long, env = "LIGHTSPEED_API_VERSION", default_value_t = LsApiVersion::LATEST)]
    lightspeed_api_version: LsApiVersion,
}

#[derive(Args)]
pub struct BenchRateLimitArgs {
    /// Paid orders sent at once.
    #[arg(long, default_value_t = 1000)]
    orders: usize,
    /// Lightspeed requests allowed per window.
    #[arg(long, default_value_t = 350)]
    limit: u32,
    /// The rate-limit window in milliseconds (Lightspeed's is 300000).
    #[arg(long, default_value_t = 10_000)]
    window_ms: u64,
    /// The Lightspeed API generation (`2026-07` or `legacy`).
    #[arg(long, env = "LIGHTSPEED_API_VERSION", default_value_t = LsApiVersion::LATEST)]
    lightspeed_api_version: LsApiVersion,
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let dir = scratch_dir()?;
    let options = BenchOptions {
        webhooks: args.webhooks,
        concurrency: args.concurrency,
        orders: args.orders,
        api_version: args.lightspeed_api_version,
    };
    bench::run(dir.path(), options).await?.print();
    Ok(())
}

pub async fn bench_inventory(args: BenchInventoryArgs) -> anyhow::Result<()> {
    let dir = scratch_dir()?;
    let options = InventoryBenchOptions {
        catalog: args.catalog,
        changes: args.changes,
        api_version: args.lightspeed_api_version,
    };
    bench::run_inventory(dir.path(), options).await
}

pub async fn bench_rate_limit(args: BenchRateLimitArgs) -> anyhow::Result<()> {
    let dir = scratch_dir()?;
    let options = RateLimitBenchOptions {
        orders: args.orders,
        limit: args.limit,
        window: Duration::from_millis(args.window_ms),
        api_version: args.lightspeed_api_version,
    };
    bench::run_rate_limit(dir.path(), options).await?.print();
    Ok(())
}
