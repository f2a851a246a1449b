//! The Lightspeed X-Series shapes the rules produce and read.
//!
//! Amounts go on the wire as JSON numbers, as Lightspeed documents them. They are cents
//! (scale ≤ 2) by construction, and such values survive the number encoding exactly.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub mod api_version;
pub mod dated;
pub mod returns;

pub use api_version::LsApiVersion;
pub use returns::{LsSale, LsSaleLine, LsSalePayment};

/// Legacy status of a completed sale (rule O3). It appears in the POS's Sales History and
/// lowers stock at the register's outlet.
pub const STATUS_CLOSED: &str = "CLOSED";

/// One line of `register_sale_products`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleLine {
    pub product_id: String,
    #[serde(with = "rust_decimal::serde::float")]
    pub quantity: Decimal,
    /// Unit price excluding tax.
    #[serde(with = "rust_decimal::serde::float")]
    pub price: Decimal,
    /// Tax per unit.
    #[serde(with = "rust_decimal::serde::float")]
    pub tax: Decimal,
    pub tax_id: String,
    /// The per-unit discount already taken off `price`, declared for Lightspeed's reports
    /// (see `money`).
    #[serde(with = "rust_decimal::serde::float")]
    pub discount: Decimal,
    pub price_set: u8,
    pub status: String,
    /// The SKU this line was matched by; not sent to Lightspeed.
    #[serde(skip)]
    pub sku: String,
}

impl SaleLine {
    /// quantity × (price + tax).
    pub fn total(&self) -> Decimal {
        self.quantity * (self.price + self.tax)
    }
}

/// One `register_sale_payments` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SalePayment {
    pub register_id: String,
    pub retailer_payment_type_id: String,
    pub payment_date: String,
    #[serde(with = "rust_decimal::serde::float")]
    pub amount: Decimal,
}

/// The body of `POST /api/register_sales`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleDraft {
    pub register_id: String,
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    pub sale_date: String,
    pub status: String,
    pub note: String,
    /// Deterministic, derived from the Ecwid order id: the key we search by after an
    /// unknown outcome (invariant 3).
    pub invoice_number: String,
    pub source: String,
    pub source_id: String,
    /// On the completion of a referenced return: the original sale's id. `None` on sales
    /// and on unreferenced returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_for: Option<String>,
    pub register_sale_products: Vec<SaleLine>,
    pub register_sale_payments: Vec<SalePayment>,
}

impl SaleDraft {
    pub fn total(&self) -> Decimal {
        self.register_sale_products
            .iter()
            .map(SaleLine::total)
            .sum()
    }
    pub fn payments_total(&self) -> Decimal {
        self.register_sale_payments.iter().map(|p| p.amount).sum()
    }
}

/// A sale as Lightspeed reports it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostedSale {
    pub id: String,
    #[serde(default)]
    pub invoice_number: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// total_price + total_tax, when the response carried them.
    #[serde(default)]
    pub total: Option<Decimal>,
}

/// A Lightspeed product row (variants are rows of their own with `variant_parent_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LsProduct {
    pub id: String,
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub variant_parent_id: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub has_inventory: Option<bool>,
    #[serde(default)]
    pub deleted_at: Option<String>,
}

impl LsProduct {
    /// A product that can take a sale line: not deleted.
    pub fn is_live(&self) -> bool {
        self.deleted_at.as_deref().is_none_or(str::is_empty)
    }
}

/// A Lightspeed tax and its rate as a fraction (0.1 = 10%).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LsTax {
    pub id: String,
    pub name: String,
    pub rate: Decimal,
}

/// What the mapping needs from the retailer's setup; read once and cached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleSetup {
    /// The tax group for untaxed lines.
    pub no_tax_group_id: String,
    pub taxes: Vec<LsTax>,
    /// The retailer's currency (ISO 4217, e.g. "USD", "JPY"): sale amounts are rounded at its
    /// minor unit. `None` when Lightspeed does not say; cents are assumed.
    #[serde(default)]
    pub currency: Option<String>,
}

impl SaleSetup {
    /// The tax whose rate equals `percent`/100 exactly. Several taxes with one rate are
    /// ambiguous only in name; the first by id is taken so the choice is stable.
    pub fn tax_for_percent(&self, percent: Decimal) -> Option<&LsTax> {
        let rate = percent / Decimal::ONE_HUNDRED;
        self.taxes
            .iter()
            .filter(|t| t.rate.normalize() == rate.normalize())
            .min_by(|a, b| a.id.cmp(&b.id))
    }
}

/// A Lightspeed customer as `GET /api/2.0/search?type=customers` and
/// `POST /api/2.0/customers` return it (the fields the matching reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsCustomer {
    pub id: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// The body of `POST /api/2.0/customers`. Lightspeed requires `first_name` and `last_name`
/// as strings (an empty string is accepted); `customer_code` is generated when omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCustomer {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
}
