//! Ecwid webhooks: signature verification and the event shape.
//!
//! Ecwid signs only `"{eventCreated}.{eventId}"` with the app's `client_secret`
//! (HMAC-SHA256, standard padded base64, header `X-Ecwid-Webhook-Signature`). The rest of the
//! body is unsigned, so it is only a hint: the poster re-fetches the order (invariant 2).

use crate::ids::StoreId;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// The header Ecwid puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Ecwid-Webhook-Signature";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WebhookError {
    #[error("missing {SIGNATURE_HEADER} header")]
    MissingSignature,
    #[error("webhook signature does not match")]
    BadSignature,
    #[error("malformed webhook body: {0}")]
    Malformed(String),
}

/// A parsed Ecwid webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub event_id: String,
    pub event_created: i64,
    pub store_id: StoreId,
    /// A number for orders, possibly a string for `application.*` events; kept as text.
    pub entity_id: String,
    pub event_type: String,
    pub order_id: Option<String>,
    pub new_payment_status: Option<String>,
    pub old_payment_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    event_id: Option<String>,
    event_created: Option<i64>,
    store_id: Option<u64>,
    entity_id: Option<serde_json::Value>,
    event_type: Option<String>,
    data: Option<RawData>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawData {
    order_id: Option<serde_json::Value>,
    new_payment_status: Option<String>,
    old_payment_status: Option<String>,
}

fn value_as_id(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Computes the signature Ecwid sends for an event.
pub fn sign(client_secret: &[u8], event_created: i64, event_id: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(client_secret).expect("HMAC accepts any key length");
    mac.update(format!("{event_created}.{event_id}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Compares a received signature with the expected one in constant time.
pub fn signature_matches(
    client_secret: &[u8],
    event_created: i64,
    event_id: &str,
    received: &str,
) -> bool {
    let expected = sign(client_secret, event_created, event_id);
    let received = received.trim();
    // `ct_eq` on slices of different lengths returns false without an early exit on content.
    bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
}

/// Verifies and parses a webhook body. The signature is checked before any field other than
/// `eventId` and `eventCreated` is trusted.
pub fn verify_and_parse(
    client_secret: &[u8],
    body: &[u8],
    signature: Option<&str>,
) -> Result<WebhookEvent, WebhookError> {
    let signature = signature
        .filter(|s| !s.trim().is_empty())
        .ok_or(WebhookError::MissingSignature)?;
    let raw: RawEvent =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let event_id = raw
        .event_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| WebhookError::Malformed("missing eventId".into()))?;
    let event_created = raw
        .event_created
        .ok_or_else(|| WebhookError::Malformed("missing eventCreated".into()))?;
    if !signature_matches(client_secret, event_created, &event_id, signature) {
        return Err(WebhookError::BadSignature);
    }
    let store_id = raw
        .store_id
        .ok_or_else(|| WebhookError::Malformed("missing storeId".into()))
        .and_then(|id| StoreId::new(id).map_err(|e| WebhookError::Malformed(e.to_string())))?;
    let event_type = raw
        .event_type
        .filter(|s| !s.is_empty())
        .ok_or_else(|| WebhookError::Malformed("missing eventType".into()))?;
    let entity_id = raw
        .entity_id
        .as_ref()
        .and_then(value_as_id)
        .ok_or_else(|| WebhookError::Malformed("missing entityId".into()))?;
    let data = raw.data.unwrap_or_default();
    Ok(WebhookEvent {
        event_id,
        event_created,
        store_id,
        entity_id,
        event_type,
        order_id: data.order_id.as_ref().and_then(value_as_id),
        new_payment_status: data.new_payment_status,
        old_payment_status: data.old_payment_status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = include_str!("../tests/fixtures/webhook-order-paid.signed.json");

    fn vector() -> (String, String, Vec<u8>) {
        let v: serde_json::Value = serde_json::from_str(VECTOR).unwrap();
        (
            v["client_secret"].as_str().unwrap().to_string(),
            v["header"][SIGNATURE_HEADER].as_str().unwrap().to_string(),
            serde_json::to_vec(&v["body"]).unwrap(),
        )
    }

    #[test]
    fn ecwids_signed_vector_verifies() {
        let (secret, sig, body) = vector();
        let ev = verify_and_parse(secret.as_bytes(), &body, Some(&sig)).unwrap();
        assert_eq!(ev.event_id, "80aece08-40e8-4145-8d8b-b2d9ee3c1e2a");
        assert_eq!(ev.store_id, StoreId::literal(1003));
        assert_eq!(ev.entity_id, "516483487");
        assert_eq!(ev.order_id.as_deref(), Some("K8XTQ"));
        assert_eq!(ev.new_payment_status.as_deref(), Some("PAID"));
    }

    #[test]
    fn wrong_secret_missing_header_and_altered_signed_fields_are_rejected() {
        let (secret, sig, body) = vector();
        assert_eq!(
            verify_and_parse(b"another-secret", &body, Some(&sig)),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_and_parse(secret.as_bytes(), &body, None),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            verify_and_parse(secret.as_bytes(), &body, Some("")),
            Err(WebhookError::MissingSignature)
        );
        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["eventId"] = "80aece08-40e8-4145-8d8b-b2d9ee3c1e2b".into();
        let altered = serde_json::to_vec(&v).unwrap();
        assert_eq!(
            verify_and_parse(secret.as_bytes(), &altered, Some(&sig)),
            Err(WebhookError::BadSignature)
        );
        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["eventCreated"] = 1764237601.into();
        let altered = serde_json::to_vec(&v).unwrap();
        assert_eq!(
            verify_and_parse(secret.as_bytes(), &altered, Some(&sig)),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn unsigned_fields_are_not_covered_by_the_signature() {
        // Documented Ecwid behaviour: only eventCreated.eventId is signed, so an altered
        // body still verifies. This is why the poster re-fetches the order.
        let (secret, sig, body) = vector();
        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["data"]["orderId"] = "OTHER".into();
        let ev = verify_and_parse(
            secret.as_bytes(),
            &serde_json::to_vec(&v).unwrap(),
            Some(&sig),
        )
        .unwrap();
        assert_eq!(ev.order_id.as_deref(), Some("OTHER"));
    }

    #[test]
    fn entity_id_may_be_a_string_and_malformed_bodies_are_reported() {
        let secret = b"s";
        let sig = sign(secret, 5, "e1");
        let body = br#"{"eventId":"e1","eventCreated":5,"storeId":1,"entityId":"abc","eventType":"application.installed"}"#;
        let ev = verify_and_parse(secret, body, Some(&sig)).unwrap();
        assert_eq!(ev.entity_id, "abc");
        assert!(matches!(
            verify_and_parse(secret, b"{not json", Some(&sig)),
            Err(WebhookError::Malformed(_))
        ));
        let no_store =
            br#"{"eventId":"e1","eventCreated":5,"entityId":1,"eventType":"order.created"}"#;
        assert!(matches!(
            verify_and_parse(secret, no_store, Some(&sig)),
            Err(WebhookError::Malformed(m)) if m.contains("storeId")
        ));
        // A store id of 0 names no store: refused, after the signature was checked.
        let zero = br#"{"eventId":"e1","eventCreated":5,"storeId":0,"entityId":1,"eventType":"order.created"}"#;
        assert!(matches!(
            verify_and_parse(secret, zero, Some(&sig)),
            Err(WebhookError::Malformed(m)) if m.contains("store id")
        ));
        assert_eq!(
            verify_and_parse(b"other", zero, Some(&sig)),
            Err(WebhookError::BadSignature)
        );
    }
}
