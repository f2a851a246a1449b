//! The retailer's webhooks (`/webhooks`, the Webhooks API: list, create, delete), which
//! `els connect --public-url` uses to have `inventory.update` and `product.update` sent to
//! our endpoint ([`els_core::ls_webhooks`]). Both generations serve the same shapes under
//! their prefix (2026-07 `lightspeed-webhooks-api-openapi.yml`: `GET /webhooks` →
//! `{data: [Webhook]}`, `POST /webhooks {active, type, url}` → 201 `{data: Webhook}` or 409
//! when that type and URL exist, `DELETE /webhooks/{id}` → 200 or 404; the legacy 2.0
//! registration takes the same `{url, active, type}`).

use super::{DataList, DataOne, LightspeedClient};
use els_core::{ApiError, Connection};
use els_http::path_segment;
use serde::{Deserialize, Serialize};

/// A registered webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    pub id: String,
    #[serde(rename = "type")]
    pub webhook_type: String,
    pub url: String,
    #[serde(default)]
    pub active: bool,
}

#[derive(Serialize)]
struct WebhookRequest<'a> {
    active: bool,
    #[serde(rename = "type")]
    webhook_type: &'a str,
    url: &'a str,
}

impl LightspeedClient {
    /// Every webhook of the retailer.
    pub async fn webhooks(&self, conn: &Connection) -> Result<Vec<Webhook>, ApiError> {
        let list: DataList<Webhook> = self.get(conn, &self.path(conn, "/webhooks"), &[]).await?;
        Ok(list.data)
    }

    /// Registers an active webhook of `webhook_type` to `url`. A 409 (that type and URL
    /// exist) or an answer lost on the way is resolved by listing: the existing one is
    /// returned.
    pub async fn ensure_webhook(
        &self,
        conn: &Connection,
        webhook_type: &str,
        url: &str,
    ) -> Result<Webhook, ApiError> {
        let body = WebhookRequest {
            active: true,
            webhook_type,
            url,
        };
        let created: Result<DataOne<Webhook>, ApiError> = self
            .post_unsafe(conn, &self.path(conn, "/webhooks"), &body)
            .await;
        match created {
            Ok(one) => Ok(one.data),
            Err(ApiError::Rejected { status: 409, .. } | ApiError::OutcomeUnknown { .. }) => self
                .webhooks(conn)
                .await?
                .into_iter()
                .find(|w| w.webhook_type == webhook_type && w.url == url)
                .ok_or_else(|| ApiError::OutcomeUnknown {
                    detail: format!("POST /webhooks ({webhook_type}): not found after a conflict or a lost answer"),
                }),
            Err(e) => Err(e),
        }
    }

    /// Deletes a webhook; one that is already gone (404) is deleted too.
    pub async fn delete_webhook(&self, conn: &Connection, id: &str) -> Result<(), ApiError> {
        let path = self.path(conn, &format!("/webhooks/{}", path_segment(id)?));
        let mut admission = self.admit(conn).await?;
        let resp = self
            .http
            .delete(format!("{}{path}", self.base_url(conn)))
            .bearer_auth(conn.lightspeed.access_token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        if let Ok(r) = &resp {
            admission.response(r);
        }
        let resp = resp.map_err(|e| ApiError::Unavailable {
            detail: format!(
                "DELETE {path}: {}",
                if e.is_timeout() {
                    "timed out"
                } else {
                    "no answer"
                }
            ),
        })?;
        let status = resp.status().as_u16();
        if resp.status().is_success() || status == 404 {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        Err(super::status_error(status, retry_after.as_deref(), &body))
    }
}
