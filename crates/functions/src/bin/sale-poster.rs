//! Lambda `sale-poster`: SQS order messages in, completed Lightspeed sales out.

use els_functions::{poster::SalePosterFunction, telemetry};
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let function = SalePosterFunction::from_env().await?;
    run(service_fn(|event| function.handle(event))).await
}
