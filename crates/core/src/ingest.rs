//! Webhook ingest: verify, parse, filter paid and refunded order events, enqueue (invariant 1).
//!
//! The response is 2xx only once the work is durably enqueued. Events we do not act on get
//! 200 with nothing enqueued, because Ecwid blocks apps whose endpoint keeps failing.
//!
//! **Replays.** Ecwid signs only `"{eventCreated}.{eventId}"`, so whoever captured one signed
//! delivery can resend its signature with an altered body (another `storeId`, order or
//! status). Every event that is about to be enqueued (verified, a paid order event, for a
//! connected store) is therefore first recorded under its `eventId` with a fingerprint of
//! what it asks for ([`event_fingerprint`]):
//!
//! - a new `eventId` is recorded and enqueued;
//! - the same `eventId` with the same fingerprint is Ecwid redelivering (its retries repeat
//!   the event): it is handled again, so a delivery whose enqueue failed after the record was
//!   written is still enqueued on Ecwid's retry; the queue's deduplication id
//!   (`store:order:eventId`) collapses the copies;
//! - the same `eventId` with another fingerprint is a replay with an altered body: 200
//!   (outcome `replayed`) so nobody retries it, nothing enqueued, and a warning.
//!
//! Events that are not work (unpaid, other types, unknown stores) are not recorded: they
//! cost no write, and a copy altered to point at an unknown store cannot block the genuine
//! delivery. A copy of such an event altered to claim PAID is enqueued like any paid hint,
//! and the poster, which decides only on the order it re-fetches, posts nothing for an
//! unpaid order. Records are kept for [`DEFAULT_EVENT_RETENTION`] (Ecwid retries for about
//! 24 hours).

use crate::connection::Secret;
use crate::ecwid::PAID;
use crate::ports::{
    Clock, ConnectionStore, EventDelivery, OrderMessage, WebhookEventRecord, WebhookEventStore,
    WorkQueue,
};
use crate::webhook::{WebhookError, WebhookEvent, verify_and_parse};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Ecwid's webhook bodies are small JSON documents; anything larger is refused with 413
/// before it is parsed.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a received event id is remembered. Ecwid retries a failed delivery about 27
/// times over 24 hours; a week covers that with a wide margin.
pub const DEFAULT_EVENT_RETENTION: chrono::Duration = chrono::Duration::days(7);

#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// The Ecwid app's `client_secret`: the HMAC key of webhook signatures.
    pub client_secret: Secret,
    pub max_body_bytes: usize,
    /// How long a received event id is remembered (replay protection).
    pub event_retention: chrono::Duration,
}

impl IngestConfig {
    pub fn new(client_secret: Secret) -> Self {
        Self {
            client_secret,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            event_retention: DEFAULT_EVENT_RETENTION,
        }
    }
}

/// What became of a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The paid order is durably enqueued.
    Queued,
    /// Not work for us (not a paid order event, or a store without a connection); nothing
    /// enqueued.
    Ignored,
    /// A known `eventId` with an altered body; nothing enqueued.
    Replayed,
    /// The body is over the size limit; not read.
    TooLarge,
    /// The signature is missing or wrong.
    BadSignature,
    /// Signed, but not a webhook we can read.
    Malformed,
    /// The state store or the queue failed; Ecwid retries.
    Unavailable,
    /// Not a POST: only an edge that routes every method to ingest sees one (a Lambda
    /// Function URL).
    MethodNotAllowed,
}

impl IngestOutcome {
    /// The HTTP status to answer. Ecwid counts 200 (like 201, 202, 204 and 209) as
    /// delivered and retries anything else, so every outcome that must not be retried is
    /// 200, even when nothing was enqueued.
    pub fn status(self) -> u16 {
        match self {
            IngestOutcome::Queued | IngestOutcome::Ignored | IngestOutcome::Replayed => 200,
            IngestOutcome::Malformed => 400,
            IngestOutcome::BadSignature => 401,
            IngestOutcome::MethodNotAllowed => 405,
            IngestOutcome::TooLarge => 413,
            IngestOutcome::Unavailable => 503,
        }
    }

    /// The `outcome` of the JSON body: `queued`, `ignored`, `replayed`, or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestOutcome::Queued => "queued",
            IngestOutcome::Ignored => "ignored",
            IngestOutcome::Replayed => "replayed",
            IngestOutcome::TooLarge
            | IngestOutcome::BadSignature
            | IngestOutcome::Malformed
            | IngestOutcome::Unavailable
            | IngestOutcome::MethodNotAllowed => "error",
        }
    }
}

/// What to answer Ecwid: the outcome and a line saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResponse {
    pub outcome: IngestOutcome,
    pub detail: String,
}

/// The media type of [`IngestResponse::http`]'s body.
pub const RESPONSE_CONTENT_TYPE: &str = "application/json";

impl IngestResponse {
    fn new(outcome: IngestOutcome, detail: impl Into<String>) -> Self {
        Self {
            outcome,
            detail: detail.into(),
        }
    }

    /// The answer to a request that is not a POST.
    pub fn method_not_allowed() -> Self {
        Self::new(IngestOutcome::MethodNotAllowed, "only POST is accepted")
    }

    pub fn status(&self) -> u16 {
        self.outcome.status()
    }

    /// The JSON body: `{"status":200,"outcome":"queued","detail":"order K1 queued"}`.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            status: u16,
            outcome: &'static str,
            detail: &'a str,
        }
        serde_json::to_string(&Body {
            status: self.status(),
            outcome: self.outcome.as_str(),
            detail: &self.detail,
        })
        .unwrap_or_default()
    }

    /// The HTTP answer, the same from every edge (the `webhook-ingest` Lambda and
    /// `els serve`): the status code and the body, of type [`RESPONSE_CONTENT_TYPE`].
    pub fn http(&self) -> (u16, String) {
        (self.status(), self.body())
    }
}

/// What a verified event asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    Enqueue(OrderMessage),
    Ignore(String),
}

/// Payment statuses an order event is work for: `PAID` (a sale to post, or an edit of a
/// posted one) and the refund statuses (a return against the posted sale, R2–R4).
pub const WORK_STATUSES: [&str; 4] = [PAID, "REFUNDED", "PARTIALLY_REFUNDED", "CANCELLED"];

/// Only order events whose `newPaymentStatus` is one of [`WORK_STATUSES`] are work. The
/// poster still re-fetches the order, because the body is not signed.
pub fn classify(event: &WebhookEvent) -> EventAction {
    match event.event_type.as_str() {
        "order.created" | "order.updated" => {
            if !event
                .new_payment_status
                .as_deref()
                .is_some_and(|s| WORK_STATUSES.contains(&s))
            {
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

/// What an event asks for: hex SHA-256 of exactly the fields [`classify`] decides on
/// (`storeId`, `eventType`, `data.orderId`, `data.newPaymentStatus`), as a JSON array.
///
/// Parsed fields rather than the raw body, so a redelivery that Ecwid serialises slightly
/// differently (key order, whitespace, an added field) is still recognised as one; an
/// alteration of an unsigned field we ignore changes nothing we would do.
pub fn event_fingerprint(event: &WebhookEvent) -> String {
    let canonical = serde_json::json!([
        event.store_id,
        event.event_type,
        event.order_id,
        event.new_payment_status,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

pub struct Ingestor<S, Q, C> {
    store: S,
    queue: Q,
    config: IngestConfig,
    clock: C,
}

impl<S: ConnectionStore + WebhookEventStore, Q: WorkQueue, C: Clock> Ingestor<S, Q, C> {
    /// `clock` dates the webhook records (and so when they expire).
    pub fn new(store: S, queue: Q, config: IngestConfig, clock: C) -> Self {
        Self {
            store,
            queue,
            config,
            clock,
        }
    }

    /// The same ingestor on another clock (tests).
    pub fn with_clock<C2: Clock>(self, clock: C2) -> Ingestor<S, Q, C2> {
        Ingestor {
            store: self.store,
            queue: self.queue,
            config: self.config,
            clock,
        }
    }

    pub fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    /// Handles one webhook delivery and says what to answer.
    pub async fn handle_webhook(&self, body: &[u8], signature: Option<&str>) -> IngestResponse {
        if body.len() > self.config.max_body_bytes {
            return IngestResponse::new(
                IngestOutcome::TooLarge,
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
                return IngestResponse::new(IngestOutcome::BadSignature, e.to_string());
            }
            Err(e @ WebhookError::Malformed(_)) => {
                tracing::warn!(error = %e, "webhook rejected");
                return IngestResponse::new(IngestOutcome::Malformed, e.to_string());
            }
        };
        let message = match classify(&event) {
            EventAction::Enqueue(m) => m,
            EventAction::Ignore(why) => {
                tracing::debug!(event_id = %event.event_id, store_id = event.store_id.get(), %why, "webhook ignored");
                return IngestResponse::new(IngestOutcome::Ignored, why);
            }
        };
        match self.store.get_connection(event.store_id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::info!(
                    store_id = event.store_id.get(),
                    "webhook for a store without a connection ignored"
                );
                return IngestResponse::new(
                    IngestOutcome::Ignored,
                    format!("store {} has no connection", event.store_id),
                );
            }
            Err(e) => {
                tracing::error!(store_id = event.store_id.get(), order_id = %message.order_id, error = %e, "connection lookup failed; Ecwid will retry");
                return IngestResponse::new(
                    IngestOutcome::Unavailable,
                    "state store unavailable, retry later",
                );
            }
        }
        if let Some(replayed) = self.record(&event).await {
            return replayed;
        }
        match self.queue.enqueue(&message).await {
            Ok(()) => {
                tracing::info!(store_id = message.store_id.get(), order_id = %message.order_id, event_id = %event.event_id, "paid order queued");
                IngestResponse::new(
                    IngestOutcome::Queued,
                    format!("order {} queued", message.order_id),
                )
            }
            Err(e) => {
                tracing::error!(store_id = message.store_id.get(), order_id = %message.order_id, error = %e, "enqueue failed; Ecwid will retry");
                IngestResponse::new(
                    IngestOutcome::Unavailable,
                    "work queue unavailable, retry later",
                )
            }
        }
    }

    /// Records the event id; returns the answer when the event must go no further (a replay
    /// with an altered body, or the store failing).
    async fn record(&self, event: &WebhookEvent) -> Option<IngestResponse> {
        let now = self.clock.now();
        let record = WebhookEventRecord {
            event_id: event.event_id.clone(),
            store_id: event.store_id,
            fingerprint: event_fingerprint(event),
            recorded_at: now,
            expires_at: now + self.config.event_retention,
        };
        // The order id of an altered body is what it claims, named so the warning can be
        // traced; it is an id, not personal data.
        let claimed_order = event.order_id.as_deref().unwrap_or("");
        let found = self.store.record_webhook_event(&record).await;
        match found.map(|found| EventDelivery::of(&record, found)) {
            Ok(EventDelivery::First) => None,
            Ok(EventDelivery::Redelivery) => {
                tracing::debug!(event_id = %event.event_id, store_id = event.store_id.get(), "webhook redelivered");
                None
            }
            Ok(EventDelivery::Altered(first)) => {
                tracing::warn!(
                    event_id = %event.event_id,
                    store_id = event.store_id.get(),
                    first_store_id = first.store_id.get(),
                    order_id = %claimed_order,
                    event_type = %event.event_type,
                    "webhook replayed with an altered body; nothing queued"
                );
                Some(IngestResponse::new(
                    IngestOutcome::Replayed,
                    format!(
                        "event {} was already received with other content; nothing queued",
                        event.event_id
                    ),
                ))
            }
            Err(e) => {
                tracing::error!(event_id = %event.event_id, store_id = event.store_id.get(), order_id = %claimed_order, error = %e, "recording the webhook event failed; Ecwid will retry");
                Some(IngestResponse::new(
                    IngestOutcome::Unavailable,
                    "state store unavailable, retry later",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Connection;
    use crate::fakes::FakeQueue;
    use crate::ids::StoreId;
    use crate::memory::MemoryStore;
    use crate::webhook::sign;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use chrono::{DateTime, Utc};
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    const SECRET: &str = "test-client-secret";
    const STORE: StoreId = StoreId::literal(1003);

    fn connection(store_id: StoreId) -> Connection {
        serde_json::from_value(serde_json::json!({
            "store_id": store_id,
            "ecwid_token": "secret_t",
            "lightspeed": {"domain_prefix": "x", "access_token": "lsat"},
            "register_id": "r", "outlet_id": "o", "user_id": "u", "payment_type_id": "p"
        }))
        .unwrap()
    }

    struct FixedClock(DateTime<Utc>);

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }

        async fn sleep(&self, _: Duration) {
            unreachable!("ingest never waits")
        }
    }

    /// A store with two connected stores.
    fn store() -> MemoryStore {
        let store = MemoryStore::new();
        run(async {
            for id in [STORE, StoreId::literal(2002)] {
                store.put_connection(&connection(id), None).await.unwrap();
            }
        });
        store
    }

    fn ingestor<'a>(
        store: &MemoryStore,
        queue: &'a FakeQueue,
    ) -> Ingestor<MemoryStore, &'a FakeQueue, FixedClock> {
        Ingestor::new(
            store.clone(),
            queue,
            IngestConfig::new(Secret::new(SECRET)),
            FixedClock(Utc::now()),
        )
    }

    fn body(
        event_id: &str,
        store_id: StoreId,
        event_type: &str,
        order: &str,
        status: &str,
    ) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "eventId": event_id,
            "eventCreated": 1764237600,
            "storeId": store_id,
            "entityId": 516483487,
            "eventType": event_type,
            "data": {"orderId": order, "newPaymentStatus": status, "oldPaymentStatus": "AWAITING_PAYMENT"}
        }))
        .unwrap()
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_replayed_event_id_with_another_order_enqueues_nothing() {
        let (store, queue) = (store(), FakeQueue::default());
        let ingest = ingestor(&store, &queue);
        let sig = sign(SECRET.as_bytes(), 1764237600, "ev-1");
        run(async {
            let first = ingest
                .handle_webhook(
                    &body("ev-1", STORE, "order.created", "K8XTQ", "PAID"),
                    Some(&sig),
                )
                .await;
            assert_eq!(
                (first.status(), first.outcome),
                (200, IngestOutcome::Queued)
            );
            let altered = ingest
                .handle_webhook(
                    &body("ev-1", STORE, "order.created", "OTHER", "PAID"),
                    Some(&sig),
                )
                .await;
            assert_eq!(
                (altered.status(), altered.outcome),
                (200, IngestOutcome::Replayed),
                "{altered:?}"
            );
        });
        assert_eq!(
            queue.accepted(),
            vec![OrderMessage::from_webhook(STORE, "K8XTQ", "ev-1")]
        );
        assert_eq!(
            queue.attempts.load(Ordering::SeqCst),
            1,
            "the replay did not reach the queue"
        );
    }

    #[test]
    fn altering_the_store_or_the_type_is_a_replay_too() {
        let (store, queue) = (store(), FakeQueue::default());
        let ingest = ingestor(&store, &queue);
        run(async {
            // Keyed by the event id alone: another (connected) store is the same event.
            let sig = sign(SECRET.as_bytes(), 1764237600, "ev-2");
            let r = ingest
                .handle_webhook(
                    &body("ev-2", STORE, "order.created", "A2", "PAID"),
                    Some(&sig),
                )
                .await;
            assert_eq!(r.outcome, IngestOutcome::Queued);
            for altered in [
                body(
                    "ev-2",
                    StoreId::literal(2002),
                    "order.created",
                    "A2",
                    "PAID",
                ),
                body("ev-2", STORE, "order.updated", "A2", "PAID"),
                body("ev-2", STORE, "order.created", "A3", "PAID"),
            ] {
                let r = ingest.handle_webhook(&altered, Some(&sig)).await;
                assert_eq!((r.status(), r.outcome), (200, IngestOutcome::Replayed));
            }
            // A copy that asks for nothing is simply not work.
            let r = ingest
                .handle_webhook(
                    &body("ev-2", STORE, "order.created", "A2", "AWAITING_PAYMENT"),
                    Some(&sig),
                )
                .await;
            assert_eq!((r.status(), r.outcome), (200, IngestOutcome::Ignored));
        });
        assert_eq!(
            queue.accepted(),
            vec![OrderMessage::from_webhook(STORE, "A2", "ev-2")]
        );
    }

    #[test]
    fn events_that_are_not_work_are_not_recorded_and_block_nothing() {
        let (store, queue) = (store(), FakeQueue::default());
        let ingest = ingestor(&store, &queue);
        let sig = sign(SECRET.as_bytes(), 1764237600, "ev-1");
        run(async {
            // A copy pointed at an unknown store, or made unpaid, arrives first: ignored,
            // and not recorded, so the genuine delivery is still queued.
            for ignored in [
                body("ev-1", StoreId::literal(999), "order.created", "A1", "PAID"),
                body("ev-1", STORE, "order.created", "A1", "AWAITING_PAYMENT"),
                body("ev-1", STORE, "product.updated", "A1", "PAID"),
            ] {
                let r = ingest.handle_webhook(&ignored, Some(&sig)).await;
                assert_eq!((r.status(), r.outcome), (200, IngestOutcome::Ignored));
            }
            assert!(store.webhook_events().is_empty(), "no write");
            let r = ingest
                .handle_webhook(
                    &body("ev-1", STORE, "order.created", "A1", "PAID"),
                    Some(&sig),
                )
                .await;
            assert_eq!(r.outcome, IngestOutcome::Queued);
        });
        assert_eq!(
            queue.accepted(),
            vec![OrderMessage::from_webhook(STORE, "A1", "ev-1")]
        );
    }

    #[test]
    fn a_redelivery_is_enqueued_again_and_the_dedup_id_collapses_it() {
        let (store, queue) = (store(), FakeQueue::default());
        let ingest = ingestor(&store, &queue);
        let sig = sign(SECRET.as_bytes(), 1764237600, "ev-1");
        // Ecwid may serialise its redelivery differently: same event, same fingerprint.
        let mut v: serde_json::Value =
            serde_json::from_slice(&body("ev-1", STORE, "order.created", "K8XTQ", "PAID")).unwrap();
        v["data"]["oldPaymentStatus"] = "PAID".into();
        let reserialised = serde_json::to_vec_pretty(&v).unwrap();
        run(async {
            for b in [
                body("ev-1", STORE, "order.created", "K8XTQ", "PAID"),
                reserialised,
            ] {
                let r = ingest.handle_webhook(&b, Some(&sig)).await;
                assert_eq!((r.status(), r.outcome), (200, IngestOutcome::Queued));
            }
        });
        assert_eq!(
            queue.attempts.load(Ordering::SeqCst),
            2,
            "both deliveries enqueued"
        );
        assert_eq!(
            queue.accepted(),
            vec![OrderMessage::from_webhook(STORE, "K8XTQ", "ev-1")]
        );
    }

    #[test]
    fn a_failed_enqueue_after_the_record_is_enqueued_on_ecwids_retry() {
        let (store, queue) = (store(), FakeQueue::default());
        queue.failing.store(1, Ordering::SeqCst);
        let ingest = ingestor(&store, &queue);
        let sig = sign(SECRET.as_bytes(), 1764237600, "ev-1");
        let b = body("ev-1", STORE, "order.created", "K8XTQ", "PAID");
        run(async {
            let first = ingest.handle_webhook(&b, Some(&sig)).await;
            assert_eq!(
                (first.status(), first.outcome),
                (503, IngestOutcome::Unavailable)
            );
            assert_eq!(store.webhook_events().len(), 1, "the record was written");
            let retry = ingest.handle_webhook(&b, Some(&sig)).await;
            assert_eq!(
                (retry.status(), retry.outcome),
                (200, IngestOutcome::Queued)
            );
        });
        assert_eq!(
            queue.accepted(),
            vec![OrderMessage::from_webhook(STORE, "K8XTQ", "ev-1")]
        );
    }

    #[test]
    fn a_failed_record_is_503_and_enqueues_nothing() {
        let (store, queue) = (store(), FakeQueue::default());
        store.fail_next_writes(1);
        let ingest = ingestor(&store, &queue);
        let sig = sign(SECRET.as_bytes(), 1764237600, "ev-1");
        let b = body("ev-1", STORE, "order.created", "K8XTQ", "PAID");
        run(async {
            let r = ingest.handle_webhook(&b, Some(&sig)).await;
            assert_eq!((r.status(), r.outcome), (503, IngestOutcome::Unavailable));
            assert!(queue.accepted().is_empty());
            let r = ingest.handle_webhook(&b, Some(&sig)).await;
            assert_eq!(r.outcome, IngestOutcome::Queued);
        });
        assert_eq!(queue.accepted().len(), 1);
    }

    #[test]
    fn records_expire_after_the_retention_and_use_the_clock() {
        let (store, queue) = (store(), FakeQueue::default());
        let t0 = DateTime::from_timestamp(1_764_237_600, 0).unwrap();
        let sig = sign(SECRET.as_bytes(), 1764237600, "ev-1");
        run(async {
            let r = ingestor(&store, &queue)
                .with_clock(FixedClock(t0))
                .handle_webhook(
                    &body("ev-1", STORE, "order.created", "A1", "PAID"),
                    Some(&sig),
                )
                .await;
            assert_eq!(r.outcome, IngestOutcome::Queued);
            let recorded = store.webhook_events().remove(0);
            assert_eq!(recorded.event_id, "ev-1");
            assert_eq!(recorded.recorded_at, t0);
            assert_eq!(recorded.expires_at, t0 + DEFAULT_EVENT_RETENTION);
            assert_eq!(recorded.store_id, STORE);
            let late = ingestor(&store, &queue)
                .with_clock(FixedClock(
                    t0 + DEFAULT_EVENT_RETENTION - chrono::Duration::seconds(1),
                ))
                .handle_webhook(
                    &body("ev-1", STORE, "order.created", "A2", "PAID"),
                    Some(&sig),
                )
                .await;
            assert_eq!(late.outcome, IngestOutcome::Replayed);
        });
    }

    #[test]
    fn the_fingerprint_covers_exactly_what_classify_reads() {
        let event =
            |store: StoreId, t: &str, order: Option<&str>, status: Option<&str>| WebhookEvent {
                event_id: "e".into(),
                event_created: 1,
                store_id: store,
                entity_id: "1".into(),
                event_type: t.into(),
                order_id: order.map(str::to_string),
                new_payment_status: status.map(str::to_string),
                old_payment_status: None,
            };
        let base = event(
            StoreId::literal(7),
            "order.created",
            Some("A1"),
            Some("PAID"),
        );
        let fp = event_fingerprint(&base);
        assert_eq!(fp.len(), 64);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
        let unsigned_noise = WebhookEvent {
            entity_id: "2".into(),
            old_payment_status: Some("PAID".into()),
            event_created: 9,
            ..base.clone()
        };
        assert_eq!(event_fingerprint(&unsigned_noise), fp);
        for other in [
            event(
                StoreId::literal(8),
                "order.created",
                Some("A1"),
                Some("PAID"),
            ),
            event(
                StoreId::literal(7),
                "order.updated",
                Some("A1"),
                Some("PAID"),
            ),
            event(
                StoreId::literal(7),
                "order.created",
                Some("A2"),
                Some("PAID"),
            ),
            event(StoreId::literal(7), "order.created", None, Some("PAID")),
            event(
                StoreId::literal(7),
                "order.created",
                Some("A1"),
                Some("AWAITING_PAYMENT"),
            ),
            event(StoreId::literal(7), "order.created", Some("A1"), None),
        ] {
            assert_ne!(event_fingerprint(&other), fp, "{other:?}");
        }
    }

    // --- Property: no input makes ingest enqueue without a valid signature. ---------------

    /// The oracle, written independently of `crate::webhook`: the header is valid when it is,
    /// trimmed, the padded base64 HMAC-SHA256 of the body's own `eventCreated.eventId`.
    fn signature_is_valid(body: &[u8], header: Option<&str>) -> bool {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return false;
        };
        let (Some(id), Some(created)) = (v["eventId"].as_str(), v["eventCreated"].as_i64()) else {
            return false;
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{created}.{id}").as_bytes());
        let expected = STANDARD.encode(mac.finalize().into_bytes());
        header.is_some_and(|h| h.trim() == expected)
    }

    #[derive(Debug, Clone)]
    enum Header {
        Absent,
        /// The valid signature of the body's own pair.
        Valid,
        /// Valid for another `eventCreated`/`eventId` pair.
        OtherPair(i64, String),
        /// The valid one with one character changed, cut short, or extended.
        NearMiss(usize, u8),
        Truncated(usize),
        Extended(String),
        /// Signed with another secret.
        OtherSecret,
        Raw(String),
    }

    fn header_strategy() -> impl Strategy<Value = Header> {
        prop_oneof![
            1 => Just(Header::Absent),
            5 => Just(Header::Valid),
            1 => (0i64..3, "[a-c]{1,2}").prop_map(|(c, id)| Header::OtherPair(c, id)),
            1 => (0usize..44, any::<u8>()).prop_map(|(i, b)| Header::NearMiss(i, b)),
            1 => (0usize..44).prop_map(Header::Truncated),
            1 => "[A-Za-z0-9+/= ]{1,4}".prop_map(Header::Extended),
            1 => Just(Header::OtherSecret),
            1 => prop_oneof![
                Just(String::new()),
                Just("   ".into()),
                "\\PC{0,60}",
                "[A-Za-z0-9+/]{43}="
            ]
            .prop_map(Header::Raw),
        ]
    }

    /// Bodies: mostly well-formed events over few ids (so the signature of "another pair"
    /// often is that of a body seen before), with unsigned fields and types varied; some
    /// mangled JSON; some arbitrary bytes.
    fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
        // Each field is present and usable most of the time, so that fully valid paid
        // events (and so enqueues) are common.
        let event = (
            prop::option::weighted(0.95, "[a-c]{1,2}|"),
            prop::option::weighted(
                0.95,
                prop_oneof![
                    8 => (0i64..3).prop_map(serde_json::Value::from),
                    1 => Just(serde_json::json!(1.5)),
                    1 => Just(serde_json::json!("1")),
                ],
            ),
            prop::option::weighted(
                0.95,
                prop_oneof![4 => Just(STORE.get()), 1 => Just(2002u64), 1 => any::<u64>()],
            ),
            prop::option::weighted(
                0.95,
                prop_oneof![
                    4 => Just("order.created"),
                    2 => Just("order.updated"),
                    1 => Just("product.updated"),
                    1 => Just(""),
                ],
            ),
            prop::option::weighted(
                0.9,
                prop_oneof![
                    4 => Just(serde_json::json!("A1")),
                    2 => Just(serde_json::json!(42)),
                    1 => Just(serde_json::json!("")),
                    1 => Just(serde_json::Value::Null),
                ],
            ),
            prop::option::weighted(
                0.9,
                prop_oneof![4 => Just("PAID"), 1 => Just("AWAITING_PAYMENT"), 1 => Just("paid")],
            ),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(id, created, store, t, order, status, entity)| {
                let mut v = serde_json::json!({});
                if let Some(id) = id {
                    v["eventId"] = id.into();
                }
                if let Some(c) = created {
                    v["eventCreated"] = c;
                }
                if let Some(s) = store {
                    v["storeId"] = s.into();
                }
                if let Some(t) = t {
                    v["eventType"] = t.into();
                }
                if entity {
                    v["entityId"] = 516483487.into();
                }
                let mut data = serde_json::json!({});
                if let Some(o) = order {
                    data["orderId"] = o;
                }
                if let Some(s) = status {
                    data["newPaymentStatus"] = s.into();
                }
                v["data"] = data;
                serde_json::to_vec(&v).unwrap()
            });
        prop_oneof![
            6 => event.clone(),
            2 => (event, 0usize..200, any::<u8>()).prop_map(|(mut b, i, byte)| {
                let i = i % b.len();
                b[i] = byte;
                b
            }),
            1 => prop::collection::vec(any::<u8>(), 0..200),
        ]
    }

    fn header_for(body: &[u8], header: &Header) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let id = v["eventId"].as_str().unwrap_or("").to_string();
        let created = v["eventCreated"].as_i64().unwrap_or(0);
        let valid = sign(SECRET.as_bytes(), created, &id);
        match header {
            Header::Absent => None,
            Header::Valid => Some(valid),
            Header::OtherPair(c, i) => Some(sign(SECRET.as_bytes(), *c, i)),
            Header::NearMiss(i, b) => {
                let mut bytes = valid.into_bytes();
                let i = i % bytes.len();
                bytes[i] = if bytes[i] == *b {
                    b.wrapping_add(1)
                } else {
                    *b
                };
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            Header::Truncated(n) => Some(valid[..n % valid.len()].to_string()),
            Header::Extended(tail) => Some(format!("{valid}{tail}")),
            Header::OtherSecret => Some(sign(b"another-secret", created, &id)),
            Header::Raw(r) => Some(r.clone()),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A sequence of deliveries through one ingestor (so records of earlier bodies exist):
        /// each enqueues at most one message and only when its header is valid for its body;
        /// no input panics.
        #[test]
        fn ingest_enqueues_only_with_a_valid_signature(
            deliveries in prop::collection::vec((body_strategy(), header_strategy()), 1..6)
        ) {
            let (store, queue) = (store(), FakeQueue::default());
            let ingest = ingestor(&store, &queue);
            run(async {
                for (body, header) in &deliveries {
                    let header = header_for(body, header);
                    let before = queue.attempts.load(Ordering::SeqCst);
                    let r = ingest.handle_webhook(body, header.as_deref()).await;
                    let enqueued = queue.attempts.load(Ordering::SeqCst) - before;
                    let valid = signature_is_valid(body, header.as_deref());
                    prop_assert!(enqueued <= 1);
                    let work = matches!(r.outcome, IngestOutcome::Queued | IngestOutcome::Replayed);
                    if enqueued == 1 || work {
                        prop_assert!(valid, "{r:?} for {:?} / {header:?}", String::from_utf8_lossy(body));
                    }
                    if !valid {
                        prop_assert!(matches!(r.status(), 400 | 401), "{r:?}");
                    }
                }
                Ok::<(), TestCaseError>(())
            })?;
        }
    }

    fn event(event_type: &str, status: Option<&str>, order: Option<&str>) -> WebhookEvent {
        WebhookEvent {
            event_id: "e".into(),
            event_created: 1,
            store_id: StoreId::literal(7),
            entity_id: "1".into(),
            event_type: event_type.into(),
            order_id: order.map(str::to_string),
            new_payment_status: status.map(str::to_string),
            old_payment_status: None,
        }
    }

    #[test]
    fn only_paid_and_refunded_order_events_are_enqueued() {
        assert_eq!(
            classify(&event("order.created", Some("PAID"), Some("A1"))),
            EventAction::Enqueue(OrderMessage::from_webhook(StoreId::literal(7), "A1", "e"))
        );
        for status in ["PAID", "REFUNDED", "PARTIALLY_REFUNDED", "CANCELLED"] {
            assert!(
                matches!(
                    classify(&event("order.updated", Some(status), Some("A1"))),
                    EventAction::Enqueue(_)
                ),
                "{status}"
            );
        }
        for (t, s) in [
            ("order.created", Some("AWAITING_PAYMENT")),
            ("order.updated", Some("INCOMPLETE")),
            ("order.updated", Some("refunded")),
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

    /// The one mapping both edges answer with: the statuses Ecwid counts as delivered (200)
    /// for what must not be retried, and the JSON body.
    #[test]
    fn each_outcome_has_its_status_and_body() {
        let cases = [
            (IngestOutcome::Queued, 200, "queued"),
            (IngestOutcome::Ignored, 200, "ignored"),
            (IngestOutcome::Replayed, 200, "replayed"),
            (IngestOutcome::Malformed, 400, "error"),
            (IngestOutcome::BadSignature, 401, "error"),
            (IngestOutcome::MethodNotAllowed, 405, "error"),
            (IngestOutcome::TooLarge, 413, "error"),
            (IngestOutcome::Unavailable, 503, "error"),
        ];
        for (outcome, status, name) in cases {
            let r = IngestResponse::new(outcome, "why \"quoted\"");
            assert_eq!(
                r.http(),
                (
                    status,
                    format!(
                        r#"{{"status":{status},"outcome":"{name}","detail":"why \"quoted\""}}"#
                    )
                )
            );
        }
        assert_eq!(
            IngestResponse::method_not_allowed().body(),
            r#"{"status":405,"outcome":"error","detail":"only POST is accepted"}"#
        );
    }

    #[test]
    fn dedup_id_is_store_order_and_event() {
        let m = OrderMessage::from_webhook(StoreId::literal(7), "A1", "e");
        assert_eq!(m.dedup_id, "7:A1:e");
        assert_eq!(m.group_id(), "7:A1", "one group per order");
    }
}
