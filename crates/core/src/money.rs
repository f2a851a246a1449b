//! From an Ecwid order to the lines and payment of a Lightspeed sale, in exact decimals.
//!
//! Lightspeed wants, per line, a unit price excluding tax and a tax per unit. Ecwid gives a
//! unit price (tax-inclusive or not) and the line's tax total. For each item:
//!
//! * `gross` = what the customer paid for the line: `price × qty` when the price includes
//!   tax, else `price × qty + line tax`;
//! * `net` = `gross − line tax`.
//!
//! Unit amounts are cents. When `net` or the tax does not divide evenly by the quantity,
//! the line is split in two: `qty − 1` units at the amount rounded toward zero, and **one
//! last unit that carries the remaining cents**. So every line sums exactly to what Ecwid
//! charged, with no fractional cents for Lightspeed to round.
//!
//! Finally the lines must sum to Ecwid's `total` exactly, and the payment equals that total.
//! Anything else parks the order with both totals in the reason: a wrong sale is never posted.

use crate::connection::Connection;
use crate::ecwid::{EcwidOrder, OrderItem};
use crate::ledger::{LedgerLine, OrderKey, Reason, ReasonCode};
use crate::lightspeed::{STATUS_CLOSED, SaleDraft, SaleLine, SalePayment, SaleSetup};
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::HashMap;

/// What the mapping needs besides the order.
pub struct MappingContext<'a> {
    pub connection: &'a Connection,
    pub setup: &'a SaleSetup,
    /// Trimmed SKU → Lightspeed product id, resolved beforehand (P1).
    pub products: &'a HashMap<String, String>,
    /// Used when the order carries no creation time.
    pub now: DateTime<Utc>,
}

/// The SKU an item is linked by: the variation's SKU when a combination matched. Blank SKUs
/// never match anything (P1).
pub fn item_sku(order_id: &str, item: &OrderItem) -> Result<String, Reason> {
    match item.sku.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(Reason::new(
            ReasonCode::BlankSku,
            format!(
                "order {order_id}: item '{}' has a blank SKU; give it a SKU that matches a Lightspeed product",
                item.name.as_deref().unwrap_or("?")
            ),
        )),
    }
}

fn money(d: Decimal) -> String {
    format!("{:.2}", d)
}

/// Refuses orders that use money features the mapping does not post yet. They are parked,
/// never posted with a total that ignores them.
pub fn check_supported(order: &EcwidOrder) -> Result<(), Reason> {
    let unsupported = |what: String| {
        Err(Reason::new(
            ReasonCode::UnsupportedAdjustment,
            format!(
                "order {}: {what} is not supported yet; the order was not posted",
                order.id
            ),
        ))
    };
    let order_discounts = [
        ("coupon discount", order.coupon_discount),
        ("volume discount", order.volume_discount),
        ("membership discount", order.membership_based_discount),
        ("discount", order.discount),
        (
            "total and membership discount",
            order.total_and_membership_based_discount,
        ),
    ];
    for (name, value) in order_discounts {
        if !value.is_zero() {
            return unsupported(format!("a {name} of {}", money(value)));
        }
    }
    if !order.custom_discount.is_empty() {
        return unsupported("a custom discount".into());
    }
    for item in &order.items {
        let item_discount: Decimal = item.discounts.iter().map(|d| d.total).sum();
        if !item.coupon_amount.is_zero() || !item_discount.is_zero() {
            return unsupported(format!(
                "an item discount on '{}'",
                item.name.as_deref().unwrap_or("?")
            ));
        }
    }
    if let Some(ship) = &order.shipping_option
        && !ship.shipping_rate.is_zero()
    {
        return unsupported(format!(
            "shipping of {} ({})",
            money(ship.shipping_rate),
            ship.shipping_method_name.as_deref().unwrap_or("shipping")
        ));
    }
    if let Some(fee) = &order.handling_fee
        && (!fee.value.is_zero() || !fee.total.is_zero())
    {
        return unsupported(format!(
            "a handling fee of {}",
            money(fee.value.max(fee.total))
        ));
    }
    if order
        .custom_surcharges
        .iter()
        .any(|s| !s.value.is_zero() || !s.total.is_zero())
    {
        return unsupported("a custom surcharge".into());
    }
    if !order.gift_card_redemption.is_zero() {
        return unsupported(format!(
            "a gift card redemption of {}",
            money(order.gift_card_redemption)
        ));
    }
    Ok(())
}

/// Splits `amount` over `qty` units in cents: returns `(base, last)` where `qty − 1` units
/// take `base` and one unit takes `last`, with `(qty − 1) × base + last == amount`.
fn split_over_units(amount: Decimal, qty: Decimal) -> (Decimal, Decimal) {
    let base = (amount / qty).round_dp_with_strategy(2, RoundingStrategy::ToZero);
    let last = amount - base * (qty - Decimal::ONE);
    (base, last)
}

/// The Lightspeed lines for one Ecwid item.
fn map_item(
    order: &EcwidOrder,
    item: &OrderItem,
    product_id: &str,
    setup: &SaleSetup,
    sku: &str,
) -> Result<Vec<SaleLine>, Reason> {
    let invalid = |msg: String| {
        Err(Reason::new(
            ReasonCode::InvalidOrder,
            format!("order {}: {msg}", order.id),
        ))
    };
    let qty = item.quantity;
    if qty <= Decimal::ZERO || qty.fract() != Decimal::ZERO {
        return invalid(format!(
            "SKU {sku} has quantity {qty}; expected a positive whole number"
        ));
    }
    if item.price < Decimal::ZERO {
        return invalid(format!("SKU {sku} has a negative price {}", item.price));
    }
    let taxes: Vec<_> = item
        .taxes
        .iter()
        .filter(|t| !t.value.is_zero() || !t.total.is_zero())
        .collect();
    let (tax_id, line_tax, inclusive) = match taxes.as_slice() {
        [] => {
            if !item.tax.is_zero() {
                return invalid(format!(
                    "SKU {sku} has tax {} but no taxes[] detail",
                    item.tax
                ));
            }
            (
                setup.no_tax_group_id.clone(),
                Decimal::ZERO,
                order.prices_include_tax.unwrap_or(false),
            )
        }
        [tax] => {
            let Some(ls_tax) = setup.tax_for_percent(tax.value) else {
                return Err(Reason::new(
                    ReasonCode::TaxNotMapped,
                    format!(
                        "order {}: SKU {sku} is taxed at {}% ('{}') and no Lightspeed tax has that rate",
                        order.id,
                        tax.value.normalize(),
                        tax.name.as_deref().unwrap_or("?")
                    ),
                ));
            };
            let inclusive = tax
                .include_in_price
                .or(order.prices_include_tax)
                .unwrap_or(false);
            (ls_tax.id.clone(), tax.total, inclusive)
        }
        several => {
            let names: Vec<_> = several
                .iter()
                .map(|t| t.name.clone().unwrap_or_default())
                .collect();
            return Err(Reason::new(
                ReasonCode::UnsupportedAdjustment,
                format!(
                    "order {}: SKU {sku} carries several taxes ({}), which is not supported yet",
                    order.id,
                    names.join(", ")
                ),
            ));
        }
    };
    if line_tax < Decimal::ZERO {
        return invalid(format!("SKU {sku} has a negative tax {line_tax}"));
    }
    let gross = if inclusive {
        item.price * qty
    } else {
        item.price * qty + line_tax
    };
    let net = gross - line_tax;
    if net < Decimal::ZERO {
        return invalid(format!(
            "SKU {sku}: tax {line_tax} exceeds the line amount {gross}"
        ));
    }
    let (net_base, net_last) = split_over_units(net, qty);
    let (tax_base, tax_last) = split_over_units(line_tax, qty);
    let line = |quantity: Decimal, price: Decimal, tax: Decimal| SaleLine {
        product_id: product_id.to_string(),
        quantity,
        price,
        tax,
        tax_id: tax_id.clone(),
        discount: Decimal::ZERO,
        price_set: 1,
        status: "CONFIRMED".into(),
        sku: sku.to_string(),
    };
    if net_base == net_last && tax_base == tax_last {
        Ok(vec![line(qty, net_base, tax_base)])
    } else if qty == Decimal::ONE {
        Ok(vec![line(qty, net_last, tax_last)])
    } else {
        // The remainder cents ride on one extra unit line of the same product.
        Ok(vec![
            line(qty - Decimal::ONE, net_base, tax_base),
            line(Decimal::ONE, net_last, tax_last),
        ])
    }
}

fn sale_date(order: &EcwidOrder, now: DateTime<Utc>) -> String {
    order
        .create_timestamp
        .and_then(|ts| DateTime::from_timestamp(ts, 0))
        .unwrap_or(now)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Maps a paid Ecwid order to the `register_sales` body, or says why it must be parked.
pub fn map_order_to_sale(
    order: &EcwidOrder,
    key: &OrderKey,
    ctx: &MappingContext<'_>,
) -> Result<SaleDraft, Reason> {
    if order.items.is_empty() {
        return Err(Reason::new(
            ReasonCode::InvalidOrder,
            format!("order {}: has no items", order.id),
        ));
    }
    check_supported(order)?;
    let mut lines = Vec::new();
    for item in &order.items {
        let sku = item_sku(&order.id, item)?;
        let product_id = ctx.products.get(&sku).ok_or_else(|| {
            Reason::new(
                ReasonCode::UnknownSku,
                format!(
                    "order {}: SKU {sku} is not linked to a Lightspeed product",
                    order.id
                ),
            )
        })?;
        lines.extend(map_item(order, item, product_id, ctx.setup, &sku)?);
    }
    let lines_total: Decimal = lines.iter().map(SaleLine::total).sum();
    if lines_total != order.total {
        return Err(Reason::new(
            ReasonCode::TotalsMismatch,
            format!(
                "order {}: the sale lines sum to {} but the Ecwid total is {}",
                order.id,
                money(lines_total),
                money(order.total)
            ),
        ));
    }
    let date = sale_date(order, ctx.now);
    let conn = ctx.connection;
    Ok(SaleDraft {
        register_id: conn.register_id.clone(),
        user_id: conn.user_id.clone(),
        customer_id: None,
        sale_date: date.clone(),
        status: STATUS_CLOSED.into(),
        note: format!("Ecwid order {}", order.id),
        invoice_number: key.invoice_number(),
        source: "ecwid".into(),
        source_id: key.invoice_number(),
        register_sale_products: lines,
        register_sale_payments: vec![SalePayment {
            register_id: conn.register_id.clone(),
            retailer_payment_type_id: conn.payment_type_id.clone(),
            payment_date: date,
            amount: order.total,
        }],
    })
}

/// The SKUs and quantities of an order, for the ledger (blank SKUs are left out).
pub fn ledger_lines(order: &EcwidOrder) -> Vec<LedgerLine> {
    order
        .items
        .iter()
        .filter_map(|i| {
            let sku = i.sku.as_deref().map(str::trim).filter(|s| !s.is_empty())?;
            Some(LedgerLine {
                sku: sku.to_string(),
                quantity: i.quantity,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{LightspeedAccount, Secret, Settings};
    use crate::lightspeed::LsTax;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn conn() -> Connection {
        Connection {
            store_id: 1003,
            ecwid_token: Secret::new("t"),
            lightspeed: LightspeedAccount {
                domain_prefix: "p".into(),
                access_token: Secret::new("a"),
                refresh_token: None,
                expires_at: None,
            },
            register_id: "reg".into(),
            outlet_id: "out".into(),
            user_id: "usr".into(),
            payment_type_id: "pay".into(),
            shipping_product_id: None,
            discount_product_id: None,
            settings: Settings::default(),
            version: 1,
        }
    }
    fn setup() -> SaleSetup {
        SaleSetup {
            no_tax_group_id: "notax".into(),
            taxes: vec![
                LsTax {
                    id: "gst10".into(),
                    name: "GST".into(),
                    rate: dec!(0.10),
                },
                LsTax {
                    id: "vat20".into(),
                    name: "VAT".into(),
                    rate: dec!(0.2),
                },
            ],
        }
    }
    fn products() -> HashMap<String, String> {
        [("123123", "p-toys"), ("MUG", "p-mug"), ("TEE-M", "p-tee-m")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }
    fn map(order: &EcwidOrder) -> Result<SaleDraft, Reason> {
        let c = conn();
        let s = setup();
        let p = products();
        let ctx = MappingContext {
            connection: &c,
            setup: &s,
            products: &p,
            now: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        };
        map_order_to_sale(order, &OrderKey::new(1003, order.id.clone()), &ctx)
    }
    fn order(json: serde_json::Value) -> EcwidOrder {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn ecwids_example_order_maps_to_one_closed_line_with_exact_totals() {
        let o: EcwidOrder =
            serde_json::from_str(include_str!("../tests/fixtures/ecwid-order-K8XTQ.json")).unwrap();
        let sale = map(&o).unwrap();
        assert_eq!(sale.status, "CLOSED");
        assert_eq!(sale.invoice_number, "ECWID-1003-K8XTQ");
        assert_eq!(sale.sale_date, "2024-09-04T07:22:09Z");
        let l = &sale.register_sale_products;
        assert_eq!(l.len(), 1);
        assert_eq!(
            (
                l[0].product_id.as_str(),
                l[0].quantity,
                l[0].price,
                l[0].tax
            ),
            ("p-toys", dec!(1), dec!(9.09), dec!(0.91))
        );
        assert_eq!(l[0].tax_id, "gst10");
        assert_eq!(sale.total(), dec!(10));
        assert_eq!(sale.payments_total(), dec!(10));
        assert_eq!(
            sale.register_sale_payments[0].retailer_payment_type_id,
            "pay"
        );
    }

    #[test]
    fn tax_exclusive_lines_add_the_tax() {
        let o = order(serde_json::json!({
            "id": "EX1", "total": 26.4, "pricesIncludeTax": false, "paymentStatus": "PAID",
            "items": [{"sku": "MUG", "quantity": 2, "price": 12, "tax": 2.4,
                       "taxes": [{"name": "GST", "value": 10, "total": 2.4, "includeInPrice": false}]}]
        }));
        let sale = map(&o).unwrap();
        let l = &sale.register_sale_products;
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].quantity, l[0].price, l[0].tax),
            (dec!(2), dec!(12), dec!(1.2))
        );
        assert_eq!(sale.total(), dec!(26.4));
    }

    #[test]
    fn uneven_division_puts_the_remaining_cents_on_one_unit() {
        // 3 × 10.00 incl. 20% VAT: line tax 5.00, net 25.00 → 8.33 + 8.33 + 8.34.
        let o = order(serde_json::json!({
            "id": "R1", "total": 30, "pricesIncludeTax": true,
            "items": [{"sku": "TEE-M", "quantity": 3, "price": 10, "tax": 5,
                       "taxes": [{"name": "VAT", "value": 20, "total": 5, "includeInPrice": true}]}]
        }));
        let sale = map(&o).unwrap();
        let l = &sale.register_sale_products;
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].quantity, l[0].price, l[0].tax),
            (dec!(2), dec!(8.33), dec!(1.66))
        );
        assert_eq!(
            (l[1].quantity, l[1].price, l[1].tax),
            (dec!(1), dec!(8.34), dec!(1.68))
        );
        assert_eq!(sale.total(), dec!(30));
    }

    #[test]
    fn untaxed_items_use_the_no_tax_group() {
        let o = order(serde_json::json!({
            "id": "U1", "total": 7.5, "items": [{"sku": "MUG", "quantity": 1, "price": 7.5, "taxes": []}]
        }));
        let sale = map(&o).unwrap();
        assert_eq!(sale.register_sale_products[0].tax_id, "notax");
        assert_eq!(sale.register_sale_products[0].tax, dec!(0));
    }

    #[test]
    fn unsupported_money_features_park_with_a_reason() {
        for (field, value) in [
            ("couponDiscount", serde_json::json!(1)),
            (
                "shippingOption",
                serde_json::json!({"shippingMethodName": "UPS", "shippingRate": 5}),
            ),
            (
                "handlingFee",
                serde_json::json!({"name": "Wrap", "value": 2}),
            ),
            ("giftCardRedemption", serde_json::json!(3)),
            (
                "customSurcharges",
                serde_json::json!([{"name": "x", "value": 1, "total": 1}]),
            ),
        ] {
            let mut j = serde_json::json!({"id": "D1", "total": 10,
                "items": [{"sku": "MUG", "quantity": 1, "price": 10}]});
            j[field] = value;
            let err = map(&order(j)).unwrap_err();
            assert_eq!(err.code, ReasonCode::UnsupportedAdjustment, "{field}");
            assert!(err.message.contains("D1"));
        }
        // Free pickup is not a charge.
        let o = order(
            serde_json::json!({"id": "P1", "total": 10, "shippingOption": {"isPickup": true, "shippingRate": 0},
            "items": [{"sku": "MUG", "quantity": 1, "price": 10}]}),
        );
        assert!(map(&o).is_ok());
    }

    #[test]
    fn blank_unknown_sku_and_unmapped_tax_park() {
        let o = order(
            serde_json::json!({"id": "B1", "total": 1, "items": [{"sku": "  ", "quantity": 1, "price": 1}]}),
        );
        assert_eq!(map(&o).unwrap_err().code, ReasonCode::BlankSku);
        let o = order(
            serde_json::json!({"id": "B2", "total": 1, "items": [{"sku": "NOPE", "quantity": 1, "price": 1}]}),
        );
        assert_eq!(map(&o).unwrap_err().code, ReasonCode::UnknownSku);
        let o = order(
            serde_json::json!({"id": "B3", "total": 1.07, "pricesIncludeTax": false,
            "items": [{"sku": "MUG", "quantity": 1, "price": 1, "taxes": [{"name": "odd", "value": 7, "total": 0.07}]}]}),
        );
        let err = map(&o).unwrap_err();
        assert_eq!(err.code, ReasonCode::TaxNotMapped);
        assert!(err.message.contains("7%"));
    }

    #[test]
    fn a_total_that_does_not_reconcile_parks_with_both_totals() {
        let o = order(
            serde_json::json!({"id": "T1", "total": 10.01, "items": [{"sku": "MUG", "quantity": 1, "price": 10}]}),
        );
        let err = map(&o).unwrap_err();
        assert_eq!(err.code, ReasonCode::TotalsMismatch);
        assert!(
            err.message.contains("10.00") && err.message.contains("10.01"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_quantities_are_invalid() {
        for q in [
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(1.5),
        ] {
            let o = order(
                serde_json::json!({"id": "Q", "total": 1, "items": [{"sku": "MUG", "quantity": q, "price": 1}]}),
            );
            assert_eq!(map(&o).unwrap_err().code, ReasonCode::InvalidOrder);
        }
    }

    proptest! {
        /// Whatever the prices, quantities, rates and inclusivity: the sale is either posted
        /// with lines and payment equal to Ecwid's total to the cent, or parked.
        #[test]
        fn posted_sales_always_equal_the_ecwid_total(
            items in proptest::collection::vec((1u32..20, 0u32..100_000, prop_oneof![Just(0u32), Just(10), Just(20)]), 1..6),
            inclusive in any::<bool>(),
            total_skew in prop_oneof![Just(0i64), -3i64..3],
        ) {
            let mut total = Decimal::ZERO;
            let mut json_items = Vec::new();
            for (qty, cents, rate) in &items {
                let price = Decimal::new(*cents as i64, 2);
                let q = Decimal::from(*qty);
                let line = price * q;
                let tax = if inclusive {
                    (line - line / (Decimal::ONE + Decimal::from(*rate) / Decimal::ONE_HUNDRED)).round_dp(2)
                } else {
                    (line * Decimal::from(*rate) / Decimal::ONE_HUNDRED).round_dp(2)
                };
                total += if inclusive { line } else { line + tax };
                let taxes = if *rate == 0 { serde_json::json!([]) } else {
                    serde_json::json!([{"name": "t", "value": rate, "total": tax.to_string(), "includeInPrice": inclusive}])
                };
                json_items.push(serde_json::json!({"sku": "MUG", "quantity": qty, "price": price.to_string(), "taxes": taxes}));
            }
            let ecwid_total = total + Decimal::new(total_skew, 2);
            let o = order(serde_json::json!({"id": "PROP", "total": ecwid_total.to_string(),
                "pricesIncludeTax": inclusive, "items": json_items}));
            match map(&o) {
                Ok(sale) => {
                    prop_assert_eq!(sale.total(), o.total);
                    prop_assert_eq!(sale.payments_total(), o.total);
                    for l in &sale.register_sale_products {
                        prop_assert!(l.price >= Decimal::ZERO && l.tax >= Decimal::ZERO);
                        prop_assert!(l.price.scale() <= 2 && l.tax.scale() <= 2);
                    }
                }
                Err(reason) => {
                    prop_assert_eq!(reason.code, ReasonCode::TotalsMismatch);
                    prop_assert!(total_skew != 0);
                }
            }
        }
    }
}
