//! Webhook replays, end to end on the embedded app: Ecwid signs only
//! `"{eventCreated}.{eventId}"`, so a captured signature can be sent again with an altered
//! body. A replayed `eventId` whose body asks for something else enqueues nothing; a
//! genuine redelivery still collapses into the first message; and whatever is enqueued,
//! the poster decides on the re-fetched order.
//!
//! The worker is off: each test drives the queue by hand, so "nothing was enqueued" is read
//! from the queue itself rather than waited for.

use els_core::ledger::{OrderState, ReasonCode};
use els_core::poster::PostOutcome;
use els_core::{Delivery, WorkQueue};
use els_sandbox::{OrderItemSpec, OrderSpec, SignedWebhook};
use els_tests::harness::{Harness, HarnessOptions};
use serde_json::Value;
use std::time::Duration;

async fn harness() -> Harness {
    Harness::start_with(HarnessOptions {
        worker: false,
        ..HarnessOptions::default()
    })
    .await
}

fn order(sku: &str, payment_status: &str) -> OrderSpec {
    OrderSpec {
        items: vec![OrderItemSpec::new(sku, 1)],
        payment_status: payment_status.into(),
        email: "jane@example.com".into(),
        first_name: "Jane".into(),
        last_name: "Doe".into(),
        ..OrderSpec::default()
    }
}

/// POSTs `body` with `signature` like Ecwid; returns the status and the JSON answer.
async fn post(h: &Harness, body: &[u8], signature: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(&h.webhook_url)
        .header("Content-Type", "application/json; charset=UTF-8")
        .header("X-Ecwid-Webhook-Signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .expect("ingest answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

/// The captured webhook's body with `data` and `entityId` pointing at another order, as
/// an attacker would alter it (the signature stays valid).
fn altered_to(h: &Harness, hook: &SignedWebhook, order_id: &str, status: &str) -> Vec<u8> {
    let mut body = hook.json();
    let other = h.sandbox.ecwid_order(order_id).expect("the order exists");
    body["entityId"] = other["internalId"].clone();
    body["data"]["orderId"] = order_id.into();
    body["data"]["newPaymentStatus"] = status.into();
    serde_json::to_vec(&body).unwrap()
}

/// What the queue delivers now. One store is one FIFO group, so this is at most its head
/// message: "nothing else was queued" is checked again once the head is acked.
async fn drain(h: &Harness) -> Vec<Delivery> {
    h.store
        .receive(10, Duration::from_secs(5))
        .await
        .expect("queue readable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_signature_naming_another_paid_order_enqueues_nothing() {
    let h = harness().await;
    let genuine = h.sandbox.place_order(order("MUG-001", "PAID"));
    let other = h.sandbox.place_order(order("TOTE-001", "PAID"));
    let hook = h
        .sandbox
        .order_webhook("order.created", &genuine, None, "PAID");
    assert_eq!(h.sandbox.deliver(&h.webhook_url, &hook).await.unwrap(), 200);

    // The same eventId and signature, the body altered to name the other (paid) order.
    let (status, answer) = post(&h, &altered_to(&h, &hook, &other, "PAID"), &hook.signature).await;
    assert_eq!(
        status, 200,
        "answered 200 so that nobody retries it: {answer}"
    );
    assert_eq!(answer["outcome"], "replayed", "{answer}");

    // Ecwid redelivers the genuine event: accepted, and collapsed into the first message.
    let (status, answer) = post(&h, &hook.body, &hook.signature).await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("queued")));

    let work = drain(&h).await;
    let orders: Vec<&str> = work.iter().map(|d| d.message.order_id.as_str()).collect();
    assert_eq!(
        orders,
        vec![genuine.as_str()],
        "only the genuine order is queued"
    );
    let outcome = h.app.settle(work[0].clone()).await.unwrap();
    assert!(matches!(outcome, PostOutcome::Posted { .. }), "{outcome:?}");
    assert!(drain(&h).await.is_empty(), "nothing else was queued");

    assert_eq!(h.sales_for(&genuine).len(), 1);
    assert!(
        h.sales_for(&other).is_empty(),
        "no sale for the replayed order"
    );
    assert!(h.ledger(&other).await.is_none(), "no ledger entry either");
    assert_eq!(h.sandbox.counters().ls_sale_posts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_claim_for_an_unpaid_order_posts_nothing() {
    let h = harness().await;
    let unpaid = h
        .sandbox
        .place_order(order("STICKER-01", "AWAITING_PAYMENT"));

    // Ecwid's genuine event for the unpaid order is not work: acknowledged, not queued.
    let hook = h
        .sandbox
        .order_webhook("order.created", &unpaid, None, "AWAITING_PAYMENT");
    let (status, answer) = post(&h, &hook.body, &hook.signature).await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("ignored")));
    assert!(drain(&h).await.is_empty());

    // Its signature on a body altered to claim PAID: a paid hint like any other, queued
    // (an event that was not work is not recorded, so nothing stands in its way) ...
    let (status, answer) = post(&h, &altered_to(&h, &hook, &unpaid, "PAID"), &hook.signature).await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("queued")));
    // ... and the poster decides on the order it re-fetches: not paid, no sale.
    let work = drain(&h).await;
    assert_eq!(work.len(), 1);
    let outcome = h.app.settle(work[0].clone()).await.unwrap();
    assert!(matches!(outcome, PostOutcome::Skipped(_)), "{outcome:?}");
    let entry = h.ledger(&unpaid).await.expect("the decision is recorded");
    assert_eq!(entry.state, OrderState::Skipped);
    assert_eq!(entry.reason.unwrap().code, ReasonCode::NotPaid);
    assert!(h.sales_for(&unpaid).is_empty());
    assert_eq!(h.sandbox.counters().ls_sale_posts, 0);
}
