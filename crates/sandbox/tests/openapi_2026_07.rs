//! Every `/api/2026-07/*` answer the connector reads validates against Lightspeed's published
//! 2026-07 schemas, with formats on: the reduced fragments of its X-Series OpenAPI file in
//! `tests/fixtures/lightspeed/2026-07/` (what changed and why is that folder's `MAPPING.md`).
//! Each answer is checked against the file of its area, as `tests/openapi.rs` checks the 2.0
//! answers, with the same helpers (`common::openapi`).

mod common;

use std::sync::LazyLock;

use common::openapi::Spec;
use common::*;
use els_sandbox::{ProductSpec, Sandbox, VariantSpec};
use rust_decimal_macros::dec;
use serde_json::{Value, json};

macro_rules! fixture {
    ($name:ident, $file:literal) => {
        static $name: LazyLock<Spec> = LazyLock::new(|| {
            Spec::parse(
                concat!("2026-07/", $file),
                include_str!(concat!("fixtures/lightspeed/2026-07/", $file)),
            )
        });
    };
}

fixture!(SALES, "sales.json");
fixture!(SEARCH, "search.json");
fixture!(PRODUCTS, "products.json");
fixture!(INVENTORY, "inventory.json");
fixture!(CUSTOMERS, "customers.json");
fixture!(SETUP, "setup.json");

async fn get_ok(sb: &Sandbox, path: &str) -> Value {
    let (status, body) = ls_get(sb, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn post_ok(sb: &Sandbox, path: &str, body: &Value, expected: u16) -> Value {
    let (status, answer) = ls_post(sb, path, body).await;
    assert_eq!(status, expected, "POST {path}: {answer}");
    answer
}

fn items(body: &Value) -> &Vec<Value> {
    let data = body["data"].as_array().expect("data array");
    assert!(!data.is_empty(), "expected data: {body}");
    data
}

#[tokio::test]
async fn every_2026_07_answer_matches_its_published_schema() {
    let sb = sandbox().await;
    let ids = sb.ids();

    // Every kind of object: a variant family, a deleted product, a customer made here with a
    // null name, a sale on each generation.
    let cap = sb.add_product(ProductSpec {
        sku: "CAP-001".into(),
        name: "Cap".into(),
        price_excl_tax: dec!(8.5),
        tax_percent: Some(dec!(10)),
        ls_stock: dec!(5),
        variants: vec![
            VariantSpec {
                sku: "CAP-RED".into(),
                option_name: "Color".into(),
                option_value: "Red".into(),
                ls_stock: dec!(2),
                ..VariantSpec::default()
            },
            VariantSpec {
                sku: "CAP-BLUE".into(),
                option_name: "Color".into(),
                option_value: "Blue".into(),
                ls_stock: dec!(3),
                ..VariantSpec::default()
            },
        ],
        ..ProductSpec::default()
    });
    let gone = sb.add_ls_product_only(ProductSpec {
        sku: "OLD-1".into(),
        name: "Old".into(),
        price_excl_tax: dec!(1),
        ls_stock: dec!(4),
        ..ProductSpec::default()
    });
    sb.delete_ls_product(gone.ls_id()).unwrap();

    // CreateCustomer: 201 CustomerResponse; `last_name` is required but nullable.
    let created = post_ok(
        &sb,
        "/api/2026-07/customers",
        &json!({"first_name": "Ann", "last_name": null, "email": "Ann.Lee@Example.com", "tax_id": "T-1"}),
        201,
    )
    .await;
    CUSTOMERS.assert_valid("/customers", "post", "201", &created);
    assert_eq!(created["data"]["tax_id"], "T-1");
    assert_eq!(created["data"]["enable_promotional_sms"], json!(false));
    let customer_id = created["data"]["id"].as_str().unwrap().to_string();

    // CreateSale: 200 SaleCreateResponse, the full Sale.
    let mut body = dated_sale(&sb, ids.mug.ls_id(), 2, "12", "1.2", &ids.tax_10_id);
    body["customer_id"] = json!(customer_id);
    let created = post_ok(&sb, "/api/2026-07/sales", &body, 200).await;
    SALES.assert_valid("/sales", "post", "200", &created);
    let sale = &created["data"];
    assert_eq!(sale["state"], "closed");
    assert_eq!(sale["attributes"], json!([]));
    assert_eq!(sale["customer_id"], json!(customer_id));
    assert_eq!(sale["source"]["id"], "DATED1");
    assert_eq!(sale["source"]["type"], "ecwid");
    assert_eq!(sale["source"]["register_id"], json!(ids.register_id));
    assert_eq!(sale["source"]["outlet_id"], json!(ids.outlet_id));
    assert_eq!(sale["source"]["author"]["id"], json!(ids.user_id));
    assert_eq!(sale["totals"]["price"], json!(24));
    assert_eq!(sale["totals"]["tax"], num("2.4"));
    assert_eq!(sale["totals"]["price_incl_tax"], num("26.4"));
    assert_eq!(
        sale["line_items"][0]["product"]["id"],
        json!(ids.mug.ls_id())
    );
    assert_eq!(sale["line_items"][0]["pricing"]["total"], json!(24));
    assert_eq!(sale["line_items"][0]["tax"]["total"], num("2.4"));
    assert_eq!(
        sale["line_items"][0]["_metadata"]["is_price_override"],
        json!(true)
    );
    assert_eq!(
        sale["payments"][0]["type"]["config_id"],
        json!(ids.payment_type_id)
    );
    assert!(sale["_metadata"]["version"].is_u64());
    let sale_id = sale["id"].as_str().unwrap().to_string();
    let legacy = closed_sale(&sb, ids.tote.ls_id(), 1, "15", "3", &ids.tax_gst_pst_id);
    let (status, legacy) = ls_post(&sb, "/api/register_sales", &{
        let mut b = legacy;
        b["register_sale_products"][0]["tax"] = num("1.8");
        b["register_sale_payments"][0]["amount"] = num("16.8");
        b
    })
    .await;
    assert_eq!(status, 200, "{legacy}");
    let legacy_id = legacy["register_sale"]["id"].as_str().unwrap().to_string();

    // GetSaleByID, for a sale of each generation (a tax group splits over two rates).
    for id in [&sale_id, &legacy_id] {
        let body = get_ok(&sb, &format!("/api/2026-07/sales/{id}")).await;
        assert_eq!(body["data"]["id"], json!(id));
        SALES.assert_valid("/sales/{sale_id}", "get", "200", &body);
    }

    // Search: the envelope, and each hit against its entity schema.
    for (query, component, count) in [
        ("type=sales&invoice_number=ECWID-DATED-1", "Sale", 1),
        ("type=sales&invoice_number=ECWID-TEST-1", "Sale", 1),
        ("type=sales&state=closed", "Sale", 2),
        ("type=products&sku=cap-red", "Product", 1),
        ("type=products", "Product", 0),
        ("type=customers&email=ann.lee@example.com", "Customer", 1),
        ("type=customers", "Customer", 0),
    ] {
        let body = get_ok(&sb, &format!("/api/2026-07/search?{query}")).await;
        let hits = items(&body);
        if count > 0 {
            assert_eq!(hits.len(), count, "{query}: {body}");
        }
        SEARCH.assert_valid("/search", "get", "200", &body);
        SEARCH.assert_each_valid(component, hits);
    }

    // ListProducts: pages, deleted ones, by SKU, and an empty page (still with `version`).
    for query in [
        "",
        "?deleted=true&page_size=100",
        "?sku=CAP-BLUE",
        "?after=2",
        "?page_size=3",
    ] {
        let body = get_ok(&sb, &format!("/api/2026-07/products{query}")).await;
        items(&body);
        assert!(body["version"]["max"].as_u64() >= body["version"]["min"].as_u64());
        PRODUCTS.assert_valid("/products", "get", "200", &body);
    }
    for query in ["?after=999999999", "?sku=NOPE"] {
        let body = get_ok(&sb, &format!("/api/2026-07/products{query}")).await;
        assert_eq!(
            body,
            json!({"data": [], "version": {"min": null, "max": null}}),
            "{query}"
        );
        PRODUCTS.assert_valid("/products", "get", "200", &body);
    }
    let body = get_ok(&sb, "/api/2026-07/products?deleted=true&page_size=100").await;
    assert!(items(&body).iter().any(|p| p["id"] == json!(gone.ls_id())));

    // GetProductByID.
    for id in [
        cap.ls_id(),
        cap.variant("CAP-BLUE").ls_id(),
        ids.sticker.ls_id(),
        &ids.discount_product_id,
        gone.ls_id(),
    ] {
        let body = get_ok(&sb, &format!("/api/2026-07/products/{id}")).await;
        assert_eq!(body["data"]["id"], json!(id));
        PRODUCTS.assert_valid("/products/{product_id}", "get", "200", &body);
    }

    // CreateProduct: the schema's items are strings now, as the kept example shows.
    let created = post_ok(
        &sb,
        "/api/2026-07/products",
        &json!({"name": "Shipping (Ecwid)", "sku": "ECWID-SHIP", "has_inventory": false}),
        200,
    )
    .await;
    PRODUCTS.assert_valid("/products", "post", "200", &created);
    let example = &PRODUCTS.doc["paths"]["/products"]["post"]["responses"]["200"]["content"]["Example"]
        ["example"];
    assert_eq!(
        created.as_object().unwrap().keys().collect::<Vec<_>>(),
        example.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    let new_id = created["data"][0].as_str().unwrap();
    let body = get_ok(&sb, &format!("/api/2026-07/products/{new_id}")).await;
    PRODUCTS.assert_valid("/products/{product_id}", "get", "200", &body);

    // ListInventoryRecords and ListProductInventoryRecords: bare arrays (deleted products'
    // records carry their `deleted_at`, a date-time).
    for request in [
        json!({}),
        json!({"sort_direction": "asc", "after": 0, "size": 5000}),
        json!({"include_deleted": true, "sort_direction": "asc"}),
        json!({"product_id": cap.ls_id(), "variants": true}),
    ] {
        let (status, body) = ls_post(&sb, "/api/2026-07/inventory", &request).await;
        assert_eq!(status, 200, "{request}: {body}");
        assert!(!body.as_array().unwrap().is_empty(), "{request}: {body}");
        INVENTORY.assert_valid("/inventory", "post", "200", &body);
    }
    let (_, with_deleted) = ls_post(
        &sb,
        "/api/2026-07/inventory",
        &json!({"include_deleted": true, "product_id": gone.ls_id()}),
    )
    .await;
    assert!(with_deleted[0]["deleted_at"].is_string(), "{with_deleted}");
    for id in [ids.mug.ls_id(), gone.ls_id()] {
        let body = get_ok(
            &sb,
            &format!("/api/2026-07/inventory/{id}?include_deleted=true"),
        )
        .await;
        assert_eq!(body.as_array().unwrap().len(), 2, "{body}");
        INVENTORY.assert_valid("/inventory/{product_id}", "get", "200", &body);
    }

    // Setup objects.
    let body = get_ok(&sb, "/api/2026-07/taxes").await;
    assert!(items(&body).len() >= 4);
    assert_eq!(body.as_object().unwrap().len(), 1, "data only: {body}");
    SETUP.assert_valid("/taxes", "get", "200", &body);
    let body = get_ok(&sb, "/api/2026-07/retailer").await;
    assert_eq!(body["data"]["no_tax_group_id"], json!(ids.no_tax_group_id));
    assert_eq!(body["data"]["tax_exclusive"], json!(true));
    SETUP.assert_valid("/retailer", "get", "200", &body);
    for (path, op) in [
        ("/api/2026-07/registers", "/registers"),
        ("/api/2026-07/outlets", "/outlets"),
        ("/api/2026-07/users", "/users"),
        ("/api/2026-07/payment_types", "/payment_types"),
    ] {
        let body = get_ok(&sb, path).await;
        items(&body);
        SETUP.assert_valid(op, "get", "200", &body);
        let empty = get_ok(&sb, &format!("{path}?after=999999999")).await;
        assert_eq!(empty["version"], json!({"min": null, "max": null}));
        SETUP.assert_valid(op, "get", "200", &empty);
    }
    for (path, op) in [
        (
            format!("/api/2026-07/registers/{}", ids.register_id),
            "/registers/{register_id}",
        ),
        (
            format!("/api/2026-07/outlets/{}", ids.second_outlet_id),
            "/outlets/{outlet_id}",
        ),
        (
            format!("/api/2026-07/users/{}", ids.user_id),
            "/users/{user_id}",
        ),
    ] {
        let body = get_ok(&sb, &path).await;
        SETUP.assert_valid(op, "get", "200", &body);
    }

    // Customers.
    let body = get_ok(&sb, "/api/2026-07/customers").await;
    assert_eq!(items(&body).len(), 2);
    CUSTOMERS.assert_valid("/customers", "get", "200", &body);
    let body = get_ok(&sb, &format!("/api/2026-07/customers/{customer_id}")).await;
    CUSTOMERS.assert_valid("/customers/{customer_id}", "get", "200", &body);
}

/// The checks above can fail: the legacy shapes do not pass the 2026-07 schemas.
#[test]
fn the_2026_07_schemas_refuse_the_legacy_shapes() {
    let products = PRODUCTS.validator(&PRODUCTS.response_schema("/products", "get", "200"));
    assert!(
        !products.is_valid(&json!({"data": []})),
        "an empty page needs its version"
    );
    assert!(products.is_valid(&json!({"data": [], "version": {"min": null, "max": null}})));
    let legacy_product = json!({
        "id": "x", "handle": "x", "name": "x", "sku": "x", "active": true, "is_composite": false,
        "has_inventory": true, "has_variants": false, "version": 1, "variant_options": [],
        "categories": [], "tag_ids": [], "images": [], "attributes": [], "product_codes": [],
        "product_suppliers": [], "price_including_tax": 1, "price_excluding_tax": 1,
    });
    assert!(
        !PRODUCTS.component("Product").is_valid(&legacy_product),
        "skuImages, packaging and customizations are required"
    );
    let payment_type = json!({"id": "x", "name": "Cash", "type_id": 1, "version": 1});
    assert!(!SETUP.component("PaymentType").is_valid(&payment_type));
    let sale = SALES.component("Sale");
    assert!(
        !sale.is_valid(&json!({"id": "not-a-uuid"})),
        "formats are on"
    );
    assert!(!sale.is_valid(&json!({"state": "CLOSED"})));
    assert!(!sale.is_valid(&json!({"customer_id": null})));
    assert!(
        !INVENTORY
            .validator(&INVENTORY.response_schema("/inventory", "post", "200"))
            .is_valid(&json!({"data": []})),
        "a bare array"
    );
}
