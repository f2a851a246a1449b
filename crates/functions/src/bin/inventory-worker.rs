//! Lambda `inventory-worker`: runs the store jobs of the store-jobs queue, Lightspeed stock
//! levels at each job's store's outlet out to Ecwid.

use els_functions::{inventory_worker::InventoryWorkerFunction, telemetry};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let function = InventoryWorkerFunction::from_env().await?;
    run(service_fn(|event| function.handle(event))).await
}
