//! Lightspeed API generations (issue #14): a store moved from the legacy paths to the dated
//! API while it is running keeps posting each order once, and sales posted under legacy are
//! found (and adopted, never posted again) through the dated API.

use els_core::ledger::OrderState;
use els_core::lightspeed::{LsApiVersion, dated};
use els_core::ports::OrderMessage;
use els_core::poster::{PostOutcome, PosterConfig, SalePoster};
use els_core::{ConnectionStore, WorkQueue};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::LightspeedClient;
use els_sandbox::{Fault, FaultKind, OrderItemSpec, OrderSpec, Route};
use els_store_sqlite::SqliteStore;
use els_tests::harness::{Harness, HarnessOptions};
use std::time::Duration;

fn order(sku: &str, qty: u32) -> OrderSpec {
    OrderSpec {
        items: vec![OrderItemSpec::new(sku, qty)],
        email: "switch@example.com".into(),
        first_name: "Sam".into(),
        last_name: "Switch".into(),
        ..OrderSpec::default()
    }
}

async fn post(h: &Harness, order_id: &str) -> PostOutcome {
    assert_eq!(
        h.send_webhook("order.created", order_id, None, "PAID")
            .await,
        200
    );
    h.next_outcome().await
}

/// The running store's setting, changed as `els settings --lightspeed-api-version` does.
async fn switch(h: &Harness, to: LsApiVersion) {
    els_cli::ops::update_connection(&h.store, h.connection.store_id, |c| {
        c.settings.lightspeed_api_version = Some(to);
    })
    .await
    .unwrap()
    .expect("connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_switched_from_legacy_to_2026_07_mid_stream_posts_each_order_once() {
    let h = Harness::start_with(HarnessOptions {
        worker: false,
        visibility: Duration::from_millis(300),
        // The deployment speaks legacy; the store will move first.
        lightspeed_api: LsApiVersion::Legacy,
        ..HarnessOptions::default()
    })
    .await;

    // Before the switch: posted through POST /api/register_sales (Lightspeed's own id).
    let before = h.sandbox.place_order(order("MUG-001", 1));
    let PostOutcome::Posted { sale_id: legacy_id } = post(&h, &before).await else {
        panic!("posted on legacy")
    };
    let invoice = h.key(&before).invoice_number();
    assert_ne!(
        legacy_id,
        dated::sale_id(&invoice),
        "legacy ids are Lightspeed's"
    );

    // In flight at the switch: committed on legacy, its answer lost.
    let in_flight = h.sandbox.place_order(order("STICKER-01", 2));
    h.sandbox
        .inject(Fault::once(Route::LsPostSale, FaultKind::DropAfterCommit));
    assert_eq!(
        h.send_webhook("order.created", &in_flight, None, "PAID")
            .await,
        200
    );
    let first = h.store.receive(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        h.app.settle(first[0].clone()).await.is_err(),
        "an unknown outcome comes back later"
    );
    assert_eq!(h.sales_for(&in_flight).len(), 1, "the sale was committed");
    let posts_at_switch = h.sandbox.counters().ls_sale_posts;

    switch(&h, LsApiVersion::LATEST).await;

    // The retry runs on the dated API: GET /sales/{our id} finds nothing (a legacy sale has
    // Lightspeed's id), the dated search by invoice number finds the legacy sale: adopted.
    let outcome = h.next_outcome().await;
    let sales = h.sales_for(&in_flight);
    assert_eq!(sales.len(), 1, "one sale after the switch");
    assert_eq!(
        outcome,
        PostOutcome::Adopted {
            sale_id: sales[0]["id"].as_str().unwrap().to_string()
        }
    );
    assert_eq!(
        h.sandbox.counters().ls_sale_posts,
        posts_at_switch,
        "nothing was posted again"
    );

    // After the switch: posted through POST /api/2026-07/sales, under our client id.
    let after = h.sandbox.place_order(order("MUG-001", 3));
    let PostOutcome::Posted { sale_id } = post(&h, &after).await else {
        panic!("posted on 2026-07")
    };
    assert_eq!(sale_id, dated::sale_id(&h.key(&after).invoice_number()));
    let sale = &h.sales_for(&after)[0];
    assert_eq!(sale["id"], sale_id.as_str());
    assert_eq!(sale["status"], "CLOSED");
    let ecwid_total = h.sandbox.ecwid_order(&after).unwrap()["total"].clone();
    assert_eq!(
        els_tests::chaos::sale_total(sale),
        els_tests::chaos::json_decimal(&ecwid_total),
        "the dated sale carries the order's total"
    );

    // A replay of the legacy-posted order (`els replay`'s message) posts nothing.
    h.store
        .enqueue(&OrderMessage::replay(&h.key(&before), "after-switch"))
        .await
        .unwrap();
    assert!(matches!(
        h.next_outcome().await,
        PostOutcome::AlreadyPosted { sale_id } if sale_id == legacy_id
    ));

    // Every order once.
    for id in [&before, &in_flight, &after] {
        assert_eq!(h.sales_for(id).len(), 1, "order {id}");
        assert_eq!(h.ledger(id).await.unwrap().state, OrderState::Posted);
    }
    assert_eq!(h.sandbox.counters().ls_sale_posts, posts_at_switch + 1);

    // A state that lost its ledger (a restore, a second deployment) finds both the legacy
    // and the dated sale through the dated API, and would post neither again.
    let fresh = SqliteStore::open_in_memory().unwrap();
    let conn = h
        .store
        .get_connection(h.connection.store_id)
        .await
        .unwrap()
        .unwrap();
    fresh.put_connection(&conn, None).await.unwrap();
    let conn = fresh.get_connection(conn.store_id).await.unwrap().unwrap();
    let poster = SalePoster::new(
        fresh,
        EcwidClient::new(h.sandbox.ecwid_api_url(), Duration::from_secs(5)).unwrap(),
        LightspeedClient::new(
            els_cli::sandbox_setup::lightspeed_url_template(&h.sandbox),
            Duration::from_secs(5),
        )
        .unwrap()
        .with_api_version(LsApiVersion::Legacy),
        TokioClock,
        PosterConfig::default(),
    );
    let now = chrono::Utc::now();
    let plan = poster
        .plan_backfill(&conn, now - chrono::Duration::days(1), now)
        .await
        .unwrap();
    for id in [&before, &in_flight, &after] {
        let item = plan
            .items
            .iter()
            .find(|i| &i.order_id == id)
            .unwrap_or_else(|| panic!("order {id} is in the plan"));
        let expected = h.sales_for(id)[0]["id"].as_str().unwrap().to_string();
        assert_eq!(
            item.action,
            els_core::poster::BackfillAction::InLightspeed { sale_id: expected },
            "order {id}"
        );
    }
}

/// The store's setting wins over the deployment's, both ways: a dated deployment with one
/// store held back on legacy posts that store's orders through `/api/register_sales`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_held_on_legacy_in_a_dated_deployment_posts_through_register_sales() {
    let h = Harness::start_with(HarnessOptions {
        worker: false,
        ..HarnessOptions::default()
    })
    .await;
    switch(&h, LsApiVersion::Legacy).await;
    let id = h.sandbox.place_order(order("MUG-001", 1));
    let PostOutcome::Posted { sale_id } = post(&h, &id).await else {
        panic!("posted")
    };
    assert_ne!(sale_id, dated::sale_id(&h.key(&id).invoice_number()));
    switch(&h, LsApiVersion::LATEST).await;
    let id = h.sandbox.place_order(order("MUG-001", 1));
    let PostOutcome::Posted { sale_id } = post(&h, &id).await else {
        panic!("posted")
    };
    assert_eq!(sale_id, dated::sale_id(&h.key(&id).invoice_number()));
}

/// The dated API's unknowns at their worst (MAPPING.md §5): a sale POST commits but its
/// answer is lost, the sale is not yet readable by id, the search lags, so the retry posts
/// again and Lightspeed refuses our id (409). That refusal is an unknown outcome, not a park:
/// the next attempt finds the sale and adopts it. One sale, never parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_our_sale_id_while_the_sale_is_unreadable_is_retried_not_parked() {
    let h = Harness::start_with(HarnessOptions {
        worker: false,
        visibility: Duration::from_millis(300),
        sandbox: els_sandbox::SandboxConfig {
            ls_search_lag: Duration::from_millis(1500),
            ..els_sandbox::SandboxConfig::default()
        },
        ..HarnessOptions::default()
    })
    .await;
    let id = h.sandbox.place_order(order("MUG-001", 2));
    h.sandbox
        .inject(Fault::once(Route::LsPostSale, FaultKind::DropAfterCommit));
    h.sandbox.inject(Fault {
        route: Route::LsGetSale,
        kind: FaultKind::Status(404),
        times: 2,
    });
    assert_eq!(
        h.send_webhook("order.created", &id, None, "PAID").await,
        200
    );
    let mut retries = 0;
    let outcome = loop {
        let batch = h
            .store
            .receive(10, Duration::from_millis(300))
            .await
            .unwrap();
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        match h.app.settle(batch[0].clone()).await {
            Ok(outcome) => break outcome,
            Err(_) => {
                retries += 1;
                assert_ne!(
                    h.ledger(&id).await.unwrap().state,
                    OrderState::Parked,
                    "never parked"
                );
                assert!(retries < 20, "no outcome");
            }
        }
    };
    let sales = h.sales_for(&id);
    assert_eq!(sales.len(), 1, "one sale");
    assert_eq!(
        outcome,
        PostOutcome::Adopted {
            sale_id: dated::sale_id(&h.key(&id).invoice_number())
        }
    );
    assert_eq!(
        h.sandbox.counters().ls_sale_posts,
        2,
        "the repeat POST happened and was refused"
    );
    assert!(retries >= 2, "{retries}");
}
