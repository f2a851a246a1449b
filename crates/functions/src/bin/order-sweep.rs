//! Lambda `order-sweep`: on an EventBridge schedule (every 5 minutes), one "sweep store S"
//! job per connection that posts sales or refunds, for `store-worker` (which searches
//! Ecwid for the paid or refunded orders whose webhook never came and queues them).

use els_core::jobs::JobKind;
use els_functions::{telemetry, tick::TickFunction};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let function = TickFunction::from_env("order-sweep", JobKind::Sweep).await?;
    run(service_fn(|event| function.handle(event))).await
}
