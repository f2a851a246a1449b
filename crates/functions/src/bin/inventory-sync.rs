//! Lambda `inventory-sync`: on an EventBridge schedule, Lightspeed stock levels at each
//! connection's outlet out to Ecwid.

use anyhow::Context as _;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use els_core::SystemClock;
use els_core::inventory::mirror::InventoryMirror;
use els_ecwid::EcwidClient;
use els_functions::config::{InventorySyncConfig, load_aws_config};
use els_functions::lightspeed_auth::authenticated_lightspeed;
use els_functions::tls::api_http_client;
use els_functions::{inventory::sync_all_inventory, telemetry};
use els_lightspeed::LightspeedClient;
use els_store_aws::DynamoStore;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = InventorySyncConfig::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))
        .context("inventory-sync configuration")?;
    let aws = load_aws_config(config.aws_operation_timeout).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        config.table_name.clone(),
    );
    let http = api_http_client(config.http_timeout).context("building the HTTP client")?;
    let ecwid = EcwidClient::with_http(http.clone(), config.ecwid_api_url.clone());
    let lightspeed =
        LightspeedClient::with_http(http.clone(), config.lightspeed_url_template.clone());
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
    let mirror = InventoryMirror::new(
        store,
        ecwid,
        lightspeed,
        SystemClock,
        config.mirror_config(),
    );

    lambda_runtime::run(service_fn(|event: LambdaEvent<EventBridgeEvent>| {
        sync_all_inventory(&mirror, event.payload)
    }))
    .await
    .map_err(anyhow::Error::msg)
}
