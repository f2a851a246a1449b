//! Webhook ingest: verify, parse, filter paid order events, enqueue (invariant 1).
//!
//! The response is 2xx only once the work is durably enqueued. Events we do not act on get
//! 200 with nothing enqueued, because Ecwid blocks apps whose endpoint keeps failing.

use crate::connection::Secret;
use crate::ecwid::PAID;
use crate::ports::{OrderMessage, StateStore, WorkQueue};
use crate::webhook::{WebhookError, WebhookEvent, verify_and_parse};
use serde::Serialize;

/// Ecwid's webhook bodies are small JSON documents; anything larger is refused with 413
/// before it is parsed.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// The Ecwid app's `client_secret`: the HMAC key of webhook signatures.
    pub client_secret: Secret,
    pub max_body_bytes: usize,
}

impl IngestConfig {
    pub fn new(client_secret: Secret) -> Self {
        Self {
            client_secret,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// What to answer Ecwid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestResponse {
    pub status: u16,
    /// `queued`, `ignored`, or `error`.
    pub outcome: &'static str,
    pub detail: String,
}

impl IngestResponse {
    fn new(status: u16, outcome: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            outcome,
            detail: detail.into(),
        }
    }
    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a verified event asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    Enqueue(OrderMessage),
    Ignore(String),
}

/// Only order events that report `newPaymentStatus = PAID` are work. The poster still
/// re-fetches the order, because the body is not signed.
pub fn classify(event: &WebhookEvent) -> EventAction {
    match event.event_type.as_str() {
        "order.created" | "order.updated" => {
            if event.new_payment_status.as_deref() != Some(PAID) {
                return EventAction::Ignore(format!(
                    "{} with payment status {}",
                    event.event_type,
                    event.new_payment_status.as_deref().unwrap_or("none")
                ));
            }
            match &event.order_id {
                Some(order_id) => EventAction::Enqueue(OrderMessage::from_webhook(
                    event.store_id,
                    order_id,
                    &event.event_id,
                )),
                None => EventAction::Ignore(format!("{} without data.orderId", event.event_type)),
            }
        }
        other => EventAction::Ignore(format!("{other} is not acted on")),
    }
}

pub struct Ingestor<S, Q> {
    store: S,
    queue: Q,
    config: IngestConfig,
}

impl<S: StateStore, Q: WorkQueue> Ingestor<S, Q> {
    pub fn new(store: S, queue: Q, config: IngestConfig) -> Self {
        Self {
            store,
            queue,
            config,
        }
    }

    pub fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    /// Handles one webhook delivery and says what to answer.
    pub async fn handle_webhook(&self, body: &[u8], signature: Option<&str>) -> IngestResponse {
        if body.len() > self.config.max_body_bytes {
            return IngestResponse::new(
                413,
                "error",
                format!(
                    "body of {} bytes exceeds the limit of {}",
                    body.len(),
                    self.config.max_body_bytes
                ),
            );
        }
        let event = match verify_and_parse(
            self.config.client_secret.expose().as_bytes(),
            body,
            signature,
        ) {
            Ok(e) => e,
            Err(e @ (WebhookError::MissingSignature | WebhookError::BadSignature)) => {
                tracing::warn!(error = %e, "webhook rejected");
                return IngestResponse::new(401, "error", e.to_string());
            }
            Err(e @ WebhookError::Malformed(_)) => {
                tracing::warn!(error = %e, "webhook rejected");
                return IngestResponse::new(400, "error", e.to_string());
            }
        };
        let message = match classify(&event) {
            EventAction::Enqueue(m) => m,
            EventAction::Ignore(why) => {
                tracing::debug!(event_id = %event.event_id, store_id = event.store_id, %why, "webhook ignored");
                return IngestResponse::new(200, "ignored", why);
            }
        };
        match self.store.get_connection(event.store_id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::info!(
                    store_id = event.store_id,
                    "webhook for a store without a connection ignored"
                );
                return IngestResponse::new(
                    200,
                    "ignored",
                    format!("store {} has no connection", event.store_id),
                );
            }
            Err(e) => {
                tracing::error!(store_id = event.store_id, error = %e, "connection lookup failed; Ecwid will retry");
                return IngestResponse::new(503, "error", "state store unavailable, retry later");
            }
        }
        match self.queue.enqueue(&message).await {
            Ok(()) => {
                tracing::info!(store_id = message.store_id, order_id = %message.order_id, event_id = %event.event_id, "paid order queued");
                IngestResponse::new(200, "queued", format!("order {} queued", message.order_id))
            }
            Err(e) => {
                tracing::error!(store_id = message.store_id, order_id = %message.order_id, error = %e, "enqueue failed; Ecwid will retry");
                IngestResponse::new(503, "error", "work queue unavailable, retry later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, status: Option<&str>, order: Option<&str>) -> WebhookEvent {
        WebhookEvent {
            event_id: "e".into(),
            event_created: 1,
            store_id: 7,
            entity_id: "1".into(),
            event_type: event_type.into(),
            order_id: order.map(str::to_string),
            new_payment_status: status.map(str::to_string),
            old_payment_status: None,
        }
    }

    #[test]
    fn only_paid_order_events_are_enqueued() {
        assert_eq!(
            classify(&event("order.created", Some("PAID"), Some("A1"))),
            EventAction::Enqueue(OrderMessage::from_webhook(7, "A1", "e"))
        );
        assert!(matches!(
            classify(&event("order.updated", Some("PAID"), Some("A1"))),
            EventAction::Enqueue(_)
        ));
        for (t, s) in [
            ("order.created", Some("AWAITING_PAYMENT")),
            ("order.updated", Some("REFUNDED")),
            ("order.updated", None),
            ("product.updated", Some("PAID")),
            ("unfinished_order.created", Some("PAID")),
            ("order.deleted", Some("PAID")),
        ] {
            assert!(
                matches!(classify(&event(t, s, Some("A1"))), EventAction::Ignore(_)),
                "{t} {s:?}"
            );
        }
        assert!(matches!(
            classify(&event("order.created", Some("PAID"), None)),
            EventAction::Ignore(_)
        ));
    }

    #[test]
    fn dedup_id_is_store_order_and_event() {
        let m = OrderMessage::from_webhook(7, "A1", "e");
        assert_eq!(m.dedup_id, "7:A1:e");
        assert_eq!(m.group_id(), "7");
    }
}
