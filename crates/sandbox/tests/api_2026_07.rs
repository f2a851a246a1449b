//! `/api/2026-07/*` on the legacy paths' state: CreateSale refuses what its published schema
//! refuses, moves stock as `register_sales` does, and its sales are found by both
//! generations' searches (and legacy ones by the 2026-07 search); the client-supplied sale id;
//! the `POST /inventory` feed's directions; faults, counters and the rate budget shared with
//! the legacy twins. Sources: `tests/fixtures/lightspeed/2026-07/MAPPING.md` and the fixtures
//! beside it.

mod common;

use std::time::Duration;

use common::*;
use els_sandbox::{Fault, FaultKind, RepeatSaleId, Route, Sandbox, SandboxConfig};
use reqwest::Method;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

/// POST a 2026-07 sale.
async fn post_sale(sb: &Sandbox, body: &Value) -> (u16, Value) {
    ls_post(sb, "/api/2026-07/sales", body).await
}

fn details(body: &Value) -> &str {
    body["details"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_body_outside_the_published_schema_is_refused_naming_the_field() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let good = dated_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id);
    let without = |path: &[&str]| {
        let mut body = good.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut body;
        for p in parents {
            at = match p.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*p],
            };
        }
        at.as_object_mut().unwrap().remove(*last);
        body
    };
    let legacy = closed_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id);
    let mut money_as_text = good.clone();
    money_as_text["line_items"][0]["pricing"]["price"] = json!("12");
    let mut not_a_uuid = good.clone();
    not_a_uuid["id"] = json!("ECWID-1003-1");
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "missing source.author_id",
            without(&["source", "author_id"]),
            &["/source: ", "\"author_id\" is a required property"],
        ),
        (
            "missing state",
            without(&["state"]),
            &["/: ", "\"state\" is a required property"],
        ),
        (
            "a line without tax",
            without(&["line_items", "0", "tax"]),
            &["/line_items/0: ", "\"tax\" is a required property"],
        ),
        (
            "a payment without type.config_id",
            without(&["payments", "0", "type", "config_id"]),
            &["/payments/0/type: ", "\"config_id\" is a required property"],
        ),
        (
            "a legacy register_sales body",
            legacy,
            &["\"state\" is a required property", "/source: "],
        ),
        (
            "money as a string",
            money_as_text,
            &["/line_items/0/pricing/price: "],
        ),
        ("a client id that is not a uuid", not_a_uuid, &["/id: "]),
        ("no body at all", Value::Null, &["/: "]),
    ];
    for (what, body, expected) in cases {
        let (status, answer) = post_sale(&sb, &body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(answer["error"], "Bad Request", "{what}: {answer}");
        for part in expected {
            assert!(details(&answer).contains(part), "{what}: {answer}");
        }
    }
    // The legacy body fails on both its `source` (a string) and its missing `state`, as
    // MAPPING.md's checks found.
    let (_, answer) = post_sale(&sb, &closed_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id)).await;
    assert_eq!(
        details(&answer),
        "/: \"state\" is a required property; /source: \"ecwid\" is not of type \"object\""
    );

    // Then the legacy checks, naming the 2026-07 fields.
    let mut unknown_product = good.clone();
    unknown_product["line_items"][0]["product"]["id"] = json!(ids.register_id);
    let mut unpaid = good.clone();
    unpaid["payments"][0]["amount"] = json!(1);
    let mut zero = good.clone();
    zero["line_items"][0]["quantity"] = json!(0);
    let mut bad_tax = good.clone();
    bad_tax["line_items"][0]["tax"]["id"] = json!(ids.user_id);
    let mut bad_type = good.clone();
    bad_type["payments"][0]["type"]["config_id"] = json!(ids.tax_10_id);
    let mut bad_author = good.clone();
    bad_author["source"]["author_id"] = json!(ids.tax_10_id);
    let mut bad_register = good.clone();
    bad_register["source"]["register_id"] = json!(ids.user_id);
    let mut two_attributes = good.clone();
    two_attributes["attributes"] = json!(["onaccount", "pickup"]);
    let mut parked_on_account = good.clone();
    parked_on_account["state"] = json!("parked");
    parked_on_account["attributes"] = json!(["onaccount"]);
    let mut bad_date = good.clone();
    bad_date["date"] = json!("2026-11-27 10:00:00");
    for (what, body, expected) in [
        (
            "unknown product",
            unknown_product,
            "line_items[0].product.id",
        ),
        (
            "unpaid closed sale",
            unpaid,
            "A CLOSED sale must be fully paid",
        ),
        (
            "zero quantity",
            zero,
            "line_items[0].quantity must not be zero",
        ),
        ("unknown tax", bad_tax, "line_items[0].tax.id"),
        ("not a payment type", bad_type, "payments[0].type.config_id"),
        ("unknown author", bad_author, "source.author_id"),
        ("unknown register", bad_register, "source.register_id"),
        ("two attributes", two_attributes, "attributes"),
        ("parked on account", parked_on_account, "state parked"),
        ("not RFC 3339", bad_date, "date"),
    ] {
        let (status, answer) = post_sale(&sb, &body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(details(&answer).contains(expected), "{what}: {answer}");
    }

    // Nothing was created and no stock moved; every attempt was counted as a sale POST.
    assert_eq!(sb.sale_count(), 0);
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(30));
    assert_eq!(sb.inventory_level(&mug, &ids.second_outlet_id), dec!(50));
    assert_eq!(sb.counters().ls_sale_posts, 19);
}

#[tokio::test]
async fn one_store_for_both_generations_stock_and_searches() {
    let lag = Duration::from_millis(400);
    let sb = sandbox_with(SandboxConfig {
        ls_search_lag: lag,
        ..SandboxConfig::default()
    })
    .await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let version_before = sb.inventory_version(&mug, &ids.outlet_id).unwrap();

    // A 2026-07 sale of 2 mugs lowers stock at the register's outlet, as a legacy one does.
    let (status, created) =
        post_sale(&sb, &dated_sale(&sb, &mug, 2, "12", "1.2", &ids.tax_10_id)).await;
    assert_eq!(status, 200, "{created}");
    let dated_id = created["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));
    assert_eq!(sb.inventory_level(&mug, &ids.second_outlet_id), dec!(50));
    assert!(sb.inventory_version(&mug, &ids.outlet_id).unwrap() > version_before);
    let (status, legacy) = ls_post(
        &sb,
        "/api/register_sales",
        &closed_sale(&sb, &mug, 2, "12", "1.2", &ids.tax_10_id),
    )
    .await;
    assert_eq!(status, 200, "{legacy}");
    let legacy_id = legacy["register_sale"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        sb.inventory_level(&mug, &ids.outlet_id),
        dec!(26),
        "the same delta"
    );
    assert_eq!(sb.sale_count(), 2);
    assert_eq!(sb.sales_2026_07().len(), 2);

    // GetSaleByID reads each at once, in the 2026-07 shape; the search lags.
    let (status, got) = ls_get(&sb, &format!("/api/2026-07/sales/{dated_id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["data"]["invoice_number"], "ECWID-DATED-1");
    let (status, got) = ls_get(&sb, &format!("/api/2026-07/sales/{legacy_id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["data"]["state"], "closed");
    assert_eq!(got["data"]["source"]["id"], "TEST1");
    assert_eq!(got["data"]["source"]["author"]["id"], json!(ids.user_id));
    assert_eq!(got["data"]["totals"]["price"], json!(24));
    assert_eq!(got["data"]["line_items"][0]["product"]["id"], json!(mug));
    let (status, _) = ls_get(&sb, &format!("/api/2026-07/sales/{}", ids.user_id)).await;
    assert_eq!(status, 404);
    let search = |path: String| {
        let sb = sb.clone();
        async move {
            let (status, body) = ls_get(&sb, &path).await;
            assert_eq!(status, 200, "{path}: {body}");
            body["data"].as_array().unwrap().clone()
        }
    };
    assert!(
        search("/api/2026-07/search?type=sales&invoice_number=ECWID-DATED-1".into())
            .await
            .is_empty(),
        "not indexed yet"
    );
    tokio::time::sleep(lag + Duration::from_millis(50)).await;

    // The dated sale through both searches; the legacy sale through the 2026-07 one.
    let hits = search("/api/2.0/search?type=sales&invoice_number=ECWID-DATED-1".into()).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["id"], json!(dated_id));
    assert_eq!(hits[0]["source_id"], "DATED1", "the 2.0 shape");
    let hits = search("/api/2026-07/search?type=sales&invoice_number=ECWID-DATED-1".into()).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["source"]["id"], "DATED1", "the 2026-07 shape");
    assert!(hits[0].get("source_id").is_none());
    let hits = search("/api/2026-07/search?type=sales&invoice_number=ECWID-TEST-1".into()).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["id"], json!(legacy_id));
    assert_eq!(hits[0]["totals"]["price_incl_tax"], num("26.4"));
    let (status, read) = ls_get(&sb, &format!("/api/register_sales/{dated_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(read["register_sales"][0]["source_id"], "DATED1");

    // `state` filters on 2026-07 only; SKUs are still compared lower-cased.
    assert_eq!(
        search("/api/2026-07/search?type=sales&state=closed".into())
            .await
            .len(),
        2
    );
    assert!(
        search("/api/2026-07/search?type=sales&state=parked".into())
            .await
            .is_empty()
    );
    assert_eq!(
        search("/api/2.0/search?type=sales&state=parked".into())
            .await
            .len(),
        2
    );
    assert!(
        search("/api/2026-07/search?type=products&sku=MUG-001".into())
            .await
            .is_empty()
    );
    assert_eq!(
        search("/api/2026-07/search?type=products&sku=mug-001".into())
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn states_attributes_and_a_sale_without_a_register() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let tote = ids.tote.ls_id().to_string();

    // No `source.register_id`: the retailer's first register (the web register, main outlet).
    let mut body = dated_sale(&sb, &tote, 1, "15", "3", &ids.tax_20_id);
    body["source"]
        .as_object_mut()
        .unwrap()
        .remove("register_id");
    body["payments"][0]
        .as_object_mut()
        .unwrap()
        .remove("source");
    let (status, created) = post_sale(&sb, &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created["data"]["source"]["register_id"],
        json!(ids.register_id)
    );
    assert_eq!(sb.inventory_level(&tote, &ids.outlet_id), dec!(24));

    // A parked sale takes no stock and reads back as parked (legacy SAVED); a sale closed on
    // account is `closed` + `onaccount` (legacy ONACCOUNT_CLOSED) and takes stock.
    let mut parked = dated_sale(&sb, &tote, 1, "15", "3", &ids.tax_20_id);
    parked["state"] = json!("parked");
    parked["payments"] = json!([]);
    let (status, created) = post_sale(&sb, &parked).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["data"]["state"], "parked");
    let parked_id = created["data"]["id"].as_str().unwrap();
    assert_eq!(sb.inventory_level(&tote, &ids.outlet_id), dec!(24));
    let (_, legacy) = ls_get(&sb, &format!("/api/register_sales/{parked_id}")).await;
    assert_eq!(legacy["register_sales"][0]["status"], "SAVED");
    let mut on_account = dated_sale(&sb, &tote, 1, "15", "3", &ids.tax_20_id);
    on_account["attributes"] = json!(["onaccount"]);
    on_account["payments"] = json!([]);
    let (status, created) = post_sale(&sb, &on_account).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["data"]["attributes"], json!(["onaccount"]));
    let (_, v2) = ls_get(
        &sb,
        &format!("/api/2.0/sales/{}", created["data"]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(v2["data"]["status"], "ONACCOUNT_CLOSED");
    assert_eq!(sb.inventory_level(&tote, &ids.outlet_id), dec!(23));
    let mut pending = dated_sale(&sb, &tote, 1, "15", "3", &ids.tax_20_id);
    pending["state"] = json!("pending");
    let (status, created) = post_sale(&sb, &pending).await;
    assert_eq!(status, 200, "{created}");
    let (_, v2) = ls_get(
        &sb,
        &format!("/api/2.0/sales/{}", created["data"]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(v2["data"]["status"], "OPEN");
    assert_eq!(sb.inventory_level(&tote, &ids.outlet_id), dec!(23));
}

#[tokio::test]
async fn a_client_id_is_the_sale_id_and_a_repeat_is_refused_by_default() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let id = "0b7f6a8e-3c1d-5e2f-9a4b-6c7d8e9f0a1b";
    let mut body = dated_sale(&sb, &mug, 2, "12", "1.2", &ids.tax_10_id);
    body["id"] = json!(id);
    let (status, created) = post_sale(&sb, &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["data"]["id"], id);
    let (status, got) = ls_get(&sb, &format!("/api/2026-07/sales/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["data"]["id"], id);
    assert_eq!(got["data"], created["data"]);

    // The same POST again (and with the id in capitals): 409, nothing changed.
    let mut shouting = body.clone();
    shouting["id"] = json!(id.to_uppercase());
    for repeat in [&body, &shouting] {
        let (status, answer) = post_sale(&sb, repeat).await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(
            answer,
            json!({"error": "Conflict", "details": format!("A sale with id {id} already exists")})
        );
    }
    assert_eq!(sb.sale_count(), 1);
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));
    let (_, got) = ls_get(&sb, &format!("/api/2026-07/sales/{id}")).await;
    assert_eq!(got["data"]["_metadata"], created["data"]["_metadata"]);
}

#[tokio::test]
async fn with_update_a_repeated_client_id_replaces_the_sale() {
    let sb = sandbox_with(SandboxConfig {
        ls_repeat_sale_id: RepeatSaleId::Update,
        ..SandboxConfig::default()
    })
    .await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    let id = "0b7f6a8e-3c1d-5e2f-9a4b-6c7d8e9f0a1c";
    let mut body = dated_sale(&sb, &mug, 2, "12", "1.2", &ids.tax_10_id);
    body["id"] = json!(id);
    let (status, first) = post_sale(&sb, &body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));

    let mut again = dated_sale(&sb, &mug, 1, "12", "1.2", &ids.tax_10_id);
    again["id"] = json!(id);
    again["note"] = json!("replaced");
    let (status, second) = post_sale(&sb, &again).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(sb.sale_count(), 1, "still one sale");
    assert_eq!(second["data"]["id"], id);
    assert_eq!(second["data"]["note"], "replaced");
    assert_eq!(second["data"]["line_items"].as_array().unwrap().len(), 1);
    assert_eq!(second["data"]["line_items"][0]["quantity"], json!(1));
    assert!(
        second["data"]["_metadata"]["version"].as_u64()
            > first["data"]["_metadata"]["version"].as_u64()
    );
    assert_eq!(
        sb.inventory_level(&mug, &ids.outlet_id),
        dec!(29),
        "the first sale's stock is back, the second's taken"
    );
}

/// Every inventory record's `(id, version)`, by the 2.0 feed.
async fn all_records(sb: &Sandbox) -> Vec<(String, u64)> {
    let (_, body) = ls_get(sb, "/api/2.0/inventory?page_size=10000").await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["version"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn feed(sb: &Sandbox, request: Value) -> Vec<Value> {
    let (status, body) = ls_post(sb, "/api/2026-07/inventory", &request).await;
    assert_eq!(status, 200, "{request}: {body}");
    body.as_array().expect("a bare array").clone()
}

fn versions(page: &[Value]) -> Vec<u64> {
    page.iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_inventory_feed_pages_ascending_and_the_default_descending_skips() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let all = all_records(&sb).await;
    assert!(all.len() > 10);

    // "asc" with `after` pages through every record exactly once.
    let mut seen: Vec<String> = Vec::new();
    let mut after = 0;
    loop {
        let page = feed(
            &sb,
            json!({"after": after, "size": 3, "sort_direction": "asc"}),
        )
        .await;
        if page.is_empty() {
            break;
        }
        let v = versions(&page);
        assert!(v.len() <= 3 && v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        assert!(page.iter().all(|r| r.get("inventory_level").is_none()));
        assert!(
            page.iter()
                .all(|r| r["current_inventory_level"].is_number())
        );
        seen.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        after = *v.last().unwrap();
    }
    let mut expected: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
    let mut got = seen.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "every record exactly once");

    // The default "desc": the newest `size` records above the cursor, so paging by the highest
    // version skips the ones between.
    let mut sorted: Vec<u64> = all.iter().map(|(_, v)| *v).collect();
    sorted.sort_unstable();
    let cursor = sorted[2];
    let page = feed(&sb, json!({"after": cursor, "size": 3})).await;
    let newest: Vec<u64> = sorted.iter().rev().take(3).copied().collect();
    assert_eq!(versions(&page), newest);
    let next = feed(&sb, json!({"after": newest[0], "size": 3})).await;
    assert!(
        next.is_empty(),
        "records between {cursor} and {} are never seen",
        newest[2]
    );
    let page = feed(&sb, json!({})).await;
    assert_eq!(page.len(), all.len(), "size 1000 by default, newest first");
    assert_eq!(versions(&page)[0], *sorted.last().unwrap());

    // `before`, a product, a product with its variants.
    let page = feed(&sb, json!({"before": sorted[3], "sort_direction": "asc"})).await;
    assert_eq!(versions(&page), sorted[..3].to_vec());
    let mug = feed(&sb, json!({"product_id": ids.mug.ls_id()})).await;
    assert_eq!(mug.len(), 2);
    let tshirt = ids.tshirt.ls_id();
    let exact = feed(&sb, json!({"product_id": tshirt})).await;
    let family = feed(&sb, json!({"product_id": tshirt, "variants": true})).await;
    // The parent row is the first variant itself; the two others point to it. Two outlets.
    assert_eq!((exact.len(), family.len()), (2, 6));

    // A change shows up past the cursor, and this POST changed nothing.
    let top = *sorted.last().unwrap();
    sb.set_ls_inventory(ids.mug.ls_id(), &ids.outlet_id, 7);
    let page = feed(&sb, json!({"after": top, "sort_direction": "asc"})).await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["current_inventory_level"], json!(7));
    assert_eq!(all_records(&sb).await.len(), all.len());

    // The body's schema: size at most 5000, a known direction.
    for (request, field) in [
        (json!({"size": 5001}), "/size: "),
        (json!({"sort_direction": "up"}), "/sort_direction: "),
        (json!({"after": "12"}), "/after: "),
    ] {
        let (status, body) = ls_post(&sb, "/api/2026-07/inventory", &request).await;
        assert_eq!(status, 400, "{request}: {body}");
        assert!(details(&body).starts_with(field), "{body}");
    }
    let (status, _) = ls_post(&sb, "/api/2026-07/inventory", &json!({"size": 0})).await;
    assert_eq!(status, 400);

    // The feed is a POST that only reads: counted as a read, not a GET.
    let before = sb.counters();
    feed(&sb, json!({"sort_direction": "asc"})).await;
    let after = sb.counters();
    assert_eq!(after.ls_reads, before.ls_reads + 1);
    assert_eq!(after.ls_gets, before.ls_gets);
}

#[tokio::test]
async fn product_inventory_is_a_bare_array_oldest_first() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id();
    sb.set_ls_inventory(mug, &ids.second_outlet_id, 44);
    let get = |q: &str| {
        let path = format!("/api/2026-07/inventory/{mug}{q}");
        let sb = sb.clone();
        async move { ls_get(&sb, &path).await }
    };
    let (status, body) = get("").await;
    assert_eq!(status, 200, "{body}");
    let v = versions(body.as_array().unwrap());
    assert_eq!(v.len(), 2);
    assert!(v[0] < v[1], "asc by default: {v:?}");
    let (_, body) = get("?order_direction=desc&page_size=1").await;
    assert_eq!(versions(body.as_array().unwrap()), vec![v[1]]);
    assert_eq!(body[0]["current_inventory_level"], json!(44));
    let (_, body) = get(&format!("?after={}", v[0])).await;
    assert_eq!(versions(body.as_array().unwrap()), vec![v[1]]);
    for q in ["?page_size=5001", "?order_direction=up", "?after=x"] {
        let (status, body) = get(q).await;
        assert_eq!(status, 400, "{q}: {body}");
    }
    let (status, _) = ls_get(&sb, &format!("/api/2026-07/inventory/{}", ids.user_id)).await;
    assert_eq!(status, 404);
    // 2026-07 has no `/products/{id}/inventory`.
    let (status, body) = ls_get(&sb, &format!("/api/2026-07/products/{mug}/inventory")).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn drop_after_commit_fires_on_the_dated_sale_post() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let mug = ids.mug.ls_id().to_string();
    sb.inject(Fault::once(Route::LsPostSale, FaultKind::DropAfterCommit));
    let id = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let mut body = dated_sale(&sb, &mug, 2, "12", "1.2", &ids.tax_10_id);
    body["id"] = json!(id);
    let result = client()
        .post(format!("{}/api/2026-07/sales", sb.lightspeed_url()))
        .bearer_auth(&sb.config().ls_token)
        .json(&body)
        .send()
        .await;
    let err = result.expect_err("no HTTP response at all");
    assert!(err.status().is_none(), "a connection error: {err:?}");

    // The sale was committed and took stock; the client finds it by its id at once.
    assert_eq!(sb.sale_count(), 1);
    assert_eq!(sb.inventory_level(&mug, &ids.outlet_id), dec!(28));
    assert!(sb.faults().is_empty());
    assert_eq!(
        sb.fault_tally()
            .get(Route::LsPostSale, &FaultKind::DropAfterCommit),
        1
    );
    let (status, got) = ls_get(&sb, &format!("/api/2026-07/sales/{id}")).await;
    assert_eq!(status, 200, "{got}");
    let (status, _) = post_sale(&sb, &body).await;
    assert_eq!(status, 409, "a blind repost is refused (the default)");
    assert_eq!(sb.sale_count(), 1);
}

#[tokio::test]
async fn the_dated_routes_share_faults_counters_and_the_rate_budget() {
    let sb = sandbox_with(SandboxConfig {
        ls_rate_limit: 8,
        ls_rate_window: Duration::from_secs(60),
        ..SandboxConfig::default()
    })
    .await;
    let ids = sb.ids();

    // A search fault fires on the 2026-07 search; a sale-post fault on the 2026-07 POST.
    sb.inject(Fault::once(Route::LsSearch, FaultKind::Status(503)));
    let r = ls(&sb, Method::GET, "/api/2026-07/search?type=sales", None).await;
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["X-RateLimit-Remaining"], "7");
    sb.inject(Fault::once(Route::LsPostSale, FaultKind::Status(502)));
    let body = dated_sale(&sb, ids.mug.ls_id(), 1, "12", "1.2", &ids.tax_10_id);
    let r = ls(&sb, Method::POST, "/api/2026-07/sales", Some(&body)).await;
    assert_eq!(r.status().as_u16(), 502);
    assert_eq!(sb.sale_count(), 0);

    // Counters see both generations.
    let (status, _) = ls_post(
        &sb,
        "/api/2026-07/customers",
        &json!({"first_name": "Bo", "last_name": "Lee"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, answer) =
        ls_post(&sb, "/api/2026-07/customers", &json!({"first_name": "Bo"})).await;
    assert_eq!(status, 400, "last_name is a required key");
    assert!(details(&answer).contains("\"last_name\" is a required property"));
    let (status, _) = ls_post(
        &sb,
        "/api/2026-07/products",
        &json!({"name": "Fee", "has_inventory": false}),
    )
    .await;
    assert_eq!(status, 200);
    let c = sb.counters();
    assert_eq!(
        (
            c.ls_searches,
            c.ls_sale_posts,
            c.ls_customer_creates,
            c.ls_product_creates
        ),
        (1, 1, 2, 1)
    );

    // One budget: 5 used; legacy and dated requests take the last three, then both are refused.
    let r = ls(&sb, Method::GET, "/api/2.0/outlets", None).await;
    assert_eq!(r.headers()["X-RateLimit-Remaining"], "2");
    let r = ls(&sb, Method::GET, "/api/2026-07/outlets", None).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["X-RateLimit-Limit"], "8");
    assert_eq!(r.headers()["X-RateLimit-Remaining"], "1");
    let r = ls(&sb, Method::GET, "/api/2.0/retailer", None).await;
    assert_eq!(r.headers()["X-RateLimit-Remaining"], "0");
    let r = ls(&sb, Method::GET, "/api/2026-07/retailer", None).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("Retry-After"));
    let r = ls(&sb, Method::GET, "/api/2.0/retailer", None).await;
    assert_eq!(r.status().as_u16(), 429);
}

#[tokio::test]
async fn unknown_paths_methods_and_tokens_on_2026_07() {
    let sb = sandbox().await;
    for (method, path, status) in [
        (Method::GET, "/api/2026-07/sales", 405),
        (Method::DELETE, "/api/2026-07/products", 405),
        (Method::GET, "/api/2026-07/inventory", 405),
        (Method::GET, "/api/2026-07/nope", 404),
        (Method::GET, "/api/2026-07", 404),
        (Method::GET, "/api/2026-08/sales/x", 404),
    ] {
        let r = ls(&sb, method.clone(), path, None).await;
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
    }
    let r = client()
        .get(format!("{}/api/2026-07/retailer", sb.lightspeed_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("X-RateLimit-Limit"));

    // Taxes: every tax, `data` only; `after` filters as the declared parameter says.
    let (_, taxes) = ls_get(&sb, "/api/2026-07/taxes").await;
    let all = taxes["data"].as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert!(taxes.get("version").is_none());
    let top = all
        .iter()
        .filter_map(|t| t["version"].as_u64())
        .max()
        .unwrap();
    let (_, none) = ls_get(&sb, &format!("/api/2026-07/taxes?after={top}")).await;
    assert_eq!(none, json!({"data": []}));
}
