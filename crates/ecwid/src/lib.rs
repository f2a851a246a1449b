//! Ecwid REST v3 client (reqwest + rustls), implementing [`els_core::EcwidApi`].
//!
//! One client is built per process and shared; it carries explicit timeouts so a slow
//! Ecwid can never hold a worker past its lease.

use els_core::ecwid::{EcwidOrder, OrderQuery, OrderSearchPage};
use els_core::inventory::{
    BatchStatus, EcwidCatalogProduct, EcwidProductPage, EcwidTarget, StockLevel,
};
use els_core::{ApiError, Connection, EcwidApi, Sku, StoreId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Ecwid's production API root; the store id and path are appended.
pub const DEFAULT_API_URL: &str = "https://app.ecwid.com/api/v3";

#[derive(Clone, Debug)]
pub struct EcwidClient {
    http: reqwest::Client,
    api_url: String,
}

/// Turns a transport error into an [`ApiError`]. Reads are side-effect free, so every
/// transport failure of a GET is simply retryable.
pub fn transport_error(e: &reqwest::Error) -> ApiError {
    ApiError::Unavailable {
        detail: if e.is_timeout() {
            "timed out".into()
        } else if e.is_connect() {
            "could not connect".into()
        } else {
            "connection failed".into()
        },
    }
}

/// Maps a non-2xx Ecwid answer (Ecwid documents `Retry-After` in seconds; a date is read
/// too, and both are capped like Lightspeed's).
pub fn status_error(status: u16, retry_after: Option<&str>, body: &str) -> ApiError {
    // Error bodies may echo a customer's email; they end up in reasons and logs.
    let body = &els_core::mask::mask_emails_in(body);
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let msg = v.get("errorMessage")?.as_str()?.to_string();
            let code = v.get("errorCode").and_then(|c| c.as_str()).unwrap_or("");
            Some(if code.is_empty() {
                msg
            } else {
                format!("{code}: {msg}")
            })
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    let retry_after =
        retry_after.and_then(|v| els_http::parse_retry_after(v, std::time::SystemTime::now()));
    ApiError::from_status(status, retry_after, detail)
}

impl EcwidClient {
    /// `api_url` is Ecwid's API root (see [`DEFAULT_API_URL`]); `timeout` bounds each request.
    pub fn new(api_url: impl Into<String>, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self::with_http(els_http::api_client(timeout)?, api_url))
    }

    /// Shares an existing HTTP client (one connection pool per process).
    pub fn with_http(http: reqwest::Client, api_url: impl Into<String>) -> Self {
        Self {
            http,
            api_url: api_url.into().trim_end_matches('/').to_string(),
        }
    }

    fn store_url(&self, store_id: StoreId) -> String {
        format!("{}/{}", self.api_url, store_id)
    }

    /// `GET /orders?createdFrom=&limit=` ("Search orders"): up to `limit` (at most 100, one
    /// page) orders created since `since` (Unix seconds), for `els doctor` to see the tax
    /// rates in use.
    pub async fn recent_orders(
        &self,
        conn: &Connection,
        since: i64,
        limit: u32,
    ) -> Result<Vec<EcwidOrder>, ApiError> {
        let url = format!("{}/orders", self.store_url(conn.store_id));
        let request = self.http.get(url).query(&[
            ("createdFrom", since.to_string()),
            ("limit", limit.clamp(1, 100).to_string()),
        ]);
        let page: OrderPage = self.send_json(conn, request).await?;
        Ok(page.items)
    }

    /// `GET /profile` ("Get store profile"): which store the token belongs to and what it
    /// sells in, so that `els connect` can check a token before saving it.
    pub async fn profile(&self, conn: &Connection) -> Result<StoreProfile, ApiError> {
        let url = format!("{}/profile", self.store_url(conn.store_id));
        let raw: RawProfile = self.get_json(conn, &url).await?;
        Ok(StoreProfile {
            store_id: raw.general_info.store_id,
            currency: raw
                .formats_and_units
                .and_then(|f| f.currency)
                .filter(|c| !c.trim().is_empty()),
            name: raw.settings.and_then(|s| s.store_name),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        conn: &Connection,
        url: &str,
    ) -> Result<T, ApiError> {
        self.send_json(conn, self.http.get(url)).await
    }

    /// Sends a request with the store's token and reads a JSON answer. Every request sent
    /// through here is idempotent (GET, an absolute stock PUT, a batch with a
    /// deduplication key), so a transport failure is simply retryable.
    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        conn: &Connection,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let resp = request
            .bearer_auth(conn.ecwid_token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(|e| transport_error(&e))?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, retry_after.as_deref(), &body));
        }
        serde_json::from_str(&body).map_err(|e| ApiError::Decode {
            detail: format!("Ecwid response: {e}"),
        })
    }
}

/// The path below the store of where a level goes: `/products/{id}` or
/// `/products/{id}/combinations/{cid}` (Ecwid REST v3, "Update product" and "Update product
/// variation").
fn target_path(target: &EcwidTarget) -> String {
    match target.combination_id {
        None => format!("/products/{}", target.product_id),
        Some(cid) => format!("/products/{}/combinations/{cid}", target.product_id),
    }
}

/// The body of the `PUT` that sets a level: a quantity (stock tracked) or unlimited.
fn stock_body(level: StockLevel) -> serde_json::Value {
    match level {
        StockLevel::Quantity(q) => serde_json::json!({"quantity": q, "unlimited": false}),
        StockLevel::Unlimited => serde_json::json!({"unlimited": true}),
    }
}

/// One sub-request of Ecwid's batch API ("Batch requests": `id`, `method`, `path` below the
/// store, `body`).
#[derive(Debug, Serialize)]
struct BatchRequest {
    id: String,
    method: &'static str,
    path: String,
    body: serde_json::Value,
}

/// The sub-requests that set `writes`: the one of `writes[i]` has id `i`.
fn batch_requests(writes: &[(EcwidTarget, StockLevel)]) -> Vec<BatchRequest> {
    writes
        .iter()
        .enumerate()
        .map(|(i, (target, level))| BatchRequest {
            id: i.to_string(),
            method: "PUT",
            path: target_path(target),
            body: stock_body(*level),
        })
        .collect()
}

#[derive(Deserialize)]
struct OrderPage {
    #[serde(default)]
    items: Vec<EcwidOrder>,
}

/// What `GET /profile` says of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreProfile {
    /// `generalInfo.storeId`: the store the token belongs to.
    pub store_id: u64,
    /// `formatsAndUnits.currency` (ISO 4217).
    pub currency: Option<String>,
    /// `settings.storeName`.
    pub name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProfile {
    general_info: RawGeneralInfo,
    #[serde(default)]
    formats_and_units: Option<RawFormats>,
    #[serde(default)]
    settings: Option<RawSettings>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGeneralInfo {
    store_id: u64,
}

#[derive(Deserialize)]
struct RawFormats {
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSettings {
    #[serde(default)]
    store_name: Option<String>,
}

#[derive(Deserialize)]
struct Ticket {
    ticket: String,
}

impl EcwidApi for EcwidClient {
    async fn get_order(&self, conn: &Connection, order_id: &str) -> Result<EcwidOrder, ApiError> {
        let url = format!(
            "{}/orders/{}",
            self.store_url(conn.store_id),
            els_http::path_segment(order_id)?
        );
        self.get_json(conn, &url).await
    }

    async fn search_orders(
        &self,
        conn: &Connection,
        query: &OrderQuery,
    ) -> Result<OrderSearchPage, ApiError> {
        let url = format!("{}/orders", self.store_url(conn.store_id));
        let mut params: Vec<(&str, String)> = vec![
            ("offset", query.offset.to_string()),
            ("limit", query.limit.clamp(1, 100).to_string()),
        ];
        if let Some(status) = &query.payment_status {
            params.push(("paymentStatus", status.clone()));
        }
        for (name, value) in [
            ("updatedFrom", query.updated_from),
            ("updatedTo", query.updated_to),
            ("createdFrom", query.created_from),
            ("createdTo", query.created_to),
        ] {
            if let Some(t) = value {
                params.push((name, t.to_string()));
            }
        }
        self.send_json(conn, self.http.get(url).query(&params))
            .await
    }

    async fn find_products_by_sku(
        &self,
        conn: &Connection,
        sku: &Sku,
    ) -> Result<Vec<EcwidCatalogProduct>, ApiError> {
        let url = format!("{}/products", self.store_url(conn.store_id));
        let page: EcwidProductPage = self
            .send_json(conn, self.http.get(url).query(&[("sku", sku.as_str())]))
            .await?;
        Ok(page.items)
    }

    async fn list_products(
        &self,
        conn: &Connection,
        offset: u64,
        limit: u64,
    ) -> Result<EcwidProductPage, ApiError> {
        let url = format!("{}/products", self.store_url(conn.store_id));
        self.send_json(
            conn,
            self.http
                .get(url)
                .query(&[("offset", offset), ("limit", limit.clamp(1, 100))]),
        )
        .await
    }

    async fn set_stock(
        &self,
        conn: &Connection,
        target: &EcwidTarget,
        level: StockLevel,
    ) -> Result<(), ApiError> {
        let url = format!("{}{}", self.store_url(conn.store_id), target_path(target));
        let _: serde_json::Value = self
            .send_json(conn, self.http.put(url).json(&stock_body(level)))
            .await?;
        Ok(())
    }

    async fn submit_batch(
        &self,
        conn: &Connection,
        deduplication_key: &str,
        writes: &[(EcwidTarget, StockLevel)],
    ) -> Result<String, ApiError> {
        let url = format!("{}/batch", self.store_url(conn.store_id));
        let t: Ticket = self
            .send_json(
                conn,
                self.http
                    .post(url)
                    .query(&[
                        ("stopOnFirstFailure", "false"),
                        ("deduplicationKey", deduplication_key),
                    ])
                    .json(&batch_requests(writes)),
            )
            .await?;
        Ok(t.ticket)
    }

    /// `responses` is `null` while the batch is `QUEUED` or `IN_PROGRESS`: it reads as no
    /// responses yet ([`BatchStatus::state`] says the batch is pending), not as an error.
    async fn batch_status(&self, conn: &Connection, ticket: &str) -> Result<BatchStatus, ApiError> {
        let url = format!("{}/batch", self.store_url(conn.store_id));
        self.send_json(conn, self.http.get(url).query(&[("ticket", ticket)]))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_caller_should_do() {
        assert_eq!(
            status_error(429, Some("7"), ""),
            ApiError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        // The same caps as Lightspeed's: a huge delay is at most a day.
        assert_eq!(
            status_error(429, Some("18446744073709551615"), ""),
            ApiError::RateLimited {
                retry_after: Some(els_http::MAX_HEADER_DELAY)
            }
        );
        assert!(matches!(
            status_error(403, None, r#"{"errorMessage":"bad","errorCode":"INVALID_API_TOKEN"}"#),
            ApiError::Unauthorized { status: 403, detail } if detail == "INVALID_API_TOKEN: bad"
        ));
        assert!(matches!(
            status_error(404, None, ""),
            ApiError::NotFound { .. }
        ));
        assert!(status_error(503, None, "").is_retryable());
        assert!(!status_error(400, None, "").is_retryable());
    }

    #[test]
    fn levels_are_written_as_ecwid_documents_them() {
        assert_eq!(
            stock_body(StockLevel::Quantity(4)),
            serde_json::json!({"quantity": 4, "unlimited": false})
        );
        assert_eq!(
            stock_body(StockLevel::Unlimited),
            serde_json::json!({"unlimited": true})
        );
        let writes = [
            (EcwidTarget::product(1), StockLevel::Quantity(3)),
            (EcwidTarget::combination(2, 5), StockLevel::Unlimited),
        ];
        assert_eq!(
            serde_json::to_value(batch_requests(&writes)).unwrap(),
            serde_json::json!([
                {"id": "0", "method": "PUT", "path": "/products/1",
                 "body": {"quantity": 3, "unlimited": false}},
                {"id": "1", "method": "PUT", "path": "/products/2/combinations/5",
                 "body": {"unlimited": true}},
            ])
        );
    }

    #[test]
    fn batch_statuses_parse_while_queued_and_when_completed() {
        use els_core::inventory::BatchState;
        for body in [
            r#"{"status":"QUEUED","totalRequests":2,"completedRequests":0,"responses":null}"#,
            r#"{"status":"IN_PROGRESS"}"#,
        ] {
            let s: BatchStatus = serde_json::from_str(body).unwrap();
            assert_eq!(
                (s.state(), s.responses.len()),
                (BatchState::Pending, 0),
                "{body}"
            );
        }
        let s: BatchStatus = serde_json::from_str(
            r#"{"status":"COMPLETED","responses":[{"id":"0","escapedRequestId":"0","status":"FAILED","httpStatusCode":503,"httpBody":"<html></html>"}]}"#,
        )
        .unwrap();
        assert_eq!(s.state(), BatchState::Completed);
        assert_eq!(s.responses[0].http_status_code, Some(503));
    }
}
