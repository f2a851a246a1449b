//! The parts of Ecwid's REST v3 order that the rules read.
//!
//! Ecwid sends money as JSON numbers. They are read straight into [`Decimal`] (never f64
//! arithmetic): `rust_decimal` turns the number's shortest decimal form into an exact value,
//! which is the value Ecwid printed. Numeric strings are accepted too. Every field is
//! optional with a neutral default, because Ecwid omits fields freely; the money mapping then
//! reconciles against `total`, so a missing field can never make us post a wrong sale.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

/// Ecwid's only paid status (rule O1).
pub const PAID: &str = "PAID";

use crate::decimal::{decimal_or_zero, opt_decimal};

/// A list Ecwid may send as `null` (e.g. `taxesOnShipping` on old orders) reads as empty.
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// An Ecwid order id as used in `GET /orders/{orderId}`: the string `id` (e.g. `K8XTQ`).
/// Some payloads carry numbers; both are accepted and kept as text.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an id, got {other}"
        ))),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Person {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ItemTax {
    pub name: Option<String>,
    /// The rate in percent (10 = 10%).
    #[serde(deserialize_with = "decimal_or_zero")]
    pub value: Decimal,
    /// The tax amount on the whole line. On an item, Ecwid documents it as
    /// `taxOnDiscountedSubtotal + taxOnShipping`: it contains the item's share of the
    /// shipping (and handling fee) tax, which `taxesOnShipping` lists again.
    #[serde(deserialize_with = "decimal_or_zero")]
    pub total: Decimal,
    /// The tax on the item's subtotal after discounts (items only; absent on old orders).
    #[serde(deserialize_with = "opt_decimal")]
    pub tax_on_discounted_subtotal: Option<Decimal>,
    /// The item's share of the tax on shipping and handling (items only; absent on old
    /// orders).
    #[serde(deserialize_with = "opt_decimal")]
    pub tax_on_shipping: Option<Decimal>,
    pub include_in_price: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ItemDiscount {
    #[serde(deserialize_with = "decimal_or_zero")]
    pub total: Decimal,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderItem {
    pub id: Option<u64>,
    pub product_id: Option<u64>,
    pub combination_id: Option<u64>,
    /// The variation's SKU when the selected options match a variation.
    pub sku: Option<String>,
    pub name: Option<String>,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub quantity: Decimal,
    /// Unit price including option modifiers, before discounts. It includes tax when the
    /// order's `pricesIncludeTax` is true.
    #[serde(deserialize_with = "decimal_or_zero")]
    pub price: Decimal,
    #[serde(deserialize_with = "opt_decimal")]
    pub price_without_tax: Option<Decimal>,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub tax: Decimal,
    pub taxes: Vec<ItemTax>,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub coupon_amount: Decimal,
    pub discounts: Vec<ItemDiscount>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ShippingOption {
    pub shipping_method_name: Option<String>,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub shipping_rate: Decimal,
    #[serde(deserialize_with = "opt_decimal")]
    pub shipping_rate_without_tax: Option<Decimal>,
    pub is_pickup: Option<bool>,
}

/// A handling fee or a custom surcharge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Charge {
    pub name: Option<String>,
    /// The configured value: an amount, or a percentage when `type` is `PERCENT`.
    #[serde(deserialize_with = "decimal_or_zero")]
    pub value: Decimal,
    /// The amount charged on this order, when Ecwid reports it.
    #[serde(deserialize_with = "decimal_or_zero")]
    pub total: Decimal,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Taxes on the charge, in the same shape as an item's.
    pub taxes: Vec<ItemTax>,
}

impl Charge {
    /// The amount the customer paid for this charge: `total` when reported, else an
    /// absolute `value`. A percentage without a `total` cannot be known and reads as None.
    pub fn amount(&self) -> Option<Decimal> {
        if !self.total.is_zero() {
            Some(self.total)
        } else if self
            .kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("PERCENT"))
        {
            if self.value.is_zero() {
                Some(Decimal::ZERO)
            } else {
                None
            }
        } else {
            Some(self.value)
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomDiscount {
    #[serde(deserialize_with = "decimal_or_zero")]
    pub value: Decimal,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub total: Decimal,
}

/// An Ecwid order, as returned by `GET /orders/{orderId}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EcwidOrder {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub internal_id: Option<u64>,
    pub email: Option<String>,
    pub payment_status: Option<String>,
    pub fulfillment_status: Option<String>,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub total: Decimal,
    #[serde(deserialize_with = "opt_decimal")]
    pub total_without_tax: Option<Decimal>,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub subtotal: Decimal,
    /// "The sum of all tax in order items" (Ecwid), so it contains the shipping tax once.
    /// `None` when the order does not say.
    #[serde(deserialize_with = "opt_decimal")]
    pub tax: Option<Decimal>,
    pub prices_include_tax: Option<bool>,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub coupon_discount: Decimal,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub volume_discount: Decimal,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub membership_based_discount: Decimal,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub total_and_membership_based_discount: Decimal,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub discount: Decimal,
    pub custom_discount: Vec<serde_json::Value>,
    pub shipping_option: Option<ShippingOption>,
    pub handling_fee: Option<Charge>,
    pub custom_surcharges: Vec<Charge>,
    #[serde(deserialize_with = "decimal_or_zero")]
    pub gift_card_redemption: Decimal,
    #[serde(deserialize_with = "opt_decimal")]
    pub total_before_gift_card_redemption: Option<Decimal>,
    /// Taxes charged on shipping and handling, per tax: the same amounts as the items'
    /// `taxOnShipping` shares, summed (Ecwid: `(shippingRate + handlingFee) × value / 100`).
    /// `null` on old orders.
    #[serde(deserialize_with = "null_as_empty")]
    pub taxes_on_shipping: Vec<ItemTax>,
    pub billing_person: Option<Person>,
    pub shipping_person: Option<Person>,
    /// The sum of all refunds. Documented as filled for Ecwid's own payment processing; may
    /// be absent for other processors (then the payment status decides).
    #[serde(deserialize_with = "opt_decimal")]
    pub refunded_amount: Option<Decimal>,
    pub create_timestamp: Option<i64>,
    /// The last change, in Unix seconds (a payment, an edit, a refund).
    pub update_timestamp: Option<i64>,
    pub items: Vec<OrderItem>,
}

impl EcwidOrder {
    /// Rule O1: only `PAID` is paid.
    pub fn is_paid(&self) -> bool {
        self.payment_status.as_deref() == Some(PAID)
    }
}

/// `GET /orders` ("Search orders", see "Finding orders without a webhook"): the filters the
/// order sweep and the backfill use. Times are Unix seconds, bounds inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderQuery {
    /// `paymentStatus`, e.g. [`PAID`].
    pub payment_status: Option<String>,
    pub updated_from: Option<i64>,
    pub updated_to: Option<i64>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    pub offset: u64,
    /// At most 100 (Ecwid's page limit).
    pub limit: u32,
}

/// One page of an order search. Ecwid's order within the result is not documented, so the
/// callers depend on none; `total` lets them notice a result set that moved while paging.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderSearchPage {
    pub total: u64,
    pub count: u64,
    pub offset: u64,
    pub items: Vec<OrderSummary>,
}

/// What a search result says of an order: enough to decide whether to look at it. The
/// poster re-fetches the order itself before acting, so nothing else is read here (and an
/// order with odd money fields cannot break a page).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderSummary {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub payment_status: Option<String>,
    pub create_timestamp: Option<i64>,
    pub update_timestamp: Option<i64>,
}

impl OrderSummary {
    pub fn is_paid(&self) -> bool {
        self.payment_status.as_deref() == Some(PAID)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const EXAMPLE: &str = include_str!("../tests/fixtures/ecwid-order-K8XTQ.json");

    #[test]
    fn ecwids_example_order_parses_with_exact_money() {
        let o: EcwidOrder = serde_json::from_str(EXAMPLE).unwrap();
        assert_eq!(o.id, "K8XTQ");
        assert_eq!(o.internal_id, Some(516483487));
        assert!(o.is_paid());
        assert_eq!(o.total, dec!(10));
        assert_eq!(o.total_without_tax, Some(dec!(9.09)));
        assert_eq!(o.tax, Some(dec!(0.91)));
        assert_eq!(
            o.items[0].taxes[0].tax_on_discounted_subtotal,
            Some(dec!(0.91))
        );
        assert_eq!(o.items[0].taxes[0].tax_on_shipping, Some(dec!(0)));
        assert_eq!(o.prices_include_tax, Some(true));
        let item = &o.items[0];
        assert_eq!(item.sku.as_deref(), Some("123123"));
        assert_eq!(item.quantity, dec!(1));
        assert_eq!(item.price_without_tax, Some(dec!(9.09)));
        assert_eq!(item.taxes[0].value, dec!(10));
        assert_eq!(item.taxes[0].total, dec!(0.91));
    }

    #[test]
    fn numbers_and_numeric_strings_are_exact() {
        let o: EcwidOrder = serde_json::from_str(
            r#"{"id": 42, "total": 0.3, "tax": "0.10", "subtotal": 1234567890.12345}"#,
        )
        .unwrap();
        assert_eq!(o.id, "42");
        assert_eq!(o.total, dec!(0.3));
        assert_eq!(o.tax, Some(dec!(0.10)));
        assert_eq!(o.subtotal, dec!(1234567890.12345));
    }
}
