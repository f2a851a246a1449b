//! Rate limits (scaled windows) and injected faults.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use els_sandbox::{Fault, FaultKind, Route, SandboxConfig};
use reqwest::Method;
use rust_decimal_macros::dec;
use serde_json::json;

#[tokio::test]
async fn lightspeed_rate_limit_with_a_scaled_window() {
    let sb = sandbox_with(SandboxConfig {
        ls_rate_limit: 5,
        ls_rate_window: Duration::from_millis(1500),
        ..SandboxConfig::default()
    })
    .await;
    let started = Instant::now();
    for i in 0..5 {
        let r = ls(&sb, Method::GET, "/api/2.0/outlets", None).await;
        assert_eq!(r.status().as_u16(), 200, "request {i}");
        assert_eq!(r.headers()["X-RateLimit-Limit"], "5");
        assert_eq!(
            r.headers()["X-RateLimit-Remaining"].to_str().unwrap(),
            (4 - i).to_string()
        );
        // Only the documented headers: no reset header unless asked for.
        assert!(r.headers().get("X-RateLimit-Reset").is_none());
    }
    let r = ls(&sb, Method::GET, "/api/2.0/outlets", None).await;
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["X-RateLimit-Limit"], "5");
    assert_eq!(r.headers()["X-RateLimit-Remaining"], "0");
    let retry_after = r.headers()["Retry-After"].to_str().unwrap().to_string();
    let retry_at =
        httpdate::parse_http_date(&retry_after).expect("Retry-After is an RFC 1123 date");
    assert!(retry_at > SystemTime::now() - Duration::from_secs(1));
    assert!(retry_at <= SystemTime::now() + Duration::from_secs(3));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "Too Many Requests", "message": "Rate limiting enforced"})
    );
    assert_eq!(sb.counters().ls_rate_limited, 1);

    // After the window (and the Retry-After date), requests work again.
    let wait = retry_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .max(Duration::from_millis(1500).saturating_sub(started.elapsed()));
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    let r = ls(&sb, Method::GET, "/api/2.0/outlets", None).await;
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn the_undocumented_reset_header_is_sent_only_when_asked_for() {
    let sb = sandbox_with(SandboxConfig {
        ls_rate_limit: 2,
        ls_rate_window: Duration::from_secs(3),
        ls_rate_limit_reset_header: true,
        ..SandboxConfig::default()
    })
    .await;
    let sent = SystemTime::now();
    for i in 0..3 {
        let r = ls(&sb, Method::GET, "/api/2.0/outlets", None).await;
        let reset = r.headers()["X-RateLimit-Reset"].to_str().unwrap();
        let reset_at = httpdate::parse_http_date(reset).expect("X-RateLimit-Reset is an HTTP date");
        // When the first request leaves the window, rounded up to a whole second.
        assert!(
            reset_at >= sent + Duration::from_secs(2),
            "request {i}: {reset}"
        );
        assert!(
            reset_at <= SystemTime::now() + Duration::from_secs(4),
            "request {i}: {reset}"
        );
        assert_eq!(r.status().as_u16(), if i < 2 { 200 } else { 429 });
    }
}

#[tokio::test]
async fn ecwid_rate_limit_answers_429_with_seconds() {
    let sb = sandbox_with(SandboxConfig {
        ecwid_rate_limit: 2,
        ecwid_rate_window: Duration::from_millis(800),
        ..SandboxConfig::default()
    })
    .await;
    for _ in 0..2 {
        let (status, _) = ecwid(&sb, Method::GET, "/profile", None).await;
        assert_eq!(status, 200);
    }
    let r = client()
        .get(format!("{}/1003/profile", sb.ecwid_api_url()))
        .bearer_auth(&sb.config().ecwid_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["Retry-After"], "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "RATE_LIMITED");
    tokio::time::sleep(Duration::from_millis(850)).await;
    let (status, _) = ecwid(&sb, Method::GET, "/profile", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn drop_after_commit_closes_the_connection_but_keeps_the_sale() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    sb.inject(Fault::once(Route::LsPostSale, FaultKind::DropAfterCommit));
    let body = closed_sale(&sb, &mug, 2, "12", "1.2", &ids.tax_10_id);
    let result = client()
        .post(format!("{}/api/register_sales", sb.lightspeed_url()))
        .bearer_auth(&sb.config().ls_token)
        .json(&body)
        .send()
        .await;
    let err = result.expect_err("no HTTP response at all");
    assert!(
        err.status().is_none(),
        "a connection error, not an HTTP status: {err:?}"
    );
    assert!(!err.is_timeout());

    // The sale was committed and took stock.
    assert_eq!(sb.sale_count(), 1);
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));
    assert_eq!(sb.counters().faults_fired, 1);
    assert!(sb.faults().is_empty());

    // The client can find it by invoice number before posting again.
    let (status, found) = ls_get(
        &sb,
        "/api/2.0/search?type=sales&invoice_number=ECWID-TEST-1",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn drop_after_commit_waits_for_a_successful_post() {
    let sb = sandbox().await;
    let ids = sb.ids();
    sb.inject(Fault::once(Route::LsPostSale, FaultKind::DropAfterCommit));
    let mut bad = closed_sale(&sb, ids.mug.ls_id(), 1, "12", "1.2", &ids.tax_10_id);
    bad["register_sale_payments"][0]["amount"] = json!(1);
    let (status, _) = ls_post(&sb, "/api/register_sales", &bad).await;
    assert_eq!(status, 400, "a rejected sale is answered normally");
    assert_eq!(sb.faults().len(), 1, "the fault stays armed");
    let good = closed_sale(&sb, ids.mug.ls_id(), 1, "12", "1.2", &ids.tax_10_id);
    let result = client()
        .post(format!("{}/api/register_sales", sb.lightspeed_url()))
        .bearer_auth(&sb.config().ls_token)
        .json(&good)
        .send()
        .await;
    assert!(result.is_err(), "the successful post loses its answer");
    assert!(sb.faults().is_empty());
    assert_eq!(sb.sale_count(), 1);
}

#[tokio::test]
async fn status_delay_and_rate_limit_faults() {
    let sb = sandbox().await;
    let ids = sb.ids();

    // 503 twice on sale posts, nothing created.
    sb.inject(Fault::times(Route::LsPostSale, FaultKind::Status(503), 2));
    let body = closed_sale(&sb, ids.mug.ls_id(), 1, "12", "1.2", &ids.tax_10_id);
    for _ in 0..2 {
        let r = ls(&sb, Method::POST, "/api/register_sales", Some(&body)).await;
        assert_eq!(r.status().as_u16(), 503);
        assert!(r.headers().contains_key("X-RateLimit-Remaining"));
    }
    assert_eq!(sb.sale_count(), 0);
    let (status, _) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 200);
    assert_eq!(sb.sale_count(), 1);

    // A search fault does not touch other routes.
    sb.inject(Fault::once(Route::LsSearch, FaultKind::Status(500)));
    let (status, _) = ls_get(&sb, "/api/2.0/outlets").await;
    assert_eq!(status, 200);
    let (status, body) = ls_get(&sb, "/api/2.0/search?type=sales").await;
    assert_eq!(status, 500, "{body}");

    // An injected 429 looks like the real one.
    sb.inject(Fault::once(
        Route::LsAny,
        FaultKind::RateLimit {
            retry_after: Duration::from_secs(2),
        },
    ));
    let r = ls(&sb, Method::GET, "/api/2.0/outlets", None).await;
    assert_eq!(r.status().as_u16(), 429);
    let retry = r.headers()["Retry-After"].to_str().unwrap();
    assert!(httpdate::parse_http_date(retry).unwrap() > SystemTime::now());

    // A delay: the request still executes, the answer comes late.
    sb.inject(Fault::once(
        Route::LsAny,
        FaultKind::Delay(Duration::from_millis(300)),
    ));
    let t = Instant::now();
    let (status, _) = ls_get(&sb, "/api/2.0/outlets").await;
    assert_eq!(status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    // Ecwid: a 5xx on order GETs only.
    let order = sb.place_order(els_sandbox::OrderSpec {
        items: vec![els_sandbox::OrderItemSpec::new("MUG-001", 1)],
        ..Default::default()
    });
    sb.inject(Fault::once(Route::EcwidGetOrder, FaultKind::Status(502)));
    let (status, _) = ecwid(&sb, Method::GET, "/profile", None).await;
    assert_eq!(status, 200);
    let (status, _) = ecwid(&sb, Method::GET, &format!("/orders/{order}"), None).await;
    assert_eq!(status, 502);
    let (status, body) = ecwid(&sb, Method::GET, &format!("/orders/{order}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], json!(order));

    sb.inject(Fault::times(Route::EcwidAny, FaultKind::Status(500), 5));
    sb.clear_faults();
    let (status, _) = ecwid(&sb, Method::GET, "/profile", None).await;
    assert_eq!(status, 200);
    assert_eq!(sb.counters().faults_fired, 6);
}

#[test]
fn fault_json_shape() {
    let f = Fault::once(
        Route::LsPostSale,
        FaultKind::Delay(Duration::from_millis(1500)),
    );
    assert_eq!(
        serde_json::to_value(&f).unwrap(),
        json!({"route": "LsPostSale", "kind": {"Delay": 1500}, "times": 1})
    );
    let f: Fault = serde_json::from_value(
        json!({"route": "EcwidAny", "kind": {"RateLimit": {"retry_after": 2000}}}),
    )
    .unwrap();
    assert_eq!(f.times, 1);
    assert_eq!(
        f.kind,
        FaultKind::RateLimit {
            retry_after: Duration::from_secs(2)
        }
    );
    let f: Fault = serde_json::from_value(
        json!({"route": "LsPostSale", "kind": "DropAfterCommit", "times": 3}),
    )
    .unwrap();
    assert_eq!(f.kind, FaultKind::DropAfterCommit);
    let f: Fault =
        serde_json::from_value(json!({"route": "LsSearch", "kind": {"Status": 503}})).unwrap();
    assert_eq!(f.kind, FaultKind::Status(503));
}
