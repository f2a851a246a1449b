//! The Lightspeed client as the functions and `els` use it: wrapped so OAuth tokens are
//! refreshed (and the rotated pair stored) before they expire or after a 401; personal
//! tokens pass through. The rules are the core's ([`els_core::auth`]); this is the one place
//! that wires them to this crate's clients.

use crate::LightspeedClient;
use crate::oauth::{LightspeedTokenClient, OAuthCredentials};
use els_core::ConnectionStore;
use els_core::auth::{AuthConfig, AuthenticatedLightspeed};
use els_http::TokioClock;

/// The Lightspeed client with token refresh, on connection store `S`.
pub type AuthLightspeed<S> =
    AuthenticatedLightspeed<LightspeedClient, S, LightspeedTokenClient, TokioClock>;

impl LightspeedClient {
    /// This client behind token refresh: the tokens of the connections in `store` are kept
    /// fresh with the OAuth app's `credentials` (`None`: personal tokens only). The token
    /// endpoint is called on this client's URL template and connection pool.
    pub fn with_token_refresh<S: ConnectionStore>(
        self,
        store: S,
        credentials: Option<OAuthCredentials>,
    ) -> AuthLightspeed<S> {
        let tokens = LightspeedTokenClient::new(self.http.clone(), &self.url_template, credentials);
        AuthenticatedLightspeed::new(self, store, tokens, TokioClock, AuthConfig::default())
    }
}
