//! The committed fuzz seed corpus (`crates/fuzz/corpus/<target>/seed-*`) through the same
//! harness functions the cargo-fuzz targets call, on stable: every seed, including each
//! input a fuzzing run once crashed on, must pass the properties the harnesses assert.
//! The checks below also make sure the harnesses reach what they guard (a queued webhook, a
//! posted sale), so the properties are not passing vacuously.

use els_core::fuzz::{WebhookInput, ingestor, prepare_store, webhook_ingest};
use els_store_sqlite::SqliteStore;
use std::path::PathBuf;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("a readable seed"))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn webhook_seeds_queue_only_authentic_paid_events() {
    let seeds = seeds("webhook");
    assert!(seeds.len() >= 20, "only {} webhook seeds", seeds.len());
    let mut queued_names = Vec::new();
    for (name, data) in &seeds {
        // A fresh store each: the ingestor remembers event ids, and the seeds share one.
        let store = SqliteStore::open_in_memory().unwrap();
        prepare_store(&store).await;
        let ingestor = ingestor(&store);
        let (response, queued) = webhook_ingest(&ingestor, &store, data).await;
        if !queued.is_empty() {
            queued_names.push(name.as_str());
        }
        // The seeds whose name says so carry an altered or missing signature.
        if name.starts_with("seed-altered-") || name == "seed-sig-empty" {
            assert!(!WebhookInput::from_bytes(data).is_authentic(), "{name}");
            assert_eq!(response.status(), 401, "{name}: {response:?}");
        }
    }
    // Ecwid's own signature (mode 0) and the harness's (mode 1) reach the queue for the paid
    // event of the connected store; the order id in the message is the body's.
    for expected in [
        "seed-sig-paid",
        "seed-sig-spaces",
        "seed-signed-paid",
        "seed-signed-created",
    ] {
        assert!(
            queued_names.contains(&expected),
            "{expected} was not queued: {queued_names:?}"
        );
    }
    for never in [
        "seed-signed-unpaid",
        "seed-signed-other-store",
        "seed-signed-no-order-id",
    ] {
        assert!(!queued_names.contains(&never), "{never} was queued");
    }
}

#[test]
fn order_seeds_map_with_exact_totals_or_park() {
    let seeds = seeds("order_mapping");
    assert!(seeds.len() >= 40, "only {} order seeds", seeds.len());
    let mut posted = Vec::new();
    for (name, data) in &seeds {
        assert!(
            els_core::fuzz::order_input(data).is_some(),
            "{name} is not an order"
        );
        if els_core::fuzz::order_mapping(data) {
            posted.push(name.as_str());
        }
    }
    // The fixtures that post in the order corpus also post under the harness's context,
    // and the ones that park stay parked: the invariants were checked on real sales.
    for (name, _) in &seeds {
        let fixture_parks = name.contains("-parked-") || name == "seed-bin-unlinked";
        if name.starts_with("seed-0") || name.starts_with("seed-1") || name.starts_with("seed-2") {
            assert_eq!(
                posted.contains(&name.as_str()),
                !fixture_parks,
                "{name}: posted {posted:?}"
            );
        }
    }
    assert!(posted.len() >= 30, "only {} seeds posted", posted.len());
    assert!(posted.contains(&"seed-bin-incl-three"), "{posted:?}");
}

#[test]
fn lightspeed_response_seeds_parse() {
    let seeds = seeds("lightspeed_responses");
    assert!(seeds.len() >= 15, "only {} response seeds", seeds.len());
    for (_, data) in &seeds {
        els_lightspeed::parse::fuzz(data);
    }
    // The realistic bodies parse into what the client returns.
    let body = |name: &str| {
        let (_, data) = seeds
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        String::from_utf8(data[1..].to_vec()).unwrap()
    };
    let sale = els_lightspeed::parse::sale_response(&body("seed-sale")).unwrap();
    assert_eq!(sale.total, Some(rust_decimal::Decimal::new(10, 0)));
    let found =
        els_lightspeed::parse::sales_search(&body("seed-search"), "ECWID-1003-K8XTQ").unwrap();
    assert_eq!(found.len(), 2);
    let setup =
        els_lightspeed::parse::sale_setup_bodies(&body("seed-retailer"), &[&body("seed-taxes")])
            .unwrap();
    assert_eq!(setup.no_tax_group_id, "notax");
    assert_eq!(
        setup.taxes.iter().map(|t| t.rate).collect::<Vec<_>>(),
        [
            rust_decimal::Decimal::new(10, 2),
            rust_decimal::Decimal::new(12, 2)
        ]
    );
    let inventory = body("seed-inventory-feed");
    let (header, page) = inventory.split_once('\n').unwrap();
    let page = els_lightspeed::parse::feed_page_body::<els_core::inventory::InventoryRecord>(
        page,
        Some(header),
    )
    .unwrap();
    assert_eq!(
        (
            page.items.len(),
            page.max_version,
            page.rate_limit_remaining
        ),
        (2, Some(5002), Some(57))
    );
}
