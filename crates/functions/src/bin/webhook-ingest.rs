//! Lambda `webhook-ingest`: Ecwid webhooks in (HTTP API or Function URL), order messages out.

use anyhow::Context as _;
use els_core::ingest::Ingestor;
use els_functions::config::{WebhookIngestConfig, load_aws_config};
use els_functions::secrets::load_client_secret;
use els_functions::{ingest::handle_webhook_request, telemetry};
use els_store_aws::{DynamoStore, SqsQueue};
use std::convert::Infallible;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = WebhookIngestConfig::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))
        .context("webhook-ingest configuration")?;
    let aws = load_aws_config(config.aws_operation_timeout).await;
    // The one network call before the first invocation: the HMAC key, from SSM.
    let client_secret =
        load_client_secret(&config.client_secret, || aws_sdk_ssm::Client::new(&aws))
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cannot load the Ecwid client_secret"))
            .context("loading the Ecwid client_secret")?;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config.table_name.clone(),
    );
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), config.queue_url.clone());
    let ingestor = Ingestor::new(store, queue, config.ingest_config(client_secret));

    lambda_http::run(lambda_http::service_fn(|request| async {
        Ok::<_, Infallible>(handle_webhook_request(&ingestor, request).await)
    }))
    .await
    .map_err(anyhow::Error::msg)
}
