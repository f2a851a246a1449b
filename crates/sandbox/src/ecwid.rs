//! The fake Ecwid REST API v3 and the checkout simulation.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use chrono::Utc;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value, json};

use crate::server::{ApiResponse, Body, retry_after_secs};
use crate::state::{EcwidCombination, EcwidProduct, State};
use crate::util::{Query, dec_json, ecwid_date, json_dec, new_uuid, parse_ecwid_date, round2};

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

/// Count a request (or batch sub-request) by kind.
pub(crate) fn count(st: &mut State, method: &Method, rest: &[String]) {
    match rest.first().map(String::as_str) {
        Some("orders") => {
            if *method == Method::GET {
                st.counters.ecwid_order_gets += 1;
            } else if is_write(method) {
                st.counters.ecwid_order_writes += 1;
            }
        }
        Some("products") if is_write(method) => st.counters.ecwid_product_writes += 1,
        Some("batch") if *method == Method::POST => st.counters.ecwid_batches += 1,
        _ => {}
    }
}

/// Serve one Ecwid API request (path relative to `/api/v3/{storeId}`).
pub(crate) fn dispatch(
    st: &mut State,
    method: &Method,
    rest: &[String],
    q: &Query,
    body: Option<&Value>,
    nested: bool,
) -> ApiResponse {
    let segs: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["profile"]) => ApiResponse::ok(profile(st)),
        (Method::GET, ["orders"]) => search_orders(st, q),
        (Method::POST, ["orders"]) => create_order(st, body),
        (Method::GET, ["orders", id]) => match st.ecwid_order_by_id(id) {
            Some((_, o)) => ApiResponse::ok(o.clone()),
            None => order_not_found(),
        },
        (Method::PUT, ["orders", id]) => update_order(st, id, body),
        (Method::DELETE, ["orders", id]) => {
            let key = st.ecwid_order_by_id(id).map(|(k, _)| k);
            match key {
                Some(k) => {
                    st.ecwid_orders.remove(&k);
                    ApiResponse::ok(json!({"deleteCount": 1}))
                }
                None => order_not_found(),
            }
        }
        (_, ["orders", ..]) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Method not allowed",
        ),
        (Method::GET, ["products"]) => search_products(st, q),
        (Method::GET, ["products", id]) => match product(st, id) {
            Some(p) => ApiResponse::ok(render_product(p)),
            None => product_not_found(),
        },
        (Method::PUT, ["products", id]) => update_product(st, id, body),
        (Method::GET, ["products", id, "combinations"]) => match product(st, id) {
            Some(p) => ApiResponse::ok(Value::Array(
                p.combinations
                    .iter()
                    .map(|c| render_combination(p, c))
                    .collect(),
            )),
            None => product_not_found(),
        },
        (Method::GET, ["products", id, "combinations", cid]) => match product(st, id) {
            None => product_not_found(),
            Some(p) => match p.combinations.iter().find(|c| c.id.to_string() == *cid) {
                Some(c) => ApiResponse::ok(render_combination(p, c)),
                None => combination_not_found(),
            },
        },
        (Method::PUT, ["products", id, "combinations", cid]) => {
            update_combination(st, id, cid, body)
        }
        (Method::PUT, ["products", id, "inventory"]) => adjust(st, id, None, body),
        (Method::PUT, ["products", id, "combinations", cid, "inventory"]) => {
            adjust(st, id, Some(cid), body)
        }
        (Method::POST, ["batch"]) if !nested => post_batch(st, q, body),
        (Method::GET, ["batch"]) if !nested => get_batch(st, q),
        (_, ["profile"] | ["products", ..] | ["batch"]) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Method not allowed",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "Requested resource not found",
        ),
    }
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

fn paging(q: &Query) -> Result<(usize, usize), ApiResponse> {
    let offset = match q.get("offset") {
        None | Some("") => 0,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| bad("offset must be a non-negative integer"))?,
    };
    let limit = match q.get("limit") {
        None | Some("") => MAX_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| bad("limit must be a non-negative integer"))?
            .min(MAX_LIMIT),
    };
    Ok((offset, limit))
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
    json!({
        "generalInfo": {
            "storeId": id,
            "storeUrl": format!("https://store{id}.company.site"),
            "starterSite": {"ecwidSubdomain": format!("store{id}"), "generatedUrl": format!("https://store{id}.company.site")},
        },
        "account": {"accountName": "Sandbox Merchant", "accountNickName": "sandbox", "accountEmail": "merchant@sandbox.example.com"},
        "settings": {"storeName": "Sandbox Store", "closed": false},
        "formatsAndUnits": {
            "currency": st.cfg.currency,
            "currencyPrefix": "$",
            "currencySuffix": "",
            "currencyPrecision": match st.cfg.currency.as_str() { "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0, "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3, "CLF" | "UYW" => 4, _ => 2 },
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

fn search_orders(st: &State, q: &Query) -> ApiResponse {
    let (offset, limit) = match paging(q) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let split = |key: &str| -> Option<Vec<String>> {
        q.get(key).filter(|s| !s.is_empty()).map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
    };
    let ids = split("ids");
    let payment = split("paymentStatus");
    let fulfillment = split("fulfillmentStatus");
    let email = q.get("email").map(str::to_lowercase);
    let mut bounds = Vec::new();
    for (key, field, lower) in [
        ("createdFrom", "createTimestamp", true),
        ("createdTo", "createTimestamp", false),
        ("updatedFrom", "updateTimestamp", true),
        ("updatedTo", "updateTimestamp", false),
    ] {
        if let Some(v) = q.get(key).filter(|s| !s.is_empty()) {
            match parse_ecwid_date(v) {
                Some(t) => bounds.push((field, lower, t)),
                None => return bad(&format!("{key} is not a valid date")),
            }
        }
    }
    let field = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut found: Vec<&Value> = st
        .ecwid_orders
        .values()
        .filter(|o| {
            // `ids` matches the numeric internalId (see the crate docs: UNCERTAIN upstream).
            ids.as_ref().is_none_or(|ids| {
                let internal = o
                    .get("internalId")
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                ids.contains(&internal)
            })
        })
        .filter(|o| {
            payment
                .as_ref()
                .is_none_or(|p| p.contains(&field(o, "paymentStatus")))
        })
        .filter(|o| {
            fulfillment
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

fn search_products(st: &State, q: &Query) -> ApiResponse {
    let (offset, limit) = match paging(q) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let sku = q.get("sku");
    let keyword = q.get("keyword").map(str::to_lowercase);
    let ids: Option<Vec<&str>> = q
        .get("productId")
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(str::trim).collect());
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
        .filter(|p| {
            ids.as_ref()
                .is_none_or(|ids| ids.contains(&p.id.to_string().as_str()))
        })
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

/// Where a queued batch ([`FaultKind::Queued`]) keeps what it will run, inside its
/// `Batch::result`; [`get_batch`] never shows it.
const PENDING: &str = "_sandboxPending";

/// One validated sub-request: id, method, path segments, query, body.
type SubRequest = (String, Method, Vec<String>, Query, Option<Value>);

fn post_batch(st: &mut State, q: &Query, body: Option<&Value>) -> ApiResponse {
    let stop = match q.get("stopOnFirstFailure") {
        Some("true") => true,
        Some("false") => false,
        _ => return bad("stopOnFirstFailure must be true or false"),
    };
    let now = Instant::now();
    st.batch_dedup
        .retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(3600));
    let key = q.get("deduplicationKey").filter(|k| !k.is_empty());
    // A repeated key within the hour: the first batch's ticket, so its result (whatever it
    // was, failed sub-requests included); nothing runs again.
    if let Some(key) = key
        && let Some((ticket, _)) = st.batch_dedup.get(key)
    {
        return ApiResponse::ok(json!({"ticket": ticket}));
    }
    let Some(Value::Array(reqs)) = body else {
        return bad("The request body must be a JSON array of requests");
    };
    if reqs.is_empty() || reqs.len() > MAX_BATCH {
        return bad("A batch holds 1 to 500 requests");
    }
    let parsed = match parse_batch(reqs) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let total = parsed.len();
    let result = match st.take_fault(|r| r == Route::EcwidBatch) {
        Some(FaultKind::Queued { polls }) if polls > 0 => json!({
            "status": "QUEUED",
            "totalRequests": total,
            "completedRequests": 0,
            "responses": null,
            PENDING: {"polls": 0, "of": polls, "stop": stop, "requests": reqs},
        }),
        Some(FaultKind::Status(code)) => {
            run_batch(st, parsed, stop, Some(&|| ApiResponse::server_error(code)))
        }
        Some(FaultKind::RateLimit { retry_after }) => {
            run_batch(st, parsed, stop, Some(&|| rate_limited(retry_after)))
        }
        _ => run_batch(st, parsed, stop, None),
    };
    let ticket = new_uuid();
    st.batches.insert(
        ticket.clone(),
        crate::state::Batch {
            ticket: ticket.clone(),
            result,
        },
    );
    if let Some(key) = key {
        st.batch_dedup
            .insert(key.to_string(), (ticket.clone(), now));
    }
    ApiResponse::ok(json!({"ticket": ticket}))
}

/// Validates every sub-request first: a malformed batch is rejected as a whole.
fn parse_batch(reqs: &[Value]) -> Result<Vec<SubRequest>, ApiResponse> {
    let mut parsed = Vec::with_capacity(reqs.len());
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
        let (p, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let segs: Vec<String> = p
            .split('/')
            .filter(|s| !s.is_empty())
            .map(crate::util::path_decode)
            .collect();
        parsed.push((
            id,
            method,
            segs,
            Query::parse(query),
            r.get("body").cloned(),
        ));
    }
    Ok(parsed)
}

/// Runs the sub-requests in order and returns the completed batch's result. With `fail`,
/// every sub-request gets that answer instead and nothing is executed (nor counted).
fn run_batch(
    st: &mut State,
    parsed: Vec<SubRequest>,
    stop: bool,
    fail: Option<&dyn Fn() -> ApiResponse>,
) -> Value {
    let mut responses = Vec::with_capacity(parsed.len());
    let mut failed = false;
    for (id, method, segs, query, body) in parsed {
        if failed && stop {
            responses.push(json!({"id": id, "status": "NOT_EXECUTED"}));
            continue;
        }
        let resp = match fail {
            Some(fail) => fail(),
            None => {
                count(st, &method, &segs);
                dispatch(st, &method, &segs, &query, body.as_ref(), true)
            }
        };
        let ok = resp.status.is_success();
        failed |= !ok;
        let http_body = match resp.body {
            Body::Json(v) => v,
            Body::Html(s) => Value::String(s),
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
fn get_batch(st: &mut State, q: &Query) -> ApiResponse {
    let Some(ticket) = q.get("ticket").filter(|t| !t.is_empty()) else {
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
    if let Some(pending) = b.result.get_mut(PENDING) {
        let polled = pending["polls"].as_u64().unwrap_or(0);
        let of = pending["of"].as_u64().unwrap_or(0);
        if polled < of {
            pending["polls"] = json!(polled + 1);
            let status = if of >= 2 && polled + 1 == of {
                "IN_PROGRESS"
            } else {
                "QUEUED"
            };
            b.result["status"] = json!(status);
        } else {
            let stop = pending["stop"].as_bool().unwrap_or(false);
            let reqs = match pending["requests"].take() {
                Value::Array(reqs) => reqs,
                _ => Vec::new(),
            };
            // Validated when it was posted.
            let parsed = parse_batch(&reqs).unwrap_or_default();
            let result = run_batch(st, parsed, stop, None);
            if let Some(b) = st.batches.get_mut(ticket) {
                b.result = result;
            }
        }
    }
    let mut answer = st.batches[ticket].result.clone();
    if let Some(o) = answer.as_object_mut() {
        o.remove(PENDING);
    }
    ApiResponse::ok(answer)
}
