//! The Lightspeed client as `els` uses it: wrapped so OAuth tokens are refreshed (and the
//! rotated pair stored) before they expire or after a 401. Personal tokens pass through.

use els_core::auth::{AuthConfig, AuthenticatedLightspeed};
use els_core::{Secret, StateStore, SystemClock};
use els_lightspeed::oauth::{LightspeedTokenClient, OAuthCredentials};
use els_lightspeed::{LightspeedClient, Pacing};
use std::time::Duration;

/// The Lightspeed client with token refresh, on state store `S`.
pub type AuthLightspeed<S> =
    AuthenticatedLightspeed<LightspeedClient, S, LightspeedTokenClient, SystemClock>;

/// The OAuth app's credentials from `LIGHTSPEED_CLIENT_ID` / `LIGHTSPEED_CLIENT_SECRET`:
/// both or neither (neither: personal tokens only).
pub fn oauth_credentials(
    client_id: Option<String>,
    client_secret: Option<String>,
) -> anyhow::Result<Option<OAuthCredentials>> {
    let client_id = client_id.filter(|s| !s.trim().is_empty());
    let client_secret = client_secret.filter(|s| !s.is_empty());
    match (client_id, client_secret) {
        (Some(client_id), Some(secret)) => Ok(Some(OAuthCredentials {
            client_id,
            client_secret: Secret::new(secret),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => {
            anyhow::bail!("LIGHTSPEED_CLIENT_ID is set but LIGHTSPEED_CLIENT_SECRET is not")
        }
        (None, Some(_)) => {
            anyhow::bail!("LIGHTSPEED_CLIENT_SECRET is set but LIGHTSPEED_CLIENT_ID is not")
        }
    }
}

/// A Lightspeed client for `url_template` that keeps the tokens stored in `store` fresh and
/// paces its requests with `pacing` (the poster leaves [`els_lightspeed::POSTER_RESERVE`]
/// requests of the budget to the inventory mirror).
pub fn authenticated_lightspeed<S: StateStore>(
    url_template: &str,
    timeout: Duration,
    pacing: Pacing,
    store: S,
    credentials: Option<OAuthCredentials>,
) -> anyhow::Result<AuthLightspeed<S>> {
    let token_http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3).min(timeout))
        .user_agent(concat!("ecwid-lightspeed-sync/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(AuthenticatedLightspeed::new(
        LightspeedClient::new(url_template, timeout)?.with_pacing(pacing),
        store,
        LightspeedTokenClient::new(token_http, url_template, credentials),
        SystemClock,
        AuthConfig::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_in_pairs() {
        assert!(oauth_credentials(None, None).unwrap().is_none());
        assert!(
            oauth_credentials(Some("id".into()), Some("s".into()))
                .unwrap()
                .is_some()
        );
        assert!(oauth_credentials(Some("id".into()), None).is_err());
        assert!(oauth_credentials(None, Some("s".into())).is_err());
    }
}
