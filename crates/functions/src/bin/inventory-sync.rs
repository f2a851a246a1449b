//! Lambda `inventory-sync`: on an EventBridge schedule, one "mirror store S" job per
//! connection with inventory on, for `inventory-worker`.

use els_functions::{inventory::InventorySyncFunction, telemetry};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let function = InventorySyncFunction::from_env().await?;
    run(service_fn(|event| function.handle(event))).await
}
