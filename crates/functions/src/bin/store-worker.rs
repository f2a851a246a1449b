//! Lambda `store-worker`: runs the store jobs of the store-jobs queue: one store's
//! inventory mirror (Lightspeed stock to Ecwid) or order sweep per job.

use els_functions::{store_worker::StoreWorkerFunction, telemetry};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let function = StoreWorkerFunction::from_env().await?;
    run(service_fn(|event| function.handle(event))).await
}
