//! Secrets and PII never reach the logs (invariant 7). The whole flow runs with JSON logs
//! captured at TRACE level; the capture must hold no token, no client secret and no full
//! email, and every warning or error about an order must name the order.

use els_core::ledger::OrderState;
use els_sandbox::{Fault, FaultKind, OrderItemSpec, OrderSpec, Route};
use els_tests::harness::Harness;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flow_logs_no_secret_and_no_email() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_current_span(true)
        .with_writer(move || writer.clone())
        .init();

    let h = Harness::start().await;
    let email = "Secret.Buyer@Example.com";
    let order = |sku: &str| OrderSpec {
        items: vec![OrderItemSpec::new(sku, 1)],
        email: email.into(),
        first_name: "Secret".into(),
        last_name: "Buyer".into(),
        ..OrderSpec::default()
    };
    // A posted order with a new customer, after a 429 and a dropped connection.
    h.sandbox.inject(Fault::once(
        Route::LsPostSale,
        FaultKind::RateLimit {
            retry_after: Duration::from_secs(1),
        },
    ));
    h.sandbox
        .inject(Fault::once(Route::EcwidGetOrder, FaultKind::Status(500)));
    let posted = h.sandbox.place_order(order("MUG-001"));
    assert_eq!(
        h.send_webhook("order.created", &posted, None, "PAID").await,
        200
    );
    h.wait_for(&posted, OrderState::Posted, Duration::from_secs(10))
        .await;
    // A parked order.
    h.sandbox.add_ecwid_product_only(els_sandbox::ProductSpec {
        sku: "NOT-IN-LS".into(),
        name: "x".into(),
        price_excl_tax: rust_decimal::Decimal::ONE,
        ecwid_stock: Some(rust_decimal::Decimal::ONE),
        ..els_sandbox::ProductSpec::default()
    });
    let parked = h.sandbox.place_order(order("NOT-IN-LS"));
    assert_eq!(
        h.send_webhook("order.created", &parked, None, "PAID").await,
        200
    );
    h.wait_for(&parked, OrderState::Parked, Duration::from_secs(10))
        .await;
    // A forged webhook.
    let hook = h
        .sandbox
        .order_webhook("order.created", &posted, None, "PAID");
    let status = reqwest::Client::new()
        .post(&h.webhook_url)
        .header("X-Ecwid-Webhook-Signature", "forged")
        .body(hook.body.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 10, "the flow was logged:\n{logs}");
    let cfg = h.sandbox.config();
    for secret in [
        cfg.ecwid_token.as_str(),
        cfg.ls_token.as_str(),
        cfg.webhook_client_secret.as_str(),
        hook.signature.as_str(),
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
    for pii in [email, &email.to_lowercase(), "Secret.Buyer", "secret.buyer"] {
        assert!(!logs.contains(pii), "an email reached the logs: {pii}");
    }
    assert!(
        logs.contains("S***@example.com") || logs.contains("s***@example.com"),
        "emails are masked, not dropped"
    );
    // Every warning or error about an order names it.
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON log lines");
        let level = v["level"].as_str().unwrap_or("");
        let about_order =
            line.contains(&posted) || line.contains(&parked) || line.contains("order");
        if (level == "WARN" || level == "ERROR")
            && about_order
            && !line.contains("webhook rejected")
        {
            let named = v["fields"]["order_id"].is_string() || v["span"]["order_id"].is_string();
            assert!(named, "a warning about an order does not name it: {line}");
        }
    }
}
