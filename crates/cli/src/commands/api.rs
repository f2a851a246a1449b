//! The API flags shared by every command that talks to Ecwid and Lightspeed.

use clap::Args;
use els_cli::lightspeed_auth::{self, AuthLightspeed, authenticated_lightspeed};
use els_core::lightspeed::LsApiVersion;
use els_core::{Connection, ConnectionStore, LightspeedApi};
use els_ecwid::EcwidClient;
use els_lightspeed::oauth::OAuthCredentials;
use els_lightspeed::{LightspeedClient, Pacing};
use std::time::Duration;

/// Where the real (or a stand-in) Ecwid and Lightspeed APIs are.
#[derive(Args, Clone)]
pub struct ApiArgs {
    #[arg(long, env = "ECWID_API_URL", default_value = els_ecwid::DEFAULT_API_URL)]
    pub ecwid_api_url: String,
    #[arg(long, env = "LIGHTSPEED_URL_TEMPLATE", default_value = els_lightspeed::DEFAULT_URL_TEMPLATE)]
    pub lightspeed_url_template: String,
    /// The Lightspeed API generation: a dated version (`2026-07`, the newest this release is
    /// tested against) or `legacy` (`/api/register_sales` and `/api/2.0`). A connection's
    /// own `els settings --lightspeed-api-version` overrides it.
    #[arg(
        id = "default_lightspeed_api_version",
        long = "default-lightspeed-api-version",
        env = "LIGHTSPEED_API_VERSION",
        default_value_t = LsApiVersion::LATEST
    )]
    pub lightspeed_api_version: LsApiVersion,
    /// Timeout of each Ecwid / Lightspeed request, in milliseconds.
    #[arg(long, env = "HTTP_TIMEOUT_MS", default_value_t = 10_000)]
    http_timeout_ms: u64,
    /// The longest a Lightspeed request waits in-process for the rate-limit budget, in
    /// milliseconds; a longer wait defers the order (its message comes back later).
    #[arg(long, env = "LIGHTSPEED_MAX_RATE_WAIT_MS", default_value_t = 20_000)]
    max_rate_wait_ms: u64,
    #[command(flatten)]
    lightspeed_oauth: LightspeedOAuthArgs,
}

/// The Lightspeed OAuth app that refreshes expiring tokens (both or neither; neither:
/// personal tokens only).
#[derive(Args, Clone)]
struct LightspeedOAuthArgs {
    #[arg(long, env = "LIGHTSPEED_CLIENT_ID")]
    lightspeed_client_id: Option<String>,
    #[arg(long, env = "LIGHTSPEED_CLIENT_SECRET", hide_env_values = true)]
    lightspeed_client_secret: Option<String>,
}

impl ApiArgs {
    pub fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.http_timeout_ms)
    }

    pub fn max_rate_wait(&self) -> Duration {
        Duration::from_millis(self.max_rate_wait_ms)
    }

    pub fn oauth_credentials(&self) -> anyhow::Result<Option<OAuthCredentials>> {
        lightspeed_auth::oauth_credentials(
            self.lightspeed_oauth.lightspeed_client_id.clone(),
            self.lightspeed_oauth.lightspeed_client_secret.clone(),
        )
    }

    pub fn ecwid_client(&self) -> anyhow::Result<EcwidClient> {
        Ok(EcwidClient::new(
            self.ecwid_api_url.clone(),
            self.http_timeout(),
        )?)
    }

    /// `conn` with a usable Lightspeed access token: an OAuth connection whose token has
    /// expired (or was revoked) is refreshed by `client` (the path the poster uses) and the
    /// new pair stored, before a command reads the APIs with the stored token through
    /// `client.inner()`. A personal token, or no OAuth app configured, is returned as it is;
    /// a failed refresh too (the reads then say the token was refused).
    pub async fn fresh_connection<S: ConnectionStore>(
        &self,
        client: &AuthLightspeed<S>,
        store: &S,
        conn: Connection,
    ) -> anyhow::Result<Connection> {
        if conn.lightspeed.refresh_token.is_none() || self.oauth_credentials()?.is_none() {
            return Ok(conn);
        }
        // Any authenticated read refreshes when the token is due or answered 401.
        let _ = client.sale_setup(&conn).await;
        Ok(store.get_connection(conn.store_id).await?.unwrap_or(conn))
    }

    /// A plain Lightspeed client on `url_template` (the configured one, or a sandbox's),
    /// speaking the configured API generation.
    pub fn lightspeed_on(&self, url_template: &str) -> anyhow::Result<LightspeedClient> {
        Ok(LightspeedClient::new(url_template, self.http_timeout())?
            .with_api_version(self.lightspeed_api_version))
    }

    /// The Lightspeed client, refreshing OAuth tokens stored in `store`.
    pub fn lightspeed_client<S: ConnectionStore>(
        &self,
        store: S,
    ) -> anyhow::Result<AuthLightspeed<S>> {
        authenticated_lightspeed(
            self.lightspeed_on(&self.lightspeed_url_template)?,
            Pacing {
                max_wait: self.max_rate_wait(),
                ..Pacing::default()
            },
            store,
            self.oauth_credentials()?,
        )
    }
}
