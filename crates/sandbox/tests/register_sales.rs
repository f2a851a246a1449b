//! `POST /api/register_sales`: duplicates, stock, payment checks, required fields.

mod common;

use common::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

#[tokio::test]
async fn same_body_twice_creates_two_sales() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let body = closed_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id);

    let (s1, r1) = ls_post(&sb, "/api/register_sales", &body).await;
    let (s2, r2) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!((s1, s2), (200, 200), "{r1} {r2}");
    let id1 = r1["register_sale"]["id"].as_str().unwrap();
    let id2 = r2["register_sale"]["id"].as_str().unwrap();
    assert_ne!(id1, id2, "no idempotency: a repeated POST is a new sale");
    assert_eq!(sb.sale_count(), 2);
    assert_eq!(sb.sales_with_invoice("ECWID-TEST-1").len(), 2);

    // Both are found by invoice number, and both took stock.
    let (_, found) = ls_get(
        &sb,
        "/api/2.0/search?type=sales&invoice_number=ECWID-TEST-1",
    )
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 2);
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));

    // The response is the register_sale object.
    let sale = &r1["register_sale"];
    assert_eq!(sale["register_id"], json!(ids.register_id));
    assert_eq!(sale["status"], "CLOSED");
    assert_eq!(sale["invoice_number"], "ECWID-TEST-1");
    assert_eq!(sale["source_id"], "TEST1");
    assert_eq!(sale["total_price"], json!(12));
    assert_eq!(sale["total_tax"], num("1.2"));
    assert_eq!(sale["register_sale_products"][0]["product_id"], json!(mug));
    assert_eq!(sale["register_sale_payments"][0]["amount"], num("13.2"));
    assert!(sale["market_id"].is_string());
    assert!(sale["sale_date"].is_string());
}

#[tokio::test]
async fn closed_sale_lowers_stock_at_the_register_outlet_only() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let tote = ids.tote.ls_id().to_string();
    let main_before = sb.inventory_level(&tote, &ids.outlet_id);
    let wh_before = sb.inventory_level(&tote, &ids.second_outlet_id);
    let v_before = sb.inventory_version(&tote, &ids.outlet_id).unwrap();

    let body = closed_sale(&sb, &tote, 3, "15", "3", &ids.tax_20_id);
    let (status, resp) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        sb.inventory_level(&tote, &ids.outlet_id),
        main_before - dec!(3)
    );
    assert_eq!(sb.inventory_level(&tote, &ids.second_outlet_id), wh_before);
    assert!(sb.inventory_version(&tote, &ids.outlet_id).unwrap() > v_before);

    // A sale on the warehouse register takes stock from the warehouse.
    let mut body = closed_sale(&sb, &tote, 2, "15", "3", &ids.tax_20_id);
    body["register_id"] = json!(ids.second_register_id);
    body["register_sale_payments"][0]["register_id"] = json!(ids.second_register_id);
    let (status, resp) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        sb.inventory_level(&tote, &ids.second_outlet_id),
        wh_before - dec!(2)
    );
    assert_eq!(
        sb.inventory_level(&tote, &ids.outlet_id),
        main_before - dec!(3)
    );

    // The change feed shows the new level after the old cursor.
    let (_, inv) = ls_get(&sb, &format!("/api/2.0/inventory?after={v_before}")).await;
    let rec = inv["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["product_id"] == json!(tote) && r["outlet_id"] == json!(ids.outlet_id))
        .expect("changed record is listed");
    assert_eq!(rec["inventory_level"], json!(22));
}

#[tokio::test]
async fn saved_sale_does_not_take_stock() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let mut body = closed_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id);
    body["status"] = json!("SAVED");
    body["register_sale_payments"] = json!([]);
    let (status, resp) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));
}

#[tokio::test]
async fn payment_mismatch_is_rejected() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let mut body = closed_sale(&sb, &mug, 2, "12", "1.2", &ids.tax_10_id);
    body["register_sale_payments"][0]["amount"] = num("26.39");
    let (status, resp) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["details"].as_str().unwrap().contains("26.40"),
        "{resp}"
    );
    assert_eq!(sb.sale_count(), 0);
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));

    // No payment at all on a CLOSED sale.
    body["register_sale_payments"] = json!([]);
    let (status, _) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 400);

    // Exact to the cent passes, with 5-decimal unit prices (10.00 incl. 10% tax).
    let toys = ids.toys.ls_id().to_string();
    let mut body = closed_sale(&sb, &toys, 1, "9.09091", "0.90909", &ids.tax_10_id);
    body["register_sale_payments"][0]["amount"] = json!(10);
    let (status, resp) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 200, "{resp}");
}

#[tokio::test]
async fn missing_or_unknown_fields_are_rejected() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let good = closed_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id);

    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut b = good.clone();
    b["register_sale_products"][0]
        .as_object_mut()
        .unwrap()
        .remove("tax_id");
    cases.push(("missing tax_id", b));
    let mut b = good.clone();
    b["register_sale_products"][0]["tax_id"] = json!(uuid_like());
    cases.push(("unknown tax_id", b));
    let mut b = good.clone();
    b["register_sale_products"][0]
        .as_object_mut()
        .unwrap()
        .remove("tax");
    cases.push(("missing tax", b));
    let mut b = good.clone();
    b["register_sale_products"][0]
        .as_object_mut()
        .unwrap()
        .remove("price");
    cases.push(("missing price", b));
    let mut b = good.clone();
    b["register_sale_products"][0]
        .as_object_mut()
        .unwrap()
        .remove("quantity");
    cases.push(("missing quantity", b));
    let mut b = good.clone();
    b["register_sale_products"][0]["product_id"] = json!(uuid_like());
    cases.push(("unknown product", b));
    let mut b = good.clone();
    b.as_object_mut().unwrap().remove("register_id");
    cases.push(("missing register_id", b));
    let mut b = good.clone();
    b["register_id"] = json!(uuid_like());
    cases.push(("unknown register", b));
    let mut b = good.clone();
    b.as_object_mut().unwrap().remove("user_id");
    cases.push(("missing user_id", b));
    let mut b = good.clone();
    b["user_id"] = json!(uuid_like());
    cases.push(("unknown user", b));
    let mut b = good.clone();
    b.as_object_mut().unwrap().remove("status");
    cases.push(("missing status", b));
    let mut b = good.clone();
    b["status"] = json!("DONE");
    cases.push(("bad status", b));
    let mut b = good.clone();
    b["register_sale_payments"][0]["retailer_payment_type_id"] = json!(uuid_like());
    cases.push(("unknown payment type", b));
    let mut b = good.clone();
    b["customer_id"] = json!(uuid_like());
    cases.push(("unknown customer", b));
    let mut b = good.clone();
    b["register_sale_products"] = json!([]);
    cases.push(("no products", b));
    let mut b = good.clone();
    b["register_sale_products"][0]["price"] = json!("twelve");
    cases.push(("non-numeric price", b));

    for (name, body) in cases {
        let (status, resp) = ls_post(&sb, "/api/register_sales", &body).await;
        assert_eq!(status, 400, "{name}: {resp}");
        assert!(resp["error"].is_string(), "{name}: {resp}");
    }
    assert_eq!(sb.sale_count(), 0);
    assert_eq!(sb.counters().ls_sale_posts, 16);
}

#[tokio::test]
async fn numeric_strings_are_accepted_and_invoice_is_generated() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let s = ids.tshirt.variant("TSHIRT-S").ls_id().to_string();
    let body = json!({
        "register_id": ids.register_id,
        "user_id": ids.user_id,
        "status": "CLOSED",
        "register_sale_products": [{
            "product_id": s, "quantity": "2", "price": "20.00000", "tax": "4.00000", "tax_id": ids.tax_20_id,
        }],
        "register_sale_payments": [{"retailer_payment_type_id": ids.payment_type_id, "amount": "48.00"}],
    });
    let (status, resp) = ls_post(&sb, "/api/register_sales", &body).await;
    assert_eq!(status, 200, "{resp}");
    let invoice = resp["register_sale"]["invoice_number"].as_str().unwrap();
    assert!(invoice.starts_with("WEB-"), "{invoice}");
    assert_eq!(sb.inventory_level(&s, &ids.outlet_id), dec!(8));
    let total: Decimal = resp["register_sale"]["totals"]["total_payment"]
        .to_string()
        .parse()
        .unwrap();
    assert_eq!(total, dec!(48));
}

#[tokio::test]
async fn updating_a_sale_by_id_replaces_it_without_duplicating() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let mut body = closed_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id);
    body["status"] = json!("SAVED");
    body["register_sale_payments"] = json!([]);
    let (_, resp) = ls_post(&sb, "/api/register_sales", &body).await;
    let id = resp["register_sale"]["id"].as_str().unwrap().to_string();
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));

    let mut close = closed_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id);
    close["id"] = json!(id);
    let (status, resp) = ls_post(&sb, "/api/register_sales", &close).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["register_sale"]["id"], json!(id));
    assert_eq!(sb.sale_count(), 1);
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(29));
}

#[tokio::test]
async fn auth_and_domain_prefix_are_enforced() {
    let sb = sandbox().await;
    let r = client()
        .get(format!("{}/api/2.0/products", sb.lightspeed_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client()
        .get(format!("{}/api/2.0/products", sb.lightspeed_url()))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client()
        .get(format!(
            "{}/lightspeed/other/api/2.0/products",
            sb.base_url()
        ))
        .bearer_auth(&sb.config().ls_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn pos_sale_lowers_stock_and_is_a_closed_sale() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let v = sb.inventory_version(&mug, &ids.outlet_id).unwrap();
    let sale_id = sb.pos_sale(&mug, 4, &ids.register_id);
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(26));
    assert!(sb.inventory_version(&mug, &ids.outlet_id).unwrap() > v);
    let sale = sb
        .sales()
        .into_iter()
        .find(|s| s["id"] == json!(sale_id))
        .unwrap();
    assert_eq!(sale["status"], "CLOSED");
    assert_eq!(sale["totals"]["total_payment"], num("52.8"));
}

fn uuid_like() -> String {
    "00000000-1111-4222-8333-444444444444".into()
}
