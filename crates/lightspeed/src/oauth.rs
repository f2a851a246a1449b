//! The OAuth token endpoint: `POST /api/1.0/token` with `grant_type=refresh_token`,
//! implementing [`els_core::auth::LightspeedTokens`]. The rules (when to refresh, who
//! refreshes, storing the rotated pair) live in `els_core::auth`.

use crate::status_error;
use els_core::auth::{LightspeedTokens, TokenResponse};
use els_core::{ApiError, Connection, Secret};

/// The OAuth app's credentials. `Debug` never shows the secret.
#[derive(Clone, Debug)]
pub struct OAuthCredentials {
    pub client_id: String,
    pub client_secret: Secret,
}

/// Calls the token endpoint of each connection's retailer.
#[derive(Clone, Debug)]
pub struct LightspeedTokenClient {
    http: reqwest::Client,
    url_template: String,
    /// `None`: no OAuth app is configured, only personal tokens work; a refresh fails as
    /// unauthorized with a message that says so.
    credentials: Option<OAuthCredentials>,
}

impl LightspeedTokenClient {
    /// `url_template` is the API template of [`crate::LightspeedClient`]
    /// (`{domain_prefix}` is replaced per connection).
    pub fn new(
        http: reqwest::Client,
        url_template: impl Into<String>,
        credentials: Option<OAuthCredentials>,
    ) -> Self {
        Self {
            http,
            url_template: url_template.into().trim_end_matches('/').to_string(),
            credentials,
        }
    }

    pub fn token_url(&self, conn: &Connection) -> String {
        format!(
            "{}/api/1.0/token",
            self.url_template
                .replace("{domain_prefix}", conn.lightspeed.domain_prefix.as_str())
        )
    }
}

impl LightspeedTokens for LightspeedTokenClient {
    async fn refresh(
        &self,
        connection: &Connection,
        refresh_token: &Secret,
    ) -> Result<TokenResponse, ApiError> {
        let Some(creds) = &self.credentials else {
            return Err(ApiError::Unauthorized {
                status: 401,
                detail: "the access token needs a refresh but no Lightspeed OAuth app is configured (LIGHTSPEED_CLIENT_ID and its secret)".into(),
            });
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.expose()),
        ];
        let resp = self
            .http
            .post(self.token_url(connection))
            .form(&form)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                // The refresh may have happened (and spent the refresh token) without us
                // seeing the answer.
                if e.is_connect() {
                    ApiError::Unavailable {
                        detail: "token refresh: connection failed".into(),
                    }
                } else {
                    ApiError::OutcomeUnknown {
                        detail: format!(
                            "token refresh: {}",
                            if e.is_timeout() {
                                "timed out"
                            } else {
                                "connection lost"
                            }
                        ),
                    }
                }
            })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|_| ApiError::OutcomeUnknown {
            detail: "token refresh: reading the answer failed".into(),
        })?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, None, &body));
        }
        serde_json::from_str(&body).map_err(|e| ApiError::Decode {
            detail: format!("token refresh: {e}"),
        })
    }
}
