//! Admin JSON endpoints under `/_sandbox/`, for the demo and for tests that drive the sandbox
//! from another process. No auth (loopback only). Errors are `400 {"error": "..."}`.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/_sandbox/orders` | [`OrderSpec`](crate::OrderSpec) | `{"orderId"}` |
//! | POST | `/_sandbox/orders/raw` | an Ecwid order JSON | `{"orderId"}` |
//! | GET | `/_sandbox/orders/{id}` | | the order JSON |
//! | POST | `/_sandbox/orders/{id}/payment_status` | `{"status": "PAID"}` | `{"ok": true}` |
//! | POST | `/_sandbox/webhooks/order` | `{"eventType","orderId","old","new","deliverTo"?}` | `{"body" (string), "signature", "eventId", "eventCreated", "deliveredStatus"?}` |
//! | POST | `/_sandbox/faults` | [`Fault`](crate::Fault) | `{"ok": true}` |
//! | DELETE | `/_sandbox/faults` | | `{"ok": true}` |
//! | GET | `/_sandbox/state` | | sales, counters, customers, ls_inventory, ecwid_stock, ecwid_orders, seed_ids, faults |
//! | POST | `/_sandbox/counters/reset` | | `{"ok": true}` |
//! | POST | `/_sandbox/products?only=ecwid\|lightspeed` | [`ProductSpec`](crate::ProductSpec) | [`ProductIds`](crate::ProductIds) |
//! | POST | `/_sandbox/inventory` | `{"product_id","outlet_id"?,"level"}` (outlet defaults to Main Outlet) | `{"ok": true, "version"}` |
//! | POST | `/_sandbox/ecwid_stock` | `{"product_id","combination_id"?,"quantity"}` (null = unlimited) | `{"ok": true}` |
//! | POST | `/_sandbox/pos_sales` | `{"product_id","quantity","register_id"?}` (defaults to the web register) | `{"saleId"}` |
//! | POST | `/_sandbox/customers` | `{"first_name","last_name","email"}` | `{"id"}` |
//! | POST | `/_sandbox/registers` | `{"name","outlet_id"}` (names may repeat) | `{"id"}` |
//! | POST | `/_sandbox/lightspeed/oauth` | [`OAuthMode`](crate::OAuthMode) | `{"ok": true}` |
//! | POST | `/_sandbox/lightspeed/oauth/revoke` | | `{"ok": true}` (kills the access token) |
//! | GET | `/_sandbox/lightspeed/webhooks` | | `{"webhooks": [Webhook], "pending"}` (Lightspeed webhook registrations, deliveries not finished) |
//! | POST | `/_sandbox/lightspeed/webhooks/delivery` | `{"drop"?: bool, "delay_ms"?: u64}` | `{"ok": true}` (lose or delay Lightspeed webhook deliveries) |

use axum::extract::{Path, Query as AxQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::Fault;
use crate::server::Shared;
use crate::specs::{OrderSpec, ProductSpec};
use crate::util::{dec_serde, dec_serde_opt};

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/orders", post(place_order))
        .route("/orders/raw", post(insert_order))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/payment_status", post(payment_status))
        .route("/webhooks/order", post(webhook))
        .route("/faults", post(inject).delete(clear_faults))
        .route("/state", get(state))
        .route("/counters/reset", post(reset_counters))
        .route("/products", post(add_product))
        .route("/inventory", post(set_inventory))
        .route("/ecwid_stock", post(set_ecwid_stock))
        .route("/pos_sales", post(pos_sale))
        .route("/customers", post(add_customer))
        .route("/registers", post(add_register))
}

fn fail(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    Json(v).into_response()
}

async fn place_order(AxState(sh): AxState<Shared>, Json(spec): Json<OrderSpec>) -> Response {
    let result = crate::ecwid_orders::place_order(&mut sh.lock(), &spec);
    match result {
        Ok(id) => ok(json!({"orderId": id})),
        Err(e) => fail(e),
    }
}

async fn insert_order(AxState(sh): AxState<Shared>, Json(order): Json<Value>) -> Response {
    let result = sh.lock().insert_order(order);
    match result {
        Ok(id) => ok(json!({"orderId": id})),
        Err(e) => fail(e),
    }
}

async fn get_order(AxState(sh): AxState<Shared>, Path(id): Path<String>) -> Response {
    let order = sh.lock().ecwid_order_by_id(&id).map(|(_, o)| o.clone());
    match order {
        Some(o) => ok(o),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no order {id}")})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

async fn payment_status(
    AxState(sh): AxState<Shared>,
    Path(id): Path<String>,
    Json(body): Json<StatusBody>,
) -> Response {
    let result = crate::ecwid_orders::set_payment_status(&mut sh.lock(), &id, &body.status);
    match result {
        Ok(()) => ok(json!({"ok": true})),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookBody {
    event_type: String,
    order_id: String,
    #[serde(default)]
    old: Option<String>,
    new: String,
    /// POST the webhook there too, like Ecwid would.
    #[serde(default)]
    deliver_to: Option<String>,
}

async fn webhook(AxState(sh): AxState<Shared>, Json(b): Json<WebhookBody>) -> Response {
    let hook = {
        let st = sh.lock();
        let (internal, fulfillment) = st
            .ecwid_order_by_id(&b.order_id)
            .map(|(k, o)| {
                (
                    k,
                    o.get("fulfillmentStatus")
                        .and_then(Value::as_str)
                        .unwrap_or("AWAITING_PROCESSING")
                        .to_string(),
                )
            })
            .unwrap_or((0, "AWAITING_PROCESSING".into()));
        crate::webhook::build_order_webhook(
            &sh.cfg.webhook_client_secret,
            sh.cfg.ecwid_store_id,
            &uuid::Uuid::new_v4().to_string(),
            chrono::Utc::now().timestamp(),
            &b.event_type,
            &b.order_id,
            internal,
            b.old.as_deref(),
            &b.new,
            &fulfillment,
        )
    };
    let mut out = json!({
        "body": String::from_utf8_lossy(&hook.body),
        "signature": hook.signature,
        "eventId": hook.event_id,
        "eventCreated": hook.event_created,
    });
    if let Some(url) = b.deliver_to {
        match crate::deliver(&url, &hook).await {
            Ok(status) => out["deliveredStatus"] = status.as_u16().into(),
            Err(e) => out["deliveryError"] = e.to_string().into(),
        }
    }
    ok(out)
}

async fn inject(AxState(sh): AxState<Shared>, Json(fault): Json<Fault>) -> Response {
    if fault.times > 0 {
        sh.lock().faults.push(fault);
    }
    ok(json!({"ok": true}))
}

async fn clear_faults(AxState(sh): AxState<Shared>) -> Response {
    sh.lock().faults.clear();
    ok(json!({"ok": true}))
}

async fn state(AxState(sh): AxState<Shared>) -> Response {
    let v = crate::state_json(&sh.lock());
    ok(v)
}

async fn reset_counters(AxState(sh): AxState<Shared>) -> Response {
    sh.lock().counters = Default::default();
    ok(json!({"ok": true}))
}

#[derive(Deserialize)]
struct OnlyQuery {
    only: Option<String>,
}

async fn add_product(
    AxState(sh): AxState<Shared>,
    AxQuery(q): AxQuery<OnlyQuery>,
    Json(spec): Json<ProductSpec>,
) -> Response {
    let (ecwid, ls) = match q.only.as_deref() {
        None | Some("") | Some("both") => (true, true),
        Some("ecwid") => (true, false),
        Some("lightspeed") | Some("ls") => (false, true),
        Some(other) => return fail(format!("only must be ecwid or lightspeed, not {other}")),
    };
    let result = sh.lock().add_product(&spec, ecwid, ls);
    match result {
        Ok(ids) => ok(serde_json::to_value(ids).unwrap_or_default()),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
struct InventoryBody {
    product_id: String,
    #[serde(default)]
    outlet_id: Option<String>,
    #[serde(with = "dec_serde")]
    level: Decimal,
}

async fn set_inventory(AxState(sh): AxState<Shared>, Json(b): Json<InventoryBody>) -> Response {
    let mut st = sh.lock();
    let outlet = b.outlet_id.unwrap_or_else(|| st.seed.outlet_id.clone());
    match st.set_ls_inventory(&b.product_id, &outlet, b.level) {
        Ok(()) => {
            let version = st
                .inventory
                .iter()
                .find(|i| i.product_id == b.product_id && i.outlet_id == outlet)
                .map(|i| i.version);
            ok(json!({"ok": true, "version": version}))
        }
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
struct EcwidStockBody {
    product_id: u64,
    #[serde(default)]
    combination_id: Option<u64>,
    #[serde(default, with = "dec_serde_opt")]
    quantity: Option<Decimal>,
}

async fn set_ecwid_stock(AxState(sh): AxState<Shared>, Json(b): Json<EcwidStockBody>) -> Response {
    use rust_decimal::prelude::ToPrimitive;
    let qty = match b.quantity {
        None => None,
        Some(d) if d.fract().is_zero() => d.to_i64(),
        Some(d) => return fail(format!("Ecwid stock must be a whole number, not {d}")),
    };
    let mut st = sh.lock();
    let Some(p) = st.ecwid_products.get_mut(&b.product_id) else {
        return fail(format!("unknown Ecwid product {}", b.product_id));
    };
    match b.combination_id {
        None => p.quantity = qty,
        Some(cid) => match p.combinations.iter_mut().find(|c| c.id == cid) {
            Some(c) => c.quantity = qty,
            None => return fail(format!("unknown combination {cid}")),
        },
    }
    p.updated = chrono::Utc::now();
    ok(json!({"ok": true}))
}

#[derive(Deserialize)]
struct PosSaleBody {
    product_id: String,
    #[serde(with = "dec_serde")]
    quantity: Decimal,
    #[serde(default)]
    register_id: Option<String>,
}

async fn pos_sale(AxState(sh): AxState<Shared>, Json(b): Json<PosSaleBody>) -> Response {
    let mut st = sh.lock();
    let register = b.register_id.unwrap_or_else(|| st.seed.register_id.clone());
    match st.pos_sale(&b.product_id, b.quantity, &register) {
        Ok(id) => ok(json!({"saleId": id})),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
struct CustomerBody {
    first_name: String,
    last_name: String,
    #[serde(default)]
    email: String,
}

async fn add_customer(AxState(sh): AxState<Shared>, Json(b): Json<CustomerBody>) -> Response {
    let email = Some(b.email.as_str()).filter(|e| !e.is_empty());
    let id = sh.lock().add_customer(&b.first_name, &b.last_name, email);
    ok(json!({"id": id}))
}

#[derive(Deserialize)]
struct RegisterBody {
    name: String,
    outlet_id: String,
}

async fn add_register(AxState(sh): AxState<Shared>, Json(b): Json<RegisterBody>) -> Response {
    let result = sh.lock().add_register(&b.name, &b.outlet_id);
    match result {
        Ok(id) => ok(json!({"id": id})),
        Err(e) => fail(e),
    }
}
