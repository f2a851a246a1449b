//! Lambda `order-sweep`: on an EventBridge schedule, paid Ecwid orders whose webhook never
//! came, found by Ecwid's order search and put on the work queue.

use els_functions::{sweep::OrderSweepFunction, telemetry};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let function = OrderSweepFunction::from_env().await?;
    run(service_fn(|event| function.handle(event))).await
}
