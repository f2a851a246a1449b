//! Lambda `sale-poster`: SQS order messages in, completed Lightspeed sales out.

use anyhow::Context as _;
use aws_lambda_events::sqs::SqsEvent;
use els_core::SystemClock;
use els_core::poster::SalePoster;
use els_ecwid::EcwidClient;
use els_functions::config::{SalePosterConfig, load_aws_config};
use els_functions::lightspeed_auth::authenticated_lightspeed;
use els_functions::tls::api_http_client;
use els_functions::{poster::post_sqs_batch, telemetry};
use els_lightspeed::LightspeedClient;
use els_store_aws::{DynamoStore, SqsQueue};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = SalePosterConfig::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))
        .context("sale-poster configuration")?;
    let aws = load_aws_config(config.aws_operation_timeout).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config.table_name.clone(),
    );
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), config.queue_url.clone());
    let http = api_http_client(config.http_timeout).context("building the HTTP client")?;
    let ecwid = EcwidClient::with_http(http.clone(), config.ecwid_api_url.clone());
    let lightspeed =
        LightspeedClient::with_http(http.clone(), config.lightspeed_url_template.clone())
            .with_pacing(config.lightspeed_pacing());
    // Refreshes OAuth tokens (and stores the rotated pair); personal tokens pass through.
    let lightspeed = authenticated_lightspeed(
        lightspeed,
        http,
        &config.lightspeed_url_template,
        store.clone(),
        || aws_sdk_ssm::Client::new(&aws),
    )
    .await
    .context("Lightspeed OAuth app")?;
    let poster = SalePoster::new(
        store,
        ecwid,
        lightspeed,
        SystemClock,
        config.poster_config(),
    );

    let max_receive_count = config.max_receive_count;

    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        post_sqs_batch(&poster, &queue, max_receive_count, event.payload)
    }))
    .await
    .map_err(anyhow::Error::msg)
}
