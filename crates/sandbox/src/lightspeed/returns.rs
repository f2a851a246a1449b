//! Returns (refunds of a posted sale), in both generations, on the one list of sales.
//!
//! Sources: Lightspeed's tutorial "Returns" (docs `sales_returns`, and its v2026.04 copy), the
//! 2.0 OpenAPI file (initReturnSale, kept in `tests/fixtures/lightspeed/openapi-2.0.reduced.json`
//! with its example), the 2026-07 file (`returns.json`, `sales.json`: UpdateSale,
//! `SaleReturn`), the 2026-07 changelog entries "Prevent mixing of referenced and unreferenced
//! returns" and "Voiding of other parked returns", and the legacy "Editing Sales" tutorial
//! (docs `sales_editing_sales`). What they say and what is assumed is
//! `tests/fixtures/lightspeed/2026-07/MAPPING.md` §11; the README's sandbox table has a row per
//! rule.
//!
//! - **Start** (legacy `PUT /api/2.0/sales/{id}/actions/return`, 2026-07 `POST
//!   /api/2026-07/sales/{id}/actions/return`): only on a `CLOSED`, `ONACCOUNT_CLOSED` or
//!   `LAYBY_CLOSED` sale ("A completed sale ID - a valid sale with status of ..."), else 422.
//!   The answer is a new `SAVED` (parked) sale with `return_for` = the original and the
//!   original's lines negated, no payment. On 2026-07 the original's other parked returns are
//!   voided first (changelog).
//! - **Completion** is an update of the return: legacy `POST /api/register_sales` with the
//!   return's `id` (one endpoint creates and updates; the body replaces the sale), 2026-07 `PUT
//!   /api/2026-07/sales/{id}` (UpdateSale; the changelog names it as the completing call). Both
//!   go through [`check_update`] before the body replaces the sale and [`after_update`] after.

use std::collections::{HashMap, HashSet};

use axum::extract::Path;
use axum::http::StatusCode;
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::json;

use super::sale_input::SaleInput;
use super::{Id, dated_render, error, not_found, render_sale_20};
use crate::endpoint::Op;
use crate::server::ApiResponse;
use crate::specs::{ReturnLine, ReturnPayment, ReturnSale};
use crate::state::{LsSale, LsSaleLine, State, status_takes_stock};
use crate::util::new_uuid;

/// The statuses a return may be started on (2.0 initReturnSale's `sale_id`: "a valid sale
/// with status of `CLOSED`, `ONACCOUNT_CLOSED` or `LAYBY_CLOSED`").
pub(crate) const RETURNABLE: [&str; 3] = ["CLOSED", "ONACCOUNT_CLOSED", "LAYBY_CLOSED"];

fn unprocessable(details: impl AsRef<str>) -> ApiResponse {
    error(StatusCode::UNPROCESSABLE_ENTITY, details.as_ref())
}

fn find(st: &State, id: &str) -> Option<usize> {
    st.sales.iter().position(|s| s.id.eq_ignore_ascii_case(id))
}

/// `PUT /api/2.0/sales/{id}/actions/return` -> 200 `{"data": Sale}` in the 2.0 shape (the
/// tutorial's and the operation's example: `status: "SAVED"`, `state: "parked"`,
/// `return_for`, negative quantities and totals).
pub(crate) async fn put_legacy_start(Path(Id { id }): Path<Id>) -> Op {
    Op::new(move |st| match start(st, &id, false) {
        Ok(idx) => ApiResponse::ok(json!({"data": render_sale_20(st, &st.sales[idx])})),
        Err(refused) => refused,
    })
}

/// `POST /api/2026-07/sales/{id}/actions/return` (initReturnSale, returns.json) -> 200
/// `SaleResponse {data: Sale}`, the link in `return.original_sale_id`; or, with
/// [`crate::SandboxConfig::ls_dated_return_example_shape`], the operation's legacy-shaped
/// example (MAPPING.md §11: the example contradicts the schema).
pub(crate) async fn post_dated_start(Path(Id { id }): Path<Id>) -> Op {
    Op::new(move |st| match start(st, &id, true) {
        Ok(idx) => {
            let sale = &st.sales[idx];
            let data = if st.cfg.ls_dated_return_example_shape {
                render_sale_20(st, sale)
            } else {
                dated_render::sale(st, sale)
            };
            ApiResponse::ok(json!({ "data": data }))
        }
        Err(refused) => refused,
    })
}

/// Starts a return of sale `id`; the new return's index. `dated`: the 2026-07 rule that the
/// original's other parked returns are voided first.
///
/// ASSUMPTIONS: a return itself cannot be returned (422); the new return's lines are all the
/// original's (not voided) lines negated, whatever earlier returns took back (the completion's
/// body says what is returned); it gets the register's next invoice number, as the
/// tutorial's example has its own.
pub(crate) fn start(st: &mut State, id: &str, dated: bool) -> Result<usize, ApiResponse> {
    let Some(idx) = find(st, id) else {
        return Err(not_found("Sale not found"));
    };
    let original = &st.sales[idx];
    if original.return_for.is_some() {
        return Err(unprocessable(format!(
            "Sale {} is itself a return and cannot be returned",
            original.id
        )));
    }
    if !RETURNABLE.contains(&original.status.as_str()) {
        return Err(unprocessable(format!(
            "Sale {} is {}: only a sale with status {} can be returned",
            original.id,
            original.status,
            RETURNABLE.join(", ")
        )));
    }
    let original_id = original.id.clone();
    if dated {
        void_parked_returns(st, &original_id, None);
    }
    let original = &st.sales[idx];
    let lines: Vec<LsSaleLine> = original
        .lines
        .iter()
        .filter(|l| l.status != "VOIDED")
        .map(|l| LsSaleLine {
            id: new_uuid(),
            quantity: -l.quantity,
            status: "SAVED".into(),
            ..l.clone()
        })
        .collect();
    let (register_id, outlet_id, user_id, customer_id) = (
        original.register_id.clone(),
        original.outlet_id.clone(),
        original.user_id.clone(),
        original.customer_id.clone(),
    );
    let (invoice_number, invoice_sequence) = st.next_invoice(&register_id);
    let version = st.next_version();
    let now = Utc::now();
    st.sales.push(LsSale {
        id: new_uuid(),
        register_id,
        outlet_id,
        user_id,
        customer_id,
        status: "SAVED".into(),
        invoice_number,
        invoice_sequence,
        source: String::new(),
        source_id: String::new(),
        note: String::new(),
        short_code: crate::util::random_code(b"abcdefghijklmnopqrstuvwxyz0123456789", 6),
        sale_date: now,
        created_at: now,
        updated_at: now,
        searchable_at: std::time::Instant::now() + st.cfg.ls_search_lag,
        version,
        lines,
        payments: Vec::new(),
        stock_taken: false,
        return_for: Some(original_id),
    });
    Ok(st.sales.len() - 1)
}

/// Voids the parked (`SAVED`) returns of `original`, but `except` (2026-07 changelog "Voiding
/// of other parked returns": on a start and on a completion; closed returns are left alone).
fn void_parked_returns(st: &mut State, original: &str, except: Option<usize>) {
    let parked: Vec<usize> = st
        .sales
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            Some(*i) != except && s.status == "SAVED" && s.return_for.as_deref() == Some(original)
        })
        .map(|(i, _)| i)
        .collect();
    for i in parked {
        void(st, i);
    }
}

/// Voids the sale at `idx`: its stock, if it took any, goes back, and it gets a new version. A
/// voided sale stays voided.
pub(crate) fn void(st: &mut State, idx: usize) {
    if st.sales[idx].status == "VOIDED" {
        return;
    }
    st.apply_sale_stock(idx, false);
    let version = st.next_version();
    let s = &mut st.sales[idx];
    s.status = "VOIDED".into();
    s.version = version;
    s.updated_at = Utc::now();
}

/// Counts a completion attempt when the sale at `idx` is a referenced return.
pub(crate) fn count_completion(st: &mut State, idx: usize) {
    if st.sales[idx].return_for.is_some() {
        st.counters.ls_return_completions += 1;
    }
}

/// The rules a body must pass before it replaces the sale at `idx` (a legacy `register_sales`
/// body with an `id`, a 2026-07 UpdateSale body); `body_return_for` is a legacy body's
/// `return_for`.
///
/// - A closed or voided sale is not changed: 409 ("A closed sale can otherwise only be
///   voided"; a voided one, ASSUMPTION, neither), so a completion repeated after it succeeded
///   is refused and changes nothing.
/// - A legacy `return_for` must be the return's own (422, ASSUMPTION: the link is the return
///   action's, not the body's).
/// - A referenced return that closes: every returned product (a line with a negative quantity)
///   must be part of the original's return history, its lines and the products bought in an
///   exchange on its earlier closed returns (422; documented for 2026-07 UpdateSale, ASSUMPTION
///   on legacy: the sandbox is never kinder than the newest API); and no product may come back
///   more than was sold less what the original's earlier closed returns took back (422,
///   ASSUMPTION, stricter than anything documented).
pub(crate) fn check_update(
    st: &State,
    idx: usize,
    input: &SaleInput,
    body_return_for: Option<&str>,
) -> Result<(), ApiResponse> {
    let sale = &st.sales[idx];
    if status_takes_stock(&sale.status) || sale.status == "VOIDED" {
        return Err(error(
            StatusCode::CONFLICT,
            &format!(
                "Sale {} is {}: a closed sale cannot be changed, only voided",
                sale.id, sale.status
            ),
        ));
    }
    if let Some(given) = body_return_for
        && sale.return_for.as_deref() != Some(given)
    {
        return Err(unprocessable(format!(
            "return_for {given} is not this sale's: a return is started with PUT \
             /api/2.0/sales/{{id}}/actions/return"
        )));
    }
    let Some(original) = sale.return_for.as_deref() else {
        return Ok(());
    };
    if !status_takes_stock(input.status()) {
        return Ok(());
    }
    let (eligible, available) = history(st, original, idx);
    let mut returned: Vec<(String, Decimal)> = Vec::new();
    for l in input.lines().iter().filter(|l| l.status != "VOIDED") {
        if l.quantity.is_sign_negative() {
            match returned.iter_mut().find(|(p, _)| *p == l.product_id) {
                Some((_, q)) => *q -= l.quantity,
                None => returned.push((l.product_id.clone(), -l.quantity)),
            }
        }
    }
    for (product, _) in &returned {
        if !eligible.contains(product.as_str()) {
            return Err(unprocessable(format!(
                "Product {product} is not part of sale {original}'s return history: a \
                 referenced return may not include products that were not on the original sale"
            )));
        }
    }
    for (product, quantity) in &returned {
        let left = available.get(product.as_str()).copied().unwrap_or_default();
        if *quantity > left {
            return Err(unprocessable(format!(
                "Product {product}: {quantity} returned but only {left} of sale {original} \
                 is left to return"
            )));
        }
    }
    Ok(())
}

/// The original's return history, the return at `except` left out: the products eligible for
/// a referenced return, and how many of each are left to return (sold, plus bought in an
/// exchange, less taken back, over the original and its closed returns).
fn history<'a>(
    st: &'a State,
    original: &str,
    except: usize,
) -> (HashSet<&'a str>, HashMap<&'a str, Decimal>) {
    let mut eligible = HashSet::new();
    let mut available: HashMap<&str, Decimal> = HashMap::new();
    let returns = st.sales.iter().enumerate().filter(|(i, s)| {
        *i != except && s.return_for.as_deref() == Some(original) && status_takes_stock(&s.status)
    });
    let sold = st.sales.iter().filter(|s| s.id == original);
    for s in sold.chain(returns.map(|(_, s)| s)) {
        let is_original = s.return_for.is_none();
        for l in s.lines.iter().filter(|l| l.status != "VOIDED") {
            if is_original || l.quantity.is_sign_positive() {
                eligible.insert(l.product_id.as_str());
            }
            *available.entry(l.product_id.as_str()).or_default() += l.quantity;
        }
    }
    (eligible, available)
}

/// After a body replaced the sale at `idx`: on 2026-07 (`dated`), a referenced return that
/// closed voids the original's other parked returns (changelog "Voiding of other parked
/// returns", "Processing (completing) a return").
pub(crate) fn after_update(st: &mut State, idx: usize, dated: bool) {
    let sale = &st.sales[idx];
    if dated
        && status_takes_stock(&sale.status)
        && let Some(original) = sale.return_for.clone()
    {
        void_parked_returns(st, &original, Some(idx));
    }
}

/// The returns started on sale `original`, oldest first (`Sandbox::returns_for`).
pub(crate) fn returns_for(st: &State, original: &str) -> Vec<ReturnSale> {
    st.sales
        .iter()
        .filter(|s| s.return_for.as_deref() == Some(original))
        .map(|s| ReturnSale {
            id: s.id.clone(),
            status: s.status.clone(),
            lines: s
                .lines
                .iter()
                .map(|l| ReturnLine {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                    price: l.price,
                    tax: l.tax,
                })
                .collect(),
            total: s.total_price() + s.total_tax(),
            payments: s
                .payments
                .iter()
                .map(|p| ReturnPayment {
                    retailer_payment_type_id: p.retailer_payment_type_id.clone(),
                    amount: p.amount,
                })
                .collect(),
        })
        .collect()
}
