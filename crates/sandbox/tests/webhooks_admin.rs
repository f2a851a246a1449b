//! Webhook signatures and delivery; the cross-process admin endpoints.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use els_sandbox::{SandboxConfig, sign_webhook};
use rust_decimal_macros::dec;
use serde_json::{Value, json};

// Ecwid's example order and signed webhook (`order.json`, `webhook-order-paid.signed.json`
// of its REST API docs, as published), kept once in els-core's fixtures (see
// tests/fixtures/README.md).
const EXAMPLE_ORDER: &str = include_str!("../../core/tests/fixtures/ecwid-order-K8XTQ.json");
const WEBHOOK_VECTOR: &str =
    include_str!("../../core/tests/fixtures/webhook-order-paid.signed.json");

fn vector() -> Value {
    serde_json::from_str(WEBHOOK_VECTOR).unwrap()
}

#[test]
fn signature_reproduces_ecwid_vector() {
    let v = vector();
    let sig = sign_webhook(
        v["client_secret"].as_str().unwrap(),
        v["body"]["eventCreated"].as_i64().unwrap(),
        v["body"]["eventId"].as_str().unwrap(),
    );
    assert_eq!(
        sig,
        v["header"]["X-Ecwid-Webhook-Signature"].as_str().unwrap()
    );
    assert_eq!(sig, "xTmG3C5QckDjwyxLOnFj3Hv1e7JMUOpBbPfpOFB0srI=");
}

#[tokio::test]
async fn order_webhook_matches_the_vector() {
    let v = vector();
    let sb = sandbox_with(SandboxConfig {
        webhook_client_secret: v["client_secret"].as_str().unwrap().into(),
        ..SandboxConfig::default()
    })
    .await;
    let mut order: Value = serde_json::from_str(EXAMPLE_ORDER).unwrap();
    order["fulfillmentStatus"] = json!("AWAITING_PROCESSING");
    sb.insert_order(order);
    let hook = sb.order_webhook_at(
        v["body"]["eventId"].as_str().unwrap(),
        v["body"]["eventCreated"].as_i64().unwrap(),
        "order.updated",
        "K8XTQ",
        Some("AWAITING_PAYMENT"),
        "PAID",
    );
    assert_eq!(
        hook.signature,
        v["header"]["X-Ecwid-Webhook-Signature"].as_str().unwrap()
    );
    assert_eq!(hook.json(), v["body"], "same body as Ecwid's example");

    // A fresh one: new event id, created now, order.created has no old* fields.
    let fresh = sb.order_webhook("order.created", "K8XTQ", None, "PAID");
    let body = fresh.json();
    assert_ne!(fresh.event_id, hook.event_id);
    assert_eq!(body["eventId"], json!(fresh.event_id));
    assert_eq!(body["entityId"], json!(516483487));
    assert_eq!(body["storeId"], json!(1003));
    assert!(body["data"].get("oldPaymentStatus").is_none());
    assert_eq!(body["data"]["newFulfillmentStatus"], "AWAITING_PROCESSING");
    assert_eq!(
        fresh.signature,
        sign_webhook(
            &sb.config().webhook_client_secret,
            fresh.event_created,
            &fresh.event_id
        )
    );
    uuid::Uuid::parse_str(&fresh.event_id).expect("eventId is a UUID");
}

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let s2 = s2.clone();
            async move {
                s2.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn deliver_posts_like_ecwid() {
    let sb = sandbox().await;
    let (url, seen) = receiver().await;
    let hook = sb.order_webhook("order.created", "NOPE1", None, "PAID");
    let status = sb.deliver(&url, &hook).await.unwrap();
    assert_eq!(status.as_u16(), 200);
    // Duplicate delivery is just a second call.
    sb.deliver(&url, &hook).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let (headers, body) = &seen[0];
    assert_eq!(headers["content-type"], "application/json; charset=UTF-8");
    assert_eq!(
        headers["x-ecwid-webhook-signature"],
        hook.signature.as_str()
    );
    assert_eq!(body.as_ref(), hook.body.as_slice());
}

#[tokio::test]
async fn admin_endpoints_drive_the_sandbox_from_outside() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let admin = sb.admin_url();
    let c = client();

    // Place an unpaid order, then pay it.
    let spec = json!({
        "items": [{"sku": "TSHIRT-S", "quantity": 1}],
        "prices_include_tax": false,
        "payment_status": "AWAITING_PAYMENT",
        "email": "cy@example.com",
        "first_name": "Cy",
        "last_name": "Ng",
    });
    let r: Value = c
        .post(format!("{admin}/orders"))
        .json(&spec)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = r["orderId"].as_str().unwrap().to_string();
    assert_eq!(
        sb.ecwid_order(&order_id).unwrap()["paymentStatus"],
        "AWAITING_PAYMENT"
    );
    let r = c
        .post(format!("{admin}/orders/{order_id}/payment_status"))
        .json(&json!({"status": "PAID"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(sb.ecwid_order(&order_id).unwrap()["paymentStatus"], "PAID");
    let r = c
        .post(format!("{admin}/orders"))
        .json(&json!({"items": [{"sku": "NOPE", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // A signed webhook, delivered by the sandbox.
    let (url, seen) = receiver().await;
    let r: Value = c
        .post(format!("{admin}/webhooks/order"))
        .json(&json!({"eventType": "order.updated", "orderId": order_id, "old": "AWAITING_PAYMENT", "new": "PAID", "deliverTo": url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["orderId"], json!(order_id));
    assert_eq!(
        r["signature"],
        json!(sign_webhook(
            &sb.config().webhook_client_secret,
            body["eventCreated"].as_i64().unwrap(),
            body["eventId"].as_str().unwrap()
        ))
    );
    assert_eq!(r["deliveredStatus"], 200);
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Faults.
    let r = c
        .post(format!("{admin}/faults"))
        .json(&json!({"route": "LsAny", "kind": {"Status": 503}, "times": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(sb.faults().len(), 1);
    c.delete(format!("{admin}/faults")).send().await.unwrap();
    assert!(sb.faults().is_empty());

    // Products, stock, POS sales, customers.
    let r: Value = c
        .post(format!("{admin}/products?only=lightspeed"))
        .json(&json!({"sku": "LS-ONLY", "name": "Only in LS", "price_excl_tax": "3.50", "tax_percent": 20, "ls_stock": 4}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["ecwid_product_id"].is_null());
    let ls_only = r["ls_product_id"].as_str().unwrap().to_string();
    assert_eq!(sb.inventory_level(&ls_only, &ids.outlet_id), dec!(4));
    let r: Value = c
        .post(format!("{admin}/inventory"))
        .json(&json!({"product_id": ls_only, "level": 9}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["version"].as_u64().is_some());
    assert_eq!(sb.inventory_level(&ls_only, &ids.outlet_id), dec!(9));
    let r: Value = c
        .post(format!("{admin}/pos_sales"))
        .json(&json!({"product_id": ls_only, "quantity": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["saleId"].is_string());
    assert_eq!(sb.inventory_level(&ls_only, &ids.outlet_id), dec!(7));
    c.post(format!("{admin}/ecwid_stock"))
        .json(&json!({"product_id": ids.mug.ecwid_id(), "quantity": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(sb.ecwid_stock(ids.mug.ecwid_id(), None), Some(dec!(3)));
    c.post(format!("{admin}/customers"))
        .json(&json!({"first_name": "Di", "last_name": "Ox", "email": "di@example.com"}))
        .send()
        .await
        .unwrap();

    // The whole state.
    let state: Value = c
        .get(format!("{admin}/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["seed_ids"]["register_id"], json!(ids.register_id));
    assert_eq!(state["sales"].as_array().unwrap().len(), 1);
    assert_eq!(state["customers"].as_array().unwrap().len(), 2);
    assert!(state["counters"]["faults_fired"].is_u64());
    assert!(
        state["ls_inventory"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["product_id"] == json!(ls_only) && i["inventory_level"] == json!(7))
    );
    assert!(
        state["ecwid_stock"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["sku"] == "MUG-001" && s["quantity"] == json!(3))
    );
    assert_eq!(state["ecwid_orders"].as_array().unwrap().len(), 1);
}
