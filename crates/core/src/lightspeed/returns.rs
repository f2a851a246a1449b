//! Reading a sale back, and returns (refunds of a posted sale, issue #15).
//!
//! A **referenced return** is started on a closed sale (`PUT /api/2.0/sales/{id}/actions/return`
//! legacy, `POST /api/{version}/sales/{id}/actions/return` dated): Lightspeed answers a new
//! SAVED (parked) sale with `return_for` = the original and the original's lines negated.
//! It is then completed with the lines actually returned (negative quantities), the refund
//! payments (negative amounts) and status CLOSED, on the return's own id, so repeating the
//! completion updates that one sale instead of creating another.
//!
//! An **unreferenced return** (a money-only refund) is an ordinary sale POST whose lines
//! have negative quantities on a product that does not track stock, paid back with a
//! negative payment: the sale path's idempotency (invoice number, client id) covers it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Legacy status of a parked sale, as the return action answers it.
pub const STATUS_SAVED: &str = "SAVED";
/// Legacy status of a voided sale.
pub const STATUS_VOIDED: &str = "VOIDED";

/// One line of a sale as Lightspeed reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LsSaleLine {
    /// The line's own id, when Lightspeed reports one.
    #[serde(default)]
    pub id: Option<String>,
    pub product_id: String,
    /// Negative on a return.
    pub quantity: Decimal,
    /// Unit price excluding tax.
    pub price: Decimal,
    /// Tax per unit.
    pub tax: Decimal,
    #[serde(default)]
    pub tax_id: Option<String>,
}

impl LsSaleLine {
    /// quantity × (price + tax).
    pub fn total(&self) -> Decimal {
        self.quantity * (self.price + self.tax)
    }
}

/// One payment of a sale as Lightspeed reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LsSalePayment {
    pub retailer_payment_type_id: String,
    /// Negative on a return.
    pub amount: Decimal,
}

/// A sale (or a return) read back from Lightspeed, in the legacy vocabulary whatever the
/// API generation: `status` is `CLOSED`, `SAVED`, `VOIDED`... (the dated `state` and
/// attributes are mapped through Lightspeed's table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LsSale {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub invoice_number: Option<String>,
    /// The original sale's id when this sale is a referenced return.
    #[serde(default)]
    pub return_for: Option<String>,
    #[serde(default)]
    pub register_id: Option<String>,
    pub lines: Vec<LsSaleLine>,
    #[serde(default)]
    pub payments: Vec<LsSalePayment>,
}

impl LsSale {
    /// The sum of the lines (total price + total tax).
    pub fn total(&self) -> Decimal {
        self.lines.iter().map(LsSaleLine::total).sum()
    }

    pub fn is_closed(&self) -> bool {
        self.status.eq_ignore_ascii_case(super::STATUS_CLOSED)
            || self.status.eq_ignore_ascii_case("ONACCOUNT_CLOSED")
            || self.status.eq_ignore_ascii_case("LAYBY_CLOSED")
    }

    pub fn is_voided(&self) -> bool {
        self.status.to_ascii_uppercase().contains("VOIDED")
    }
}
