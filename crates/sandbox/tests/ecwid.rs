//! The fake Ecwid: checkout simulation, orders, products, batch, auth.

mod common;

use common::*;
use els_sandbox::{OrderItemSpec, OrderSpec, ShippingSpec};
use reqwest::Method;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

fn d(v: &Value) -> Decimal {
    assert!(v.is_number(), "money is a JSON number: {v}");
    v.to_string().parse().unwrap()
}

/// Ecwid's example order (`order.json` of its REST API docs, as published), kept once in
/// els-core's fixtures (see tests/fixtures/README.md).
const EXAMPLE_ORDER: &str = include_str!("../../core/tests/fixtures/ecwid-order-K8XTQ.json");

/// Internal consistency of an order JSON; returns (sum of lines, total).
fn check_consistent(o: &Value) -> (Decimal, Decimal) {
    let include = o["pricesIncludeTax"].as_bool().unwrap();
    let mut lines = Decimal::ZERO;
    let mut tax = Decimal::ZERO;
    let mut subtotal = Decimal::ZERO;
    for item in o["items"].as_array().unwrap() {
        let q = d(&item["quantity"]);
        let price = d(&item["price"]);
        let line_tax = d(&item["tax"]);
        let taxes: Decimal = item["taxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| d(&t["total"]))
            .sum();
        assert_eq!(taxes, line_tax, "item tax = taxes[].total (line totals)");
        for t in item["taxes"].as_array().unwrap() {
            assert_eq!(t["includeInPrice"], json!(include));
        }
        tax += line_tax;
        subtotal += price * q;
        lines += if include {
            price * q
        } else {
            price * q + line_tax
        };
        assert_eq!(d(&item["productPrice"]), price);
        if include {
            assert_eq!(d(&item["priceWithoutTax"]), els_round(price - line_tax / q));
        } else {
            assert_eq!(d(&item["priceWithoutTax"]), price);
        }
    }
    let shipping = o["shippingOption"]["shippingRate"]
        .as_f64()
        .map(|_| d(&o["shippingOption"]["shippingRate"]))
        .unwrap_or_default();
    let total = d(&o["total"]);
    assert_eq!(d(&o["tax"]), tax);
    assert_eq!(d(&o["subtotal"]), subtotal);
    assert_eq!(d(&o["totalWithoutTax"]), total - tax);
    if include {
        assert_eq!(d(&o["subtotalWithoutTax"]), subtotal - tax);
    } else {
        assert_eq!(d(&o["subtotalWithoutTax"]), subtotal);
    }
    for k in [
        "couponDiscount",
        "volumeDiscount",
        "membershipBasedDiscount",
        "totalAndMembershipBasedDiscount",
        "discount",
        "giftCardRedemption",
    ] {
        assert_eq!(d(&o[k]), Decimal::ZERO, "{k}");
    }
    assert_eq!(o["customDiscount"], json!([]));
    assert_eq!(o["customSurcharges"], json!([]));
    (lines + shipping, total)
}

fn els_round(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

#[tokio::test]
async fn place_order_tax_inclusive_is_consistent_and_lowers_stock() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let id = sb.place_order(OrderSpec {
        items: vec![
            OrderItemSpec::new("123123", 1),
            OrderItemSpec::new("MUG-001", 3),
            OrderItemSpec::new("TSHIRT-M", 2),
            OrderItemSpec::new("STICKER-01", 5),
        ],
        prices_include_tax: true,
        payment_status: "PAID".into(),
        email: "ann@example.com".into(),
        first_name: "Ann".into(),
        last_name: "Lee".into(),
        ..OrderSpec::default()
    });
    let o = sb.ecwid_order(&id).unwrap();
    let (lines, total) = check_consistent(&o);
    assert_eq!(lines, total);
    // 10.00 + 3 x 13.20 + 2 x 24.00 + 5 x 1.50
    assert_eq!(total, dec!(105.10));
    // Taxes per line: 0.91 + round(39.60/11 = 3.60) + round(48/6 = 8.00) + 0
    assert_eq!(d(&o["tax"]), dec!(12.51));
    let toys = &o["items"][0];
    assert_eq!(toys["productId"], json!(692730761));
    assert_eq!(d(&toys["price"]), dec!(10));
    assert_eq!(d(&toys["priceWithoutTax"]), dec!(9.09));
    assert_eq!(d(&toys["tax"]), dec!(0.91));
    assert_eq!(toys["taxes"][0]["value"], json!(10));
    let shirt = &o["items"][2];
    assert_eq!(shirt["sku"], "TSHIRT-M");
    assert_eq!(
        shirt["combinationId"],
        json!(ids.tshirt.variant("TSHIRT-M").combination_id())
    );
    assert_eq!(shirt["productId"], json!(ids.tshirt.ecwid_id()));
    assert_eq!(shirt["selectedOptions"][0]["value"], "M");
    assert_eq!(o["items"][3]["taxes"], json!([]));
    assert_eq!(o["paymentStatus"], "PAID");
    assert_eq!(o["fulfillmentStatus"], "AWAITING_PROCESSING");
    assert_eq!(o["billingPerson"]["name"], "Ann Lee");
    assert_eq!(o["billingPerson"]["firstName"], "Ann");
    assert_eq!(o["email"], "ann@example.com");
    assert!(o["internalId"].as_u64().unwrap() > 0);
    assert!(o["createTimestamp"].as_i64().unwrap() > 0);
    assert!(o["createDate"].as_str().unwrap().ends_with("+0000"));

    // Stock drops like a real checkout.
    assert_eq!(sb.ecwid_stock(ids.toys.ecwid_id(), None), Some(dec!(49)));
    assert_eq!(sb.ecwid_stock(ids.mug.ecwid_id(), None), Some(dec!(27)));
    let m = ids.tshirt.variant("TSHIRT-M").combination_id();
    assert_eq!(
        sb.ecwid_stock(ids.tshirt.ecwid_id(), Some(m)),
        Some(dec!(10))
    );
    // ... and nothing moved in Lightspeed.
    assert_eq!(
        sb.inventory_level(ids.mug.ls_id(), &ids.outlet_id),
        dec!(30)
    );
}

#[tokio::test]
async fn place_order_tax_exclusive_is_consistent() {
    let sb = sandbox().await;
    let id = sb.place_order(OrderSpec {
        items: vec![
            OrderItemSpec::new("123123", 3),
            OrderItemSpec::new("TOTE-001", 1),
            OrderItemSpec::new("STICKER-01", 2),
        ],
        prices_include_tax: false,
        payment_status: "AWAITING_PAYMENT".into(),
        email: "bo@example.com".into(),
        shipping: Some(ShippingSpec {
            method_name: "Flat rate".into(),
            rate: dec!(4.99),
        }),
        ..OrderSpec::default()
    });
    let o = sb.ecwid_order(&id).unwrap();
    let (lines, total) = check_consistent(&o);
    assert_eq!(lines, total);
    // Net 3 x 9.09 + 15.00 + 2 x 1.50 = 45.27; tax round(27.27 x 10%) + 3.00 = 2.73 + 3.00
    assert_eq!(d(&o["subtotal"]), dec!(45.27));
    assert_eq!(d(&o["tax"]), dec!(5.73));
    assert_eq!(total, dec!(55.99));
    assert_eq!(o["pricesIncludeTax"], json!(false));
    assert_eq!(o["paymentStatus"], "AWAITING_PAYMENT");
    assert_eq!(o["shippingOption"]["shippingMethodName"], "Flat rate");
    assert_eq!(o["billingPerson"]["name"], "");

    // Invalid checkouts are refused.
    assert!(
        sb.try_place_order(OrderSpec {
            items: vec![OrderItemSpec::new("NOPE", 1)],
            ..Default::default()
        })
        .is_err()
    );
    assert!(
        sb.try_place_order(OrderSpec {
            items: vec![OrderItemSpec::new("TSHIRT", 1)],
            ..Default::default()
        })
        .is_err()
    );
    assert!(
        sb.try_place_order(OrderSpec {
            items: vec![OrderItemSpec::new("TSHIRT-L", 9)],
            ..Default::default()
        })
        .is_err()
    );
}

#[tokio::test]
async fn example_order_loads_as_is_and_get_returns_it() {
    let sb = sandbox().await;
    let example: Value = serde_json::from_str(EXAMPLE_ORDER).unwrap();
    let id = sb.insert_order(example.clone());
    assert_eq!(id, "K8XTQ");
    let (status, got) = ecwid(&sb, Method::GET, "/orders/K8XTQ", None).await;
    assert_eq!(status, 200);
    assert_eq!(got, example);
    assert_eq!(sb.ecwid_order("K8XTQ").unwrap(), example);
    // Its item maps to the seed catalog.
    assert_eq!(
        got["items"][0]["productId"],
        json!(sb.ids().toys.ecwid_id())
    );
    assert_eq!(got["items"][0]["sku"], json!(sb.ids().toys.sku));

    // Search by internalId.
    let (status, found) = ecwid(&sb, Method::GET, "/orders?ids=516483487", None).await;
    assert_eq!(status, 200);
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["id"], "K8XTQ");
    let (_, none) = ecwid(&sb, Method::GET, "/orders/516483487", None).await;
    assert_eq!(none["errorCode"], "ORDER_NOT_FOUND");

    // The paid status filter and paging.
    sb.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 1)],
        payment_status: "AWAITING_PAYMENT".into(),
        ..Default::default()
    });
    let (_, paid) = ecwid(
        &sb,
        Method::GET,
        "/orders?paymentStatus=PAID&limit=500",
        None,
    )
    .await;
    assert_eq!(paid["total"], 1);
    assert_eq!(paid["limit"], 100);
    let (_, all) = ecwid(&sb, Method::GET, "/orders?offset=1&limit=1", None).await;
    assert_eq!(
        (all["total"].as_u64(), all["count"].as_u64()),
        (Some(2), Some(1))
    );
}

#[tokio::test]
async fn order_writes_are_counted_and_payment_status_changes() {
    let sb = sandbox().await;
    let id = sb.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 2)],
        payment_status: "AWAITING_PAYMENT".into(),
        ..Default::default()
    });
    assert_eq!(sb.counters().ecwid_order_writes, 0);
    let (status, body) = ecwid(
        &sb,
        Method::PUT,
        &format!("/orders/{id}"),
        Some(&json!({"orderComments": "x"})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"updateCount": 1})));
    let (status, _) = ecwid(
        &sb,
        Method::POST,
        "/orders",
        Some(&json!({"email": "a@b.co", "total": 1})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = ecwid(
        &sb,
        Method::PATCH,
        &format!("/orders/{id}"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(sb.counters().ecwid_order_writes, 3);
    let (_, _) = ecwid(&sb, Method::GET, &format!("/orders/{id}"), None).await;
    assert_eq!(sb.counters().ecwid_order_gets, 1);

    sb.set_payment_status(&id, "PAID").unwrap();
    assert_eq!(sb.ecwid_order(&id).unwrap()["paymentStatus"], "PAID");
    sb.update_order(&id, json!({"fulfillmentStatus": "SHIPPED"}))
        .unwrap();
    assert_eq!(sb.ecwid_order(&id).unwrap()["fulfillmentStatus"], "SHIPPED");
    let mug = sb.ids().mug.ecwid_id();
    assert_eq!(sb.ecwid_stock(mug, None), Some(dec!(28)));
    sb.set_payment_status(&id, "CANCELLED").unwrap();
    assert_eq!(
        sb.ecwid_stock(mug, None),
        Some(dec!(30)),
        "cancelling restocks"
    );
}

#[tokio::test]
async fn products_stock_and_auth() {
    let sb = sandbox().await;
    let ids = sb.ids();

    let (status, body) = ecwid(&sb, Method::GET, "/products?sku=TSHIRT-L", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["id"], json!(ids.tshirt.ecwid_id()));
    assert_eq!(
        body["items"][0]["combinations"].as_array().unwrap().len(),
        3
    );
    let (_, body) = ecwid(&sb, Method::GET, "/products?sku=tshirt-l", None).await;
    assert_eq!(body["total"], 0);

    let (status, body) = ecwid(
        &sb,
        Method::PUT,
        &format!("/products/{}", ids.mug.ecwid_id()),
        Some(&json!({"quantity": 7})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"updateCount": 1})));
    assert_eq!(sb.ecwid_stock(ids.mug.ecwid_id(), None), Some(dec!(7)));
    let (status, _) = ecwid(
        &sb,
        Method::PUT,
        &format!("/products/{}", ids.mug.ecwid_id()),
        Some(&json!({"quantity": 2.5})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = ecwid(
        &sb,
        Method::PUT,
        &format!("/products/{}", ids.mug.ecwid_id()),
        Some(&json!({"quantity": "3"})),
    )
    .await;
    assert_eq!(status, 400);

    let l = ids.tshirt.variant("TSHIRT-L").combination_id();
    let path = format!("/products/{}/combinations/{l}", ids.tshirt.ecwid_id());
    let (status, body) = ecwid(&sb, Method::PUT, &path, Some(&json!({"quantity": 0}))).await;
    assert_eq!((status, body), (200, json!({"updateCount": 1})));
    let (_, comb) = ecwid(&sb, Method::GET, &path, None).await;
    assert_eq!(
        (comb["quantity"].as_i64(), comb["inStock"].as_bool()),
        (Some(0), Some(false))
    );
    let (status, body) = ecwid(
        &sb,
        Method::PUT,
        &format!("/products/{}/combinations/1", ids.tshirt.ecwid_id()),
        Some(&json!({"quantity": 1})),
    )
    .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (404, Some("COMBINATION_NOT_FOUND"))
    );
    let (status, _) = ecwid(
        &sb,
        Method::PUT,
        &format!("/products/{}/inventory", ids.mug.ecwid_id()),
        Some(&json!({"quantityDelta": -2})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sb.ecwid_stock(ids.mug.ecwid_id(), None), Some(dec!(5)));
    assert_eq!(sb.counters().ecwid_product_writes, 6);

    let (status, prof) = ecwid(&sb, Method::GET, "/profile", None).await;
    assert_eq!(
        (status, prof["formatsAndUnits"]["currency"].as_str()),
        (200, Some("USD"))
    );

    // Auth and store id.
    let r = client()
        .get(format!("{}/1003/profile", sb.ecwid_api_url()))
        .bearer_auth("secret_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "INVALID_API_TOKEN");
    let r = client()
        .get(format!("{}/1003/profile", sb.ecwid_api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = client()
        .get(format!("{}/999/profile", sb.ecwid_api_url()))
        .bearer_auth(&sb.config().ecwid_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn batch_executes_and_deduplicates() {
    let sb = sandbox().await;
    let ids = sb.ids();
    let s = ids.tshirt.variant("TSHIRT-S").combination_id();
    let reqs = json!([
        {"id": "a", "path": format!("/products/{}", ids.mug.ecwid_id()), "method": "PUT", "body": {"quantity": 11}},
        {"id": "b", "path": format!("/products/{}/combinations/{s}", ids.tshirt.ecwid_id()), "method": "PUT", "body": {"quantity": 4}},
        {"id": "c", "path": "/products/1", "method": "PUT", "body": {"quantity": 4}},
    ]);
    let (status, body) = ecwid(
        &sb,
        Method::POST,
        "/batch?stopOnFirstFailure=false&deduplicationKey=k1",
        Some(&reqs),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ticket = body["ticket"].as_str().unwrap().to_string();
    let (_, result) = ecwid(&sb, Method::GET, &format!("/batch?ticket={ticket}"), None).await;
    assert_eq!(result["status"], "COMPLETED");
    let responses = result["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 3);
    assert_eq!(responses[0]["id"], "a");
    assert_eq!(responses[0]["httpStatusCode"], 200);
    assert_eq!(responses[0]["httpBody"], json!({"updateCount": 1}));
    assert_eq!(responses[2]["httpStatusCode"], 404);
    assert_eq!(sb.ecwid_stock(ids.mug.ecwid_id(), None), Some(dec!(11)));
    assert_eq!(
        sb.ecwid_stock(ids.tshirt.ecwid_id(), Some(s)),
        Some(dec!(4))
    );

    // The same deduplicationKey returns the first ticket and does not run again.
    sb.set_ecwid_stock(ids.mug.ecwid_id(), None, Some(1))
        .unwrap();
    let (_, again) = ecwid(
        &sb,
        Method::POST,
        "/batch?stopOnFirstFailure=false&deduplicationKey=k1",
        Some(&reqs),
    )
    .await;
    assert_eq!(again["ticket"], json!(ticket));
    assert_eq!(sb.ecwid_stock(ids.mug.ecwid_id(), None), Some(dec!(1)));

    // Limits and required parameters.
    let (status, _) = ecwid(&sb, Method::POST, "/batch?deduplicationKey=k2", Some(&reqs)).await;
    assert_eq!(status, 400);
    let too_many: Vec<Value> = (0..501)
        .map(|i| json!({"id": i.to_string(), "path": "/profile", "method": "GET"}))
        .collect();
    let (status, _) = ecwid(
        &sb,
        Method::POST,
        "/batch?stopOnFirstFailure=true",
        Some(&Value::Array(too_many)),
    )
    .await;
    assert_eq!(status, 400);
    // stopOnFirstFailure skips the rest.
    let reqs = json!([
        {"id": "x", "path": "/products/1", "method": "PUT", "body": {"quantity": 1}},
        {"id": "y", "path": format!("/products/{}", ids.mug.ecwid_id()), "method": "PUT", "body": {"quantity": 9}},
    ]);
    let (_, body) = ecwid(
        &sb,
        Method::POST,
        "/batch?stopOnFirstFailure=true",
        Some(&reqs),
    )
    .await;
    let (_, result) = ecwid(
        &sb,
        Method::GET,
        &format!("/batch?ticket={}", body["ticket"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(result["responses"][1]["status"], "NOT_EXECUTED");
    assert_eq!(sb.ecwid_stock(ids.mug.ecwid_id(), None), Some(dec!(1)));
}

#[tokio::test]
async fn a_failed_batch_is_replayed_for_its_key_and_a_queued_one_answers_null_responses() {
    use els_sandbox::{Fault, FaultKind, Route};
    let sb = sandbox().await;
    let mug = sb.ids().mug.ecwid_id();
    let reqs = json!([
        {"id": "0", "path": format!("/products/{mug}"), "method": "PUT", "body": {"quantity": 7}},
    ]);
    let post = |key: &'static str| {
        let (sb, reqs) = (&sb, &reqs);
        async move {
            let path = format!("/batch?stopOnFirstFailure=false&deduplicationKey={key}");
            let (status, body) = ecwid(sb, Method::POST, &path, Some(reqs)).await;
            assert_eq!(status, 200, "{body}");
            body["ticket"].as_str().unwrap().to_string()
        }
    };
    let poll = |ticket: String| {
        let sb = &sb;
        async move {
            let (status, body) =
                ecwid(sb, Method::GET, &format!("/batch?ticket={ticket}"), None).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };

    // The batch fails as a whole: every sub-request FAILED with the status, nothing run.
    sb.inject(Fault::once(Route::EcwidBatch, FaultKind::Status(503)));
    let failed = post("k-failed").await;
    let result = poll(failed.clone()).await;
    assert_eq!(result["status"], "COMPLETED");
    assert_eq!(result["responses"][0]["status"], "FAILED");
    assert_eq!(result["responses"][0]["httpStatusCode"], 503);
    assert_eq!(sb.ecwid_stock(mug, None), Some(dec!(30)));
    // The same key within the hour: the first (failed) result, although no fault is armed.
    assert_eq!(post("k-failed").await, failed);
    assert_eq!(poll(failed).await, result);
    assert_eq!(sb.ecwid_stock(mug, None), Some(dec!(30)));
    // A new key runs it.
    let ok = post("k-fresh").await;
    assert_eq!(poll(ok).await["responses"][0]["httpStatusCode"], 200);
    assert_eq!(sb.ecwid_stock(mug, None), Some(dec!(7)));

    // Queued for 2 polls: QUEUED, then IN_PROGRESS, both with `"responses": null`; the
    // third poll runs it.
    sb.set_ecwid_stock(mug, None, Some(1)).unwrap();
    sb.inject(Fault::once(
        Route::EcwidBatch,
        FaultKind::Queued { polls: 2 },
    ));
    let queued = post("k-queued").await;
    let first = poll(queued.clone()).await;
    assert_eq!(first["status"], "QUEUED");
    assert!(first.as_object().unwrap().contains_key("responses"));
    assert_eq!(first["responses"], Value::Null);
    assert_eq!(first["totalRequests"], 1);
    assert_eq!(
        first.as_object().unwrap().len(),
        4,
        "nothing internal shows: {first}"
    );
    let second = poll(queued.clone()).await;
    assert_eq!(
        (&second["status"], &second["responses"]),
        (&json!("IN_PROGRESS"), &Value::Null)
    );
    assert_eq!(sb.ecwid_stock(mug, None), Some(dec!(1)), "not run yet");
    let done = poll(queued.clone()).await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["responses"][0]["httpStatusCode"], 200);
    assert_eq!(sb.ecwid_stock(mug, None), Some(dec!(7)));
    assert_eq!(poll(queued).await, done, "it ran once");
}
