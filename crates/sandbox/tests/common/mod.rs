//! Helpers shared by the sandbox's integration tests.
#![allow(dead_code)]

pub mod openapi;
pub mod receiver;

use els_sandbox::{Sandbox, SandboxConfig};
use reqwest::{Client, Method, Response};
use serde_json::Value;

pub async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts")
}

pub async fn sandbox_with(cfg: SandboxConfig) -> Sandbox {
    Sandbox::start(cfg).await.expect("sandbox starts")
}

pub fn client() -> Client {
    Client::builder().build().expect("client")
}

/// A request to Lightspeed with the right token.
pub async fn ls(sb: &Sandbox, method: Method, path: &str, body: Option<&Value>) -> Response {
    let url = format!("{}{}", sb.lightspeed_url(), path);
    let mut req = client()
        .request(method, url)
        .bearer_auth(&sb.config().ls_token)
        .header("Accept", "application/json");
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.expect("lightspeed request")
}

pub async fn ls_get(sb: &Sandbox, path: &str) -> (u16, Value) {
    let r = ls(sb, Method::GET, path, None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn ls_post(sb: &Sandbox, path: &str, body: &Value) -> (u16, Value) {
    let r = ls(sb, Method::POST, path, Some(body)).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A request to Ecwid's store API with the right token; `path` is relative to `/{storeId}`.
pub async fn ecwid(sb: &Sandbox, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let url = format!(
        "{}/{}{}",
        sb.ecwid_api_url(),
        sb.config().ecwid_store_id,
        path
    );
    let mut req = client()
        .request(method, url)
        .bearer_auth(&sb.config().ecwid_token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.expect("ecwid request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A closed sale of `qty` units of a product, fully paid with the "Ecwid Online" payment type.
pub fn closed_sale(
    sb: &Sandbox,
    product_id: &str,
    qty: u32,
    price: &str,
    tax: &str,
    tax_id: &str,
) -> Value {
    let ids = sb.ids();
    let p: rust_decimal::Decimal = price.parse().unwrap();
    let t: rust_decimal::Decimal = tax.parse().unwrap();
    let amount = (p + t) * rust_decimal::Decimal::from(qty);
    serde_json::json!({
        "register_id": ids.register_id,
        "user_id": ids.user_id,
        "status": "CLOSED",
        "sale_date": "2026-11-27T10:00:00Z",
        "invoice_number": "ECWID-TEST-1",
        "source": "ecwid",
        "source_id": "TEST1",
        "note": "Ecwid order TEST1",
        "register_sale_products": [{
            "product_id": product_id,
            "quantity": qty,
            "price": num(price),
            "tax": num(tax),
            "tax_id": tax_id,
            "discount": 0,
            "price_set": 1,
            "status": "CONFIRMED",
        }],
        "register_sale_payments": [{
            "register_id": ids.register_id,
            "retailer_payment_type_id": ids.payment_type_id,
            "payment_date": "2026-11-27T10:00:00Z",
            "amount": amount.to_string(),
        }],
    })
}

/// A JSON number from its decimal text.
pub fn num(s: &str) -> Value {
    serde_json::from_str(s).expect("a JSON number")
}

/// The 2026-07 twin of [`closed_sale`]: the same sale as a `SaleRequest` (`POST
/// /api/2026-07/sales`), mapped as `tests/fixtures/lightspeed/2026-07/MAPPING.md` §1 shows
/// (money as JSON numbers). Invoice number `ECWID-DATED-1`.
pub fn dated_sale(
    sb: &Sandbox,
    product_id: &str,
    qty: u32,
    price: &str,
    tax: &str,
    tax_id: &str,
) -> Value {
    let ids = sb.ids();
    let p: rust_decimal::Decimal = price.parse().unwrap();
    let t: rust_decimal::Decimal = tax.parse().unwrap();
    let amount = (p + t) * rust_decimal::Decimal::from(qty);
    serde_json::json!({
        "source": {
            "author_id": ids.user_id,
            "register_id": ids.register_id,
            "type": "ecwid",
            "id": "DATED1",
        },
        "state": "closed",
        "attributes": [],
        "date": "2026-11-27T10:00:00Z",
        "note": "Ecwid order DATED1",
        "invoice_number": "ECWID-DATED-1",
        "line_items": [{
            "product": {"id": product_id},
            "quantity": qty,
            "pricing": {"price": num(price), "discount": 0},
            "tax": {"id": tax_id, "amount": num(tax)},
            "status": "CONFIRMED",
            "_metadata": {"is_price_override": true},
        }],
        "payments": [{
            "type": {"config_id": ids.payment_type_id},
            "amount": num(&amount.to_string()),
            "date": "2026-11-27T10:00:00Z",
            "source": {"register_id": ids.register_id},
        }],
    })
}
