//! Lambda `webhook-ingest`: Ecwid webhooks in (HTTP API or Function URL), order messages out.

use els_functions::{ingest::WebhookIngestFunction, telemetry};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let function = WebhookIngestFunction::from_env().await?;
    run(service_fn(|request| function.handle(request))).await
}
