//! The Lightspeed client as `els` uses it: wrapped so OAuth tokens are refreshed (and the
//! rotated pair stored) before they expire or after a 401 (the wiring is
//! [`LightspeedClient::with_token_refresh`], the same as the functions'). Personal tokens
//! pass through.

use els_core::{ConnectionStore, Secret};
pub use els_lightspeed::AuthLightspeed;
use els_lightspeed::oauth::OAuthCredentials;
use els_lightspeed::{LightspeedClient, POSTER_RESERVE, Pacing};
use std::time::Duration;

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

/// `client` keeping the tokens stored in `store` fresh and pacing its requests with
/// `pacing`, for a command that uses one (`sync-inventory`, `reconcile`).
pub fn authenticated_lightspeed<S: ConnectionStore>(
    client: LightspeedClient,
    pacing: Pacing,
    store: S,
    credentials: Option<OAuthCredentials>,
) -> anyhow::Result<AuthLightspeed<S>> {
    Ok(client
        .with_pacing(pacing)
        .with_token_refresh(store, credentials))
}

/// The Lightspeed clients of one `els serve` process: the sale poster's and the inventory
/// mirror's.
pub struct ServeLightspeed<S> {
    /// Leaves [`POSTER_RESERVE`] requests of the budget to the mirror.
    pub poster: AuthLightspeed<S>,
    pub mirror: AuthLightspeed<S>,
}

/// Both from the one `client` of the process: its clones share its connection pool and, per
/// retailer, its rate gate, so each service's pacing counts the other's requests (the
/// poster's reserve holds against the mirror's requests, and the two never spend the
/// retailer's budget as if it were theirs alone). Only the pacing differs; requests wait
/// at most `max_wait` for the budget.
pub fn serve_lightspeed<S: ConnectionStore + Clone>(
    client: LightspeedClient,
    max_wait: Duration,
    store: S,
    credentials: Option<OAuthCredentials>,
) -> ServeLightspeed<S> {
    let poster = client
        .clone()
        .with_pacing(Pacing {
            reserve: POSTER_RESERVE,
            max_wait,
            ..Pacing::default()
        })
        .with_token_refresh(store.clone(), credentials.clone());
    let mirror = client
        .with_pacing(Pacing {
            max_wait,
            ..Pacing::default()
        })
        .with_token_refresh(store, credentials);
    ServeLightspeed { poster, mirror }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox_setup::{lightspeed_url_template, sandbox_connection};
    use els_core::{ApiError, LightspeedApi};
    use els_sandbox::{Sandbox, SandboxConfig};
    use els_store_sqlite::SqliteStore;

    /// `els serve`'s two Lightspeed clients see one rate gate: once the mirror's requests
    /// have brought the budget down to the poster's reserve, the poster holds its request
    /// back (and, waiting at most zero, says so without sending), though the retailer would
    /// still have answered it.
    #[tokio::test]
    async fn the_poster_and_the_mirror_of_one_process_share_one_rate_gate() {
        let sandbox = Sandbox::start(SandboxConfig {
            ls_rate_limit: POSTER_RESERVE + 5,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox");
        let store = SqliteStore::open_in_memory().expect("SQLite");
        let conn = sandbox_connection(&sandbox);
        store.put_connection(&conn, None).await.expect("connection");
        let conn = store.get_connection(conn.store_id).await.unwrap().unwrap();
        let client = || {
            LightspeedClient::new(lightspeed_url_template(&sandbox), Duration::from_secs(5))
                .expect("client")
        };
        let serve = serve_lightspeed(client(), Duration::ZERO, store.clone(), None);
        let mug = els_core::Sku::parse("MUG-001").unwrap();

        for _ in 0..5 {
            serve
                .mirror
                .find_products_by_sku(&conn, &mug)
                .await
                .expect("the mirror's requests go through");
        }
        let held = serve.poster.find_products_by_sku(&conn, &mug).await;
        assert!(
            matches!(held, Err(ApiError::RateLimited { .. })),
            "the poster's gate counted the mirror's requests: {held:?}"
        );

        // With a client of its own, the poster would not have known, and spent the reserve.
        let separate = serve_lightspeed(client(), Duration::ZERO, store, None);
        separate
            .poster
            .find_products_by_sku(&conn, &mug)
            .await
            .expect("a separate gate lets it through");
    }

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
