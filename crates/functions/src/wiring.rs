//! What the functions build once, at init (a cold start), the same way in each: the
//! configuration from the environment, one AWS configuration, the state store, and for the
//! functions that call the APIs one HTTP client shared by Ecwid and Lightspeed, with
//! Lightspeed's OAuth tokens kept fresh. Each function's module turns this into its handler
//! ([`crate::ingest::WebhookIngestFunction`], [`crate::poster::SalePosterFunction`],
//! [`crate::store_worker::StoreWorkerFunction`]); its `main` only hands that to the
//! runtime.
//!
//! The functions that read merchant tokens (sale-poster, store-worker) open
//! the state store with the token key ([`token_store`]: `TOKEN_KMS_KEY_ID`, required);
//! webhook-ingest opens it without one and never calls KMS.
//!
//! The Lightspeed client of every function instance takes each request's slot from one
//! rate budget per retailer in the state table ([`dynamo_budget`]; the design is in
//! `els_lightspeed::budget`), so the poster's instances and the inventory mirror together
//! stay under the retailer's limit.
//!
//! A cold start that fails logs why (naming the variable or the parameter) and exits, so a
//! broken deployment shows in the first log line instead of in the first webhook.

use crate::config::{ApiConfig, ConfigError, load_aws_config};
use crate::lightspeed_auth::{OAuthSetupError, load_oauth_credentials};
use crate::secrets::SecretError;
use crate::tls::{ApiClientError, api_http_client};
use els_core::deadline::Deadline;
use els_ecwid::EcwidClient;
use els_lightspeed::{AuthLightspeed, LightspeedClient, Pacing};
use els_store_aws::budget::DynamoBudget;
use els_store_aws::{DynamoStore, TokenCipher};
use std::sync::Arc;
use thiserror::Error;

/// Why a function could not start. Messages never hold a secret.
#[derive(Debug, Error)]
pub enum InitError {
    #[error("{function} configuration: {source}")]
    Config {
        function: &'static str,
        source: ConfigError,
    },
    #[error("loading the Ecwid client_secret: {0}")]
    EcwidSecret(SecretError),
    #[error("building the HTTP client: {0}")]
    HttpClient(#[from] ApiClientError),
    #[error(transparent)]
    LightspeedOAuth(#[from] OAuthSetupError),
}

/// Reads `function`'s configuration with `load`.
pub fn configuration<T>(
    function: &'static str,
    load: impl FnOnce() -> Result<T, ConfigError>,
) -> Result<T, InitError> {
    load().map_err(|source| InitError::Config { function, source })
}

/// Logs why a cold start failed, once, as the function's last line.
pub fn log_failure<T>(built: Result<T, InitError>) -> Result<T, InitError> {
    built.inspect_err(|e| tracing::error!(error = %e, "cold start failed"))
}

/// The state store on `table` with the connections' tokens encrypted and decrypted under
/// `token_kms_key_id`. No network I/O: KMS is first called for the first store read.
pub fn token_store(
    aws: &aws_config::SdkConfig,
    table: &str,
    token_kms_key_id: &str,
) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), table).with_token_cipher(TokenCipher::new(
        aws_sdk_kms::Client::new(aws),
        token_kms_key_id,
    ))
}

/// The retailer-wide Lightspeed budget shared by every function instance, on `store`'s
/// table, counting over the window `pacing` assumes.
pub fn dynamo_budget(store: &DynamoStore, pacing: &Pacing) -> Arc<DynamoBudget> {
    Arc::new(els_store_aws::budget::dynamo_budget(store, pacing.window))
}

/// The state store and the API clients of `sale-poster` and `store-worker`.
pub struct ApiClients {
    /// For the function's other AWS clients (the poster's queue).
    pub aws: aws_config::SdkConfig,
    pub store: DynamoStore,
    pub ecwid: EcwidClient,
    /// Paced with the function's [`Pacing`] behind the shared `budget`, refreshing the
    /// tokens stored in `store`.
    pub lightspeed: AuthLightspeed<DynamoStore>,
    /// The retailers' shared Lightspeed budget (its counters are this instance's).
    pub budget: Arc<DynamoBudget>,
    /// The current invocation's deadline: the handler sets it, the token refresher (and the
    /// poster, given it) start no step that could be cut off by it.
    pub deadline: Deadline,
}

impl ApiClients {
    /// Builds them once: one HTTP client (one connection pool, one TLS configuration) for
    /// Ecwid, Lightspeed and Lightspeed's token endpoint. The OAuth app's secret is the one
    /// network read (SSM), and only when an app is configured.
    pub async fn init(config: &ApiConfig, pacing: Pacing) -> Result<Self, InitError> {
        let aws = load_aws_config(config.aws_operation_timeout).await;
        Self::on_aws(aws, config, pacing).await
    }

    async fn on_aws(
        aws: aws_config::SdkConfig,
        config: &ApiConfig,
        pacing: Pacing,
    ) -> Result<Self, InitError> {
        let store = token_store(&aws, &config.table_name, &config.token_kms_key_id);
        let http = api_http_client(config.http_timeout)?;
        let ecwid = EcwidClient::with_http(http.clone(), config.ecwid_api_url.clone());
        let credentials = load_oauth_credentials(|| aws_sdk_ssm::Client::new(&aws)).await?;
        let deadline = Deadline::none();
        let budget = dynamo_budget(&store, &pacing);
        let lightspeed = LightspeedClient::with_http(http, config.lightspeed_url_template.clone())
            .with_api_version(config.lightspeed_api_version)
            .with_pacing(pacing)
            .with_shared_budget(budget.clone())
            .with_token_refresh(store.clone(), credentials)
            .with_deadline(deadline.clone())
            .with_refresh_time_needed(config.http_timeout * 2);
        Ok(Self {
            aws,
            store,
            ecwid,
            lightspeed,
            budget,
            deadline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        QUEUE_URL, STORE_JOBS_QUEUE_URL, StoreWorkerConfig, TABLE_NAME, TOKEN_KMS_KEY_ID,
    };

    #[test]
    fn a_configuration_error_names_the_function_and_the_variable() {
        let err = configuration("store-worker", || StoreWorkerConfig::from_lookup(|_| None))
            .expect_err("no TABLE_NAME");
        assert_eq!(
            err.to_string(),
            format!("store-worker configuration: environment variable {TABLE_NAME} is not set")
        );
    }

    #[tokio::test]
    async fn the_lightspeed_client_is_paced_as_the_function_says() {
        let config = StoreWorkerConfig::from_lookup(|name| match name {
            QUEUE_URL => Some("queue".to_string()),
            STORE_JOBS_QUEUE_URL => Some("jobs".to_string()),
            TABLE_NAME => Some("state".to_string()),
            TOKEN_KMS_KEY_ID => Some("alias/tokens".to_string()),
            _ => None,
        })
        .expect("config");
        let pacing = Pacing {
            reserve: 7,
            ..Pacing::default()
        };

        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();

        let clients = ApiClients::on_aws(aws, &config.api, pacing)
            .await
            .expect("built lazily, without an OAuth app");

        assert_eq!(clients.lightspeed.inner().pacing(), pacing);
        assert!(
            clients.lightspeed.inner().shared_budget().is_some(),
            "every instance shares the retailer's budget"
        );
        assert_eq!(
            clients.budget.settings(),
            els_lightspeed::budget::BudgetSettings::default()
        );
        let cipher = clients.store.token_cipher().expect("tokens are encrypted");
        assert_eq!(cipher.key_id(), "alias/tokens");
        assert_eq!(cipher.kms_calls().total(), 0, "no KMS call at init");
    }

    #[test]
    fn a_function_that_reads_tokens_does_not_start_without_the_token_key() {
        let err = configuration("sale-poster", || {
            crate::config::SalePosterConfig::from_lookup(|name| match name {
                TABLE_NAME => Some("state".into()),
                crate::config::QUEUE_URL => Some("q".into()),
                crate::config::MAX_RECEIVE_COUNT => Some("5".into()),
                _ => None,
            })
        })
        .map(drop)
        .expect_err("no TOKEN_KMS_KEY_ID");
        assert_eq!(
            err.to_string(),
            format!(
                "sale-poster configuration: environment variable {TOKEN_KMS_KEY_ID} is not set"
            )
        );
    }
}
