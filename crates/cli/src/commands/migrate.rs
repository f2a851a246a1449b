//! `els migrate`: bring the DynamoDB table up to date and report (or, with
//! `--encrypt-tokens`, encrypt) connections whose tokens are stored in plain text, or in the
//! per-token format (one KMS ciphertext per token, from before they were sealed together).

use super::backend::{BackendArgs, StateBackend, open_state};
use clap::Args;

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Rewrite every connection whose tokens are in plain text (written before encryption)
    /// or in the per-token format with its tokens sealed in one ciphertext under
    /// --token-kms-key. Idempotent: a second run finds nothing to do. Without it, the
    /// connections are only listed.
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
    let list = |stores: &[els_core::StoreId]| {
        if stores.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = stores.iter().map(|s| s.to_string()).collect();
            format!(" (stores {})", ids.join(", "))
        }
    };
    println!(
        "{} connection(s); {} with tokens in plain text{}; {} with one ciphertext per token{}",
        report.connections,
        report.plain_text.len(),
        list(&report.plain_text),
        report.per_token.len(),
        list(&report.per_token),
    );
    if args.encrypt_tokens {
        println!(
            "{} connection(s) sealed under {}{}",
            report.encrypted,
            store.token_cipher().map(|c| c.key_id()).unwrap_or_default(),
            if report.vanished > 0 {
                format!("; {} deleted meanwhile", report.vanished)
            } else {
                String::new()
            }
        );
        if !report.undecryptable.is_empty() {
            println!(
                "{} connection(s) left as they were: KMS refuses their tokens{}; reconnect them (els connect)",
                report.undecryptable.len(),
                list(&report.undecryptable)
            );
        }
    } else if !report.plain_text.is_empty() || !report.per_token.is_empty() {
        println!("run again with --encrypt-tokens to seal them");
    }
    Ok(())
}
