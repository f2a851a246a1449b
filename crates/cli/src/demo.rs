//! The visible demo of `els serve --demo`: one order paid at checkout, one paid later, a
//! refund that becomes a Lightspeed return, and a sale in the POS that the inventory mirror
//! carries to Ecwid.

use crate::lightspeed_auth::AuthLightspeed;
use crate::{ops, sandbox_setup};
use anyhow::{Context, bail};
use els_core::LedgerStore;
use els_core::inventory::mirror::{InventoryMirror, RunOutcome};
use els_core::ledger::{OrderKey, OrderState};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_sandbox::{OrderItemSpec, OrderSpec, Sandbox};
use els_store_sqlite::SqliteStore;
use std::time::Duration;

async fn wait_for_state(
    store: &SqliteStore,
    key: &OrderKey,
    want: OrderState,
) -> anyhow::Result<els_core::LedgerEntry> {
    for _ in 0..200 {
        if let Some(e) = store.load_order(key).await?
            && e.state == want
        {
            return Ok(e);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("order {key} did not reach {want} within 10 s")
}

fn print_sale(sandbox: &Sandbox, invoice: &str) -> anyhow::Result<()> {
    let sales: Vec<_> = sandbox
        .sales()
        .into_iter()
        .filter(|s| s["invoice_number"].as_str() == Some(invoice))
        .collect();
    let [sale] = sales.as_slice() else {
        bail!(
            "expected exactly one Lightspeed sale with invoice {invoice}, found {}",
            sales.len()
        );
    };
    println!(
        "  Lightspeed sale {} ({}), invoice {}",
        sale["id"].as_str().unwrap_or("?"),
        sale["status"].as_str().unwrap_or("?"),
        invoice
    );
    for line in sale["register_sale_products"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let product = line["product_id"]
            .as_str()
            .and_then(|id| sandbox.ls_product(id))
            .map(|p| {
                format!(
                    "{} ({})",
                    p["name"].as_str().unwrap_or("?"),
                    p["sku"].as_str().unwrap_or("?")
                )
            })
            .unwrap_or_else(|| "?".into());
        println!(
            "    {:>3} x {:<28} unit price {:>6} + tax {:>5}",
            line["quantity"].to_string(),
            product,
            line["price"].to_string(),
            line["tax"].to_string()
        );
    }
    println!(
        "    total_price {}  total_tax {}",
        sale["total_price"], sale["total_tax"]
    );
    for p in sale["register_sale_payments"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!("    payment {}", p["amount"]);
    }
    Ok(())
}

pub async fn run(
    sandbox: &Sandbox,
    store: &SqliteStore,
    webhook_url: &str,
    mirror: &InventoryMirror<SqliteStore, EcwidClient, AuthLightspeed<SqliteStore>, TokioClock>,
) -> anyhow::Result<()> {
    let store_id = sandbox_setup::sandbox_store_id(sandbox);
    println!("\n== Demo 1: an order paid at checkout ==");
    let order_id = sandbox.place_order(OrderSpec {
        items: vec![
            OrderItemSpec::new("TSHIRT-M", 2),
            OrderItemSpec::new("MUG-001", 1),
        ],
        email: "jane@example.com".into(),
        first_name: "Jane".into(),
        last_name: "Doe".into(),
        ..OrderSpec::default()
    });
    let order = sandbox
        .ecwid_order(&order_id)
        .context("the sandbox lost the order")?;
    println!(
        "  Ecwid order {order_id}: total {}, paymentStatus {}",
        order["total"], order["paymentStatus"]
    );
    let hook = sandbox.order_webhook("order.created", &order_id, None, "PAID");
    let status = sandbox.deliver(webhook_url, &hook).await?;
    println!("  signed webhook order.created delivered: HTTP {status}");
    let key = OrderKey::new(store_id, order_id.clone());
    let entry = wait_for_state(store, &key, OrderState::Posted).await?;
    print_sale(sandbox, &entry.invoice_number)?;
    println!("  ledger:\n{}", indent(&ops::describe(&entry)));
    let first = (order_id, entry);

    println!("== Demo 2: an order awaiting payment, paid later ==");
    let order_id = sandbox.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("123123", 1)],
        payment_status: "AWAITING_PAYMENT".into(),
        prices_include_tax: true,
        ..OrderSpec::default()
    });
    let key = OrderKey::new(store_id, order_id.clone());
    let hook = sandbox.order_webhook("order.created", &order_id, None, "AWAITING_PAYMENT");
    let status = sandbox.deliver(webhook_url, &hook).await?;
    println!(
        "  order {order_id} created AWAITING_PAYMENT: webhook HTTP {status}; not posted (rule O2)"
    );
    sandbox.set_payment_status(&order_id, "PAID")?;
    let hook = sandbox.order_webhook("order.updated", &order_id, Some("AWAITING_PAYMENT"), "PAID");
    let status = sandbox.deliver(webhook_url, &hook).await?;
    println!("  order {order_id} marked PAID: webhook HTTP {status}");
    let entry = wait_for_state(store, &key, OrderState::Posted).await?;
    print_sale(sandbox, &entry.invoice_number)?;

    println!("== Demo 3: a refund in Ecwid becomes a Lightspeed return (rules R2, R4) ==");
    let (order_id, entry) = first;
    let key = OrderKey::new(store_id, order_id.clone());
    let total = entry.total.context("the posted order has a total")?;
    sandbox.refund_order(&order_id, total)?;
    let hook = sandbox.order_webhook("order.updated", &order_id, Some("PAID"), "REFUNDED");
    let status = sandbox.deliver(webhook_url, &hook).await?;
    println!("  order {order_id} refunded in full ({total}): webhook HTTP {status}");
    let mut refunded = None;
    for _ in 0..200 {
        if let Some(e) = store.load_order(&key).await?
            && !e.returns.done.is_empty()
        {
            refunded = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refunded = refunded.context("the refund did not reach Lightspeed within 10 s")?;
    let sale_id = refunded.sale_id.clone().unwrap_or_default();
    for r in sandbox.returns_for(&sale_id) {
        println!(
            "  Lightspeed return {} ({}) for sale {sale_id}: total {}, {} line(s), stock back at the outlet",
            r.id,
            r.status,
            r.total,
            r.lines.len()
        );
    }

    println!("== Demo 4: a sale in the POS reaches Ecwid (rules S1, S3) ==");
    let ids = sandbox.ids();
    let mug = &ids.mug;
    let show = |when: &str| {
        println!(
            "  {when:<22} Lightspeed (Main Outlet) {}   Ecwid {}",
            sandbox.inventory_level(mug.ls_id(), &ids.outlet_id),
            sandbox
                .ecwid_stock(mug.ecwid_id(), None)
                .map(|q| q.to_string())
                .unwrap_or_else(|| "unlimited".into())
        );
    };
    show("MUG-001 before:");
    let sold = std::time::Instant::now();
    sandbox.pos_sale(mug.ls_id(), 3, &ids.register_id);
    show("after a POS sale of 3:");
    // The sandbox's retailer sends Lightspeed's inventory.update webhook to this process
    // (serve registered it), which runs the store's mirror at once.
    let level = sandbox.inventory_level(mug.ls_id(), &ids.outlet_id);
    while sandbox.ecwid_stock(mug.ecwid_id(), None) != Some(level)
        && sold.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    show("after the webhook:");
    println!(
        "  Lightspeed's inventory.update webhook brought it in {} ms, without waiting for the schedule",
        sold.elapsed().as_millis()
    );
    let report = loop {
        // The serve timer may be mid-run; wait for the cursor rather than race it.
        let report = mirror
            .mirror_store(store_id)
            .await?
            .context("the demo store has no connection")?;
        if report.outcome != RunOutcome::Busy {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    show("after a mirror run:");
    println!("  {}", ops::describe_mirror_run(&report));

    let counts = ops::counts_by_state(store, store_id).await?;
    println!("\nLedger of store {store_id}: {counts:?}");
    println!(
        "Ecwid order writes by the connector: {} (rule O4)",
        sandbox.counters().ecwid_order_writes
    );
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}
