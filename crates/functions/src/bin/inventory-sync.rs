//! Lambda `inventory-sync`: on an EventBridge schedule (every minute), one "mirror store S"
//! job per connection with inventory on, for `store-worker`.

use els_core::jobs::JobKind;
use els_functions::{telemetry, tick::TickFunction};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let function = TickFunction::from_env("inventory-sync", JobKind::Mirror).await?;
    run(service_fn(|event| function.handle(event))).await
}
