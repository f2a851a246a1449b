//! Which state store (and queue) an operator command works on: the embedded SQLite file or
//! DynamoDB + SQS.

use anyhow::Context;
use clap::{Args, ValueEnum};
use els_store_aws::{DynamoStore, TokenCipher};
use els_store_sqlite::SqliteStore;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BackendKind {
    /// The embedded SQLite file (`--db`).
    Sqlite,
    /// DynamoDB + SQS (`--table`, `--queue-url`; endpoint and credentials from the AWS environment).
    Aws,
}

#[derive(Args, Clone)]
pub struct BackendArgs {
    #[arg(long, value_enum, default_value = "sqlite", env = "ELS_BACKEND")]
    pub backend: BackendKind,
    /// SQLite file of the embedded mode.
    #[arg(long, default_value = "els.sqlite", env = "ELS_DB")]
    pub db: PathBuf,
    /// DynamoDB table (aws backend).
    #[arg(long, env = "TABLE_NAME")]
    table: Option<String>,
    /// SQS FIFO queue URL (aws backend).
    #[arg(long, env = "QUEUE_URL")]
    queue_url: Option<String>,
    /// KMS key (id, ARN or alias) that encrypts the connections' tokens in DynamoDB: the
    /// stack's TokenKmsKeyArn output (aws backend; required there).
    #[arg(long, env = "TOKEN_KMS_KEY_ID")]
    token_kms_key: Option<String>,
}

impl BackendArgs {
    pub fn open_sqlite(&self) -> anyhow::Result<SqliteStore> {
        SqliteStore::open(&self.db).with_context(|| format!("opening {}", self.db.display()))
    }

    fn table(&self) -> anyhow::Result<String> {
        self.table
            .clone()
            .context("--table (or TABLE_NAME) is required with --backend aws")
    }

    /// The DynamoDB store, migrated to the current schema version, with the token key:
    /// connections written by any command are encrypted, and read ones decrypted.
    async fn open_dynamo(&self, config: &aws_config::SdkConfig) -> anyhow::Result<DynamoStore> {
        let table = self.table()?;
        let key = self
            .token_kms_key
            .clone()
            .filter(|k| !k.trim().is_empty())
            .context(
                "--token-kms-key (or TOKEN_KMS_KEY_ID) is required with --backend aws: the \
                 connections' tokens are stored encrypted with it (the stack's TokenKmsKeyArn \
                 output)",
            )?;
        let cipher = TokenCipher::new(aws_sdk_kms::Client::new(config), key.trim());
        Ok(
            DynamoStore::migrated(aws_sdk_dynamodb::Client::new(config), table)
                .await?
                .with_token_cipher(cipher),
        )
    }
}

async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The state store alone (the inventory commands need no queue).
pub enum StateBackend {
    Sqlite(SqliteStore),
    Dynamo(DynamoStore),
}

pub async fn open_state(args: &BackendArgs) -> anyhow::Result<StateBackend> {
    match args.backend {
        BackendKind::Sqlite => Ok(StateBackend::Sqlite(args.open_sqlite()?)),
        BackendKind::Aws => {
            let config = aws_config().await;
            Ok(StateBackend::Dynamo(args.open_dynamo(&config).await?))
        }
    }
}

/// Runs `$body` with `$store` bound (by value) to the chosen state store.
macro_rules! with_state {
    ($backend:expr, |$store:ident| $body:expr) => {
        match $backend {
            $crate::commands::backend::StateBackend::Sqlite(s) => {
                let $store = s;
                $body
            }
            $crate::commands::backend::StateBackend::Dynamo(s) => {
                let $store = s;
                $body
            }
        }
    };
}
pub(crate) use with_state;

/// The backend an operator command works on.
pub enum Backend {
    Sqlite(SqliteStore),
    Aws(DynamoStore, els_store_aws::SqsQueue),
}

pub async fn open_backend(args: &BackendArgs) -> anyhow::Result<Backend> {
    match args.backend {
        BackendKind::Sqlite => Ok(Backend::Sqlite(args.open_sqlite()?)),
        BackendKind::Aws => {
            args.table()?;
            let queue_url = args
                .queue_url
                .clone()
                .context("--queue-url (or QUEUE_URL) is required with --backend aws")?;
            let config = aws_config().await;
            Ok(Backend::Aws(
                args.open_dynamo(&config).await?,
                els_store_aws::SqsQueue::new(aws_sdk_sqs::Client::new(&config), queue_url),
            ))
        }
    }
}

/// Runs `$body` with `$store` and `$queue` bound to the chosen backend's adapters.
macro_rules! with_backend {
    ($backend:expr, |$store:ident, $queue:ident| $body:expr) => {
        match $backend {
            $crate::commands::backend::Backend::Sqlite(s) => {
                let $store = &s;
                let $queue = &s;
                $body
            }
            $crate::commands::backend::Backend::Aws(s, q) => {
                let $store = &s;
                let $queue = &q;
                $body
            }
        }
    };
}
pub(crate) use with_backend;
