//! Refunds and cancellations reach Lightspeed as returns, exactly once, with stock put back
//! (issue #15, rules R1–R6), driven as Ecwid drives the product: signed webhooks into the
//! embedded edge, the real poster, the sandbox on both Lightspeed API generations.

use els_core::LedgerStore;
use els_core::ledger::{OrderState, ReasonCode, ReturnKind};
use els_core::lightspeed::LsApiVersion;
use els_core::poster::PostOutcome;
use els_sandbox::{Fault, FaultKind, OrderItemSpec, OrderSpec, ProductSpec, Route};
use els_tests::harness::{Harness, HarnessOptions};
use rust_decimal::Decimal;

const GENERATIONS: [LsApiVersion; 2] = [LsApiVersion::LATEST, LsApiVersion::Legacy];

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn order(items: &[(&str, u32)]) -> OrderSpec {
    OrderSpec {
        items: items
            .iter()
            .map(|(sku, q)| OrderItemSpec::new(*sku, *q))
            .collect(),
        email: "refund@example.com".into(),
        first_name: "Rae".into(),
        last_name: "Fund".into(),
        ..OrderSpec::default()
    }
}

async fn harness(api: LsApiVersion) -> Harness {
    Harness::start_with(HarnessOptions {
        worker: false,
        lightspeed_api: api,
        ..HarnessOptions::default()
    })
    .await
}

/// Places and posts an order; the Lightspeed sale's id.
async fn posted(h: &Harness, items: &[(&str, u32)]) -> (String, String) {
    let id = h.sandbox.place_order(order(items));
    assert_eq!(
        h.send_webhook("order.created", &id, None, "PAID").await,
        200
    );
    let PostOutcome::Posted { sale_id } = h.next_outcome().await else {
        panic!("posted");
    };
    (id, sale_id)
}

/// Ecwid's `order.updated` for a payment status change from PAID.
async fn updated(h: &Harness, id: &str, status: &str) {
    assert_eq!(
        h.send_webhook("order.updated", id, Some("PAID"), status)
            .await,
        200
    );
}

fn mug_level(h: &Harness) -> Decimal {
    let ids = h.sandbox.ids();
    h.sandbox
        .inventory_level(ids.mug.ls_product_id.as_deref().unwrap(), &ids.outlet_id)
}

async fn use_refund_product(h: &Harness, restock: bool) {
    let refund = h.sandbox.add_ls_product_only(ProductSpec {
        sku: "ELS-REFUND".into(),
        name: "Refund".into(),
        has_inventory: false,
        ..ProductSpec::default()
    });
    els_cli::ops::update_connection(&h.store, h.connection.store_id, |c| {
        c.refund_product_id = refund.ls_product_id.clone();
        c.settings.restock_refunds = restock;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_full_refund_is_one_referenced_return_with_the_stock_back_on_both_generations() {
    for api in GENERATIONS {
        let h = harness(api).await;
        let ecwid_mug = h.sandbox.ids().mug.ecwid_product_id.unwrap();
        let (stock_before, ecwid_before) = (mug_level(&h), h.sandbox.ecwid_stock(ecwid_mug, None));
        let (id, sale_id) = posted(&h, &[("MUG-001", 2), ("TOTE-001", 1)]).await;
        assert_eq!(
            mug_level(&h),
            stock_before - d("2"),
            "{api}: the sale took stock"
        );
        let sale_total = h.ledger(&id).await.unwrap().total.unwrap();

        h.sandbox.refund_order(&id, sale_total).unwrap();
        updated(&h, &id, "REFUNDED").await;
        let PostOutcome::Refunded { return_ids, .. } = h.next_outcome().await else {
            panic!("{api}: refunded");
        };
        let returns = h.sandbox.returns_for(&sale_id);
        assert_eq!(returns.len(), 1, "{api}");
        let r = &returns[0];
        assert_eq!(
            (r.id.as_str(), r.status.as_str()),
            (return_ids[0].as_str(), "CLOSED")
        );
        assert_eq!(r.total, -sale_total, "{api}: to the cent");
        assert_eq!(
            r.payments.iter().map(|p| p.amount).sum::<Decimal>(),
            -sale_total
        );
        assert!(
            r.payments
                .iter()
                .all(|p| p.retailer_payment_type_id == h.connection.payment_type_id)
        );
        let returned: Decimal = r.lines.iter().map(|l| l.quantity).sum();
        assert_eq!(returned, d("-3"), "{api}: every unit goes back");
        assert_eq!(
            mug_level(&h),
            stock_before,
            "{api}: the mugs are back at the outlet"
        );

        // Ecwid's own stock follows after a mirror run (Ecwid did not restock the refund).
        h.mirror_once().await;
        assert_eq!(
            h.sandbox.ecwid_stock(ecwid_mug, None),
            ecwid_before,
            "{api}"
        );

        // The same webhook again, and a sweep-like redelivery: no second return.
        for _ in 0..3 {
            updated(&h, &id, "REFUNDED").await;
            assert!(matches!(
                h.next_outcome().await,
                PostOutcome::AlreadyPosted { .. }
            ));
        }
        assert_eq!(h.sandbox.returns_for(&sale_id).len(), 1, "{api}");
        let e = h.ledger(&id).await.unwrap();
        assert_eq!(e.returns.done.len(), 1);
        assert_eq!(e.returns.done[0].kind, ReturnKind::Restock);
        assert_eq!(e.returns.returned(), sale_total);
    }
}

#[tokio::test]
async fn with_restocking_off_a_full_refund_is_money_only_and_no_stock_moves() {
    for api in GENERATIONS {
        let h = harness(api).await;
        use_refund_product(&h, false).await;
        let (id, sale_id) = posted(&h, &[("MUG-001", 2)]).await;
        let after_sale = mug_level(&h);
        let total = h.ledger(&id).await.unwrap().total.unwrap();
        h.sandbox.refund_order(&id, total).unwrap();
        updated(&h, &id, "REFUNDED").await;
        assert!(
            matches!(h.next_outcome().await, PostOutcome::Refunded { .. }),
            "{api}"
        );
        assert!(
            h.sandbox.returns_for(&sale_id).is_empty(),
            "{api}: unreferenced"
        );
        let invoice = format!("ECWIDR-{}-{id}-1", h.connection.store_id);
        let money = h.sandbox.sales_with_invoice(&invoice);
        assert_eq!(money.len(), 1, "{api}: {invoice}");
        assert_eq!(mug_level(&h), after_sale, "{api}: no stock moved");
        let e = h.ledger(&id).await.unwrap();
        assert_eq!(e.returns.done[0].kind, ReturnKind::MoneyOnly);
        assert_eq!(e.returns.returned(), total);
    }
}

#[tokio::test]
async fn two_partial_refunds_then_the_rest_are_three_returns_summing_exactly_to_the_sale() {
    for api in GENERATIONS {
        let h = harness(api).await;
        use_refund_product(&h, true).await;
        let stock_before = mug_level(&h);
        let (id, sale_id) = posted(&h, &[("MUG-001", 3)]).await;
        let total = h.ledger(&id).await.unwrap().total.unwrap();
        for amount in [d("5.00"), d("7.77"), total - d("12.77")] {
            h.sandbox.refund_order(&id, amount).unwrap();
            let status = h.sandbox.ecwid_order(&id).unwrap()["paymentStatus"]
                .as_str()
                .unwrap()
                .to_string();
            updated(&h, &id, &status).await;
            assert!(
                matches!(h.next_outcome().await, PostOutcome::Refunded { .. }),
                "{api} {amount}"
            );
        }
        let e = h.ledger(&id).await.unwrap();
        let amounts: Vec<Decimal> = e.returns.done.iter().map(|r| r.amount).collect();
        assert_eq!(
            amounts,
            vec![d("5.00"), d("7.77"), total - d("12.77")],
            "{api}"
        );
        assert_eq!(e.returns.returned(), total, "{api}: to the cent");
        // The last one restocked all three mugs, at the money that was left.
        let restock = h.sandbox.returns_for(&sale_id);
        assert_eq!(restock.len(), 1, "{api}");
        assert_eq!(restock[0].total, -(total - d("12.77")));
        assert_eq!(mug_level(&h), stock_before, "{api}");
    }
}

#[tokio::test]
async fn a_cancellation_after_posting_returns_everything_and_one_before_posting_posts_nothing() {
    for api in GENERATIONS {
        let h = harness(api).await;
        let stock_before = mug_level(&h);
        let (id, sale_id) = posted(&h, &[("MUG-001", 1)]).await;
        h.sandbox.set_payment_status(&id, "CANCELLED").unwrap();
        updated(&h, &id, "CANCELLED").await;
        assert!(
            matches!(h.next_outcome().await, PostOutcome::Refunded { .. }),
            "{api}"
        );
        assert_eq!(h.sandbox.returns_for(&sale_id).len(), 1);
        assert_eq!(mug_level(&h), stock_before, "{api}");

        // R1: cancelled before the poster saw it paid; the late PAID webhook posts nothing.
        let late = h.sandbox.place_order(order(&[("MUG-001", 1)]));
        h.sandbox.set_payment_status(&late, "CANCELLED").unwrap();
        assert_eq!(
            h.send_webhook("order.created", &late, None, "PAID").await,
            200
        );
        let PostOutcome::Skipped(reason) = h.next_outcome().await else {
            panic!("{api}: skipped");
        };
        assert_eq!(reason.code, ReasonCode::RefundedBeforePosting);
        updated(&h, &late, "CANCELLED").await;
        assert!(matches!(h.next_outcome().await, PostOutcome::Skipped(_)));
        assert!(h.sales_for(&late).is_empty(), "{api}: no sale, ever");
        assert_eq!(h.ledger(&late).await.unwrap().state, OrderState::Skipped);
    }
}

#[tokio::test]
async fn a_refund_delivered_three_times_with_the_completion_answer_lost_is_one_return() {
    for api in GENERATIONS {
        let h = harness(api).await;
        let (id, sale_id) = posted(&h, &[("MUG-001", 2)]).await;
        let total = h.ledger(&id).await.unwrap().total.unwrap();
        h.sandbox.refund_order(&id, total).unwrap();
        // The completion is committed, then the connection drops.
        h.sandbox
            .inject(Fault::once(Route::LsPostSale, FaultKind::DropAfterCommit));
        for _ in 0..3 {
            updated(&h, &id, "REFUNDED").await;
        }
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            outcomes.push(h.next_outcome().await);
        }
        let returns = h.sandbox.returns_for(&sale_id);
        let closed: Vec<_> = returns.iter().filter(|r| r.status == "CLOSED").collect();
        assert_eq!(closed.len(), 1, "{api}: {returns:?} {outcomes:?}");
        assert_eq!(closed[0].total, -total);
        let e = h.ledger(&id).await.unwrap();
        assert_eq!(e.returns.done.len(), 1, "{api}");
        assert!(
            e.returns.done[0].adopted,
            "{api}: found after the lost answer"
        );
        assert_eq!(
            h.sandbox.counters().ls_return_starts,
            1,
            "{api}: started once"
        );
    }
}

#[tokio::test]
async fn refunds_that_cannot_be_posted_are_held_and_replayable() {
    for api in GENERATIONS {
        let h = harness(api).await;
        // The sale was voided in the POS.
        let (id, sale_id) = posted(&h, &[("MUG-001", 1)]).await;
        h.sandbox.void_sale(&sale_id).unwrap();
        h.sandbox.set_payment_status(&id, "CANCELLED").unwrap();
        updated(&h, &id, "CANCELLED").await;
        let outcome = h.next_outcome().await;
        let PostOutcome::RefundHeld(reason) = outcome else {
            panic!("{api}: held, not {outcome:?}");
        };
        assert_eq!(reason.code, ReasonCode::RefundNotPostable);
        assert!(reason.message.contains("voided"), "{reason}");

        // A partial refund without an amount, then the product without a refund product.
        let (id2, _) = posted(&h, &[("MUG-001", 1)]).await;
        h.sandbox
            .refund_order_without_amount(&id2, d("1.00"))
            .unwrap();
        updated(&h, &id2, "PARTIALLY_REFUNDED").await;
        let outcome = h.next_outcome().await;
        let PostOutcome::RefundHeld(reason) = outcome else {
            panic!("{api}: held, not {outcome:?}");
        };
        assert_eq!(reason.code, ReasonCode::RefundAmountUnknown);
        assert!(h.ledger(&id2).await.unwrap().returns.held.is_some());

        // Ecwid now shows the amount; with a refund product set, the replay posts it.
        h.sandbox
            .update_order(&id2, serde_json::json!({"refundedAmount": 1.0}))
            .unwrap();
        use_refund_product(&h, true).await;
        let replayed =
            els_cli::ops::replay_order(&h.store, &h.store, &h.key(&id2), chrono::Utc::now())
                .await
                .unwrap();
        assert_eq!(replayed, els_cli::ops::ReplayResult::Requeued);
        assert!(
            matches!(h.next_outcome().await, PostOutcome::Refunded { .. }),
            "{api}"
        );
        assert_eq!(h.ledger(&id2).await.unwrap().returns.returned(), d("1.00"));
    }
}

#[tokio::test]
async fn with_refunds_off_a_refund_is_skipped_until_replayed() {
    let h = harness(LsApiVersion::LATEST).await;
    els_cli::ops::update_connection(&h.store, h.connection.store_id, |c| {
        c.settings.post_refunds = false;
    })
    .await
    .unwrap();
    let (id, sale_id) = posted(&h, &[("MUG-001", 1)]).await;
    h.sandbox.set_payment_status(&id, "CANCELLED").unwrap();
    updated(&h, &id, "CANCELLED").await;
    let PostOutcome::RefundHeld(reason) = h.next_outcome().await else {
        panic!("held");
    };
    assert_eq!(reason.code, ReasonCode::RefundsOff);
    assert!(h.sandbox.returns_for(&sale_id).is_empty());
    els_cli::ops::update_connection(&h.store, h.connection.store_id, |c| {
        c.settings.post_refunds = true;
    })
    .await
    .unwrap();
    let replayed = els_cli::ops::replay_parked(
        &h.store,
        &h.store,
        h.connection.store_id,
        ReasonCode::RefundsOff,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(replayed.len(), 1);
    assert!(matches!(
        h.next_outcome().await,
        PostOutcome::Refunded { .. }
    ));
    assert_eq!(h.sandbox.returns_for(&sale_id).len(), 1);
    assert!(
        h.store
            .load_order(&h.key(&id))
            .await
            .unwrap()
            .unwrap()
            .returns
            .held
            .is_none()
    );
}

#[tokio::test]
async fn an_edit_of_a_paid_order_is_posted_once_as_a_return_and_a_sale_on_both_generations() {
    for api in GENERATIONS {
        let h = harness(api).await;
        let ids = h.sandbox.ids();
        let tote = ids.tote.ls_product_id.clone().unwrap();
        let tote_level = || h.sandbox.inventory_level(&tote, &ids.outlet_id);
        let (id, sale_id) = posted(&h, &[("MUG-001", 2), ("TOTE-001", 1)]).await;
        let (mugs_after_sale, totes_after_sale) = (mug_level(&h), tote_level());
        let total = h.ledger(&id).await.unwrap().total.unwrap();

        // The merchant removes the tote (18.00) and raises the mugs to 3 (13.20 each).
        let mut order = h.sandbox.ecwid_order(&id).unwrap();
        let items: Vec<serde_json::Value> = order["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["sku"] != "TOTE-001")
            .cloned()
            .map(|mut i| {
                i["quantity"] = 3.into();
                i
            })
            .collect();
        let new_total = total - d("18.00") + d("13.20");
        order["items"] = items.into();
        h.sandbox
            .update_order(
                &id,
                serde_json::json!({"items": order["items"], "total": new_total.to_string().parse::<f64>().unwrap()}),
            )
            .unwrap();
        for _ in 0..2 {
            assert_eq!(
                h.send_webhook("order.updated", &id, Some("PAID"), "PAID")
                    .await,
                200
            );
        }
        let PostOutcome::Refunded { return_ids, .. } = h.next_outcome().await else {
            panic!("{api}: adjusted");
        };
        assert_eq!(return_ids.len(), 2, "{api}: a return, then a sale");
        assert!(
            matches!(h.next_outcome().await, PostOutcome::AlreadyPosted { .. }),
            "{api}"
        );
        let returns = h.sandbox.returns_for(&sale_id);
        assert_eq!(returns.len(), 1, "{api}");
        assert_eq!(returns[0].status, "CLOSED");
        assert_eq!(returns[0].total, d("-18.00"), "{api}");
        let invoice = format!("ECWIDR-{}-{id}-2", h.connection.store_id);
        let more = h.sandbox.sales_with_invoice(&invoice);
        assert_eq!(more.len(), 1, "{api}: {invoice}");
        assert_eq!(
            tote_level(),
            totes_after_sale + d("1"),
            "{api}: the tote is back"
        );
        assert_eq!(
            mug_level(&h),
            mugs_after_sale - d("1"),
            "{api}: one more mug sold"
        );
        let e = h.ledger(&id).await.unwrap();
        assert_eq!(e.total, Some(new_total), "{api}: the new baseline");
        assert_eq!(e.returns.returned(), Decimal::ZERO, "{api}: no refund");
        assert_eq!(e.returns.done.len(), 2);
    }
}
