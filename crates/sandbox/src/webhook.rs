//! Ecwid-style signed webhooks.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// A webhook body and its signature, ready to POST.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedWebhook {
    /// The exact JSON bytes to send.
    pub body: Vec<u8>,
    /// The `X-Ecwid-Webhook-Signature` header value.
    pub signature: String,
    /// The body's `eventId`.
    pub event_id: String,
    /// The body's `eventCreated` (unix seconds).
    pub event_created: i64,
}

impl SignedWebhook {
    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Ecwid's signature: standard padded base64 of HMAC-SHA256(key = client_secret,
/// message = "{eventCreated}.{eventId}").
pub fn sign_webhook(client_secret: &str, event_created: i64, event_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(format!("{event_created}.{event_id}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Build and sign an order webhook body.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_order_webhook(
    client_secret: &str,
    store_id: u64,
    event_id: &str,
    event_created: i64,
    event_type: &str,
    order_id: &str,
    internal_id: u64,
    old_payment_status: Option<&str>,
    new_payment_status: &str,
    fulfillment_status: &str,
) -> SignedWebhook {
    let mut data = serde_json::Map::new();
    data.insert("orderId".into(), order_id.into());
    if let Some(old) = old_payment_status {
        data.insert("oldPaymentStatus".into(), old.into());
    }
    data.insert("newPaymentStatus".into(), new_payment_status.into());
    if old_payment_status.is_some() {
        data.insert("oldFulfillmentStatus".into(), fulfillment_status.into());
    }
    data.insert("newFulfillmentStatus".into(), fulfillment_status.into());
    let body = serde_json::json!({
        "eventId": event_id,
        "eventCreated": event_created,
        "storeId": store_id,
        "entityId": internal_id,
        "eventType": event_type,
        "data": data,
    });
    SignedWebhook {
        body: serde_json::to_vec(&body).expect("JSON"),
        signature: sign_webhook(client_secret, event_created, event_id),
        event_id: event_id.to_string(),
        event_created,
    }
}
