//! The serverless adapters: [`DynamoStore`] (state, DynamoDB single table) and [`SqsQueue`]
//! (work, SQS FIFO with a dead-letter queue).
//!
//! Both are built from SDK clients that the binary builds once, from one `aws_config` load;
//! nothing here reads the environment or sets global state.

pub mod budget;
mod dynamo;
mod jobs;
pub mod metering;
mod sqs;
mod tokens;

pub use dynamo::{ConnectionListing, DynamoStore, MigrationReport, TokenMigrationReport};
pub use jobs::SqsJobQueue;
pub use sqs::{RawMessage, SqsQueue};
pub use tokens::{ENCRYPTED_TOKEN_PLACEHOLDER, KmsCalls, TokenAttribute, TokenCipher};
