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
pub const ECWID_CLIENT_SECRET_PARAMETER: &str = "ECWID_CLIENT_SECRET_PARAMETER";
pub const ECWID_CLIENT_SECRET: &str = "ECWID_CLIENT_SECRET";
pub const ECWID_API_URL: &str = "ECWID_API_URL";
pub const LIGHTSPEED_URL_TEMPLATE: &str = "LIGHTSPEED_URL_TEMPLATE";
/// The Lightspeed API generation (`2026-07` or `legacy`; default the newest tested), which a
/// connection's own setting overrides.
pub const LIGHTSPEED_API_VERSION: &str = "LIGHTSPEED_API_VERSION";
pub const HTTP_TIMEOUT_MS: &str = "HTTP_TIMEOUT_MS";
pub const AWS_OPERATION_TIMEOUT_MS: &str = "AWS_OPERATION_TIMEOUT_MS";
pub const LEASE_SECONDS: &str = "LEASE_SECONDS";
pub const SEARCH_DELAY_SECONDS: &str = "SEARCH_DELAY_SECONDS";
pub const LIGHTSPEED_MAX_RATE_WAIT_MS: &str = "LIGHTSPEED_MAX_RATE_WAIT_MS";
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
pub const MAX_RECEIVE_COUNT: &str = "MAX_RECEIVE_COUNT";
pub const INVENTORY_MAX_RUN_SECONDS: &str = "INVENTORY_MAX_RUN_SECONDS";
/// The store-jobs queue (SQS FIFO): inventory-sync and order-sweep enqueue one job per store
/// on it, store-worker is its consumer (and sets a failed job's retry on it), webhook-ingest enqueues a store's job when Lightspeed
/// reports a stock change.
pub const STORE_JOBS_QUEUE_URL: &str = "STORE_JOBS_QUEUE_URL";
pub const SWEEP_MAX_RUN_SECONDS: &str = "SWEEP_MAX_RUN_SECONDS";
/// The KMS key (id, ARN or alias) of the connections' tokens in DynamoDB; required by the
/// functions that read tokens (sale-poster, store-worker), never given to
/// webhook-ingest.
pub const TOKEN_KMS_KEY_ID: &str = "TOKEN_KMS_KEY_ID";

/// Default timeout of one Ecwid or Lightspeed request.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Default budget of one DynamoDB or SQS operation, retries included. It must stay well below
/// the function timeout so a slow AWS call ends as a clean error, not as a killed invocation.
pub const DEFAULT_AWS_OPERATION_TIMEOUT: Duration = Duration::from_millis(3_000);
/// Default exclusivity of a ledger claim; it must exceed the poster's function timeout.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// Default time budget of one store's inventory run (store-worker): the schedule runs every minute, and
/// the rest of a long catch-up is done by the next run from the cursor. It must stay below
/// the function's timeout (90 s in `template.yaml`) by more than one page of work.
pub const DEFAULT_INVENTORY_MAX_RUN: Duration = Duration::from_secs(50);
/// Default time budget of one store's order sweep (store-worker): below the function's 90 s
/// timeout; a store's sweep is usually a request or two, the rest waits for the next tick.
pub const DEFAULT_SWEEP_MAX_RUN: Duration = Duration::from_secs(50);
/// How long an inventory run holds a store's cursor (renewed with every page). Above the
/// function's timeout (90 s), so a live run never loses it; well below the core's 300 s
/// default, so a run killed by that timeout holds the store up for two minutes, not five.
pub const INVENTORY_LEASE: Duration = Duration::from_secs(120);
/// SQS allows `maxReceiveCount` up to 1000.
const MAX_RECEIVE_COUNT_LIMIT: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set")]
    Missing { name: &'static str },
    /// The value is never echoed: the variable may hold a secret.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where the Ecwid app's `client_secret` (the key of webhook signatures) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSecretSource {
    /// The name of an SSM SecureString parameter, read once at init
    /// ([`crate::secrets::load_client_secret`]). What the SAM template deploys.
    SsmParameter(String),
    /// The value itself, from `ECWID_CLIENT_SECRET`: for local runs and tests without SSM
    /// only. In AWS it would be readable by anyone allowed `lambda:GetFunctionConfiguration`,
    /// so the template never sets it. `Debug` masks it.
    Plain(Secret),
}

/// Configuration of `webhook-ingest`.
#[derive(Debug, Clone)]
pub struct WebhookIngestConfig {
    pub table_name: String,
    pub queue_url: String,
    /// The store-jobs queue, for Lightspeed's stock webhooks; `None`: that route answers 404.
    pub jobs_queue_url: Option<String>,
    pub client_secret: ClientSecretSource,
    pub max_body_bytes: usize,
    pub aws_operation_timeout: Duration,
}

/// What `sale-poster` and `store-worker` share: the state table and the two APIs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub table_name: String,
    pub ecwid_api_url: String,
    pub lightspeed_url_template: String,
    /// [`LIGHTSPEED_API_VERSION`].
    pub lightspeed_api_version: els_core::lightspeed::LsApiVersion,
    /// The timeout of one Ecwid or Lightspeed request.
    pub http_timeout: Duration,
    pub aws_operation_timeout: Duration,
    /// The KMS key of the connections' tokens ([`TOKEN_KMS_KEY_ID`]).
    pub token_kms_key_id: String,
}

/// Configuration of `sale-poster`.
#[derive(Debug, Clone)]
pub struct SalePosterConfig {
    pub api: ApiConfig,
    /// The poster needs the queue too: a retry sets the message's visibility by receipt
    /// handle, and `ChangeMessageVisibility` takes the queue URL.
    pub queue_url: String,
    pub lease: Duration,
    /// The longest a Lightspeed request waits in-process for the rate limit's budget; a longer
    /// wait returns the message with that visibility instead. Below the lease.
    pub lightspeed_max_rate_wait: Duration,
    /// After a sale POST whose outcome is unknown, how long to wait before searching
    /// Lightspeed for it (its search index may lag; default 90 s).
    pub search_delay: Duration,
    /// The work queue's `maxReceiveCount`: a record received this often that still asks for
    /// a retry parks its order (`DEAD_LETTERED`, with the last error) and is left for SQS to
    /// move to the DLQ, where `els replay --dlq` takes it back. It must equal the queue's
    /// redrive policy, so it has no default.
    pub max_receive_count: u32,
}

/// Configuration of the schedules' ticks (`inventory-sync`, `order-sweep`): the state table
/// (read without the token key) and the store-jobs queue.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub table_name: String,
    pub jobs_queue_url: String,
    pub aws_operation_timeout: Duration,
}

impl ScheduleConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            jobs_queue_url: env.required(STORE_JOBS_QUEUE_URL)?,
            aws_operation_timeout: env
                .millis(AWS_OPERATION_TIMEOUT_MS, DEFAULT_AWS_OPERATION_TIMEOUT)?,
        })
    }
}

/// Configuration of `store-worker`: one store's mirror run or order sweep per job.
#[derive(Debug, Clone)]
pub struct StoreWorkerConfig {
    pub api: ApiConfig,
    /// A store's mirror run stops after the page during which this much time has passed.
    pub max_run: Duration,
    /// The work queue the sweep puts the orders it finds on.
    pub queue_url: String,
    /// The store-jobs queue (a failed job's retry is set on it).
    pub jobs_queue_url: String,
    /// A store's sweep starts no new window after this.
    pub sweep_max_run: Duration,
}

impl WebhookIngestConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let client_secret = match (
            env.optional(ECWID_CLIENT_SECRET_PARAMETER),
            env.optional(ECWID_CLIENT_SECRET),
        ) {
            (Some(name), None) => ClientSecretSource::SsmParameter(name.trim().to_string()),
            (None, Some(value)) => ClientSecretSource::Plain(Secret::new(value)),
            // Both set is a deployment mistake: which one wins would be a guess.
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: ECWID_CLIENT_SECRET,
                    reason: format!(
                        "set either {ECWID_CLIENT_SECRET_PARAMETER} (an SSM parameter name) or \
                         {ECWID_CLIENT_SECRET} (local development only), not both"
                    ),
                });
            }
            (None, None) => {
                return Err(ConfigError::Missing {
                    name: ECWID_CLIENT_SECRET_PARAMETER,
                });
            }
        };
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            queue_url: env.required(QUEUE_URL)?,
            jobs_queue_url: env.optional(STORE_JOBS_QUEUE_URL),
            client_secret,
            max_body_bytes: env.positive(
                MAX_BODY_BYTES,
                els_core::ingest::DEFAULT_MAX_BODY_BYTES as u64,
            )? as usize,
            aws_operation_timeout: env
                .millis(AWS_OPERATION_TIMEOUT_MS, DEFAULT_AWS_OPERATION_TIMEOUT)?,
        })
    }

    /// The core's view of this configuration, with the secret once it is loaded.
    pub fn ingest_config(&self, client_secret: Secret) -> els_core::ingest::IngestConfig {
        els_core::ingest::IngestConfig {
            max_body_bytes: self.max_body_bytes,
            ..els_core::ingest::IngestConfig::new(client_secret)
        }
    }
}

impl ApiConfig {
    fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required(TABLE_NAME)?,
            ecwid_api_url: env.url(ECWID_API_URL, els_ecwid::DEFAULT_API_URL)?,
            lightspeed_url_template: env.url(
                LIGHTSPEED_URL_TEMPLATE,
                els_lightspeed::DEFAULT_URL_TEMPLATE,
            )?,
            lightspeed_api_version: match env.optional(LIGHTSPEED_API_VERSION) {
                None => els_core::lightspeed::LsApiVersion::default(),
                Some(v) => v.parse().map_err(
                    |e: els_core::lightspeed::api_version::UnknownApiVersion| {
                        ConfigError::Invalid {
                            name: LIGHTSPEED_API_VERSION,
                            reason: e.to_string(),
                        }
                    },
                )?,
            },
            http_timeout: env.millis(HTTP_TIMEOUT_MS, DEFAULT_HTTP_TIMEOUT)?,
            aws_operation_timeout: env
                .millis(AWS_OPERATION_TIMEOUT_MS, DEFAULT_AWS_OPERATION_TIMEOUT)?,
            token_kms_key_id: env.required(TOKEN_KMS_KEY_ID)?.trim().to_string(),
        })
    }
}

impl SalePosterConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let config = Self {
            api: ApiConfig::from_env(&env)?,
            queue_url: env.required(QUEUE_URL)?,
            lease: Duration::from_secs(env.positive(LEASE_SECONDS, DEFAULT_LEASE.as_secs())?),
            lightspeed_max_rate_wait: env.millis(
                LIGHTSPEED_MAX_RATE_WAIT_MS,
                els_lightspeed::DEFAULT_MAX_RATE_WAIT,
            )?,
            max_receive_count: env.max_receive_count()?,
            search_delay: Duration::from_secs(
                env.positive(
                    SEARCH_DELAY_SECONDS,
                    els_core::poster::PosterConfig::default()
                        .search_delay
                        .as_secs(),
                )?,
            ),
        };
        // Waiting past the lease would let another delivery take the order over.
        if config.lightspeed_max_rate_wait >= config.lease {
            return Err(ConfigError::Invalid {
                name: LIGHTSPEED_MAX_RATE_WAIT_MS,
                reason: format!("must be below the lease of {} s", config.lease.as_secs()),
            });
        }
        Ok(config)
    }

    /// How the poster's Lightspeed client paces itself.
    pub fn lightspeed_pacing(&self) -> els_lightspeed::Pacing {
        els_lightspeed::Pacing {
            reserve: els_lightspeed::POSTER_RESERVE,
            max_wait: self.lightspeed_max_rate_wait,
            ..els_lightspeed::Pacing::default()
        }
    }

    /// The core's view of this configuration; retry and cache tunables keep their defaults.
    pub fn poster_config(&self) -> els_core::poster::PosterConfig {
        els_core::poster::PosterConfig {
            lease: self.lease,
            search_delay: self.search_delay,
            // Twice the request timeout, plus the longest wait for Lightspeed's rate budget
            // before the POST goes out.
            post_time_needed: self.api.http_timeout * 2 + self.lightspeed_max_rate_wait,
            ..Default::default()
        }
    }
}

impl StoreWorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let config = Self {
            api: ApiConfig::from_env(&env)?,
            max_run: Duration::from_secs(env.positive(
                INVENTORY_MAX_RUN_SECONDS,
                DEFAULT_INVENTORY_MAX_RUN.as_secs(),
            )?),
            queue_url: env.required(QUEUE_URL)?,
            jobs_queue_url: env.required(STORE_JOBS_QUEUE_URL)?,
            sweep_max_run: Duration::from_secs(
                env.positive(SWEEP_MAX_RUN_SECONDS, DEFAULT_SWEEP_MAX_RUN.as_secs())?,
            ),
        };
        // The budget must end well before the lease, or an overlapping scheduled run could
        // take the store over mid-page.
        if config.max_run >= INVENTORY_LEASE {
            return Err(ConfigError::Invalid {
                name: INVENTORY_MAX_RUN_SECONDS,
                reason: format!(
                    "must be below the cursor lease of {} s",
                    INVENTORY_LEASE.as_secs()
                ),
            });
        }
        // A store's sweep lease must outlast its run, or the next tick's job could take the
        // store over mid-window (harmless for sales, wasteful for Ecwid's budget).
        let lease = els_core::sweep::SweepConfig::default().lease;
        if config.sweep_max_run.as_secs() as i64 >= lease.num_seconds() {
            return Err(ConfigError::Invalid {
                name: SWEEP_MAX_RUN_SECONDS,
                reason: format!("must be below the store lease of {} s", lease.num_seconds()),
            });
        }
        Ok(config)
    }

    /// The sweep's view of this configuration; the other tunables keep their defaults.
    pub fn sweep_config(&self) -> els_core::sweep::SweepConfig {
        els_core::sweep::SweepConfig {
            max_run: self.sweep_max_run,
            ..Default::default()
        }
    }

    /// The core's view of this configuration; the other tunables keep their defaults.
    pub fn mirror_config(&self) -> els_core::inventory::mirror::MirrorConfig {
        els_core::inventory::mirror::MirrorConfig {
            max_run: self.max_run,
            lease: INVENTORY_LEASE,
            ..Default::default()
        }
    }
}

/// Loads the AWS SDK configuration once per process, with explicit timeouts: the SDK has no
/// operation timeout by default, and a hung DynamoDB, SQS or SSM call would otherwise run into
/// the function timeout. Credentials are fetched lazily, so this does no network I/O;
/// `AWS_ENDPOINT_URL` (moto, LocalStack) is honoured.
///
/// In Lambda the region and the role's credentials are environment variables
/// (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...), valid for the life of the execution environment.
/// When they are set they are used directly, which skips building the default provider
/// chains (profile files, SSO, web identity, ECS, IMDS): the largest part of this function's
/// cold start. Without them (an operator's machine) the default chains apply. The HTTPS
/// client trusts the compiled-in roots ([`crate::tls`]).
pub async fn load_aws_config(operation_timeout: Duration) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1).min(operation_timeout))
        // Half the budget per attempt leaves room for one retry of a hung attempt.
        .operation_attempt_timeout(operation_timeout / 2)
        .operation_timeout(operation_timeout)
        .build();
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(region) = env_lookup("AWS_REGION").filter(|r| !r.trim().is_empty()) {
        loader = loader.region(aws_config::Region::new(region));
    }
    if env_lookup("AWS_ACCESS_KEY_ID").is_some_and(|k| !k.trim().is_empty()) {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader
        .http_client(crate::tls::aws_http_client())
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

    /// `MAX_RECEIVE_COUNT`: required, 1 to 1000 as SQS allows.
    fn max_receive_count(&self) -> Result<u32, ConfigError> {
        let name = MAX_RECEIVE_COUNT;
        let raw = self.required(name)?;
        match raw.trim().parse::<u64>() {
            Ok(n @ 1..=MAX_RECEIVE_COUNT_LIMIT) => Ok(n as u32),
            _ => Err(ConfigError::Invalid {
                name,
                reason: format!(
                    "must be a whole number from 1 to {MAX_RECEIVE_COUNT_LIMIT}, the queue's maxReceiveCount"
                ),
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

    const INGEST: &[(&str, &str)] = &[
        (TABLE_NAME, "t"),
        (QUEUE_URL, "q"),
        (
            ECWID_CLIENT_SECRET_PARAMETER,
            "/ecwid-lightspeed-sync/ecwid-client-secret",
        ),
    ];
    const POSTER: &[(&str, &str)] = &[
        (TABLE_NAME, "t"),
        (QUEUE_URL, "q"),
        (MAX_RECEIVE_COUNT, "5"),
        (TOKEN_KMS_KEY_ID, "alias/tokens"),
    ];
    const WORKER: &[(&str, &str)] = &[
        (TABLE_NAME, "t"),
        (QUEUE_URL, "q"),
        (STORE_JOBS_QUEUE_URL, "jobs"),
        (TOKEN_KMS_KEY_ID, "alias/tokens"),
    ];
    const SCHEDULE: &[(&str, &str)] = &[(TABLE_NAME, "t"), (STORE_JOBS_QUEUE_URL, "jobs")];

    /// `pairs` with `name` removed (or blanked, as an unset SAM parameter shows up).
    fn without<'a>(
        pairs: &[(&'a str, &'a str)],
        name: &str,
        blank: bool,
    ) -> Vec<(&'a str, &'a str)> {
        pairs
            .iter()
            .filter_map(|&(k, v)| match (k == name, blank) {
                (false, _) => Some((k, v)),
                (true, true) => Some((k, "  ")),
                (true, false) => None,
            })
            .collect()
    }

    fn with<'a>(
        pairs: &[(&'a str, &'a str)],
        name: &'a str,
        value: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        let mut out = without(pairs, name, false);
        out.push((name, value));
        out
    }

    #[test]
    fn the_lightspeed_api_version_defaults_to_the_newest_and_is_validated() {
        use els_core::lightspeed::LsApiVersion;
        let version = |pairs: &[(&str, &str)]| {
            SalePosterConfig::from_lookup(lookup(pairs)).map(|c| c.api.lightspeed_api_version)
        };
        assert_eq!(version(POSTER), Ok(LsApiVersion::LATEST));
        assert_eq!(
            version(&with(POSTER, LIGHTSPEED_API_VERSION, "legacy")),
            Ok(LsApiVersion::Legacy)
        );
        assert_eq!(
            version(&with(POSTER, LIGHTSPEED_API_VERSION, "2026-07")),
            Ok(LsApiVersion::Dated("2026-07"))
        );
        let err = version(&with(POSTER, LIGHTSPEED_API_VERSION, "2.0")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { name: LIGHTSPEED_API_VERSION, reason } if reason.contains("2026-07, legacy")),
            "{err}"
        );
    }

    /// Every required variable of every function, missing or blank, fails with an error
    /// that names it (what the cold start logs and exits with).
    #[test]
    fn each_missing_required_variable_is_named() {
        type Check = fn(&[(&str, &str)]) -> Result<(), ConfigError>;
        /// A function, its complete environment, its required variables, and its loader.
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], Check);
        let cases: &[Case] = &[
            (
                "webhook-ingest",
                INGEST,
                &[TABLE_NAME, QUEUE_URL, ECWID_CLIENT_SECRET_PARAMETER],
                |p| WebhookIngestConfig::from_lookup(lookup(p)).map(drop),
            ),
            (
                "sale-poster",
                POSTER,
                &[TABLE_NAME, QUEUE_URL, MAX_RECEIVE_COUNT, TOKEN_KMS_KEY_ID],
                |p| SalePosterConfig::from_lookup(lookup(p)).map(drop),
            ),
            (
                "inventory-sync and order-sweep",
                SCHEDULE,
                &[TABLE_NAME, STORE_JOBS_QUEUE_URL],
                |p| ScheduleConfig::from_lookup(lookup(p)).map(drop),
            ),
            (
                "store-worker",
                WORKER,
                &[
                    TABLE_NAME,
                    QUEUE_URL,
                    STORE_JOBS_QUEUE_URL,
                    TOKEN_KMS_KEY_ID,
                ],
                |p| StoreWorkerConfig::from_lookup(lookup(p)).map(drop),
            ),
        ];
        for (function, complete, required, check) in cases {
            assert!(check(complete).is_ok(), "{function}: complete config");
            for &name in *required {
                for blank in [false, true] {
                    let err = check(&without(complete, name, blank)).unwrap_err();
                    assert_eq!(
                        err,
                        ConfigError::Missing { name },
                        "{function} without {name}"
                    );
                    assert_eq!(
                        err.to_string(),
                        format!("environment variable {name} is not set")
                    );
                }
            }
        }
    }

    #[test]
    fn ingest_reads_the_secret_from_ssm_or_a_local_override_never_both() {
        let cfg = WebhookIngestConfig::from_lookup(lookup(INGEST)).unwrap();
        assert_eq!(
            cfg.client_secret,
            ClientSecretSource::SsmParameter("/ecwid-lightspeed-sync/ecwid-client-secret".into())
        );
        assert_eq!(cfg.max_body_bytes, 65_536);
        assert_eq!(cfg.aws_operation_timeout, DEFAULT_AWS_OPERATION_TIMEOUT);

        let local = with(
            &without(INGEST, ECWID_CLIENT_SECRET_PARAMETER, false),
            ECWID_CLIENT_SECRET,
            "very-secret",
        );
        let cfg = WebhookIngestConfig::from_lookup(lookup(&local)).unwrap();
        assert_eq!(
            cfg.client_secret,
            ClientSecretSource::Plain(Secret::new("very-secret"))
        );
        assert!(!format!("{cfg:?}").contains("very-secret"));

        let both = with(INGEST, ECWID_CLIENT_SECRET, "very-secret");
        let err = WebhookIngestConfig::from_lookup(lookup(&both)).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: ECWID_CLIENT_SECRET,
                ..
            }
        ));
        assert!(!err.to_string().contains("very-secret"));
    }

    #[test]
    fn poster_defaults_and_invalid_numbers() {
        let cfg = SalePosterConfig::from_lookup(lookup(POSTER)).unwrap();
        assert_eq!(cfg.api.ecwid_api_url, "https://app.ecwid.com/api/v3");
        assert_eq!(
            cfg.api.lightspeed_url_template,
            "https://{domain_prefix}.retail.lightspeed.app"
        );
        assert_eq!(cfg.api.http_timeout, Duration::from_secs(10));
        assert_eq!(cfg.poster_config().lease, Duration::from_secs(120));
        assert_eq!(cfg.max_receive_count, 5);
        assert_eq!(cfg.lightspeed_pacing().max_wait, Duration::from_secs(20));
        let cfg = SalePosterConfig::from_lookup(lookup(&with(
            POSTER,
            LIGHTSPEED_MAX_RATE_WAIT_MS,
            "5000",
        )))
        .unwrap();
        assert_eq!(cfg.lightspeed_max_rate_wait, Duration::from_secs(5));

        for (name, value) in [
            (LEASE_SECONDS, "soon"),
            (LIGHTSPEED_MAX_RATE_WAIT_MS, "0"),
            (LIGHTSPEED_MAX_RATE_WAIT_MS, "120000"),
            (HTTP_TIMEOUT_MS, "0"),
            (MAX_RECEIVE_COUNT, "0"),
            (MAX_RECEIVE_COUNT, "1001"),
            (MAX_RECEIVE_COUNT, "five"),
            (ECWID_API_URL, "app.ecwid.com"),
        ] {
            let err =
                SalePosterConfig::from_lookup(lookup(&with(POSTER, name, value))).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn store_worker_defaults_and_run_budgets() {
        let cfg = StoreWorkerConfig::from_lookup(lookup(WORKER)).unwrap();
        assert_eq!(cfg.max_run, DEFAULT_INVENTORY_MAX_RUN);
        assert_eq!(cfg.mirror_config().max_run, DEFAULT_INVENTORY_MAX_RUN);
        assert_eq!(cfg.sweep_config().max_run, DEFAULT_SWEEP_MAX_RUN);
        assert_eq!(cfg.api.http_timeout, DEFAULT_HTTP_TIMEOUT);
        let err =
            StoreWorkerConfig::from_lookup(lookup(&with(WORKER, SWEEP_MAX_RUN_SECONDS, "300")))
                .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: SWEEP_MAX_RUN_SECONDS,
                ..
            }
        ));

        let cfg =
            StoreWorkerConfig::from_lookup(lookup(&with(WORKER, INVENTORY_MAX_RUN_SECONDS, "20")))
                .unwrap();
        assert_eq!(cfg.mirror_config().max_run, Duration::from_secs(20));

        let err = StoreWorkerConfig::from_lookup(lookup(&with(
            WORKER,
            INVENTORY_MAX_RUN_SECONDS,
            "3600",
        )))
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: INVENTORY_MAX_RUN_SECONDS,
                ..
            }
        ));
    }
}
