//! Lightspeed OAuth mode: access tokens that expire, and a strict token endpoint
//! `POST /lightspeed/{prefix}/api/1.0/token` whose refresh tokens rotate.
//!
//! Off by default (the personal token of [`SandboxConfig::ls_token`](crate::SandboxConfig)
//! works). Once on ([`Sandbox::enable_ls_oauth`], `POST /_sandbox/lightspeed/oauth`), only
//! the current access token is accepted, until it expires. Issuing a new pair kills the old
//! refresh token AND the old access token at once: a real server may keep the old access
//! token alive until it expires, but the sandbox must never be more forgiving than Lightspeed.
//! Requests with a killed or expired token get 401 and are counted
//! (`ls_stale_token_requests`).

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Sandbox;
use crate::endpoint::params::First;
use crate::endpoint::parse_query;
use crate::server::{ApiResponse, Shared};
use crate::state::State;

/// How the retailer's OAuth app behaves. JSON (snake_case, every field optional):
/// `{"client_id","client_secret","access_token","refresh_token","expires_in_secs",
///   "lifetime_secs","rotate_refresh_token"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OAuthMode {
    pub client_id: String,
    pub client_secret: String,
    /// The initial pair.
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the initial access token expires (negative: already expired).
    pub expires_in_secs: i64,
    /// Lifetime of each newly issued access token, in seconds.
    pub lifetime_secs: i64,
    /// Whether a refresh issues a new refresh token (and kills the old one). When off, the
    /// answer carries no `refresh_token` and the old one stays valid.
    pub rotate_refresh_token: bool,
}

impl Default for OAuthMode {
    fn default() -> Self {
        OAuthMode {
            client_id: "sandbox-ls-client-id".into(),
            client_secret: "sandbox-ls-client-secret".into(),
            access_token: "lsxs_at_initial".into(),
            refresh_token: "lsxs_rt_initial".into(),
            expires_in_secs: 1800,
            lifetime_secs: 1800,
            rotate_refresh_token: true,
        }
    }
}

/// The retailer's token state while OAuth mode is on.
#[derive(Clone, Debug)]
pub(crate) struct OAuthState {
    mode: OAuthMode,
    access_token: String,
    access_expires: DateTime<Utc>,
    refresh_token: String,
    /// Access tokens that were valid once (expired or replaced).
    retired: HashSet<String>,
    issued: u64,
}

impl OAuthState {
    fn new(mode: OAuthMode) -> Self {
        OAuthState {
            access_token: mode.access_token.clone(),
            access_expires: Utc::now() + chrono::Duration::seconds(mode.expires_in_secs),
            refresh_token: mode.refresh_token.clone(),
            retired: HashSet::new(),
            issued: 0,
            mode,
        }
    }
}

/// Whether a Lightspeed API request's bearer token is good; counts stale ones.
pub(crate) fn authorized(st: &mut State, personal_token: &str, bearer: Option<&str>) -> bool {
    let Some(oauth) = &st.ls_oauth else {
        return bearer == Some(personal_token);
    };
    let Some(token) = bearer else { return false };
    if token == oauth.access_token {
        if Utc::now() < oauth.access_expires {
            return true;
        }
        st.counters.ls_stale_token_requests += 1;
        return false;
    }
    if oauth.retired.contains(token) {
        st.counters.ls_stale_token_requests += 1;
    }
    false
}

/// The retailer's OAuth app client secret: OAuth mode's, else the default app's (the key of
/// the Lightspeed webhooks' `X-Signature`, `lightspeed::webhook_delivery`).
pub(crate) fn client_secret(st: &State) -> String {
    match &st.ls_oauth {
        Some(o) => o.mode.client_secret.clone(),
        None => OAuthMode::default().client_secret,
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    ApiResponse::json(
        status,
        json!({"error": error, "error_description": description}),
    )
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct Retailer {
    prefix: String,
}

/// The token request's form fields.
#[derive(Default, Deserialize)]
#[serde(default)]
struct TokenForm {
    grant_type: First,
    client_id: First,
    client_secret: First,
    refresh_token: First,
}

/// `POST /lightspeed/{prefix}/api/1.0/token` (form-encoded). It authenticates by client
/// credentials, not a bearer token, and is not counted as an API request.
pub(crate) async fn token_request(
    AxState(shared): AxState<Shared>,
    Path(Retailer { prefix }): Path<Retailer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = shared.lock();
    st.counters.ls_token_requests += 1;
    if prefix != shared.cfg.ls_domain_prefix {
        return ApiResponse::json(
            StatusCode::NOT_FOUND,
            json!({"error": "Not Found", "details": "Unknown retailer"}),
        )
        .into_response();
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let form = is_form
        .then(|| std::str::from_utf8(&body).ok())
        .flatten()
        .and_then(|text| parse_query::<TokenForm>(Some(text)).ok());
    let Some(form) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    };
    let field = |value: &First| value.as_deref().unwrap_or_default().to_string();
    let Some(oauth) = st.ls_oauth.as_mut() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the retailer has no OAuth app installed",
        );
    };
    if field(&form.grant_type) != "refresh_token" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be refresh_token",
        );
    }
    if field(&form.client_id) != oauth.mode.client_id
        || field(&form.client_secret) != oauth.mode.client_secret
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let refresh_token = field(&form.refresh_token);
    if refresh_token.is_empty() || refresh_token != oauth.refresh_token {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the refresh token is invalid, expired or revoked",
        );
    }
    oauth.issued += 1;
    let n = oauth.issued;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let old_access = std::mem::replace(&mut oauth.access_token, format!("lsxs_at_{n}_{nonce}"));
    oauth.retired.insert(old_access);
    let lifetime = oauth.mode.lifetime_secs;
    let expires = Utc::now() + chrono::Duration::seconds(lifetime);
    oauth.access_expires = expires;
    let mut body = json!({
        "access_token": oauth.access_token,
        "token_type": "Bearer",
        "expires": expires.timestamp(),
        "expires_in": lifetime,
        "domain_prefix": prefix,
    });
    if oauth.mode.rotate_refresh_token {
        oauth.refresh_token = format!("lsxs_rt_{n}_{nonce}");
        body["refresh_token"] = json!(oauth.refresh_token);
    }
    st.counters.ls_token_refreshes += 1;
    ApiResponse::ok(body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Admin routes (under `/_sandbox`)

pub(crate) fn admin_router() -> Router<Shared> {
    Router::new()
        .route("/lightspeed/oauth", axum::routing::post(admin_enable))
        .route(
            "/lightspeed/oauth/revoke",
            axum::routing::post(admin_revoke),
        )
}

async fn admin_enable(AxState(sh): AxState<Shared>, Json(mode): Json<OAuthMode>) -> Response {
    sh.lock().ls_oauth = Some(OAuthState::new(mode));
    Json(json!({"ok": true})).into_response()
}

async fn admin_revoke(AxState(sh): AxState<Shared>) -> Response {
    revoke(&mut sh.lock());
    Json(json!({"ok": true})).into_response()
}

fn revoke(st: &mut State) {
    if let Some(o) = st.ls_oauth.as_mut() {
        let revoked = format!("revoked_{}", uuid::Uuid::new_v4().simple());
        let old = std::mem::replace(&mut o.access_token, revoked);
        o.retired.insert(old);
    }
}

/// The current pair, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires: DateTime<Utc>,
}

impl Sandbox {
    /// Switches the Lightspeed retailer to OAuth mode with `mode`'s initial pair (the
    /// personal token stops working).
    pub fn enable_ls_oauth(&self, mode: OAuthMode) {
        self.st().ls_oauth = Some(OAuthState::new(mode));
    }

    /// Invalidates the current access token mid-life (the refresh token stays valid), as a
    /// server-side revocation would.
    pub fn revoke_ls_access_token(&self) {
        revoke(&mut self.st());
    }

    /// The current OAuth pair, if OAuth mode is on.
    pub fn ls_oauth_tokens(&self) -> Option<OAuthTokens> {
        self.st().ls_oauth.as_ref().map(|o| OAuthTokens {
            access_token: o.access_token.clone(),
            refresh_token: o.refresh_token.clone(),
            access_expires: o.access_expires,
        })
    }
}
