//! Returns on both generations: the start on a closed sale only, the completion (legacy
//! `register_sales` with the return's id, 2026-07 `PUT /sales/{id}`) with its rules and its
//! stock, the 2026-07 voiding of other parked returns, unreferenced returns, faults, and the
//! answers against the published schemas (MAPPING.md §11).

mod common;

use std::sync::LazyLock;

use common::openapi::Spec;
use common::*;
use els_sandbox::{Fault, FaultKind, ProductSpec, Route, Sandbox, SandboxConfig};
use reqwest::Method;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

static SPEC_2_0: LazyLock<Spec> = LazyLock::new(|| {
    Spec::parse(
        "openapi-2.0.reduced.json",
        include_str!("fixtures/lightspeed/openapi-2.0.reduced.json"),
    )
});
static SALES: LazyLock<Spec> = LazyLock::new(|| {
    Spec::parse(
        "2026-07/sales.json",
        include_str!("fixtures/lightspeed/2026-07/sales.json"),
    )
});
static RETURNS: LazyLock<Spec> = LazyLock::new(|| {
    Spec::parse(
        "2026-07/returns.json",
        include_str!("fixtures/lightspeed/2026-07/returns.json"),
    )
});

#[derive(Clone, Copy, Debug, PartialEq)]
enum Gen {
    Legacy,
    Dated,
}

const BOTH: [Gen; 2] = [Gen::Legacy, Gen::Dated];

/// A line: product, quantity, unit price, unit tax, tax id.
type Line<'a> = (&'a str, i64, Decimal, Decimal, &'a str);

/// A Lightspeed request; status 0 when no answer came (a dropped connection).
async fn send(sb: &Sandbox, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let url = format!("{}{path}", sb.lightspeed_url());
    let mut req = client()
        .request(method, url)
        .bearer_auth(&sb.config().ls_token)
        .header("Accept", "application/json");
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// A closed sale of `qty` mugs-like units; its id.
async fn sell(sb: &Sandbox, g: Gen, product: &str, qty: u32, tax_id: &str) -> String {
    let (status, body) = match g {
        Gen::Legacy => {
            let b = closed_sale(sb, product, qty, "12", "1.2", tax_id);
            ls_post(sb, "/api/register_sales", &b).await
        }
        Gen::Dated => {
            let b = dated_sale(sb, product, qty, "12", "1.2", tax_id);
            ls_post(sb, "/api/2026-07/sales", &b).await
        }
    };
    assert_eq!(status, 200, "{body}");
    let sale = if g == Gen::Legacy {
        &body["register_sale"]
    } else {
        &body["data"]
    };
    sale["id"].as_str().unwrap().to_string()
}

async fn start(sb: &Sandbox, g: Gen, sale_id: &str) -> (u16, Value) {
    match g {
        Gen::Legacy => {
            let path = format!("/api/2.0/sales/{sale_id}/actions/return");
            send(sb, Method::PUT, &path, None).await
        }
        Gen::Dated => {
            let path = format!("/api/2026-07/sales/{sale_id}/actions/return");
            send(sb, Method::POST, &path, None).await
        }
    }
}

async fn start_ok(sb: &Sandbox, g: Gen, sale_id: &str) -> String {
    let (status, body) = start(sb, g, sale_id).await;
    assert_eq!(status, 200, "{g:?} start: {body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

/// Completes `return_id` with `lines`, paid back in full.
async fn complete(
    sb: &Sandbox,
    g: Gen,
    return_id: &str,
    original: &str,
    lines: &[Line<'_>],
) -> (u16, Value) {
    let ids = sb.ids();
    let total: Decimal = lines
        .iter()
        .map(|(_, q, p, t, _)| Decimal::from(*q) * (p + t))
        .sum();
    let amount = num(&total.to_string());
    match g {
        Gen::Legacy => {
            let body = json!({
                "id": return_id, "return_for": original,
                "register_id": ids.register_id, "user_id": ids.user_id, "status": "CLOSED",
                "sale_date": "2026-11-28T10:00:00Z", "invoice_number": "ECWID-TEST-1-R1",
                "register_sale_products": lines.iter().map(|(p, q, price, tax, tax_id)| json!({
                    "product_id": p, "quantity": q, "price": num(&price.to_string()),
                    "tax": num(&tax.to_string()), "tax_id": tax_id, "status": "CONFIRMED",
                })).collect::<Vec<_>>(),
                "register_sale_payments": [{
                    "register_id": ids.register_id,
                    "retailer_payment_type_id": ids.payment_type_id,
                    "payment_date": "2026-11-28T10:00:00Z", "amount": amount,
                }],
            });
            send(sb, Method::POST, "/api/register_sales", Some(&body)).await
        }
        Gen::Dated => {
            let body = json!({
                "source": {"author_id": ids.user_id, "register_id": ids.register_id},
                "state": "closed", "attributes": [], "date": "2026-11-28T10:00:00Z",
                "invoice_number": "ECWID-DATED-1-R1",
                "line_items": lines.iter().map(|(p, q, price, tax, tax_id)| json!({
                    "product": {"id": p}, "quantity": q,
                    "pricing": {"price": num(&price.to_string())},
                    "tax": {"id": tax_id, "amount": num(&tax.to_string())},
                })).collect::<Vec<_>>(),
                "payments": [{"type": {"config_id": ids.payment_type_id}, "amount": amount,
                              "source": {"register_id": ids.register_id}}],
            });
            let path = format!("/api/2026-07/sales/{return_id}");
            send(sb, Method::PUT, &path, Some(&body)).await
        }
    }
}

fn statuses(sb: &Sandbox, original: &str) -> Vec<String> {
    sb.returns_for(original)
        .into_iter()
        .map(|r| r.status)
        .collect()
}

#[tokio::test]
async fn a_return_starts_only_on_a_closed_sale() {
    for g in BOTH {
        let sb = sandbox().await;
        let ids = sb.ids();
        let mug = ids.mug.ls_id().to_string();
        let sale = sell(&sb, g, &mug, 2, &ids.tax_10_id).await;
        let (status, body) = start(&sb, g, &sale).await;
        assert_eq!(status, 200, "{g:?}: {body}");
        let r = &body["data"];
        match g {
            Gen::Legacy => {
                assert_eq!(r["status"], "SAVED");
                assert_eq!(r["state"], "parked");
                assert_eq!(r["return_for"], json!(sale));
                assert_eq!(r["line_items"][0]["quantity"], json!(-2));
                assert_eq!(r["line_items"][0]["is_return"], json!(true));
                assert_eq!(r["total_price"], json!(-24));
            }
            Gen::Dated => {
                assert_eq!(r["state"], "parked");
                assert_eq!(r["return"]["original_sale_id"], json!(sale));
                assert_eq!(r["line_items"][0]["quantity"], json!(-2));
                assert_eq!(r["totals"]["price"], json!(-24));
            }
        }
        assert!(r["payments"].as_array().unwrap().is_empty());
        let returns = sb.returns_for(&sale);
        assert_eq!(returns.len(), 1);
        assert_eq!(returns[0].status, "SAVED");
        assert_eq!(returns[0].total, dec!(-26.4));
        // Starting a return moves no stock.
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));

        // A parked (SAVED) sale, a return itself, an unknown sale: refused, nothing started.
        let mut parked = closed_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id);
        parked["status"] = "SAVED".into();
        parked["register_sale_payments"] = json!([]);
        let (_, p) = ls_post(&sb, "/api/register_sales", &parked).await;
        let parked_id = p["register_sale"]["id"].as_str().unwrap().to_string();
        let (status, body) = start(&sb, g, &parked_id).await;
        assert_eq!(status, 422, "{g:?}: {body}");
        assert!(
            body["details"].as_str().unwrap().contains("SAVED"),
            "{body}"
        );
        let first_return = returns[0].id.clone();
        assert_eq!(start(&sb, g, &first_return).await.0, 422);
        assert_eq!(start(&sb, g, "no-such-sale").await.0, 404);
        assert!(sb.returns_for(&parked_id).is_empty());
        assert_eq!(sb.counters().ls_return_starts, 4);

        // A voided sale cannot be returned either.
        sb.void_sale(&sale).unwrap();
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));
        assert_eq!(start(&sb, g, &sale).await.0, 422);
    }
}

#[tokio::test]
async fn completing_a_return_puts_its_stock_back_in_the_feed() {
    for g in BOTH {
        let sb = sandbox().await;
        let ids = sb.ids();
        let mug = ids.mug.ls_id().to_string();
        let sale = sell(&sb, g, &mug, 2, &ids.tax_10_id).await;
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));
        let before = sb.inventory_version(&mug, &ids.outlet_id).unwrap();
        let other = sb.inventory_level(&mug, &ids.second_outlet_id);
        let rid = start_ok(&sb, g, &sale).await;
        let (status, body) = complete(
            &sb,
            g,
            &rid,
            &sale,
            &[(&mug, -2, dec!(12), dec!(1.2), &ids.tax_10_id)],
        )
        .await;
        assert_eq!(status, 200, "{g:?}: {body}");
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));
        let after = sb.inventory_version(&mug, &ids.outlet_id).unwrap();
        assert_eq!(sb.inventory_level(&mug, &ids.second_outlet_id), other);
        assert!(after > before);
        let returns = sb.returns_for(&sale);
        assert_eq!(returns[0].status, "CLOSED");
        assert_eq!(returns[0].total, dec!(-26.4));
        assert_eq!(returns[0].payments[0].amount, dec!(-26.4));
        assert_eq!(sb.counters().ls_return_completions, 1);

        // The inventory feed of each generation shows the level back.
        let (_, legacy) = ls_get(&sb, &format!("/api/2.0/inventory?after={before}")).await;
        let rec = legacy["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["product_id"] == json!(mug) && r["outlet_id"] == json!(ids.outlet_id))
            .expect("the mug's record in the legacy feed");
        assert_eq!(rec["inventory_level"], json!(30));
        let feed = json!({"after": before, "sort_direction": "asc"});
        let (_, dated) = ls_post(&sb, "/api/2026-07/inventory", &feed).await;
        assert!(
            dated.as_array().unwrap().iter().any(|r| r["product_id"] == json!(mug)
                && r["current_inventory_level"] == json!(30)),
            "{dated}"
        );

        // Read back by id on both generations.
        let (_, v2) = ls_get(&sb, &format!("/api/2.0/sales/{rid}")).await;
        assert_eq!(v2["data"]["status"], "CLOSED");
        assert_eq!(v2["data"]["return_for"], json!(sale));
        let (_, v7) = ls_get(&sb, &format!("/api/2026-07/sales/{rid}")).await;
        assert_eq!(v7["data"]["state"], "closed");
        assert_eq!(v7["data"]["return"]["original_sale_id"], json!(sale));
        assert_eq!(v7["data"]["payments"][0]["amount"], num("-26.4"));
        let (_, original) = ls_get(&sb, &format!("/api/2026-07/sales/{sale}")).await;
        assert_eq!(original["data"]["return"]["return_sale_ids"], json!([rid]));

        // Completing it again is refused: a closed sale can only be voided.
        let (status, body) = complete(
            &sb,
            g,
            &rid,
            &sale,
            &[(&mug, -2, dec!(12), dec!(1.2), &ids.tax_10_id)],
        )
        .await;
        assert_eq!(status, 409, "{g:?}: {body}");
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));
        assert_eq!(statuses(&sb, &sale), ["CLOSED"]);
    }
}

#[tokio::test]
async fn partial_returns_foreign_products_and_over_returns() {
    for g in BOTH {
        let sb = sandbox().await;
        let ids = sb.ids();
        let mug = ids.mug.ls_id().to_string();
        let tote = ids.tote.ls_id().to_string();
        let tax = ids.tax_10_id.clone();
        let sale = sell(&sb, g, &mug, 3, &tax).await;
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(27));

        // One of three comes back.
        let r1 = start_ok(&sb, g, &sale).await;
        let one = [(mug.as_str(), -1, dec!(12), dec!(1.2), tax.as_str())];
        let (status, body) = complete(&sb, g, &r1, &sale, &one).await;
        assert_eq!(status, 200, "{g:?}: {body}");
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));

        // A product that was not on the sale: 422, nothing changed.
        let r2 = start_ok(&sb, g, &sale).await;
        let tote_before = sb.inventory_level(&tote, &ids.outlet_id);
        let mixed = [
            (mug.as_str(), -1, dec!(12), dec!(1.2), tax.as_str()),
            (tote.as_str(), -1, dec!(12), dec!(1.2), tax.as_str()),
        ];
        let (status, body) = complete(&sb, g, &r2, &sale, &mixed).await;
        assert_eq!(status, 422, "{g:?}: {body}");
        assert!(body["details"].as_str().unwrap().contains(&tote), "{body}");
        assert_eq!(sb.inventory_level(&tote, &ids.outlet_id), tote_before);
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));

        // Three more than the two left: 422, nothing changed.
        let three = [(mug.as_str(), -3, dec!(12), dec!(1.2), tax.as_str())];
        let (status, body) = complete(&sb, g, &r2, &sale, &three).await;
        assert_eq!(status, 422, "{g:?}: {body}");
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));
        assert_eq!(statuses(&sb, &sale), ["CLOSED", "SAVED"]);

        // Not paid back to the cent: 400.
        let short = complete_body_short(&sb, g, &r2, &sale, &mug, &tax);
        let (status, _) = match g {
            Gen::Legacy => ls_post(&sb, "/api/register_sales", &short).await,
            Gen::Dated => {
                let path = format!("/api/2026-07/sales/{r2}");
                send(&sb, Method::PUT, &path, Some(&short)).await
            }
        };
        assert_eq!(status, 400);

        // The two left: accepted.
        let two = [(mug.as_str(), -2, dec!(12), dec!(1.2), tax.as_str())];
        let (status, body) = complete(&sb, g, &r2, &sale, &two).await;
        assert_eq!(status, 200, "{g:?}: {body}");
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));
        assert_eq!(statuses(&sb, &sale), ["CLOSED", "CLOSED"]);
        assert_eq!(sb.counters().ls_return_completions, 5);
    }
}

/// A completion of one mug whose payment is a cent short.
fn complete_body_short(
    sb: &Sandbox,
    g: Gen,
    return_id: &str,
    original: &str,
    mug: &str,
    tax: &str,
) -> Value {
    let ids = sb.ids();
    match g {
        Gen::Legacy => json!({
            "id": return_id, "return_for": original, "register_id": ids.register_id,
            "user_id": ids.user_id, "status": "CLOSED",
            "register_sale_products": [{"product_id": mug, "quantity": -1, "price": 12,
                                        "tax": num("1.2"), "tax_id": tax}],
            "register_sale_payments": [{"retailer_payment_type_id": ids.payment_type_id,
                                        "amount": num("-13.19")}],
        }),
        Gen::Dated => json!({
            "source": {"author_id": ids.user_id, "register_id": ids.register_id},
            "state": "closed",
            "line_items": [{"product": {"id": mug}, "quantity": -1, "pricing": {"price": 12},
                            "tax": {"id": tax, "amount": num("1.2")}}],
            "payments": [{"type": {"config_id": ids.payment_type_id},
                          "amount": num("-13.19")}],
        }),
    }
}

#[tokio::test]
async fn the_dated_api_voids_other_parked_returns() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let sale = sell(&sb, Gen::Legacy, &mug, 2, &ids.tax_10_id).await;

    // Legacy starts leave the other parked returns alone.
    let a = start_ok(&sb, Gen::Legacy, &sale).await;
    let b = start_ok(&sb, Gen::Legacy, &sale).await;
    assert_eq!(statuses(&sb, &sale), ["SAVED", "SAVED"]);

    // A 2026-07 completion voids the others...
    let line = [(
        mug.as_str(),
        -1,
        dec!(12),
        dec!(1.2),
        ids.tax_10_id.as_str(),
    )];
    let (status, body) = complete(&sb, Gen::Dated, &a, &sale, &line).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&sb, &sale), ["CLOSED", "VOIDED"]);
    let (status, _) = complete(&sb, Gen::Dated, &b, &sale, &line).await;
    assert_eq!(status, 409, "a voided return cannot be completed");

    // ...and so does a 2026-07 start; a closed return stays closed.
    let c = start_ok(&sb, Gen::Legacy, &sale).await;
    let d = start_ok(&sb, Gen::Dated, &sale).await;
    let all = sb.returns_for(&sale);
    let status_of = |id: &str| all.iter().find(|r| r.id == id).unwrap().status.clone();
    assert_eq!(status_of(&a), "CLOSED");
    assert_eq!(status_of(&c), "VOIDED");
    assert_eq!(status_of(&d), "SAVED");
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(29));
}

#[tokio::test]
async fn an_unreferenced_return_of_an_untracked_product_moves_no_stock() {
    for g in BOTH {
        let sb = sandbox().await;
        let ids = sb.ids();
        let fee = sb.add_ls_product_only(ProductSpec {
            sku: "REFUND-FEE".into(),
            name: "Refund".into(),
            price_excl_tax: dec!(5),
            has_inventory: false,
            ..ProductSpec::default()
        });
        let fee = fee.ls_product_id.unwrap();
        let (_, feed) = ls_get(&sb, "/api/2.0/inventory?page_size=5000").await;
        let max = feed["version"]["max"].as_u64().unwrap();
        let (status, body) = match g {
            Gen::Legacy => {
                let mut b = closed_sale(&sb, &fee, 1, "5", "0", &ids.no_tax_group_id);
                b["register_sale_products"][0]["quantity"] = json!(-1);
                b["register_sale_payments"][0]["amount"] = json!(-5);
                ls_post(&sb, "/api/register_sales", &b).await
            }
            Gen::Dated => {
                let mut b = dated_sale(&sb, &fee, 1, "5", "0", &ids.no_tax_group_id);
                b["line_items"][0]["quantity"] = json!(-1);
                b["payments"][0]["amount"] = json!(-5);
                ls_post(&sb, "/api/2026-07/sales", &b).await
            }
        };
        assert_eq!(status, 200, "{g:?}: {body}");
        let sale = if g == Gen::Legacy {
            &body["register_sale"]
        } else {
            &body["data"]
        };
        let id = sale["id"].as_str().unwrap();
        let (_, v2) = ls_get(&sb, &format!("/api/2.0/sales/{id}")).await;
        assert_eq!(v2["data"]["status"], "CLOSED");
        assert_eq!(v2["data"]["return_for"], Value::Null);
        assert_eq!(v2["data"]["total_price"], json!(-5));
        let (_, v7) = ls_get(&sb, &format!("/api/2026-07/sales/{id}")).await;
        assert_eq!(v7["data"]["return"]["is_return"], json!(true));
        assert!(v7["data"]["return"].get("original_sale_id").is_none());
        assert_eq!(sb.inventory_level(&fee, &ids.outlet_id), dec!(0));
        let (_, moved) = ls_get(&sb, &format!("/api/2.0/inventory?after={max}")).await;
        assert_eq!(moved["data"], json!([]), "{g:?}: no inventory record moved");
    }
}

#[tokio::test]
async fn a_dropped_completion_closes_the_return_once() {
    for g in BOTH {
        let sb = sandbox().await;
        let ids = sb.ids();
        let mug = ids.mug.ls_id().to_string();
        let sale = sell(&sb, g, &mug, 2, &ids.tax_10_id).await;

        // The start committed, then the connection dropped.
        sb.inject(Fault::once(
            Route::LsStartReturn,
            FaultKind::DropAfterCommit,
        ));
        let path = match g {
            Gen::Legacy => format!("/api/2.0/sales/{sale}/actions/return"),
            Gen::Dated => format!("/api/2026-07/sales/{sale}/actions/return"),
        };
        let method = if g == Gen::Legacy {
            Method::PUT
        } else {
            Method::POST
        };
        let url = format!("{}{path}", sb.lightspeed_url());
        let sent = client()
            .request(method, url)
            .bearer_auth(&sb.config().ls_token)
            .send()
            .await;
        assert!(sent.is_err(), "{g:?}: the connection dropped");
        let rid = sb.returns_for(&sale)[0].id.clone();
        assert_eq!(statuses(&sb, &sale), ["SAVED"]);

        sb.inject(Fault::once(Route::LsPostSale, FaultKind::DropAfterCommit));
        let line = [(
            mug.as_str(),
            -2,
            dec!(12),
            dec!(1.2),
            ids.tax_10_id.as_str(),
        )];
        let (status, _) = complete(&sb, g, &rid, &sale, &line).await;
        assert_eq!(status, 0, "{g:?}: no answer");
        assert_eq!(statuses(&sb, &sale), ["CLOSED"]);
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));
        // The retry is refused and changes nothing.
        let (status, _) = complete(&sb, g, &rid, &sale, &line).await;
        assert_eq!(status, 409);
        assert_eq!(statuses(&sb, &sale), ["CLOSED"]);
        assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));
        assert!(sb.faults().is_empty());
    }
}

#[tokio::test]
async fn return_answers_match_the_published_schemas() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let line = [(
        mug.as_str(),
        -1,
        dec!(12),
        dec!(1.2),
        ids.tax_10_id.as_str(),
    )];

    // Legacy: initReturnSale and GET /sales/{id} of the 2.0 file.
    let sale = sell(&sb, Gen::Legacy, &mug, 1, &ids.tax_10_id).await;
    let (_, started) = start(&sb, Gen::Legacy, &sale).await;
    SPEC_2_0.assert_valid("/sales/{sale_id}/actions/return", "put", "200", &started);
    let rid = started["data"]["id"].as_str().unwrap().to_string();
    let (status, _) = complete(&sb, Gen::Legacy, &rid, &sale, &line).await;
    assert_eq!(status, 200);
    let (_, read) = ls_get(&sb, &format!("/api/2.0/sales/{rid}")).await;
    SPEC_2_0.assert_valid("/sales/{sale_id}", "get", "200", &read);
    // The same keys as the operation's published example (the sale has no customer).
    let example = &SPEC_2_0.doc["paths"]["/sales/{sale_id}/actions/return"]["put"]["responses"]["200"]
        ["content"]["application/json"]["example"]["data"];
    for key in example
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "customer_id")
    {
        assert!(
            started["data"].get(key).is_some(),
            "legacy answer lacks {key}"
        );
    }

    // 2026-07: initReturnSale, UpdateSale, GetSaleByID.
    let sale = sell(&sb, Gen::Dated, &mug, 1, &ids.tax_10_id).await;
    let (_, started) = start(&sb, Gen::Dated, &sale).await;
    RETURNS.assert_valid("/sales/{sale_id}/actions/return", "post", "200", &started);
    let rid = started["data"]["id"].as_str().unwrap().to_string();
    let (status, updated) = complete(&sb, Gen::Dated, &rid, &sale, &line).await;
    assert_eq!(status, 200, "{updated}");
    SALES.assert_valid("/sales/{sale_id}", "put", "200", &updated);
    for id in [&rid, &sale] {
        let (_, read) = ls_get(&sb, &format!("/api/2026-07/sales/{id}")).await;
        SALES.assert_valid("/sales/{sale_id}", "get", "200", &read);
    }

    // A body outside SaleUpdateRequest is refused naming the field, nothing changed.
    let rid2 = start_ok(&sb, Gen::Dated, &sale).await;
    let path = format!("/api/2026-07/sales/{rid2}");
    let (status, body) = send(&sb, Method::PUT, &path, Some(&json!({"state": "closed"}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["details"].as_str().unwrap().contains("source"),
        "{body}"
    );
    assert_eq!(
        send(&sb, Method::PUT, "/api/2026-07/sales/nope", None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn the_dated_start_can_answer_the_published_example_shape() {
    let sb = sandbox_with(SandboxConfig {
        ls_dated_return_example_shape: true,
        ..SandboxConfig::default()
    })
    .await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let sale = sell(&sb, Gen::Dated, &mug, 1, &ids.tax_10_id).await;
    let (status, body) = start(&sb, Gen::Dated, &sale).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "SAVED");
    assert_eq!(body["data"]["state"], "parked");
    assert_eq!(body["data"]["return_for"], json!(sale));
    assert_eq!(body["data"]["line_items"][0]["product_id"], json!(mug));
    assert_eq!(body["data"]["line_items"][0]["tax"], num("1.2"));
}
