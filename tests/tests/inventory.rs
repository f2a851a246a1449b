//! The inventory mirror end to end (rules S1–S4, invariant 6): the embedded store, the
//! reqwest clients and the sandbox over real HTTP. Each test asserts Ecwid stock and
//! Lightspeed levels as the sandbox holds them.

use els_core::inventory::mirror::{MirrorConfig, MirrorReport, RunOutcome};
use els_core::inventory::{EcwidTarget, StockLevel};
use els_core::ledger::{self, ClaimDecision, LedgerLine, OrderKey, OrderState, Outcome};
use els_core::{Connection, ConnectionStore, InventoryStateStore, LedgerStore, WorkQueue};
use els_sandbox::{
    Fault, FaultKind, OrderItemSpec, OrderSpec, ProductIds, ProductSpec, Route, SandboxConfig,
    SignedWebhook, sign_webhook,
};
use els_tests::harness::{Harness, HarnessOptions};
use rust_decimal::Decimal;
use std::time::{Duration, Instant};

fn d(v: i64) -> Decimal {
    Decimal::from(v)
}

/// Ecwid stock of a product (None: unlimited).
fn ecwid(h: &Harness, p: &ProductIds) -> Option<Decimal> {
    h.sandbox.ecwid_stock(p.ecwid_id(), None)
}

/// Lightspeed level of a product at the web register's outlet.
fn ls(h: &Harness, p: &ProductIds) -> Decimal {
    h.sandbox
        .inventory_level(p.ls_id(), &h.sandbox.ids().outlet_id)
}

async fn no_worker() -> Harness {
    Harness::start_with(HarnessOptions {
        worker: false,
        ..HarnessOptions::default()
    })
    .await
}

/// The first run links the catalogs (the sandbox seeds equal levels: nothing to write).
async fn bootstrap(h: &Harness) -> MirrorReport {
    let r = h.mirror_once().await;
    assert_eq!(r.outcome, RunOutcome::Completed);
    h.sandbox.reset_counters();
    r
}

async fn set_sync_inventory(h: &Harness, on: bool) -> Connection {
    let mut conn = h
        .store
        .get_connection(h.connection.store_id)
        .await
        .unwrap()
        .unwrap();
    conn.settings.sync_inventory = on;
    els_cli::ops::upsert_connection(&h.store, conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_a_pos_sale_lowers_ecwid_stock_after_one_run() {
    let h = Harness::start().await;
    let first = bootstrap(&h).await;
    assert_eq!(first.written, 0, "equal levels are not written: {first:#?}");
    let mug = h.sandbox.ids().mug;
    assert_eq!((ls(&h, &mug), ecwid(&h, &mug)), (d(30), Some(d(30))));

    h.sandbox
        .pos_sale(mug.ls_id(), 2, &h.sandbox.ids().register_id);
    assert_eq!(ls(&h, &mug), d(28));
    let r = h.mirror_once().await;

    assert_eq!(ecwid(&h, &mug), Some(d(28)), "one run carries the POS sale");
    assert_eq!(r.written, 1);
    assert_eq!(r.written_by_put, 1);
    assert_eq!(h.sandbox.counters().ecwid_product_writes, 1);
    // Nothing changed since: the next run writes nothing.
    let again = h.mirror_once().await;
    assert_eq!((again.written, again.inventory_pages), (0, 0));
}

/// The mirror on the legacy feed (`GET /api/2.0/inventory`), then the same store moved to
/// 2026-07 (`POST /api/2026-07/inventory`, `current_inventory_level`): a POS sale before and
/// after the switch each reach Ecwid, the first dated run reads the feeds from the start
/// (the generations' versions are not assumed to agree) and writes only what changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_follows_a_store_from_the_legacy_feed_to_the_dated_one() {
    let h = Harness::start_with(HarnessOptions {
        lightspeed_api: els_core::lightspeed::LsApiVersion::Legacy,
        ..HarnessOptions::default()
    })
    .await;
    bootstrap(&h).await;
    let mug = h.sandbox.ids().mug;
    let register = h.sandbox.ids().register_id;
    h.sandbox.pos_sale(mug.ls_id(), 2, &register);
    let r = h.mirror_once().await;
    assert_eq!((ecwid(&h, &mug), r.written), (Some(d(28)), 1));
    let cursor = || async {
        h.store
            .get_inventory_cursor(h.connection.store_id)
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(cursor().await.api_version.as_deref(), Some("legacy"));
    let legacy_version = cursor().await.inventory_version;
    assert!(legacy_version > 0);

    els_cli::ops::update_connection(&h.store, h.connection.store_id, |c| {
        c.settings.lightspeed_api_version = Some(els_core::lightspeed::LsApiVersion::LATEST);
    })
    .await
    .unwrap();
    h.sandbox.pos_sale(mug.ls_id(), 3, &register);
    let r = h.mirror_once().await;
    assert_eq!(
        ecwid(&h, &mug),
        Some(d(25)),
        "the dated feed carries the POS sale"
    );
    assert_eq!(
        r.inventory_cursor_from, 0,
        "the feed was read from the start: {r:#?}"
    );
    assert_eq!(r.written, 1, "only the changed level is written: {r:#?}");
    let after = cursor().await;
    assert_eq!(after.api_version.as_deref(), Some("2026-07"));
    assert!(after.inventory_version >= legacy_version);
    let again = h.mirror_once().await;
    assert_eq!((again.written, again.inventory_pages), (0, 0));
}

/// Ecwid must never show more than Lightspeed's level minus the pending web quantity
/// (as the ledger knows it).
async fn assert_not_above_ls_minus_pending(h: &Harness, p: &ProductIds, when: &str) {
    let pending: Decimal = h
        .store
        .list_pending_web_sales(h.connection.store_id)
        .await
        .unwrap()
        .iter()
        .flat_map(|s| s.lines.iter())
        .filter(|l| l.sku.eq_ignore_ascii_case(&p.sku))
        .map(|l| l.quantity)
        .sum();
    let bound = (ls(h, p) - pending).max(Decimal::ZERO);
    let shown = ecwid(h, p).expect("tracked");
    assert!(
        shown <= bound,
        "{when}: Ecwid shows {shown}, above Lightspeed {} - pending {pending}",
        ls(h, p)
    );
}

/// Receives the next queued message (waiting for it to become visible) and settles it once.
async fn settle_once(
    h: &Harness,
) -> Result<els_core::poster::PostOutcome, els_core::poster::RetryLater> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(d) = h
            .store
            .receive(1, Duration::from_secs(10))
            .await
            .unwrap()
            .pop()
        {
            return h.app.settle(d).await;
        }
        assert!(Instant::now() < deadline, "no message to settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_web_order_is_never_given_back_before_it_is_posted_and_both_sides_agree_after() {
    let h = no_worker().await;
    bootstrap(&h).await;
    let ids = h.sandbox.ids();
    let mug = ids.mug.clone();

    // Checkout: Ecwid lowers its own stock at once.
    let order_id = h.sandbox.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 2)],
        email: "ann@example.com".into(),
        ..OrderSpec::default()
    });
    assert_eq!(ecwid(&h, &mug), Some(d(28)), "Ecwid took 2 off at checkout");
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    h.mirror_once().await;
    assert_not_above_ls_minus_pending(&h, &mug, "queued, not fetched yet").await;
    assert_eq!(
        ecwid(&h, &mug),
        Some(d(28)),
        "no Lightspeed change: nothing written"
    );

    // The poster fetches the order (its lines reach the ledger) but Lightspeed refuses the
    // POST for now: paid, pending, not posted.
    h.sandbox
        .inject(Fault::once(Route::LsPostSale, FaultKind::Status(503)));
    let outcome = settle_once(&h).await;
    assert!(outcome.is_err(), "{outcome:?}");
    let entry = h.ledger(&order_id).await.unwrap();
    assert_eq!(entry.state, OrderState::Queued);
    assert!(entry.is_pending_web_sale());

    // A POS sale of the same product while the web sale is pending.
    h.sandbox.pos_sale(mug.ls_id(), 1, &ids.register_id);
    assert_eq!(ls(&h, &mug), d(29));
    let r = h.mirror_once().await;
    assert_eq!(r.pending_skus, 1);
    assert_eq!(
        ecwid(&h, &mug),
        Some(d(27)),
        "29 in Lightspeed minus 2 pending: the web sale is not given back"
    );
    assert_not_above_ls_minus_pending(&h, &mug, "pending, after a POS sale").await;

    // The sale is posted: Lightspeed takes the 2 off; both sides agree.
    settle_once(&h).await.expect("posted");
    h.wait_for(&order_id, OrderState::Posted, Duration::from_secs(10))
        .await;
    assert_eq!(ls(&h, &mug), d(27));
    assert_not_above_ls_minus_pending(&h, &mug, "posted, before a run").await;
    h.sandbox.reset_counters();
    let r = h.mirror_once().await;
    assert_eq!(ecwid(&h, &mug), Some(d(27)));
    assert_eq!(ecwid(&h, &mug), Some(ls(&h, &mug)), "both sides agree");
    assert_eq!(r.written, 0, "27 was already published");
    assert_eq!(h.sandbox.counters().ecwid_product_writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_quantity_that_drops_without_a_lightspeed_change_is_given_back() {
    // The race the pending snapshot closes: a run subtracted a web sale whose Lightspeed
    // decrement it had already read. When the sale leaves the pending set, the next run
    // re-publishes the product although its Lightspeed record did not change.
    let h = no_worker().await;
    bootstrap(&h).await;
    let tote = h.sandbox.ids().tote;
    let key = OrderKey::new(h.connection.store_id, "RACE-1");
    let now = chrono::Utc::now();
    let ClaimDecision::Claim {
        entry,
        expected_version,
        ..
    } = ledger::claim(None, &key, now, chrono::Duration::seconds(60))
    else {
        panic!("a first claim")
    };
    h.store.save_order(&entry, expected_version).await.unwrap();
    let with_lines = ledger::with_order_facts(
        &entry,
        d(30),
        vec![LedgerLine {
            sku: "TOTE-001".into(),
            quantity: d(2),
        }],
    );
    let released = ledger::finish(
        &with_lines,
        Outcome::Released {
            error: "503".into(),
            post_may_exist: false,
        },
        now,
    );
    h.store
        .save_order(&released, Some(entry.version))
        .await
        .unwrap();

    h.sandbox
        .set_ls_inventory(tote.ls_id(), &h.sandbox.ids().outlet_id, 20);
    h.mirror_once().await;
    assert_eq!(ecwid(&h, &tote), Some(d(18)), "20 - 2 pending");

    // The order leaves the pending set with no further Lightspeed change.
    let ClaimDecision::Claim {
        entry: again,
        expected_version,
        ..
    } = ledger::claim(Some(&released), &key, now, chrono::Duration::seconds(60))
    else {
        panic!("a claim")
    };
    h.store.save_order(&again, expected_version).await.unwrap();
    let posted = ledger::finish(
        &again,
        Outcome::Posted {
            sale_id: "s-race".into(),
            adopted: false,
        },
        now,
    );
    h.store
        .save_order(&posted, Some(again.version))
        .await
        .unwrap();
    let r = h.mirror_once().await;
    assert_eq!(r.pending_republished, 1);
    assert_eq!(ecwid(&h, &tote), Some(d(20)));
    assert_eq!(h.mirror_once().await.written, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_manual_level_in_lightspeed_reaches_ecwid() {
    let h = Harness::start().await;
    bootstrap(&h).await;
    let tote = h.sandbox.ids().tote;
    h.sandbox
        .set_ls_inventory(tote.ls_id(), &h.sandbox.ids().outlet_id, 7);
    h.mirror_once().await;
    assert_eq!(ecwid(&h, &tote), Some(d(7)));
    assert_eq!(ls(&h, &tote), d(7));
}

/// A signed `product.updated` webhook, as Ecwid sends after any product change (our own
/// stock writes included).
fn product_updated_webhook(h: &Harness, product_id: u64) -> SignedWebhook {
    let event_id = uuid::Uuid::new_v4().to_string();
    let created = chrono::Utc::now().timestamp();
    let body = serde_json::json!({
        "eventId": event_id,
        "eventCreated": created,
        "storeId": h.connection.store_id,
        "entityId": product_id,
        "eventType": "product.updated",
    });
    SignedWebhook {
        body: serde_json::to_vec(&body).unwrap(),
        signature: sign_webhook(
            &h.sandbox.config().webhook_client_secret,
            created,
            &event_id,
        ),
        event_id,
        event_created: created,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_manual_edit_in_ecwid_is_never_written_to_lightspeed() {
    let h = no_worker().await;
    bootstrap(&h).await;
    let ids = h.sandbox.ids();
    let mug = ids.mug.clone();
    let ls_before = ls(&h, &mug);
    let version_before = h.sandbox.inventory_version(mug.ls_id(), &ids.outlet_id);

    // A merchant edits stock by hand in the Ecwid admin; Ecwid sends product.updated.
    h.sandbox
        .set_ecwid_stock(mug.ecwid_id(), None, Some(5))
        .unwrap();
    let status = h
        .sandbox
        .deliver(&h.webhook_url, &product_updated_webhook(&h, mug.ecwid_id()))
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200, "acknowledged so Ecwid does not retry");
    assert!(
        h.store
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty(),
        "product.updated is ignored: nothing queued"
    );

    let r = h.mirror_once().await;
    assert_eq!(r.written, 0);
    assert_eq!(ls(&h, &mug), ls_before, "Lightspeed level unchanged");
    assert_eq!(
        h.sandbox.inventory_version(mug.ls_id(), &ids.outlet_id),
        version_before,
        "the Lightspeed inventory record was not touched"
    );
    let c = h.sandbox.counters();
    assert_eq!(c.ls_sale_posts, 0);
    assert_eq!(
        c.ls_requests, c.ls_reads,
        "the mirror only ever reads Lightspeed: {c:?}"
    );
    assert_eq!(
        ecwid(&h, &mug),
        Some(d(5)),
        "left alone until Lightspeed changes"
    );

    // The next Lightspeed change wins: Lightspeed is the source of truth.
    h.sandbox.pos_sale(mug.ls_id(), 1, &ids.register_id);
    h.mirror_once().await;
    assert_eq!(ecwid(&h, &mug), Some(ls_before - d(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_changes_at_another_outlet_do_not_touch_ecwid() {
    let h = Harness::start().await;
    bootstrap(&h).await;
    let ids = h.sandbox.ids();
    let mug = ids.mug.clone();
    h.sandbox.pos_sale(mug.ls_id(), 4, &ids.second_register_id);
    h.sandbox
        .set_ls_inventory(ids.tote.ls_id(), &ids.second_outlet_id, 1);
    assert_eq!(
        h.sandbox
            .inventory_level(mug.ls_id(), &ids.second_outlet_id),
        d(46)
    );
    let r = h.mirror_once().await;
    assert_eq!(r.other_outlet, 2, "{r:#?}");
    assert_eq!(r.written, 0);
    assert_eq!(h.sandbox.counters().ecwid_product_writes, 0);
    assert_eq!(ecwid(&h, &mug), Some(d(30)));
    assert_eq!(ecwid(&h, &ids.tote), Some(d(25)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_sync_inventory_off_writes_nothing_to_ecwid() {
    let h = Harness::start().await;
    bootstrap(&h).await;
    let ids = h.sandbox.ids();
    let conn = set_sync_inventory(&h, false).await;
    h.sandbox.pos_sale(ids.mug.ls_id(), 3, &ids.register_id);
    h.sandbox
        .set_ls_inventory(ids.tote.ls_id(), &ids.outlet_id, 2);

    let r = h.mirror().mirror_connection(&conn).await.unwrap();
    assert_eq!(r.outcome, RunOutcome::SyncOff);
    let all = h.mirror().mirror_all().await.unwrap();
    assert!(matches!(&all[..], [Ok(r)] if r.outcome == RunOutcome::SyncOff));
    let c = h.sandbox.counters();
    assert_eq!(c.ecwid_requests, 0, "not a single Ecwid call: {c:?}");
    assert_eq!(c.ecwid_product_writes, 0);
    assert_eq!(ecwid(&h, &ids.mug), Some(d(30)));

    // Switched back on, the next run catches up from the cursor.
    set_sync_inventory(&h, true).await;
    let r = h.mirror_once().await;
    assert_eq!(r.written, 2);
    assert_eq!(ecwid(&h, &ids.mug), Some(d(27)));
    assert_eq!(ecwid(&h, &ids.tote), Some(d(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variations_are_mirrored_to_the_right_combination() {
    let h = Harness::start().await;
    bootstrap(&h).await;
    let ids = h.sandbox.ids();
    let shirt = ids.tshirt.clone();
    let (s, m, l) = (
        shirt.variant("TSHIRT-S"),
        shirt.variant("TSHIRT-M"),
        shirt.variant("TSHIRT-L"),
    );
    h.sandbox.set_ls_inventory(m.ls_id(), &ids.outlet_id, 3);
    h.sandbox.pos_sale(l.ls_id(), 2, &ids.register_id);
    let r = h.mirror_once().await;
    assert_eq!(r.written, 2);
    let pid = shirt.ecwid_id();
    assert_eq!(
        h.sandbox.ecwid_stock(pid, Some(m.combination_id())),
        Some(d(3))
    );
    assert_eq!(
        h.sandbox.ecwid_stock(pid, Some(l.combination_id())),
        Some(d(6))
    );
    assert_eq!(
        h.sandbox.ecwid_stock(pid, Some(s.combination_id())),
        Some(d(10)),
        "the other combination is untouched"
    );
    assert_eq!(
        h.sandbox.ecwid_stock(pid, None),
        None,
        "the product level stays unlimited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_between_writes_and_the_cursor_save_repeats_safely() {
    let h = Harness::start().await;
    bootstrap(&h).await;
    let ids = h.sandbox.ids();
    let outlet = ids.outlet_id.clone();
    let products = [&ids.mug, &ids.tote, &ids.sticker, &ids.toys];
    for (i, p) in products.iter().enumerate() {
        h.sandbox.set_ls_inventory(p.ls_id(), &outlet, 3 + i as i64);
    }
    let conn = h.connection.clone();

    // (1) Ecwid fails the first write of the page (every retry of it): the other writes
    // succeed and are recorded, the cursor stays before the page.
    let cursor_before = h
        .store
        .get_inventory_cursor(conn.store_id)
        .await
        .unwrap()
        .unwrap();
    h.sandbox
        .inject(Fault::times(Route::EcwidAny, FaultKind::Status(503), 3));
    let err = h
        .mirror()
        .mirror_connection(&conn)
        .await
        .expect_err("the page fails");
    assert_eq!(err.report.written, 3, "{err}");
    let cursor = h
        .store
        .get_inventory_cursor(conn.store_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.inventory_version, cursor_before.inventory_version);
    assert_eq!(cursor.lease_until, None, "the lease is released");
    let lost: Vec<_> = products
        .iter()
        .filter(|p| ecwid(&h, p) != Some(ls(&h, p)))
        .collect();
    assert_eq!(lost.len(), 1, "exactly the failed write is missing");

    // The repeat writes only what is missing.
    h.sandbox.reset_counters();
    let r = h.mirror_once().await;
    assert_eq!((r.written, r.unchanged), (1, 3), "{r:#?}");
    assert_eq!(h.sandbox.counters().ecwid_product_writes, 1);
    for p in products {
        assert_eq!(ecwid(&h, p), Some(ls(&h, p)), "{} is not lost", p.sku);
    }

    // (2) A crash after the writes but before the cursor save: the cursor is rewound as if
    // its save never happened. The repeat reads the same records and writes nothing.
    let mut rewound = h
        .store
        .get_inventory_cursor(conn.store_id)
        .await
        .unwrap()
        .unwrap();
    let expected = rewound.version;
    rewound.inventory_version = cursor_before.inventory_version;
    rewound.version += 1;
    h.store
        .put_inventory_cursor(&rewound, Some(expected))
        .await
        .unwrap();
    h.sandbox.reset_counters();
    let r = h.mirror_once().await;
    assert_eq!(r.inventory_pages, 1, "the page is read again");
    assert_eq!((r.written, r.unchanged), (0, 4));
    assert_eq!(
        h.sandbox.counters().ecwid_product_writes,
        0,
        "nothing written twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_changed_products_reach_ecwid_in_batches() {
    let h = Harness::start().await;
    let n = 2000usize;
    let created: Vec<ProductIds> = (0..n)
        .map(|i| {
            h.sandbox.add_product(ProductSpec {
                sku: format!("BULK-{i:05}"),
                name: format!("Bulk {i}"),
                price_excl_tax: d(5),
                ecwid_stock: Some(d(10)),
                ls_stock: d(10),
                ls_stock_other: d(4),
                ..ProductSpec::default()
            })
        })
        .collect();
    let started = Instant::now();
    let first = bootstrap(&h).await;
    let bootstrap_time = started.elapsed();
    assert_eq!(
        first.catalog_scans, 1,
        "one catalog scan, not 2,000 lookups"
    );
    assert_eq!(first.written, 0);

    let outlet = h.sandbox.ids().outlet_id;
    for (i, p) in created.iter().enumerate() {
        h.sandbox
            .set_ls_inventory(p.ls_id(), &outlet, (i % 7) as i64);
    }
    let started = Instant::now();
    let r = h.mirror_once().await;
    let elapsed = started.elapsed();
    let c = h.sandbox.counters();
    eprintln!(
        "2,000 changes: {} batch POST(s), {} poll(s), {} Ecwid and {} Lightspeed request(s), {:?} \
         (bootstrap of the 2,000 links: {} Ecwid and {} Lightspeed request(s), {:?})",
        c.ecwid_batches,
        r.batch_polls,
        c.ecwid_requests,
        c.ls_requests,
        elapsed,
        first.ecwid_requests,
        first.lightspeed_requests,
        bootstrap_time
    );
    assert_eq!(r.written as usize, n);
    assert_eq!(r.written_by_batch as usize, n);
    assert_eq!(r.written_by_put, 0, "no single PUTs");
    assert!(c.ecwid_batches <= 5, "{c:?}");
    assert_eq!(c.ecwid_product_writes as usize, n, "each level once");
    assert_eq!(
        c.ecwid_requests,
        c.ecwid_batches + r.batch_polls,
        "batch POSTs plus polling, nothing else: {c:?}"
    );
    for (i, p) in created.iter().enumerate() {
        assert_eq!(ecwid(&h, p), Some(d((i % 7) as i64)), "{}", p.sku);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untracked_lightspeed_product_becomes_unlimited_in_ecwid() {
    let h = Harness::start().await;
    let gift = h.sandbox.add_product(ProductSpec {
        sku: "GIFT-WRAP".into(),
        name: "Gift wrap".into(),
        price_excl_tax: d(2),
        ecwid_stock: Some(d(5)),
        has_inventory: false,
        ..ProductSpec::default()
    });
    let r = h.mirror_once().await;
    assert_eq!(r.set_unlimited, 1, "{r:#?}");
    assert_eq!(ecwid(&h, &gift), None);
    assert_eq!(
        h.sandbox.ecwid_product(gift.ecwid_id()).unwrap()["unlimited"],
        true
    );
    assert_eq!(h.mirror_once().await.written, 0, "written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinked_and_ambiguous_skus_are_never_touched_and_are_counted() {
    let h = Harness::start().await;
    let spec = |sku: &str, stock: i64| ProductSpec {
        sku: sku.into(),
        name: sku.into(),
        price_excl_tax: d(1),
        ecwid_stock: Some(d(stock)),
        ls_stock: d(stock),
        ..ProductSpec::default()
    };
    // Lightspeed only; two Ecwid products with one SKU; two Lightspeed products with one SKU.
    h.sandbox.add_ls_product_only(spec("LS-ONLY", 4));
    let e1 = h.sandbox.add_ecwid_product_only(spec("DUP-ECWID", 9));
    let e2 = h.sandbox.add_ecwid_product_only(spec("DUP-ECWID", 9));
    let l1 = h.sandbox.add_ls_product_only(spec("DUP-ECWID", 9));
    let e3 = h.sandbox.add_ecwid_product_only(spec("DUP-LS", 8));
    let l2 = h.sandbox.add_ls_product_only(spec("DUP-LS", 8));
    let l3 = h.sandbox.add_ls_product_only(spec("DUP-LS", 8));
    bootstrap(&h).await;

    let outlet = h.sandbox.ids().outlet_id;
    for p in [&l1, &l2, &l3] {
        h.sandbox.set_ls_inventory(p.ls_id(), &outlet, 1);
    }
    let r = h.mirror_once().await;
    assert_eq!(r.written, 0);
    assert_eq!(r.ambiguous, 3, "{r:#?}");
    assert!(r.ambiguous_skus.contains(&"DUP-ECWID".to_string()));
    assert!(r.ambiguous_skus.contains(&"DUP-LS".to_string()));
    assert_eq!(h.sandbox.counters().ecwid_product_writes, 0);
    for p in [&e1, &e2] {
        assert_eq!(ecwid(&h, p), Some(d(9)));
    }
    assert_eq!(ecwid(&h, &e3), Some(d(8)));

    let only = h
        .store
        .list_catalog_links(h.connection.store_id)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.sku == "LS-ONLY")
        .unwrap();
    h.sandbox
        .set_ls_inventory(&only.lightspeed_product_id, &outlet, 2);
    let r = h.mirror_once().await;
    assert_eq!((r.unlinked, r.written), (1, 0));
    assert_eq!(r.unlinked_skus, vec!["LS-ONLY".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_run_finishes_later_and_drops_nothing() {
    let h = Harness::start_with(HarnessOptions {
        sandbox: SandboxConfig {
            ecwid_rate_limit: 4,
            ecwid_rate_window: Duration::from_secs(1),
            // 5 a second: the run's own quiet check (two requests) leaves it 3.
            ls_rate_limit: 5,
            ls_rate_window: Duration::from_secs(1),
            ..SandboxConfig::default()
        },
        ..HarnessOptions::default()
    })
    .await;
    let ids = h.sandbox.ids();
    let mirror = h.mirror_with(MirrorConfig {
        lightspeed_reserve: 0,
        batch_poll_interval: Duration::from_millis(20),
        ..MirrorConfig::default()
    });
    let conn = h.connection.clone();
    let first = mirror.mirror_connection(&conn).await.unwrap();
    assert_eq!(first.outcome, RunOutcome::Completed);

    let products = [&ids.mug, &ids.tote, &ids.sticker, &ids.toys];
    for (i, p) in products.iter().enumerate() {
        h.sandbox
            .set_ls_inventory(p.ls_id(), &ids.outlet_id, i as i64);
    }
    for (s, l) in [("TSHIRT-S", 1), ("TSHIRT-M", 2), ("TSHIRT-L", 3)] {
        h.sandbox
            .set_ls_inventory(ids.tshirt.variant(s).ls_id(), &ids.outlet_id, l);
    }
    // On top of the real limits, explicit 429s on both sides.
    h.sandbox.inject(Fault::once(
        Route::LsAny,
        FaultKind::RateLimit {
            retry_after: Duration::from_millis(1500),
        },
    ));
    h.sandbox.inject(Fault::times(
        Route::EcwidAny,
        FaultKind::RateLimit {
            retry_after: Duration::from_secs(1),
        },
        2,
    ));
    h.sandbox.reset_counters();
    let started = Instant::now();
    let r = mirror.mirror_connection(&conn).await.unwrap();
    let c = h.sandbox.counters();
    assert_eq!(r.outcome, RunOutcome::Completed);
    assert!(r.rate_limit_waits >= 3, "{r:#?}");
    assert!(c.ecwid_rate_limited >= 2 && c.ls_rate_limited >= 1, "{c:?}");
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    assert_eq!(r.written, 7);
    for (i, p) in products.iter().enumerate() {
        assert_eq!(ecwid(&h, p), Some(d(i as i64)), "{}", p.sku);
    }
    for (s, l) in [("TSHIRT-S", 1), ("TSHIRT-M", 2), ("TSHIRT-L", 3)] {
        let v = ids.tshirt.variant(s);
        assert_eq!(
            h.sandbox
                .ecwid_stock(ids.tshirt.ecwid_id(), Some(v.combination_id())),
            Some(d(l))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_while_one_holds_the_cursor_is_busy() {
    let h = Harness::start().await;
    bootstrap(&h).await;
    let store_id = h.connection.store_id;
    let cursor = h
        .store
        .get_inventory_cursor(store_id)
        .await
        .unwrap()
        .unwrap();
    let mut held = cursor.clone();
    held.lease_until = Some(chrono::Utc::now() + chrono::Duration::seconds(30));
    held.version += 1;
    h.store
        .put_inventory_cursor(&held, Some(cursor.version))
        .await
        .unwrap();
    h.sandbox
        .pos_sale(h.sandbox.ids().mug.ls_id(), 1, &h.sandbox.ids().register_id);
    let r = h.mirror_once().await;
    assert_eq!(r.outcome, RunOutcome::Busy);
    assert_eq!(h.sandbox.counters().ecwid_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_drift_and_fix_writes_lightspeeds_level_to_ecwid() {
    let h = Harness::start().await;
    bootstrap(&h).await;
    let ids = h.sandbox.ids();
    // Drift made by hand in Ecwid (the mirror leaves it until Lightspeed changes).
    h.sandbox
        .set_ecwid_stock(ids.mug.ecwid_id(), None, Some(3))
        .unwrap();
    h.sandbox
        .set_ecwid_stock(
            ids.tshirt.ecwid_id(),
            Some(ids.tshirt.variant("TSHIRT-S").combination_id()),
            None,
        )
        .unwrap();
    let mirror = h.mirror();
    let conn = h.connection.clone();

    let report = els_cli::ops::reconcile_with_progress(&mirror, &conn, false, false)
        .await
        .unwrap();
    assert_eq!(report.drift.len(), 2, "{report:#?}");
    let mug_row = report.drift.iter().find(|r| r.sku == "MUG-001").unwrap();
    assert_eq!(mug_row.expected, StockLevel::Quantity(30));
    assert_eq!(mug_row.actual, Some(StockLevel::Quantity(3)));
    let shirt_row = report.drift.iter().find(|r| r.sku == "TSHIRT-S").unwrap();
    assert_eq!(
        shirt_row.target,
        EcwidTarget::combination(
            ids.tshirt.ecwid_id(),
            ids.tshirt.variant("TSHIRT-S").combination_id()
        )
    );
    assert_eq!(shirt_row.actual, Some(StockLevel::Unlimited));
    let text = els_cli::ops::describe_reconcile(&report, false);
    assert!(
        text.contains("MUG-001") && text.contains("drift 2"),
        "{text}"
    );
    assert_eq!(
        h.sandbox.counters().ecwid_product_writes,
        0,
        "a report writes nothing"
    );

    let fixed = els_cli::ops::reconcile_with_progress(&mirror, &conn, true, false)
        .await
        .unwrap();
    assert_eq!((fixed.fixed, fixed.fix_failed), (2, 0));
    assert_eq!(ecwid(&h, &ids.mug), Some(d(30)));
    assert_eq!(
        h.sandbox.ecwid_stock(
            ids.tshirt.ecwid_id(),
            Some(ids.tshirt.variant("TSHIRT-S").combination_id())
        ),
        Some(d(10))
    );
    let c = h.sandbox.counters();
    assert_eq!(c.ls_requests, c.ls_reads, "Lightspeed is only read (S2)");
    let again = els_cli::ops::reconcile_with_progress(&mirror, &conn, false, false)
        .await
        .unwrap();
    assert!(again.drift.is_empty(), "{again:#?}");
    assert_eq!(again.in_sync, again.linked);
    // The fix was recorded as pushed: the mirror does not write it again.
    assert_eq!(h.mirror_once().await.written, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_and_reconcile_work_on_dynamodb() {
    let endpoint = els_tests::moto::moto_endpoint().await;
    let config = els_tests::moto::aws_config(&endpoint).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("els-inventory-{}", uuid::Uuid::new_v4().simple());
    els_store_aws::DynamoStore::create_table(&client, &table)
        .await
        .unwrap();
    let store = els_store_aws::DynamoStore::new(client, table);
    let sandbox = els_sandbox::Sandbox::start(SandboxConfig::default())
        .await
        .unwrap();
    let conn = els_cli::ops::upsert_connection(
        &store,
        els_cli::sandbox_setup::sandbox_connection(&sandbox),
    )
    .await
    .unwrap();
    let mirror = els_core::inventory::mirror::InventoryMirror::new(
        store.clone(),
        els_ecwid::EcwidClient::new(sandbox.ecwid_api_url(), Duration::from_secs(5)).unwrap(),
        els_lightspeed::LightspeedClient::new(
            els_cli::sandbox_setup::lightspeed_url_template(&sandbox),
            Duration::from_secs(5),
        )
        .unwrap(),
        els_http::TokioClock,
        MirrorConfig::default(),
    );
    let ids = sandbox.ids();
    let first = mirror.mirror_connection(&conn).await.unwrap();
    assert_eq!((first.outcome, first.written), (RunOutcome::Completed, 0));

    sandbox.pos_sale(ids.mug.ls_id(), 5, &ids.register_id);
    sandbox.set_ls_inventory(ids.tshirt.variant("TSHIRT-M").ls_id(), &ids.outlet_id, 1);
    let r = mirror.mirror_connection(&conn).await.unwrap();
    assert_eq!(r.written, 2);
    assert_eq!(sandbox.ecwid_stock(ids.mug.ecwid_id(), None), Some(d(25)));
    assert_eq!(
        sandbox.ecwid_stock(
            ids.tshirt.ecwid_id(),
            Some(ids.tshirt.variant("TSHIRT-M").combination_id())
        ),
        Some(d(1))
    );
    assert_eq!(mirror.mirror_connection(&conn).await.unwrap().written, 0);

    sandbox
        .set_ecwid_stock(ids.tote.ecwid_id(), None, Some(1))
        .unwrap();
    let fixed = els_cli::ops::reconcile_with_progress(&mirror, &conn, true, false)
        .await
        .unwrap();
    assert_eq!((fixed.drift.len(), fixed.fixed), (1, 1));
    assert_eq!(sandbox.ecwid_stock(ids.tote.ecwid_id(), None), Some(d(25)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecwid_product_created_later_gets_linked() {
    let h = Harness::start().await;
    let spec = ProductSpec {
        sku: "LATE-1".into(),
        name: "Late".into(),
        price_excl_tax: d(3),
        ecwid_stock: Some(d(6)),
        ls_stock: d(6),
        variants: vec![],
        ..ProductSpec::default()
    };
    let l = h.sandbox.add_ls_product_only(spec.clone());
    let r = bootstrap(&h).await;
    assert!(r.unlinked_skus.contains(&"LATE-1".to_string()));
    let e = h.sandbox.add_ecwid_product_only(spec);
    // A new lookup is due once the recheck interval passed (zero here).
    let mirror = h.mirror_with(MirrorConfig {
        recheck_unlinked_after: Duration::ZERO,
        ..MirrorConfig::default()
    });
    h.sandbox
        .set_ls_inventory(l.ls_id(), &h.sandbox.ids().outlet_id, 2);
    let r = mirror.mirror_connection(&h.connection).await.unwrap();
    assert_eq!((r.unlinked, r.written), (0, 1), "{r:#?}");
    assert_eq!(ecwid(&h, &e), Some(d(2)));
}

// ---------------------------------------------------------------------------------------
// Ecwid batches: deduplication keys, failed and queued batches
// ---------------------------------------------------------------------------------------

/// The harness's Ecwid client, noting the `deduplicationKey` of every batch POST.
struct KeyRecorder {
    inner: els_ecwid::EcwidClient,
    keys: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl els_core::EcwidApi for KeyRecorder {
    async fn get_order(
        &self,
        conn: &Connection,
        order_id: &str,
    ) -> Result<els_core::ecwid::EcwidOrder, els_core::ApiError> {
        self.inner.get_order(conn, order_id).await
    }
    async fn search_orders(
        &self,
        conn: &Connection,
        query: &els_core::ecwid::OrderQuery,
    ) -> Result<els_core::ecwid::OrderSearchPage, els_core::ApiError> {
        self.inner.search_orders(conn, query).await
    }
    async fn find_products_by_sku(
        &self,
        conn: &Connection,
        sku: &els_core::Sku,
    ) -> Result<Vec<els_core::inventory::EcwidCatalogProduct>, els_core::ApiError> {
        self.inner.find_products_by_sku(conn, sku).await
    }
    async fn list_products(
        &self,
        conn: &Connection,
        offset: u64,
        limit: u64,
    ) -> Result<els_core::inventory::EcwidProductPage, els_core::ApiError> {
        self.inner.list_products(conn, offset, limit).await
    }
    async fn set_stock(
        &self,
        conn: &Connection,
        target: &EcwidTarget,
        level: StockLevel,
    ) -> Result<(), els_core::ApiError> {
        self.inner.set_stock(conn, target, level).await
    }
    async fn submit_batch(
        &self,
        conn: &Connection,
        deduplication_key: &str,
        writes: &[(EcwidTarget, StockLevel)],
    ) -> Result<String, els_core::ApiError> {
        self.keys
            .lock()
            .unwrap()
            .push(deduplication_key.to_string());
        self.inner
            .submit_batch(conn, deduplication_key, writes)
            .await
    }
    async fn batch_status(
        &self,
        conn: &Connection,
        ticket: &str,
    ) -> Result<els_core::inventory::BatchStatus, els_core::ApiError> {
        self.inner.batch_status(conn, ticket).await
    }
}

type RecordingMirror = els_core::inventory::mirror::InventoryMirror<
    els_store_sqlite::SqliteStore,
    KeyRecorder,
    els_lightspeed::LightspeedClient,
    els_http::TokioClock,
>;

/// A mirror that writes the four seed products' levels in one batch (the threshold is 2),
/// polls every 20 ms, and notes the batch keys.
fn batching_mirror(h: &Harness, config: MirrorConfig) -> (RecordingMirror, KeyLog) {
    let keys = KeyLog::default();
    let timeout = Duration::from_secs(2);
    let mirror = els_core::inventory::mirror::InventoryMirror::new(
        h.store.clone(),
        KeyRecorder {
            inner: els_ecwid::EcwidClient::new(h.sandbox.ecwid_api_url(), timeout).unwrap(),
            keys: keys.0.clone(),
        },
        els_lightspeed::LightspeedClient::new(
            els_cli::sandbox_setup::lightspeed_url_template(&h.sandbox),
            timeout,
        )
        .unwrap(),
        els_http::TokioClock,
        MirrorConfig {
            batch_threshold: 2,
            batch_poll_interval: Duration::from_millis(20),
            retry_base: Duration::from_millis(20),
            ..config
        },
    );
    (mirror, keys)
}

#[derive(Default, Clone)]
struct KeyLog(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl KeyLog {
    /// The keys noted since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Gives the four seed products new Lightspeed levels (3, 4, 5, 6); returns them.
fn change_four_levels(h: &Harness) -> Vec<ProductIds> {
    let ids = h.sandbox.ids();
    let products = vec![ids.mug, ids.tote, ids.sticker, ids.toys];
    for (i, p) in products.iter().enumerate() {
        h.sandbox
            .set_ls_inventory(p.ls_id(), &ids.outlet_id, 3 + i as i64);
    }
    products
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_resent_under_a_new_key_and_the_next_run_gets_past_the_page() {
    let h = no_worker().await;
    bootstrap(&h).await;
    let (mirror, keys) = batching_mirror(&h, MirrorConfig::default());
    let products = change_four_levels(&h);
    let before: Vec<_> = products.iter().map(|p| ecwid(&h, p)).collect();
    let cursor_before = h
        .store
        .get_inventory_cursor(h.connection.store_id)
        .await
        .unwrap()
        .unwrap();

    // Run 1: Ecwid fails the batch (every sub-request 503), and again the re-send of it
    // under a fresh key. The page fails; nothing is written.
    h.sandbox
        .inject(Fault::times(Route::EcwidBatch, FaultKind::Status(503), 2));
    let err = mirror
        .mirror_connection(&h.connection)
        .await
        .expect_err("the page fails");
    assert_eq!(err.report.written, 0, "{err}");
    let run1 = keys.take();
    assert_eq!(run1.len(), 2, "the page's key, then a fresh one: {run1:?}");
    assert_ne!(run1[0], run1[1]);
    let failed_at = products.iter().map(|p| ecwid(&h, p)).collect::<Vec<_>>();
    assert_eq!(failed_at, before, "nothing written");
    let cursor = h
        .store
        .get_inventory_cursor(h.connection.store_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.inventory_version, cursor_before.inventory_version);
    assert!(h.sandbox.faults().is_empty(), "both failures were used");

    // Run 2 (a minute later in production; Ecwid still remembers both keys and their
    // failed results). The page's key is asked first and gets the old failed result
    // without running anything; the writes then go under a key Ecwid has never seen, and
    // the page is done.
    h.sandbox.reset_counters();
    let r = mirror.mirror_connection(&h.connection).await.unwrap();
    let run2 = keys.take();
    assert_eq!(run2.len(), 2, "{run2:?}");
    assert_eq!(run2[0], run1[0], "the page's own key: asked again");
    assert!(
        !run1.contains(&run2[1]),
        "the POST that applied carried a new key: {run1:?} then {run2:?}"
    );
    assert_eq!(r.outcome, RunOutcome::Completed);
    assert_eq!((r.written, r.written_by_batch), (4, 4), "{r:#?}");
    assert_eq!(h.sandbox.counters().ecwid_product_writes, 4, "each once");
    for (i, p) in products.iter().enumerate() {
        assert_eq!(ecwid(&h, p), Some(d(3 + i as i64)), "{}", p.sku);
    }
    let cursor = h
        .store
        .get_inventory_cursor(h.connection.store_id)
        .await
        .unwrap()
        .unwrap();
    assert!(cursor.inventory_version > cursor_before.inventory_version);
    let again = mirror.mirror_connection(&h.connection).await.unwrap();
    assert_eq!((again.written, again.inventory_pages), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_batch_with_null_responses_is_polled_again_and_then_applied() {
    let h = no_worker().await;
    bootstrap(&h).await;
    let (mirror, keys) = batching_mirror(&h, MirrorConfig::default());
    let products = change_four_levels(&h);

    // Ecwid answers QUEUED, QUEUED, IN_PROGRESS with `"responses": null`, then COMPLETED.
    h.sandbox.inject(Fault::once(
        Route::EcwidBatch,
        FaultKind::Queued { polls: 3 },
    ));
    let r = mirror.mirror_connection(&h.connection).await.unwrap();
    assert_eq!(r.outcome, RunOutcome::Completed);
    assert_eq!((r.batches, r.batch_polls), (1, 4), "{r:#?}");
    assert_eq!((r.written, r.written_by_batch), (4, 4));
    assert_eq!(keys.take().len(), 1, "one POST");
    for (i, p) in products.iter().enumerate() {
        assert_eq!(ecwid(&h, p), Some(d(3 + i as i64)), "{}", p.sku);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_still_queued_when_polling_gives_up_is_joined_by_the_next_run_not_sent_twice() {
    let h = no_worker().await;
    bootstrap(&h).await;
    let (mirror, keys) = batching_mirror(
        &h,
        MirrorConfig {
            batch_poll_timeout: Duration::from_millis(100),
            ..MirrorConfig::default()
        },
    );
    let products = change_four_levels(&h);
    let before: Vec<_> = products.iter().map(|p| ecwid(&h, p)).collect();

    // Ecwid keeps the batch queued past this run's polling: its outcome is unknown.
    h.sandbox.inject(Fault::once(
        Route::EcwidBatch,
        FaultKind::Queued { polls: 12 },
    ));
    let err = mirror
        .mirror_connection(&h.connection)
        .await
        .expect_err("the page is not done");
    assert!(err.to_string().contains("after polling"), "{err}");
    let run1 = keys.take();
    assert_eq!(run1.len(), 1, "no re-send of a batch that may still run");
    assert_eq!(
        products.iter().map(|p| ecwid(&h, p)).collect::<Vec<_>>(),
        before
    );

    // The next run sends the page under the same key: Ecwid answers with the queued batch,
    // which the run waits for. The levels are written once.
    h.sandbox.reset_counters();
    let (mirror, keys) = batching_mirror(&h, MirrorConfig::default());
    let r = mirror.mirror_connection(&h.connection).await.unwrap();
    assert_eq!(keys.take(), run1, "the same key");
    assert_eq!((r.written, r.written_by_batch), (4, 4), "{r:#?}");
    assert_eq!(h.sandbox.counters().ecwid_product_writes, 4, "run once");
    for (i, p) in products.iter().enumerate() {
        assert_eq!(ecwid(&h, p), Some(d(3 + i as i64)), "{}", p.sku);
    }
}

/// A cursor written before generations were recorded (an upgrade) was read on the legacy
/// feeds: a deployment now on 2026-07 reads its feeds from the start once, not from the
/// legacy position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_cursor_without_a_generation_restarts_the_dated_feeds_once() {
    let h = Harness::start_with(HarnessOptions {
        lightspeed_api: els_core::lightspeed::LsApiVersion::Legacy,
        ..HarnessOptions::default()
    })
    .await;
    bootstrap(&h).await;
    let id = h.connection.store_id;
    let mut old = h.store.get_inventory_cursor(id).await.unwrap().unwrap();
    assert!(old.inventory_version > 0);
    old.api_version = None;
    old.version += 1;
    h.store
        .put_inventory_cursor(&old, Some(old.version - 1))
        .await
        .unwrap();
    // The stack is upgraded to the dated default; the store has no setting of its own.
    let dated = h.mirror_with_api(els_core::lightspeed::LsApiVersion::LATEST);
    let conn = h.store.get_connection(id).await.unwrap().unwrap();
    let mug = h.sandbox.ids().mug;
    h.sandbox
        .pos_sale(mug.ls_id(), 1, &h.sandbox.ids().register_id);
    let r = dated.mirror_connection(&conn).await.unwrap();
    assert_eq!(r.inventory_cursor_from, 0, "{r:#?}");
    assert_eq!((ecwid(&h, &mug), r.written), (Some(d(29)), 1));
    let after = h.store.get_inventory_cursor(id).await.unwrap().unwrap();
    assert_eq!(after.api_version.as_deref(), Some("2026-07"));
    let again = dated.mirror_connection(&conn).await.unwrap();
    assert_eq!((again.written, again.inventory_pages), (0, 0));
}
