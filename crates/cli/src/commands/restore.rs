//! `els restore-check`: run once after restoring the state from a backup (DynamoDB
//! point-in-time recovery or an export, a copy of the SQLite file), before the sync runs
//! again, so that no order posted after the backup was taken is posted a second time.

use super::backend::{BackendArgs, open_state, with_state};
use clap::Args;
use els_cli::ops;

#[derive(Args)]
pub struct RestoreCheckArgs {
    #[command(flatten)]
    backend: BackendArgs,
}

pub async fn restore_check(args: RestoreCheckArgs) -> anyhow::Result<()> {
    let backend = open_state(&args.backend).await?;
    with_state!(backend, |store| {
        let report = ops::restore_check(&store, chrono::Utc::now()).await?;
        println!(
            "{} connection(s) marked restored: orders created before now search Lightspeed by invoice number before they are posted",
            report.connections
        );
        println!(
            "{} unposted order(s) marked to search first; {} posted or already marked",
            report.orders_marked, report.orders_unchanged
        );
    });
    Ok(())
}
