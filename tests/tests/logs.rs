//! Secrets and PII never reach the logs (invariant 7). The whole flow runs with JSON logs
//! captured at TRACE level: a posted order with a new customer (after a 429 and an Ecwid
//! 500, so it is retried), a parked order, a forged webhook, a replayed webhook with an
//! altered body, an inventory mirror run, and two Lightspeed OAuth refreshes (near expiry,
//! and after a 401). The capture must hold no token, no client
//! secret and no full email (every email is masked like `s***@example.com`), and every
//! warning or error emitted while an order is worked, or about an order, must name it.

use els_cli::ops;
use els_cli::sandbox_setup::lightspeed_url_template;
use els_core::auth::{AuthConfig, AuthenticatedLightspeed};
use els_core::ledger::OrderState;
use els_core::poster::{PostOutcome, PosterConfig, SalePoster};
use els_core::{OrderMessage, Secret};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::LightspeedClient;
use els_lightspeed::oauth::{LightspeedTokenClient, OAuthCredentials};
use els_sandbox::{Fault, FaultKind, OAuthMode, OrderItemSpec, OrderSpec, Route, SandboxConfig};
use els_store_sqlite::SqliteStore;
use els_tests::harness::Harness;
use serde_json::Value;
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

/// Every value that must never appear in a log line, with what it is. Add new secrets here
/// (the Lightspeed OAuth client secret, access and refresh tokens, ...).
fn forbidden_secrets(cfg: &SandboxConfig) -> Vec<(&'static str, String)> {
    vec![
        ("the Ecwid store token", cfg.ecwid_token.clone()),
        ("the Lightspeed token", cfg.ls_token.clone()),
        ("the Ecwid client secret", cfg.webhook_client_secret.clone()),
    ]
}

type OAuthLightspeed =
    AuthenticatedLightspeed<LightspeedClient, SqliteStore, LightspeedTokenClient, TokioClock>;

/// A poster whose Lightspeed client refreshes OAuth tokens (the harness's own worker uses
/// the sandbox's personal token).
fn oauth_poster(
    h: &Harness,
    mode: &OAuthMode,
) -> SalePoster<SqliteStore, EcwidClient, OAuthLightspeed, TokioClock> {
    let timeout = Duration::from_secs(5);
    let template = lightspeed_url_template(&h.sandbox);
    let lightspeed = AuthenticatedLightspeed::new(
        LightspeedClient::new(template.clone(), timeout).unwrap(),
        h.store.clone(),
        LightspeedTokenClient::new(
            reqwest::Client::builder().timeout(timeout).build().unwrap(),
            template,
            Some(OAuthCredentials {
                client_id: mode.client_id.clone(),
                client_secret: Secret::new(mode.client_secret.clone()),
            }),
        ),
        TokioClock,
        AuthConfig::default(),
    );
    SalePoster::new(
        h.store.clone(),
        EcwidClient::new(h.sandbox.ecwid_api_url(), timeout).unwrap(),
        lightspeed,
        TokioClock,
        PosterConfig::default(),
    )
}

/// The buyer's email as the orders carry it.
const EMAIL: &str = "Secret.Buyer@Example.com";

/// Warnings that are about no order: a webhook refused before anything in it is trusted.
const NOT_ABOUT_AN_ORDER: [&str; 1] = ["webhook rejected"];

/// The local part of every `local@domain` in `text` (characters an email's local part may
/// hold, read backwards from each `@`).
fn email_local_parts(text: &str) -> Vec<&str> {
    let is_local = |c: char| c.is_alphanumeric() || "._%+-*".contains(c);
    text.match_indices('@')
        .map(|(at, _)| {
            let before = &text[..at];
            let start = before
                .char_indices()
                .rev()
                .find(|(_, c)| !is_local(*c))
                .map_or(0, |(i, c)| i + c.len_utf8());
            &before[start..]
        })
        .collect()
}

/// Whether the event, or any span it was emitted in, carries an `order_id`.
fn names_an_order(event: &Value) -> bool {
    let has = |v: &Value| v["order_id"].as_str().is_some_and(|id| !id.is_empty());
    has(&event["fields"])
        || has(&event["span"])
        || event["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(has))
}

/// Whether the event was emitted while an order was worked (inside the worker's `order`
/// span, or any span that names an order).
fn inside_order_processing(event: &Value) -> bool {
    event["spans"].as_array().is_some_and(|spans| {
        spans
            .iter()
            .any(|s| s["name"] == "order" || s.get("order_id").is_some())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flow_logs_no_secret_and_no_email() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .init();

    let h = Harness::start().await;
    let order = |sku: &str| OrderSpec {
        items: vec![OrderItemSpec::new(sku, 1)],
        email: EMAIL.into(),
        first_name: "Secret".into(),
        last_name: "Buyer".into(),
        ..OrderSpec::default()
    };
    // A posted order with a new customer, retried after a 429 and an Ecwid 500.
    h.sandbox.inject(Fault::once(
        Route::LsPostSale,
        FaultKind::RateLimit {
            retry_after: Duration::from_secs(1),
        },
    ));
    h.sandbox
        .inject(Fault::once(Route::EcwidGetOrder, FaultKind::Status(500)));
    let posted = h.sandbox.place_order(order("MUG-001"));
    let posted_hook = h
        .sandbox
        .order_webhook("order.created", &posted, None, "PAID");
    assert_eq!(
        h.sandbox
            .deliver(&h.webhook_url, &posted_hook)
            .await
            .unwrap(),
        200
    );
    let entry = h
        .wait_for(&posted, OrderState::Posted, Duration::from_secs(10))
        .await;
    assert!(entry.attempts > 1, "the order was retried: {entry:?}");
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
    let http = reqwest::Client::new();
    let forged = h
        .sandbox
        .order_webhook("order.created", &posted, None, "PAID");
    let status = http
        .post(&h.webhook_url)
        .header("X-Ecwid-Webhook-Signature", "forged")
        .body(forged.body.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    // A replay: the posted order's signature on a body altered to name the parked order.
    let mut altered = posted_hook.json();
    altered["data"]["orderId"] = parked.clone().into();
    let answer: Value = http
        .post(&h.webhook_url)
        .header("X-Ecwid-Webhook-Signature", &posted_hook.signature)
        .body(serde_json::to_vec(&altered).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["outcome"], "replayed", "{answer}");
    // The inventory mirror.
    h.mirror_once().await;
    // Lightspeed OAuth: a token near expiry is refreshed before a sale, then a revoked one
    // after a 401; both rotations hand out new access and refresh tokens.
    let oauth = OAuthMode {
        expires_in_secs: 30,
        ..OAuthMode::default()
    };
    h.sandbox.enable_ls_oauth(oauth.clone());
    let mut conn = h.connection.clone();
    conn.lightspeed.access_token = Secret::new(oauth.access_token.clone());
    conn.lightspeed.refresh_token = Some(Secret::new(oauth.refresh_token.clone()));
    conn.lightspeed.expires_at = Some(chrono::Utc::now() + chrono::Duration::seconds(30));
    ops::upsert_connection(&h.store, conn).await.unwrap();
    let oauth_poster = oauth_poster(&h, &oauth);
    let mut oauth_tokens = vec![
        (
            "the Lightspeed OAuth client secret",
            oauth.client_secret.clone(),
        ),
        ("a Lightspeed access token", oauth.access_token.clone()),
        ("a Lightspeed refresh token", oauth.refresh_token.clone()),
    ];
    for (i, revoke) in [false, true].into_iter().enumerate() {
        if revoke {
            h.sandbox.revoke_ls_access_token();
        }
        let order_id = h.sandbox.place_order(order("MUG-001"));
        let message =
            OrderMessage::from_webhook(h.connection.store_id, order_id, format!("oauth-{i}"));
        let outcome = oauth_poster.post_paid_order(&message).await.unwrap();
        assert!(matches!(outcome, PostOutcome::Posted { .. }), "{outcome:?}");
        let pair = h.sandbox.ls_oauth_tokens().unwrap();
        oauth_tokens.push(("a Lightspeed access token", pair.access_token.clone()));
        oauth_tokens.push(("a Lightspeed refresh token", pair.refresh_token.clone()));
    }
    assert_eq!(
        h.sandbox.counters().ls_token_refreshes,
        2,
        "both refreshes ran"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let events: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON log lines"))
        .collect();
    assert!(events.len() > 10, "the flow was logged:\n{logs}");

    let mut secrets = forbidden_secrets(h.sandbox.config());
    secrets.push(("a webhook signature", posted_hook.signature.clone()));
    secrets.push(("a webhook signature", forged.signature.clone()));
    secrets.extend(oauth_tokens);
    for (what, secret) in &secrets {
        assert!(!secret.is_empty(), "{what} is set");
        assert!(!logs.contains(secret.as_str()), "{what} reached the logs");
    }

    for pii in [EMAIL, &EMAIL.to_lowercase(), "Secret.Buyer", "secret.buyer"] {
        assert!(!logs.contains(pii), "an email reached the logs: {pii}");
    }
    let locals = email_local_parts(&logs);
    assert!(
        !locals.is_empty(),
        "emails are masked, not dropped: no email in the logs"
    );
    for local in &locals {
        let mut chars = local.chars();
        let first = chars.next();
        assert!(
            first.is_some_and(|c| c != '*') && chars.as_str() == "***",
            "an email is not masked like s***@example.com: {local:?}@..."
        );
    }
    assert!(
        logs.to_lowercase().contains("s***@example.com"),
        "the buyer's email shows masked"
    );

    let warn_or_error = |e: &&Value| matches!(e["level"].as_str(), Some("WARN" | "ERROR"));
    let message = |e: &Value| e["fields"]["message"].as_str().unwrap_or("").to_string();
    // The flow produced the warnings it is meant to cover.
    let warnings: Vec<&Value> = events.iter().filter(warn_or_error).collect();
    let replay = warnings
        .iter()
        .find(|e| message(e).contains("replayed"))
        .expect("the replay is warned about");
    assert_eq!(replay["fields"]["event_id"], posted_hook.event_id.as_str());
    assert_eq!(replay["fields"]["order_id"], parked.as_str());
    assert!(
        warnings
            .iter()
            .any(|e| inside_order_processing(e) && names_an_order(e)),
        "the retried and parked orders logged warnings: {warnings:#?}"
    );
    // Every warning or error while an order is worked, or about an order, names it.
    for e in &warnings {
        let line = e.to_string();
        let text = line.to_lowercase();
        let exempt = NOT_ABOUT_AN_ORDER.iter().any(|m| message(e).contains(m));
        let about_order = inside_order_processing(e)
            || text.contains("order")
            || line.contains(&posted)
            || line.contains(&parked);
        if about_order && !exempt {
            assert!(
                names_an_order(e),
                "a warning about an order does not name it: {line}"
            );
        }
    }
}

#[test]
fn email_local_parts_finds_every_address() {
    assert_eq!(
        email_local_parts(r#"{"a":"s***@example.com","b":"to jane.doe+x@ex.org."}"#),
        vec!["s***", "jane.doe+x"]
    );
    assert!(email_local_parts("no address").is_empty());
}
