//! `els-sandbox`: run the fake Ecwid + Lightspeed server on a loopback port until killed.
//!
//! Prints one JSON line on stdout with the URLs, credentials (sandbox-only fakes) and seed ids.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use els_sandbox::{Sandbox, SandboxConfig};

#[derive(Parser, Debug)]
#[command(
    name = "els-sandbox",
    about = "Fake Ecwid + Lightspeed X-Series server (loopback only)"
)]
struct Args {
    /// Port on 127.0.0.1 (0 = a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Ecwid store id.
    #[arg(long, default_value_t = 1003)]
    store_id: u64,
    /// Lightspeed domain prefix.
    #[arg(long, default_value = "sandbox")]
    domain_prefix: String,
    /// Lightspeed requests allowed per window.
    #[arg(long, default_value_t = 350)]
    ls_rate_limit: u32,
    /// Lightspeed rate-limit window, in seconds.
    #[arg(long, default_value_t = 300)]
    ls_rate_window_secs: u64,
    /// Start with no demo catalog.
    #[arg(long)]
    no_seed: bool,
    /// A test option: the currency Ecwid's store reports (ISO 4217) when it differs from the
    /// Lightspeed retailer's (USD); real pairs can differ, which connect refuses.
    #[arg(long)]
    ecwid_currency: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = SandboxConfig {
        ecwid_store_id: args.store_id,
        ls_domain_prefix: args.domain_prefix,
        ls_rate_limit: args.ls_rate_limit,
        ls_rate_window: Duration::from_secs(args.ls_rate_window_secs),
        seed_demo: !args.no_seed,
        ecwid_currency: args.ecwid_currency,
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start_on(
        config.clone(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)),
    )
    .await?;
    let info = serde_json::json!({
        "base_url": sb.base_url(),
        "ecwid_api_url": sb.ecwid_api_url(),
        "lightspeed_url": sb.lightspeed_url(),
        "admin_url": sb.admin_url(),
        "ecwid_store_id": config.ecwid_store_id,
        "ecwid_token": config.ecwid_token,
        "webhook_client_secret": config.webhook_client_secret,
        "ls_domain_prefix": config.ls_domain_prefix,
        "ls_token": config.ls_token,
        "seed_ids": sb.ids(),
    });
    println!("{info}");
    tracing::info!("sandbox listening on {}", sb.base_url());
    tokio::signal::ctrl_c().await?;
    sb.shutdown().await;
    Ok(())
}
