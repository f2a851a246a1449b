//! Our sale in the 2026-07 wire format (`POST /api/2026-07/sales`, `SaleRequest`).
//!
//! One pure function per generation: the legacy body is [`SaleDraft`] itself (it serialises
//! as `POST /api/register_sales` wants), the dated one is [`sale_request`]. Both carry the
//! same lines, unit prices, unit taxes and payments, so both post the same money to the cent
//! (tested in `tests/tests/order_corpus.rs` on the whole corpus).
//!
//! The field map and its sources are `crates/sandbox/tests/fixtures/lightspeed/2026-07/
//! MAPPING.md` (§1 for the body, §4 for `status` → `state`, §5 for the sale id).

use super::{SaleDraft, SaleLine, SalePayment};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

/// The namespace of our client-supplied sale ids: a fixed random UUID, so that one order
/// always gets the same id (UUIDv5 of its invoice number) on every machine.
pub const SALE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5b3f_7c1e_2d4a_4e8b_9a61_0c7d_e2f4_a913);

/// The sale id we send for an order (`SaleRequest.id`, "User-provided sale ID"): UUIDv5 of
/// the invoice number `ECWID-<store>-<order>`. What Lightspeed does with a second POST of
/// the same id is not documented (MAPPING.md §5), so the ledger and the search stay the
/// guarantee; the id lets us look the sale up directly (`GET /sales/{id}`) after an unknown
/// outcome.
pub fn sale_id(invoice_number: &str) -> String {
    Uuid::new_v5(&SALE_ID_NAMESPACE, invoice_number.as_bytes()).to_string()
}

/// `state` and `attributes` of a legacy status, per Lightspeed's "States and attributes
/// mapping" table (MAPPING.md §4). `None` for a status the table does not have.
pub fn state_of(status: &str) -> Option<(&'static str, Option<&'static str>)> {
    Some(match status {
        "SAVED" => ("parked", None),
        "OPEN" => ("pending", None),
        "VOIDED" => ("voided", None),
        "CLOSED" => ("closed", None),
        "ONACCOUNT" => ("pending", Some("onaccount")),
        "ONACCOUNT_CLOSED" => ("closed", Some("onaccount")),
        "LAYBY" => ("pending", Some("layby")),
        "LAYBY_CLOSED" => ("closed", Some("layby")),
        "AWAITING_DISPATCH" => ("pending", Some("delivery")),
        "DISPATCHED_CLOSED" => ("closed", Some("delivery")),
        "AWAITING_PICKUP" => ("pending", Some("pickup")),
        "PICKED_UP_CLOSED" => ("closed", Some("pickup")),
        "SERVICE" => ("pending", Some("service")),
        "SERVICE_CLOSED" => ("closed", Some("service")),
        _ => return None,
    })
}

/// `SaleRequest`: the body of `POST /api/2026-07/sales`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaleRequest {
    pub id: String,
    pub source: RequestSource,
    pub state: &'static str,
    pub attributes: Vec<&'static str>,
    /// RFC 3339.
    pub date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    pub note: String,
    pub invoice_number: String,
    pub line_items: Vec<LineItem>,
    pub payments: Vec<Payment>,
}

/// `SaleRequestSource`. `register_id` is optional in the schema but always sent: without it
/// the register (and the outlet stock leaves) is Lightspeed's choice (MAPPING.md §1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSource {
    pub author_id: String,
    pub register_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineItem {
    pub product: IdRef,
    #[serde(with = "rust_decimal::serde::float")]
    pub quantity: Decimal,
    pub pricing: Pricing,
    pub tax: LineTax,
    pub status: String,
    #[serde(rename = "_metadata")]
    pub metadata: LineMetadata,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdRef {
    pub id: String,
}

/// The unit price excluding tax, discounts already taken off. The legacy body also declares
/// the per-unit discount for Lightspeed's reports; `pricing.discount` ("Discount value of the
/// line item") is not sent, because whether 2026-07 subtracts it from `price` again is not
/// documented and money comes first (MAPPING.md §1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pricing {
    #[serde(with = "rust_decimal::serde::float")]
    pub price: Decimal,
}

/// The tax per unit and the Lightspeed tax it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineTax {
    pub id: String,
    #[serde(with = "rust_decimal::serde::float")]
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineMetadata {
    /// Legacy `price_set = 1`: the price is ours, not recalculated from the catalogue.
    pub is_price_override: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payment {
    #[serde(rename = "type")]
    pub kind: PaymentTypeRef,
    #[serde(with = "rust_decimal::serde::float")]
    pub amount: Decimal,
    pub date: String,
    pub source: PaymentSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentTypeRef {
    pub config_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentSource {
    pub register_id: String,
}

/// A draft whose status has no dated `state`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sale status {0} has no 2026-07 state")]
pub struct UnmappedStatus(pub String);

/// The 2026-07 body of a sale: the same lines, prices, taxes and payments as the legacy body.
pub fn sale_request(sale: &SaleDraft) -> Result<SaleRequest, UnmappedStatus> {
    let (state, attribute) =
        state_of(&sale.status).ok_or_else(|| UnmappedStatus(sale.status.clone()))?;
    Ok(SaleRequest {
        id: sale_id(&sale.invoice_number),
        source: RequestSource {
            author_id: sale.user_id.clone(),
            register_id: sale.register_id.clone(),
            kind: sale.source.clone(),
            id: sale.source_id.clone(),
        },
        state,
        attributes: attribute.into_iter().collect(),
        date: sale.sale_date.clone(),
        customer_id: sale.customer_id.clone(),
        note: sale.note.clone(),
        invoice_number: sale.invoice_number.clone(),
        line_items: sale.register_sale_products.iter().map(line).collect(),
        payments: sale
            .register_sale_payments
            .iter()
            .map(|p| payment(p, &sale.sale_date))
            .collect(),
    })
}

fn line(l: &SaleLine) -> LineItem {
    LineItem {
        product: IdRef {
            id: l.product_id.clone(),
        },
        quantity: l.quantity,
        pricing: Pricing { price: l.price },
        tax: LineTax {
            id: l.tax_id.clone(),
            amount: l.tax,
        },
        status: l.status.clone(),
        metadata: LineMetadata {
            is_price_override: l.price_set != 0,
        },
    }
}

fn payment(p: &SalePayment, sale_date: &str) -> Payment {
    Payment {
        kind: PaymentTypeRef {
            config_id: p.retailer_payment_type_id.clone(),
        },
        amount: p.amount,
        date: if p.payment_date.is_empty() {
            sale_date.to_string()
        } else {
            p.payment_date.clone()
        },
        source: PaymentSource {
            register_id: p.register_id.clone(),
        },
    }
}

impl SaleRequest {
    /// Σ quantity × (price + tax): the same formula as [`SaleDraft::total`].
    pub fn total(&self) -> Decimal {
        self.line_items
            .iter()
            .map(|l| l.quantity * (l.pricing.price + l.tax.amount))
            .sum()
    }
    pub fn payments_total(&self) -> Decimal {
        self.payments.iter().map(|p| p.amount).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightspeed::STATUS_CLOSED;
    use rust_decimal_macros::dec;

    fn draft() -> SaleDraft {
        SaleDraft {
            register_id: "reg".into(),
            user_id: "user".into(),
            customer_id: None,
            sale_date: "2026-11-27T10:00:00Z".into(),
            status: STATUS_CLOSED.into(),
            note: "Ecwid order 7".into(),
            invoice_number: "ECWID-1-7".into(),
            source: "ecwid".into(),
            source_id: "ECWID-1-7".into(),
            return_for: None,
            register_sale_products: vec![SaleLine {
                product_id: "p1".into(),
                quantity: dec!(3),
                price: dec!(9.09),
                tax: dec!(0.91),
                tax_id: "t10".into(),
                discount: dec!(0.5),
                price_set: 1,
                status: "CONFIRMED".into(),
                sku: "MUG".into(),
            }],
            register_sale_payments: vec![SalePayment {
                register_id: "reg".into(),
                retailer_payment_type_id: "cash".into(),
                payment_date: "2026-11-27T10:00:00Z".into(),
                amount: dec!(30.00),
            }],
        }
    }

    #[test]
    fn the_dated_body_carries_the_legacy_money_and_the_published_field_names() {
        let d = draft();
        let r = sale_request(&d).unwrap();
        assert_eq!(r.total(), d.total());
        assert_eq!(r.total(), dec!(30.00));
        assert_eq!(r.payments_total(), d.payments_total());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["state"], "closed");
        assert_eq!(v["attributes"], serde_json::json!([]));
        assert_eq!(v["source"]["author_id"], "user");
        assert_eq!(v["source"]["register_id"], "reg");
        assert_eq!(v["source"]["type"], "ecwid");
        assert_eq!(v["source"]["id"], "ECWID-1-7");
        assert_eq!(v["date"], "2026-11-27T10:00:00Z");
        let l = &v["line_items"][0];
        assert_eq!(l["product"]["id"], "p1");
        assert_eq!(l["pricing"], serde_json::json!({"price": 9.09}));
        assert_eq!(l["tax"], serde_json::json!({"id": "t10", "amount": 0.91}));
        assert_eq!(l["_metadata"]["is_price_override"], true);
        assert_eq!(v["payments"][0]["type"]["config_id"], "cash");
        assert_eq!(v["payments"][0]["amount"], 30.0);
        assert!(v.get("customer_id").is_none());
        assert!(v.get("register_sale_products").is_none());
    }

    #[test]
    fn the_sale_id_is_a_stable_uuid_of_the_invoice_number() {
        let a = sale_id("ECWID-1-7");
        assert_eq!(a, sale_id("ECWID-1-7"));
        assert_ne!(a, sale_id("ECWID-1-8"));
        let u = Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 5);
        assert_eq!(sale_request(&draft()).unwrap().id, a);
    }

    #[test]
    fn statuses_map_to_states_as_lightspeed_tabulates_them() {
        assert_eq!(state_of("CLOSED"), Some(("closed", None)));
        assert_eq!(state_of("LAYBY_CLOSED"), Some(("closed", Some("layby"))));
        assert_eq!(state_of("SAVED"), Some(("parked", None)));
        assert_eq!(state_of("NOPE"), None);
        let mut d = draft();
        d.status = "NOPE".into();
        assert!(sale_request(&d).is_err());
    }
}
