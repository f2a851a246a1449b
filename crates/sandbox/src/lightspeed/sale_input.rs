//! A sale body, checked and stored: one implementation for both generations.
//!
//! `POST /api/register_sales` (0.9) and `POST /api/2026-07/sales` (CreateSale) carry the same
//! sale in different places: `register_id` is `source.register_id`, `register_sale_products[].
//! product_id` is `line_items[].product.id`... (the field map is
//! `tests/fixtures/lightspeed/2026-07/MAPPING.md` §1). A [`SaleLayout`] says where one
//! generation keeps each field; [`parse_sale`] reads a body through it and applies the same
//! checks to both (register, user, customer, products, taxes and payment types exist; a
//! quantity is not zero; a `CLOSED` sale is fully paid to the cent), naming fields as that
//! generation does; [`store_sale`] stores the result in the one list of sales, with its stock.

use std::time::Instant;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value};

use super::bad;
use crate::server::ApiResponse;
use crate::state::{LsPayment, LsSale, LsSaleLine, State, status_takes_stock};
use crate::util::{json_dec, new_uuid, random_code, round2};

/// Where one generation's sale body keeps each field, as dotted paths into nested objects
/// (`source.register_id`; a legacy path is one key), which are also the names its error
/// messages give; and the rules that differ between generations.
pub(crate) struct SaleLayout {
    pub register_id: &'static str,
    /// Whether a body without a register goes to the retailer's first register (else the
    /// register is required).
    pub register_defaults: bool,
    pub user_id: &'static str,
    /// The sale's legacy status, read and checked.
    pub status: fn(&Map<String, Value>) -> Result<String, ApiResponse>,
    pub sale_date: &'static str,
    /// How the sale's and the payments' dates are read.
    pub parse_date: fn(&str) -> Option<DateTime<Utc>>,
    pub invoice_sequence: Option<&'static str>,
    pub source: &'static str,
    pub source_id: &'static str,
    pub lines: &'static str,
    /// Whether the lines are required and may not be empty (else an absent list is none).
    pub lines_required: bool,
    pub line: LineLayout,
    pub payments: &'static str,
    pub payment: PaymentLayout,
}

/// Where a line keeps its fields (relative to the line).
pub(crate) struct LineLayout {
    pub product_id: &'static str,
    pub quantity: &'static str,
    pub price: &'static str,
    pub tax: &'static str,
    pub tax_id: &'static str,
    pub register_id: &'static str,
    pub status: &'static str,
    pub sequence: &'static str,
    pub cost: &'static str,
    pub discount: &'static str,
    pub loyalty_value: &'static str,
    pub price_set: &'static str,
    pub note: Option<&'static str>,
}

/// Where a payment keeps its fields (relative to the payment).
pub(crate) struct PaymentLayout {
    pub type_id: &'static str,
    pub amount: &'static str,
    pub register_id: &'static str,
    pub date: &'static str,
}

/// A JSON value at a dotted path of nested objects; `None` when a step is missing or not an
/// object.
fn at<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut steps = path.split('.');
    let mut value = obj.get(steps.next()?)?;
    for step in steps {
        value = value.as_object()?.get(step)?;
    }
    Some(value)
}

/// An optional string field: absent or null = None; anything but a string is an error.
pub(crate) fn opt_str(
    obj: &Map<String, Value>,
    key: &str,
    ctx: &str,
) -> Result<Option<String>, ApiResponse> {
    match at(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("{ctx}{key} must be a string"))),
    }
}

pub(crate) fn req_str(
    obj: &Map<String, Value>,
    key: &str,
    ctx: &str,
) -> Result<String, ApiResponse> {
    match opt_str(obj, key, ctx)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(bad(format!("{ctx}{key} is required"))),
    }
}

fn opt_num(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<Decimal>, ApiResponse> {
    match at(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => json_dec(v)
            .map(Some)
            .ok_or_else(|| bad(format!("{ctx}{key} must be a number"))),
    }
}

fn req_num(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<Decimal, ApiResponse> {
    opt_num(obj, key, ctx)?.ok_or_else(|| bad(format!("{ctx}{key} is required")))
}

fn opt_bool(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<bool>, ApiResponse> {
    match at(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => match json_dec(v) {
            Some(d) if d.is_zero() => Ok(Some(false)),
            Some(d) if d == Decimal::ONE => Ok(Some(true)),
            _ => Err(bad(format!("{ctx}{key} must be a boolean, 0 or 1"))),
        },
    }
}

/// A checked sale body, in the legacy terms the state keeps.
pub(crate) struct SaleInput {
    register_id: String,
    user_id: String,
    customer_id: Option<String>,
    status: String,
    sale_date: Option<DateTime<Utc>>,
    note: Option<String>,
    invoice_number: Option<String>,
    invoice_sequence: Option<u64>,
    source: Option<String>,
    source_id: Option<String>,
    short_code: Option<String>,
    lines: Vec<LsSaleLine>,
    payments: Vec<LsPayment>,
}

impl SaleInput {
    /// The legacy status the body gives the sale.
    pub(crate) fn status(&self) -> &str {
        &self.status
    }

    /// The body's lines.
    pub(crate) fn lines(&self) -> &[LsSaleLine] {
        &self.lines
    }
}

/// Read a sale body through its generation's layout and check it against the state: the
/// answer to a refused body is a 400 naming the field.
pub(crate) fn parse_sale(
    st: &State,
    b: &Map<String, Value>,
    layout: &SaleLayout,
) -> Result<SaleInput, ApiResponse> {
    let register_id = match opt_str(b, layout.register_id, "")?.filter(|s| !s.trim().is_empty()) {
        Some(id) => id,
        // ASSUMPTION (see `dated::DATED_SALE`): the retailer's first register.
        None if layout.register_defaults => match st.registers.first() {
            Some(r) => r.id.clone(),
            None => return Err(bad("The retailer has no register to take the sale")),
        },
        None => return Err(bad(format!("{} is required", layout.register_id))),
    };
    let Some(register) = st.register(&register_id) else {
        return Err(bad(format!(
            "{} {register_id} is not a valid register",
            layout.register_id
        )));
    };
    let user_id = req_str(b, layout.user_id, "")?;
    if !st.users.iter().any(|u| u.id == user_id) {
        return Err(bad(format!(
            "{} {user_id} is not a valid user",
            layout.user_id
        )));
    }
    let status = (layout.status)(b)?;
    let customer_id = opt_str(b, "customer_id", "")?;
    if let Some(c) = &customer_id
        && !st.customers.iter().any(|x| x.id == *c)
    {
        return Err(bad(format!("customer_id {c} is not a valid customer")));
    }
    let sale_date = match opt_str(b, layout.sale_date, "")? {
        None => None,
        Some(s) => Some(
            (layout.parse_date)(&s)
                .ok_or_else(|| bad(format!("{} {s:?} is not a valid date", layout.sale_date)))?,
        ),
    };
    let invoice_sequence = match layout.invoice_sequence {
        None => None,
        Some(key) => match opt_num(b, key, "")? {
            None => None,
            Some(d) => Some(
                d.to_u64()
                    .filter(|_| d.fract().is_zero())
                    .ok_or_else(|| bad(format!("{key} must be a non-negative integer")))?,
            ),
        },
    };

    let lines = parse_lines(st, b, layout, &register.id)?;
    let payments = parse_payments(st, b, layout, &register.id)?;

    if status == "CLOSED" {
        // `price` is the final unit price (ex tax) and `tax` the unit tax; `discount` is
        // informational ("declared for reporting"), so it is not subtracted again.
        let total: Decimal = lines
            .iter()
            .filter(|l| l.status != "VOIDED")
            .map(|l| l.quantity * (l.price + l.tax))
            .sum();
        let paid: Decimal = payments.iter().map(|p| p.amount).sum();
        if round2(total) != round2(paid) {
            return Err(bad(format!(
                "A CLOSED sale must be fully paid: the sale total is {:.2} but the payments sum to {:.2}",
                round2(total),
                round2(paid)
            )));
        }
    }

    Ok(SaleInput {
        register_id,
        user_id,
        customer_id,
        status,
        sale_date,
        note: opt_str(b, "note", "")?,
        invoice_number: opt_str(b, "invoice_number", "")?.filter(|s| !s.is_empty()),
        invoice_sequence,
        source: opt_str(b, layout.source, "")?,
        source_id: opt_str(b, layout.source_id, "")?,
        short_code: opt_str(b, "short_code", "")?,
        lines,
        payments,
    })
}

/// The items of an array field, or the refusal: required ones must be a non-empty array.
fn items<'a>(
    b: &'a Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<&'a [Value], ApiResponse> {
    match (at(b, key), required) {
        (None, true) => Err(bad(format!("{key} is required"))),
        (Some(v), true) => v
            .as_array()
            .filter(|a| !a.is_empty())
            .map(Vec::as_slice)
            .ok_or_else(|| bad(format!("{key} must be a non-empty array"))),
        (None | Some(Value::Null), false) => Ok(&[]),
        (Some(v), false) => v
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| bad(format!("{key} must be an array"))),
    }
}

fn parse_lines(
    st: &State,
    b: &Map<String, Value>,
    layout: &SaleLayout,
    register_id: &str,
) -> Result<Vec<LsSaleLine>, ApiResponse> {
    let f = &layout.line;
    let products = items(b, layout.lines, layout.lines_required)?;
    let mut lines = Vec::with_capacity(products.len());
    for (i, item) in products.iter().enumerate() {
        let ctx = format!("{}[{i}].", layout.lines);
        let Some(o) = item.as_object() else {
            return Err(bad(format!("{}[{i}] must be an object", layout.lines)));
        };
        let product_id = req_str(o, f.product_id, &ctx)?;
        match st.ls_product(&product_id) {
            Some(p) if p.deleted_at.is_none() => {}
            _ => {
                return Err(bad(format!(
                    "{ctx}{} {product_id} is not a valid product",
                    f.product_id
                )));
            }
        }
        let quantity = req_num(o, f.quantity, &ctx)?;
        if quantity.is_zero() {
            return Err(bad(format!("{ctx}{} must not be zero", f.quantity)));
        }
        let price = req_num(o, f.price, &ctx)?;
        let tax = req_num(o, f.tax, &ctx)?;
        let tax_id = req_str(o, f.tax_id, &ctx)?;
        if st.ls_tax_rate(&tax_id).is_none() {
            return Err(bad(format!(
                "{ctx}{} {tax_id} is not a valid tax",
                f.tax_id
            )));
        }
        let line_register = opt_str(o, f.register_id, &ctx)?.unwrap_or(register_id.to_string());
        if st.register(&line_register).is_none() {
            return Err(bad(format!(
                "{ctx}{} {line_register} is not a valid register",
                f.register_id
            )));
        }
        let line_status = opt_str(o, f.status, &ctx)?.unwrap_or_else(|| "CONFIRMED".into());
        if !["CONFIRMED", "SAVED", "VOIDED"].contains(&line_status.as_str()) {
            return Err(bad(format!("{ctx}{} {line_status} is not valid", f.status)));
        }
        let sequence = match at(o, f.sequence) {
            None | Some(Value::Null) => i as u32,
            Some(v) => json_dec(v)
                .and_then(|d| d.trunc().to_u32())
                .ok_or_else(|| bad(format!("{ctx}{} must be a number", f.sequence)))?,
        };
        let note = match f.note {
            Some(key) => opt_str(o, key, &ctx)?,
            None => None,
        };
        lines.push(LsSaleLine {
            id: new_uuid(),
            product_id,
            register_id: line_register,
            sequence,
            quantity,
            price,
            cost: opt_num(o, f.cost, &ctx)?.unwrap_or_default(),
            discount: opt_num(o, f.discount, &ctx)?.unwrap_or_default(),
            loyalty_value: opt_num(o, f.loyalty_value, &ctx)?.unwrap_or_default(),
            tax,
            tax_id,
            price_set: opt_bool(o, f.price_set, &ctx)?.unwrap_or(false),
            status: line_status,
            note,
        });
    }
    Ok(lines)
}

fn parse_payments(
    st: &State,
    b: &Map<String, Value>,
    layout: &SaleLayout,
    register_id: &str,
) -> Result<Vec<LsPayment>, ApiResponse> {
    let f = &layout.payment;
    let mut payments = Vec::new();
    for (i, item) in items(b, layout.payments, false)?.iter().enumerate() {
        let ctx = format!("{}[{i}].", layout.payments);
        let Some(o) = item.as_object() else {
            return Err(bad(format!("{}[{i}] must be an object", layout.payments)));
        };
        let type_id = req_str(o, f.type_id, &ctx)?;
        if !st.payment_types.iter().any(|t| t.id == type_id) {
            return Err(bad(format!(
                "{ctx}{} {type_id} is not a valid payment type",
                f.type_id
            )));
        }
        let amount = req_num(o, f.amount, &ctx)?;
        let pay_register = opt_str(o, f.register_id, &ctx)?.unwrap_or(register_id.to_string());
        if st.register(&pay_register).is_none() {
            return Err(bad(format!(
                "{ctx}{} {pay_register} is not a valid register",
                f.register_id
            )));
        }
        let payment_date = match opt_str(o, f.date, &ctx)? {
            None => Utc::now(),
            Some(s) => (layout.parse_date)(&s)
                .ok_or_else(|| bad(format!("{ctx}{} {s:?} is not a valid date", f.date)))?,
        };
        payments.push(LsPayment {
            id: new_uuid(),
            register_id: pay_register,
            retailer_payment_type_id: type_id,
            payment_date,
            amount,
        });
    }
    Ok(payments)
}

/// Which sale a checked body becomes.
pub(crate) enum SaleTarget {
    /// The sale at this index, replaced: the body's lines and payments replace the sale's
    /// (lines left out are deleted, as in 0.9); other fields the body leaves out are kept.
    Replace(usize),
    /// A new sale, with this id (a client-supplied one) or a random one.
    New(Option<String>),
}

/// Store a checked sale in the retailer's one list of sales, and move its stock: a replaced
/// sale's stock is put back first; a sale whose status completes it takes its lines off stock
/// at its register's outlet ([`State::apply_sale_stock`]). Returns the sale's index.
pub(crate) fn store_sale(st: &mut State, input: SaleInput, target: SaleTarget) -> usize {
    let now = Utc::now();
    let outlet_id = st
        .register(&input.register_id)
        .map(|r| r.outlet_id.clone())
        .expect("validated");
    let idx = match target {
        SaleTarget::Replace(idx) => {
            st.apply_sale_stock(idx, false);
            let version = st.next_version();
            let s = &mut st.sales[idx];
            s.register_id = input.register_id;
            s.outlet_id = outlet_id;
            s.user_id = input.user_id;
            s.customer_id = input.customer_id;
            s.status = input.status;
            if let Some(d) = input.sale_date {
                s.sale_date = d;
            }
            if let Some(n) = input.note {
                s.note = n;
            }
            if let Some(n) = input.invoice_number {
                s.invoice_number = n;
            }
            if let Some(n) = input.invoice_sequence {
                s.invoice_sequence = n;
            }
            if let Some(v) = input.source {
                s.source = v;
            }
            if let Some(v) = input.source_id {
                s.source_id = v;
            }
            if let Some(v) = input.short_code {
                s.short_code = v;
            }
            s.lines = input.lines;
            s.payments = input.payments;
            s.updated_at = now;
            s.version = version;
            idx
        }
        SaleTarget::New(id) => {
            // Without a client id: ALWAYS a new sale, even with a repeated invoice_number (no
            // idempotency).
            let (invoice_number, invoice_sequence) = match input.invoice_number {
                Some(n) => (n, input.invoice_sequence.unwrap_or(0)),
                None => st.next_invoice(&input.register_id),
            };
            let version = st.next_version();
            st.sales.push(LsSale {
                id: id.unwrap_or_else(new_uuid),
                register_id: input.register_id,
                outlet_id,
                user_id: input.user_id,
                customer_id: input.customer_id,
                status: input.status,
                invoice_number,
                invoice_sequence,
                source: input.source.unwrap_or_default(),
                source_id: input.source_id.unwrap_or_default(),
                note: input.note.unwrap_or_default(),
                short_code: input
                    .short_code
                    .unwrap_or_else(|| random_code(b"abcdefghijklmnopqrstuvwxyz0123456789", 6)),
                sale_date: input.sale_date.unwrap_or(now),
                created_at: now,
                updated_at: now,
                searchable_at: Instant::now() + st.cfg.ls_search_lag,
                version,
                lines: input.lines,
                payments: input.payments,
                stock_taken: false,
                return_for: None,
            });
            st.sales.len() - 1
        }
    };
    if status_takes_stock(&st.sales[idx].status) {
        st.apply_sale_stock(idx, true);
    }
    idx
}
