//! Ecwid's documented order-money identities, checked on many generated sandbox orders placed
//! through the admin API and fetched through the sandbox's Ecwid API
//! (`GET /api/v3/{store}/orders/{id}`).
//!
//! Documented (Ecwid's order reference, "Taxes on shipping and handling"):
//! - `tax` is the sum of all tax in order items;
//! - an item tax's `total = taxOnDiscountedSubtotal + taxOnShipping`;
//! - `taxesOnShipping[]` lists the same shipping tax again, summed per tax, computed as
//!   `(shippingRate + handlingFee) * value / 100`; `[]` when only the subtotal is taxed;
//! - `total` counts the shipping tax once.
//!
//! The sandbox's own rules (ASSUMPTIONS, README "The sandbox") are checked too: how amounts are
//! split over items, tax-inclusive shipping, and the two handling-fee readings.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::*;
use els_sandbox::{ProductSpec, Sandbox, SandboxConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

const RATES: [u32; 6] = [0, 5, 7, 10, 12, 20];
const ORDERS_PER_READING: usize = 400;

fn d(v: &Value) -> Decimal {
    assert!(v.is_number(), "money is a JSON number: {v}");
    v.to_string().parse().unwrap()
}

/// A JSON amount that may be absent (absent = 0).
fn d0(v: &Value) -> Decimal {
    if v.is_null() { Decimal::ZERO } else { d(v) }
}

fn r2(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

async fn sandbox_reading(fee_in_items: bool) -> Sandbox {
    sandbox_with(SandboxConfig {
        handling_fee_tax_in_items: fee_in_items,
        ecwid_rate_limit: 1_000_000,
        ..SandboxConfig::default()
    })
    .await
}

/// Place an order from its spec JSON through the admin API; returns (HTTP status, body).
async fn admin_place(sb: &Sandbox, spec: &Value) -> (u16, Value) {
    let r = http()
        .post(format!("{}/orders", sb.admin_url()))
        .json(spec)
        .send()
        .await
        .expect("admin request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// One HTTP client for every request of the test binary (a new client per request is slow).
fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(client)
}

/// Place an order and fetch it back through the Ecwid API (`GET /api/v3/{store}/orders/{id}`).
async fn place_and_fetch(sb: &Sandbox, spec: &Value) -> Value {
    let (status, body) = admin_place(sb, spec).await;
    assert_eq!(status, 200, "order spec {spec} refused: {body}");
    let id = body["orderId"].as_str().expect("an order id");
    let r = http()
        .get(format!(
            "{}/{}/orders/{id}",
            sb.ecwid_api_url(),
            sb.config().ecwid_store_id
        ))
        .bearer_auth(&sb.config().ecwid_token)
        .send()
        .await
        .expect("ecwid request");
    assert_eq!(r.status().as_u16(), 200, "GET /orders/{id}");
    r.json().await.expect("an order")
}

/// A tax an item can carry: its name in the order, its percent, and its spec JSON.
#[derive(Clone, Debug)]
struct TaxRef {
    name: String,
    percent: Decimal,
    spec: Value,
}

impl TaxRef {
    /// The store's tax for a product of this rate ("5% Tax"...).
    fn store(rate: u32) -> TaxRef {
        TaxRef {
            name: format!("{rate}% Tax"),
            percent: Decimal::from(rate),
            spec: json!({"percent": rate}),
        }
    }

    fn named(name: &str, rate: u32) -> TaxRef {
        TaxRef {
            name: name.into(),
            percent: Decimal::from(rate),
            spec: json!({"name": name, "percent": rate}),
        }
    }
}

struct Product {
    sku: String,
    excl: Decimal,
    tax: Option<TaxRef>,
}

/// Products of every rate, at random prices (Ecwid side only, unlimited stock).
fn add_catalog(sb: &Sandbox, rng: &mut StdRng) -> Vec<Product> {
    let mut out = Vec::new();
    for rate in RATES {
        for k in 0..3 {
            let sku = format!("ID-{rate}-{k}");
            let excl = Decimal::new(rng.random_range(1..5000), 2);
            sb.add_ecwid_product_only(ProductSpec {
                sku: sku.clone(),
                name: format!("Identity {rate}% #{k}"),
                price_excl_tax: excl,
                tax_percent: (rate > 0).then(|| Decimal::from(rate)),
                ..ProductSpec::default()
            });
            out.push(Product {
                sku,
                excl,
                tax: (rate > 0).then(|| TaxRef::store(rate)),
            });
        }
    }
    out
}

/// A generated order: its spec JSON and what the checks need to know about it.
struct Generated {
    spec: Value,
    include: bool,
    pickup: bool,
    ship_taxes: Vec<TaxRef>,
    fee_taxes: Vec<TaxRef>,
}

fn subset(rng: &mut StdRng, from: &[TaxRef], non_empty: bool) -> Vec<TaxRef> {
    let mut out: Vec<TaxRef> = from
        .iter()
        .filter(|_| rng.random_bool(0.6))
        .cloned()
        .collect();
    if out.is_empty() && non_empty && !from.is_empty() {
        out.push(from[rng.random_range(0..from.len())].clone());
    }
    out
}

fn generate(rng: &mut StdRng, catalog: &[Product]) -> Generated {
    let include = rng.random_bool(0.5);
    let (gst, pst) = (TaxRef::named("GST", 5), TaxRef::named("PST", 7));
    let mut items = Vec::new();
    let mut carried: Vec<TaxRef> = Vec::new();
    let mut net_floor = Decimal::ZERO;
    for _ in 0..rng.random_range(1..=4) {
        let p = &catalog[rng.random_range(0..catalog.len())];
        let q = rng.random_range(1..=3u32);
        let mut item = json!({"sku": p.sku, "quantity": q});
        let taxes: Vec<TaxRef> = match rng.random_range(0..10) {
            0 | 1 => {
                item["taxes"] = json!([gst.spec, pst.spec]);
                vec![gst.clone(), pst.clone()]
            }
            2 => {
                item["taxes"] = json!([]);
                Vec::new()
            }
            _ => p.tax.iter().cloned().collect(),
        };
        for t in taxes {
            if !carried.iter().any(|c| c.name == t.name) {
                carried.push(t);
            }
        }
        net_floor += p.excl * Decimal::from(q);
        items.push(item);
    }
    let mut spec = json!({
        "items": items,
        "prices_include_tax": include,
        "email": "identity@example.com",
        "first_name": "Ida",
        "last_name": "Entity",
    });
    let rate = |rng: &mut StdRng| Decimal::new(rng.random_range(1..3000), 2);
    let mut ship_taxes = Vec::new();
    let mut pickup = false;
    match rng.random_range(0..6) {
        0 => {}
        1 => spec["shipping"] = json!({"method_name": "Untaxed", "rate": rate(rng)}),
        2 => {
            spec["shipping"] = json!({"method_name": "Taxed", "rate": rate(rng)});
            ship_taxes = subset(rng, &carried, true);
        }
        3 => {
            spec["shipping"] = json!({"method_name": "Free", "rate": 0});
            ship_taxes = subset(rng, &carried, true);
        }
        4 => pickup = true,
        _ => {
            pickup = true;
            spec["shipping"] = json!({"method_name": "Pickup fee", "rate": rate(rng)});
            ship_taxes = subset(rng, &carried, false);
        }
    }
    spec["pickup"] = json!(pickup);
    spec["shipping_taxes"] = Value::Array(ship_taxes.iter().map(|t| t.spec.clone()).collect());
    let mut fee_taxes = Vec::new();
    match rng.random_range(0..3) {
        0 => {}
        1 => spec["handling_fee"] = json!({"name": "Handling", "value": rate(rng)}),
        _ => {
            fee_taxes = subset(rng, &carried, true);
            spec["handling_fee"] = json!({
                "name": "Handling",
                "value": rate(rng),
                "taxes": fee_taxes.iter().map(|t| t.spec.clone()).collect::<Vec<_>>(),
            });
        }
    }
    if rng.random_bool(0.3) {
        let cents = (net_floor * dec!(100)).trunc();
        let max = cents.to_i64().unwrap_or(0);
        spec["coupon_amount"] = json!(Decimal::new(rng.random_range(0..=max), 2).to_string());
    }
    Generated {
        spec,
        include,
        pickup,
        ship_taxes,
        fee_taxes,
    }
}

/// What kinds of orders the checks saw (so the generator is known to cover them).
#[derive(Default, Debug)]
struct Seen {
    inclusive: usize,
    shipping_tax: usize,
    fee_tax_in_items: usize,
    fee_tax_outside: usize,
    coupon: usize,
    gst_pst_on_shipping: usize,
    pickup: usize,
    multi_item_shipping_tax: usize,
}

/// Check one fetched order against Ecwid's identities and the sandbox's documented rules.
fn check(o: &Value, g: &Generated, fee_in_items: bool, seen: &mut Seen) {
    let ctx = format!("spec {}\norder {o:#}", g.spec);
    let include = o["pricesIncludeTax"].as_bool().unwrap();
    assert_eq!(include, g.include, "{ctx}");
    let hundred = Decimal::ONE_HUNDRED;

    let mut item_tax_sum = Decimal::ZERO;
    let mut subtotal = Decimal::ZERO;
    let mut coupon_sum = Decimal::ZERO;
    let mut ship_sum = Decimal::ZERO;
    let mut exclusive_taxes = Decimal::ZERO;
    let mut on_shipping: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut carriers: BTreeMap<String, usize> = BTreeMap::new();
    for item in o["items"].as_array().unwrap() {
        let q = d(&item["quantity"]);
        let price = d(&item["price"]);
        let coupon = d(&item["couponAmount"]);
        subtotal += price * q;
        coupon_sum += coupon;
        ship_sum += d(&item["shipping"]);
        let taxes = item["taxes"].as_array().unwrap();
        let rates: Decimal = taxes.iter().map(|t| d(&t["value"])).sum();
        let discounted = price * q - coupon;
        let mut totals = Decimal::ZERO;
        for t in taxes {
            let name = t["name"].as_str().unwrap().to_string();
            let (total, on_sub, on_ship) = (
                d(&t["total"]),
                d(&t["taxOnDiscountedSubtotal"]),
                d(&t["taxOnShipping"]),
            );
            // Documented: an item tax's total includes its share of the shipping tax.
            assert_eq!(total, on_sub + on_ship, "taxes[].total of {name}\n{ctx}");
            assert_eq!(t["includeInPrice"], json!(include), "{ctx}");
            // The sandbox's rule: tax on the discounted line subtotal.
            let r = d(&t["value"]);
            let expected = if include {
                r2(discounted * r / (hundred + rates))
            } else {
                r2(discounted * r / hundred)
            };
            assert_eq!(on_sub, expected, "taxOnDiscountedSubtotal of {name}\n{ctx}");
            *on_shipping.entry(name.clone()).or_default() += on_ship;
            *carriers.entry(name).or_default() += 1;
            totals += total;
        }
        // The sandbox's choice: item tax = the sum of its taxes' totals (line totals).
        assert_eq!(d(&item["tax"]), totals, "item tax\n{ctx}");
        item_tax_sum += totals;
        if !include {
            exclusive_taxes += totals;
        }
    }
    let tax = d(&o["tax"]);
    // Documented: the order's tax is the sum of all tax in order items.
    assert_eq!(tax, item_tax_sum, "order tax = sum of item taxes\n{ctx}");
    assert_eq!(d(&o["subtotal"]), subtotal, "subtotal\n{ctx}");
    let coupon = d(&o["couponDiscount"]);
    assert_eq!(coupon_sum, coupon, "coupon split onto items\n{ctx}");

    let so = &o["shippingOption"];
    let ship = d0(&so["shippingRate"]);
    assert_eq!(ship_sum, ship, "items' shipping shares\n{ctx}");
    if g.pickup {
        assert_eq!(so["isPickup"], json!(true), "{ctx}");
        assert_eq!(so["fulfillmentType"], "PICKUP", "{ctx}");
        seen.pickup += 1;
    } else if !so.is_null() {
        assert_eq!(so["isPickup"], json!(false), "{ctx}");
    }
    let fee = &o["handlingFee"];
    let fee_value = d0(&fee["value"]);
    let fee_tax: Decimal = fee["taxes"]
        .as_array()
        .map(|ts| ts.iter().map(|t| d(&t["total"])).sum())
        .unwrap_or_default();
    let outside = if fee_in_items { Decimal::ZERO } else { fee_tax };
    if !include {
        exclusive_taxes += outside;
    }
    let total = d(&o["total"]);
    // Documented: total = subtotal after discounts + shipping + fee + exclusive taxes, the
    // shipping tax counted once.
    assert_eq!(
        total,
        subtotal - coupon + ship + fee_value + exclusive_taxes,
        "total\n{ctx}"
    );
    assert_eq!(
        d(&o["totalWithoutTax"]),
        total - tax - outside,
        "totalWithoutTax\n{ctx}"
    );

    // taxesOnShipping: per tax, the sum of the items' taxOnShipping (documented: the same
    // shipping tax listed again).
    let tos: BTreeMap<String, (Decimal, Decimal)> = o["taxesOnShipping"]
        .as_array()
        .expect("taxesOnShipping is an array")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                (d(&t["value"]), d(&t["total"])),
            )
        })
        .collect();
    for (name, sum) in &on_shipping {
        let listed = tos.get(name).map(|x| x.1).unwrap_or_default();
        assert_eq!(*sum, listed, "taxesOnShipping of {name}\n{ctx}");
    }
    // The documented formula `(shippingRate + handlingFee) * value / 100` (exclusive); the
    // tax-inclusive reading is the sandbox's ASSUMPTION.
    let ship_rates: Decimal = g.ship_taxes.iter().map(|t| t.percent).sum();
    let fee_rates: Decimal = g.fee_taxes.iter().map(|t| t.percent).sum();
    let mut expected_names = Vec::new();
    for t in g.ship_taxes.iter().chain(&g.fee_taxes) {
        if expected_names.contains(&t.name) {
            continue;
        }
        let s = if g.ship_taxes.iter().any(|x| x.name == t.name) {
            ship
        } else {
            Decimal::ZERO
        };
        let h = if fee_in_items && g.fee_taxes.iter().any(|x| x.name == t.name) {
            fee_value
        } else {
            Decimal::ZERO
        };
        if (s + h).is_zero() {
            continue;
        }
        expected_names.push(t.name.clone());
        let expected = if include {
            r2(s * t.percent / (hundred + ship_rates) + h * t.percent / (hundred + fee_rates))
        } else {
            r2((s + h) * t.percent / hundred)
        };
        let (value, listed) = tos
            .get(&t.name)
            .unwrap_or_else(|| panic!("{} missing from taxesOnShipping\n{ctx}", t.name));
        assert_eq!(*value, t.percent, "{ctx}");
        assert_eq!(
            *listed, expected,
            "taxesOnShipping formula for {}\n{ctx}",
            t.name
        );
        if !listed.is_zero() {
            seen.shipping_tax += 1;
            if carriers.get(&t.name).copied().unwrap_or(0) > 1 {
                seen.multi_item_shipping_tax += 1;
            }
            if t.name == "GST" || t.name == "PST" {
                seen.gst_pst_on_shipping += 1;
            }
        }
    }
    assert_eq!(
        tos.len(),
        expected_names.len(),
        "taxesOnShipping lists only taxed shipping/handling ([] when only the subtotal is \
         taxed)\n{ctx}"
    );
    // The fee's own taxes.
    for t in &g.fee_taxes {
        let listed = fee["taxes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == t.name.as_str())
            .unwrap_or_else(|| panic!("{} missing from handlingFee.taxes\n{ctx}", t.name));
        let expected = if include {
            r2(fee_value * t.percent / (hundred + fee_rates))
        } else {
            r2(fee_value * t.percent / hundred)
        };
        assert_eq!(d(&listed["total"]), expected, "handlingFee tax\n{ctx}");
        if !expected.is_zero() {
            if fee_in_items {
                seen.fee_tax_in_items += 1;
            } else {
                seen.fee_tax_outside += 1;
            }
        }
    }
    if !fee.is_null() {
        let expected = if include {
            fee_value - fee_tax
        } else {
            fee_value
        };
        assert_eq!(d(&fee["valueWithoutTax"]), expected, "{ctx}");
    }
    if include {
        seen.inclusive += 1;
    }
    if !coupon.is_zero() {
        seen.coupon += 1;
    }
}

async fn generated_orders_follow_the_identities(fee_in_items: bool, seed: u64) {
    let sb = sandbox_reading(fee_in_items).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let catalog = add_catalog(&sb, &mut rng);
    let mut seen = Seen::default();
    for _ in 0..ORDERS_PER_READING {
        let g = generate(&mut rng, &catalog);
        let o = place_and_fetch(&sb, &g.spec).await;
        check(&o, &g, fee_in_items, &mut seen);
    }
    eprintln!("handling_fee_tax_in_items = {fee_in_items}: {seen:?}");
    // The generator covered every kind of order.
    assert!(seen.inclusive > 0, "{seen:?}");
    assert!(seen.shipping_tax > 10, "{seen:?}");
    assert!(seen.coupon > 0, "{seen:?}");
    assert!(seen.gst_pst_on_shipping > 0, "{seen:?}");
    assert!(seen.pickup > 0, "{seen:?}");
    assert!(seen.multi_item_shipping_tax > 0, "{seen:?}");
    if fee_in_items {
        assert!(seen.fee_tax_in_items > 0, "{seen:?}");
    } else {
        assert!(seen.fee_tax_outside > 0, "{seen:?}");
    }
}

#[tokio::test]
async fn generated_orders_fee_tax_in_items() {
    generated_orders_follow_the_identities(true, 0x5eed_0010).await;
}

#[tokio::test]
async fn generated_orders_fee_tax_only_in_the_fee() {
    generated_orders_follow_the_identities(false, 0x5eed_0011).await;
}

fn one_item(sb: &Sandbox, sku: &str, excl: Decimal, pct: u32) {
    sb.add_ecwid_product_only(ProductSpec {
        sku: sku.into(),
        name: sku.into(),
        price_excl_tax: excl,
        tax_percent: Some(Decimal::from(pct)),
        ..ProductSpec::default()
    });
}

/// Ecwid's worked case: one item 10.00 with 10% tax (exclusive), shipping 5.00 taxed at 10%.
#[tokio::test]
async fn the_documented_worked_case() {
    let sb = sandbox().await;
    one_item(&sb, "WORKED", dec!(10), 10);
    let o = place_and_fetch(
        &sb,
        &json!({
            "items": [{"sku": "WORKED", "quantity": 1}],
            "shipping": {"method_name": "Flat", "rate": 5},
            "shipping_taxes": [{"percent": 10}],
        }),
    )
    .await;
    let t = &o["items"][0]["taxes"][0];
    assert_eq!(t["name"], "10% Tax");
    assert_eq!(d(&t["taxOnDiscountedSubtotal"]), dec!(1.00));
    assert_eq!(d(&t["taxOnShipping"]), dec!(0.50));
    assert_eq!(d(&t["total"]), dec!(1.50));
    assert_eq!(d(&o["items"][0]["tax"]), dec!(1.50));
    assert_eq!(d(&o["items"][0]["shipping"]), dec!(5));
    assert_eq!(
        o["taxesOnShipping"],
        json!([{"name": "10% Tax", "value": 10, "total": 0.5}])
    );
    assert_eq!(d(&o["tax"]), dec!(1.50));
    assert_eq!(d(&o["total"]), dec!(16.50));
    assert_eq!(d(&o["totalWithoutTax"]), dec!(15.00));
    assert_eq!(d(&o["shippingOption"]["shippingRateWithoutTax"]), dec!(5));
    assert!(o.get("handlingFee").is_none());
}

/// The same case in a tax-inclusive store (ASSUMPTION: the shipping rate includes its tax).
#[tokio::test]
async fn the_worked_case_tax_inclusive() {
    let sb = sandbox().await;
    one_item(&sb, "WORKED", dec!(10), 10);
    let o = place_and_fetch(
        &sb,
        &json!({
            "items": [{"sku": "WORKED", "quantity": 1}],
            "prices_include_tax": true,
            "shipping": {"method_name": "Flat", "rate": 5.5},
            "shipping_taxes": [{"percent": 10}],
        }),
    )
    .await;
    assert_eq!(d(&o["items"][0]["price"]), dec!(11));
    assert_eq!(d(&o["items"][0]["taxes"][0]["total"]), dec!(1.50));
    assert_eq!(d(&o["taxesOnShipping"][0]["total"]), dec!(0.50));
    assert_eq!(d(&o["shippingOption"]["shippingRateWithoutTax"]), dec!(5));
    assert_eq!(d(&o["tax"]), dec!(1.50));
    assert_eq!(d(&o["total"]), dec!(16.50));
    assert_eq!(d(&o["totalWithoutTax"]), dec!(15));
}

/// A taxed handling fee under both readings of `handling_fee_tax_in_items`.
#[tokio::test]
async fn a_taxed_handling_fee_under_both_readings() {
    let spec = json!({
        "items": [{"sku": "WORKED", "quantity": 1}],
        "shipping": {"method_name": "Flat", "rate": 5},
        "shipping_taxes": [{"percent": 10}],
        "handling_fee": {"name": "Handling", "value": 2, "taxes": [{"percent": 10}]},
    });
    // Default: the fee's tax is inside the items and taxesOnShipping, per
    // `(shippingRate + handlingFee) * value / 100` = 7 x 10% = 0.70.
    let sb = sandbox_reading(true).await;
    one_item(&sb, "WORKED", dec!(10), 10);
    let o = place_and_fetch(&sb, &spec).await;
    assert_eq!(d(&o["items"][0]["taxes"][0]["taxOnShipping"]), dec!(0.70));
    assert_eq!(d(&o["taxesOnShipping"][0]["total"]), dec!(0.70));
    assert_eq!(d(&o["tax"]), dec!(1.70));
    assert_eq!(
        o["handlingFee"],
        json!({"name": "Handling", "value": 2, "valueWithoutTax": 2, "description": "",
               "taxes": [{"name": "10% Tax", "value": 10, "total": 0.2}]})
    );
    assert_eq!(d(&o["total"]), dec!(18.70));
    assert_eq!(d(&o["totalWithoutTax"]), dec!(17));

    // The other reading: the fee's tax only in handlingFee.taxes, added to total separately.
    let sb = sandbox_reading(false).await;
    one_item(&sb, "WORKED", dec!(10), 10);
    let o = place_and_fetch(&sb, &spec).await;
    assert_eq!(d(&o["items"][0]["taxes"][0]["taxOnShipping"]), dec!(0.50));
    assert_eq!(d(&o["taxesOnShipping"][0]["total"]), dec!(0.50));
    assert_eq!(d(&o["tax"]), dec!(1.50));
    assert_eq!(d(&o["handlingFee"]["taxes"][0]["total"]), dec!(0.20));
    assert_eq!(d(&o["total"]), dec!(18.70));
    assert_eq!(d(&o["totalWithoutTax"]), dec!(17));
}

/// GST + PST on an item and on shipping; shipping tax split over two items.
#[tokio::test]
async fn gst_and_pst_tax_shipping_and_split_over_items() {
    let sb = sandbox().await;
    one_item(&sb, "BIG", dec!(30), 10);
    one_item(&sb, "SMALL", dec!(10), 10);
    let gst_pst = json!([{"name": "GST", "percent": 5}, {"name": "PST", "percent": 7}]);
    let o = place_and_fetch(
        &sb,
        &json!({
            "items": [
                {"sku": "BIG", "quantity": 1, "taxes": gst_pst},
                {"sku": "SMALL", "quantity": 1, "taxes": gst_pst},
            ],
            "shipping": {"method_name": "Flat", "rate": 5},
            "shipping_taxes": gst_pst,
        }),
    )
    .await;
    // GST on shipping 0.25 -> 0.19 (3/4, rounded) + 0.06; PST 0.35 -> 0.26 + 0.09.
    let big = &o["items"][0]["taxes"];
    let small = &o["items"][1]["taxes"];
    assert_eq!(d(&big[0]["taxOnDiscountedSubtotal"]), dec!(1.50));
    assert_eq!(d(&big[0]["taxOnShipping"]), dec!(0.19));
    assert_eq!(d(&small[0]["taxOnShipping"]), dec!(0.06));
    assert_eq!(d(&big[1]["taxOnShipping"]), dec!(0.26));
    assert_eq!(d(&small[1]["taxOnShipping"]), dec!(0.09));
    assert_eq!(d(&o["items"][0]["shipping"]), dec!(3.75));
    assert_eq!(d(&o["items"][1]["shipping"]), dec!(1.25));
    assert_eq!(
        o["taxesOnShipping"],
        json!([{"name": "GST", "value": 5, "total": 0.25},
               {"name": "PST", "value": 7, "total": 0.35}])
    );
    // 40 + 5 + GST 2.25 + PST 3.15.
    assert_eq!(d(&o["tax"]), dec!(5.40));
    assert_eq!(d(&o["total"]), dec!(50.40));
}

#[tokio::test]
async fn pickup_coupon_and_free_shipping() {
    let sb = sandbox().await;
    one_item(&sb, "WORKED", dec!(10), 10);
    let o = place_and_fetch(
        &sb,
        &json!({
            "items": [{"sku": "WORKED", "quantity": 2}],
            "pickup": true,
            "coupon_amount": 5,
            "shipping_taxes": [{"percent": 10}],
        }),
    )
    .await;
    let so = &o["shippingOption"];
    assert_eq!(so["isPickup"], json!(true));
    assert_eq!(so["fulfillmentType"], "PICKUP");
    assert_eq!(d(&so["shippingRate"]), Decimal::ZERO);
    assert_eq!(o["taxesOnShipping"], json!([]));
    assert_eq!(d(&o["couponDiscount"]), dec!(5));
    assert_eq!(d(&o["discountCoupon"]["discount"]), dec!(5));
    assert_eq!(d(&o["items"][0]["couponAmount"]), dec!(5));
    assert_eq!(o["items"][0]["couponApplied"], json!(true));
    // 20 - 5 = 15 taxed at 10%.
    assert_eq!(d(&o["tax"]), dec!(1.50));
    assert_eq!(d(&o["subtotal"]), dec!(20));
    assert_eq!(d(&o["total"]), dec!(16.50));
}

/// Old spec JSON keeps working unchanged; invalid new fields are refused.
#[tokio::test]
async fn old_specs_unchanged_and_bad_specs_refused() {
    let sb = sandbox().await;
    let o = place_and_fetch(
        &sb,
        &json!({
            "items": [{"sku": "MUG-001", "quantity": 1}],
            "email": "a@b.c",
            "shipping": {"method_name": "Flat", "rate": 5},
        }),
    )
    .await;
    // 12.00 + 10% + untaxed shipping 5.00.
    assert_eq!(d(&o["tax"]), dec!(1.20));
    assert_eq!(d(&o["total"]), dec!(18.20));
    assert_eq!(o["taxesOnShipping"], json!([]));
    assert_eq!(
        d(&o["items"][0]["taxes"][0]["taxOnShipping"]),
        Decimal::ZERO
    );
    assert_eq!(o["shippingOption"]["isPickup"], json!(false));
    assert!(o.get("handlingFee").is_none());
    assert!(o.get("discountCoupon").is_none());

    for (bad, why) in [
        (
            json!({"items": [{"sku": "STICKER-01", "quantity": 1}],
                   "shipping": {"method_name": "Flat", "rate": 5},
                   "shipping_taxes": [{"percent": 10}]}),
            "a shipping tax no item carries",
        ),
        (
            json!({"items": [{"sku": "MUG-001", "quantity": 1}], "coupon_amount": 13}),
            "a coupon above the subtotal",
        ),
        (
            json!({"items": [{"sku": "MUG-001", "quantity": 1}],
                   "shipping": {"method_name": "Flat", "rate": 5},
                   "shipping_taxes": [{"name": "10% Tax", "percent": 7}]}),
            "a shipping tax at another rate than the items'",
        ),
    ] {
        let (status, body) = admin_place(&sb, &bad).await;
        assert_eq!(status, 400, "{why}: {body}");
    }
}
