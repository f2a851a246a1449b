//! `POST /api/2.0/products` (CreateProduct): a created product is read back everywhere a
//! product is read, a refused one creates nothing, and the collection's other methods
//! still answer 405.

mod common;

use common::*;
use els_sandbox::{Fault, FaultKind, Route, Sandbox};
use reqwest::Method;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

/// The highest product version so far (the products feed's cursor).
async fn feed_cursor(sb: &Sandbox) -> u64 {
    let (status, body) = ls_get(sb, "/api/2.0/products?deleted=true&page_size=10000").await;
    assert_eq!(status, 200, "{body}");
    body["version"]["max"].as_u64().expect("a version")
}

/// POST a product; its id.
async fn create(sb: &Sandbox, body: &Value) -> String {
    let (status, resp) = ls_post(sb, "/api/2.0/products", body).await;
    assert_eq!(status, 200, "{resp}");
    let data = resp["data"].as_array().expect("data array");
    assert_eq!(data.len(), 1, "{resp}");
    let id = data[0].as_str().expect("the id, as a string").to_string();
    assert_eq!(resp, json!({"data": [id]}));
    id
}

#[tokio::test]
async fn a_product_without_inventory_is_read_back_by_id_search_and_feed() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let cursor = feed_cursor(&sb).await;
    let before = sb.counters();

    let id = create(
        &sb,
        &json!({
            "name": "Handling fee",
            "sku": "Handling-Fee",
            "price_excluding_tax": 2.5,
            "has_inventory": false,
            "is_active": true,
            "description": "Ecwid's handling fee",
            "source_id": "ecwid-handling",
        }),
    )
    .await;
    let after = sb.counters();
    assert_eq!(after.ls_product_creates, before.ls_product_creates + 1);

    // By id.
    let (status, body) = ls_get(&sb, &format!("/api/2.0/products/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let p = &body["data"];
    assert_eq!(p["id"], json!(id));
    assert_eq!(p["name"], "Handling fee");
    assert_eq!(p["variant_name"], "Handling fee");
    assert_eq!(p["handle"], "handling-fee");
    assert_eq!(p["sku"], "Handling-Fee");
    assert_eq!(p["description"], "Ecwid's handling fee");
    assert_eq!(p["source"], "USER");
    assert_eq!(p["source_id"], "ecwid-handling");
    assert_eq!(p["has_inventory"], json!(false));
    assert_eq!(
        (&p["active"], &p["is_active"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(p["has_variants"], json!(false));
    assert!(p["variant_parent_id"].is_null());
    assert!(p["deleted_at"].is_null());
    assert_eq!(p["price_excluding_tax"], num("2.5"));
    // No outlet_taxes: the outlets' default tax (GST 10%).
    assert_eq!(p["price_including_tax"], num("2.75"));
    assert_eq!(p["supply_price"], json!(0));
    let version = p["version"].as_u64().unwrap();
    assert!(version > cursor);

    // Tracks nothing: no inventory records.
    let (status, inv) = ls_get(&sb, &format!("/api/2.0/products/{id}/inventory")).await;
    assert_eq!(status, 200, "{inv}");
    assert_eq!(inv["data"], json!([]));
    assert_eq!(sb.inventory_version(&id, &ids.outlet_id), None);

    // Search by SKU (lower-cased, as the index wants it) and the exact SKU filter.
    let (_, found) = ls_get(&sb, "/api/2.0/search?type=products&sku=handling-fee").await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["data"][0]["id"], json!(id));
    let (_, found) = ls_get(&sb, "/api/2.0/products?sku=Handling-Fee").await;
    assert_eq!(found["data"][0]["id"], json!(id));

    // The feed past the old cursor holds it, and only it.
    let (_, feed) = ls_get(&sb, &format!("/api/2.0/products?after={cursor}")).await;
    assert_eq!(feed["data"].as_array().unwrap().len(), 1, "{feed}");
    assert_eq!(feed["data"][0]["id"], json!(id));
    assert_eq!(feed["version"], json!({"min": version, "max": version}));
    assert_eq!(sb.ls_product(&id).unwrap(), *p);
}

#[tokio::test]
async fn a_tracked_product_gets_its_tax_price_and_stock() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let id = create(
        &sb,
        &json!({
            "name": "Gift wrap",
            "sku": "WRAP-1",
            "handle": "giftwrap",
            "price_including_tax": 6,
            "supply_price": 1.25,
            "outlet_taxes": [
                {"outlet_id": ids.outlet_id, "tax_id": ids.tax_20_id},
                {"outlet_id": ids.second_outlet_id, "tax_id": ids.tax_20_id},
            ],
            "inventory": [{"outlet_id": ids.outlet_id, "current_amount": 12}],
        }),
    )
    .await;
    let p = sb.ls_product(&id).unwrap();
    assert_eq!(p["has_inventory"], json!(true), "tracked by default");
    assert_eq!(p["handle"], "giftwrap");
    assert_eq!(p["price_excluding_tax"], json!(5));
    assert_eq!(p["price_including_tax"], json!(6));
    assert_eq!(p["supply_price"], num("1.25"));
    assert_eq!(sb.inventory_level(&id, &ids.outlet_id), dec!(12));
    assert_eq!(sb.inventory_level(&id, &ids.second_outlet_id), dec!(0));
    let (_, inv) = ls_get(&sb, &format!("/api/2.0/products/{id}/inventory")).await;
    assert_eq!(
        inv["data"].as_array().unwrap().len(),
        2,
        "a record per outlet"
    );

    // A SKU another live product has is accepted ("Should be unique").
    let again = create(&sb, &json!({"name": "Mug again", "sku": "MUG-001"})).await;
    let (_, found) = ls_get(&sb, "/api/2.0/products?sku=MUG-001").await;
    let found: Vec<&Value> = found["data"].as_array().unwrap().iter().collect();
    assert_eq!(found.len(), 2);
    assert!(found.iter().any(|p| p["id"] == json!(again)));
    let p = sb.ls_product(&again).unwrap();
    assert_eq!(p["price_excluding_tax"], json!(0), "no price: 0");
    assert_eq!(p["is_active"], json!(true));
}

#[tokio::test]
async fn refused_bodies_create_nothing() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let products = sb.ls_products().len();
    let cursor = feed_cursor(&sb).await;
    let inventory_before = sb.state_json()["ls_inventory"].as_array().unwrap().len();
    let outlet = ids.outlet_id.clone();
    let cases: Vec<(Value, &str)> = vec![
        (json!([{"name": "x"}]), "request body"),
        (json!("x"), "request body"),
        (json!(null), "request body"),
        (json!({}), "name is required"),
        (json!({"name": ""}), "name is required"),
        (json!({"name": "   "}), "name is required"),
        (json!({"name": null, "sku": "A"}), "name is required"),
        (json!({"name": 5}), "name must be a string"),
        (
            json!({"name": "x", "price_including_tax": 1, "price_excluding_tax": 1}),
            "price_including_tax and price_excluding_tax",
        ),
        (json!({"name": "x", "sku": 12}), "sku must be a string"),
        (
            json!({"name": "x", "price_excluding_tax": "4.50"}),
            "price_excluding_tax must be a number",
        ),
        (
            json!({"name": "x", "supply_price": true}),
            "supply_price must be a number",
        ),
        (
            json!({"name": "x", "is_active": "yes"}),
            "is_active must be a boolean",
        ),
        (
            json!({"name": "x", "has_inventory": 0}),
            "has_inventory must be a boolean",
        ),
        (
            json!({"name": "x", "inventory": {}}),
            "inventory must be an array",
        ),
        (
            json!({"name": "x", "outlet_taxes": "GST"}),
            "outlet_taxes must be an array",
        ),
        (
            json!({"name": "x", "attributes": []}),
            "attributes must be an object",
        ),
        (
            json!({"name": "x", "active": false}),
            "active is not a field",
        ),
        (
            json!({"name": "x", "variants": [{"sku": "x-1"}]}),
            "variants is not modelled",
        ),
        (json!({"name": "x", "source": "ECWID"}), "source \"ECWID\""),
        (
            json!({"name": "x", "all_outlets_tax": {"tax_id": ids.tax_10_id}}),
            "all_outlets_tax",
        ),
        (
            json!({"name": "x", "has_inventory": false, "inventory": [{"outlet_id": outlet, "current_amount": 1}]}),
            "inventory cannot be given",
        ),
        (
            json!({"name": "x", "inventory": [{"outlet_id": outlet}]}),
            "inventory[0].current_amount is required",
        ),
        (
            json!({"name": "x", "inventory": [{"outlet_id": "nope", "current_amount": 1}]}),
            "inventory[0].outlet_id nope is not a valid outlet",
        ),
        (
            json!({"name": "x", "inventory": [{"outlet_id": outlet, "current_amount": "1"}]}),
            "inventory[0].current_amount must be a number",
        ),
        (
            json!({"name": "x", "inventory": [
                {"outlet_id": outlet, "current_amount": 1},
                {"outlet_id": outlet, "current_amount": 2},
            ]}),
            "inventory[1].outlet_id",
        ),
        (
            json!({"name": "x", "inventory": [{"outlet_id": outlet, "current_amount": 1, "reorder_point": 3}]}),
            "inventory[0].reorder_point is not modelled",
        ),
        (
            json!({"name": "x", "outlet_taxes": [{"outlet_id": outlet, "tax_id": "nope"}]}),
            "outlet_taxes[0].tax_id nope is not a valid tax",
        ),
        (
            json!({"name": "x", "outlet_taxes": [{"outlet_id": outlet}]}),
            "outlet_taxes[0].tax_id is required",
        ),
        (
            json!({"name": "x", "outlet_taxes": [
                {"outlet_id": outlet, "tax_id": ids.tax_10_id},
                {"outlet_id": ids.second_outlet_id, "tax_id": ids.tax_20_id},
            ]}),
            "outlet_taxes name different taxes",
        ),
    ];
    for (body, expected) in &cases {
        let (status, resp) = ls_post(&sb, "/api/2.0/products", body).await;
        assert_eq!(status, 400, "{body} -> {resp}");
        assert_eq!(resp["error"], "Bad Request", "{resp}");
        let details = resp["details"].as_str().unwrap_or_default();
        assert!(
            details.contains(expected),
            "{body}: {details:?} should name {expected:?}"
        );
    }
    // No body at all.
    let resp = ls(&sb, Method::POST, "/api/2.0/products", None).await;
    assert_eq!(resp.status().as_u16(), 400);

    assert_eq!(sb.ls_products().len(), products, "nothing was created");
    assert_eq!(feed_cursor(&sb).await, cursor, "no product version moved");
    assert_eq!(
        sb.state_json()["ls_inventory"].as_array().unwrap().len(),
        inventory_before
    );
    // Every attempt counts, refused or not.
    assert_eq!(sb.counters().ls_product_creates, cases.len() as u64 + 1);
}

#[tokio::test]
async fn only_post_is_added_to_the_collection() {
    let sb = sandbox().await;
    let mug = sb.ids().mug.ls_id().to_string();
    for (method, path) in [
        (Method::PUT, "/api/2.0/products".to_string()),
        (Method::PATCH, "/api/2.0/products".to_string()),
        (Method::DELETE, "/api/2.0/products".to_string()),
        (Method::HEAD, "/api/2.0/products".to_string()),
        (Method::POST, format!("/api/2.0/products/{mug}")),
        (Method::POST, format!("/api/2.0/products/{mug}/inventory")),
    ] {
        let body = json!({"name": "x"});
        let resp = ls(&sb, method.clone(), &path, Some(&body)).await;
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        if method != Method::HEAD {
            let answer: Value = resp.json().await.unwrap();
            assert_eq!(
                answer,
                json!({"error": "Method Not Allowed", "details": "Method not allowed"})
            );
        }
    }
    assert_eq!(sb.counters().ls_product_creates, 0);
}

#[tokio::test]
async fn an_answer_lost_after_the_commit_still_created_the_product() {
    let sb = sandbox().await;
    sb.inject(Fault::once(Route::LsAny, FaultKind::DropAfterCommit));
    let sent = client()
        .post(format!("{}/api/2.0/products", sb.lightspeed_url()))
        .bearer_auth(&sb.config().ls_token)
        .json(&json!({"name": "Shipping fee", "sku": "SHIP-FEE", "has_inventory": false}))
        .send()
        .await;
    assert!(sent.is_err(), "the connection closed without an answer");
    // Not idempotent: a client that cannot tell looks the SKU up before creating again.
    let (_, found) = ls_get(&sb, "/api/2.0/search?type=products&sku=ship-fee").await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(sb.counters().ls_product_creates, 1);
}
