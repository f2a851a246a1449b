//! Customer matching end to end (rules C1–C4): orders go through the embedded app to the
//! sandbox's Lightspeed over real HTTP, and each test asserts the customers and sales that
//! landed there.

use els_core::OrderMessage;
use els_core::ledger::OrderState;
use els_core::poster::PostOutcome;
use els_sandbox::{OrderItemSpec, OrderSpec};
use els_tests::harness::{Harness, HarnessOptions};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn order(email: &str, first: &str, last: &str) -> OrderSpec {
    OrderSpec {
        items: vec![OrderItemSpec::new("STICKER-01", 1)],
        email: email.into(),
        first_name: first.into(),
        last_name: last.into(),
        ..OrderSpec::default()
    }
}

/// Places the order, sends its webhook, waits until it is posted and returns its one sale.
async fn post_via_webhook(h: &Harness, spec: OrderSpec, patch: Option<Value>) -> Value {
    let order_id = h.sandbox.place_order(spec);
    if let Some(patch) = patch {
        h.sandbox.update_order(&order_id, patch).unwrap();
    }
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    h.wait_for(&order_id, OrderState::Posted, WAIT).await;
    let mut sales = h.sales_for(&order_id);
    assert_eq!(sales.len(), 1, "exactly one sale");
    sales.remove(0)
}

fn customers_with_email(h: &Harness, email: &str) -> Vec<Value> {
    h.sandbox
        .customers()
        .into_iter()
        .filter(|c| c["email"].as_str() == Some(email))
        .collect()
}

fn customer(h: &Harness, id: &str) -> Value {
    h.sandbox
        .customers()
        .into_iter()
        .find(|c| c["id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("no customer {id}"))
}

/// Posts every message through the poster concurrently, retrying those that answer
/// `RetryLater` after their delay, until all are settled.
async fn post_all_concurrently(h: &Harness, messages: Vec<OrderMessage>) -> Vec<PostOutcome> {
    let mut pending = messages;
    let mut done = Vec::new();
    for round in 0..100 {
        if pending.is_empty() {
            eprintln!("all orders settled after {round} rounds");
            return done;
        }
        let results = futures::future::join_all(
            pending
                .iter()
                .map(|m| async move { (m.clone(), h.app.poster().post_paid_order(m).await) }),
        )
        .await;
        let mut delay = Duration::ZERO;
        pending = Vec::new();
        for (message, result) in results {
            match result {
                Ok(outcome) => done.push(outcome),
                Err(retry) => {
                    delay = delay.max(retry.delay);
                    pending.push(message);
                }
            }
        }
        tokio::time::sleep(delay).await;
    }
    panic!("{} orders were still being retried", pending.len());
}

fn message(h: &Harness, order_id: &str) -> OrderMessage {
    OrderMessage::from_webhook(h.connection.store_id, order_id, format!("event-{order_id}"))
}

fn manual() -> HarnessOptions {
    HarnessOptions {
        worker: false,
        ..HarnessOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_c2_an_existing_customer_with_another_name_keeps_it_and_gets_the_sale() {
    let h = Harness::start().await;
    // A customer whose email merely contains the buyer's: the loose search returns it too.
    let decoy = h.sandbox.add_customer("Dee", "Coy", "xann.lee@example.com");
    let ann = h
        .sandbox
        .add_customer("Ann", "Original", "ann.lee@example.com");
    let before = h.sandbox.customers().len();

    let sale = post_via_webhook(&h, order("ann.lee@example.com", "Annie", "Changed"), None).await;

    assert_eq!(sale["customer_id"].as_str(), Some(ann.as_str()));
    let c = customer(&h, &ann);
    assert_eq!(
        (c["first_name"].as_str(), c["last_name"].as_str()),
        (Some("Ann"), Some("Original"))
    );
    assert_eq!(customer(&h, &decoy)["first_name"], "Dee");
    assert_eq!(h.sandbox.customers().len(), before, "no customer created");
    assert_eq!(h.sandbox.counters().ls_customer_creates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_an_email_differing_in_case_and_surrounding_spaces_matches() {
    let h = Harness::start().await;
    let bob = h
        .sandbox
        .add_customer("Bob", "Stone", "bob.stone@example.com");
    let before = h.sandbox.customers().len();

    let sale = post_via_webhook(
        &h,
        order("bob.stone@example.com", "Bob", "Stone"),
        Some(json!({"email": "  BOB.Stone@Example.COM \t"})),
    )
    .await;

    assert_eq!(sale["customer_id"].as_str(), Some(bob.as_str()));
    assert_eq!(h.sandbox.customers().len(), before, "no customer created");
    assert_eq!(h.sandbox.counters().ls_customer_creates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_a_new_email_creates_a_customer_with_the_order_name() {
    let h = Harness::start().await;
    let sale = post_via_webhook(&h, order("carla.new@example.com", "Carla", "Nuñez"), None).await;

    let created = customers_with_email(&h, "carla.new@example.com");
    assert_eq!(created.len(), 1);
    assert_eq!(sale["customer_id"], created[0]["id"]);
    assert_eq!(created[0]["first_name"], "Carla");
    assert_eq!(created[0]["last_name"], "Nuñez");
    assert_eq!(h.sandbox.counters().ls_customer_creates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_with_no_name_the_created_customer_is_named_by_the_email() {
    let h = Harness::start().await;
    let nobody = json!({"name": "", "firstName": "", "lastName": "", "companyName": ""});
    let sale = post_via_webhook(
        &h,
        order("x@example.com", "", ""),
        Some(json!({
            "email": " No.Name@Example.com ",
            "billingPerson": nobody,
            "shippingPerson": nobody,
        })),
    )
    .await;

    let created = customers_with_email(&h, "no.name@example.com");
    assert_eq!(created.len(), 1, "created with the normalised email");
    assert_eq!(sale["customer_id"], created[0]["id"]);
    // C4: first_name is the email as given (trimmed); last_name is empty.
    assert_eq!(created[0]["first_name"], "No.Name@Example.com");
    assert_eq!(created[0]["last_name"], "");
    assert_eq!(h.sandbox.counters().ls_customer_creates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_without_a_usable_email_posts_with_no_customer() {
    let h = Harness::start().await;
    let before = h.sandbox.customers().len();

    let no_email = post_via_webhook(&h, order("", "Ann", "Lee"), None).await;
    assert!(no_email["customer_id"].is_null(), "{no_email}");

    let not_an_email = post_via_webhook(
        &h,
        order("", "Ann", "Lee"),
        Some(json!({"email": "ann at example"})),
    )
    .await;
    assert!(not_an_email["customer_id"].is_null(), "{not_an_email}");

    assert_eq!(h.sandbox.customers().len(), before);
    let counters = h.sandbox.counters();
    assert_eq!(counters.ls_customer_creates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_orders_from_one_new_email_create_exactly_one_customer() {
    let h = Harness::start_with(manual()).await;
    let email = "crowd@example.com";
    let order_ids: Vec<String> = (0..10)
        .map(|_| h.sandbox.place_order(order(email, "Cro", "Wd")))
        .collect();
    let messages = order_ids.iter().map(|id| message(&h, id)).collect();

    let outcomes = post_all_concurrently(&h, messages).await;

    assert_eq!(outcomes.len(), 10);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, PostOutcome::Posted { .. })),
        "{outcomes:?}"
    );
    let created = customers_with_email(&h, email);
    assert_eq!(created.len(), 1, "exactly one customer: {created:#?}");
    assert_eq!(h.sandbox.counters().ls_customer_creates, 1);
    let customer_id = created[0]["id"].as_str().unwrap();
    for id in &order_ids {
        let sales = h.sales_for(id);
        assert_eq!(sales.len(), 1, "order {id}: one sale");
        assert_eq!(
            sales[0]["customer_id"].as_str(),
            Some(customer_id),
            "order {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_warm_caches_a_paid_order_costs_one_ecwid_get_and_one_sale_post() {
    let h = Harness::start_with(manual()).await;
    let spec = || OrderSpec {
        items: vec![
            OrderItemSpec::new("STICKER-01", 2),
            OrderItemSpec::new("MUG-001", 1),
        ],
        ..order("warm.buyer@example.com", "Warm", "Buyer")
    };

    // Cold: nothing cached, and the email is new.
    let first = h.sandbox.place_order(spec());
    h.sandbox.reset_counters();
    let outcome = h
        .app
        .poster()
        .post_paid_order(&message(&h, &first))
        .await
        .unwrap();
    assert!(matches!(outcome, PostOutcome::Posted { .. }), "{outcome:?}");
    let cold = h.sandbox.counters();
    eprintln!(
        "cold cache, new email: ecwid_requests={} ecwid_order_gets={} ls_requests={} ls_gets={} ls_searches={} ls_customer_creates={} ls_sale_posts={}",
        cold.ecwid_requests,
        cold.ecwid_order_gets,
        cold.ls_requests,
        cold.ls_gets,
        cold.ls_searches,
        cold.ls_customer_creates,
        cold.ls_sale_posts
    );
    assert_eq!(cold.ls_customer_creates, 1);

    // Warm: the same email and SKUs again.
    let second = h.sandbox.place_order(spec());
    h.sandbox.reset_counters();
    let outcome = h
        .app
        .poster()
        .post_paid_order(&message(&h, &second))
        .await
        .unwrap();
    assert!(matches!(outcome, PostOutcome::Posted { .. }), "{outcome:?}");
    let warm = h.sandbox.counters();
    eprintln!(
        "warm cache: ecwid_requests={} ecwid_order_gets={} ls_requests={} ls_sale_posts={}",
        warm.ecwid_requests, warm.ecwid_order_gets, warm.ls_requests, warm.ls_sale_posts
    );
    assert_eq!(warm.ecwid_requests, 1, "{warm:?}");
    assert_eq!(warm.ecwid_order_gets, 1, "{warm:?}");
    assert_eq!(warm.ls_sale_posts, 1, "{warm:?}");
    assert_eq!(warm.ls_requests, 1, "no other Lightspeed request: {warm:?}");
    assert_eq!(
        h.sales_for(&first)[0]["customer_id"],
        h.sales_for(&second)[0]["customer_id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_search_failure_releases_the_claim_and_the_order_is_retried() {
    let h = Harness::start().await;
    // Warm the product link and taxes first, so the fault hits the customer search.
    let _ = post_via_webhook(&h, order("", "No", "Email"), None).await;
    h.sandbox.inject(els_sandbox::Fault::once(
        els_sandbox::Route::LsSearch,
        els_sandbox::FaultKind::Status(503),
    ));
    let order_id = h
        .sandbox
        .place_order(order("retry.me@example.com", "Re", "Try"));
    assert_eq!(
        h.send_webhook("order.created", &order_id, None, "PAID")
            .await,
        200
    );
    // Released, not left to expire: the retry (50 ms later) takes the claim over at once,
    // well inside the 5 s lease.
    let entry = h
        .wait_for(&order_id, OrderState::Posted, Duration::from_secs(3))
        .await;
    assert_eq!(entry.attempts, 2, "{:#?}", entry.history);
    assert!(
        entry.history.iter().any(|e| e
            .detail
            .contains("searching Lightspeed customers for r***@example.com")),
        "the retry reason masks the email: {:#?}",
        entry.history
    );
    assert!(
        entry.history.iter().all(|e| !e.detail.contains("retry.me")),
        "{:#?}",
        entry.history
    );
    let created = customers_with_email(&h, "retry.me@example.com");
    assert_eq!(created.len(), 1);
    assert_eq!(h.sales_for(&order_id)[0]["customer_id"], created[0]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_claim_is_taken_over_and_finds_the_customer_its_holder_created() {
    let h = Harness::start_with(manual()).await;
    let email = "crashed@example.com";
    // A worker claimed the link, created the customer and died before linking it.
    let orphan = h.sandbox.add_customer("Cra", "Shed", email);
    let stale = els_core::customers::CustomerLink::claim(
        h.connection.store_id,
        email,
        chrono::Utc::now() - chrono::Duration::minutes(5),
        chrono::Duration::seconds(5),
    );
    els_core::LinkStore::put_customer_link(&h.store, &stale, None)
        .await
        .unwrap();

    let order_id = h.sandbox.place_order(order(email, "Cra", "Shed"));
    let outcome = h
        .app
        .poster()
        .post_paid_order(&message(&h, &order_id))
        .await
        .unwrap();
    assert!(matches!(outcome, PostOutcome::Posted { .. }), "{outcome:?}");
    assert_eq!(
        h.sales_for(&order_id)[0]["customer_id"].as_str(),
        Some(orphan.as_str())
    );
    assert_eq!(h.sandbox.counters().ls_customer_creates, 0);
    let link = els_core::LinkStore::get_customer_link(&h.store, h.connection.store_id, email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.customer_id(), Some(orphan.as_str()));
}
