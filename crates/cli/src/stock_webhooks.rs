//! Lightspeed's stock webhooks for a store (`els connect --public-url`): registered at
//! connect time so a stock change reaches Ecwid in seconds; the schedule stays the
//! guarantee ([`els_core::ls_webhooks`]).

use els_core::Connection;
use els_core::ls_webhooks::{
    LS_WEBHOOK_TYPES, LsWebhooks, new_token, token_sha256, url_base, webhook_url,
};
use els_lightspeed::LightspeedClient;

/// Registers `inventory.update` and `product.update` to this store's URL under
/// `public_base` with a new secret, deletes the store's earlier registrations (an earlier
/// connect's secret), and records them on `conn`. On failure `conn` is left without
/// webhooks and the error says why (the connection still works, on the schedule alone).
pub async fn register(
    lightspeed: &LightspeedClient,
    conn: &mut Connection,
    public_base: &str,
) -> anyhow::Result<LsWebhooks> {
    conn.lightspeed_webhooks = None;
    let token = new_token();
    let url = webhook_url(public_base, conn.store_id, &token);
    let mut ids = Vec::new();
    for webhook_type in LS_WEBHOOK_TYPES {
        let hook = lightspeed
            .ensure_webhook(conn, webhook_type, &url)
            .await
            .map_err(|e| {
                anyhow::anyhow!("registering the Lightspeed {webhook_type} webhook: {e}")
            })?;
        ids.push(hook.id);
    }
    // Earlier registrations of this store point at a secret that no longer matches.
    let ours = format!("{}/", url_base(public_base, conn.store_id));
    for stale in lightspeed
        .webhooks(conn)
        .await
        .map_err(|e| anyhow::anyhow!("listing the Lightspeed webhooks: {e}"))?
        .into_iter()
        .filter(|w| w.url.starts_with(&ours) && w.url != url)
    {
        lightspeed
            .delete_webhook(conn, &stale.id)
            .await
            .map_err(|e| anyhow::anyhow!("deleting an earlier Lightspeed webhook: {e}"))?;
    }
    let hooks = LsWebhooks {
        token_sha256: token_sha256(&token),
        url_base: url_base(public_base, conn.store_id),
        ids,
        registered_at: chrono::Utc::now(),
    };
    conn.lightspeed_webhooks = Some(hooks.clone());
    Ok(hooks)
}
