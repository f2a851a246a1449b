//! The fake Lightspeed Retail X-Series API: `register_sales` (0.9) and `/api/2.0/*`.

mod create_product;

use std::time::Instant;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use chrono::Utc;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::endpoint::params::{Count, First, Flag, LsDate};
use crate::endpoint::{BadParameter, JsonBody, Op, Query};
use crate::server::{ApiResponse, Shared};
use crate::state::{
    LsCustomer, LsInventory, LsPayment, LsProduct, LsSale, LsSaleLine, State, status_takes_stock,
};
use crate::util::{
    dec_json, json_dec, ls_date, ls09_date, new_uuid, parse_ls_date, random_code, round_dp, round2,
};

const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;
const SEARCH_MAX_PAGE: usize = 1000;

const SALE_STATUSES: &[&str] = &[
    "SAVED",
    "CLOSED",
    "ONACCOUNT",
    "ONACCOUNT_CLOSED",
    "LAYBY",
    "LAYBY_CLOSED",
    "AWAITING_DISPATCH",
    "AWAITING_PICKUP",
    "DISPATCHED_CLOSED",
    "PICKED_UP_CLOSED",
    "VOIDED",
];

pub(crate) fn error(status: StatusCode, details: &str) -> ApiResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    ApiResponse::json(status, json!({"error": title, "details": details}))
}

fn bad(details: impl AsRef<str>) -> ApiResponse {
    error(StatusCode::BAD_REQUEST, details.as_ref())
}

fn not_found(details: impl AsRef<str>) -> ApiResponse {
    error(StatusCode::NOT_FOUND, details.as_ref())
}

/// The real 429: this body and `Retry-After` as an HTTP date.
pub(crate) fn rate_limited(retry_at: &str) -> ApiResponse {
    ApiResponse::json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"error": "Too Many Requests", "message": "Rate limiting enforced"}),
    )
    .header("Retry-After", retry_at.to_string())
}

// ---------------------------------------------------------------------------------------------
// Routes

/// The retailer's endpoints, relative to its domain. Any other method or deeper path on a
/// known collection (`/api/register_sales`, `/api/2.0/products`...) answers 405; anything
/// else 404. The OAuth token endpoint ([`crate::oauth`]) is the one route that takes no
/// bearer token.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .nest(
            "/api/register_sales",
            collection()
                .route("/", post(post_register_sales))
                .route("/{id}", get(get_register_sale)),
        )
        .nest(
            "/api/2.0/products",
            collection()
                .route("/", get(get_products).post(create_product::post_products))
                .route(
                    "/{id}",
                    one("Product not found", |st, id| {
                        st.ls_product(id).map(|p| render_product(st, p))
                    }),
                )
                .route("/{id}/inventory", get(get_product_inventory)),
        )
        .nest(
            "/api/2.0/inventory",
            collection().route("/", get(get_inventory)),
        )
        .nest(
            "/api/2.0/registers",
            collection()
                .route(
                    "/",
                    list(|st| {
                        st.registers
                            .iter()
                            .map(|r| (r.version, render_register(st, &r.id)))
                            .collect()
                    }),
                )
                .route(
                    "/{id}",
                    one("Register not found", |st, id| {
                        st.register(id).map(|_| render_register(st, id))
                    }),
                ),
        )
        .nest(
            "/api/2.0/outlets",
            collection()
                .route(
                    "/",
                    list(|st| {
                        st.outlets
                            .iter()
                            .map(|o| (o.version, render_outlet(st, &o.id)))
                            .collect()
                    }),
                )
                .route(
                    "/{id}",
                    one("Outlet not found", |st, id| {
                        st.outlets
                            .iter()
                            .any(|o| o.id == id)
                            .then(|| render_outlet(st, id))
                    }),
                ),
        )
        .nest(
            "/api/2.0/payment_types",
            collection().route("/", list(payment_types)),
        )
        .nest("/api/2.0/taxes", collection().route("/", list(taxes)))
        .nest(
            "/api/2.0/users",
            collection()
                .route(
                    "/",
                    list(|st| {
                        st.users
                            .iter()
                            .map(|u| (u.version, render_user(st, &u.id)))
                            .collect()
                    }),
                )
                .route(
                    "/{id}",
                    one("User not found", |st, id| {
                        st.users
                            .iter()
                            .any(|u| u.id == id)
                            .then(|| render_user(st, id))
                    }),
                ),
        )
        .nest(
            "/api/2.0/retailer",
            collection().route("/", get(get_retailer)),
        )
        .nest(
            "/api/2.0/customers",
            collection()
                .route(
                    "/",
                    list(|st| {
                        st.customers
                            .iter()
                            .map(|c| (c.version, render_customer(c)))
                            .collect()
                    })
                    .post(post_customers),
                )
                .route(
                    "/{id}",
                    one("Customer not found", |st, id| {
                        st.customers
                            .iter()
                            .find(|c| c.id == id)
                            .map(render_customer)
                    }),
                ),
        )
        .nest(
            "/api/2.0/sales",
            collection()
                .route(
                    "/",
                    list(|st| {
                        st.sales
                            .iter()
                            .map(|s| (s.version, render_sale_20(st, s)))
                            .collect()
                    }),
                )
                .route(
                    "/{id}",
                    one("Sale not found", |st, id| {
                        st.sales
                            .iter()
                            .find(|s| s.id == id)
                            .map(|s| render_sale_20(st, s))
                    }),
                ),
        )
        .nest("/api/2.0/search", collection().route("/", get(get_search)))
        .route(
            TOKEN_PATH,
            post(crate::oauth::token_request).fallback(unknown_path),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_path)
}

/// `POST` here is the OAuth token endpoint.
pub(crate) const TOKEN_PATH: &str = "/api/1.0/token";

/// A known collection: whatever it does not route is a method it does not allow.
fn collection() -> Router<Shared> {
    Router::new().fallback(method_not_allowed)
}

/// `GET` a version-paginated list of the `(version, record)` pairs `records` renders.
fn list(records: fn(&State) -> Vec<(u64, Value)>) -> MethodRouter<Shared> {
    get(
        move |Query(v): Query<Versions>| async move { Op::new(move |st| versioned(records(st), &v)) },
    )
}

/// `GET` one record by id (`{"data": ...}`), or 404 with `missing` when `render` finds none.
fn one(missing: &'static str, render: fn(&State, &str) -> Option<Value>) -> MethodRouter<Shared> {
    get(move |Path(Id { id }): Path<Id>| async move {
        Op::new(move |st| match render(st, &id) {
            Some(data) => ApiResponse::ok(json!({ "data": data })),
            None => not_found(missing),
        })
    })
}

pub(crate) async fn method_not_allowed() -> Op {
    Op::answer(error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"))
}

async fn unknown_path() -> Op {
    Op::answer(not_found("Not found"))
}

/// A bad query parameter, as Lightspeed answers it.
pub(crate) fn bad_parameter(message: &str) -> ApiResponse {
    bad(message)
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

async fn post_register_sales(JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| post_register_sale(st, body.as_ref()))
}

async fn get_register_sale(Path(Id { id }): Path<Id>) -> Op {
    Op::new(move |st| match st.sales.iter().find(|s| s.id == id) {
        Some(s) => ApiResponse::ok(json!({"register_sales": [render_sale_09(st, s)]})),
        None => not_found("Register sale not found"),
    })
}

async fn get_products(
    Query(by_sku): Query<SkuQuery>,
    versions: Result<Query<Versions>, BadParameter>,
) -> Op {
    Op::new(move |st| match by_sku.sku.0 {
        // "All other query params are ignored if this is provided."
        Some(sku) => products_by_sku(st, &sku),
        None => match versions {
            Ok(Query(v)) => list_products(st, &v),
            Err(BadParameter(message)) => bad(message),
        },
    })
}

async fn get_product_inventory(
    Path(Id { id }): Path<Id>,
    versions: Result<Query<Versions>, BadParameter>,
) -> Op {
    Op::new(move |st| {
        // An unknown product is reported before a bad parameter.
        if st.ls_product(&id).is_none() {
            return not_found("Product not found");
        }
        let v = match versions {
            Ok(Query(v)) => v,
            Err(BadParameter(message)) => return bad(message),
        };
        let items = st
            .inventory
            .iter()
            .filter(|i| i.product_id == id)
            .map(|i| (i.version, render_inventory(i)))
            .collect();
        versioned(items, &v)
    })
}

async fn get_inventory(Query(v): Query<Versions>) -> Op {
    Op::new(move |st| {
        // Render only records past `after` (the full list can be large).
        let (after, size) = early_cut(&v);
        let mut rows: Vec<&LsInventory> =
            st.inventory.iter().filter(|i| i.version > after).collect();
        rows.sort_by_key(|i| i.version);
        rows.truncate(size);
        let items = rows
            .into_iter()
            .map(|i| (i.version, render_inventory(i)))
            .collect();
        versioned(items, &v)
    })
}

fn payment_types(st: &State) -> Vec<(u64, Value)> {
    st.payment_types
        .iter()
        .map(|p| {
            (
                p.version,
                json!({"id": p.id, "name": p.name, "type_id": p.type_id, "deleted_at": null, "version": p.version}),
            )
        })
        .collect()
}

fn taxes(st: &State) -> Vec<(u64, Value)> {
    st.taxes
        .iter()
        .map(|t| {
            (
                t.version,
                json!({
                    "id": t.id, "name": t.name, "display_name": t.name,
                    "rates": t.rates().into_iter().map(|(id, name, rate)| json!({"id": id, "name": name, "display_name": name, "rate": dec_json(rate)})).collect::<Vec<_>>(),
                    "is_default": t.is_default, "deleted_at": null, "version": t.version,
                }),
            )
        })
        .collect()
}

async fn get_retailer() -> Op {
    Op::new(|st| ApiResponse::ok(json!({"data": retailer(st)})))
}

async fn post_customers(JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| create_customer(st, body.as_ref()))
}

async fn get_search(Query(q): Query<SearchQuery>) -> Op {
    Op::new(move |st| search(st, &q))
}

// ---------------------------------------------------------------------------------------------
// Paging

/// The parameters of a version-paginated list.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Versions {
    /// Exclusive.
    after: Count,
    /// Exclusive.
    before: Count,
    page_size: Count,
    /// Include deleted records.
    deleted: Flag,
}

fn page_size(size: Option<u64>, max: usize) -> Result<usize, ApiResponse> {
    match size {
        None => Ok(DEFAULT_PAGE.min(max)),
        Some(0) => Err(bad("page_size must be positive")),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(max)),
    }
}

/// A version-paginated list, sorted by version. An empty page carries no `version` object.
fn versioned(mut items: Vec<(u64, Value)>, v: &Versions) -> ApiResponse {
    let after = v.after.0.unwrap_or(0);
    let size = match page_size(v.page_size.0, MAX_PAGE) {
        Ok(n) => n,
        Err(e) => return e,
    };
    items.retain(|(version, item)| {
        *version > after
            && v.before.0.is_none_or(|b| *version < b)
            && (v.deleted.0 || item.get("deleted_at").is_none_or(Value::is_null))
    });
    items.sort_by_key(|(version, _)| *version);
    items.truncate(size);
    let mut out = Map::new();
    if let (Some((min, _)), Some((max, _))) = (items.first(), items.last()) {
        out.insert("version".into(), json!({"min": min, "max": max}));
    }
    out.insert(
        "data".into(),
        Value::Array(items.into_iter().map(|(_, item)| item).collect()),
    );
    ApiResponse::ok(Value::Object(out))
}

/// `after` and the page size of a list, so that a large list is cut before it is rendered;
/// [`versioned`] then applies every rule (and reports a bad page size) on what is left.
/// Without `before`, the first `page_size` rows past `after` are exactly what `versioned`
/// would keep.
fn early_cut(v: &Versions) -> (u64, usize) {
    let size = if v.before.0.is_some() {
        usize::MAX
    } else {
        page_size(v.page_size.0, MAX_PAGE).unwrap_or(MAX_PAGE)
    };
    (v.after.0.unwrap_or(0), size)
}

// ---------------------------------------------------------------------------------------------
// Rendering (2.0)

pub(crate) fn render_product(st: &State, p: &LsProduct) -> Value {
    let rate = p
        .tax_id
        .as_deref()
        .and_then(|t| st.ls_tax_rate(t))
        .unwrap_or_default();
    let incl = round_dp(p.price_excl * (Decimal::ONE + rate), 5);
    let variant_count = if p.has_variants {
        st.products
            .iter()
            .filter(|x| x.deleted_at.is_none())
            .filter(|x| x.id == p.id || x.variant_parent_id.as_deref() == Some(p.id.as_str()))
            .count()
    } else {
        0
    };
    json!({
        "id": p.id,
        "name": p.name,
        "variant_name": p.variant_name,
        "handle": p.handle,
        "sku": p.sku,
        "description": p.description,
        "source": p.source,
        "source_id": p.source_id,
        "source_variant_id": null,
        "active": p.active,
        "is_active": p.active,
        "has_inventory": p.has_inventory,
        "is_composite": false,
        "has_variants": p.has_variants,
        "variant_parent_id": p.variant_parent_id,
        "variant_options": p.variant_options.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        "variant_count": variant_count,
        "price_including_tax": dec_json(incl),
        "price_excluding_tax": dec_json(p.price_excl),
        "supply_price": dec_json(p.supply_price),
        "supplier_code": "",
        "product_codes": [],
        "product_suppliers": [],
        "tag_ids": [],
        "categories": [],
        "attributes": [],
        "images": [],
        "image_url": "https://secure.retail.lightspeed.app/images/placeholder/product/no-image-white-standard.png",
        "image_thumbnail_url": "https://secure.retail.lightspeed.app/images/placeholder/product/no-image-white-thumb.png",
        "button_order": 0,
        "created_at": ls_date(p.created_at),
        "updated_at": ls_date(p.updated_at),
        "deleted_at": p.deleted_at.map(ls_date),
        "version": p.version,
    })
}

fn render_inventory(i: &LsInventory) -> Value {
    json!({
        "id": i.id,
        "product_id": i.product_id,
        "outlet_id": i.outlet_id,
        "inventory_level": dec_json(i.level),
        "current_amount": dec_json(i.level),
        "reorder_point": 0,
        "reorder_amount": 0,
        "average_cost": 0,
        "version": i.version,
    })
}

fn render_register(st: &State, id: &str) -> Value {
    let r = st.register(id).expect("checked");
    json!({
        "id": r.id,
        "name": r.name,
        "outlet_id": r.outlet_id,
        "ask_for_note_on_save": 0,
        "print_note_on_receipt": false,
        "ask_for_user_on_sale": false,
        "show_discounts_on_receipts": true,
        "print_receipt": false,
        "email_receipt": false,
        "invoice_prefix": r.invoice_prefix,
        "invoice_suffix": r.invoice_suffix,
        "invoice_sequence": r.invoice_sequence,
        "button_layout_id": null,
        "is_open": true,
        "receipt_template_id": crate::util::seed_uuid(90),
        "register_open_time": ls_date(r.opened_at),
        "register_close_time": null,
        "register_open_sequence_id": crate::util::seed_uuid(91),
        "cash_managed_payment_type_id": st.seed.cash_payment_type_id,
        "deleted_at": null,
        "version": r.version,
    })
}

fn render_outlet(st: &State, id: &str) -> Value {
    let o = st.outlets.iter().find(|o| o.id == id).expect("checked");
    let tax = st.default_ls_tax_id();
    json!({
        "id": o.id,
        "name": o.name,
        "time_zone": "America/New_York",
        "default_tax_id": tax,
        "currency": st.cfg.currency,
        "currency_symbol": "$",
        "display_prices": "exclusive",
        "physical_address_1": "1 Sandbox Street",
        "physical_address_2": "",
        "physical_suburb": "",
        "physical_city": "Springfield",
        "physical_postcode": "12345",
        "physical_state": "IL",
        "physical_country_id": "US",
        "attributes": [],
        "deleted_at": null,
        "version": o.version,
    })
}

fn render_user(st: &State, id: &str) -> Value {
    let u = st.users.iter().find(|u| u.id == id).expect("checked");
    json!({
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "email": u.email,
        "email_verified_at": null,
        "account_type": "admin",
        "roles": [{"id": "100", "name": "Admin", "system_role_id": "100"}],
        "enabled": true,
        "restricted_outlet_id": null,
        "restricted_outlet_ids": [],
        "permissions": [],
        "rules": {},
        "is_primary_user": true,
        "image_source": "https://secure.retail.lightspeed.app/images/placeholder/customer/no-image-white-standard.png",
        "created_at": ls_date(u.created_at),
        "updated_at": ls_date(u.created_at),
        "deleted_at": null,
        "version": u.version,
    })
}

fn retailer(st: &State) -> Value {
    json!({
        "id": st.retailer_id,
        "domain_prefix": st.cfg.ls_domain_prefix,
        "store_url": format!("https://{}.retail.lightspeed.app", st.cfg.ls_domain_prefix),
        "account_status": "active",
        "account_type": "paying",
        "name": "Sandbox Retailer",
        "discount_product_id": st.discount_product_id,
        "no_tax_group_id": st.no_tax_group_id,
        "default_customer_group_id": st.customer_group_id,
        "loyalty": {"enabled": false, "ratio": 0, "send_welcome_email": false},
        "sku_sequence": {"enabled": false, "value": 10000},
        "culture": "en-US",
        "tax_exclusive": true,
        "country": "US",
        "currency": {"code": st.cfg.currency, "symbol": "$"},
        "store_credit": false,
        "gift_cards": {"enabled": false, "never_enabled": true},
        "created_at": ls_date(st.retailer_created),
        "activated_at": ls_date(st.retailer_created),
    })
}

pub(crate) fn render_customer(c: &LsCustomer) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), c.id.clone().into());
    m.insert("customer_code".into(), c.customer_code.clone().into());
    m.insert(
        "name".into(),
        format!("{} {}", c.first_name, c.last_name).trim().into(),
    );
    m.insert("first_name".into(), c.first_name.clone().into());
    m.insert("last_name".into(), c.last_name.clone().into());
    m.insert("email".into(), c.email.clone().into());
    for k in [
        "note",
        "gender",
        "date_of_birth",
        "company_name",
        "phone",
        "mobile",
        "fax",
        "twitter",
        "website",
    ] {
        m.insert(k.into(), Value::Null);
    }
    m.insert("year_to_date".into(), 0.into());
    m.insert("balance".into(), 0.into());
    m.insert("loyalty_balance".into(), 0.into());
    m.insert("do_not_email".into(), false.into());
    m.insert("enable_loyalty".into(), false.into());
    for (k, v) in &c.extra {
        m.insert(k.clone(), v.clone());
    }
    m.entry("customer_group_id")
        .or_insert(crate::util::seed_uuid(2).into());
    m.insert("created_at".into(), ls_date(c.created_at).into());
    m.insert("updated_at".into(), ls_date(c.updated_at).into());
    m.insert("deleted_at".into(), Value::Null);
    m.insert("version".into(), c.version.into());
    Value::Object(m)
}

fn sale_state(status: &str) -> &'static str {
    match status {
        "SAVED" | "LAYBY" | "ONACCOUNT" => "parked",
        "AWAITING_DISPATCH" | "AWAITING_PICKUP" => "pending",
        "VOIDED" => "voided",
        _ => "closed",
    }
}

pub(crate) fn render_sale_20(st: &State, s: &LsSale) -> Value {
    // A line's tax split over its tax's rates (a group has several).
    let components = |tax_id: &str, amount: Decimal| -> Vec<(String, String, Decimal, Decimal)> {
        st.taxes
            .iter()
            .find(|t| t.id == tax_id)
            .map(|t| t.split_amount(amount))
            .unwrap_or_else(|| vec![(String::new(), String::new(), Decimal::ZERO, amount)])
    };
    let mut taxes: Vec<(String, Decimal)> = Vec::new();
    let lines: Vec<Value> = s
        .lines
        .iter()
        .map(|l| {
            let tax_total = l.tax * l.quantity;
            match taxes.iter_mut().find(|(id, _)| *id == l.tax_id) {
                Some((_, sum)) => *sum += tax_total,
                None => taxes.push((l.tax_id.clone(), tax_total)),
            }
            json!({
                "id": l.id,
                "product_id": l.product_id,
                "tax_id": l.tax_id,
                "discount_total": dec_json(l.discount * l.quantity),
                "discount": dec_json(l.discount),
                "price_total": dec_json(l.price * l.quantity),
                "price": dec_json(l.price),
                "cost_total": dec_json(l.cost * l.quantity),
                "cost": dec_json(l.cost),
                "tax_total": dec_json(tax_total),
                "tax": dec_json(l.tax),
                "quantity": dec_json(l.quantity),
                "loyalty_value": dec_json(l.loyalty_value),
                "price_set": l.price_set,
                "status": l.status,
                "sequence": l.sequence,
                "note": l.note,
                "is_return": l.quantity.is_sign_negative(),
                "tax_components": components(&l.tax_id, tax_total)
                    .into_iter()
                    .map(|(rate_id, _, _, part)| json!({"rate_id": rate_id, "total_tax": dec_json(part)}))
                    .collect::<Vec<_>>(),
                "unit_price": dec_json(l.price),
                "unit_tax": dec_json(l.tax),
                "unit_discount": dec_json(l.discount),
                "unit_cost": dec_json(l.cost),
                "unit_loyalty_value": dec_json(l.loyalty_value),
                "total_price": dec_json(l.price * l.quantity),
                "total_tax": dec_json(tax_total),
                "total_discount": dec_json(l.discount * l.quantity),
                "total_cost": dec_json(l.cost * l.quantity),
                "total_loyalty_value": dec_json(l.loyalty_value * l.quantity),
            })
        })
        .collect();
    let payments: Vec<Value> = s
        .payments
        .iter()
        .map(|p| {
            let pt = st
                .payment_types
                .iter()
                .find(|t| t.id == p.retailer_payment_type_id);
            json!({
                "id": p.id,
                "register_id": p.register_id,
                "outlet_id": s.outlet_id,
                "retailer_payment_type_id": p.retailer_payment_type_id,
                "payment_type_id": pt.map(|t| t.type_id.to_string()).unwrap_or_default(),
                "name": pt.map(|t| t.name.clone()).unwrap_or_default(),
                "amount": dec_json(p.amount),
                "payment_date": ls_date(p.payment_date),
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("id".into(), s.id.clone().into());
    m.insert("outlet_id".into(), s.outlet_id.clone().into());
    m.insert("register_id".into(), s.register_id.clone().into());
    m.insert("user_id".into(), s.user_id.clone().into());
    if let Some(c) = &s.customer_id {
        m.insert("customer_id".into(), c.clone().into());
    }
    m.insert("invoice_number".into(), s.invoice_number.clone().into());
    m.insert("invoice_sequence".into(), s.invoice_sequence.into());
    m.insert("receipt_number".into(), s.invoice_number.clone().into());
    m.insert("source".into(), s.source.clone().into());
    m.insert("source_id".into(), s.source_id.clone().into());
    m.insert("status".into(), s.status.clone().into());
    m.insert("state".into(), sale_state(&s.status).into());
    m.insert("note".into(), s.note.clone().into());
    m.insert("short_code".into(), s.short_code.clone().into());
    m.insert("return_for".into(), Value::Null);
    m.insert("total_price".into(), dec_json(s.total_price()));
    m.insert("total_tax".into(), dec_json(s.total_tax()));
    m.insert("total_loyalty".into(), 0.into());
    m.insert("sale_date".into(), ls_date(s.sale_date).into());
    m.insert("created_at".into(), ls_date(s.created_at).into());
    m.insert("updated_at".into(), ls_date(s.updated_at).into());
    m.insert("deleted_at".into(), Value::Null);
    m.insert("version".into(), s.version.into());
    m.insert("line_items".into(), Value::Array(lines));
    m.insert("payments".into(), Value::Array(payments));
    m.insert(
        "taxes".into(),
        Value::Array(
            taxes
                .into_iter()
                .flat_map(|(id, amount)| components(&id, amount))
                .map(|(rate_id, name, rate, amount)| {
                    json!({
                        "id": rate_id,
                        "name": name,
                        "rate": dec_json(rate),
                        "amount": dec_json(amount),
                    })
                })
                .collect(),
        ),
    );
    m.insert("adjustments".into(), json!([]));
    m.insert("attributes".into(), json!([]));
    Value::Object(m)
}

/// The register_sale object (API 0.9) as `POST /api/register_sales` returns it.
pub(crate) fn render_sale_09(st: &State, s: &LsSale) -> Value {
    let products: Vec<Value> = s
        .lines
        .iter()
        .map(|l| {
            let p = st.ls_product(&l.product_id);
            let t = st.taxes.iter().find(|t| t.id == l.tax_id);
            json!({
                "id": l.id,
                "product_id": l.product_id,
                "register_id": l.register_id,
                "sequence": l.sequence.to_string(),
                "handle": p.map(|p| p.handle.clone()).unwrap_or_default(),
                "sku": p.map(|p| p.sku.clone()).unwrap_or_default(),
                "name": p.map(|p| p.variant_name.clone()).unwrap_or_default(),
                "quantity": dec_json(l.quantity),
                "price": dec_json(l.price),
                "cost": dec_json(l.cost),
                "price_set": i32::from(l.price_set),
                "discount": dec_json(l.discount),
                "loyalty_value": dec_json(l.loyalty_value),
                "tax": dec_json(l.tax),
                "tax_id": l.tax_id,
                "tax_name": t.map(|t| t.name.clone()).unwrap_or_default(),
                "tax_rate": dec_json(t.map(|t| t.rate).unwrap_or_default()),
                "tax_total": dec_json(l.tax * l.quantity),
                "price_total": dec_json(l.price * l.quantity),
                "display_retail_price_tax_inclusive": "0",
                "status": l.status,
                "attributes": [],
            })
        })
        .collect();
    let payments: Vec<Value> = s
        .payments
        .iter()
        .map(|p| {
            let pt = st
                .payment_types
                .iter()
                .find(|t| t.id == p.retailer_payment_type_id);
            json!({
                "id": p.id,
                "payment_type_id": pt.map(|t| t.type_id.to_string()).unwrap_or_default(),
                "register_id": p.register_id,
                "retailer_payment_type_id": p.retailer_payment_type_id,
                "name": pt.map(|t| t.name.clone()).unwrap_or_default(),
                "label": pt.map(|t| t.name.clone()).unwrap_or_default(),
                "payment_date": ls09_date(p.payment_date),
                "amount": dec_json(p.amount),
            })
        })
        .collect();
    let customer_name = s
        .customer_id
        .as_deref()
        .and_then(|id| st.customers.iter().find(|c| c.id == id))
        .map(|c| {
            format!("{} {}", c.first_name, c.last_name)
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let user_name = st
        .users
        .iter()
        .find(|u| u.id == s.user_id)
        .map(|u| u.display_name.clone())
        .unwrap_or_default();
    let total = s.total_price() + s.total_tax();
    json!({
        "id": s.id,
        "source": s.source,
        "source_id": s.source_id,
        "register_id": s.register_id,
        "market_id": "1",
        "customer_id": s.customer_id,
        "customer_name": customer_name,
        "user_id": s.user_id,
        "user_name": user_name,
        "sale_date": ls09_date(s.sale_date),
        "created_at": ls09_date(s.created_at),
        "updated_at": ls09_date(s.updated_at),
        "total_price": dec_json(s.total_price()),
        "total_cost": dec_json(s.lines.iter().map(|l| l.cost * l.quantity).sum()),
        "total_tax": dec_json(s.total_tax()),
        "note": s.note,
        "status": s.status,
        "short_code": s.short_code,
        "invoice_number": s.invoice_number,
        "invoice_sequence": s.invoice_sequence,
        "accounts_transaction_id": "",
        "return_for": null,
        "register_sale_products": products,
        "totals": {
            "total_tax": dec_json(s.total_tax()),
            "total_price": dec_json(s.total_price()),
            "total_payment": dec_json(s.total_payment()),
            "total_to_pay": dec_json(total - s.total_payment()),
        },
        "register_sale_payments": payments,
    })
}

// ---------------------------------------------------------------------------------------------
// register_sales

/// An optional string field: absent or null = None; anything but a string is an error.
fn opt_str(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<String>, ApiResponse> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("{ctx}{key} must be a string"))),
    }
}

fn req_str(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<String, ApiResponse> {
    match opt_str(obj, key, ctx)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(bad(format!("{ctx}{key} is required"))),
    }
}

fn opt_num(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<Decimal>, ApiResponse> {
    match obj.get(key) {
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
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => match json_dec(v) {
            Some(d) if d.is_zero() => Ok(Some(false)),
            Some(d) if d == Decimal::ONE => Ok(Some(true)),
            _ => Err(bad(format!("{ctx}{key} must be a boolean, 0 or 1"))),
        },
    }
}

struct SaleInput {
    register_id: String,
    user_id: String,
    customer_id: Option<String>,
    status: String,
    sale_date: Option<chrono::DateTime<Utc>>,
    note: Option<String>,
    invoice_number: Option<String>,
    invoice_sequence: Option<u64>,
    source: Option<String>,
    source_id: Option<String>,
    short_code: Option<String>,
    lines: Vec<LsSaleLine>,
    payments: Vec<LsPayment>,
}

fn parse_sale(st: &State, b: &Map<String, Value>) -> Result<SaleInput, ApiResponse> {
    let register_id = req_str(b, "register_id", "")?;
    let Some(register) = st.register(&register_id) else {
        return Err(bad(format!(
            "register_id {register_id} is not a valid register"
        )));
    };
    let user_id = req_str(b, "user_id", "")?;
    if !st.users.iter().any(|u| u.id == user_id) {
        return Err(bad(format!("user_id {user_id} is not a valid user")));
    }
    let status = req_str(b, "status", "")?;
    if !SALE_STATUSES.contains(&status.as_str()) {
        return Err(bad(format!(
            "status {status} is not one of {}",
            SALE_STATUSES.join(", ")
        )));
    }
    let customer_id = opt_str(b, "customer_id", "")?;
    if let Some(c) = &customer_id
        && !st.customers.iter().any(|x| x.id == *c)
    {
        return Err(bad(format!("customer_id {c} is not a valid customer")));
    }
    let sale_date = match opt_str(b, "sale_date", "")? {
        None => None,
        Some(s) => Some(
            parse_ls_date(&s).ok_or_else(|| bad(format!("sale_date {s:?} is not a valid date")))?,
        ),
    };
    let invoice_sequence = match opt_num(b, "invoice_sequence", "")? {
        None => None,
        Some(d) => Some(
            d.to_u64()
                .filter(|_| d.fract().is_zero())
                .ok_or_else(|| bad("invoice_sequence must be a non-negative integer"))?,
        ),
    };

    let Some(products) = b.get("register_sale_products") else {
        return Err(bad("register_sale_products is required"));
    };
    let Some(products) = products.as_array().filter(|a| !a.is_empty()) else {
        return Err(bad("register_sale_products must be a non-empty array"));
    };
    let mut lines = Vec::with_capacity(products.len());
    for (i, item) in products.iter().enumerate() {
        let ctx = format!("register_sale_products[{i}].");
        let Some(o) = item.as_object() else {
            return Err(bad(format!(
                "register_sale_products[{i}] must be an object"
            )));
        };
        let product_id = req_str(o, "product_id", &ctx)?;
        match st.ls_product(&product_id) {
            Some(p) if p.deleted_at.is_none() => {}
            _ => {
                return Err(bad(format!(
                    "{ctx}product_id {product_id} is not a valid product"
                )));
            }
        }
        let quantity = req_num(o, "quantity", &ctx)?;
        if quantity.is_zero() {
            return Err(bad(format!("{ctx}quantity must not be zero")));
        }
        let price = req_num(o, "price", &ctx)?;
        let tax = req_num(o, "tax", &ctx)?;
        let tax_id = req_str(o, "tax_id", &ctx)?;
        if st.ls_tax_rate(&tax_id).is_none() {
            return Err(bad(format!("{ctx}tax_id {tax_id} is not a valid tax")));
        }
        let line_register = opt_str(o, "register_id", &ctx)?.unwrap_or(register.id.clone());
        if st.register(&line_register).is_none() {
            return Err(bad(format!(
                "{ctx}register_id {line_register} is not a valid register"
            )));
        }
        let line_status = opt_str(o, "status", &ctx)?.unwrap_or_else(|| "CONFIRMED".into());
        if !["CONFIRMED", "SAVED", "VOIDED"].contains(&line_status.as_str()) {
            return Err(bad(format!("{ctx}status {line_status} is not valid")));
        }
        let sequence = match o.get("sequence") {
            None | Some(Value::Null) => i as u32,
            Some(v) => json_dec(v)
                .and_then(|d| d.trunc().to_u32())
                .ok_or_else(|| bad(format!("{ctx}sequence must be a number")))?,
        };
        lines.push(LsSaleLine {
            id: new_uuid(),
            product_id,
            register_id: line_register,
            sequence,
            quantity,
            price,
            cost: opt_num(o, "cost", &ctx)?.unwrap_or_default(),
            discount: opt_num(o, "discount", &ctx)?.unwrap_or_default(),
            loyalty_value: opt_num(o, "loyalty_value", &ctx)?.unwrap_or_default(),
            tax,
            tax_id,
            price_set: opt_bool(o, "price_set", &ctx)?.unwrap_or(false),
            status: line_status,
            note: opt_str(o, "note", &ctx)?,
        });
    }

    let mut payments = Vec::new();
    match b.get("register_sale_payments") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let ctx = format!("register_sale_payments[{i}].");
                let Some(o) = item.as_object() else {
                    return Err(bad(format!(
                        "register_sale_payments[{i}] must be an object"
                    )));
                };
                let type_id = req_str(o, "retailer_payment_type_id", &ctx)?;
                if !st.payment_types.iter().any(|t| t.id == type_id) {
                    return Err(bad(format!(
                        "{ctx}retailer_payment_type_id {type_id} is not a valid payment type"
                    )));
                }
                let amount = req_num(o, "amount", &ctx)?;
                let pay_register = opt_str(o, "register_id", &ctx)?.unwrap_or(register.id.clone());
                if st.register(&pay_register).is_none() {
                    return Err(bad(format!(
                        "{ctx}register_id {pay_register} is not a valid register"
                    )));
                }
                let payment_date = match opt_str(o, "payment_date", &ctx)? {
                    None => Utc::now(),
                    Some(s) => parse_ls_date(&s).ok_or_else(|| {
                        bad(format!("{ctx}payment_date {s:?} is not a valid date"))
                    })?,
                };
                payments.push(LsPayment {
                    id: new_uuid(),
                    register_id: pay_register,
                    retailer_payment_type_id: type_id,
                    payment_date,
                    amount,
                });
            }
        }
        Some(_) => return Err(bad("register_sale_payments must be an array")),
    }

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
        source: opt_str(b, "source", "")?,
        source_id: opt_str(b, "source_id", "")?,
        short_code: opt_str(b, "short_code", "")?,
        lines,
        payments,
    })
}

fn post_register_sale(st: &mut State, body: Option<&Value>) -> ApiResponse {
    let Some(Value::Object(b)) = body else {
        return bad("The request body must be a JSON object");
    };
    let existing = match opt_str(b, "id", "") {
        Ok(id) => id.filter(|s| !s.is_empty()),
        Err(e) => return e,
    };
    let input = match parse_sale(st, b) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let now = Utc::now();
    let outlet_id = st
        .register(&input.register_id)
        .map(|r| r.outlet_id.clone())
        .expect("validated");
    let idx = match existing {
        Some(id) => {
            // Update: the body replaces the sale (lines left out are deleted, as in 0.9).
            let Some(idx) = st.sales.iter().position(|s| s.id == id) else {
                return not_found(format!("Register sale {id} not found"));
            };
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
        None => {
            // No id: ALWAYS a new sale, even with a repeated invoice_number (no idempotency).
            let (invoice_number, invoice_sequence) = match input.invoice_number {
                Some(n) => (n, input.invoice_sequence.unwrap_or(0)),
                None => st.next_invoice(&input.register_id),
            };
            let version = st.next_version();
            st.sales.push(LsSale {
                id: new_uuid(),
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
            });
            st.sales.len() - 1
        }
    };
    if status_takes_stock(&st.sales[idx].status) {
        st.apply_sale_stock(idx, true);
    }
    ApiResponse::ok(json!({"register_sale": render_sale_09(st, &st.sales[idx])}))
}

// ---------------------------------------------------------------------------------------------
// Products list, search, customers

/// `GET /api/2.0/products?sku=`: the one parameter read when it is given.
#[derive(Default, Deserialize)]
#[serde(default)]
struct SkuQuery {
    sku: First,
}

/// The products with exactly this SKU (not deleted).
fn products_by_sku(st: &State, sku: &str) -> ApiResponse {
    let data: Vec<Value> = st
        .products
        .iter()
        .filter(|p| p.deleted_at.is_none() && p.sku == sku)
        .map(|p| render_product(st, p))
        .collect();
    let mut out = Map::new();
    let versions: Vec<u64> = data
        .iter()
        .filter_map(|p| p.get("version").and_then(Value::as_u64))
        .collect();
    if let (Some(min), Some(max)) = (versions.iter().min(), versions.iter().max()) {
        out.insert("version".into(), json!({"min": min, "max": max}));
    }
    out.insert("data".into(), Value::Array(data));
    ApiResponse::ok(Value::Object(out))
}

fn list_products(st: &State, v: &Versions) -> ApiResponse {
    let (after, size) = early_cut(v);
    let mut rows: Vec<&LsProduct> = st
        .products
        .iter()
        .filter(|p| p.version > after && (v.deleted.0 || p.deleted_at.is_none()))
        .collect();
    rows.sort_by_key(|p| p.version);
    rows.truncate(size);
    let items = rows
        .into_iter()
        .map(|p| (p.version, render_product(st, p)))
        .collect();
    versioned(items, v)
}

fn contains_ci(hay: Option<&str>, needle: &str) -> bool {
    hay.is_some_and(|h| h.to_lowercase().contains(&needle.to_lowercase()))
}

/// `GET /api/2.0/search`: `type`, paging, and the filters of each type. A filter given more
/// than once counts by its first value, except `status`, `sku` and `-sku`, which take several.
#[derive(Default, Deserialize)]
#[serde(default)]
struct SearchQuery {
    #[serde(rename = "type")]
    kind: First,
    offset: Count,
    page_size: Count,
    deleted: Flag,
    // Sales.
    status: Vec<String>,
    invoice_number: First,
    customer_id: First,
    user_id: First,
    outlet_id: First,
    date_from: LsDate,
    date_to: LsDate,
    // Products.
    sku: Vec<String>,
    #[serde(rename = "-sku")]
    not_sku: Vec<String>,
    variant_parent_id: First,
    // Customers: case-insensitive substrings.
    email: First,
    customer_code: First,
    first_name: First,
    last_name: First,
    company_name: First,
    mobile: First,
    phone: First,
}

fn search(st: &State, q: &SearchQuery) -> ApiResponse {
    let offset = usize::try_from(q.offset.0.unwrap_or(0)).unwrap_or(usize::MAX);
    let size = match page_size(q.page_size.0, SEARCH_MAX_PAGE) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let data: Vec<Value> = match q.kind.as_deref() {
        None | Some("") => return bad("type is required"),
        Some("sales") => {
            let now = Instant::now();
            let given = |filter: &First, value: &str| filter.as_deref().is_none_or(|f| f == value);
            st.sales
                .iter()
                .filter(|s| s.searchable_at <= now)
                .filter(|s| given(&q.invoice_number, &s.invoice_number))
                .filter(|s| q.status.is_empty() || q.status.contains(&s.status))
                .filter(|s| {
                    q.customer_id
                        .as_deref()
                        .is_none_or(|c| s.customer_id.as_deref() == Some(c))
                })
                .filter(|s| given(&q.user_id, &s.user_id))
                .filter(|s| given(&q.outlet_id, &s.outlet_id))
                .filter(|s| q.date_from.0.is_none_or(|d| s.sale_date >= d))
                .filter(|s| q.date_to.0.is_none_or(|d| s.sale_date <= d))
                .map(|s| render_sale_20(st, s))
                .collect()
        }
        Some("products") => {
            // The index stores SKUs lower-cased: a query with capitals finds nothing.
            st.products
                .iter()
                .filter(|p| q.deleted.0 || p.deleted_at.is_none())
                .filter(|p| q.sku.is_empty() || q.sku.contains(&p.sku.to_lowercase()))
                .filter(|p| !q.not_sku.contains(&p.sku.to_lowercase()))
                .filter(|p| {
                    q.variant_parent_id
                        .as_deref()
                        .is_none_or(|v| p.variant_parent_id.as_deref() == Some(v))
                })
                .map(|p| render_product(st, p))
                .collect()
        }
        Some("customers") => {
            // The real match rules are unknown: a case-insensitive substring match may return
            // extra hits, so clients must re-check.
            let extra = |c: &LsCustomer, key: &str| -> Option<String> {
                c.extra.get(key).and_then(Value::as_str).map(str::to_string)
            };
            st.customers
                .iter()
                .filter(|c| {
                    [
                        (&q.email, c.email.clone()),
                        (&q.customer_code, Some(c.customer_code.clone())),
                        (&q.first_name, Some(c.first_name.clone())),
                        (&q.last_name, Some(c.last_name.clone())),
                        (&q.company_name, extra(c, "company_name")),
                        (&q.mobile, extra(c, "mobile")),
                        (&q.phone, extra(c, "phone")),
                    ]
                    .iter()
                    .all(|(needle, hay)| {
                        needle
                            .as_deref()
                            .is_none_or(|n| contains_ci(hay.as_deref(), n))
                    })
                })
                .map(render_customer)
                .collect()
        }
        Some(other) => {
            return bad(format!(
                "type {other} is not one of sales, products, customers"
            ));
        }
    };
    let data: Vec<Value> = data.into_iter().skip(offset).take(size).collect();
    ApiResponse::ok(json!({"data": data}))
}

fn valid_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

const CUSTOMER_OPTIONAL: &[&str] = &[
    "customer_group_id",
    "note",
    "gender",
    "date_of_birth",
    "company_name",
    "phone",
    "mobile",
    "fax",
    "twitter",
    "website",
    "physical_address_1",
    "physical_address_2",
    "physical_suburb",
    "physical_city",
    "physical_postcode",
    "physical_state",
    "physical_country_id",
    "postal_address_1",
    "postal_address_2",
    "postal_suburb",
    "postal_city",
    "postal_postcode",
    "postal_state",
    "postal_country_id",
    "custom_field_1",
    "custom_field_2",
    "custom_field_3",
    "custom_field_4",
];

fn create_customer(st: &mut State, body: Option<&Value>) -> ApiResponse {
    let Some(Value::Object(b)) = body else {
        return bad("The request body must be a JSON object");
    };
    // Required: present and a string (an empty string is accepted).
    let name = |key: &str| -> Result<String, ApiResponse> {
        match b.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None => Err(bad(format!("{key} is required"))),
            Some(_) => Err(bad(format!("{key} must be a string"))),
        }
    };
    let first = match name("first_name") {
        Ok(s) => s,
        Err(e) => return e,
    };
    let last = match name("last_name") {
        Ok(s) => s,
        Err(e) => return e,
    };
    let email = match opt_str(b, "email", "") {
        Ok(e) => e.filter(|e| !e.is_empty()),
        Err(e) => return e,
    };
    if let Some(e) = &email
        && !valid_email(e)
    {
        return bad(format!("email {e:?} is not a valid email address"));
    }
    let code = match opt_str(b, "customer_code", "") {
        Ok(c) => c.filter(|c| !c.is_empty()),
        Err(e) => return e,
    };
    if let Some(c) = &code
        && st.customers.iter().any(|x| x.customer_code == *c)
    {
        return bad(format!("customer_code {c} is already used"));
    }
    let mut extra = Map::new();
    for k in CUSTOMER_OPTIONAL {
        match b.get(*k) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                extra.insert((*k).into(), s.clone().into());
            }
            Some(_) => return bad(format!("{k} must be a string")),
        }
    }
    for k in ["do_not_email", "enable_loyalty"] {
        match b.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(v)) => {
                extra.insert(k.into(), (*v).into());
            }
            Some(_) => return bad(format!("{k} must be a boolean")),
        }
    }
    let now = Utc::now();
    let customer_code = code.unwrap_or_else(|| st.new_customer_code(&first));
    let version = st.next_version();
    let c = LsCustomer {
        id: new_uuid(),
        customer_code,
        first_name: first,
        last_name: last,
        email,
        extra,
        created_at: now,
        updated_at: now,
        version,
    };
    let out = render_customer(&c);
    st.customers.push(c);
    ApiResponse::json(StatusCode::CREATED, json!({"data": out}))
}
