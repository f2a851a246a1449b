//! Lightspeed's stock webhooks, as a self-hosting merchant runs them: `els connect
//! --public-url` registers `inventory.update` and `product.update` with the retailer (the
//! sandbox, which then delivers them as Lightspeed does: form-encoded, signed, after the
//! change), and `els serve --live` with a schedule of an hour moves the Ecwid level within
//! seconds of each Lightspeed change. A reconnect replaces the registrations, and the old
//! URL's secret stops working.

mod common;

use common::{Merchant, connect_by_name_with, free_listen_addr, saved, serve_live_on};
use els_core::ls_webhooks::token_sha256;
use els_sandbox::{Sandbox, SandboxConfig};
use rust_decimal::Decimal;
use std::time::{Duration, Instant};

fn connect(sb: &Sandbox, m: &Merchant, db: &str, public_url: &str) -> String {
    connect_by_name_with(sb, m, db, &["--public-url", public_url])
}

/// The secret in a registered URL (its last path segment).
fn secret_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// A sandbox, its merchant, and a fresh state file (its directory lives as long as the
/// returned guard).
async fn merchant() -> (Sandbox, Merchant, tempfile::TempDir, String) {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let m = Merchant::of(&sb);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("els.sqlite").to_str().unwrap().to_string();
    (sb, m, dir, db)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lightspeed_stock_change_reaches_ecwid_in_seconds_not_on_the_schedule() {
    let (sb, m, _dir, db) = merchant().await;
    let db = db.as_str();
    let listen = free_listen_addr();
    let public = format!("http://{listen}");

    let out = connect(&sb, &m, db, &public);
    assert!(out.contains("Lightspeed webhooks"), "{out}");
    let hooks = sb.ls_webhooks();
    let mut types: Vec<&str> = hooks.iter().map(|h| h.webhook_type.as_str()).collect();
    types.sort();
    assert_eq!(types, ["inventory.update", "product.update"]);
    let url = hooks[0].url.clone();
    assert!(hooks.iter().all(|h| h.url == url && h.active));
    assert!(
        url.starts_with(&format!("{public}/webhooks/lightspeed/{}/", m.store)),
        "{url}"
    );
    let conn = saved(std::path::Path::new(db), m.store_id).await.unwrap();
    let stored = conn
        .lightspeed_webhooks
        .expect("the registration is recorded");
    assert_eq!(stored.token_sha256, token_sha256(secret_of(&url)));
    assert!(
        !std::fs::read_to_string(db)
            .unwrap_or_default()
            .contains(secret_of(&url))
    );

    // The schedule runs once at start (it links the catalogs), then not for an hour.
    let _serving = serve_live_on(
        &sb,
        &m,
        db,
        &listen,
        &[
            "--inventory-interval-secs",
            "3600",
            "--sweep-interval-secs",
            "0",
        ],
    )
    .await;
    let ids = sb.ids();
    let mug = || sb.ecwid_stock(ids.mug.ecwid_id(), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while mug() != Some(sb.inventory_level(ids.mug.ls_id(), &ids.outlet_id)) {
        assert!(
            Instant::now() < deadline,
            "the first run did not mirror the mug"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut lags = Vec::new();
    for k in 0..15u32 {
        let level = Decimal::from(40 + k);
        let changed = Instant::now();
        sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, level);
        while mug() != Some(level) {
            assert!(
                changed.elapsed() < Duration::from_secs(5),
                "change {k}: Ecwid still at {:?} after 5 s (the schedule is an hour away)",
                mug()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        lags.push(changed.elapsed());
    }
    assert!(sb.counters().ls_webhook_deliveries >= 15);
    assert_eq!(sb.counters().ls_webhook_failures, 0);
    lags.sort();
    println!(
        "stock lag with Lightspeed webhooks on loopback ({} changes): p50 {} ms, p99 {} ms",
        lags.len(),
        percentile(&lags, 0.50).as_millis(),
        percentile(&lags, 0.99).as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_replaces_the_registrations_and_the_old_secret_is_refused() {
    let (sb, m, _dir, db) = merchant().await;
    let db = db.as_str();
    let listen = free_listen_addr();
    let public = format!("http://{listen}");

    connect(&sb, &m, db, &public);
    let first = sb.ls_webhooks()[0].url.clone();
    connect(&sb, &m, db, &public);
    let hooks = sb.ls_webhooks();
    assert_eq!(
        hooks.len(),
        2,
        "the earlier registrations are deleted: {hooks:?}"
    );
    let second = hooks[0].url.clone();
    assert_ne!(first, second, "a new secret");

    let _serving = serve_live_on(
        &sb,
        &m,
        db,
        &listen,
        &[
            "--inventory-interval-secs",
            "0",
            "--sweep-interval-secs",
            "0",
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let post = |url: String| {
        let http = http.clone();
        async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("type=inventory.update&payload=%7B%7D")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(first).await, 401, "the old secret");
    assert_eq!(post(second.clone()).await, 200, "the new one");
    let other_store = second.replace(&format!("/lightspeed/{}/", m.store), "/lightspeed/424242/");
    assert_eq!(post(other_store).await, 404, "no such store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_without_a_public_url_deletes_the_registrations() {
    let (sb, m, _dir, db) = merchant().await;
    let db = db.as_str();

    connect(&sb, &m, db, &format!("http://{}", free_listen_addr()));
    assert_eq!(sb.ls_webhooks().len(), 2);
    connect_by_name_with(&sb, &m, db, &[]);

    assert!(sb.ls_webhooks().is_empty(), "{:?}", sb.ls_webhooks());
    let conn = saved(std::path::Path::new(db), m.store_id).await.unwrap();
    assert_eq!(conn.lightspeed_webhooks, None);
}
