//! The Lightspeed OAuth app of the functions that call Lightspeed (`sale-poster`,
//! `inventory-sync`): its configuration and its credentials.
//!
//! * `LIGHTSPEED_CLIENT_ID`: the app's client id. Unset: personal tokens only (an OAuth
//!   connection's token then fails as unauthorized once it expires).
//! * `LIGHTSPEED_CLIENT_SECRET_PARAMETER`: the name of the SSM SecureString parameter holding
//!   the client secret (what the template deploys), or `LIGHTSPEED_CLIENT_SECRET`: the value
//!   itself, for local runs only. Exactly one of them with a client id; ignored without.

use crate::config::{ClientSecretSource, ConfigError};
use crate::secrets::{SecretError, load_client_secret};
use els_core::Secret;
use els_lightspeed::oauth::OAuthCredentials;

pub const LIGHTSPEED_CLIENT_ID: &str = "LIGHTSPEED_CLIENT_ID";
pub const LIGHTSPEED_CLIENT_SECRET_PARAMETER: &str = "LIGHTSPEED_CLIENT_SECRET_PARAMETER";
pub const LIGHTSPEED_CLIENT_SECRET: &str = "LIGHTSPEED_CLIENT_SECRET";

/// The OAuth app, before its secret is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LightspeedOAuthConfig {
    pub client_id: String,
    pub client_secret: ClientSecretSource,
}

impl LightspeedOAuthConfig {
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `None` when no OAuth app is configured.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let id = get(LIGHTSPEED_CLIENT_ID);
        let parameter = get(LIGHTSPEED_CLIENT_SECRET_PARAMETER);
        let plain = get(LIGHTSPEED_CLIENT_SECRET);
        let secret = match (parameter, plain) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: LIGHTSPEED_CLIENT_SECRET,
                    reason: format!(
                        "set either {LIGHTSPEED_CLIENT_SECRET_PARAMETER} (an SSM parameter name) \
                         or {LIGHTSPEED_CLIENT_SECRET} (local development only), not both"
                    ),
                });
            }
            (Some(name), None) => Some(ClientSecretSource::SsmParameter(name.trim().to_string())),
            (None, Some(value)) => Some(ClientSecretSource::Plain(Secret::new(value))),
            (None, None) => None,
        };
        match (id, secret) {
            (None, None) => Ok(None),
            (Some(client_id), Some(client_secret)) => Ok(Some(Self {
                client_id: client_id.trim().to_string(),
                client_secret,
            })),
            (Some(_), None) => Err(ConfigError::Missing {
                name: LIGHTSPEED_CLIENT_SECRET_PARAMETER,
            }),
            // The template always names the parameter; the client id switches OAuth on.
            (None, Some(_)) => Ok(None),
        }
    }

    /// The credentials, with the secret read from SSM (once, at init).
    pub async fn load(
        &self,
        ssm: impl FnOnce() -> aws_sdk_ssm::Client,
    ) -> Result<OAuthCredentials, SecretError> {
        let client_secret = load_client_secret(&self.client_secret, ssm).await?;
        Ok(OAuthCredentials {
            client_id: self.client_id.clone(),
            client_secret,
        })
    }
}

/// Why the OAuth app could not be set up at init. Messages never hold the secret.
#[derive(Debug, thiserror::Error)]
pub enum OAuthSetupError {
    #[error("Lightspeed OAuth configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("Lightspeed OAuth client secret ({LIGHTSPEED_CLIENT_SECRET_PARAMETER}): {0}")]
    Secret(#[from] SecretError),
}

/// The OAuth app's credentials from the environment (and SSM), read once at init; `None`
/// when no app is configured (personal tokens only). The token-refreshing client is built
/// from them by [`els_lightspeed::LightspeedClient::with_token_refresh`].
pub async fn load_oauth_credentials(
    ssm: impl FnOnce() -> aws_sdk_ssm::Client,
) -> Result<Option<OAuthCredentials>, OAuthSetupError> {
    match LightspeedOAuthConfig::from_env()? {
        Some(config) => Ok(Some(config.load(ssm).await?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn no_client_id_means_personal_tokens_only() {
        assert_eq!(LightspeedOAuthConfig::from_lookup(lookup(&[])), Ok(None));
    }

    #[test]
    fn the_secret_comes_from_ssm_or_locally_never_both() {
        let cfg = LightspeedOAuthConfig::from_lookup(lookup(&[
            (LIGHTSPEED_CLIENT_ID, "app-id"),
            (LIGHTSPEED_CLIENT_SECRET_PARAMETER, "/els/ls-secret"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            cfg.client_secret,
            ClientSecretSource::SsmParameter("/els/ls-secret".into())
        );
        let local = LightspeedOAuthConfig::from_lookup(lookup(&[
            (LIGHTSPEED_CLIENT_ID, "app-id"),
            (LIGHTSPEED_CLIENT_SECRET, "s3cret"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            local.client_secret,
            ClientSecretSource::Plain(Secret::new("s3cret"))
        );
        let both = LightspeedOAuthConfig::from_lookup(lookup(&[
            (LIGHTSPEED_CLIENT_ID, "app-id"),
            (LIGHTSPEED_CLIENT_SECRET, "s3cret"),
            (LIGHTSPEED_CLIENT_SECRET_PARAMETER, "/els/ls-secret"),
        ]));
        let err = both.unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }));
        assert!(
            !err.to_string().contains("s3cret"),
            "never echoes the secret"
        );
    }

    #[test]
    fn the_client_id_switches_oauth_on() {
        assert_eq!(
            LightspeedOAuthConfig::from_lookup(lookup(&[(LIGHTSPEED_CLIENT_ID, "app-id")])),
            Err(ConfigError::Missing {
                name: LIGHTSPEED_CLIENT_SECRET_PARAMETER
            })
        );
        // What the template deploys without an OAuth app: the name, an empty client id.
        assert_eq!(
            LightspeedOAuthConfig::from_lookup(lookup(&[
                (LIGHTSPEED_CLIENT_ID, ""),
                (LIGHTSPEED_CLIENT_SECRET_PARAMETER, "/els/ls-secret")
            ])),
            Ok(None)
        );
    }
}
