//! `els migrate`: bring the DynamoDB table up to date and report (or, with
//! `--encrypt-tokens`, encrypt) connections whose tokens are stored in plain text.

use super::backend::{BackendArgs, StateBackend, open_state};
use clap::Args;

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Rewrite every connection whose tokens are in plain text (written before encryption)
    /// with its tokens encrypted under --token-kms-key. Idempotent: a second run finds
    /// nothing to do. Without it, the connections are only listed.
    #[arg(long)]
    encrypt_tokens: bool,
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    // Opening the store migrates the schema (see DynamoStore::migrated).
    let StateBackend::Dynamo(store) = open_state(&args.backend).await? else {
        anyhow::bail!(
            "els migrate is for --backend aws: the SQLite file keeps its tokens in a file only \
             its owner can read, and its schema is migrated when it is opened"
        );
    };
    println!(
        "table {} is at schema version {}",
        store.table(),
        store.schema_version().await?
    );
    let report = store.encrypt_tokens(args.encrypt_tokens).await?;
    let stores: Vec<String> = report.plain_text.iter().map(|s| s.to_string()).collect();
    println!(
        "{} connection(s); {} with tokens in plain text{}",
        report.connections,
        stores.len(),
        if stores.is_empty() {
            String::new()
        } else {
            format!(" (stores {})", stores.join(", "))
        }
    );
    if args.encrypt_tokens {
        println!(
            "{} connection(s) encrypted under {}{}",
            report.encrypted,
            store.token_cipher().map(|c| c.key_id()).unwrap_or_default(),
            if report.vanished > 0 {
                format!("; {} deleted meanwhile", report.vanished)
            } else {
                String::new()
            }
        );
    } else if !stores.is_empty() {
        println!("run again with --encrypt-tokens to encrypt them");
    }
    Ok(())
}
