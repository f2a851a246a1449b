//! Lightspeed X-Series' date-based API version 2026-07: `/api/2026-07/*`, on the same retailer
//! as the legacy paths (a sale created on one generation is read on the other).
//!
//! The contract is Lightspeed's published 2026-07 OpenAPI file, reduced to the connector's
//! calls in `tests/fixtures/lightspeed/2026-07/` (`sales.json`, `search.json`,
//! `products.json`, `inventory.json`, `customers.json`, `setup.json`), and that folder's
//! `MAPPING.md` (cited as §n), which maps every legacy field to its 2026-07 one. Each route
//! names its operation; what the spec does not say is marked ASSUMPTION.
//!
//! The request bodies of CreateSale, ListInventoryRecords, CreateCustomer and the webhooks'
//! create and update (`webhooks.rs`) are validated at runtime against their published schemas (the fixtures, compiled once): a body outside its
//! schema is a 400 `{"error": "Bad Request", "details": "<instance path>: <message>"}` naming
//! the field, and nothing changes. ASSUMPTION: the real API refuses such a body with a 400 (the
//! operations declare no error answer).
//!
//! Auth, rate limits, counters and faults are the legacy routes' (`server.rs`'s `ls_gate`):
//! ASSUMPTION (§12): the dated paths send the same `X-RateLimit-*` headers and share the
//! retailer's one budget.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use jsonschema::Validator;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::dated_render::{self, API_2026_07};
use super::returns;
use super::sale_input::{
    LineLayout, PaymentLayout, SaleLayout, SaleTarget, parse_sale, req_str, store_sale,
};
use super::{
    BadParameter, Id, SearchQuery, SkuQuery, Versions, bad, create_product, error, list_in,
    new_customer, not_found, one, products_op, render_register, render_user, search, taxes,
    version_page,
};
use crate::config::RepeatSaleId;
use crate::endpoint::params::{Count, First, Flag};
use crate::endpoint::{JsonBody, Op, Query};
use crate::openapi;
use crate::server::{ApiResponse, Shared};
use crate::state::{LsInventory, State, status_of};

/// Where the date-based API lives, relative to the retailer's domain (`servers` of every
/// fixture: `https://{domain_prefix}.retail.lightspeed.app/api/2026-07`).
pub(crate) const DATED_PREFIX: &str = "/api/2026-07";

const SALES_JSON: &str = include_str!("../../tests/fixtures/lightspeed/2026-07/sales.json");
const INVENTORY_JSON: &str = include_str!("../../tests/fixtures/lightspeed/2026-07/inventory.json");
const CUSTOMERS_JSON: &str = include_str!("../../tests/fixtures/lightspeed/2026-07/customers.json");

/// CreateSale's body, `SaleRequest` (sales.json, `POST /sales`; MAPPING.md §1).
static SALE_REQUEST: LazyLock<Validator> =
    LazyLock::new(|| published("sales.json", SALES_JSON, "SaleRequest"));
/// UpdateSale's body, `SaleUpdateRequest` (sales.json, `PUT /sales/{sale_id}`; §1, §11).
static SALE_UPDATE_REQUEST: LazyLock<Validator> =
    LazyLock::new(|| published("sales.json", SALES_JSON, "SaleUpdateRequest"));
/// ListInventoryRecords' body, `InventoryRequest` (inventory.json, `POST /inventory`; §8).
static INVENTORY_REQUEST: LazyLock<Validator> =
    LazyLock::new(|| published("inventory.json", INVENTORY_JSON, "InventoryRequest"));
/// CreateCustomer's body, `CustomerBase` (customers.json, `POST /customers`; §10).
static CUSTOMER_BASE: LazyLock<Validator> =
    LazyLock::new(|| published("customers.json", CUSTOMERS_JSON, "CustomerBase"));

/// The validator of a fixture's component; the fixtures are part of the crate, so one that
/// does not compile is a bug.
pub(super) fn published(file: &str, text: &str, component: &str) -> Validator {
    let spec: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
    openapi::component_validator(&spec, component).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A body inside its published schema, or the 400 naming every field at fault.
pub(super) fn check_body(validator: &Validator, body: &Value) -> Result<(), ApiResponse> {
    let errors = openapi::errors(validator, body);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(bad(errors.join("; ")))
    }
}

/// The routes under [`DATED_PREFIX`]. Another method on one of these paths answers 405; any
/// other path, e.g. `/products/{id}/inventory` (gone in 2026-07, §8), 404.
pub(super) fn routes() -> Router<Shared> {
    Router::new()
        // get-webhooks, post-webhooks, get-webhooks-id, put-webhooks-id,
        // delete-webhooks-webhookId (webhooks.json).
        .merge(super::webhooks::dated_routes())
        .route("/sales", post(post_sale))
        .route(
            "/sales/{id}",
            // GetSaleByID (sales.json) -> `SaleResponse {data: Sale}`. ASSUMPTION (§5): a sale
            // is readable here as soon as the POST that made it committed; unlike the search,
            // which keeps `ls_search_lag`.
            one("Sale not found", |st, id| {
                st.sales
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| dated_render::sale(st, s))
            })
            .put(put_sale),
        )
        .route(
            "/sales/{id}/actions/return",
            post(returns::post_dated_start),
        )
        .route("/search", get(get_search))
        .route(
            "/products",
            // CreateProduct's body is `ProductCreateBody`, "same as 2.0" (§7): the legacy
            // endpoint, whose answer `{"data": ["<id>"]}` is the kept example's.
            get(get_products).post(create_product::post_products),
        )
        .route(
            "/products/{id}",
            // GetProductByID (products.json) -> `ProductResponse {data: Product}`.
            one("Product not found", |st, id| {
                st.ls_product(id).map(|p| dated_render::product(st, p))
            }),
        )
        .route("/inventory", post(post_inventory))
        .route("/inventory/{id}", get(get_product_inventory))
        .route("/taxes", get(get_taxes))
        .route("/retailer", get(get_retailer))
        .route(
            "/registers",
            // ListRegisters (setup.json): unchanged fields (§9).
            list_in(&API_2026_07, |st| {
                st.registers
                    .iter()
                    .map(|r| (r.version, render_register(st, &r.id)))
                    .collect()
            }),
        )
        .route(
            "/registers/{id}",
            one("Register not found", |st, id| {
                st.register(id).map(|_| render_register(st, id))
            }),
        )
        .route(
            "/outlets",
            // ListOutlets (setup.json, `OutletCollection`, required data and version).
            list_in(&API_2026_07, |st| {
                st.outlets
                    .iter()
                    .map(|o| (o.version, dated_render::outlet(st, &o.id)))
                    .collect()
            }),
        )
        .route(
            "/outlets/{id}",
            one("Outlet not found", |st, id| {
                st.outlets
                    .iter()
                    .any(|o| o.id == id)
                    .then(|| dated_render::outlet(st, id))
            }),
        )
        .route(
            "/users",
            // ListUsers (setup.json): `User.required` is 2.0's (§9).
            list_in(&API_2026_07, |st| {
                st.users
                    .iter()
                    .map(|u| (u.version, render_user(st, &u.id)))
                    .collect()
            }),
        )
        .route(
            "/users/{id}",
            one("User not found", |st, id| {
                st.users
                    .iter()
                    .any(|u| u.id == id)
                    .then(|| render_user(st, id))
            }),
        )
        .route(
            "/payment_types",
            list_in(&API_2026_07, dated_render::payment_types),
        )
        .route(
            "/customers",
            // ListCustomers (customers.json, `CustomerCollection`, version-paged).
            list_in(&API_2026_07, |st| {
                st.customers
                    .iter()
                    .map(|c| (c.version, dated_render::customer(c)))
                    .collect()
            })
            .post(post_customers),
        )
        .route(
            "/customers/{id}",
            one("Customer not found", |st, id| {
                st.customers
                    .iter()
                    .find(|c| c.id == id)
                    .map(dated_render::customer)
            }),
        )
}

// ---------------------------------------------------------------------------------------------
// CreateSale

/// Where `SaleRequest` keeps each field (MAPPING.md §1, the three field tables): `register_id`
/// is `source.register_id`, `user_id` `source.author_id`, `sale_date` `date`, `source`
/// `source.type`, `source_id` `source.id`; lines are `line_items` with `product.id`,
/// `pricing.price`, `pricing.discount`, `tax.id`, `tax.amount`, `_metadata.is_price_override`
/// (was `price_set`), `_metadata.sequence`; payments have `type.config_id` (was
/// `retailer_payment_type_id`), `date`, `source.register_id`. The checks on them are the
/// legacy ones ([`parse_sale`]).
///
/// - ASSUMPTION (§1: "`register_id` is no longer required"; what the real API then does is
///   unknown): a sale without `source.register_id` goes to the retailer's first register, and
///   its stock leaves that register's outlet.
/// - `line_items` and `payments` are optional arrays (§1: "Nothing else is required"), so a
///   sale may have no line. ASSUMPTION: it is accepted (a closed one must then have no
///   payment).
/// - `state` and `attributes` become the legacy status through the table of §4 ([`status_of`]):
///   `closed` is `CLOSED`, `parked` `SAVED`, `pending` `OPEN`, `voided` `VOIDED`, `closed` +
///   `onaccount` `ONACCOUNT_CLOSED`... ASSUMPTION: at most one attribute (the table pairs a
///   state with one), and a pair the table does not have is refused.
/// - `date` and a payment's `date` are RFC 3339 ("Must now be RFC3339 format", §1; a payment's
///   format is not stated, ASSUMPTION: the same).
/// - Money is a JSON number, as the schema types it; the strings the Sales 101 doc sends fail
///   the schema and are refused (§1 ASSUMPTION says the real server may accept them; the
///   sandbox takes the published schema).
pub(crate) const DATED_SALE: SaleLayout = SaleLayout {
    register_id: "source.register_id",
    register_defaults: true,
    user_id: "source.author_id",
    status: dated_status,
    sale_date: "date",
    parse_date: rfc3339,
    invoice_sequence: None,
    source: "source.type",
    source_id: "source.id",
    lines: "line_items",
    lines_required: false,
    line: LineLayout {
        product_id: "product.id",
        quantity: "quantity",
        price: "pricing.price",
        tax: "tax.amount",
        tax_id: "tax.id",
        register_id: "source.register_id",
        status: "status",
        sequence: "_metadata.sequence",
        cost: "pricing.cost",
        discount: "pricing.discount",
        loyalty_value: "pricing.loyalty_amount",
        price_set: "_metadata.is_price_override",
        note: None,
    },
    payments: "payments",
    payment: PaymentLayout {
        type_id: "type.config_id",
        amount: "amount",
        register_id: "source.register_id",
        date: "date",
    },
};

fn rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The legacy status of `state` + `attributes` (MAPPING.md §4; see [`DATED_SALE`]).
fn dated_status(b: &Map<String, Value>) -> Result<String, ApiResponse> {
    let state = req_str(b, "state", "")?;
    let mut attributes: Vec<&str> = b
        .get("attributes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    attributes.sort_unstable();
    attributes.dedup();
    if attributes.len() > 1 {
        return Err(bad(format!(
            "attributes {attributes:?}: the sandbox models at most one attribute per sale"
        )));
    }
    status_of(&state, attributes.first().copied())
        .map(str::to_string)
        .ok_or_else(|| {
            bad(format!(
                "state {state} with attributes {attributes:?} is not in the states and \
                 attributes mapping"
            ))
        })
}

async fn post_sale(JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| create_sale(st, body.unwrap_or(Value::Null)))
}

/// CreateSale (`POST /sales`, sales.json) -> 200 `SaleCreateResponse {data: Sale}`.
///
/// The body must validate against `SaleRequest` (a missing `source.author_id` or `state`, a
/// line without `tax`, a payment without `type.config_id`, a legacy `register_sales` body:
/// each a 400 naming the field); then the legacy checks apply ([`DATED_SALE`]). The sale goes
/// into the one list of sales, so `/api/register_sales/{id}`, `/api/2.0/sales` and both
/// searches see it, and its stock moves as a legacy sale's does.
///
/// The client-supplied `id` ("User-provided sale ID. If not included, one will be generated.",
/// §5) becomes the sale's id (lower-cased: it is a uuid; ASSUMPTION: ids compare
/// case-insensitively). A second POST with the id of an existing sale is undocumented (§5):
/// [`crate::SandboxConfig::ls_repeat_sale_id`] picks the reading, 409 and nothing changed
/// ([`RepeatSaleId::Refuse`], the default) or the body replacing the sale
/// ([`RepeatSaleId::Update`]). ASSUMPTION: the body is checked before the id, so a refused
/// body is a 400 whatever its id.
fn create_sale(st: &mut State, body: Value) -> ApiResponse {
    if let Err(refused) = check_body(&SALE_REQUEST, &body) {
        return refused;
    }
    let Value::Object(b) = &body else {
        return bad("The request body must be a JSON object");
    };
    let input = match parse_sale(st, b, &DATED_SALE) {
        Ok(input) => input,
        Err(refused) => return refused,
    };
    let id = b
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let target = match id {
        None => SaleTarget::New(None),
        Some(id) => match st.sales.iter().position(|s| s.id.eq_ignore_ascii_case(&id)) {
            None => SaleTarget::New(Some(id)),
            Some(idx) => match st.cfg.ls_repeat_sale_id {
                RepeatSaleId::Refuse => {
                    return error(
                        StatusCode::CONFLICT,
                        &format!("A sale with id {id} already exists"),
                    );
                }
                RepeatSaleId::Update => SaleTarget::Replace(idx),
            },
        },
    };
    let idx = store_sale(st, input, target);
    ApiResponse::ok(json!({"data": dated_render::sale(st, &st.sales[idx])}))
}

async fn put_sale(Path(Id { id }): Path<Id>, JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| update_sale(st, &id, body.unwrap_or(Value::Null)))
}

/// UpdateSale (`PUT /sales/{sale_id}`, sales.json) -> 200 `SaleCreateResponse {data: Sale}`:
/// the completion of a parked return (2026-07 changelog: "the 2026-07 Update Sale endpoint
/// (PUT /api/2026-07/sales/{sale_id}) now validates product references when completing a
/// parked return (state transitioning from parked to closed)"; MAPPING.md §11).
///
/// The body must validate against `SaleUpdateRequest` (`SaleRequestBase`: `source.author_id`
/// and `state` required; there is no `id` and no `return_for`: the link is the sale's), then
/// the CreateSale checks apply ([`DATED_SALE`]: a closed sale paid to the cent, its stock at
/// the register's outlet), then the returns' rules ([`returns::check_update`]: a closed or
/// voided sale is a 409, a product outside the original's return history or returned beyond
/// what is left a 422). The body replaces the sale: its lines and payments replace the sale's.
/// ASSUMPTION: as a legacy update does ("Editing Sales": lines left out are deleted), and an
/// unknown sale is a 404 before the body is checked. A completed return voids the original's
/// other parked returns ([`returns::after_update`]).
fn update_sale(st: &mut State, id: &str, body: Value) -> ApiResponse {
    let Some(idx) = st.sales.iter().position(|s| s.id.eq_ignore_ascii_case(id)) else {
        return not_found("Sale not found");
    };
    returns::count_completion(st, idx);
    if let Err(refused) = check_body(&SALE_UPDATE_REQUEST, &body) {
        return refused;
    }
    let Value::Object(b) = &body else {
        return bad("The request body must be a JSON object");
    };
    let input = match parse_sale(st, b, &DATED_SALE) {
        Ok(input) => input,
        Err(refused) => return refused,
    };
    if let Err(refused) = returns::check_update(st, idx, &input, None) {
        return refused;
    }
    let idx = store_sale(st, input, SaleTarget::Replace(idx));
    returns::after_update(st, idx, true);
    ApiResponse::ok(json!({"data": dated_render::sale(st, &st.sales[idx])}))
}

// ---------------------------------------------------------------------------------------------
// Search, products, customers, setup

/// Search (`GET /search`, search.json) -> `SearchResponse {data: [object]}`: the legacy
/// search's parameters and matching (the `ls_search_lag`, SKUs compared lower-cased, loose
/// customer fields; §6), plus `state`. ASSUMPTION (§6): the hits have the 2026-07 shapes
/// (`Sale`, `Product`, `Customer`), and legacy-posted sales are found too (one store).
async fn get_search(Query(q): Query<SearchQuery>) -> Op {
    Op::new(move |st| search(st, &q, &API_2026_07))
}

/// ListProducts (`GET /products`, products.json) -> `ProductCollection`, required `data` and
/// `version` (§7): `sku` (then "all other query params are ignored"), else `after`, `before`,
/// `page_size`, `deleted` as in 2.0.
async fn get_products(
    Query(by_sku): Query<SkuQuery>,
    versions: Result<Query<Versions>, BadParameter>,
) -> Op {
    products_op(&API_2026_07, by_sku, versions)
}

async fn post_customers(JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| create_customer(st, body.unwrap_or(Value::Null)))
}

/// CreateCustomer (`POST /customers`, customers.json) -> 201 `CustomerResponse {data:
/// Customer}` (§10). The body must validate against `CustomerBase`: `first_name` and
/// `last_name` are required keys but `nullable`. The legacy rules follow (email, unique
/// `customer_code`), with the new `tax_id` and `enable_promotional_sms` kept. ASSUMPTION: a null
/// name is stored, and answered, as an empty string (the sandbox keeps names as strings).
fn create_customer(st: &mut State, mut body: Value) -> ApiResponse {
    if let Err(refused) = check_body(&CUSTOMER_BASE, &body) {
        return refused;
    }
    for key in ["first_name", "last_name"] {
        if body[key].is_null() {
            body[key] = "".into();
        }
    }
    match new_customer(st, Some(&body), &["tax_id"], &["enable_promotional_sms"]) {
        Ok(idx) => ApiResponse::json(
            StatusCode::CREATED,
            json!({"data": dated_render::customer(&st.customers[idx])}),
        ),
        Err(refused) => refused,
    }
}

/// ListTaxes (`GET /taxes`, setup.json) -> `TaxCollection {data}`: "no `version` property at
/// all" (§9). The declared `after`, `before` and `page_size` filter as on the other version
/// lists; without them every tax is answered. ASSUMPTION (§9, open question 5): one page holds
/// all taxes, and nothing but `data` is sent.
async fn get_taxes(versions: Result<Query<Versions>, BadParameter>) -> Op {
    Op::new(move |st| {
        let v = match versions {
            Ok(Query(v)) => v,
            Err(BadParameter(message)) => return bad(message),
        };
        match version_page(taxes(st), &v) {
            Ok((data, _)) => ApiResponse::ok(json!({ "data": data })),
            Err(refused) => refused,
        }
    })
}

/// GetRetailer (`GET /retailer`, setup.json) -> `RetailerResponse {data: Retailer}` (§9).
async fn get_retailer() -> Op {
    Op::new(|st| ApiResponse::ok(json!({"data": dated_render::retailer_2026_07(st)})))
}

// ---------------------------------------------------------------------------------------------
// Inventory

/// The records of an inventory listing: version range, size, direction, product.
struct InventoryFilter {
    after: u64,
    before: Option<u64>,
    size: usize,
    descending: bool,
    include_deleted: bool,
    product_id: Option<String>,
    variants: bool,
}

/// The most records a listing answers ("maximum": 5000 on `size` and `page_size`).
const MAX_INVENTORY_PAGE: u64 = 5000;

/// A listing's page size: the default 1000, at most 5000. ASSUMPTION (§8, open question 4):
/// more than 5000 is refused with a 400, not capped (the schema's `maximum`; the sandbox takes
/// the strict reading), and 0 is refused as a legacy `page_size` of 0 is.
fn inventory_size(size: Option<u64>, name: &str) -> Result<usize, ApiResponse> {
    match size {
        None => Ok(1000),
        Some(0) => Err(bad(format!("{name} must be positive"))),
        Some(n) if n > MAX_INVENTORY_PAGE => {
            Err(bad(format!("{name} must be at most {MAX_INVENTORY_PAGE}")))
        }
        Some(n) => Ok(n as usize),
    }
}

/// The inventory records the filter selects, in version order (`descending`: newest first),
/// cut to `size`. With `after` and `descending`, that is the newest `size` records above the
/// cursor: paging on by the highest version then skips the rest, which is why a client must
/// send `sort_direction: "asc"` (§8).
fn inventory_page(st: &State, f: &InventoryFilter) -> Vec<Value> {
    let deleted = |i: &LsInventory| {
        st.ls_product(&i.product_id)
            .is_some_and(|p| p.deleted_at.is_some())
    };
    let of_product = |i: &LsInventory| match &f.product_id {
        None => true,
        Some(id) => {
            i.product_id == *id
                || (f.variants
                    && st
                        .ls_product(&i.product_id)
                        .is_some_and(|p| p.variant_parent_id.as_deref() == Some(id.as_str())))
        }
    };
    let mut rows: Vec<&LsInventory> = st
        .inventory
        .iter()
        .filter(|i| i.version > f.after && f.before.is_none_or(|b| i.version < b))
        .filter(|i| f.include_deleted || !deleted(i))
        .filter(|i| of_product(i))
        .collect();
    rows.sort_by_key(|i| i.version);
    if f.descending {
        rows.reverse();
    }
    rows.truncate(f.size);
    rows.into_iter()
        .map(|i| dated_render::inventory(st, i))
        .collect()
}

/// `InventoryRequest` (inventory.json), once validated.
#[derive(Deserialize)]
struct InventoryRequest {
    after: Option<u64>,
    before: Option<u64>,
    size: Option<u64>,
    sort_direction: Option<String>,
    include_deleted: Option<bool>,
    product_id: Option<String>,
    variants: Option<bool>,
}

async fn post_inventory(JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| inventory_feed(st, body.unwrap_or_else(|| json!({}))))
}

/// ListInventoryRecords (`POST /inventory`, inventory.json) -> a bare JSON array of
/// `Inventory` (§8: no `data`, no `version`). The body (not required: none is `{}`) must
/// validate against `InventoryRequest`: `after`/`before` (exclusive version bounds, as in 2.0),
/// `size` (default 1000, maximum 5000), `sort_direction` (default **"desc"**),
/// `include_deleted` (records of deleted products), `product_id` (with `variants`: the
/// product's variants too). ASSUMPTION (§8): this POST only reads.
fn inventory_feed(st: &mut State, body: Value) -> ApiResponse {
    if let Err(refused) = check_body(&INVENTORY_REQUEST, &body) {
        return refused;
    }
    let req: InventoryRequest = match serde_json::from_value(body) {
        Ok(r) => r,
        Err(e) => return bad(format!("The request body is not an InventoryRequest: {e}")),
    };
    let size = match inventory_size(req.size, "size") {
        Ok(n) => n,
        Err(refused) => return refused,
    };
    let filter = InventoryFilter {
        after: req.after.unwrap_or(0),
        before: req.before,
        size,
        descending: req.sort_direction.as_deref() != Some("asc"),
        include_deleted: req.include_deleted.unwrap_or(false),
        product_id: req.product_id,
        variants: req.variants.unwrap_or(false),
    };
    ApiResponse::ok(Value::Array(inventory_page(st, &filter)))
}

/// The query of ListProductInventoryRecords.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ProductInventoryQuery {
    after: Count,
    before: Count,
    page_size: Count,
    variants: Flag,
    include_deleted: Flag,
    order_direction: First,
}

/// ListProductInventoryRecords (`GET /inventory/{product_id}`, inventory.json) -> a bare array
/// of `Inventory` (§8; it replaces 2.0's `/products/{id}/inventory`, which 2026-07 does not
/// have). `after`, `before`, `page_size` (default 1000, maximum 5000), `order_direction`
/// (default **"asc"**), `variants`, `include_deleted`. ASSUMPTION: an unknown product is a 404,
/// as in 2.0, reported before a bad parameter.
async fn get_product_inventory(
    Path(Id { id }): Path<Id>,
    query: Result<Query<ProductInventoryQuery>, BadParameter>,
) -> Op {
    Op::new(move |st| {
        if st.ls_product(&id).is_none() {
            return not_found("Product not found");
        }
        let q = match query {
            Ok(Query(q)) => q,
            Err(BadParameter(message)) => return bad(message),
        };
        let descending = match q.order_direction.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return bad(format!("order_direction {other} is not one of asc, desc")),
        };
        let size = match inventory_size(q.page_size.0, "page_size") {
            Ok(n) => n,
            Err(refused) => return refused,
        };
        let filter = InventoryFilter {
            after: q.after.0.unwrap_or(0),
            before: q.before.0,
            size,
            descending,
            include_deleted: q.include_deleted.0,
            product_id: Some(id),
            variants: q.variants.0,
        };
        ApiResponse::ok(Value::Array(inventory_page(st, &filter)))
    })
}
