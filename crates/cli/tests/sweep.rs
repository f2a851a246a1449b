//! The order sweep and the backfill as a merchant runs them: `els connect`, then orders whose
//! webhook never came, older orders posted with `els backfill`, against the sandbox's APIs.

mod common;

use common::{Merchant, connect_by_name, dec, els, sale_of, serve_live};
use els_core::{LedgerStore, OrderKey, OrderState};
use els_sandbox::{OrderItemSpec, OrderSpec, ProductSpec, Sandbox, SandboxConfig};
use els_store_sqlite::SqliteStore;
use std::time::{Duration, Instant};

fn order(sb: &Sandbox, sku: &str, quantity: u32) -> String {
    sb.place_order(OrderSpec {
        items: vec![OrderItemSpec::new(sku, quantity)],
        ..OrderSpec::default()
    })
}

/// Dates an order `days` days back (created and last updated then).
fn age(sb: &Sandbox, order_id: &str, days: i64) {
    let t = chrono::Utc::now().timestamp() - days * 86_400;
    sb.update_order(
        order_id,
        serde_json::json!({"createTimestamp": t, "updateTimestamp": t}),
    )
    .unwrap();
}

fn sales_of(sb: &Sandbox, order_id: &str) -> usize {
    sb.sales()
        .iter()
        .filter(|s| {
            s["invoice_number"]
                .as_str()
                .is_some_and(|n| n.ends_with(&format!("-{order_id}")))
        })
        .count()
}

/// One line of a backfill table: the line that names `order_id`.
fn line_of<'a>(out: &'a str, order_id: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{order_id} ")))
        .unwrap_or_else(|| panic!("no line for {order_id} in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_dry_run_changes_nothing_and_the_real_run_posts_exactly_what_it_listed() {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    sb.add_ecwid_product_only(ProductSpec {
        sku: "ECWID-ONLY".into(),
        name: "Only in Ecwid".into(),
        ..ProductSpec::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("els.sqlite");
    let db = db_path.to_str().unwrap();
    let m = Merchant::of(&sb);
    // Last week's orders, from before the store was connected.
    let (a, b, parks) = (
        order(&sb, "MUG-001", 1),
        order(&sb, "MUG-001", 2),
        order(&sb, "ECWID-ONLY", 1),
    );
    for id in [&a, &b, &parks] {
        age(&sb, id, 5);
    }
    let older = order(&sb, "MUG-001", 3);
    age(&sb, &older, 20);
    connect_by_name(&sb, &m, db);
    let since = (chrono::Utc::now() - chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    let backfill = |db: &str, dry: bool| {
        let mut args = vec![
            "backfill", "--db", db, "--store", &m.store, "--since", &since,
        ];
        if dry {
            args.push("--dry-run");
        }
        els(&sb, &args, &m.token)
    };

    let (sales, customers) = (sb.sales().len(), sb.customers().len());
    let (ok, out, err) = backfill(db, true);
    assert!(ok, "{out}\n{err}");
    assert!(line_of(&out, &a).contains("post (total"), "{out}");
    assert!(line_of(&out, &b).contains("post (total"), "{out}");
    assert!(
        line_of(&out, &parks).contains("would park: UNKNOWN_SKU"),
        "{out}"
    );
    assert!(!out.contains(&older), "outside the range: {out}");
    assert!(
        out.contains("3 paid order(s) in the range; 2 to post"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    {
        let state = SqliteStore::open(&db_path).unwrap();
        assert!(
            state
                .list_orders(m.store_id, None, usize::MAX)
                .await
                .unwrap()
                .is_empty(),
            "the dry run wrote to the ledger"
        );
        assert_eq!(state.queue_depth().unwrap(), (0, 0), "the dry run enqueued");
    }
    assert_eq!(
        (sb.sales().len(), sb.customers().len()),
        (sales, customers),
        "the dry run changed Lightspeed"
    );

    // The real run posts exactly the two it listed as "post"; the third parks.
    let (ok, out, err) = backfill(db, false);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("posted 2, parked 1, other 0"), "{out}");
    assert_eq!(sb.sales().len(), sales + 2);
    for id in [&a, &b] {
        assert_eq!(sales_of(&sb, id), 1, "order {id}");
        let sale = sale_of(&sb, id).await;
        let ecwid = sb.ecwid_order(id).unwrap();
        assert_eq!(
            dec(&sale["total_price"]) + dec(&sale["total_tax"]),
            dec(&ecwid["total"])
        );
    }
    let state = SqliteStore::open(&db_path).unwrap();
    let parked = state
        .load_order(&OrderKey::new(m.store_id, parks.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parked.state, OrderState::Parked);
    drop(state);

    // Again: nothing new to do.
    let (ok, out, _) = backfill(db, true);
    assert!(ok);
    assert!(line_of(&out, &a).contains("already posted (sale"), "{out}");
    assert!(
        line_of(&out, &parks).contains("parked: UNKNOWN_SKU"),
        "{out}"
    );
    // A state file without those orders (a restore, a second install) finds the sales in
    // Lightspeed by invoice number and posts nothing again.
    let fresh = dir.path().join("fresh.sqlite");
    let fresh = fresh.to_str().unwrap();
    connect_by_name(&sb, &m, fresh);
    let (ok, out, err) = backfill(fresh, false);
    assert!(ok, "{out}\n{err}");
    assert!(
        line_of(&out, &b).contains("already in Lightspeed under our invoice number"),
        "{out}"
    );
    assert!(
        out.contains("1 order(s) enqueued"),
        "only the parked one: {out}"
    );
    assert_eq!(sb.sales().len(), sales + 2, "nothing posted twice");
}

/// The state file and its companions (`-wal`, `-shm`) copied from `from` to `to`.
fn copy_state(from: &std::path::Path, to: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let target = std::path::PathBuf::from(format!("{}{suffix}", to.display()));
        let _ = std::fs::remove_file(&target);
        let source = std::path::PathBuf::from(format!("{}{suffix}", from.display()));
        if source.exists() {
            std::fs::copy(&source, &target).unwrap();
        }
    }
}

/// Issue #12: post, take a backup, post more, restore the backup, run `els restore-check`,
/// then let the webhooks' retries and the sweep come: the order posted after the backup is
/// adopted, not posted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restore_check_an_order_posted_after_the_backup_is_adopted_not_posted_again() {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("els.sqlite");
    let db = db_path.to_str().unwrap();
    let backup = dir.path().join("backup.sqlite");
    let m = Merchant::of(&sb);
    connect_by_name(&sb, &m, db);

    let before = order(&sb, "MUG-001", 1);
    let (serving, url) = serve_live(
        &sb,
        &m,
        db,
        &[
            "--sweep-interval-secs",
            "0",
            "--inventory-interval-secs",
            "0",
        ],
    )
    .await;
    sb.deliver(
        &url,
        &sb.order_webhook("order.created", &before, None, "PAID"),
    )
    .await
    .unwrap();
    sale_of(&sb, &before).await;
    drop(serving);
    copy_state(&db_path, &backup);

    let after = order(&sb, "MUG-001", 2);
    let (serving, url) = serve_live(
        &sb,
        &m,
        db,
        &[
            "--sweep-interval-secs",
            "0",
            "--inventory-interval-secs",
            "0",
        ],
    )
    .await;
    let hook = sb.order_webhook("order.created", &after, None, "PAID");
    sb.deliver(&url, &hook).await.unwrap();
    sale_of(&sb, &after).await;
    drop(serving);

    // The restore: the ledger no longer knows the second order.
    copy_state(&backup, &db_path);
    let (ok, out, err) = els(&sb, &["restore-check", "--db", db], &m.token);
    assert!(
        ok,
        "{out}
{err}"
    );
    assert!(out.contains("1 connection(s) marked restored"), "{out}");

    // Ecwid retries the webhook, the sweep finds the order, an operator replays the first.
    let (_serving, url) = serve_live(
        &sb,
        &m,
        db,
        &[
            "--sweep-interval-secs",
            "1",
            "--inventory-interval-secs",
            "0",
        ],
    )
    .await;
    sb.deliver(&url, &hook).await.unwrap();
    let (ok, out, err) = els(
        &sb,
        &[
            "replay", "--db", db, "--store", &m.store, "--order", &before,
        ],
        &m.token,
    );
    assert!(
        ok,
        "{out}
{err}"
    );
    let key = OrderKey::new(m.store_id, after.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let state = SqliteStore::open(&db_path).unwrap();
        if let Some(e) = state.load_order(&key).await.unwrap()
            && e.state == OrderState::Posted
        {
            break e;
        }
        assert!(Instant::now() < deadline, "order {after} not settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        entry.history.iter().any(|h| h.detail.contains("adopted")),
        "{:?}",
        entry.history
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sales_of(&sb, &before), 1);
    assert_eq!(
        sales_of(&sb, &after),
        1,
        "posted once, before the backup was restored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_whose_webhook_was_lost_or_lagged_are_posted_once_by_the_sweep() {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("els.sqlite");
    let db = db_path.to_str().unwrap();
    let m = Merchant::of(&sb);
    connect_by_name(&sb, &m, db);
    let (_serving, webhook_url) = serve_live(
        &sb,
        &m,
        db,
        &[
            "--sweep-interval-secs",
            "2",
            "--inventory-interval-secs",
            "0",
        ],
    )
    .await;

    // No webhook at all.
    let lost = order(&sb, "MUG-001", 1);
    // A webhook whose re-fetch still says unpaid: skipped, then found by the sweep.
    let lagged = order(&sb, "MUG-001", 2);
    sb.lag_payment_status(&lagged, 1);
    sb.deliver(
        &webhook_url,
        &sb.order_webhook("order.created", &lagged, None, "PAID"),
    )
    .await
    .unwrap();
    // A late webhook racing the sweep (and an `els sweep` of its own) for the same order.
    let raced = order(&sb, "MUG-001", 3);
    let hook = sb.order_webhook("order.created", &raced, None, "PAID");
    let (delivered, swept) = tokio::join!(sb.deliver(&webhook_url, &hook), async {
        els(&sb, &["sweep", "--db", db, "--store", &m.store], &m.token)
    });
    delivered.unwrap();
    assert!(swept.0, "{}\n{}", swept.1, swept.2);
    assert!(swept.1.contains("enqueued"), "{}", swept.1);

    for id in [&lost, &lagged, &raced] {
        sale_of(&sb, id).await;
    }
    // Let a few more sweeps run over the same orders: still one sale each.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for id in [&lost, &lagged, &raced] {
        assert_eq!(sales_of(&sb, id), 1, "order {id}");
    }
    let (ok, out, err) = els(&sb, &["status", "--db", db, "--store", &m.store], &m.token);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("last order sweep") && out.contains("in all"),
        "{out}"
    );
    assert!(out.contains("last sale posted"), "{out}");
    assert!(!out.contains("last sale posted       never"), "{out}");
}
