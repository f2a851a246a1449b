//! The cold-start baseline of `init-bench`: cargo-lambda's hello-world function (an echo),
//! built with the same release profile as the real functions.

use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};
use serde_json::Value;

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(event.payload)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(echo)).await
}
