//! Each function's configuration, read once from the environment at init.
//!
//! A missing or unreadable variable fails the cold start with an error that names it, so a
//! broken deployment shows up in the first log line instead of in the first webhook. Values
//! are read through a lookup function so tests need not touch the process environment.

use els_core::Secret;
use std::time::Duration;
use thiserror::Error;

pub const TABLE_NAME: &str = "TABLE_NAME";
pub const QUEUE_URL: &str = "QUEUE_URL";
pub const ECWID_CLIENT_SECRET: &str = "ECWID_CLIENT_SECRET";
pub const ECWID_API_URL: &str = "ECWID_API_URL";
pub const LIGHTSPEED_URL_TEMPLATE: &str = "LIGHTSPEED_URL_TEMPLATE";
pub const HTTP_TIMEOUT_MS: &str = "HTTP_TIMEOUT_MS";
pub const AWS_OPERATION_TIMEOUT_MS: &str = "AWS_OPERATION_TIMEOUT_MS";
pub const LEASE_SECONDS: &str = "LEASE_SECONDS";
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";

/// Default timeout of one Ecwid or Lightspeed request.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Default budget of one DynamoDB or SQS operation, retries included. It must stay well below
/// the function timeout so a slow AWS call ends as a clean error, not as a killed invocation.
pub const DEFAULT_AWS_OPERATION_TIMEOUT: Duration = Duration::from_millis(3_000);
/// Default exclusivity of a ledger claim; it must exceed the poster's function timeout.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set")]
    Missing { name: &'static str },
    /// The value is never echoed: the variable may hold a secret.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Configuration of `webhook-ingest`.
#[derive(Debug, Clone)]
pub struct WebhookIngestConfig {
    pub table_name: String,
    pub queue_url: String,
    /// The Ecwid app's `client_secret`, the key of webhook signatures. `Debug` masks it.
    pub client_secret: Secret,
    pub max_body_bytes: usize,
    pub aws_operation_timeout: Duration,
}

/// Configuration of `sale-poster`.
#[derive(Debug, Clone)]
pub struct SalePosterConfig {
    pub table_name: String,
    /// The poster needs the queue too: a retry sets the message's visibility by receipt
    /// handle, and `ChangeMessageVisibility` takes the queue URL.
    pub queue_url: String,
    pub ecwid_api_url: String,
    pub lightspeed_url_template: String,
    pub http_timeout: Duration,
    pub aws_operation_timeout: Duration,
    pub lease: Duration,
}

impl WebhookIngestConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let client_secret = env.required(ECWID_CLIENT_SECRET)?;
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            queue_url: env.required(QUEUE_URL)?,
            client_secret: Secret::new(client_secret),
            max_body_bytes: env.positive(
                MAX_BODY_BYTES,
                els_core::ingest::DEFAULT_MAX_BODY_BYTES as u64,
            )? as usize,
            aws_operation_timeout: env
                .millis(AWS_OPERATION_TIMEOUT_MS, DEFAULT_AWS_OPERATION_TIMEOUT)?,
        })
    }

    /// The core's view of this configuration.
    pub fn ingest_config(&self) -> els_core::ingest::IngestConfig {
        els_core::ingest::IngestConfig {
            client_secret: self.client_secret.clone(),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

impl SalePosterConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            queue_url: env.required(QUEUE_URL)?,
            ecwid_api_url: env.url(ECWID_API_URL, els_ecwid::DEFAULT_API_URL)?,
            lightspeed_url_template: env.url(
                LIGHTSPEED_URL_TEMPLATE,
                els_lightspeed::DEFAULT_URL_TEMPLATE,
            )?,
            http_timeout: env.millis(HTTP_TIMEOUT_MS, DEFAULT_HTTP_TIMEOUT)?,
            aws_operation_timeout: env
                .millis(AWS_OPERATION_TIMEOUT_MS, DEFAULT_AWS_OPERATION_TIMEOUT)?,
            lease: Duration::from_secs(env.positive(LEASE_SECONDS, DEFAULT_LEASE.as_secs())?),
        })
    }

    /// The core's view of this configuration; retry and cache tunables keep their defaults.
    pub fn poster_config(&self) -> els_core::poster::PosterConfig {
        els_core::poster::PosterConfig {
            lease: self.lease,
            ..Default::default()
        }
    }
}

/// Loads the AWS SDK configuration once per process, with explicit timeouts: the SDK has no
/// operation timeout by default, and a hung DynamoDB or SQS call would otherwise run into the
/// function timeout. Region and credentials come from the Lambda environment (and
/// `AWS_ENDPOINT_URL`, for moto or LocalStack); credentials are fetched lazily, so this does
/// no network I/O.
pub async fn load_aws_config(operation_timeout: Duration) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1).min(operation_timeout))
        // Half the budget per attempt leaves room for one retry of a hung attempt.
        .operation_attempt_timeout(operation_timeout / 2)
        .operation_timeout(operation_timeout)
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

struct Env<'a, F>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// A set, non-blank value; blank counts as missing, as an unset SAM parameter shows up
    /// as an empty string.
    fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing { name })
    }

    fn positive(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        match raw.trim().parse::<u64>() {
            Ok(0) => Err(ConfigError::Invalid {
                name,
                reason: "must be greater than 0".into(),
            }),
            Ok(n) => Ok(n),
            Err(_) => Err(ConfigError::Invalid {
                name,
                reason: "must be a whole number".into(),
            }),
        }
    }

    fn millis(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.positive(name, default.as_millis() as u64)
            .map(Duration::from_millis)
    }

    fn url(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.optional(name).unwrap_or_else(|| default.to_string());
        let value = value.trim();
        if value.starts_with("https://") || value.starts_with("http://") {
            Ok(value.to_string())
        } else {
            Err(ConfigError::Invalid {
                name,
                reason: "must start with https:// or http://".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn ingest_needs_table_queue_and_secret() {
        let err = WebhookIngestConfig::from_lookup(lookup(&[
            (TABLE_NAME, "t"),
            (ECWID_CLIENT_SECRET, "s"),
        ]))
        .unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: QUEUE_URL });
        assert_eq!(err.to_string(), "environment variable QUEUE_URL is not set");

        let err = WebhookIngestConfig::from_lookup(lookup(&[
            (TABLE_NAME, "t"),
            (QUEUE_URL, "q"),
            (ECWID_CLIENT_SECRET, "  "),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: ECWID_CLIENT_SECRET
            }
        );

        let cfg = WebhookIngestConfig::from_lookup(lookup(&[
            (TABLE_NAME, "t"),
            (QUEUE_URL, "q"),
            (ECWID_CLIENT_SECRET, "very-secret"),
        ]))
        .unwrap();
        assert_eq!(cfg.max_body_bytes, 65_536);
        assert_eq!(cfg.aws_operation_timeout, DEFAULT_AWS_OPERATION_TIMEOUT);
        assert!(!format!("{cfg:?}").contains("very-secret"));
    }

    #[test]
    fn poster_defaults_and_invalid_numbers() {
        let cfg =
            SalePosterConfig::from_lookup(lookup(&[(TABLE_NAME, "t"), (QUEUE_URL, "q")])).unwrap();
        assert_eq!(cfg.ecwid_api_url, "https://app.ecwid.com/api/v3");
        assert_eq!(
            cfg.lightspeed_url_template,
            "https://{domain_prefix}.retail.lightspeed.app"
        );
        assert_eq!(cfg.http_timeout, Duration::from_secs(10));
        assert_eq!(cfg.poster_config().lease, Duration::from_secs(120));

        let err = SalePosterConfig::from_lookup(lookup(&[
            (TABLE_NAME, "t"),
            (QUEUE_URL, "q"),
            (LEASE_SECONDS, "soon"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: LEASE_SECONDS,
                ..
            }
        ));
        let err = SalePosterConfig::from_lookup(lookup(&[
            (TABLE_NAME, "t"),
            (QUEUE_URL, "q"),
            (HTTP_TIMEOUT_MS, "0"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: HTTP_TIMEOUT_MS,
                ..
            }
        ));
        let err = SalePosterConfig::from_lookup(lookup(&[(QUEUE_URL, "q")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: TABLE_NAME });
    }
}
