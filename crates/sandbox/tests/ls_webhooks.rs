//! Lightspeed X-Series webhooks: registrations on both generations (validated against the
//! published `webhooks.json` fragment), and deliveries to a receiver on 127.0.0.1: form-encoded,
//! signed, one per changed record, retried, lost or late on demand.

mod common;

use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::openapi::Spec;
use common::receiver::{expected_signature, receiver};
use common::*;
use els_sandbox::{OAuthMode, ProductSpec, Sandbox, SandboxConfig};
use reqwest::Method;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

static WEBHOOKS: LazyLock<Spec> = LazyLock::new(|| {
    Spec::parse(
        "2026-07/webhooks.json",
        include_str!("fixtures/lightspeed/2026-07/webhooks.json"),
    )
});

const SETTLE: Duration = Duration::from_secs(10);

fn dec_of(v: &Value) -> Decimal {
    v.to_string().parse().expect("a number")
}

async fn settle(sb: &Sandbox) {
    assert!(sb.ls_webhooks_settled(SETTLE).await, "deliveries pending");
}

async fn register(sb: &Sandbox, generation: &str, kind: &str, url: &str) -> (u16, Value) {
    ls_post(
        sb,
        &format!("/api/{generation}/webhooks"),
        &json!({"type": kind, "url": url, "active": true}),
    )
    .await
}

async fn call(sb: &Sandbox, method: Method, path: &str, body: Option<&Value>) -> (u16, String) {
    let r = ls(sb, method, path, body).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

// ---------------------------------------------------------------------------------------------
// Registrations

#[tokio::test]
async fn registrations_on_both_generations_follow_the_published_operations() {
    let sb = sandbox().await;
    let ids = sb.ids();

    // post-webhooks: 201 {data: Webhook}.
    let (status, created) = register(
        &sb,
        "2026-07",
        "inventory.update",
        "https://hooks.example/a",
    )
    .await;
    assert_eq!(status, 201, "{created}");
    WEBHOOKS.assert_valid("/webhooks", "post", "201", &created);
    let first = created["data"].clone();
    assert_eq!(first["type"], "inventory.update");
    assert_eq!(first["url"], "https://hooks.example/a");
    assert_eq!(first["active"], true);
    assert_eq!(first["retailer_id"], json!(ids.retailer_id));
    let first_id = first["id"].as_str().unwrap().to_string();

    // The same type and URL again, on either generation: 409, nothing added.
    for generation in ["2026-07", "2.0"] {
        let (status, body) = register(
            &sb,
            generation,
            "inventory.update",
            "https://hooks.example/a",
        )
        .await;
        assert_eq!(status, 409, "{generation}: {body}");
        WEBHOOKS.assert_valid("/webhooks", "post", "409", &body);
    }
    assert_eq!(sb.ls_webhooks().len(), 1);

    // The legacy registration (same shapes, ASSUMPTION), another type on the same URL.
    let (status, legacy) = register(&sb, "2.0", "product.update", "https://hooks.example/a").await;
    assert_eq!(status, 201, "{legacy}");
    WEBHOOKS.assert_valid("/webhooks", "post", "201", &legacy);
    let legacy_id = legacy["data"]["id"].as_str().unwrap().to_string();

    // get-webhooks on both: the two registrations.
    for generation in ["2026-07", "2.0"] {
        let (status, list) = ls_get(&sb, &format!("/api/{generation}/webhooks")).await;
        assert_eq!(status, 200);
        WEBHOOKS.assert_valid("/webhooks", "get", "200", &list);
        let listed: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, [first_id.as_str(), legacy_id.as_str()]);
    }
    let held = sb.ls_webhooks();
    assert_eq!(held[1].webhook_type, "product.update");
    assert_eq!(held[1].retailer_id, ids.retailer_id);

    // get-webhooks-id.
    let (status, one) = ls_get(&sb, &format!("/api/2026-07/webhooks/{legacy_id}")).await;
    assert_eq!(status, 200);
    WEBHOOKS.assert_valid("/webhooks/{webhookId}", "get", "200", &one);
    assert_eq!(one["data"], legacy["data"]);

    // put-webhooks-id: changed; onto the other registration's type and URL: 409.
    let (status, text) = call(
        &sb,
        Method::PUT,
        &format!("/api/2026-07/webhooks/{legacy_id}"),
        Some(&json!({"type": "product.update", "url": "https://hooks.example/b", "active": false})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let updated: Value = serde_json::from_str(&text).unwrap();
    WEBHOOKS.assert_valid("/webhooks/{webhookId}", "put", "200", &updated);
    assert_eq!(updated["data"]["url"], "https://hooks.example/b");
    assert!(!sb.ls_webhooks()[1].active);
    let (status, _) = call(
        &sb,
        Method::PUT,
        &format!("/api/2.0/webhooks/{legacy_id}"),
        Some(
            &json!({"type": "inventory.update", "url": "https://hooks.example/a", "active": true}),
        ),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(sb.ls_webhooks()[1].url, "https://hooks.example/b");

    // delete-webhooks-webhookId: 200 without a body, then 404 everywhere.
    let (status, text) = call(
        &sb,
        Method::DELETE,
        &format!("/api/2.0/webhooks/{first_id}"),
        None,
    )
    .await;
    assert_eq!((status, text.as_str()), (200, ""));
    assert_eq!(sb.ls_webhooks().len(), 1);
    for (method, path, schema_method) in [
        (Method::GET, "/api/2026-07/webhooks/", "get"),
        (Method::DELETE, "/api/2026-07/webhooks/", "delete"),
        (Method::PUT, "/api/2026-07/webhooks/", "put"),
    ] {
        let body = json!({"type": "sale.update", "url": "https://x.example", "active": true});
        let (status, text) = call(&sb, method, &format!("{path}{first_id}"), Some(&body)).await;
        assert_eq!(status, 404, "{schema_method}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        WEBHOOKS.assert_valid("/webhooks/{webhookId}", schema_method, "404", &body);
    }

    // Without the token: refused like every Lightspeed route, nothing added.
    let r = client()
        .post(format!("{}/api/2026-07/webhooks", sb.lightspeed_url()))
        .json(&json!({"type": "sale.update", "url": "https://x.example", "active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(sb.ls_webhooks().len(), 1);
}

#[tokio::test]
async fn a_body_outside_webhook_request_is_refused_with_a_400() {
    let sb = sandbox().await;
    let good =
        json!({"type": "inventory.update", "url": "https://hooks.example/x", "active": true});
    let without = |key: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(key);
        b
    };
    let with = |key: &str, v: Value| {
        let mut b = good.clone();
        b[key] = v;
        b
    };
    let bad = [
        (without("type"), "\"type\""),
        (without("url"), "\"url\""),
        (without("active"), "\"active\""),
        (with("type", json!("inventory.updated")), "/type"),
        (with("type", json!("order.created")), "/type"),
        (with("active", json!("yes")), "/active"),
        (with("url", json!("ab")), "/url"),
        (with("url", json!("not a url")), "/url"),
        (with("url", json!("ftp://hooks.example/x")), "/url"),
        (json!([]), "/"),
    ];
    for generation in ["2026-07", "2.0"] {
        for (body, names) in &bad {
            let (status, answer) = ls_post(&sb, &format!("/api/{generation}/webhooks"), body).await;
            assert_eq!(status, 400, "{generation} {body}: {answer}");
            let details = answer["details"].as_str().unwrap_or_default();
            assert!(details.contains(names), "{body}: {details}");
        }
    }
    assert!(sb.ls_webhooks().is_empty());
    // Every type the spec lists is taken.
    for kind in [
        "sale.update",
        "product.update",
        "customer.update",
        "inventory.update",
        "register_closure.create",
        "consignment.send",
        "consignment.receive",
    ] {
        let (status, answer) = register(&sb, "2026-07", kind, "http://127.0.0.1:9/h").await;
        assert_eq!(status, 201, "{kind}: {answer}");
    }
    assert_eq!(sb.ls_webhooks().len(), 7);
}

// ---------------------------------------------------------------------------------------------
// Deliveries

#[tokio::test]
async fn a_level_change_posts_one_signed_form_encoded_inventory_update() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let rx = receiver(200, Duration::ZERO).await;
    let (status, _) = register(&sb, "2026-07", "inventory.update", &rx.url).await;
    assert_eq!(status, 201);

    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 7);
    settle(&sb).await;

    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    assert!(
        hit.content_type
            .starts_with("application/x-www-form-urlencoded"),
        "{}",
        hit.content_type
    );
    // The key: the OAuth app's client secret (the default app without OAuth mode).
    assert_eq!(
        hit.signature.as_deref(),
        Some(expected_signature(&OAuthMode::default().client_secret, &hit.body).as_str())
    );
    assert_eq!(sb.ls_webhook_secret(), OAuthMode::default().client_secret);
    let form = hit.form();
    assert_eq!(form["type"], "inventory.update");
    assert_eq!(form["retailer_id"], ids.retailer_id);
    assert_eq!(form["domain_prefix"], sb.config().ls_domain_prefix);
    assert!(form.contains_key("environment"));
    let payload = hit.payload();
    assert_eq!(payload["product_id"], json!(ids.mug.ls_id()));
    assert_eq!(payload["outlet_id"], json!(ids.outlet_id));
    assert_eq!(dec_of(&payload["inventory_level"]), dec!(7));
    assert_eq!(
        payload["version"].as_u64(),
        sb.inventory_version(ids.mug.ls_id(), &ids.outlet_id)
    );
    for key in ["id", "reorder_point", "reorder_amount"] {
        assert!(payload.get(key).is_some(), "{key}: {payload}");
    }
    let c = sb.counters();
    assert_eq!(
        (
            c.ls_webhook_deliveries,
            c.ls_webhook_failures,
            c.ls_webhook_attempts
        ),
        (1, 0, 1)
    );

    // In OAuth mode, the key is that app's client secret.
    sb.enable_ls_oauth(OAuthMode {
        client_secret: "another-app-secret".into(),
        ..OAuthMode::default()
    });
    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 8);
    settle(&sb).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 2);
    assert_eq!(
        hits[1].signature.as_deref(),
        Some(expected_signature("another-app-secret", &hits[1].body).as_str())
    );
    assert_eq!(dec_of(&hits[1].payload()["inventory_level"]), dec!(8));
}

#[tokio::test]
async fn every_stock_path_notifies_with_the_committed_level() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let rx = receiver(200, Duration::ZERO).await;
    let idle = receiver(200, Duration::ZERO).await;
    sb.add_ls_webhook("inventory.update", &rx.url, true)
        .unwrap();
    // Inactive, and another type: neither gets stock changes.
    sb.add_ls_webhook("inventory.update", &idle.url, false)
        .unwrap();
    sb.add_ls_webhook("sale.update", &idle.url, true).unwrap();
    let (mug, outlet) = (ids.mug.ls_id(), ids.outlet_id.as_str());
    let level = |payload: &Value| dec_of(&payload["inventory_level"]);
    let mug_here = |p: &&Value| p["product_id"] == json!(mug) && p["outlet_id"] == json!(outlet);

    // A legacy sale through the API (2 mugs), then a 2026-07 one (1 tote), a POS sale (3
    // mugs), a void of the first sale: one delivery each, with the level after it.
    let start = sb.inventory_level(mug, outlet);
    let (status, sale) = ls_post(
        &sb,
        "/api/register_sales",
        &closed_sale(&sb, mug, 2, "12", "1.2", &ids.tax_10_id),
    )
    .await;
    assert_eq!(status, 200, "{sale}");
    settle(&sb).await;
    let (status, dated) = ls_post(
        &sb,
        "/api/2026-07/sales",
        &dated_sale(&sb, ids.tote.ls_id(), 1, "15", "3", &ids.tax_20_id),
    )
    .await;
    assert_eq!(status, 200, "{dated}");
    settle(&sb).await;
    sb.pos_sale(mug, 3, &ids.register_id);
    settle(&sb).await;
    sb.void_sale(sale["register_sale"]["id"].as_str().unwrap())
        .unwrap();
    settle(&sb).await;

    let all = rx.payloads("inventory.update");
    assert_eq!(all.len(), 4, "{all:#?}");
    let mugs: Vec<Decimal> = all.iter().filter(mug_here).map(level).collect();
    assert_eq!(mugs, [start - dec!(2), start - dec!(5), start - dec!(3)]);
    assert_eq!(mugs[2], sb.inventory_level(mug, outlet));
    let tote: Vec<&Value> = all
        .iter()
        .filter(|p| p["product_id"] == json!(ids.tote.ls_id()))
        .collect();
    assert_eq!(tote.len(), 1);
    assert_eq!(level(tote[0]), sb.inventory_level(ids.tote.ls_id(), outlet));
    assert!(idle.hits().is_empty(), "{:?}", idle.hits());
    assert_eq!(sb.counters().ls_webhook_deliveries, 4);
}

#[tokio::test]
async fn a_new_product_notifies_product_update_and_its_records() {
    let sb = sandbox().await;
    let rx = receiver(200, Duration::ZERO).await;
    sb.add_ls_webhook("product.update", &rx.url, true).unwrap();
    sb.add_ls_webhook("inventory.update", &rx.url, true)
        .unwrap();

    let cap = sb.add_ls_product_only(ProductSpec {
        sku: "CAP-001".into(),
        name: "Cap".into(),
        price_excl_tax: dec!(8.5),
        ls_stock: dec!(5),
        ls_stock_other: dec!(2),
        ..ProductSpec::default()
    });
    settle(&sb).await;
    let products = rx.payloads("product.update");
    assert_eq!(products.len(), 1, "{products:#?}");
    assert_eq!(products[0]["id"], json!(cap.ls_id()));
    assert_eq!(products[0]["sku"], "CAP-001");
    let mut levels: Vec<Decimal> = rx
        .payloads("inventory.update")
        .iter()
        .map(|p| dec_of(&p["inventory_level"]))
        .collect();
    levels.sort();
    assert_eq!(levels, [dec!(2), dec!(5)], "one per outlet");

    sb.delete_ls_product(cap.ls_id()).unwrap();
    settle(&sb).await;
    let products = rx.payloads("product.update");
    assert_eq!(products.len(), 2);
    assert!(products[1]["deleted_at"].is_string(), "{}", products[1]);
}

#[tokio::test]
async fn the_change_does_not_wait_for_its_delivery() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let slow = receiver(200, Duration::from_secs(3)).await;
    sb.add_ls_webhook("inventory.update", &slow.url, true)
        .unwrap();
    let t0 = Instant::now();
    let (status, _) = ls_post(
        &sb,
        "/api/register_sales",
        &closed_sale(&sb, ids.mug.ls_id(), 1, "12", "1.2", &ids.tax_10_id),
    )
    .await;
    assert_eq!(status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The state stays usable while the delivery is in flight.
    let (status, _) = ls_get(&sb, "/api/2.0/inventory").await;
    assert_eq!(status, 200);
    settle(&sb).await;
    assert_eq!(slow.hits().len(), 1);
    assert_eq!(sb.counters().ls_webhook_deliveries, 1);
}

#[tokio::test]
async fn dropped_deliveries_arrive_nowhere_and_late_ones_arrive_late() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let rx = receiver(200, Duration::ZERO).await;
    sb.add_ls_webhook("inventory.update", &rx.url, true)
        .unwrap();

    sb.set_ls_webhook_drop(true);
    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 11);
    sb.pos_sale(ids.tote.ls_id(), 1, &ids.register_id);
    settle(&sb).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.hits().is_empty(), "{:?}", rx.hits());
    let c = sb.counters();
    assert_eq!((c.ls_webhook_dropped, c.ls_webhook_attempts), (2, 0));

    sb.set_ls_webhook_drop(false);
    sb.set_ls_webhook_delay(Duration::from_secs(1));
    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 12);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.hits().is_empty(), "still delayed");
    settle(&sb).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(dec_of(&hits[0].payload()["inventory_level"]), dec!(12));

    // The same switches over the admin API.
    let admin = |path: &str| format!("{}/lightspeed/webhooks{path}", sb.admin_url());
    let r = client()
        .post(admin("/delivery"))
        .json(&json!({"drop": true, "delay_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 13);
    settle(&sb).await;
    assert_eq!(rx.hits().len(), 1);
    assert_eq!(sb.counters().ls_webhook_dropped, 3);
    let listed: Value = client()
        .get(admin(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["webhooks"][0]["url"], json!(rx.url));
    assert_eq!(listed["pending"], 0);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_then_counted_as_a_failure() {
    let sb = sandbox_with(SandboxConfig {
        ls_webhook_retries: 2,
        ls_webhook_retry_delay: Duration::from_millis(100),
        ..SandboxConfig::default()
    })
    .await;
    let ids = sb.ids();
    let rx = receiver(500, Duration::ZERO).await;
    sb.add_ls_webhook("inventory.update", &rx.url, true)
        .unwrap();

    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 4);
    settle(&sb).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 3, "the first attempt and 2 retries");
    assert!(hits.iter().all(|h| h.body == hits[0].body), "same body");
    let c = sb.counters();
    assert_eq!(
        (
            c.ls_webhook_deliveries,
            c.ls_webhook_failures,
            c.ls_webhook_attempts
        ),
        (0, 1, 3)
    );

    // A receiver that comes back during the retries (a 503, then a 204): delivered.
    rx.script.lock().unwrap().push_back(503);
    rx.status.store(204, Ordering::SeqCst);
    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 5);
    settle(&sb).await;
    let c = sb.counters();
    assert_eq!(
        (
            c.ls_webhook_deliveries,
            c.ls_webhook_failures,
            c.ls_webhook_attempts
        ),
        (1, 1, 5)
    );
    assert_eq!(rx.hits().len(), 5);

    // Nobody listening at all: a failure too.
    sb.add_ls_webhook("inventory.update", "http://127.0.0.1:9/none", true)
        .unwrap();
    rx.status.store(200, Ordering::SeqCst);
    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 6);
    settle(&sb).await;
    let c = sb.counters();
    assert_eq!((c.ls_webhook_deliveries, c.ls_webhook_failures), (2, 2));
}
