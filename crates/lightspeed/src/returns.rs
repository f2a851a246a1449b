//! Reading a sale back, and returns, in both generations (issue #15). Sources and
//! assumptions: `crates/sandbox/tests/fixtures/lightspeed/2026-07/MAPPING.md` §11.
//!
//! - `GET /api/2.0/sales/{id}` (legacy) or `GET /api/<version>/sales/{id}`: the sale, `None`
//!   on a 404.
//! - Start: legacy `PUT /api/2.0/sales/{id}/actions/return`, dated `POST
//!   /api/<version>/sales/{id}/actions/return`: the new SAVED return.
//! - Completion: legacy `POST /api/register_sales` with the return's `id` (the one endpoint
//!   that creates and updates), dated `PUT /api/<version>/sales/{id}` (UpdateSale) with the
//!   `SaleUpdateRequest` body (the dated sale body without `id`; the link to the original is
//!   the return's own, the body has no `return_for`).
//!
//! One reader takes every shape a sale comes in: the 2.0 `Sale` (`status`, `return_for`,
//! lines with `product_id`, `price`, numeric `tax`, `tax_id`), the 0.9 `register_sale`
//! (`register_sale_products`, `register_sale_payments`), the 2026-07 `Sale` (`state` +
//! `attributes`, `return.original_sale_id`, lines with `product.id`, `pricing.price`,
//! `tax{id, amount}`, payments with `type.config_id`) and the 2026-07 return action's
//! published example, which is legacy-shaped against its own schema.

use crate::{DataOne, LightspeedClient, RawSale, RegisterSaleEnvelope};
use els_core::decimal::opt_decimal;
use els_core::lightspeed::{
    LsApiVersion, LsSale, LsSaleLine, LsSalePayment, PostedSale, SaleDraft, dated,
};
use els_core::{ApiError, Connection};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

/// The legacy statuses of Lightspeed's "States and attributes mapping" table, looked up
/// through `dated::state_of` to read a dated `state` + attribute back.
const STATUSES: [&str; 14] = [
    "SAVED",
    "OPEN",
    "VOIDED",
    "CLOSED",
    "ONACCOUNT",
    "ONACCOUNT_CLOSED",
    "LAYBY",
    "LAYBY_CLOSED",
    "AWAITING_DISPATCH",
    "DISPATCHED_CLOSED",
    "AWAITING_PICKUP",
    "PICKED_UP_CLOSED",
    "SERVICE",
    "SERVICE_CLOSED",
];

/// The legacy status of a dated `state` and its attributes (MAPPING.md §4): the table's pair,
/// else the state alone (an attribute the table does not have), else the state upper-cased.
pub fn status_of_state(state: &str, attributes: &[String]) -> String {
    let state = state.trim().to_ascii_lowercase();
    let lookup = |attribute: Option<&str>| {
        STATUSES
            .iter()
            .find(|s| dated::state_of(s) == Some((state.as_str(), attribute)))
            .map(|s| s.to_string())
    };
    attributes
        .iter()
        .find_map(|a| {
            let a = a.trim().to_ascii_lowercase();
            STATUSES
                .iter()
                .find(|s| {
                    dated::state_of(s).is_some_and(|(st, at)| st == state && at == Some(a.as_str()))
                })
                .map(|s| s.to_string())
        })
        .or_else(|| lookup(None))
        .unwrap_or_else(|| state.to_ascii_uppercase())
}

#[derive(Deserialize)]
struct RawReadSale {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    attributes: Option<Vec<String>>,
    #[serde(default)]
    invoice_number: Option<String>,
    #[serde(default)]
    return_for: Option<String>,
    #[serde(default, rename = "return")]
    returned: Option<RawReturn>,
    #[serde(default)]
    register_id: Option<String>,
    /// 2026-07: `{"register_id", ...}`; legacy: a string.
    #[serde(default)]
    source: Option<Value>,
    #[serde(default, alias = "register_sale_products")]
    line_items: Option<Vec<RawLine>>,
    #[serde(default, alias = "register_sale_payments")]
    payments: Option<Vec<RawPayment>>,
}

#[derive(Deserialize)]
struct RawReturn {
    #[serde(default)]
    original_sale_id: Option<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawPricing {
    #[serde(default, deserialize_with = "opt_decimal")]
    price: Option<Decimal>,
}

#[derive(Deserialize)]
struct RawLine {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    product_id: Option<String>,
    #[serde(default)]
    product: Option<IdOnly>,
    #[serde(default, deserialize_with = "opt_decimal")]
    quantity: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    price: Option<Decimal>,
    #[serde(default)]
    pricing: Option<RawPricing>,
    /// Legacy: the unit tax (a number or a numeric string); 2026-07: `{"id", "amount"}`.
    #[serde(default)]
    tax: Option<Value>,
    #[serde(default)]
    tax_id: Option<String>,
}

#[derive(Deserialize)]
struct RawPayment {
    #[serde(default)]
    retailer_payment_type_id: Option<String>,
    /// 2026-07: `{"config_id", "id", "name"}`.
    #[serde(default, rename = "type")]
    kind: Option<Value>,
    #[serde(default, deserialize_with = "opt_decimal")]
    amount: Option<Decimal>,
}

fn missing(what: &str) -> ApiError {
    ApiError::Decode {
        detail: format!("sale: {what} is missing"),
    }
}

fn decimal(v: &Value) -> Result<Option<Decimal>, ApiError> {
    opt_decimal(v.clone()).map_err(|e| ApiError::Decode {
        detail: format!("sale: {e}"),
    })
}

impl RawLine {
    fn read(self) -> Result<LsSaleLine, ApiError> {
        let product_id = self
            .product_id
            .or_else(|| self.product.and_then(|p| p.id))
            .ok_or_else(|| missing("a line's product id"))?;
        let price = self
            .pricing
            .and_then(|p| p.price)
            .or(self.price)
            .ok_or_else(|| missing("a line's price"))?;
        let (tax, tax_id) = match self.tax {
            Some(Value::Object(t)) => (
                match t.get("amount") {
                    Some(a) => decimal(a)?,
                    None => None,
                },
                t.get("id").and_then(Value::as_str).map(str::to_string),
            ),
            Some(other) => (decimal(&other)?, None),
            None => (None, None),
        };
        Ok(LsSaleLine {
            id: self.id,
            product_id,
            quantity: self.quantity.ok_or_else(|| missing("a line's quantity"))?,
            price,
            tax: tax.unwrap_or_default(),
            tax_id: self.tax_id.or(tax_id),
        })
    }
}

impl RawPayment {
    fn read(self) -> Result<LsSalePayment, ApiError> {
        let type_id = self.retailer_payment_type_id.or_else(|| {
            self.kind
                .as_ref()
                .and_then(|t| t.get("config_id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        Ok(LsSalePayment {
            retailer_payment_type_id: type_id.ok_or_else(|| missing("a payment's type"))?,
            amount: self.amount.ok_or_else(|| missing("a payment's amount"))?,
        })
    }
}

impl RawReadSale {
    fn read(self) -> Result<LsSale, ApiError> {
        // A legacy-shaped answer carries both `status` and `state`: `status` is the table's
        // own key and wins.
        let status = match (self.status, self.state) {
            (Some(status), _) if !status.trim().is_empty() => status.trim().to_ascii_uppercase(),
            (_, Some(state)) => status_of_state(&state, &self.attributes.unwrap_or_default()),
            _ => return Err(missing("status or state")),
        };
        let register_id = self.register_id.or_else(|| {
            self.source
                .as_ref()
                .and_then(|s| s.get("register_id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        Ok(LsSale {
            id: self.id,
            status,
            invoice_number: self.invoice_number,
            return_for: self
                .return_for
                .filter(|r| !r.is_empty())
                .or_else(|| self.returned.and_then(|r| r.original_sale_id))
                .filter(|r| !r.is_empty()),
            register_id,
            lines: self
                .line_items
                .unwrap_or_default()
                .into_iter()
                .map(RawLine::read)
                .collect::<Result<_, _>>()?,
            payments: self
                .payments
                .unwrap_or_default()
                .into_iter()
                .map(RawPayment::read)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A `{"data": Sale}` answer (`GET .../sales/{id}`, the return action) in any of the shapes
/// above.
pub fn sale_answer(body: &str) -> Result<LsSale, ApiError> {
    let one: DataOne<RawReadSale> = crate::parse::decode(body, "sale")?;
    one.data.read()
}

/// A sale object (no envelope) in any of the shapes above.
pub fn sale_object(value: &Value) -> Result<LsSale, ApiError> {
    RawReadSale::deserialize(value)
        .map_err(|e| ApiError::Decode {
            detail: format!("sale: {e}"),
        })?
        .read()
}

impl LightspeedClient {
    /// The sale's path in `conn`'s generation: legacy `/api/2.0/sales/{id}`.
    fn sale_path(&self, conn: &Connection, sale_id: &str) -> String {
        match self.version_for(conn) {
            LsApiVersion::Legacy => format!("/api/2.0/sales/{sale_id}"),
            LsApiVersion::Dated(_) => self.path(conn, &format!("/sales/{sale_id}")),
        }
    }

    pub(crate) async fn read_sale(
        &self,
        conn: &Connection,
        sale_id: &str,
    ) -> Result<Option<LsSale>, ApiError> {
        let path = self.sale_path(conn, sale_id);
        match self.get::<DataOne<RawReadSale>>(conn, &path, &[]).await {
            Ok(one) => one.data.read().map(Some),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Not idempotent (each call starts another return): an answer that never arrives is
    /// [`ApiError::OutcomeUnknown`].
    pub(crate) async fn begin_return(
        &self,
        conn: &Connection,
        sale_id: &str,
    ) -> Result<LsSale, ApiError> {
        let path = format!("{}/actions/return", self.sale_path(conn, sale_id));
        let method = match self.version_for(conn) {
            LsApiVersion::Legacy => reqwest::Method::PUT,
            LsApiVersion::Dated(_) => reqwest::Method::POST,
        };
        let one: DataOne<RawReadSale> = self
            .write_unsafe(conn, method, &path, None::<&Value>)
            .await?;
        one.data.read()
    }

    /// Updates the return `return_id` with `sale` (closing it). An answer whose outcome is
    /// unknown (timeout, dropped connection, 5xx, an unreadable 2xx) is
    /// [`ApiError::OutcomeUnknown`]: read the return back before trying again (a repeat on a
    /// closed return is refused, never a second sale).
    pub(crate) async fn finish_return(
        &self,
        conn: &Connection,
        return_id: &str,
        sale: &SaleDraft,
    ) -> Result<PostedSale, ApiError> {
        match self.version_for(conn) {
            LsApiVersion::Legacy => {
                let mut body = serde_json::to_value(sale).map_err(|e| ApiError::Rejected {
                    status: 400,
                    detail: format!("not sent: {e}"),
                })?;
                body["id"] = return_id.into();
                let envelope: RegisterSaleEnvelope = self
                    .write_unsafe(
                        conn,
                        reqwest::Method::POST,
                        "/api/register_sales",
                        Some(&body),
                    )
                    .await?;
                Ok(envelope.register_sale.into())
            }
            LsApiVersion::Dated(_) => {
                let request = dated::sale_request(sale).map_err(|e| ApiError::Rejected {
                    status: 400,
                    detail: format!("not sent: {e}"),
                })?;
                let mut body = serde_json::to_value(&request).map_err(|e| ApiError::Rejected {
                    status: 400,
                    detail: format!("not sent: {e}"),
                })?;
                // `SaleUpdateRequest` has no `id`: the sale is the path's.
                if let Value::Object(m) = &mut body {
                    m.remove("id");
                }
                let path = self.sale_path(conn, return_id);
                let one: DataOne<RawSale> = self
                    .write_unsafe(conn, reqwest::Method::PUT, &path, Some(&body))
                    .await?;
                Ok(one.data.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const EXAMPLE_2026_07: &str =
        include_str!("../../sandbox/tests/fixtures/lightspeed/2026-07/returns.json");

    #[test]
    fn the_published_return_example_reads_as_a_parked_return() {
        // The 2026-07 operation's example, legacy-shaped against its own schema (§11).
        let spec: Value = serde_json::from_str(EXAMPLE_2026_07).unwrap();
        let example = &spec["paths"]["/sales/{sale_id}/actions/return"]["post"]["responses"]["200"]
            ["content"]["application/json"]["example"];
        let sale = sale_answer(&example.to_string()).unwrap();
        assert_eq!(sale.status, "SAVED");
        assert!(!sale.is_closed());
        assert_eq!(
            sale.return_for.as_deref(),
            Some("b8ca3a65-0183-11e4-fbb5-39f7fce5e39b")
        );
        assert_eq!(sale.lines.len(), 2);
        assert_eq!(sale.lines[0].quantity, dec!(-1));
        assert_eq!(sale.lines[0].price, dec!(200));
        assert_eq!(sale.lines[0].tax, dec!(30));
        assert_eq!(
            sale.lines[0].tax_id.as_deref(),
            Some("b1d192bc-f019-11e3-a0f5-b8ca3a64f8f4")
        );
        assert_eq!(sale.total(), dec!(-230));
        assert!(sale.payments.is_empty());
        assert_eq!(
            sale.register_id.as_deref(),
            Some("b1e198a9-f019-11e3-a0f5-b8ca3a64f8f4")
        );
    }

    #[test]
    fn the_2026_07_schema_shape_reads_alike() {
        let body = serde_json::json!({"data": {
            "id": "r1", "state": "closed", "attributes": [], "invoice_number": "ECWID-1-7-R1",
            "return": {"is_return": true, "original_sale_id": "s1", "return_sale_ids": []},
            "source": {"register_id": "reg", "author": {"id": "u"}},
            "line_items": [{"id": "l1", "product": {"id": "p1"}, "quantity": -2,
                            "pricing": {"price": 10, "total": -20},
                            "tax": {"id": "t1", "amount": 1.5, "total": -3}}],
            "payments": [{"type": {"config_id": "pt", "id": "1", "name": "Cash"},
                          "amount": -23}],
        }});
        let sale = sale_answer(&body.to_string()).unwrap();
        assert_eq!(sale.status, "CLOSED");
        assert!(sale.is_closed());
        assert_eq!(sale.return_for.as_deref(), Some("s1"));
        assert_eq!(sale.register_id.as_deref(), Some("reg"));
        assert_eq!(sale.lines[0].product_id, "p1");
        assert_eq!(sale.lines[0].tax_id.as_deref(), Some("t1"));
        assert_eq!(sale.total(), dec!(-23));
        assert_eq!(sale.payments[0].retailer_payment_type_id, "pt");
        assert_eq!(sale.payments[0].amount, dec!(-23));
    }

    #[test]
    fn legacy_sales_with_string_numbers_and_no_return_read() {
        let body = serde_json::json!({"data": {
            "id": "s1", "status": "CLOSED", "state": "closed", "return_for": null,
            "line_items": [{"product_id": "p1", "quantity": "1", "price": "22.00000",
                            "tax": "3.30000", "tax_id": "t"}],
            "payments": [{"retailer_payment_type_id": "pt", "amount": "25.3"}],
        }});
        let sale = sale_answer(&body.to_string()).unwrap();
        assert_eq!(sale.return_for, None);
        assert_eq!(sale.total(), dec!(25.3));
        let register_sale = serde_json::json!({
            "id": "s2", "status": "SAVED", "return_for": "s1",
            "register_sale_products": [{"product_id": "p1", "quantity": -1, "price": 22,
                                        "tax": 3.3, "tax_id": "t"}],
            "register_sale_payments": [],
        });
        let sale = sale_object(&register_sale).unwrap();
        assert_eq!(sale.return_for.as_deref(), Some("s1"));
        assert_eq!(sale.total(), dec!(-25.3));
    }

    #[test]
    fn dated_states_map_back_through_the_table() {
        assert_eq!(status_of_state("closed", &[]), "CLOSED");
        assert_eq!(status_of_state("parked", &[]), "SAVED");
        assert_eq!(status_of_state("voided", &[]), "VOIDED");
        assert_eq!(
            status_of_state("closed", &["onaccount".into()]),
            "ONACCOUNT_CLOSED"
        );
        assert_eq!(status_of_state("closed", &["unknown".into()]), "CLOSED");
        assert_eq!(status_of_state("weird", &[]), "WEIRD");
        let parked = sale_answer(r#"{"data": {"id": "x", "state": "parked"}}"#).unwrap();
        assert_eq!(parked.status, "SAVED");
        assert!(sale_answer(r#"{"data": {"id": "x"}}"#).is_err());
        assert!(
            sale_answer(r#"{"data": {"id": "x", "state": "closed", "line_items": [{}]}}"#).is_err()
        );
    }
}
