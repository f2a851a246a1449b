//! The contract every state adapter (each port of [`StateStore`]) and [`WorkQueue`] adapter
//! must meet: SQLite, DynamoDB/SQS on moto, and the in-memory store. Each adapter's test
//! file runs the same functions: one per port, and [`state_store_contract`] for all of them.
//!
//! State functions pick their own store ids, so they may share one store and run in
//! parallel. Queue functions each need a fresh, empty queue.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use els_core::customers::{CustomerLink, LinkState};
use els_core::inventory::{
    CatalogLink, CatalogLinkUpdate, EcwidTarget, InventoryCursor, LinkStatus, PushedStock,
    StockLevel,
};
use els_core::ledger::{
    self, ClaimDecision, LedgerEntry, LedgerLine, OrderKey, OrderState, Outcome, Reason,
};
use els_core::ports::{
    Delivery, EventDelivery, EventRecordOutcome, OrderMessage, ProductLink, WebhookEventRecord,
};
use els_core::{
    Connection, ConnectionStore, InventoryStateStore, LedgerStore, LightspeedAccount, LinkStore,
    ReasonCode, Secret, Settings, StateStore, StoreError, WebhookEventStore, WorkQueue,
};
use els_core::{Sku, StoreId};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// A store id no other test uses.
pub fn unique_store_id() -> StoreId {
    // Below 2^53 so it survives any JSON number, and never 0.
    StoreId::literal((uuid::Uuid::new_v4().as_u128() % (1 << 52)) as u64 + 1)
}

pub fn sample_connection(store_id: StoreId) -> Connection {
    Connection {
        store_id,
        ecwid_token: Secret::new(format!("secret_{store_id}")),
        lightspeed: LightspeedAccount {
            domain_prefix: "contractshop".parse().unwrap(),
            access_token: Secret::new("lsxs_at_1"),
            refresh_token: Some(Secret::new("lsxs_rt_1")),
            expires_at: Some(Utc::now()),
            refresh_lease_until: None,
        },
        register_id: "reg-1".into(),
        outlet_id: "outlet-1".into(),
        user_id: "user-1".into(),
        payment_type_id: "pay-1".into(),
        shipping_product_id: Some("ship-1".into()),
        discount_product_id: None,
        fees_product_id: None,
        gift_card_payment_type_id: None,
        refund_product_id: None,
        go_live_at: None,
        restored_at: None,
        // Round-trips on every adapter: the webhooks' token hash and ids.
        lightspeed_webhooks: Some(els_core::ls_webhooks::LsWebhooks {
            token_sha256: els_core::ls_webhooks::token_sha256("contract-token"),
            url_base: "https://hooks.example/webhooks/lightspeed/1".into(),
            ids: vec!["wh-inventory".into(), "wh-product".into()],
            registered_at: Utc::now(),
        }),
        settings: Settings {
            post_sales: true,
            sync_inventory: false,
            lightspeed_api_version: Some(els_core::lightspeed::LsApiVersion::Legacy),
            post_refunds: false,
            restock_refunds: true,
        },
        version: 1,
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected a conflict, got {other:?}"),
    }
}

/// Of two racing writes exactly one wins and the other is a conflict. Returns which won.
fn exactly_one_wins(a: Result<(), StoreError>, b: Result<(), StoreError>, what: &str) -> bool {
    match (&a, &b) {
        (Ok(()), Err(StoreError::Conflict(_))) => true,
        (Err(StoreError::Conflict(_)), Ok(())) => false,
        _ => panic!("{what}: expected exactly one winner and one conflict, got {a:?} and {b:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The state ports
// ---------------------------------------------------------------------------------------

/// The whole state contract: every port.
pub async fn state_store_contract<S: StateStore>(store: &S) {
    connection_contract(store).await;
    ledger_contract(store).await;
    link_contract(store).await;
    inventory_state_contract(store).await;
    webhook_event_contract(store).await;
}

/// [`LedgerStore`]: claims, listing, pending web sales.
pub async fn ledger_contract<S: LedgerStore>(store: &S) {
    ledger_claim_contract(store).await;
    list_orders_contract(store).await;
    pending_web_sales_contract(store).await;
    pending_quantities_contract(store, |_| {}).await;
}

/// [`LinkStore`]: product and customer links.
pub async fn link_contract<S: LinkStore>(store: &S) {
    product_link_contract(store).await;
    customer_link_contract(store).await;
}

/// [`ConnectionStore`]: create-only put, version-conditioned update, conflicts, listing.
pub async fn connection_contract<S: ConnectionStore>(store: &S) {
    let id = unique_store_id();
    assert_eq!(store.get_connection(id).await.unwrap(), None);

    let v1 = sample_connection(id);
    store.put_connection(&v1, None).await.unwrap();
    assert_eq!(store.get_connection(id).await.unwrap(), Some(v1.clone()));
    assert_conflict(
        store.put_connection(&v1, None).await,
        "a second create of the same connection",
    );

    // A refresh-token rotation: conditional on the version read.
    let mut v2 = v1.clone();
    v2.lightspeed.access_token = Secret::new("lsxs_at_2");
    v2.lightspeed.refresh_token = Some(Secret::new("lsxs_rt_2"));
    v2.version = 2;
    store.put_connection(&v2, Some(1)).await.unwrap();
    assert_eq!(store.get_connection(id).await.unwrap(), Some(v2.clone()));

    let mut stale = v1.clone();
    stale.lightspeed.refresh_token = Some(Secret::new("lsxs_rt_stale"));
    stale.version = 2;
    assert_conflict(
        store.put_connection(&stale, Some(1)).await,
        "an update from a stale version",
    );
    assert_conflict(
        store.put_connection(&v2, Some(7)).await,
        "an update from a version never stored",
    );
    assert_eq!(store.get_connection(id).await.unwrap(), Some(v2.clone()));

    // Two rotations racing from the same read: one wins.
    let (mut a, mut b) = (v2.clone(), v2.clone());
    a.version = 3;
    a.lightspeed.refresh_token = Some(Secret::new("lsxs_rt_a"));
    b.version = 3;
    b.lightspeed.refresh_token = Some(Secret::new("lsxs_rt_b"));
    let (ra, rb) = futures::join!(
        store.put_connection(&a, Some(2)),
        store.put_connection(&b, Some(2))
    );
    let winner = if exactly_one_wins(ra, rb, "racing connection updates") {
        a
    } else {
        b
    };
    assert_eq!(
        store.get_connection(id).await.unwrap(),
        Some(winner.clone())
    );

    // An update of a connection that does not exist is a conflict, not an upsert.
    let ghost = sample_connection(unique_store_id());
    assert_conflict(
        store.put_connection(&ghost, Some(1)).await,
        "an update of a missing connection",
    );
    assert_eq!(store.get_connection(ghost.store_id).await.unwrap(), None);

    let listed = store.list_connections().await.unwrap();
    let found: Vec<_> = listed.iter().filter(|c| c.store_id == id).collect();
    assert_eq!(
        found,
        vec![&winner],
        "list_connections holds the latest version"
    );
}

fn expect_claim(decision: ClaimDecision) -> (LedgerEntry, Option<u64>) {
    match decision {
        ClaimDecision::Claim {
            entry,
            expected_version,
            ..
        } => (*entry, expected_version),
        other => panic!("expected a claim, got {other:?}"),
    }
}

/// The ledger: racing claims from the same read, a finish from a stale copy, final state.
pub async fn ledger_claim_contract<S: LedgerStore>(store: &S) {
    let key = OrderKey::new(unique_store_id(), "K8XTQ");
    let lease = ChronoDuration::seconds(60);
    assert_eq!(store.load_order(&key).await.unwrap(), None);

    // Two workers see no item and both claim: exactly one create wins.
    let now = Utc::now();
    let (a, a_expected) = expect_claim(ledger::claim(None, &key, now, lease));
    let (b, b_expected) = expect_claim(ledger::claim(
        None,
        &key,
        now + ChronoDuration::milliseconds(1),
        lease,
    ));
    assert_eq!((a_expected, b_expected), (None, None));
    let (ra, rb) = futures::join!(
        store.save_order(&a, a_expected),
        store.save_order(&b, b_expected)
    );
    let first = if exactly_one_wins(ra, rb, "racing first claims") {
        a
    } else {
        b
    };
    assert_eq!(store.load_order(&key).await.unwrap(), Some(first.clone()));
    assert_eq!(first.state, OrderState::Posting);
    assert_eq!(first.version, 1);

    // A retryable failure releases it; the release is conditional on the claim's version.
    let released = ledger::finish(
        &first,
        Outcome::Released {
            error: "429".into(),
            post_may_exist: false,
        },
        Utc::now(),
    );
    store
        .save_order(&released, Some(first.version))
        .await
        .unwrap();

    // Two redeliveries claim from the same read of the released item: one wins.
    let read = store
        .load_order(&key)
        .await
        .unwrap()
        .expect("released item");
    assert_eq!(read, released);
    let now = Utc::now();
    let (c, c_expected) = expect_claim(ledger::claim(Some(&read), &key, now, lease));
    let (d, d_expected) = expect_claim(ledger::claim(Some(&read), &key, now, lease));
    assert_eq!(c_expected, Some(read.version));
    let (rc, rd) = futures::join!(
        store.save_order(&c, c_expected),
        store.save_order(&d, d_expected)
    );
    let second = if exactly_one_wins(rc, rd, "racing claims of a released order") {
        c
    } else {
        d
    };
    assert_eq!(second.attempts, 2);

    // The first holder, whose lease was taken over, finishes from its stale copy: conflict.
    let late = ledger::finish(
        &first,
        Outcome::Posted {
            sale_id: "sale-from-stale-holder".into(),
            adopted: false,
        },
        Utc::now(),
    );
    assert_conflict(
        store.save_order(&late, Some(first.version)).await,
        "a finish from a stale claim",
    );
    // A create over an existing item is a conflict too.
    assert_conflict(
        store.save_order(&late, None).await,
        "a create of an existing order",
    );

    // The current holder records the order's facts (exact decimals) and finishes.
    let with_facts = ledger::with_order_facts(
        &second,
        Decimal::new(4_599, 2),
        vec![
            LedgerLine {
                sku: "MUG-001".into(),
                quantity: Decimal::new(25, 1),
            },
            LedgerLine {
                sku: "TSHIRT-L".into(),
                quantity: Decimal::new(1, 0),
            },
        ],
    );
    let posted = ledger::finish(
        &with_facts,
        Outcome::Posted {
            sale_id: "sale-1".into(),
            adopted: false,
        },
        Utc::now(),
    );
    store
        .save_order(&posted, Some(second.version))
        .await
        .unwrap();
    let stored = store.load_order(&key).await.unwrap().expect("posted item");
    assert_eq!(stored, posted);
    assert_eq!(stored.state, OrderState::Posted);
    assert_eq!(stored.sale_id.as_deref(), Some("sale-1"));
    assert_eq!(stored.total, Some(Decimal::new(4_599, 2)));
    assert_eq!(stored.lines[0].quantity.to_string(), "2.5");
    assert_eq!(
        ledger::claim(Some(&stored), &key, Utc::now(), lease),
        ClaimDecision::AlreadyPosted {
            sale_id: "sale-1".into()
        }
    );
    posted_order_returns(store, &stored).await;
}

/// A posted order's returns (issue #15) round-trip and take the same version conditions:
/// the refund claim, the pending return written before the POST, the started return's id,
/// the recorded return; a stale copy conflicts.
async fn posted_order_returns<S: LedgerStore>(store: &S, posted: &LedgerEntry) {
    let now = Utc::now();
    let lease = chrono::Duration::seconds(60);
    let ledger::ReturnClaim::Claim { entry, expected } =
        ledger::claim_returns(posted, now, lease, chrono::Duration::zero())
    else {
        panic!("the refund work of a posted order can be claimed");
    };
    store.save_order(&entry, Some(expected)).await.unwrap();
    let pending = ledger::PendingReturn {
        seq: 1,
        kind: ledger::ReturnKind::Restock,
        amount: Decimal::new(1_234, 2),
        invoice_number: ledger::return_invoice_number(&posted.invoice_number, 1),
        return_id: None,
        may_exist: false,
        payments: vec![("pay-1".into(), Decimal::new(1_234, 2))],
        units: Vec::new(),
    };
    let begun = ledger::begin_return(&entry, pending, now);
    store.save_order(&begun, Some(entry.version)).await.unwrap();
    let started = ledger::return_started(&begun, "return-1", now);
    store
        .save_order(&started, Some(begun.version))
        .await
        .unwrap();
    assert!(matches!(
        store.save_order(&started, Some(begun.version)).await,
        Err(els_core::StoreError::Conflict(_))
    ));
    let done = ledger::finish_returns(
        &started,
        ledger::ReturnOutcome::Done {
            sale_id: "return-1".into(),
            adopted: false,
        },
        now,
    );
    store
        .save_order(&done, Some(started.version))
        .await
        .unwrap();
    let stored = store.load_order(&posted.key).await.unwrap().unwrap();
    assert_eq!(stored, done);
    assert_eq!(stored.state, OrderState::Posted);
    assert_eq!(stored.returns.done.len(), 1);
    assert_eq!(stored.returns.returned(), Decimal::new(1_234, 2));
    assert_eq!(
        stored.returns.refunded_by_type(),
        vec![("pay-1".to_string(), Decimal::new(1_234, 2))]
    );
    assert!(stored.returns.pending.is_none() && stored.returns.lease_until.is_none());
}

/// Writes a claimed order created at `created_at`, then applies `outcome` if any.
async fn seed_order<S: LedgerStore>(
    store: &S,
    key: &OrderKey,
    created_at: DateTime<Utc>,
    outcome: Option<Outcome>,
) -> LedgerEntry {
    let (claimed, expected) = expect_claim(ledger::claim(
        None,
        key,
        created_at,
        ChronoDuration::seconds(60),
    ));
    store.save_order(&claimed, expected).await.unwrap();
    let Some(outcome) = outcome else {
        return claimed;
    };
    let done = ledger::finish(&claimed, outcome, created_at + ChronoDuration::seconds(1));
    store
        .save_order(&done, Some(claimed.version))
        .await
        .unwrap();
    done
}

/// `list_orders`: one store only, oldest first by `created_at` (not by order id), the
/// state filter, and the limit.
pub async fn list_orders_contract<S: LedgerStore>(store: &S) {
    let store_id = unique_store_id();
    let t0 = Utc::now() - ChronoDuration::hours(1);
    let at = |minutes: i64| t0 + ChronoDuration::minutes(minutes);
    // Order ids sort in the opposite direction to their creation times.
    let o1 = seed_order(store, &OrderKey::new(store_id, "Z-1"), at(0), None).await;
    let o2 = seed_order(
        store,
        &OrderKey::new(store_id, "Y-2"),
        at(1),
        Some(Outcome::Posted {
            sale_id: "s2".into(),
            adopted: false,
        }),
    )
    .await;
    let o3 = seed_order(store, &OrderKey::new(store_id, "X-3"), at(2), None).await;
    let o4 = seed_order(
        store,
        &OrderKey::new(store_id, "W-4"),
        at(3),
        Some(Outcome::Parked(Reason::new(
            ReasonCode::UnknownSku,
            "SKU X",
        ))),
    )
    .await;
    // Another store's order, older than all of them, must not show up.
    let other = unique_store_id();
    seed_order(store, &OrderKey::new(other, "A-0"), at(-10), None).await;

    let list = |state, limit| store.list_orders(store_id, state, limit);
    assert_eq!(
        list(None, 10).await.unwrap(),
        vec![o1.clone(), o2.clone(), o3.clone(), o4.clone()]
    );
    assert_eq!(list(None, 2).await.unwrap(), vec![o1.clone(), o2.clone()]);
    assert_eq!(
        list(Some(OrderState::Posting), 10).await.unwrap(),
        vec![o1.clone(), o3.clone()]
    );
    assert_eq!(
        list(Some(OrderState::Posting), 1).await.unwrap(),
        vec![o1.clone()]
    );
    assert_eq!(
        list(Some(OrderState::Posted), 10).await.unwrap(),
        vec![o2.clone()]
    );
    assert_eq!(
        list(Some(OrderState::Parked), 10).await.unwrap(),
        vec![o4.clone()]
    );
    assert_eq!(list(Some(OrderState::Skipped), 10).await.unwrap(), vec![]);
    assert_eq!(list(None, 0).await.unwrap(), vec![]);
    assert_eq!(
        store
            .list_orders(unique_store_id(), None, 10)
            .await
            .unwrap(),
        vec![]
    );

    // A state change moves the item between filters.
    let released = ledger::finish(
        &o3,
        Outcome::Released {
            error: "timeout".into(),
            post_may_exist: true,
        },
        Utc::now(),
    );
    store.save_order(&released, Some(o3.version)).await.unwrap();
    assert_eq!(
        list(Some(OrderState::Posting), 10).await.unwrap(),
        vec![o1.clone()]
    );
    assert_eq!(
        list(Some(OrderState::Queued), 10).await.unwrap(),
        vec![released.clone()]
    );
}

/// Product links: missing, written, overwritten, and scoped to their store.
pub async fn product_link_contract<S: LinkStore>(store: &S) {
    let store_id = unique_store_id();
    let sku = &Sku::parse("TSHIRT-RED/M #1").unwrap();
    assert_eq!(store.get_product_link(store_id, sku).await.unwrap(), None);
    let link = ProductLink {
        sku: sku.clone(),
        lightspeed_product_id: "ls-1".into(),
        ecwid_product_id: Some(101),
        ecwid_combination_id: None,
        updated_at: Utc::now(),
    };
    store.put_product_link(store_id, &link).await.unwrap();
    assert_eq!(
        store.get_product_link(store_id, sku).await.unwrap(),
        Some(link.clone())
    );
    let relinked = ProductLink {
        lightspeed_product_id: "ls-2".into(),
        ecwid_combination_id: Some(7),
        updated_at: Utc::now(),
        ..link
    };
    store.put_product_link(store_id, &relinked).await.unwrap();
    assert_eq!(
        store.get_product_link(store_id, sku).await.unwrap(),
        Some(relinked)
    );
    assert_eq!(
        store
            .get_product_link(unique_store_id(), sku)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_product_link(store_id, &Sku::parse("TSHIRT-RED/L").unwrap())
            .await
            .unwrap(),
        None
    );
}

/// Customer links: put-if-absent (the claim), version-conditioned updates, conflicts, and
/// scoping to their store and email.
pub async fn customer_link_contract<S: LinkStore>(store: &S) {
    let store_id = unique_store_id();
    let email = "ann.lee+shop@example.com";
    assert_eq!(
        store.get_customer_link(store_id, email).await.unwrap(),
        None
    );

    // Two orders from one new email both try to claim: exactly one put-if-absent wins.
    let now = Utc::now();
    let lease = ChronoDuration::seconds(30);
    let a = CustomerLink::claim(store_id, email, now, lease);
    let b = CustomerLink::claim(
        store_id,
        email,
        now + ChronoDuration::milliseconds(1),
        lease,
    );
    let (ra, rb) = futures::join!(
        store.put_customer_link(&a, None),
        store.put_customer_link(&b, None)
    );
    let claim = if exactly_one_wins(ra, rb, "racing customer claims") {
        a
    } else {
        b
    };
    assert_eq!(
        store.get_customer_link(store_id, email).await.unwrap(),
        Some(claim.clone())
    );
    assert_conflict(
        store.put_customer_link(&claim, None).await,
        "a second create of the same customer link",
    );

    // Linking is conditional on the claim's version.
    let linked = claim.linked("cust-1", Utc::now());
    assert_eq!(linked.version, 2);
    assert_conflict(
        store.put_customer_link(&linked, Some(7)).await,
        "linking from a version never stored",
    );
    store
        .put_customer_link(&linked, Some(claim.version))
        .await
        .unwrap();
    let read = store.get_customer_link(store_id, email).await.unwrap();
    assert_eq!(read, Some(linked.clone()));
    assert_eq!(
        read.unwrap().state,
        LinkState::Linked {
            customer_id: "cust-1".into()
        }
    );

    // A worker whose claim was taken over cannot overwrite the link from its stale copy.
    let stale = claim.linked("cust-duplicate", Utc::now());
    assert_conflict(
        store.put_customer_link(&stale, Some(claim.version)).await,
        "linking from a stale claim",
    );
    assert_eq!(
        store.get_customer_link(store_id, email).await.unwrap(),
        Some(linked.clone())
    );

    // Two takeovers racing from the same read: one wins.
    let expired = CustomerLink::claim(store_id, "late@example.com", now, lease);
    store.put_customer_link(&expired, None).await.unwrap();
    let later = now + ChronoDuration::seconds(31);
    let (x, y) = (
        expired.reclaimed(later, lease),
        expired.reclaimed(later + ChronoDuration::milliseconds(1), lease),
    );
    let (rx, ry) = futures::join!(
        store.put_customer_link(&x, Some(expired.version)),
        store.put_customer_link(&y, Some(expired.version))
    );
    let taken = if exactly_one_wins(rx, ry, "racing customer takeovers") {
        x
    } else {
        y
    };
    assert_eq!(
        store
            .get_customer_link(store_id, "late@example.com")
            .await
            .unwrap(),
        Some(taken)
    );

    // An update of a link that does not exist is a conflict, not an upsert.
    let ghost = CustomerLink::claim(store_id, "ghost@example.com", now, lease).linked("c", now);
    assert_conflict(
        store.put_customer_link(&ghost, Some(1)).await,
        "an update of a missing customer link",
    );
    assert_eq!(
        store
            .get_customer_link(store_id, "ghost@example.com")
            .await
            .unwrap(),
        None
    );

    // Scoped to the store and the exact (normalised) email.
    assert_eq!(
        store
            .get_customer_link(unique_store_id(), email)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_customer_link(store_id, "lee+shop@example.com")
            .await
            .unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------
// The inventory mirror's state
// ---------------------------------------------------------------------------------------

/// [`InventoryStateStore`]: cursor, catalog links and the SKU index, pushed stock. (The
/// pending web sales the mirror reads are the ledger's: [`ledger_contract`].)
pub async fn inventory_state_contract<S: InventoryStateStore>(store: &S) {
    inventory_cursor_contract(store).await;
    catalog_link_contract(store).await;
    pushed_stock_contract(store).await;
}

fn cursor(store_id: StoreId, version: u64, inventory_version: u64) -> InventoryCursor {
    InventoryCursor {
        store_id,
        inventory_version,
        outlet_id: Some("outlet-1".into()),
        api_version: Some("2026-07".into()),
        products_version: 7,
        lease_until: Some(Utc::now()),
        pending_snapshot: [("mug-001".to_string(), Decimal::new(25, 1))].into(),
        updated_at: Utc::now(),
        version,
    }
}

/// The cursor: create-only, version-conditioned updates, one winner of two racing claims.
pub async fn inventory_cursor_contract<S: InventoryStateStore>(store: &S) {
    let id = unique_store_id();
    assert_eq!(store.get_inventory_cursor(id).await.unwrap(), None);
    let v1 = cursor(id, 1, 0);
    store.put_inventory_cursor(&v1, None).await.unwrap();
    assert_eq!(
        store.get_inventory_cursor(id).await.unwrap(),
        Some(v1.clone())
    );
    assert_conflict(
        store.put_inventory_cursor(&v1, None).await,
        "a second create of the cursor",
    );
    let mut v2 = cursor(id, 2, 1_639_940);
    v2.lease_until = None;
    v2.pending_snapshot.clear();
    store.put_inventory_cursor(&v2, Some(1)).await.unwrap();
    assert_eq!(
        store.get_inventory_cursor(id).await.unwrap(),
        Some(v2.clone())
    );
    assert_conflict(
        store
            .put_inventory_cursor(&cursor(id, 2, 99), Some(1))
            .await,
        "a cursor save from a stale version",
    );
    let (a, b) = (cursor(id, 3, 10), cursor(id, 3, 20));
    let (ra, rb) = futures::join!(
        store.put_inventory_cursor(&a, Some(2)),
        store.put_inventory_cursor(&b, Some(2))
    );
    let winner = if exactly_one_wins(ra, rb, "racing cursor claims") {
        a
    } else {
        b
    };
    assert_eq!(store.get_inventory_cursor(id).await.unwrap(), Some(winner));
    assert_conflict(
        store
            .put_inventory_cursor(&cursor(unique_store_id(), 2, 0), Some(1))
            .await,
        "an update of a missing cursor",
    );
}

fn link(id: &str, sku: &str, live: bool, target: Option<EcwidTarget>) -> CatalogLink {
    CatalogLink {
        lightspeed_product_id: id.into(),
        sku: sku.into(),
        sku_key: els_core::Sku::key_of(sku).unwrap_or_default(),
        has_inventory: true,
        live,
        status: if target.is_some() {
            LinkStatus::Linked
        } else {
            LinkStatus::Unresolved
        },
        target,
        ecwid_matches: u32::from(target.is_some()),
        checked_at: target.map(|_| Utc::now()),
        updated_at: Utc::now(),
    }
}

fn update(link: &CatalogLink, previous: Option<&CatalogLink>) -> CatalogLinkUpdate {
    CatalogLinkUpdate {
        link: link.clone(),
        previous_sku_key: previous.map(|p| p.sku_key.clone()),
    }
}

async fn owners<S: InventoryStateStore>(
    store: &S,
    store_id: StoreId,
    keys: &[&str],
) -> HashMap<String, Vec<String>> {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let mut found = store
        .lightspeed_products_with_sku(store_id, &keys)
        .await
        .unwrap();
    for ids in found.values_mut() {
        ids.sort();
    }
    found
}

/// Catalog links by Lightspeed id, and the SKU index of live links: duplicates show, a SKU
/// change or a deletion leaves the index, a blank SKU is never in it; reads of more than one
/// backend batch.
pub async fn catalog_link_contract<S: InventoryStateStore>(store: &S) {
    let id = unique_store_id();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store.get_catalog_links(id, &ids(&["a"])).await.unwrap(),
        vec![]
    );

    let a = link("a", "MUG-001", true, Some(EcwidTarget::product(11)));
    let b = link("b", "mug-001 ", true, None);
    let c = link(
        "c",
        "TSHIRT-S",
        true,
        Some(EcwidTarget::combination(12, 121)),
    );
    let blank = link("d", "  ", true, None);
    store
        .put_catalog_links(
            id,
            &[
                update(&a, None),
                update(&b, None),
                update(&c, None),
                update(&blank, None),
            ],
        )
        .await
        .unwrap();
    let mut got = store
        .get_catalog_links(id, &ids(&["c", "a", "zz", "a"]))
        .await
        .unwrap();
    got.sort_by(|x, y| x.lightspeed_product_id.cmp(&y.lightspeed_product_id));
    assert_eq!(got, vec![a.clone(), c.clone()]);
    assert_eq!(
        owners(store, id, &["mug-001", "tshirt-s", "", "none"]).await,
        HashMap::from([
            ("mug-001".to_string(), ids(&["a", "b"])),
            ("tshirt-s".to_string(), ids(&["c"])),
        ]),
        "a duplicate SKU shows as two owners; blank and unknown keys are absent"
    );

    // b's SKU changes, c is deleted in Lightspeed.
    let b2 = link("b", "MUG-002", true, None);
    let c2 = link(
        "c",
        "TSHIRT-S",
        false,
        Some(EcwidTarget::combination(12, 121)),
    );
    store
        .put_catalog_links(id, &[update(&b2, Some(&b)), update(&c2, Some(&c))])
        .await
        .unwrap();
    assert_eq!(
        owners(store, id, &["mug-001", "mug-002", "tshirt-s"]).await,
        HashMap::from([
            ("mug-001".to_string(), ids(&["a"])),
            ("mug-002".to_string(), ids(&["b"])),
        ])
    );
    let listed = store.list_catalog_links(id).await.unwrap();
    assert_eq!(
        listed,
        vec![a.clone(), b2.clone(), c2.clone(), blank.clone()]
    );
    assert_eq!(
        store.list_catalog_links(unique_store_id()).await.unwrap(),
        vec![]
    );

    // More links than one backend batch (DynamoDB reads 100 keys per request).
    let many: Vec<CatalogLink> = (0..230)
        .map(|i| {
            link(
                &format!("p{i:03}"),
                &format!("SKU-{i}"),
                true,
                Some(EcwidTarget::product(1000 + i)),
            )
        })
        .collect();
    let updates: Vec<_> = many.iter().map(|l| update(l, None)).collect();
    store.put_catalog_links(id, &updates).await.unwrap();
    let wanted: Vec<String> = many
        .iter()
        .map(|l| l.lightspeed_product_id.clone())
        .collect();
    let mut got = store.get_catalog_links(id, &wanted).await.unwrap();
    got.sort_by(|x, y| x.lightspeed_product_id.cmp(&y.lightspeed_product_id));
    assert_eq!(got, many);
    let keys: Vec<String> = many.iter().map(|l| l.sku_key.clone()).collect();
    assert_eq!(
        store
            .lightspeed_products_with_sku(id, &keys)
            .await
            .unwrap()
            .len(),
        230
    );
}

fn pushed(id: &str, level: StockLevel) -> PushedStock {
    PushedStock {
        lightspeed_product_id: id.into(),
        target: EcwidTarget::combination(5, 51),
        level,
        ls_level: Some(Decimal::new(125, 1)),
        pending: Decimal::new(2, 0),
        updated_at: Utc::now(),
    }
}

/// Pushed stock: upserts by Lightspeed id, batch reads.
pub async fn pushed_stock_contract<S: InventoryStateStore>(store: &S) {
    let id = unique_store_id();
    let a = pushed("a", StockLevel::Quantity(10));
    let mut b = pushed("b", StockLevel::Unlimited);
    b.ls_level = None;
    b.pending = Decimal::ZERO;
    store
        .put_pushed_stock(id, &[a.clone(), b.clone()])
        .await
        .unwrap();
    let mut got = store
        .get_pushed_stock(id, &["b".into(), "a".into(), "x".into()])
        .await
        .unwrap();
    got.sort_by(|x, y| x.lightspeed_product_id.cmp(&y.lightspeed_product_id));
    assert_eq!(got, vec![a.clone(), b.clone()]);
    let a2 = pushed("a", StockLevel::Quantity(0));
    store
        .put_pushed_stock(id, std::slice::from_ref(&a2))
        .await
        .unwrap();
    assert_eq!(
        store.get_pushed_stock(id, &["a".into()]).await.unwrap(),
        vec![a2]
    );
    assert_eq!(
        store
            .get_pushed_stock(unique_store_id(), &["a".into()])
            .await
            .unwrap(),
        vec![]
    );
    let many: Vec<PushedStock> = (0..130)
        .map(|i| pushed(&format!("p{i:03}"), StockLevel::Quantity(i)))
        .collect();
    store.put_pushed_stock(id, &many).await.unwrap();
    let ids: Vec<String> = many
        .iter()
        .map(|p| p.lightspeed_product_id.clone())
        .collect();
    assert_eq!(store.get_pushed_stock(id, &ids).await.unwrap().len(), 130);
}

/// Pending web sales: exactly the ledger entries that are paid, fetched and not yet POSTED
/// (`LedgerEntry::is_pending_web_sale`), following every state change.
pub async fn pending_web_sales_contract<S: LedgerStore>(store: &S) {
    let id = unique_store_id();
    let lines = |sku: &str, q: i64| {
        vec![LedgerLine {
            sku: sku.into(),
            quantity: Decimal::from(q),
        }]
    };
    let now = Utc::now();
    // A claimed order with its facts (as the poster records them), then released: QUEUED.
    let key = OrderKey::new(id, "P-1");
    let (claimed, expected) =
        expect_claim(ledger::claim(None, &key, now, ChronoDuration::seconds(60)));
    store.save_order(&claimed, expected).await.unwrap();
    assert_eq!(
        store.list_pending_web_sales(id).await.unwrap(),
        vec![],
        "no lines yet"
    );
    let with_facts = ledger::with_order_facts(&claimed, Decimal::from(24), lines("MUG-001", 2));
    let released = ledger::finish(
        &with_facts,
        Outcome::Released {
            error: "503".into(),
            post_may_exist: false,
        },
        now,
    );
    store
        .save_order(&released, Some(claimed.version))
        .await
        .unwrap();
    // A parked order with lines, and a skipped one (not paid: never pending).
    let parked_key = OrderKey::new(id, "P-2");
    let (c2, e2) = expect_claim(ledger::claim(
        None,
        &parked_key,
        now,
        ChronoDuration::seconds(60),
    ));
    store.save_order(&c2, e2).await.unwrap();
    let parked = ledger::finish(
        &ledger::with_order_facts(&c2, Decimal::from(5), lines("TOTE", 1)),
        Outcome::Parked(Reason::new(ReasonCode::UnknownSku, "SKU TOTE")),
        now,
    );
    store.save_order(&parked, Some(c2.version)).await.unwrap();
    seed_order(
        store,
        &OrderKey::new(id, "P-3"),
        now,
        Some(Outcome::Skipped(Reason::new(
            ReasonCode::NotPaid,
            "AWAITING_PAYMENT",
        ))),
    )
    .await;
    let mut pending = store.list_pending_web_sales(id).await.unwrap();
    pending.sort_by(|a, b| a.order_id.cmp(&b.order_id));
    assert_eq!(
        pending
            .iter()
            .map(|p| (p.order_id.as_str(), p.lines.clone(), p.state))
            .collect::<Vec<_>>(),
        vec![
            ("P-1", lines("MUG-001", 2), Some(OrderState::Queued)),
            ("P-2", lines("TOTE", 1), Some(OrderState::Parked)),
        ]
    );
    assert!(pending.iter().all(|p| p.since.is_some()));
    // P-1 is claimed again and posted: it leaves the pending set.
    let (again, expected) = expect_claim(ledger::claim(
        Some(&released),
        &key,
        now,
        ChronoDuration::seconds(60),
    ));
    store.save_order(&again, expected).await.unwrap();
    assert_eq!(
        store.list_pending_web_sales(id).await.unwrap().len(),
        2,
        "POSTING still holds it"
    );
    let posted = ledger::finish(
        &again,
        Outcome::Posted {
            sale_id: "s-1".into(),
            adopted: false,
        },
        now,
    );
    store
        .save_order(&posted, Some(again.version))
        .await
        .unwrap();
    // A stale write of the old pending state fails and changes nothing.
    assert_conflict(
        store.save_order(&released, Some(claimed.version)).await,
        "a stale ledger write",
    );
    let pending = store.list_pending_web_sales(id).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|p| p.order_id.as_str())
            .collect::<Vec<_>>(),
        vec!["P-2"]
    );
    assert_eq!(
        store
            .list_pending_web_sales(unique_store_id())
            .await
            .unwrap(),
        vec![]
    );
}

/// The steps of [`pending_quantities_contract`], in order: its `after` hook is called with
/// each once that step's save (or refused save) is done.
pub const PENDING_STEPS: [&str; 8] = [
    "another order parked with its lines",
    "claimed",
    "released with its lines",
    "claimed again",
    "lease renewed",
    "stale write refused",
    "posted",
    "refund recorded",
];

/// The pending web quantities (by SKU, as the inventory mirror sums them) follow one order
/// through claim → facts recorded, released → claimed again → lease renewed → posted → a
/// refund recorded, beside another order that stays parked; a stale write changes nothing.
/// `after` is called after each step ([`PENDING_STEPS`]), for an adapter to check what the
/// step cost.
pub async fn pending_quantities_contract<S: LedgerStore>(
    store: &S,
    mut after: impl FnMut(&'static str),
) {
    use els_core::inventory::pending_by_sku;
    use std::collections::BTreeMap;
    let id = unique_store_id();
    let lease = ChronoDuration::seconds(60);
    let now = Utc::now();
    let line = |sku: &str, q: i64| LedgerLine {
        sku: sku.into(),
        quantity: Decimal::from(q),
    };
    let mug = Sku::key_of("MUG-001").unwrap();
    let tote = Sku::key_of("TOTE").unwrap();
    let pending = || async {
        let sales = store.list_pending_web_sales(id).await.unwrap();
        (
            pending_by_sku(&sales),
            sales
                .iter()
                .map(|p| (p.order_id.clone(), p.state))
                .collect::<Vec<_>>(),
        )
    };
    let quantities = |pairs: &[(&String, i64)]| -> BTreeMap<String, Decimal> {
        pairs
            .iter()
            .map(|(k, q)| ((*k).clone(), Decimal::from(*q)))
            .collect()
    };

    // Q-0 is parked with 3 mugs and stays so.
    let other = OrderKey::new(id, "Q-0");
    let (c0, e0) = expect_claim(ledger::claim(None, &other, now, lease));
    store.save_order(&c0, e0).await.unwrap();
    let parked = ledger::finish(
        &ledger::with_order_facts(&c0, Decimal::from(30), vec![line("MUG-001", 3)]),
        Outcome::Parked(Reason::new(ReasonCode::UnknownSku, "SKU MUG-001")),
        now,
    );
    store.save_order(&parked, Some(c0.version)).await.unwrap();
    after(PENDING_STEPS[0]);
    let only_other = quantities(&[(&mug, 3)]);
    assert_eq!(pending().await.0, only_other);

    // claimed before its lines are known: nothing pending yet.
    let key = OrderKey::new(id, "Q-1");
    let (claimed, expected) = expect_claim(ledger::claim(None, &key, now, lease));
    store.save_order(&claimed, expected).await.unwrap();
    after(PENDING_STEPS[1]);
    assert_eq!(pending().await.0, only_other, "no lines yet");

    // Its lines recorded, the attempt released: 2 mugs and a tote pending, QUEUED.
    let released = ledger::finish(
        &ledger::with_order_facts(
            &claimed,
            Decimal::from(29),
            vec![line("MUG-001", 2), line("TOTE", 1)],
        ),
        Outcome::Released {
            error: "503".into(),
            post_may_exist: false,
        },
        now,
    );
    store
        .save_order(&released, Some(claimed.version))
        .await
        .unwrap();
    after(PENDING_STEPS[2]);
    let with_q1 = quantities(&[(&mug, 5), (&tote, 1)]);
    let (q, states) = pending().await;
    assert_eq!(q, with_q1);
    assert_eq!(
        states,
        vec![
            ("Q-0".to_string(), Some(OrderState::Parked)),
            ("Q-1".to_string(), Some(OrderState::Queued)),
        ]
    );

    // Claimed again: still pending, now POSTING.
    let (again, expected) = expect_claim(ledger::claim(Some(&released), &key, now, lease));
    store.save_order(&again, expected).await.unwrap();
    after(PENDING_STEPS[3]);
    let (q, states) = pending().await;
    assert_eq!(q, with_q1);
    assert_eq!(states[1], ("Q-1".to_string(), Some(OrderState::Posting)));

    // The lease renewed before the sale POST (as the poster does): nothing pending changes.
    let mut renewed = again.clone();
    renewed.version = again.version + 1;
    renewed.lease_until = Some(now + ChronoDuration::seconds(120));
    renewed.updated_at = now + ChronoDuration::seconds(1);
    store
        .save_order(&renewed, Some(again.version))
        .await
        .unwrap();
    after(PENDING_STEPS[4]);
    assert_eq!(pending().await, (with_q1.clone(), states.clone()));

    // A stale copy (the claim's version) is refused and changes nothing.
    let mut stale = again.clone();
    stale.version = again.version + 1;
    stale.lines = vec![line("MUG-001", 7)];
    assert_conflict(
        store.save_order(&stale, Some(again.version)).await,
        "a write from the version before the renewal",
    );
    after(PENDING_STEPS[5]);
    assert_eq!(pending().await.0, with_q1);

    // Posted: its quantities leave the pending set.
    let posted = ledger::finish(
        &renewed,
        Outcome::Posted {
            sale_id: "s-1".into(),
            adopted: false,
        },
        now,
    );
    store
        .save_order(&posted, Some(renewed.version))
        .await
        .unwrap();
    after(PENDING_STEPS[6]);
    assert_eq!(pending().await.0, only_other);

    // A later save of the posted order (a refund recorded): still nothing pending for it.
    let mut refunded = posted.clone();
    refunded.version = posted.version + 1;
    refunded.updated_at = now + ChronoDuration::seconds(2);
    store
        .save_order(&refunded, Some(posted.version))
        .await
        .unwrap();
    after(PENDING_STEPS[7]);
    assert_eq!(pending().await.0, only_other);
    assert_eq!(
        store.load_order(&key).await.unwrap(),
        Some(refunded),
        "the ledger has the last save"
    );
}

// ---------------------------------------------------------------------------------------
// WorkQueue
// ---------------------------------------------------------------------------------------

/// What the queue under test does where the moto server and real SQS differ. Tests assert
/// real SQS semantics only where the backend has them.
#[derive(Debug, Clone, Copy)]
pub struct QueueSemantics {
    /// The queue dead-letters a message received this many times (the redrive policy).
    pub max_receives: u32,
    /// A receipt from an earlier delivery no longer deletes the message (real SQS, SQLite;
    /// moto deletes by any receipt the message ever had).
    pub stale_receipt_cannot_ack: bool,
    /// A `dedup_id` stays deduplicated for the window even after its message was deleted
    /// (real SQS, SQLite; moto only compares with messages still in the queue).
    pub dedup_outlives_ack: bool,
}

impl QueueSemantics {
    /// Real SQS FIFO semantics (and the SQLite queue's).
    pub const fn sqs_fifo(max_receives: u32) -> Self {
        Self {
            max_receives,
            stale_receipt_cannot_ack: true,
            dedup_outlives_ack: true,
        }
    }
}

/// Reading the dead-letter queue, which the port does not cover.
pub trait DeadLetters {
    fn dead_letter_messages(&self) -> impl Future<Output = Vec<OrderMessage>> + Send;
}

impl DeadLetters for els_store_sqlite::SqliteStore {
    async fn dead_letter_messages(&self) -> Vec<OrderMessage> {
        self.dead_letters().expect("dead letters")
    }
}

impl DeadLetters for els_store_aws::SqsQueue {
    async fn dead_letter_messages(&self) -> Vec<OrderMessage> {
        self.dead_letters().await.expect("dead letters")
    }
}

const LONG: Duration = Duration::from_secs(30);

fn webhook_message(store_id: StoreId, order_id: &str) -> OrderMessage {
    OrderMessage::from_webhook(store_id, order_id, format!("event-{order_id}"))
}

/// Receives until `n` deliveries arrived (SQS short polls may come back empty) or a few
/// seconds passed.
async fn receive_n<Q: WorkQueue>(queue: &Q, n: usize, visibility: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let batch = queue.receive(n - out.len(), visibility).await.unwrap();
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        out.extend(batch);
    }
    assert_eq!(
        out.len(),
        n,
        "expected {n} deliveries, got {:?}",
        messages(&out)
    );
    out
}

async fn receive_one<Q: WorkQueue>(queue: &Q, visibility: Duration) -> Delivery {
    receive_n(queue, 1, visibility).await.remove(0)
}

async fn assert_nothing_visible<Q: WorkQueue>(queue: &Q, why: &str) {
    let got = queue.receive(10, LONG).await.unwrap();
    assert!(got.is_empty(), "{why}: got {:?}", messages(&got));
}

fn messages(deliveries: &[Delivery]) -> Vec<&OrderMessage> {
    deliveries.iter().map(|d| &d.message).collect()
}

/// Every queue function, each on a fresh queue from `new_queue`.
pub async fn work_queue_contract<Q, F, Fut>(mut new_queue: F, semantics: QueueSemantics)
where
    Q: WorkQueue + DeadLetters,
    F: FnMut() -> Fut,
    Fut: Future<Output = Q>,
{
    queue_round_trip_contract(&new_queue().await).await;
    queue_dedup_contract(&new_queue().await, semantics).await;
    queue_visibility_contract(&new_queue().await, semantics).await;
    queue_retry_after_contract(&new_queue().await).await;
    queue_fifo_group_contract(&new_queue().await).await;
    queue_dead_letter_contract(&new_queue().await, semantics).await;
}

/// Enqueue, receive (hidden while in flight), ack (gone).
pub async fn queue_round_trip_contract<Q: WorkQueue>(queue: &Q) {
    let message = webhook_message(unique_store_id(), "R1");
    queue.enqueue(&message).await.unwrap();
    let delivery = receive_one(queue, LONG).await;
    assert_eq!(delivery.message, message);
    assert_eq!(delivery.receive_count, 1);
    assert!(!delivery.receipt.is_empty());
    assert_nothing_visible(queue, "an in-flight message is hidden").await;
    queue.ack(&delivery.receipt).await.unwrap();
    assert_nothing_visible(queue, "an acked message is gone").await;
    assert!(queue.receive(0, LONG).await.unwrap().is_empty());
}

/// A repeated `dedup_id` is accepted and dropped; a replay's unique id is not.
pub async fn queue_dedup_contract<Q: WorkQueue>(queue: &Q, semantics: QueueSemantics) {
    let store_id = unique_store_id();
    let message = webhook_message(store_id, "D1");
    queue.enqueue(&message).await.unwrap();
    let mut again = message.clone();
    again.event_id = Some("a-second-delivery-of-the-webhook".into());
    queue.enqueue(&again).await.unwrap();

    let delivery = receive_one(queue, LONG).await;
    assert_eq!(delivery.message, message, "the first copy is the one kept");
    queue.ack(&delivery.receipt).await.unwrap();
    assert_nothing_visible(queue, "the duplicate was dropped").await;

    if semantics.dedup_outlives_ack {
        queue.enqueue(&message).await.unwrap();
        assert_nothing_visible(queue, "the dedup window outlives the ack").await;
    }

    let replay = OrderMessage::replay(&message.key(), "nonce-1");
    queue.enqueue(&replay).await.unwrap();
    let delivery = receive_one(queue, LONG).await;
    assert_eq!(delivery.message, replay);
    queue.ack(&delivery.receipt).await.unwrap();
}

/// An unacked message comes back after its visibility timeout with a higher receive count
/// and a new receipt.
pub async fn queue_visibility_contract<Q: WorkQueue>(queue: &Q, semantics: QueueSemantics) {
    assert!(
        semantics.max_receives >= 3,
        "this test receives three times"
    );
    let message = webhook_message(unique_store_id(), "V1");
    queue.enqueue(&message).await.unwrap();
    let first = receive_one(queue, Duration::from_secs(1)).await;
    assert_eq!(first.receive_count, 1);
    assert_nothing_visible(queue, "hidden during its visibility timeout").await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = receive_one(queue, LONG).await;
    assert_eq!(second.message, message);
    assert_eq!(second.receive_count, 2);
    assert_ne!(
        second.receipt, first.receipt,
        "each delivery has its own receipt"
    );

    if semantics.stale_receipt_cannot_ack {
        // The first worker wakes up late: its ack must not delete the redelivered message.
        let _ = queue.ack(&first.receipt).await;
        queue
            .retry_after(&second.receipt, Duration::ZERO)
            .await
            .expect("the current receipt still works");
        let third = receive_one(queue, LONG).await;
        assert_eq!(third.message, message, "a stale ack deleted nothing");
        assert_eq!(third.receive_count, 3);
        queue.ack(&third.receipt).await.unwrap();
    } else {
        queue.ack(&second.receipt).await.unwrap();
    }
    assert_nothing_visible(queue, "acked with the current receipt").await;
}

/// `retry_after` hides the message for the delay, then it comes back.
pub async fn queue_retry_after_contract<Q: WorkQueue>(queue: &Q) {
    let message = webhook_message(unique_store_id(), "T1");
    queue.enqueue(&message).await.unwrap();
    let first = receive_one(queue, LONG).await;
    queue
        .retry_after(&first.receipt, Duration::from_secs(1))
        .await
        .unwrap();
    assert_nothing_visible(queue, "hidden until the retry delay passed").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = receive_one(queue, LONG).await;
    assert_eq!(second.message, message);
    assert_eq!(second.receive_count, 2);

    // A zero delay makes it visible again at once (a retry without waiting).
    queue
        .retry_after(&second.receipt, Duration::ZERO)
        .await
        .unwrap();
    let third = receive_one(queue, LONG).await;
    assert_eq!(third.receive_count, 3);
    queue.ack(&third.receipt).await.unwrap();
}

/// FIFO per order: while an order's message is in flight its next one (a later event of the
/// same order: a refund after its sale) waits; another order's message, of the same store,
/// is delivered meanwhile, so one order waiting out a back-off never holds back the others.
pub async fn queue_fifo_group_contract<Q: WorkQueue>(queue: &Q) {
    let a = unique_store_id();
    let a1 = OrderMessage::from_webhook(a, "A1", "event-paid");
    let a2 = OrderMessage::from_webhook(a, "A1", "event-refunded");
    let b1 = webhook_message(a, "B1");
    queue.enqueue(&a1).await.unwrap();
    queue.enqueue(&a2).await.unwrap();

    let first = receive_one(queue, LONG).await;
    assert_eq!(first.message, a1, "a group's oldest message comes first");
    queue.enqueue(&b1).await.unwrap();
    let others = receive_n(queue, 1, LONG).await;
    assert_eq!(
        messages(&others),
        vec![&b1],
        "another order of the store flows"
    );
    assert_nothing_visible(queue, "order A1's next message waits for its first").await;

    // A retry delay keeps the group blocked as well.
    queue
        .retry_after(&first.receipt, Duration::from_secs(1))
        .await
        .unwrap();
    assert_nothing_visible(queue, "A1's first is delayed, so its second still waits").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = receive_one(queue, LONG).await;
    assert_eq!(again.message, a1, "A1's first is retried before its second");
    queue.ack(&again.receipt).await.unwrap();

    let next = receive_one(queue, LONG).await;
    assert_eq!(next.message, a2);
    queue.ack(&next.receipt).await.unwrap();
    queue.ack(&others[0].receipt).await.unwrap();
    assert_nothing_visible(queue, "everything acked").await;
}

/// After `max_receives` receives the message moves to the dead-letter queue, and its store's
/// later messages flow again.
pub async fn queue_dead_letter_contract<Q: WorkQueue + DeadLetters>(
    queue: &Q,
    semantics: QueueSemantics,
) {
    let store_id = unique_store_id();
    let poison = webhook_message(store_id, "P1");
    queue.enqueue(&poison).await.unwrap();
    for n in 1..=semantics.max_receives {
        let delivery = receive_one(queue, LONG).await;
        assert_eq!(delivery.message, poison);
        assert_eq!(delivery.receive_count, n);
        queue
            .retry_after(&delivery.receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    let next = webhook_message(store_id, "P2");
    queue.enqueue(&next).await.unwrap();
    let delivery = receive_one(queue, LONG).await;
    assert_eq!(
        delivery.message, next,
        "the poison message left the queue after {} receives",
        semantics.max_receives
    );
    assert_eq!(delivery.receive_count, 1);
    queue.ack(&delivery.receipt).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dead = queue.dead_letter_messages().await;
        if dead.contains(&poison) {
            assert!(!dead.contains(&next));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message is not in the dead-letter queue: {dead:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_nothing_visible(queue, "the dead letter is not delivered again").await;
}

// ---------------------------------------------------------------------------------------
// Webhook event records (replay protection, see `els_core::ingest`)
// ---------------------------------------------------------------------------------------

fn event_record(
    event_id: &str,
    store_id: StoreId,
    fingerprint: &str,
    at: DateTime<Utc>,
) -> WebhookEventRecord {
    WebhookEventRecord {
        event_id: event_id.into(),
        store_id,
        fingerprint: fingerprint.into(),
        recorded_at: at,
        expires_at: at + ChronoDuration::days(7),
    }
}

/// `record_webhook_event`: a conditional insert keyed by the event id alone. The adapter
/// only reports `Inserted`, or `Existing` with the stored record (the first delivery's, which
/// stays whatever the later deliveries carry); whether that is a redelivery or an altered
/// body is decided in core (`EventDelivery::of`). An expired record counts as absent;
/// concurrent first deliveries insert exactly one. Timestamps are whole seconds (DynamoDB
/// keeps the TTL in epoch seconds).
pub async fn webhook_event_contract<S: WebhookEventStore>(store: &S) {
    let t0 = DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("a time");
    let id = format!("evt-{}", uuid::Uuid::new_v4());
    let first = event_record(&id, StoreId::literal(1003), "fp-a", t0);
    assert_eq!(
        store.record_webhook_event(&first).await.unwrap(),
        EventRecordOutcome::Inserted
    );
    let later = t0 + ChronoDuration::hours(1);
    let redelivery = event_record(&id, StoreId::literal(1003), "fp-a", later);
    let found = store.record_webhook_event(&redelivery).await.unwrap();
    assert_eq!(found, EventRecordOutcome::Existing(first.clone()));
    assert_eq!(
        EventDelivery::of(&redelivery, found),
        EventDelivery::Redelivery
    );
    // Another store and fingerprint under the same event id: the record is the event's,
    // not the store's.
    let altered = event_record(&id, StoreId::literal(2002), "fp-b", later);
    let found = store.record_webhook_event(&altered).await.unwrap();
    assert_eq!(found, EventRecordOutcome::Existing(first.clone()));
    assert_eq!(
        EventDelivery::of(&altered, found),
        EventDelivery::Altered(first.clone())
    );
    // The alteration did not replace the first record.
    assert_eq!(
        store.record_webhook_event(&redelivery).await.unwrap(),
        EventRecordOutcome::Existing(first.clone())
    );
    // Other event ids are independent.
    let other = format!("evt-{}", uuid::Uuid::new_v4());
    assert_eq!(
        store
            .record_webhook_event(&event_record(&other, StoreId::literal(1003), "fp-b", later))
            .await
            .unwrap(),
        EventRecordOutcome::Inserted
    );

    // Once expired (at `expires_at` exactly), the id is new again, with whatever it asks.
    let expired_at = first.expires_at;
    let renewed = event_record(&id, StoreId::literal(1003), "fp-c", expired_at);
    assert_eq!(
        store.record_webhook_event(&renewed).await.unwrap(),
        EventRecordOutcome::Inserted
    );
    assert_eq!(
        store
            .record_webhook_event(&event_record(
                &id,
                StoreId::literal(1003),
                "fp-a",
                expired_at
            ))
            .await
            .unwrap(),
        EventRecordOutcome::Existing(renewed)
    );

    // Concurrent first deliveries: exactly one is inserted, and the others find its record.
    let racy = format!("evt-{}", uuid::Uuid::new_v4());
    let records: Vec<WebhookEventRecord> = (0..6)
        .map(|i| event_record(&racy, StoreId::literal(1003), &format!("fp-{}", i % 2), t0))
        .collect();
    let outcomes =
        futures::future::join_all(records.iter().map(|r| store.record_webhook_event(r))).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let inserted: Vec<&WebhookEventRecord> = outcomes
        .iter()
        .zip(&records)
        .filter(|(o, _)| matches!(o, Ok(EventRecordOutcome::Inserted)))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(inserted.len(), 1, "{outcomes:?}");
    for outcome in &outcomes {
        if let Ok(EventRecordOutcome::Existing(stored)) = outcome {
            assert_eq!(stored, inserted[0], "{outcomes:?}");
        }
    }
}
