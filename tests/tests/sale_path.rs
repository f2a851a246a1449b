//! The sale path end to end, embedded backend: signed webhook → SQLite queue → poster →
//! sandbox Lightspeed over real HTTP. Each test asserts what landed in the sandbox and in
//! the ledger.

use els_core::ledger::{OrderState, ReasonCode};
use els_core::{ConnectionStore, LedgerStore, WorkQueue};
use els_sandbox::{
    Fault, FaultKind, HandlingFeeSpec, OrderItemSpec, OrderSpec, Route, SandboxConfig, TaxSpec,
};
use els_tests::harness::{Harness, HarnessOptions};
use rust_decimal::Decimal;
use std::str::FromStr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn dec(v: &serde_json::Value) -> Decimal {
    match v {
        serde_json::Value::String(s) => Decimal::from_str(s).unwrap(),
        serde_json::Value::Number(n) => Decimal::from_str(&n.to_string()).unwrap(),
        other => panic!("not a number: {other}"),
    }
}

fn paid_order(items: &[(&str, u32)], prices_include_tax: bool) -> OrderSpec {
    OrderSpec {
        items: items
            .iter()
            .map(|(s, q)| OrderItemSpec::new(*s, *q))
            .collect(),
        prices_include_tax,
        email: "jane@example.com".into(),
        first_name: "Jane".into(),
        last_name: "Doe".into(),
        ..OrderSpec::default()
    }
}

fn sale_total(sale: &serde_json::Value) -> Decimal {
    dec(&sale["total_price"]) + dec(&sale["total_tax"])
}

fn payments_total(sale: &serde_json::Value) -> Decimal {
    sale["register_sale_payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| dec(&p["amount"]))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_becomes_exactly_one_closed_sale_at_the_configured_register() {
    let h = Harness::start().await;
    let before_stock = h
        .sandbox
        .inventory_level(h.sandbox.ids().mug.ls_id(), &h.sandbox.ids().outlet_id);
    let order_id = h
        .sandbox
        .place_order(paid_order(&[("MUG-001", 2), ("TSHIRT-M", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );

    let entry = h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    let sales = h.sales_for(&order_id);
    assert_eq!(sales.len(), 1, "exactly one sale");
    let sale = &sales[0];
    assert_eq!(entry.sale_id.as_deref(), sale["id"].as_str());
    assert_eq!(sale["status"], "CLOSED");
    assert_eq!(
        sale["register_id"].as_str().unwrap(),
        h.sandbox.ids().register_id
    );
    assert_eq!(sale["user_id"].as_str().unwrap(), h.sandbox.ids().user_id);
    let order = h.sandbox.ecwid_order(&order_id).unwrap();
    let ecwid_total = dec(&order["total"]);
    assert_eq!(
        sale_total(sale),
        ecwid_total,
        "sale total equals the Ecwid total"
    );
    assert_eq!(
        payments_total(sale),
        ecwid_total,
        "payment equals the Ecwid total"
    );
    assert_eq!(
        sale["register_sale_payments"][0]["retailer_payment_type_id"]
            .as_str()
            .unwrap(),
        h.sandbox.ids().payment_type_id
    );
    // Mug 12.00 + 10% → 2 × (12.00 + 1.20); T-shirt M 20.00 + 20% → 20.00 + 4.00.
    let lines = sale["register_sale_products"].as_array().unwrap();
    let mug = lines
        .iter()
        .find(|l| l["product_id"].as_str() == Some(h.sandbox.ids().mug.ls_id()))
        .unwrap();
    assert_eq!(
        (dec(&mug["quantity"]), dec(&mug["price"]), dec(&mug["tax"])),
        (
            Decimal::from(2),
            Decimal::new(1200, 2),
            Decimal::new(120, 2)
        )
    );
    assert_eq!(mug["tax_id"].as_str().unwrap(), h.sandbox.ids().tax_10_id);
    assert_eq!(ecwid_total, Decimal::new(5040, 2));
    // Stock left the register's outlet.
    let after_stock = h
        .sandbox
        .inventory_level(h.sandbox.ids().mug.ls_id(), &h.sandbox.ids().outlet_id);
    assert_eq!(before_stock - after_stock, Decimal::from(2));
    assert_eq!(entry.total, Some(ecwid_total));
    assert_eq!(entry.attempts, 1);
    // O4: nothing was written to Ecwid orders.
    assert_eq!(h.sandbox.counters().ecwid_order_writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecwids_example_order_posts_tax_inclusive_to_the_cent() {
    let h = Harness::start().await;
    let example: serde_json::Value = serde_json::from_str(include_str!(
        "../../crates/core/tests/fixtures/ecwid-order-K8XTQ.json"
    ))
    .unwrap();
    let order_id = h.sandbox.insert_order(example);
    assert_eq!(order_id, "K8XTQ");
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(
        h.send_webhook("order.updated", &order_id, Some("AWAITING_PAYMENT"), "PAID")
            .await,
        200
    );
    let entry = h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    let sales = h.sales_for(&order_id);
    assert_eq!(sales.len(), 1);
    // Created in 2024 and paid now: the sale is dated when it was seen paid, so it lands in
    // the open register period instead of one closed long ago.
    let paid_at = entry
        .paid_at
        .expect("the ledger keeps when the order was seen paid");
    assert!(paid_at >= started, "paid_at {paid_at} is before the test");
    assert_eq!(
        sales[0]["sale_date"].as_str().map(|d| &d[..19]),
        Some(paid_at.format("%Y-%m-%d %H:%M:%S").to_string().as_str())
    );
    let line = &sales[0]["register_sale_products"][0];
    assert_eq!(
        (dec(&line["price"]), dec(&line["tax"])),
        (Decimal::new(909, 2), Decimal::new(91, 2))
    );
    assert_eq!(sale_total(&sales[0]), Decimal::from(10));
    assert_eq!(payments_total(&sales[0]), Decimal::from(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_awaiting_payment_posts_only_once_it_is_paid() {
    let h = Harness::start().await;
    let mut spec = paid_order(&[("TOTE-001", 1)], false);
    spec.payment_status = "AWAITING_PAYMENT".into();
    let order_id = h.sandbox.place_order(spec);

    // The unpaid event is acknowledged and not even queued.
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "AWAITING_PAYMENT")
            .await,
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.sales_for(&order_id).is_empty());
    assert!(h.ledger(&order_id).await.is_none());

    h.sandbox.set_payment_status(&order_id, "PAID").unwrap();
    assert_eq!(
        h.send_webhook("order.updated", &order_id, Some("AWAITING_PAYMENT"), "PAID")
            .await,
        200
    );
    let posted = h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    let sales = h.sales_for(&order_id);
    assert_eq!(sales.len(), 1);
    assert_eq!(posted.sale_id.as_deref(), sales[0]["id"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_paid_hint_is_checked_against_the_fetched_order() {
    let h = Harness::start().await;
    let mut spec = paid_order(&[("TOTE-001", 1)], false);
    spec.payment_status = "AWAITING_PAYMENT".into();
    let order_id = h.sandbox.place_order(spec);
    // The body is unsigned: a "PAID" hint is queued, but the re-fetched order decides.
    assert_eq!(
        h.send_webhook("order.updated", &order_id, Some("AWAITING_PAYMENT"), "PAID")
            .await,
        200
    );
    let skipped = h.wait_for(&order_id, OrderState::Skipped, WAIT).await;
    assert_eq!(skipped.reason.unwrap().code, ReasonCode::NotPaid);
    assert!(h.sales_for(&order_id).is_empty());
    // When the payment really arrives, Ecwid's new event posts it (a new event id is never
    // swallowed by the queue's deduplication).
    h.sandbox.set_payment_status(&order_id, "PAID").unwrap();
    assert_eq!(
        h.send_webhook("order.updated", &order_id, Some("AWAITING_PAYMENT"), "PAID")
            .await,
        200
    );
    h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    assert_eq!(h.sales_for(&order_id).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_webhook_five_times_and_a_queue_redelivery_give_one_sale() {
    let h = Harness::start_with(HarnessOptions {
        worker: false,
        ..HarnessOptions::default()
    })
    .await;
    let order_id = h
        .sandbox
        .place_order(paid_order(&[("STICKER-01", 3)], false));
    let hook = h
        .sandbox
        .order_webhook("order.created", &order_id, None, "PAID");
    for _ in 0..5 {
        assert_eq!(
            h.sandbox
                .deliver(&h.webhook_url, &hook)
                .await
                .unwrap()
                .as_u16(),
            200
        );
    }
    // The five deliveries collapse to one message (FIFO deduplication by store:order).
    let first = h
        .store
        .receive(10, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Work it, but "crash" before acking: the message comes back after its visibility.
    let outcome = h
        .app
        .poster()
        .post_paid_order(&first[0].message)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        els_core::poster::PostOutcome::Posted { .. }
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = h.store.receive(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(again.len(), 1, "the unacked message is redelivered");
    assert_eq!(again[0].receive_count, 2);
    let outcome = h.app.settle(again[0].clone()).await.unwrap();
    assert!(matches!(
        outcome,
        els_core::poster::PostOutcome::AlreadyPosted { .. }
    ));
    assert_eq!(h.sales_for(&order_id).len(), 1);
    assert_eq!(h.sandbox.counters().ls_sale_posts, 1);
    assert!(
        h.store
            .receive(10, Duration::from_secs(5))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_committed_but_dropped_on_the_wire_is_adopted_not_duplicated() {
    let h = Harness::start().await;
    h.sandbox
        .inject(Fault::once(Route::LsPostSale, FaultKind::DropAfterCommit));
    let order_id = h.sandbox.place_order(paid_order(&[("MUG-001", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    let entry = h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    let sales = h.sales_for(&order_id);
    assert_eq!(sales.len(), 1, "still one sale after the retry");
    assert_eq!(
        entry.sale_id.as_deref(),
        sales[0]["id"].as_str(),
        "the ledger holds its id"
    );
    assert_eq!(
        h.sandbox.counters().ls_sale_posts,
        1,
        "the retry searched instead of posting"
    );
    assert!(entry.history.iter().any(|e| e.detail.contains("adopted")));
    assert_eq!(entry.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_retried_later_and_posts_once() {
    let h = Harness::start().await;
    h.sandbox.inject(Fault::once(
        Route::LsPostSale,
        FaultKind::RateLimit {
            retry_after: Duration::from_secs(1),
        },
    ));
    let order_id = h.sandbox.place_order(paid_order(&[("TOTE-001", 2)], true));
    let sent = std::time::Instant::now();
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    let entry = h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    // The retry honoured Retry-After (an HTTP date, so whole seconds).
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "retried too early: {:?}",
        sent.elapsed()
    );
    assert_eq!(h.sales_for(&order_id).len(), 1);
    assert_eq!(h.sandbox.counters().ls_rate_limited, 1);
    assert_eq!(entry.attempts, 2);
    assert!(entry.history.iter().any(|e| e.detail.contains("429")));
    // The retry posts the date the first attempt saw the order paid, a second or more earlier.
    let paid_at = entry.paid_at.expect("paid_at is kept");
    let second_claim = entry
        .history
        .iter()
        .filter(|e| e.state == OrderState::Posting)
        .nth(1)
        .expect("a second claim")
        .at;
    assert!(paid_at < second_claim - chrono::Duration::milliseconds(900));
    assert_eq!(
        h.sales_for(&order_id)[0]["sale_date"]
            .as_str()
            .map(|d| &d[..19]),
        Some(paid_at.format("%Y-%m-%d %H:%M:%S").to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_post_sales_off_nothing_is_posted_and_the_order_is_skipped_with_the_reason() {
    let h = Harness::start().await;
    let mut conn = h.connection.clone();
    conn.settings.post_sales = false;
    els_cli::ops::upsert_connection(&h.store, conn)
        .await
        .unwrap();
    let order_id = h.sandbox.place_order(paid_order(&[("MUG-001", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    let entry = h.wait_for(&order_id, OrderState::Skipped, WAIT).await;
    let reason = entry.reason.unwrap();
    assert_eq!(reason.code, ReasonCode::PostSalesOff);
    assert!(
        reason
            .message
            .contains("Post Ecwid Sales to Lightspeed Retail")
    );
    assert!(h.sales_for(&order_id).is_empty());
    assert_eq!(h.sandbox.counters().ls_sale_posts, 0);

    // Posting it later is a deliberate operator action (O5).
    let mut conn = h
        .store
        .get_connection(h.connection.store_id)
        .await
        .unwrap()
        .unwrap();
    conn.settings.post_sales = true;
    els_cli::ops::upsert_connection(&h.store, conn)
        .await
        .unwrap();
    let replayed = els_cli::ops::replay_parked(
        &h.store,
        &h.store,
        h.connection.store_id,
        ReasonCode::PostSalesOff,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(replayed.len(), 1);
    h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    assert_eq!(h.sales_for(&order_id).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_get_401_and_enqueue_nothing() {
    let h = Harness::start_with(HarnessOptions {
        worker: false,
        ..HarnessOptions::default()
    })
    .await;
    let order_id = h.sandbox.place_order(paid_order(&[("MUG-001", 1)], false));
    let hook = h
        .sandbox
        .order_webhook("order.created", &order_id, None, "PAID");
    let http = reqwest::Client::new();
    let send = |sig: Option<String>, body: Vec<u8>| {
        let mut req = http
            .post(&h.webhook_url)
            .header("Content-Type", "application/json; charset=UTF-8")
            .body(body);
        if let Some(s) = sig {
            req = req.header("X-Ecwid-Webhook-Signature", s);
        }
        req.send()
    };
    assert_eq!(send(None, hook.body.clone()).await.unwrap().status(), 401);
    assert_eq!(
        send(Some("AAAA".into()), hook.body.clone())
            .await
            .unwrap()
            .status(),
        401
    );
    let wrong = els_core::webhook::sign(b"not-the-secret", 1, "x");
    assert_eq!(
        send(Some(wrong), hook.body.clone()).await.unwrap().status(),
        401
    );
    assert_eq!(
        send(Some(hook.signature.clone()), b"{not json".to_vec())
            .await
            .unwrap()
            .status(),
        400
    );
    let huge = vec![b' '; 70 * 1024];
    assert_eq!(
        send(Some(hook.signature.clone()), huge)
            .await
            .unwrap()
            .status(),
        413
    );
    assert!(
        h.store
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty(),
        "nothing enqueued"
    );
    // An event for a store without a connection is acknowledged and dropped.
    let mut v: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
    v["storeId"] = 999.into();
    assert_eq!(
        send(
            Some(hook.signature.clone()),
            serde_json::to_vec(&v).unwrap()
        )
        .await
        .unwrap()
        .status(),
        200
    );
    assert!(
        h.store
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    // The genuine delivery is accepted and queued.
    assert_eq!(
        send(Some(hook.signature.clone()), hook.body.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        h.store
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_post_is_recovered_by_searching_when_the_lease_expires() {
    let h = Harness::start_with(HarnessOptions {
        worker: false,
        poster: els_core::poster::PosterConfig {
            lease: Duration::from_millis(300),
            retry_base: Duration::from_millis(50),
            search_delay: Duration::from_secs(2),
            ..els_core::poster::PosterConfig::default()
        },
        ..HarnessOptions::default()
    })
    .await;
    let order_id = h.sandbox.place_order(paid_order(&[("MUG-001", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    let d = h
        .store
        .receive(1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    h.app.poster().post_paid_order(&d.message).await.unwrap();
    let posted = h.ledger(&order_id).await.unwrap();
    // Simulate a worker that posted and died before recording: put the ledger back to
    // POSTING with a lease that has run out.
    let mut crashed = posted.clone();
    crashed.state = OrderState::Posting;
    crashed.sale_id = None;
    crashed.lease_until = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    crashed.version = posted.version + 1;
    h.store
        .save_order(&crashed, Some(posted.version))
        .await
        .unwrap();

    // The search index may lag: no takeover before the search delay has passed since the
    // lease ran out (the last moment the dead worker's POST could have gone out).
    let early = h.app.poster().post_paid_order(&d.message).await;
    let wait = match early {
        Err(retry) => retry.delay,
        other => panic!("a takeover inside the search delay: {other:?}"),
    };
    assert!(wait <= Duration::from_secs(2), "{wait:?}");
    assert_eq!(
        h.ledger(&order_id).await.unwrap().state,
        OrderState::Posting
    );
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
    let outcome = h.app.poster().post_paid_order(&d.message).await.unwrap();
    assert!(
        matches!(outcome, els_core::poster::PostOutcome::Adopted { .. }),
        "{outcome:?}"
    );
    let sales = h.sales_for(&order_id);
    assert_eq!(sales.len(), 1);
    assert_eq!(
        h.ledger(&order_id).await.unwrap().sale_id.as_deref(),
        sales[0]["id"].as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_posts_as_a_line_on_the_connections_shipping_product() {
    let h = Harness::start().await;
    let mut with_shipping = paid_order(&[("MUG-001", 1)], false);
    with_shipping.shipping = Some(els_sandbox::ShippingSpec {
        method_name: "Courier".into(),
        rate: Decimal::new(500, 2),
    });
    let order_id = h.sandbox.place_order(with_shipping);
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    let sales = h.sales_for(&order_id);
    assert_eq!(sales.len(), 1);
    let lines = sales[0]["register_sale_products"].as_array().unwrap();
    let ship = lines
        .iter()
        .find(|l| l["product_id"].as_str() == Some(h.sandbox.ids().shipping_product_id.as_str()))
        .expect("a shipping line");
    assert_eq!(
        (dec(&ship["price"]), dec(&ship["tax"])),
        (Decimal::new(500, 2), Decimal::ZERO)
    );
    let total = dec(&h.sandbox.ecwid_order(&order_id).unwrap()["total"]);
    assert_eq!(total, Decimal::new(1820, 2));
    assert_eq!(sale_total(&sales[0]), total);
    assert_eq!(payments_total(&sales[0]), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_sku_is_parked_then_posts_once_after_the_sku_exists_and_it_is_replayed() {
    let h = Harness::start().await;
    h.sandbox.add_ecwid_product_only(els_sandbox::ProductSpec {
        sku: "NEW-HAT".into(),
        name: "Hat".into(),
        price_excl_tax: Decimal::new(2500, 2),
        tax_percent: Some(Decimal::from(10)),
        ecwid_stock: Some(Decimal::from(5)),
        ..els_sandbox::ProductSpec::default()
    });
    let order_id = h.sandbox.place_order(paid_order(&[("NEW-HAT", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    let parked = h.wait_for(&order_id, OrderState::Parked, WAIT).await;
    let reason = parked.reason.clone().unwrap();
    assert_eq!(reason.code, ReasonCode::UnknownSku);
    assert!(
        reason.message.contains("NEW-HAT") && reason.message.contains(&order_id),
        "{}",
        reason.message
    );
    assert!(h.sales_for(&order_id).is_empty());
    // Another delivery of the order does not post it: parked orders wait for the operator.
    assert_eq!(
        h.send_webhook("order.updated", &order_id, Some("PAID"), "PAID")
            .await,
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.ledger(&order_id).await.unwrap().state, OrderState::Parked);

    h.sandbox.add_ls_product_only(els_sandbox::ProductSpec {
        sku: "NEW-HAT".into(),
        name: "Hat".into(),
        price_excl_tax: Decimal::new(2500, 2),
        tax_percent: Some(Decimal::from(10)),
        ls_stock: Decimal::from(5),
        ..els_sandbox::ProductSpec::default()
    });
    let requeued = els_cli::ops::replay_parked(
        &h.store,
        &h.store,
        h.connection.store_id,
        ReasonCode::UnknownSku,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(requeued, vec![h.key(&order_id)]);
    let posted = h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    assert_eq!(h.sales_for(&order_id).len(), 1);
    assert_eq!(
        sale_total(&h.sales_for(&order_id)[0]),
        Decimal::new(2750, 2)
    );
    // Replaying a posted order does nothing.
    let again =
        els_cli::ops::replay_order(&h.store, &h.store, &h.key(&order_id), chrono::Utc::now())
            .await
            .unwrap();
    assert_eq!(
        again,
        els_cli::ops::ReplayResult::NotReplayable(OrderState::Posted)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.sales_for(&order_id).len(), 1);
    assert_eq!(h.ledger(&order_id).await.unwrap().version, posted.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_on_the_order_fetch_is_retried() {
    let h = Harness::start().await;
    h.sandbox.inject(Fault::times(
        Route::EcwidGetOrder,
        FaultKind::Status(503),
        2,
    ));
    let order_id = h.sandbox.place_order(paid_order(&[("MUG-001", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    let e = h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    assert_eq!(e.attempts, 3);
    assert_eq!(h.sales_for(&order_id).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cached_product_link_is_refreshed_once_then_the_order_parks() {
    let h = Harness::start().await;
    let spec = |sku: &str| els_sandbox::ProductSpec {
        sku: sku.into(),
        name: "Scarf".into(),
        price_excl_tax: Decimal::new(3000, 2),
        tax_percent: Some(Decimal::from(10)),
        ecwid_stock: Some(Decimal::from(10)),
        ls_stock: Decimal::from(10),
        ..els_sandbox::ProductSpec::default()
    };
    let original = h.sandbox.add_product(spec("SCARF"));
    let first = h.sandbox.place_order(paid_order(&[("SCARF", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &first, None, "PAID").await,
        200
    );
    h.wait_for(&first, OrderState::Posted, WAIT).await;

    // The product is deleted and re-created in Lightspeed: the cached link is stale.
    h.sandbox.delete_ls_product(original.ls_id()).unwrap();
    let recreated = h.sandbox.add_ls_product_only(spec("SCARF"));
    let second = h.sandbox.place_order(paid_order(&[("SCARF", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &second, None, "PAID").await,
        200
    );
    h.wait_for(&second, OrderState::Posted, WAIT).await;
    let sales = h.sales_for(&second);
    assert_eq!(sales.len(), 1);
    assert_eq!(
        sales[0]["register_sale_products"][0]["product_id"].as_str(),
        Some(recreated.ls_id())
    );

    // Deleted for good: one refresh finds nothing, and the order parks.
    h.sandbox.delete_ls_product(recreated.ls_id()).unwrap();
    let third = h.sandbox.place_order(paid_order(&[("SCARF", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &third, None, "PAID").await,
        200
    );
    let parked = h.wait_for(&third, OrderState::Parked, WAIT).await;
    assert_eq!(parked.reason.unwrap().code, ReasonCode::UnknownSku);
    assert!(h.sales_for(&third).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_failing_on_its_last_delivery_is_parked_with_the_error_and_replays_once() {
    let h = Harness::start_with(HarnessOptions {
        max_receives: 3,
        ..HarnessOptions::default()
    })
    .await;
    h.sandbox
        .inject(Fault::times(Route::LsPostSale, FaultKind::Status(503), 3));
    let order_id = h.sandbox.place_order(paid_order(&[("MUG-001", 1)], false));
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    let parked = h.wait_for(&order_id, OrderState::Parked, WAIT).await;
    let reason = parked.reason.clone().unwrap();
    assert_eq!(reason.code, ReasonCode::DeadLettered);
    assert!(
        reason.message.contains("after 3 deliveries") && reason.message.contains("503"),
        "{}",
        reason.message
    );
    assert!(h.sales_for(&order_id).is_empty());
    // The message is left to the queue, which moves it to the dead-letter table
    // (`els replay --dlq` takes it back; tests/tests/dlq.rs); the ledger holds the outcome.
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.store.dead_letters().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The 5xx may have hidden a committed sale, so the replay searches before posting.
    els_cli::ops::replay_order(&h.store, &h.store, &h.key(&order_id), chrono::Utc::now())
        .await
        .unwrap();
    let posted = h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    assert_eq!(h.sales_for(&order_id).len(), 1);
    assert_eq!(posted.attempts, 4);
    assert!(h.sandbox.counters().ls_searches >= 1);
}

/// Ecwid reports the tax on shipping and on the handling fee inside the item taxes and again
/// in `taxesOnShipping`; the stand-in written from the docs saw every such order parked. Each
/// tax must be posted once, on its own line, in both readings of the handling fee's tax and in
/// tax-exclusive and tax-inclusive stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taxed_shipping_and_a_taxed_handling_fee_post_each_tax_once() {
    for fee_tax_in_items in [true, false] {
        let h = Harness::start_with(HarnessOptions {
            sandbox: SandboxConfig {
                handling_fee_tax_in_items: fee_tax_in_items,
                ..SandboxConfig::default()
            },
            ..HarnessOptions::default()
        })
        .await;
        for inclusive in [false, true] {
            let mut spec = paid_order(&[("MUG-001", 2), ("TOTE-001", 1)], inclusive);
            spec.shipping = Some(els_sandbox::ShippingSpec {
                method_name: "Courier".into(),
                rate: Decimal::new(500, 2),
            });
            spec.shipping_taxes = vec![TaxSpec::percent(Decimal::from(10))];
            spec.handling_fee = Some(HandlingFeeSpec {
                name: "Gift wrap".into(),
                value: Decimal::new(200, 2),
                taxes: vec![TaxSpec::percent(Decimal::from(10))],
            });
            let order_id = h.sandbox.place_order(spec);
            let order = h.sandbox.ecwid_order(&order_id).unwrap();
            let label = format!("fee tax in items {fee_tax_in_items}, inclusive {inclusive}");
            assert!(
                order["taxesOnShipping"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty()),
                "{label}: the sandbox taxes shipping: {order}"
            );
            assert_eq!(
                h.send_webhook("order.created", &order_id, None, "PAID")
                    .await,
                200
            );
            h.wait_for(&order_id, OrderState::Posted, WAIT).await;
            let sales = h.sales_for(&order_id);
            assert_eq!(sales.len(), 1, "{label}");
            let total = dec(&order["total"]);
            assert_eq!(sale_total(&sales[0]), total, "{label}");
            assert_eq!(payments_total(&sales[0]), total, "{label}");
            // Each item carries its own tax (taxOnDiscountedSubtotal), not its shipping share.
            let own_item_tax: Decimal = order["items"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|i| i["taxes"].as_array().unwrap().iter())
                .map(|t| dec(&t["taxOnDiscountedSubtotal"]))
                .sum();
            let fee_tax: Decimal = order["handlingFee"]["taxes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| dec(&t["total"]))
                .sum();
            let shipping_tax: Decimal = order["taxesOnShipping"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| dec(&t["total"]))
                .sum::<Decimal>()
                - if fee_tax_in_items {
                    fee_tax
                } else {
                    Decimal::ZERO
                };
            let ship_product = h.connection.shipping_product_id.clone().unwrap();
            let lines = sales[0]["register_sale_products"].as_array().unwrap();
            let line_tax = |l: &serde_json::Value| dec(&l["quantity"]) * dec(&l["tax"]);
            let (charges, items): (Vec<_>, Vec<_>) = lines
                .iter()
                .partition(|l| l["product_id"].as_str() == Some(ship_product.as_str()));
            assert_eq!(
                items.iter().map(|l| line_tax(l)).sum::<Decimal>(),
                own_item_tax,
                "{label}"
            );
            let charge_taxes: Vec<Decimal> = charges.iter().map(|l| line_tax(l)).collect();
            assert_eq!(charge_taxes, vec![shipping_tax, fee_tax], "{label}");
            let ecwid_tax = dec(&order["tax"]);
            let expected_tax = if fee_tax_in_items {
                ecwid_tax
            } else {
                ecwid_tax + fee_tax
            };
            assert_eq!(dec(&sales[0]["total_tax"]), expected_tax, "{label}");
        }
    }
}
