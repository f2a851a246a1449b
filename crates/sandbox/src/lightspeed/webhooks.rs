//! Lightspeed X-Series webhook registrations, on both generations: `/api/2026-07/webhooks` and
//! `/api/2.0/webhooks`. Their deliveries are [`super::webhook_delivery`]'s.
//!
//! Sources (each rule below names its own):
//! - **Spec**: `openapi/lightspeed-webhooks-api-openapi.yml` of `api-evangelist/lightspeed` (a
//!   mirror of Lightspeed's published OpenAPI, "2026-07 Webhooks API"), reduced in
//!   `tests/fixtures/lightspeed/2026-07/webhooks.json`; `MAPPING.md` §14 lists every rule.
//! - **Docs**: `x-series-api.lightspeedhq.com/docs/webhooks` ("Webhooks": Adding a Webhook,
//!   Payload, Request timeout and retries, Verification), the same text as Vend's
//!   `docs.vendhq.com/tutorials/guides/webhooks/introduction`.
//!
//! The operations (spec, `paths./webhooks` and `/webhooks/{webhookId}`):
//! - `GET /webhooks` (get-webhooks) -> 200 `{data: [Webhook]}`.
//! - `POST /webhooks` (post-webhooks), a `WebhookRequest {active, type, url}` (all three
//!   required, `url` `minLength: 3`, `type` a `WebhookType`) -> 201 `{data: Webhook}`, or 409
//!   "A webhook with this type and URL already exists."
//! - `GET`, `PUT` (a `WebhookRequest`) and `DELETE /webhooks/{webhookId}` -> 200, or 404
//!   `{error}` when the id is unknown; `DELETE`'s 200 declares no body, and none is sent.
//! - `Webhook {active, id, retailer_id, type, url}`.
//!
//! Choices where the sources are silent:
//! - ASSUMPTION: a body outside `WebhookRequest` (a missing field, an unknown `type`, a `url`
//!   shorter than 3) is refused with a **400** naming the field, as the sandbox's other
//!   2026-07 body checks are (`dated.rs`); the spec declares no 400 or 422.
//! - ASSUMPTION (stricter than the spec): the `url` must also be an absolute `http` or `https`
//!   URL (Lightspeed must be able to POST to it), else 400.
//! - ASSUMPTION: a `PUT` that would make a second registration of the same `type` and `url`
//!   is refused with the 409 of `POST` (the spec declares the 409 on `POST` only).
//! - ASSUMPTION: the same URL means the same string, byte for byte.
//! - ASSUMPTION: the id is a UUID; `retailer_id` is the retailer's id (`GET /retailer`).
//! - ASSUMPTION: the 2.0 paths (the registration is `POST /api/2.0/webhooks {url, active,
//!   type}` in our reference notes) take the same bodies, answer the same shapes and statuses
//!   and share the registrations with 2026-07 (one retailer).
//! - Scopes (`webhooks` is required, spec) are not modelled: any token the other Lightspeed
//!   routes accept manages webhooks (auth, rate limit, counters and faults are the gate's,
//!   `server.rs`'s `ls_gate`).

use std::sync::LazyLock;

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonschema::Validator;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::dated::{check_body, published};
use super::{Id, bad, collection, error, not_found};
use crate::endpoint::{JsonBody, Op};
use crate::server::{ApiResponse, Shared};
use crate::state::State;

const WEBHOOKS_JSON: &str = include_str!("../../tests/fixtures/lightspeed/2026-07/webhooks.json");

/// The body of `POST` and `PUT`, `WebhookRequest` (webhooks.json).
static WEBHOOK_REQUEST: LazyLock<Validator> =
    LazyLock::new(|| published("webhooks.json", WEBHOOKS_JSON, "WebhookRequest"));

/// `WebhookType` `inventory.update`: an inventory record changed.
pub(crate) const INVENTORY_UPDATE: &str = "inventory.update";
/// `WebhookType` `product.update`: a product was created or changed.
pub(crate) const PRODUCT_UPDATE: &str = "product.update";

/// A webhook registration, as `Webhook` (webhooks.json) describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsWebhook {
    /// The registration's id (a UUID).
    pub id: String,
    /// The retailer it belongs to.
    pub retailer_id: String,
    /// Its `WebhookType`: `inventory.update`, `product.update`, `sale.update`...
    #[serde(rename = "type")]
    pub webhook_type: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Only active registrations get deliveries.
    pub active: bool,
}

impl LsWebhook {
    /// The `Webhook` object of the answers.
    fn render(&self) -> Value {
        json!({
            "id": self.id,
            "retailer_id": self.retailer_id,
            "type": self.webhook_type,
            "url": self.url,
            "active": self.active,
        })
    }
}

/// `/api/2.0/webhooks` (nest it there): the 2026-07 operations on the legacy path.
pub(super) fn legacy_routes() -> Router<Shared> {
    collection()
        .route("/", get(list).post(create))
        .route("/{id}", get(get_one).put(update).delete(remove))
}

/// `/webhooks` and `/webhooks/{id}`, for the router under `/api/2026-07`.
pub(super) fn dated_routes() -> Router<Shared> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(get_one).put(update).delete(remove))
}

async fn list() -> Op {
    Op::new(|st| {
        let data: Vec<Value> = st.ls_webhooks.iter().map(LsWebhook::render).collect();
        ApiResponse::ok(json!({ "data": data }))
    })
}

async fn create(JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| match register(st, &body.unwrap_or(Value::Null)) {
        Ok(idx) => ApiResponse::json(
            StatusCode::CREATED,
            json!({"data": st.ls_webhooks[idx].render()}),
        ),
        Err(refused) => refused,
    })
}

async fn get_one(Path(Id { id }): Path<Id>) -> Op {
    Op::new(move |st| match st.ls_webhooks.iter().find(|w| w.id == id) {
        Some(w) => ApiResponse::ok(json!({"data": w.render()})),
        None => not_found("Webhook not found"),
    })
}

async fn update(Path(Id { id }): Path<Id>, JsonBody(body): JsonBody) -> Op {
    Op::new(move |st| {
        // ASSUMPTION: an unknown id is reported before a bad body.
        let Some(idx) = st.ls_webhooks.iter().position(|w| w.id == id) else {
            return not_found("Webhook not found");
        };
        let request = match parse(&body.unwrap_or(Value::Null)) {
            Ok(r) => r,
            Err(refused) => return refused,
        };
        if let Some(refused) = duplicate(st, &request, Some(idx)) {
            return refused;
        }
        let w = &mut st.ls_webhooks[idx];
        w.webhook_type = request.webhook_type;
        w.url = request.url;
        w.active = request.active;
        ApiResponse::ok(json!({"data": st.ls_webhooks[idx].render()}))
    })
}

async fn remove(Path(Id { id }): Path<Id>) -> Op {
    Op::new(
        move |st| match st.ls_webhooks.iter().position(|w| w.id == id) {
            Some(idx) => {
                st.ls_webhooks.remove(idx);
                ApiResponse::empty(StatusCode::OK)
            }
            None => not_found("Webhook not found"),
        },
    )
}

/// A `WebhookRequest`, once validated.
#[derive(Deserialize)]
struct WebhookRequest {
    active: bool,
    #[serde(rename = "type")]
    webhook_type: String,
    url: String,
}

/// The request a body makes, or the 400 naming what is wrong with it.
fn parse(body: &Value) -> Result<WebhookRequest, ApiResponse> {
    check_body(&WEBHOOK_REQUEST, body)?;
    let request: WebhookRequest = serde_json::from_value(body.clone())
        .map_err(|e| bad(format!("The request body is not a WebhookRequest: {e}")))?;
    let url_ok = reqwest::Url::parse(&request.url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !url_ok {
        return Err(bad(format!(
            "/url: {:?} is not an absolute http or https URL",
            request.url
        )));
    }
    Ok(request)
}

/// The 409 when another registration (not `except`) has the request's type and URL.
fn duplicate(st: &State, request: &WebhookRequest, except: Option<usize>) -> Option<ApiResponse> {
    st.ls_webhooks
        .iter()
        .enumerate()
        .any(|(i, w)| {
            Some(i) != except && w.webhook_type == request.webhook_type && w.url == request.url
        })
        .then(|| {
            error(
                StatusCode::CONFLICT,
                "A webhook with this type and URL already exists.",
            )
        })
}

/// Register a webhook from a `WebhookRequest` body (both generations' `POST`, and
/// [`crate::Sandbox::add_ls_webhook`]). Returns its index in `st.ls_webhooks`.
pub(crate) fn register(st: &mut State, body: &Value) -> Result<usize, ApiResponse> {
    let request = parse(body)?;
    if let Some(refused) = duplicate(st, &request, None) {
        return Err(refused);
    }
    st.ls_webhooks.push(LsWebhook {
        id: crate::util::new_uuid(),
        retailer_id: st.retailer_id.clone(),
        webhook_type: request.webhook_type,
        url: request.url,
        active: request.active,
    });
    Ok(st.ls_webhooks.len() - 1)
}

/// The message of a refused registration (its answer's `details` or `error`).
pub(crate) fn refusal(resp: &ApiResponse) -> String {
    let detail = |key: &str| match &resp.body {
        crate::server::Body::Json(v) => v.get(key).and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    format!(
        "{} {}",
        resp.status,
        detail("details")
            .or_else(|| detail("error"))
            .unwrap_or_default()
    )
}

// ---------------------------------------------------------------------------------------------
// Admin (`/_sandbox/lightspeed/webhooks`, see `admin.rs`'s table)

pub(crate) fn admin_router() -> Router<Shared> {
    Router::new()
        .route("/lightspeed/webhooks", get(admin_list))
        .route("/lightspeed/webhooks/delivery", post(admin_delivery))
}

/// `{"webhooks": [Webhook], "pending": n}`.
async fn admin_list(AxState(sh): AxState<Shared>) -> Response {
    let webhooks: Vec<Value> = sh
        .lock()
        .ls_webhooks
        .iter()
        .map(LsWebhook::render)
        .collect();
    Json(json!({"webhooks": webhooks, "pending": sh.hooks.pending()})).into_response()
}

/// The test switches; each field optional.
#[derive(Deserialize)]
struct DeliverySwitches {
    #[serde(default)]
    drop: Option<bool>,
    #[serde(default)]
    delay_ms: Option<u64>,
}

async fn admin_delivery(AxState(sh): AxState<Shared>, Json(b): Json<DeliverySwitches>) -> Response {
    if let Some(drop) = b.drop {
        sh.hooks.set_drop(drop);
    }
    if let Some(ms) = b.delay_ms {
        sh.hooks.set_delay(std::time::Duration::from_millis(ms));
    }
    Json(json!({"ok": true})).into_response()
}
