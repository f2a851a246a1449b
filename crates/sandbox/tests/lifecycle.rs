//! Start/stop, the binary, and config knobs.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use els_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

#[tokio::test]
async fn urls_and_shutdown() {
    let sb = sandbox().await;
    let base = sb.base_url();
    assert!(base.starts_with("http://127.0.0.1:"));
    assert_eq!(sb.ecwid_api_url(), format!("{base}/ecwid/api/v3"));
    assert_eq!(sb.lightspeed_url(), format!("{base}/lightspeed/sandbox"));
    let (status, _) = ls_get(&sb, "/api/2.0/retailer").await;
    assert_eq!(status, 200);
    sb.shutdown().await;
    let r = client().get(format!("{base}/_sandbox/state")).send().await;
    assert!(r.is_err(), "stopped");

    // Dropping the last handle stops it too.
    let sb = sandbox().await;
    let base = sb.base_url();
    drop(sb);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        client()
            .get(format!("{base}/_sandbox/state"))
            .send()
            .await
            .is_err()
    );

    // Only loopback.
    assert!(
        Sandbox::start_on(SandboxConfig::default(), "0.0.0.0:0".parse().unwrap())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unseeded_store_has_the_fixed_setup_only() {
    let sb = sandbox_with(SandboxConfig {
        seed_demo: false,
        ..SandboxConfig::default()
    })
    .await;
    let ids = sb.ids();
    assert!(ids.toys.ls_product_id.is_none());
    let (_, products) = ls_get(&sb, "/api/2.0/products").await;
    let skus: Vec<&str> = products["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, vec!["vend-discount", "shipping"]);
    let (_, regs) = ls_get(&sb, "/api/2.0/registers").await;
    assert_eq!(regs["data"].as_array().unwrap().len(), 2);
    assert!(sb.customers().is_empty());
}

#[tokio::test]
async fn search_lag_hides_new_sales_for_a_while() {
    let sb = sandbox_with(SandboxConfig {
        ls_search_lag: Duration::from_millis(300),
        ..SandboxConfig::default()
    })
    .await;
    let ids = sb.ids();
    let body = closed_sale(&sb, ids.mug.ls_id(), 1, "12", "1.2", &ids.tax_10_id);
    let (status, _) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 200);
    let (_, found) = ls_get(
        &sb,
        "/api/2.0/search?type=sales&invoice_number=ECWID-TEST-1",
    )
    .await;
    assert_eq!(found["data"], json!([]), "not indexed yet");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, found) = ls_get(
        &sb,
        "/api/2.0/search?type=sales&invoice_number=ECWID-TEST-1",
    )
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
}

#[test]
fn seed_ids_are_stable_across_runs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a = rt.block_on(sandbox()).ids();
    let b = rt.block_on(sandbox()).ids();
    assert_eq!(a, b);
    assert_eq!(a.toys.ecwid_id(), 692730761);
    assert_eq!(a.tshirt.variants.len(), 3);
}

#[test]
fn the_binary_prints_urls_and_seed_ids() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_els-sandbox"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn els-sandbox");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).expect("one JSON line");
    let base = info["base_url"].as_str().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"));
    assert_eq!(
        info["lightspeed_url"],
        json!(format!("{base}/lightspeed/sandbox"))
    );
    assert!(info["seed_ids"]["register_id"].is_string());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state: Value = rt.block_on(async {
        client()
            .get(format!("{base}/_sandbox/state"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(state["seed_ids"], info["seed_ids"]);
    child.kill().unwrap();
    child.wait().unwrap();
}
