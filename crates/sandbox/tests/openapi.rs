//! Every Lightspeed 2.0 response shape the sandbox serves validates against Lightspeed's own
//! OpenAPI file: its official OpenAPI 2.0 file reduced to the operations and components
//! checked here, with their `$ref` closure (`tests/fixtures/lightspeed/`; how it was made is
//! in `tests/fixtures/README.md`).

mod common;

use std::sync::OnceLock;

use common::openapi::Spec;
use common::*;
use els_sandbox::{ProductSpec, Sandbox, VariantSpec};
use rust_decimal_macros::dec;
use serde_json::{Value, json};

const SPEC: &str = include_str!("fixtures/lightspeed/openapi-2.0.reduced.json");

fn spec() -> &'static Spec {
    static PARSED: OnceLock<Spec> = OnceLock::new();
    PARSED.get_or_init(|| Spec::parse("openapi-2.0.reduced.json", SPEC))
}

fn validator_for_schema(schema: &Value) -> jsonschema::Validator {
    spec().validator(schema)
}

/// The operation's response schema, found in the file.
fn response_schema(path: &str, method: &str, code: &str) -> Value {
    spec().response_schema(path, method, code)
}

#[track_caller]
fn assert_valid(path: &str, method: &str, code: &str, body: &Value) {
    spec().assert_valid(path, method, code, body);
}

#[track_caller]
fn assert_each_valid(component: &str, items: &[Value]) {
    spec().assert_each_valid(component, items);
}

async fn get_ok(sb: &Sandbox, path: &str) -> Value {
    let (status, body) = ls_get(sb, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn non_empty(body: &Value) -> &Vec<Value> {
    let data = body["data"].as_array().expect("data array");
    assert!(!data.is_empty(), "expected data: {body}");
    data
}

#[tokio::test]
async fn lightspeed_2_0_responses_match_the_openapi_file() {
    let sb = sandbox().await;
    let ids = sb.ids();

    // Make every kind of object exist: a variant family, a deleted product, a sale with a
    // customer, a created customer.
    let extra = sb.add_product(ProductSpec {
        sku: "CAP-001".into(),
        name: "Cap".into(),
        price_excl_tax: dec!(8.5),
        tax_percent: Some(dec!(10)),
        ecwid_stock: Some(dec!(5)),
        ls_stock: dec!(5),
        variants: vec![
            VariantSpec {
                sku: "CAP-RED".into(),
                option_name: "Color".into(),
                option_value: "Red".into(),
                ls_stock: dec!(2),
                ecwid_stock: Some(dec!(2)),
                ..VariantSpec::default()
            },
            VariantSpec {
                sku: "CAP-BLUE".into(),
                option_name: "Color".into(),
                option_value: "Blue".into(),
                ls_stock: dec!(3),
                ecwid_stock: Some(dec!(3)),
                ..VariantSpec::default()
            },
        ],
        ..ProductSpec::default()
    });
    let gone = sb.add_ls_product_only(ProductSpec {
        sku: "OLD-1".into(),
        name: "Old".into(),
        price_excl_tax: dec!(1),
        ..ProductSpec::default()
    });
    sb.delete_ls_product(gone.ls_id()).unwrap();

    let (status, created) = ls_post(
        &sb,
        "/api/2.0/customers",
        &json!({"first_name": "Ann", "last_name": "Lee", "email": "Ann.Lee@Example.com", "phone": "555-0100"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_valid("/customers", "post", "201", &created);
    let customer_id = created["data"]["id"].as_str().unwrap().to_string();
    assert!(
        created["data"]["customer_code"]
            .as_str()
            .unwrap()
            .starts_with("Ann-")
    );

    let mut sale = closed_sale(&sb, ids.mug.ls_id(), 1, "12", "1.2", &ids.tax_10_id);
    sale["customer_id"] = json!(customer_id);
    let (status, resp) = ls_post(&sb, "/api/register_sales", &sale).await;
    assert_eq!(status, 200, "{resp}");
    let sale_id = resp["register_sale"]["id"].as_str().unwrap().to_string();
    sb.pos_sale(ids.tote.ls_id(), 1, &ids.register_id);

    // Products.
    let body = get_ok(&sb, "/api/2.0/products").await;
    let products = non_empty(&body);
    assert!(products.len() >= 9);
    assert!(
        products.iter().all(|p| p["deleted_at"].is_null()),
        "deleted hidden by default"
    );
    assert_valid("/products", "get", "200", &body);
    let body = get_ok(&sb, "/api/2.0/products?deleted=true&page_size=100").await;
    assert!(
        non_empty(&body)
            .iter()
            .any(|p| p["id"] == json!(gone.ls_id()))
    );
    assert_valid("/products", "get", "200", &body);
    let body = get_ok(&sb, "/api/2.0/products?sku=CAP-BLUE").await;
    assert_eq!(non_empty(&body).len(), 1);
    assert_eq!(body["data"][0]["variant_parent_id"], json!(extra.ls_id()));
    assert_valid("/products", "get", "200", &body);
    for id in [
        extra.ls_id(),
        extra.variant("CAP-BLUE").ls_id(),
        ids.sticker.ls_id(),
        &ids.discount_product_id,
    ] {
        let body = get_ok(&sb, &format!("/api/2.0/products/{id}")).await;
        assert_eq!(body["data"]["id"], json!(id));
        assert_valid("/products/{product_id}", "get", "200", &body);
    }

    // Inventory.
    let body = get_ok(&sb, "/api/2.0/inventory").await;
    non_empty(&body);
    assert_valid("/inventory", "get", "200", &body);
    let body = get_ok(
        &sb,
        &format!("/api/2.0/products/{}/inventory", ids.mug.ls_id()),
    )
    .await;
    assert_eq!(non_empty(&body).len(), 2);
    assert_valid("/products/{product_id}/inventory", "get", "200", &body);

    // Setup objects.
    for (path, op) in [
        ("/api/2.0/registers", "/registers"),
        ("/api/2.0/outlets", "/outlets"),
        ("/api/2.0/payment_types", "/payment_types"),
        ("/api/2.0/taxes", "/taxes"),
        ("/api/2.0/users", "/users"),
        ("/api/2.0/customers", "/customers"),
        ("/api/2.0/sales", "/sales"),
    ] {
        let body = get_ok(&sb, path).await;
        non_empty(&body);
        assert!(
            body["version"]["max"].as_u64().unwrap() >= body["version"]["min"].as_u64().unwrap()
        );
        assert_valid(op, "get", "200", &body);
    }
    let body = get_ok(&sb, &format!("/api/2.0/registers/{}", ids.register_id)).await;
    assert_eq!(body["data"]["outlet_id"], json!(ids.outlet_id));
    assert_valid("/registers/{register_id}", "get", "200", &body);
    let body = get_ok(&sb, &format!("/api/2.0/outlets/{}", ids.second_outlet_id)).await;
    assert_eq!(body["data"]["name"], "Warehouse");
    assert_valid("/outlets/{outlet_id}", "get", "200", &body);
    let body = get_ok(&sb, &format!("/api/2.0/users/{}", ids.user_id)).await;
    assert_valid("/users/{user_id}", "get", "200", &body);
    let body = get_ok(&sb, &format!("/api/2.0/customers/{customer_id}")).await;
    assert_valid("/customers/{customer_id}", "get", "200", &body);
    let body = get_ok(&sb, &format!("/api/2.0/sales/{sale_id}")).await;
    assert_eq!(body["data"]["customer_id"], json!(customer_id));
    assert_valid("/sales/{sale_id}", "get", "200", &body);

    let taxes = get_ok(&sb, "/api/2.0/taxes").await;
    let rates: Vec<(String, String)> = taxes["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["rates"][0]["rate"].to_string(),
            )
        })
        .collect();
    assert!(
        rates.contains(&(ids.tax_10_id.clone(), "0.1".into())),
        "{rates:?}"
    );
    assert!(
        rates.contains(&(ids.tax_20_id.clone(), "0.2".into())),
        "{rates:?}"
    );
    assert!(
        rates.contains(&(ids.no_tax_group_id.clone(), "0".into())),
        "{rates:?}"
    );

    // Retailer.
    let body = get_ok(&sb, "/api/2.0/retailer").await;
    assert_eq!(body["data"]["tax_exclusive"], json!(true));
    assert_eq!(body["data"]["no_tax_group_id"], json!(ids.no_tax_group_id));
    assert_eq!(
        body["data"]["discount_product_id"],
        json!(ids.discount_product_id)
    );
    assert_eq!(body["data"]["currency"]["code"], "USD");
    assert_valid("/retailer", "get", "200", &body);

    // Search: the envelope, and each hit against its entity schema.
    let body = get_ok(
        &sb,
        "/api/2.0/search?type=sales&invoice_number=ECWID-TEST-1",
    )
    .await;
    assert_eq!(non_empty(&body).len(), 1);
    assert_valid("/search", "get", "200", &body);
    assert_each_valid("Sale", body["data"].as_array().unwrap());
    let body = get_ok(&sb, "/api/2.0/search?type=sales").await;
    assert_eq!(non_empty(&body).len(), 2);
    assert_each_valid("Sale", body["data"].as_array().unwrap());
    let body = get_ok(
        &sb,
        "/api/2.0/search?type=customers&email=ann.lee@example.com",
    )
    .await;
    assert_eq!(non_empty(&body).len(), 1);
    assert_valid("/search", "get", "200", &body);
    assert_each_valid("Customer", body["data"].as_array().unwrap());
    let body = get_ok(&sb, "/api/2.0/search?type=products&sku=cap-red").await;
    assert_eq!(non_empty(&body).len(), 1);
    assert_valid("/search", "get", "200", &body);
    assert_each_valid("Product", body["data"].as_array().unwrap());
}

#[tokio::test]
async fn version_paging_and_search_rules() {
    let sb = sandbox().await;
    let ids = sb.ids();

    // Page through all products by version.
    let mut after = 0u64;
    let mut seen = Vec::new();
    loop {
        let body = get_ok(&sb, &format!("/api/2.0/products?after={after}&page_size=3")).await;
        let data = body["data"].as_array().unwrap();
        if data.is_empty() {
            assert!(body.get("version").is_none_or(Value::is_null));
            break;
        }
        assert!(data.len() <= 3);
        after = body["version"]["max"].as_u64().unwrap();
        seen.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_string()));
    }
    let all = get_ok(&sb, "/api/2.0/products").await;
    assert_eq!(seen.len(), all["data"].as_array().unwrap().len());

    // A manual stock change shows up after the cursor, and only it.
    let inv = get_ok(&sb, "/api/2.0/inventory").await;
    let cursor = inv["version"]["max"].as_u64().unwrap();
    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 7);
    let changed = get_ok(&sb, &format!("/api/2.0/inventory?after={cursor}")).await;
    let data = changed["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["inventory_level"], json!(7));
    assert_eq!(data[0]["product_id"], json!(ids.mug.ls_id()));
    let empty = get_ok(
        &sb,
        &format!("/api/2.0/inventory?after={}", changed["version"]["max"]),
    )
    .await;
    assert!(empty["data"].as_array().unwrap().is_empty());

    // Product search wants the SKU lower-cased.
    let upper = get_ok(&sb, "/api/2.0/search?type=products&sku=MUG-001").await;
    assert!(upper["data"].as_array().unwrap().is_empty());
    let lower = get_ok(&sb, "/api/2.0/search?type=products&sku=mug-001").await;
    assert_eq!(lower["data"].as_array().unwrap().len(), 1);

    // Customer search is a loose, case-insensitive match: extra hits are possible.
    sb.add_customer("Jo", "Smith", "jo@example.com");
    sb.add_customer("Jo", "Smythe", "bojo@example.com");
    let hits = get_ok(&sb, "/api/2.0/search?type=customers&email=JO@EXAMPLE.COM").await;
    assert_eq!(hits["data"].as_array().unwrap().len(), 2);

    // Bad paging parameters and a missing search type are rejected.
    let (status, _) = ls_get(&sb, "/api/2.0/products?after=abc").await;
    assert_eq!(status, 400);
    let (status, _) = ls_get(&sb, "/api/2.0/search?email=x").await;
    assert_eq!(status, 400);

    // Customers need first_name and last_name.
    let (status, _) = ls_post(
        &sb,
        "/api/2.0/customers",
        &json!({"first_name": "A", "email": "a@b.co"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = ls_post(
        &sb,
        "/api/2.0/customers",
        &json!({"first_name": "a@b.co", "last_name": "", "email": "not-an-email"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = ls_post(
        &sb,
        "/api/2.0/customers",
        &json!({"first_name": "a@b.co", "last_name": "", "email": "a@b.co"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(sb.counters().ls_customer_creates, 3);
}

/// CreateProduct (`POST /api/2.0/products`). The file disagrees with itself there: the schema
/// types `data`'s items as objects ("An array containing the ID or IDs of the new
/// products"), its example (kept in the reduced file for this) shows the ids as strings. The
/// sandbox answers as the example does: the answer matches the schema but for the type of
/// each item, as the example does, and has the example's shape.
#[tokio::test]
async fn create_product_answers_as_the_openapi_example_shows() {
    let sb = sandbox().await;
    let (status, created) = ls_post(
        &sb,
        "/api/2.0/products",
        &json!({"name": "Shipping (Ecwid)", "sku": "ECWID-SHIP", "price_excluding_tax": 0, "has_inventory": false}),
    )
    .await;
    assert_eq!(status, 200, "{created}");

    let schema = response_schema("/products", "post", "200");
    assert!(
        schema.is_object(),
        "no CreateProduct schema in the reduced file"
    );
    let validator = validator_for_schema(&schema);
    let item_type = "/properties/data/items/type";
    let errors = |body: &Value| -> Vec<String> {
        validator
            .iter_errors(body)
            .filter(|e| e.schema_path.to_string() != item_type)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect()
    };
    assert_eq!(errors(&created), Vec::<String>::new(), "{created}");
    assert!(!validator.is_valid(&created), "string ids are not objects");
    let example = &spec().doc["paths"]["/products"]["post"]["responses"]["200"]["content"]["Example"]
        ["example"];
    assert!(example.is_object(), "CreateProduct's example is kept");
    assert!(errors(example).is_empty());
    assert!(
        !validator.is_valid(example),
        "the file's own example fails its item type, as the answer does"
    );
    let shape = |body: &Value| -> Vec<(bool, usize)> {
        let data = body["data"].as_array().expect("data array");
        data.iter()
            .map(|id| (id.is_string(), id.as_str().map_or(0, str::len)))
            .collect()
    };
    assert_eq!(shape(&created), shape(example), "one UUID-long string id");
    assert_eq!(
        created.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["data"]
    );

    // The product it made validates as a Product, by id and in the search.
    let id = created["data"][0].as_str().unwrap();
    let body = get_ok(&sb, &format!("/api/2.0/products/{id}")).await;
    assert_eq!(body["data"]["has_inventory"], json!(false));
    assert_valid("/products/{product_id}", "get", "200", &body);
    let body = get_ok(&sb, "/api/2.0/search?type=products&sku=ecwid-ship").await;
    assert_eq!(non_empty(&body).len(), 1);
    assert_valid("/search", "get", "200", &body);
    assert_each_valid("Product", body["data"].as_array().unwrap());
}

/// The harness itself catches bad shapes (so the test above proves something).
#[test]
fn the_schema_check_rejects_wrong_shapes() {
    let products = validator_for_schema(&response_schema("/products", "get", "200"));
    assert!(products.is_valid(&json!({"data": [{"name": "x", "handle": "x", "sku": "x"}], "version": {"min": 1, "max": 2}})));
    assert!(
        !products.is_valid(&json!({"data": [{"name": "x", "handle": "x"}]})),
        "sku is required"
    );
    assert!(!products.is_valid(&json!({"data": [{"name": "x", "handle": "x", "sku": "x", "price_including_tax": "1.00"}]})), "prices are numbers");
    assert!(
        products.is_valid(
            &json!({"data": [{"name": "x", "handle": "x", "sku": "x", "variant_parent_id": null}]})
        ),
        "nullable"
    );
    assert!(
        !products.is_valid(&json!({"data": [], "version": {"min": 1}})),
        "version needs max"
    );
    let taxes = validator_for_schema(&response_schema("/taxes", "get", "200"));
    assert!(!taxes.is_valid(&json!({"data": [{"id": "5a4db0c5-0000-4000-8000-000000000032", "display_name": "x", "is_default": false, "version": 1}]})), "deleted_at is required");
    let users = validator_for_schema(&response_schema("/users", "get", "200"));
    assert!(
        !users.is_valid(&json!({"data": []})),
        "version is required on users"
    );
}
