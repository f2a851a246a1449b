//! The fake Lightspeed Retail X-Series API: `register_sales` (0.9), `/api/2.0/*` and the
//! date-based `/api/2026-07/*` ([`dated`]), all on one retailer's state; webhook registrations
//! on both ([`webhooks`]) and their deliveries ([`webhook_delivery`]).

mod create_product;
mod dated;
pub(crate) mod dated_render;
pub(crate) mod returns;
mod sale_input;
pub(crate) mod webhook_delivery;
pub(crate) mod webhooks;

use std::time::Instant;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post, put};
use chrono::Utc;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::endpoint::params::{Count, First, Flag, LsDate};
use crate::endpoint::{BadParameter, JsonBody, Op, Query};
use crate::server::{ApiResponse, Shared};
use crate::state::{LsCustomer, LsInventory, LsProduct, LsSale, State, state_of};
use crate::util::{dec_json, ls_date, ls09_date, new_uuid, parse_ls_date, round_dp};

pub(crate) use dated::DATED_PREFIX;
use sale_input::{
    LineLayout, PaymentLayout, SaleLayout, SaleTarget, opt_str, parse_sale, req_str, store_sale,
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

pub(crate) fn bad(details: impl AsRef<str>) -> ApiResponse {
    error(StatusCode::BAD_REQUEST, details.as_ref())
}

pub(crate) fn not_found(details: impl AsRef<str>) -> ApiResponse {
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
/// known legacy collection (`/api/register_sales`, `/api/2.0/products`...) answers 405; on
/// `/api/2026-07` ([`dated::routes`]) another method on a known path answers 405 and a deeper
/// path 404; anything else 404. The OAuth token endpoint ([`crate::oauth`]) is the one route
/// that takes no bearer token.
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .nest(DATED_PREFIX, dated::routes())
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
                )
                .route("/{id}/actions/return", put(returns::put_legacy_start)),
        )
        .nest("/api/2.0/search", collection().route("/", get(get_search)))
        .nest("/api/2.0/webhooks", webhooks::legacy_routes())
        .route(
            TOKEN_PATH,
            post(crate::oauth::token_request).fallback(unknown_path),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_path)
}

/// `POST` here is the OAuth token endpoint.
pub(crate) const TOKEN_PATH: &str = "/api/1.0/token";

/// The routes the gate counts and faults by kind, each with its twin in both generations
/// (legacy, 2026-07). ASSUMPTION (MAPPING.md §12): a dated route is the same call as its legacy
/// twin for the retailer's budget, so it shares its counters and its route-specific faults.
/// `POST`: sale creation (`Route::LsPostSale`, `Counters::ls_sale_posts`).
pub(crate) const SALE_CREATE: [&str; 2] = ["/api/register_sales", "/api/2026-07/sales"];
/// `GET`: one sale by id (`Route::LsGetSale`), the 0.9 and 2.0 reads and 2026-07's.
pub(crate) const SALE_GET: [&str; 3] = [
    "/api/register_sales/{id}",
    "/api/2.0/sales/{id}",
    "/api/2026-07/sales/{id}",
];
/// `PUT`: 2026-07 UpdateSale, a return's completion (`Route::LsPostSale`,
/// `Counters::ls_return_completions` when the sale is a return).
pub(crate) const SALE_UPDATE: &str = "/api/2026-07/sales/{id}";
/// `PUT` (legacy) / `POST` (2026-07): starting a return (`Route::LsStartReturn`,
/// `Counters::ls_return_starts`).
pub(crate) const RETURN_START: [&str; 2] = [
    "/api/2.0/sales/{id}/actions/return",
    "/api/2026-07/sales/{id}/actions/return",
];
/// `GET`: the search (`Route::LsSearch`, `Counters::ls_searches`).
pub(crate) const SEARCH: [&str; 2] = ["/api/2.0/search", "/api/2026-07/search"];
/// `POST`: customer creation (`Counters::ls_customer_creates`).
pub(crate) const CUSTOMER_CREATE: [&str; 2] = ["/api/2.0/customers", "/api/2026-07/customers"];
/// `POST`: product creation (`Counters::ls_product_creates`).
pub(crate) const PRODUCT_CREATE: [&str; 2] = ["/api/2.0/products", "/api/2026-07/products"];

/// A known collection: whatever it does not route is a method it does not allow.
fn collection() -> Router<Shared> {
    Router::new().fallback(method_not_allowed)
}

/// `GET` a version-paginated list (API 2.0 envelope) of the `(version, record)` pairs
/// `records` renders.
fn list(records: fn(&State) -> Vec<(u64, Value)>) -> MethodRouter<Shared> {
    list_in(&API_2_0, records)
}

/// `GET` a version-paginated list in `generation`'s envelope.
pub(crate) fn list_in(
    generation: &'static Generation,
    records: fn(&State) -> Vec<(u64, Value)>,
) -> MethodRouter<Shared> {
    get(move |Query(v): Query<Versions>| async move {
        Op::new(move |st| versioned(records(st), &v, generation))
    })
}

/// `GET` one record by id (`{"data": ...}`), or 404 with `missing` when `render` finds none.
pub(crate) fn one(
    missing: &'static str,
    render: fn(&State, &str) -> Option<Value>,
) -> MethodRouter<Shared> {
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
pub(crate) struct Id {
    pub id: String,
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
    products_op(&API_2_0, by_sku, versions)
}

/// `GET /products` of either generation: by SKU, or the version-paginated list.
pub(crate) fn products_op(
    generation: &'static Generation,
    by_sku: SkuQuery,
    versions: Result<Query<Versions>, BadParameter>,
) -> Op {
    Op::new(move |st| match by_sku.sku.0 {
        // "All other query params are ignored if this is provided."
        Some(sku) => products_by_sku(st, &sku, generation),
        None => match versions {
            Ok(Query(v)) => list_products(st, &v, generation),
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
        versioned(items, &v, &API_2_0)
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
        versioned(items, &v, &API_2_0)
    })
}

pub(crate) fn payment_types(st: &State) -> Vec<(u64, Value)> {
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

pub(crate) fn taxes(st: &State) -> Vec<(u64, Value)> {
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
    Op::new(move |st| search(st, &q, &API_2_0))
}

// ---------------------------------------------------------------------------------------------
// Paging

/// The parameters of a version-paginated list.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct Versions {
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

/// A version-paginated list, sorted by version, in `generation`'s envelope (see
/// [`envelope`]).
pub(crate) fn versioned(
    items: Vec<(u64, Value)>,
    v: &Versions,
    generation: &Generation,
) -> ApiResponse {
    match version_page(items, v) {
        Ok((data, range)) => ApiResponse::ok(envelope(data, range, generation)),
        Err(refused) => refused,
    }
}

/// A page of records and the lowest and highest version on it (`None` when empty).
pub(crate) type Page = (Vec<Value>, Option<(u64, u64)>);

/// The page of a version-paginated list: the records past `after` and before `before` (not
/// deleted unless `deleted`), sorted by version, cut to the page size. `Err`: a bad page size.
pub(crate) fn version_page(
    mut items: Vec<(u64, Value)>,
    v: &Versions,
) -> Result<Page, ApiResponse> {
    let after = v.after.0.unwrap_or(0);
    let size = page_size(v.page_size.0, MAX_PAGE)?;
    items.retain(|(version, item)| {
        *version > after
            && v.before.0.is_none_or(|b| *version < b)
            && (v.deleted.0 || item.get("deleted_at").is_none_or(Value::is_null))
    });
    items.sort_by_key(|(version, _)| *version);
    items.truncate(size);
    let range = items.first().zip(items.last()).map(|(a, b)| (a.0, b.0));
    Ok((items.into_iter().map(|(_, item)| item).collect(), range))
}

/// `{"data": [...], "version": {"min", "max"}}`, `range` being the lowest and highest version
/// in `data`. An empty page carries no `version` in API 2.0; in 2026-07 it carries
/// `"version": {"min": null, "max": null}`: `ProductCollection`, `OutletCollection`,
/// `UserCollection` and `PaymentTypeCollection` require `version`, and `Version` requires
/// `max`, `min`, "or `null` when the result set is empty" (MAPPING.md §7, §9; products.json,
/// setup.json). ASSUMPTION: the other 2026-07 collections (registers, customers) answer the same.
pub(crate) fn envelope(
    data: Vec<Value>,
    range: Option<(u64, u64)>,
    generation: &Generation,
) -> Value {
    let mut out = Map::new();
    match range {
        Some((min, max)) => {
            out.insert("version".into(), json!({"min": min, "max": max}));
        }
        None if generation.dated => {
            out.insert("version".into(), json!({"min": null, "max": null}));
        }
        None => {}
    }
    out.insert("data".into(), Value::Array(data));
    Value::Object(out)
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
// Generations

/// What differs between the API generations in the answers both build from the one state: how
/// a product, a sale and a customer look, the envelope of a version-paged list ([`envelope`])
/// and the search's `state` parameter. The legacy paths answer as [`API_2_0`]; the 2026-07
/// ones as [`dated_render::API_2026_07`].
pub(crate) struct Generation {
    pub product: fn(&State, &LsProduct) -> Value,
    pub sale: fn(&State, &LsSale) -> Value,
    pub customer: fn(&LsCustomer) -> Value,
    /// 2026-07: an empty page has a null `version`, and the search takes `state`.
    pub dated: bool,
}

/// API 2.0 (and search, products, customers as `register_sales` clients read them).
pub(crate) const API_2_0: Generation = Generation {
    product: render_product,
    sale: render_sale_20,
    customer: render_customer,
    dated: false,
};

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

/// An inventory record as `GET /api/2.0/inventory` lists it (and an `inventory.update`
/// webhook's payload carries it).
pub(crate) fn render_inventory(i: &LsInventory) -> Value {
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

pub(crate) fn render_register(st: &State, id: &str) -> Value {
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

pub(crate) fn render_outlet(st: &State, id: &str) -> Value {
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

pub(crate) fn render_user(st: &State, id: &str) -> Value {
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

pub(crate) fn retailer(st: &State) -> Value {
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

/// A tax amount split over the rates of its tax (a group has several): `(rate id, rate name,
/// rate, part)`.
pub(crate) fn tax_parts(
    st: &State,
    tax_id: &str,
    amount: Decimal,
) -> Vec<(String, String, Decimal, Decimal)> {
    st.taxes
        .iter()
        .find(|t| t.id == tax_id)
        .map(|t| t.split_amount(amount))
        .unwrap_or_else(|| vec![(String::new(), String::new(), Decimal::ZERO, amount)])
}

/// A sale's tax by rate, over its lines: `(rate id, rate name, rate, amount)`.
pub(crate) fn sale_tax_parts(st: &State, s: &LsSale) -> Vec<(String, String, Decimal, Decimal)> {
    let mut taxes: Vec<(String, Decimal)> = Vec::new();
    for l in &s.lines {
        let tax_total = l.tax * l.quantity;
        match taxes.iter_mut().find(|(id, _)| *id == l.tax_id) {
            Some((_, sum)) => *sum += tax_total,
            None => taxes.push((l.tax_id.clone(), tax_total)),
        }
    }
    taxes
        .into_iter()
        .flat_map(|(id, amount)| tax_parts(st, &id, amount))
        .collect()
}

/// A sale's 2026-07 `state` and `attributes` (MAPPING.md §4), from its legacy status.
pub(crate) fn sale_state(s: &LsSale) -> (&'static str, Vec<&'static str>) {
    let (state, attribute) = state_of(&s.status).unwrap_or(("closed", None));
    (state, attribute.into_iter().collect())
}

pub(crate) fn render_sale_20(st: &State, s: &LsSale) -> Value {
    let components = |tax_id: &str, amount: Decimal| tax_parts(st, tax_id, amount);
    let lines: Vec<Value> = s
        .lines
        .iter()
        .map(|l| {
            let tax_total = l.tax * l.quantity;
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
    m.insert("receipt_sequence".into(), s.invoice_sequence.into());
    m.insert("source".into(), s.source.clone().into());
    m.insert("source_id".into(), s.source_id.clone().into());
    let (state, attributes) = sale_state(s);
    m.insert("status".into(), s.status.clone().into());
    m.insert("state".into(), state.into());
    m.insert("note".into(), s.note.clone().into());
    m.insert("short_code".into(), s.short_code.clone().into());
    m.insert("return_for".into(), s.return_for.clone().into());
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
            sale_tax_parts(st, s)
                .into_iter()
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
    m.insert("attributes".into(), json!(attributes));
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
        "return_for": s.return_for,
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

/// `POST /api/register_sales` (0.9): where its body keeps each field. The checks are
/// [`sale_input::parse_sale`]'s, shared with 2026-07's CreateSale.
const REGISTER_SALES: SaleLayout = SaleLayout {
    register_id: "register_id",
    register_defaults: false,
    user_id: "user_id",
    status: legacy_status,
    sale_date: "sale_date",
    parse_date: parse_ls_date,
    invoice_sequence: Some("invoice_sequence"),
    source: "source",
    source_id: "source_id",
    lines: "register_sale_products",
    lines_required: true,
    line: LineLayout {
        product_id: "product_id",
        quantity: "quantity",
        price: "price",
        tax: "tax",
        tax_id: "tax_id",
        register_id: "register_id",
        status: "status",
        sequence: "sequence",
        cost: "cost",
        discount: "discount",
        loyalty_value: "loyalty_value",
        price_set: "price_set",
        note: Some("note"),
    },
    payments: "register_sale_payments",
    payment: PaymentLayout {
        type_id: "retailer_payment_type_id",
        amount: "amount",
        register_id: "register_id",
        date: "payment_date",
    },
};

/// The 0.9 `status`, one of [`SALE_STATUSES`].
fn legacy_status(b: &Map<String, Value>) -> Result<String, ApiResponse> {
    let status = req_str(b, "status", "")?;
    if !SALE_STATUSES.contains(&status.as_str()) {
        return Err(bad(format!(
            "status {status} is not one of {}",
            SALE_STATUSES.join(", ")
        )));
    }
    Ok(status)
}

fn post_register_sale(st: &mut State, body: Option<&Value>) -> ApiResponse {
    let Some(Value::Object(b)) = body else {
        return bad("The request body must be a JSON object");
    };
    let existing = match opt_str(b, "id", "") {
        Ok(id) => id.filter(|s| !s.is_empty()),
        Err(e) => return e,
    };
    let return_for = match opt_str(b, "return_for", "") {
        Ok(id) => id.filter(|s| !s.is_empty()),
        Err(e) => return e,
    };
    let existing = match existing {
        Some(id) => match st.sales.iter().position(|s| s.id == id) {
            Some(idx) => {
                returns::count_completion(st, idx);
                Some(idx)
            }
            None => return not_found(format!("Register sale {id} not found")),
        },
        None => None,
    };
    let input = match parse_sale(st, b, &REGISTER_SALES) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let target = match existing {
        // Update (a return's completion among them): the body replaces the sale (lines left
        // out are deleted, as in 0.9), once the returns' rules passed.
        Some(idx) => match returns::check_update(st, idx, &input, return_for.as_deref()) {
            Ok(()) => SaleTarget::Replace(idx),
            Err(refused) => return refused,
        },
        // ASSUMPTION: a referenced return is only made by the return action.
        None if return_for.is_some() => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "return_for is only kept on a return started with PUT \
                 /api/2.0/sales/{id}/actions/return",
            );
        }
        // No id: ALWAYS a new sale, even with a repeated invoice_number (no idempotency).
        None => SaleTarget::New(None),
    };
    let idx = store_sale(st, input, target);
    returns::after_update(st, idx, false);
    ApiResponse::ok(json!({"register_sale": render_sale_09(st, &st.sales[idx])}))
}

// ---------------------------------------------------------------------------------------------
// Products list, search, customers

/// `GET /api/2.0/products?sku=` (and 2026-07's): the one parameter read when it is given.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct SkuQuery {
    sku: First,
}

/// The products with exactly this SKU (not deleted).
fn products_by_sku(st: &State, sku: &str, generation: &Generation) -> ApiResponse {
    let rows: Vec<&LsProduct> = st
        .products
        .iter()
        .filter(|p| p.deleted_at.is_none() && p.sku == sku)
        .collect();
    let versions = rows.iter().map(|p| p.version);
    let range = versions.clone().min().zip(versions.max());
    let data = rows
        .into_iter()
        .map(|p| (generation.product)(st, p))
        .collect();
    ApiResponse::ok(envelope(data, range, generation))
}

fn list_products(st: &State, v: &Versions, generation: &Generation) -> ApiResponse {
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
        .map(|p| (p.version, (generation.product)(st, p)))
        .collect();
    versioned(items, v, generation)
}

fn contains_ci(hay: Option<&str>, needle: &str) -> bool {
    hay.is_some_and(|h| h.to_lowercase().contains(&needle.to_lowercase()))
}

/// `GET /api/2.0/search` (and 2026-07's, which adds `state`): `type`, paging, and the filters of
/// each type. A filter given more than once counts by its first value, except `status`,
/// `state`, `sku` and `-sku`, which take several.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct SearchQuery {
    #[serde(rename = "type")]
    kind: First,
    offset: Count,
    page_size: Count,
    deleted: Flag,
    // Sales.
    status: Vec<String>,
    /// 2026-07 only (`search.json`: "state", MAPPING.md §6); API 2.0 ignores it.
    state: Vec<String>,
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

/// The search of either generation: one set of matching rules (lag, lower-cased SKUs,
/// case-insensitive customer fields), the hits rendered in `generation`'s shapes.
pub(crate) fn search(st: &State, q: &SearchQuery, generation: &Generation) -> ApiResponse {
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
                    !generation.dated
                        || q.state.is_empty()
                        || q.state.iter().any(|x| x == sale_state(s).0)
                })
                .filter(|s| {
                    q.customer_id
                        .as_deref()
                        .is_none_or(|c| s.customer_id.as_deref() == Some(c))
                })
                .filter(|s| given(&q.user_id, &s.user_id))
                .filter(|s| given(&q.outlet_id, &s.outlet_id))
                .filter(|s| q.date_from.0.is_none_or(|d| s.sale_date >= d))
                .filter(|s| q.date_to.0.is_none_or(|d| s.sale_date <= d))
                .map(|s| (generation.sale)(st, s))
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
                .map(|p| (generation.product)(st, p))
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
                .map(generation.customer)
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
    match new_customer(st, body, &[], &[]) {
        Ok(idx) => ApiResponse::json(
            StatusCode::CREATED,
            json!({"data": render_customer(&st.customers[idx])}),
        ),
        Err(refused) => refused,
    }
}

/// Create a customer from a `POST /customers` body: `first_name` and `last_name` are required
/// strings (an empty string is accepted), the email must look like one, a `customer_code` must
/// be new; the optional fields of [`CUSTOMER_OPTIONAL`] and `more_strings` (strings), and
/// `do_not_email`, `enable_loyalty` and `more_flags` (booleans) are kept as given. Returns the
/// new customer's index.
pub(crate) fn new_customer(
    st: &mut State,
    body: Option<&Value>,
    more_strings: &[&str],
    more_flags: &[&str],
) -> Result<usize, ApiResponse> {
    let Some(Value::Object(b)) = body else {
        return Err(bad("The request body must be a JSON object"));
    };
    // Required: present and a string (an empty string is accepted).
    let name = |key: &str| -> Result<String, ApiResponse> {
        match b.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None => Err(bad(format!("{key} is required"))),
            Some(_) => Err(bad(format!("{key} must be a string"))),
        }
    };
    let first = name("first_name")?;
    let last = name("last_name")?;
    let email = opt_str(b, "email", "")?.filter(|e| !e.is_empty());
    if let Some(e) = &email
        && !valid_email(e)
    {
        return Err(bad(format!("email {e:?} is not a valid email address")));
    }
    let code = opt_str(b, "customer_code", "")?.filter(|c| !c.is_empty());
    if let Some(c) = &code
        && st.customers.iter().any(|x| x.customer_code == *c)
    {
        return Err(bad(format!("customer_code {c} is already used")));
    }
    let mut extra = Map::new();
    for k in CUSTOMER_OPTIONAL.iter().chain(more_strings) {
        match b.get(*k) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                extra.insert((*k).into(), s.clone().into());
            }
            Some(_) => return Err(bad(format!("{k} must be a string"))),
        }
    }
    for k in ["do_not_email", "enable_loyalty"].iter().chain(more_flags) {
        match b.get(*k) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(v)) => {
                extra.insert((*k).into(), (*v).into());
            }
            Some(_) => return Err(bad(format!("{k} must be a boolean"))),
        }
    }
    let now = Utc::now();
    let customer_code = code.unwrap_or_else(|| st.new_customer_code(&first));
    let version = st.next_version();
    st.customers.push(LsCustomer {
        id: new_uuid(),
        customer_code,
        first_name: first,
        last_name: last,
        email,
        extra,
        created_at: now,
        updated_at: now,
        version,
    });
    Ok(st.customers.len() - 1)
}
