//! The fake Ecwid REST API v3 and the checkout simulation.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::{Method, StatusCode};
use axum::routing::{any, get, put};
use chrono::Utc;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::endpoint::params::{Commas, Count, EcwidDate, First};
use crate::endpoint::{JsonBody, Op, Query};
use crate::server::{ApiResponse, Body, retry_after_secs};
use crate::state::{EcwidCombination, EcwidProduct, State};
use crate::util::{dec_json, ecwid_date, json_dec, new_uuid, round2};

const MAX_LIMIT: usize = 100;
const MAX_BATCH: usize = 500;

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> ApiResponse {
    ApiResponse::json(status, json!({"errorMessage": message, "errorCode": code}))
}

fn bad(message: &str) -> ApiResponse {
    error(StatusCode::BAD_REQUEST, "WRONG_PARAMETER", message)
}

pub(crate) fn rate_limited(wait: Duration) -> ApiResponse {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        "Too many requests: the limit of requests per minute is exceeded",
    )
    .header("Retry-After", retry_after_secs(wait))
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Count a request (or batch sub-request) by the resource it is on (`orders`, `products`,
/// `batch`: the first segment of its path), found or not.
pub(crate) fn count(st: &mut State, method: &Method, resource: &str) {
    match resource {
        "orders" => {
            if *method == Method::GET {
                st.counters.ecwid_order_gets += 1;
            } else if is_write(method) {
                st.counters.ecwid_order_writes += 1;
            }
        }
        "products" if is_write(method) => st.counters.ecwid_product_writes += 1,
        "batch" if *method == Method::POST => st.counters.ecwid_batches += 1,
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

/// The API's endpoints, relative to `/api/v3/{storeId}`. Any other method on a known path,
/// and any other path under `/orders` or `/products`, answers 405; anything else 404. In a
/// batch (`in_batch`), a sub-request cannot start or poll a batch (405).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(in_batch: bool) -> Router<S> {
    let orders = Router::new()
        .route("/", get(get_orders).post(post_orders))
        .route("/{id}", get(get_order).put(put_order).delete(delete_order))
        .fallback(method_not_allowed);
    let products = Router::new()
        .route("/", get(get_products))
        .route("/{id}", get(get_product).put(put_product))
        .route("/{id}/inventory", put(put_product_inventory))
        .route("/{id}/combinations", get(get_combinations))
        .route(
            "/{id}/combinations/{cid}",
            get(get_combination).put(put_combination),
        )
        .route(
            "/{id}/combinations/{cid}/inventory",
            put(put_combination_inventory),
        )
        .fallback(method_not_allowed);
    let batch = if in_batch {
        any(method_not_allowed)
    } else {
        get(get_batch).post(post_batch)
    };
    Router::new()
        .route("/profile", get(get_profile))
        .nest("/orders", orders)
        .nest("/products", products)
        .route("/batch", batch)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
}

/// A bad query parameter, as Ecwid answers it.
pub(crate) fn bad_parameter(message: &str) -> ApiResponse {
    bad(message)
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct CombinationId {
    id: String,
    cid: String,
}

/// `offset` and `limit` (at most 100; a larger one is cut to 100).
fn page_bounds(offset: Option<u64>, limit: Option<u64>) -> (usize, usize) {
    let limit = limit.map_or(MAX_LIMIT, |l| usize::try_from(l).unwrap_or(usize::MAX));
    (
        offset.map_or(0, |o| usize::try_from(o).unwrap_or(usize::MAX)),
        limit.min(MAX_LIMIT),
    )
}

pub(crate) async fn method_not_allowed() -> Op {
    Op::answer(error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "Method not allowed",
    ))
}

async fn not_found() -> Op {
    Op::answer(error(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "Requested resource not found",
    ))
}

async fn get_profile() -> Op {
    Op::new(|st| ApiResponse::ok(profile(st)))
}

async fn get_orders(Query(q): Query<OrdersQuery>) -> Op {
    Op::new(move |st| search_orders(st, &q))
}

async fn post_orders(JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| create_order(st, body.as_ref()))
}

async fn get_order(Path(Id { id }): Path<Id>) -> Op {
    Op::new(move |st| {
        let lagging = match st.payment_lag.get_mut(&id) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        match st.ecwid_order_by_id(&id) {
            Some((_, o)) => {
                let mut o = o.clone();
                if lagging {
                    o["paymentStatus"] = "AWAITING_PAYMENT".into();
                }
                ApiResponse::ok(o)
            }
            None => order_not_found(),
        }
    })
}

async fn put_order(Path(Id { id }): Path<Id>, JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| update_order(st, &id, body.as_ref()))
}

async fn delete_order(Path(Id { id }): Path<Id>) -> Op {
    Op::new(move |st| match st.ecwid_order_by_id(&id).map(|(k, _)| k) {
        Some(k) => {
            st.ecwid_orders.remove(&k);
            ApiResponse::ok(json!({"deleteCount": 1}))
        }
        None => order_not_found(),
    })
}

async fn get_products(Query(q): Query<ProductsQuery>) -> Op {
    Op::new(move |st| search_products(st, &q))
}

async fn get_product(Path(Id { id }): Path<Id>) -> Op {
    Op::new(move |st| match product(st, &id) {
        Some(p) => ApiResponse::ok(render_product(p)),
        None => product_not_found(),
    })
}

async fn put_product(Path(Id { id }): Path<Id>, JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| update_product(st, &id, body.as_ref()))
}

async fn put_product_inventory(Path(Id { id }): Path<Id>, JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| adjust(st, &id, None, body.as_ref()))
}

async fn get_combinations(Path(Id { id }): Path<Id>) -> Op {
    Op::new(move |st| match product(st, &id) {
        Some(p) => ApiResponse::ok(Value::Array(
            p.combinations
                .iter()
                .map(|c| render_combination(p, c))
                .collect(),
        )),
        None => product_not_found(),
    })
}

async fn get_combination(Path(CombinationId { id, cid }): Path<CombinationId>) -> Op {
    Op::new(move |st| match product(st, &id) {
        None => product_not_found(),
        Some(p) => match p.combinations.iter().find(|c| c.id.to_string() == cid) {
            Some(c) => ApiResponse::ok(render_combination(p, c)),
            None => combination_not_found(),
        },
    })
}

async fn put_combination(
    Path(CombinationId { id, cid }): Path<CombinationId>,
    JsonBody(body): JsonBody,
) -> Op {
    Op::new(move |st| update_combination(st, &id, &cid, body.as_ref()))
}

async fn put_combination_inventory(
    Path(CombinationId { id, cid }): Path<CombinationId>,
    JsonBody(body): JsonBody,
) -> Op {
    Op::new(move |st| adjust(st, &id, Some(&cid), body.as_ref()))
}

async fn post_batch(Query(q): Query<BatchQuery>, JsonBody(body): JsonBody) -> Op {
    // Routing is async and an op runs under the state lock: the sub-requests are routed
    // here, and run (or wait, when queued) in the op.
    let requests = route_batch(body.as_ref()).await;
    Op::new(move |st| start_batch(st, &q, requests))
}

async fn get_batch(Query(q): Query<BatchQuery>) -> Op {
    Op::new(move |st| poll_batch(st, &q))
}

fn order_not_found() -> ApiResponse {
    error(StatusCode::NOT_FOUND, "ORDER_NOT_FOUND", "Order not found")
}

fn product_not_found() -> ApiResponse {
    error(
        StatusCode::NOT_FOUND,
        "PRODUCT_NOT_FOUND",
        "Product not found",
    )
}

fn combination_not_found() -> ApiResponse {
    error(
        StatusCode::NOT_FOUND,
        "COMBINATION_NOT_FOUND",
        "Combination not found",
    )
}

fn product<'a>(st: &'a State, id: &str) -> Option<&'a EcwidProduct> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| st.ecwid_products.get(&id))
}

fn page(items: Vec<Value>, offset: usize, limit: usize) -> Value {
    let total = items.len();
    let items: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    json!({"total": total, "count": items.len(), "offset": offset, "limit": limit, "items": items})
}

// ---------------------------------------------------------------------------------------------
// Profile

fn profile(st: &State) -> Value {
    let id = st.cfg.ecwid_store_id;
    let currency = st.cfg.effective_ecwid_currency();
    json!({
        "generalInfo": {
            "storeId": id,
            "storeUrl": format!("https://store{id}.company.site"),
            "starterSite": {"ecwidSubdomain": format!("store{id}"), "generatedUrl": format!("https://store{id}.company.site")},
        },
        "account": {"accountName": "Sandbox Merchant", "accountNickName": "sandbox", "accountEmail": "merchant@sandbox.example.com"},
        "settings": {"storeName": "Sandbox Store", "closed": false},
        "formatsAndUnits": {
            "currency": currency,
            "currencyPrefix": "$",
            "currencySuffix": "",
            "currencyPrecision": match currency { "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0, "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3, "CLF" | "UYW" => 4, _ => 2 },
            "currencyGroupSeparator": ",",
            "currencyDecimalSeparator": ".",
            "currencyTruncateZeroFractional": false,
            "currencyRate": 1,
            "weightUnit": "KILOGRAM",
            "timezone": "UTC",
        },
        "taxSettings": {
            "automaticTaxEnabled": false,
            "pricesIncludeTax": true,
            "taxes": st.ecwid_taxes.iter().map(|t| json!({
                "id": t.id, "name": t.name, "enabled": true, "includeInPrice": true,
                "useShippingAddress": false, "taxShipping": false, "appliedByDefault": false,
                "defaultTax": dec_json(t.value), "rules": [],
            })).collect::<Vec<_>>(),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Orders

/// `GET /orders`: the search's parameters (unknown ones are ignored).
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct OrdersQuery {
    offset: Count,
    limit: Count,
    /// Matches the numeric `internalId` (see the crate docs: UNCERTAIN upstream).
    ids: Commas,
    payment_status: Commas,
    fulfillment_status: Commas,
    /// Case-insensitive, the whole address.
    email: First,
    created_from: EcwidDate,
    created_to: EcwidDate,
    updated_from: EcwidDate,
    updated_to: EcwidDate,
}

fn search_orders(st: &State, q: &OrdersQuery) -> ApiResponse {
    let (offset, limit) = page_bounds(q.offset.0, q.limit.0);
    let email = q.email.as_deref().map(str::to_lowercase);
    // (field, lower bound?, unix seconds)
    let bounds: Vec<(&str, bool, i64)> = [
        ("createTimestamp", true, q.created_from.0),
        ("createTimestamp", false, q.created_to.0),
        ("updateTimestamp", true, q.updated_from.0),
        ("updateTimestamp", false, q.updated_to.0),
    ]
    .into_iter()
    .filter_map(|(field, lower, t)| t.map(|t| (field, lower, t)))
    .collect();
    let field = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut found: Vec<&Value> = st
        .ecwid_orders
        .values()
        .filter(|o| {
            q.ids.0.as_ref().is_none_or(|ids| {
                let internal = o
                    .get("internalId")
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                ids.contains(&internal)
            })
        })
        .filter(|o| {
            q.payment_status
                .0
                .as_ref()
                .is_none_or(|p| p.contains(&field(o, "paymentStatus")))
        })
        .filter(|o| {
            q.fulfillment_status
                .0
                .as_ref()
                .is_none_or(|f| f.contains(&field(o, "fulfillmentStatus")))
        })
        .filter(|o| {
            email
                .as_ref()
                .is_none_or(|e| field(o, "email").to_lowercase() == *e)
        })
        .filter(|o| {
            bounds.iter().all(|(f, lower, t)| {
                let v = o.get(*f).and_then(Value::as_i64).unwrap_or(0);
                if *lower { v >= *t } else { v <= *t }
            })
        })
        .collect();
    // Newest first.
    found.sort_by_key(|o| {
        std::cmp::Reverse((
            o.get("createTimestamp")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            o.get("internalId").and_then(Value::as_u64).unwrap_or(0),
        ))
    });
    ApiResponse::ok(page(found.into_iter().cloned().collect(), offset, limit))
}

fn create_order(st: &mut State, body: Option<&Value>) -> ApiResponse {
    let Some(Value::Object(obj)) = body else {
        return bad("The request body must be a JSON object");
    };
    let mut order = Value::Object(obj.clone());
    let id = st.new_order_id();
    let now = Utc::now();
    let o = order.as_object_mut().expect("object");
    o.insert("id".into(), id.clone().into());
    o.remove("internalId");
    o.entry("createDate").or_insert(ecwid_date(now).into());
    o.entry("createTimestamp").or_insert(now.timestamp().into());
    o.entry("paymentStatus")
        .or_insert("AWAITING_PAYMENT".into());
    o.entry("fulfillmentStatus")
        .or_insert("AWAITING_PROCESSING".into());
    match st.insert_order(order) {
        Ok(id) => {
            let internal = st.ecwid_order_by_id(&id).map(|(k, _)| k).unwrap_or(0);
            ApiResponse::ok(json!({"id": internal, "orderid": id}))
        }
        Err(e) => bad(&e.to_string()),
    }
}

fn update_order(st: &mut State, id: &str, body: Option<&Value>) -> ApiResponse {
    let Some(Value::Object(patch)) = body else {
        return bad("The request body must be a JSON object");
    };
    match st.ecwid_order_mut(id) {
        Some(order) => {
            merge_order(order, patch);
            ApiResponse::ok(json!({"updateCount": 1}))
        }
        None => order_not_found(),
    }
}

/// Shallow-merge fields into an order (its `id` and `internalId` never change) and touch its
/// update date.
pub(crate) fn merge_order(order: &mut Value, patch: &Map<String, Value>) {
    let now = Utc::now();
    if let Some(o) = order.as_object_mut() {
        for (k, v) in patch {
            if k != "id" && k != "internalId" {
                o.insert(k.clone(), v.clone());
            }
        }
        o.insert("updateDate".into(), ecwid_date(now).into());
        o.insert("updateTimestamp".into(), now.timestamp().into());
    }
}

// ---------------------------------------------------------------------------------------------
// Products

/// The unit price including tax, as the store shows it.
pub(crate) fn gross(excl: Decimal, tax_percent: Option<Decimal>) -> Decimal {
    match tax_percent {
        Some(r) => round2(excl * (Decimal::ONE + r / Decimal::from(100))),
        None => round2(excl),
    }
}

fn qty_fields(m: &mut Map<String, Value>, quantity: Option<i64>) {
    m.insert("unlimited".into(), quantity.is_none().into());
    m.insert("inStock".into(), quantity.is_none_or(|q| q > 0).into());
    if let Some(q) = quantity {
        m.insert("quantity".into(), q.into());
    }
}

pub(crate) fn render_combination(p: &EcwidProduct, c: &EcwidCombination) -> Value {
    let price = gross(c.price_excl.unwrap_or(p.price_excl), p.tax_percent);
    let mut m = Map::new();
    m.insert("id".into(), c.id.into());
    m.insert("combinationNumber".into(), c.number.into());
    m.insert(
        "options".into(),
        json!([{
            "name": c.option_name, "nameTranslated": {"en": c.option_name},
            "value": c.option_value, "valueTranslated": {"en": c.option_value},
        }]),
    );
    m.insert("sku".into(), c.sku.clone().into());
    qty_fields(&mut m, c.quantity);
    m.insert("price".into(), dec_json(price));
    m.insert("defaultDisplayedPrice".into(), dec_json(price));
    m.insert(
        "defaultDisplayedPriceFormatted".into(),
        format!("${price:.2}").into(),
    );
    m.insert("warningLimit".into(), 0.into());
    m.insert("attributes".into(), json!([]));
    Value::Object(m)
}

pub(crate) fn render_product(p: &EcwidProduct) -> Value {
    let price = gross(p.price_excl, p.tax_percent);
    let mut options: Vec<(String, Vec<String>)> = Vec::new();
    for c in &p.combinations {
        match options.iter_mut().find(|(n, _)| *n == c.option_name) {
            Some((_, values)) => {
                if !values.contains(&c.option_value) {
                    values.push(c.option_value.clone());
                }
            }
            None => options.push((c.option_name.clone(), vec![c.option_value.clone()])),
        }
    }
    let slug = format!(
        "{}-{}",
        p.name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>(),
        p.id
    );
    let mut m = Map::new();
    m.insert("id".into(), p.id.into());
    m.insert("sku".into(), p.sku.clone().into());
    qty_fields(&mut m, p.quantity);
    m.insert("name".into(), p.name.clone().into());
    m.insert("nameTranslated".into(), json!({"en": p.name}));
    m.insert("price".into(), dec_json(price));
    m.insert("priceInProductList".into(), dec_json(price));
    m.insert("defaultDisplayedPrice".into(), dec_json(price));
    m.insert(
        "defaultDisplayedPriceFormatted".into(),
        format!("${price:.2}").into(),
    );
    m.insert(
        "tax".into(),
        json!({
            "taxable": p.tax_percent.is_some(),
            "defaultLocationIncludedTaxRate": dec_json(p.tax_percent.unwrap_or_default()),
            "enabledManualTaxes": p.tax_id.map(|t| vec![t]).unwrap_or_default(),
            "taxClassCode": "default",
        }),
    );
    m.insert("isShippingRequired".into(), true.into());
    m.insert(
        "url".into(),
        format!("https://store1003.company.site/products/{slug}").into(),
    );
    m.insert("autogeneratedSlug".into(), slug.into());
    m.insert("created".into(), ecwid_date(p.created).into());
    m.insert("updated".into(), ecwid_date(p.updated).into());
    m.insert("createTimestamp".into(), p.created.timestamp().into());
    m.insert("updateTimestamp".into(), p.updated.timestamp().into());
    m.insert("enabled".into(), p.enabled.into());
    m.insert(
        "options".into(),
        Value::Array(
            options
                .into_iter()
                .map(|(name, values)| {
                    json!({
                        "type": "RADIO",
                        "name": name,
                        "nameTranslated": {"en": name},
                        "choices": values.iter().map(|v| json!({"text": v, "textTranslated": {"en": v}, "priceModifier": 0, "priceModifierType": "ABSOLUTE"})).collect::<Vec<_>>(),
                        "defaultChoice": 0,
                        "required": true,
                    })
                })
                .collect(),
        ),
    );
    m.insert(
        "combinations".into(),
        Value::Array(
            p.combinations
                .iter()
                .map(|c| render_combination(p, c))
                .collect(),
        ),
    );
    m.insert("warningLimit".into(), 0.into());
    m.insert("defaultCombinationId".into(), 0.into());
    m.insert("categoryIds".into(), json!([]));
    m.insert("description".into(), "".into());
    Value::Object(m)
}

/// `GET /products`: the search's parameters (unknown ones are ignored).
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ProductsQuery {
    offset: Count,
    limit: Count,
    /// The product's or one of its combinations' SKU, exactly.
    sku: First,
    /// A case-insensitive substring of the name or the SKU.
    keyword: First,
    product_id: Commas,
}

fn search_products(st: &State, q: &ProductsQuery) -> ApiResponse {
    let (offset, limit) = page_bounds(q.offset.0, q.limit.0);
    let sku = q.sku.as_deref();
    let keyword = q.keyword.as_deref().map(str::to_lowercase);
    let ids = q.product_id.0.as_ref();
    // Filter first, render only the page returned (catalogs can be large).
    let matching: Vec<&EcwidProduct> = st
        .ecwid_products
        .values()
        .filter(|p| sku.is_none_or(|s| p.sku == s || p.combinations.iter().any(|c| c.sku == s)))
        .filter(|p| {
            keyword.as_ref().is_none_or(|k| {
                p.name.to_lowercase().contains(k) || p.sku.to_lowercase().contains(k)
            })
        })
        .filter(|p| ids.is_none_or(|ids| ids.contains(&p.id.to_string())))
        .collect();
    let total = matching.len();
    let items: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(render_product)
        .collect();
    ApiResponse::ok(
        json!({"total": total, "count": items.len(), "offset": offset, "limit": limit, "items": items}),
    )
}

/// A stock quantity from a JSON body: a whole JSON number (Ecwid stock is an integer).
fn whole_number(v: &Value, field: &str) -> Result<i64, ApiResponse> {
    if !v.is_number() {
        return Err(bad(&format!("{field} must be a number")));
    }
    json_dec(v)
        .filter(|d| d.fract().is_zero())
        .and_then(|d| d.to_i64())
        .ok_or_else(|| bad(&format!("{field} must be an integer")))
}

/// Apply `quantity` / `unlimited` from a PUT body to a stock slot.
fn apply_stock_fields(slot: &mut Option<i64>, obj: &Map<String, Value>) -> Result<(), ApiResponse> {
    if let Some(v) = obj.get("quantity") {
        let q = whole_number(v, "quantity")?;
        if q < 0 {
            return Err(bad("quantity must not be negative"));
        }
        *slot = Some(q);
    }
    if let Some(v) = obj.get("unlimited") {
        match v.as_bool() {
            Some(true) => *slot = None,
            Some(false) => {
                if slot.is_none() {
                    *slot = Some(0);
                }
            }
            None => return Err(bad("unlimited must be a boolean")),
        }
    }
    Ok(())
}

fn update_product(st: &mut State, id: &str, body: Option<&Value>) -> ApiResponse {
    let Some(Value::Object(obj)) = body else {
        return bad("The request body must be a JSON object");
    };
    let Some(p) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| st.ecwid_products.get_mut(&id))
    else {
        return product_not_found();
    };
    let mut next = p.clone();
    if let Err(e) = apply_stock_fields(&mut next.quantity, obj) {
        return e;
    }
    if let Some(v) = obj.get("name") {
        match v.as_str() {
            Some(s) => next.name = s.into(),
            None => return bad("name must be a string"),
        }
    }
    if let Some(v) = obj.get("sku") {
        match v.as_str() {
            Some(s) => next.sku = s.into(),
            None => return bad("sku must be a string"),
        }
    }
    if let Some(v) = obj.get("enabled") {
        match v.as_bool() {
            Some(b) => next.enabled = b,
            None => return bad("enabled must be a boolean"),
        }
    }
    if let Some(v) = obj.get("price") {
        match json_dec(v).filter(|_| v.is_number()) {
            Some(gross_price) => {
                next.price_excl = match next.tax_percent {
                    Some(r) => gross_price / (Decimal::ONE + r / Decimal::from(100)),
                    None => gross_price,
                }
            }
            None => return bad("price must be a number"),
        }
    }
    next.updated = Utc::now();
    *p = next;
    ApiResponse::ok(json!({"updateCount": 1}))
}

fn update_combination(st: &mut State, id: &str, cid: &str, body: Option<&Value>) -> ApiResponse {
    let Some(Value::Object(obj)) = body else {
        return bad("The request body must be a JSON object");
    };
    let Some(p) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| st.ecwid_products.get_mut(&id))
    else {
        return product_not_found();
    };
    let Some(c) = p.combinations.iter_mut().find(|c| c.id.to_string() == cid) else {
        return combination_not_found();
    };
    let mut qty = c.quantity;
    if let Err(e) = apply_stock_fields(&mut qty, obj) {
        return e;
    }
    if let Some(v) = obj.get("sku") {
        match v.as_str() {
            Some(s) => c.sku = s.into(),
            None => return bad("sku must be a string"),
        }
    }
    c.quantity = qty;
    p.updated = Utc::now();
    ApiResponse::ok(json!({"updateCount": 1}))
}

fn adjust(st: &mut State, id: &str, cid: Option<&str>, body: Option<&Value>) -> ApiResponse {
    let Some(Value::Object(obj)) = body else {
        return bad("The request body must be a JSON object");
    };
    let delta = match obj.get("quantityDelta") {
        Some(v) => match whole_number(v, "quantityDelta") {
            Ok(d) => d,
            Err(e) => return e,
        },
        None => return bad("quantityDelta is required"),
    };
    let Some(p) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| st.ecwid_products.get_mut(&id))
    else {
        return product_not_found();
    };
    let slot = match cid {
        None => &mut p.quantity,
        Some(cid) => match p.combinations.iter_mut().find(|c| c.id.to_string() == cid) {
            Some(c) => &mut c.quantity,
            None => return combination_not_found(),
        },
    };
    let count = match slot {
        Some(q) => {
            *q += delta;
            1
        }
        None => 0,
    };
    p.updated = Utc::now();
    ApiResponse::ok(json!({"updateCount": count}))
}

// ---------------------------------------------------------------------------------------------
// Batch

use crate::faults::{FaultKind, Route};

/// The endpoints a batch's sub-requests are routed to (they cannot start a batch).
static IN_BATCH: LazyLock<Router> = LazyLock::new(|| routes(true));

/// `POST /batch` and `GET /batch`: the parameters of both.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct BatchQuery {
    /// Required on POST: `true` or `false`.
    stop_on_first_failure: First,
    deduplication_key: First,
    /// Required on GET.
    ticket: First,
}

/// One validated sub-request, routed: its id, what the counters see, and its op.
pub(crate) struct SubRequest {
    id: String,
    method: Method,
    /// The first segment of its path (`orders`, `products`...).
    resource: String,
    op: Op,
}

/// A batch accepted but not run yet ([`FaultKind::Queued`]).
pub(crate) struct QueuedBatch {
    polled: u32,
    polls: u32,
    stop: bool,
    requests: Vec<SubRequest>,
}

/// Validates every sub-request first (a malformed batch is rejected as a whole), and routes
/// each. A path no endpoint can read answers that sub-request 400.
async fn route_batch(body: Option<&Value>) -> Result<Vec<SubRequest>, ApiResponse> {
    let Some(Value::Array(reqs)) = body else {
        return Err(bad("The request body must be a JSON array of requests"));
    };
    if reqs.is_empty() || reqs.len() > MAX_BATCH {
        return Err(bad("A batch holds 1 to 500 requests"));
    }
    let mut routed = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let id = r
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| i.to_string());
        let Some(path) = r.get("path").and_then(Value::as_str) else {
            return Err(bad(&format!("request {id}: path is required")));
        };
        let Some(method) = r
            .get("method")
            .and_then(Value::as_str)
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
        else {
            return Err(bad(&format!("request {id}: method is required")));
        };
        let resource = path
            .split('?')
            .next()
            .and_then(|p| p.split('/').find(|s| !s.is_empty()))
            .unwrap_or("")
            .to_string();
        let body = r.get("body").cloned();
        let op = crate::endpoint::route(&IN_BATCH, method.clone(), path, body, bad_parameter)
            .await
            .unwrap_or_else(|| {
                Op::answer(bad(&format!(
                    "request {id}: path {path:?} is not a valid path"
                )))
            });
        routed.push(SubRequest {
            id,
            method,
            resource,
            op,
        });
    }
    Ok(routed)
}

fn start_batch(
    st: &mut State,
    q: &BatchQuery,
    requests: Result<Vec<SubRequest>, ApiResponse>,
) -> ApiResponse {
    let stop = match q.stop_on_first_failure.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => return bad("stopOnFirstFailure must be true or false"),
    };
    let now = Instant::now();
    st.batch_dedup
        .retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(3600));
    let key = q.deduplication_key.as_deref().filter(|k| !k.is_empty());
    // A repeated key within the hour: the first batch's ticket, so its result (whatever it
    // was, failed sub-requests included); nothing runs again.
    if let Some(key) = key
        && let Some((ticket, _)) = st.batch_dedup.get(key)
    {
        return ApiResponse::ok(json!({"ticket": ticket}));
    }
    let requests = match requests {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let total = requests.len();
    let (result, queued) = match st.take_fault(|r| r == Route::EcwidBatch) {
        Some(FaultKind::Queued { polls }) if polls > 0 => (
            json!({
                "status": "QUEUED",
                "totalRequests": total,
                "completedRequests": 0,
                "responses": null,
            }),
            Some(QueuedBatch {
                polled: 0,
                polls,
                stop,
                requests,
            }),
        ),
        Some(FaultKind::Status(code)) => (
            run_batch(
                st,
                requests,
                stop,
                Some(&|| ApiResponse::server_error(code)),
            ),
            None,
        ),
        Some(FaultKind::RateLimit { retry_after }) => (
            run_batch(st, requests, stop, Some(&|| rate_limited(retry_after))),
            None,
        ),
        _ => (run_batch(st, requests, stop, None), None),
    };
    let ticket = new_uuid();
    st.batches.insert(
        ticket.clone(),
        crate::state::Batch {
            ticket: ticket.clone(),
            result,
            queued,
        },
    );
    if let Some(key) = key {
        st.batch_dedup
            .insert(key.to_string(), (ticket.clone(), now));
    }
    ApiResponse::ok(json!({"ticket": ticket}))
}

/// Runs the sub-requests in order and returns the completed batch's result. With `fail`,
/// every sub-request gets that answer instead and nothing is executed (nor counted).
fn run_batch(
    st: &mut State,
    requests: Vec<SubRequest>,
    stop: bool,
    fail: Option<&dyn Fn() -> ApiResponse>,
) -> Value {
    let mut responses = Vec::with_capacity(requests.len());
    let mut failed = false;
    for SubRequest {
        id,
        method,
        resource,
        op,
    } in requests
    {
        if failed && stop {
            responses.push(json!({"id": id, "status": "NOT_EXECUTED"}));
            continue;
        }
        let resp = match fail {
            Some(fail) => fail(),
            None => {
                count(st, &method, &resource);
                op.run(st)
            }
        };
        let ok = resp.status.is_success();
        failed |= !ok;
        let http_body = match resp.body {
            Body::Json(v) => v,
            Body::Html(s) => Value::String(s),
            Body::Empty => Value::Null,
        };
        responses.push(json!({
            "id": id,
            "escapedRequestId": id,
            "status": if ok { "COMPLETED" } else { "FAILED" },
            "httpStatusCode": resp.status.as_u16(),
            "httpBody": http_body,
        }));
    }
    let total = responses.len();
    json!({
        "status": "COMPLETED",
        "totalRequests": total,
        "completedRequests": total,
        "responses": responses,
    })
}

/// `GET /batch?ticket=`. A queued batch answers `QUEUED` (then `IN_PROGRESS`) with
/// `"responses": null` for its first polls, and runs at the poll after them.
fn poll_batch(st: &mut State, q: &BatchQuery) -> ApiResponse {
    let Some(ticket) = q.ticket.as_deref().filter(|t| !t.is_empty()) else {
        return bad("ticket is required");
    };
    let Some(b) = st.batches.get_mut(ticket) else {
        return error(
            StatusCode::NOT_FOUND,
            "BATCH_NOT_FOUND",
            "Batch request with this ticket not found",
        );
    };
    debug_assert_eq!(b.ticket, ticket);
    if let Some(queued) = b.queued.as_mut() {
        if queued.polled < queued.polls {
            queued.polled += 1;
            let status = if queued.polls >= 2 && queued.polled == queued.polls {
                "IN_PROGRESS"
            } else {
                "QUEUED"
            };
            b.result["status"] = json!(status);
        } else if let Some(queued) = b.queued.take() {
            let result = run_batch(st, queued.requests, queued.stop, None);
            if let Some(b) = st.batches.get_mut(ticket) {
                b.result = result;
            }
        }
    }
    ApiResponse::ok(st.batches[ticket].result.clone())
}
