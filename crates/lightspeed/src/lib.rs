//! Lightspeed Retail X-Series client (reqwest + rustls), implementing
//! [`els_core::LightspeedApi`].
//!
//! * Base URL: `https://{domain_prefix}.retail.lightspeed.app`, configurable as a template so
//!   the sandbox can stand in.
//! * 429 carries `Retry-After` as an HTTP date; it becomes a delay.
//! * Requests are paced per retailer (domain prefix) by a gate shared by clones of the client
//!   (see [`pace`] and [`Pacing`]): fed by every response's `X-RateLimit-*` headers and by
//!   429s, it holds a request until the budget allows it, at most [`Pacing::max_wait`]; a
//!   longer wait is [`ApiError::RateLimited`] without sending.
//! * With [`LightspeedClient::with_shared_budget`], each request first takes a slot of the
//!   retailer's budget shared by every process of the deployment ([`budget`]: in DynamoDB
//!   for the functions), within the same wait cap.
//! * A sale POST whose answer never arrives (timeout, dropped connection) is
//!   [`ApiError::OutcomeUnknown`]: the sale may exist, and the poster searches before
//!   posting again.

use els_core::decimal::opt_decimal;
use els_core::inventory::{FeedPage, InventoryRecord};
use els_core::lightspeed::{
    LsApiVersion, LsCustomer, LsProduct, LsSale, NewCustomer, PostedSale, SaleDraft, SaleSetup,
};
use els_core::{ApiError, Connection, LightspeedApi, Sku};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod admit;
pub mod authenticated;
pub mod budget;
mod dated;
pub mod oauth;
pub mod pace;
pub mod parse;
pub mod returns;
pub mod setup;
pub mod webhooks;

use admit::Gates;
pub use authenticated::AuthLightspeed;
pub use budget::{BudgetSettings, MemoryWindows, SharedBudget, WindowBudget, WindowStore};

/// The production URL template; `{domain_prefix}` is replaced per connection.
pub const DEFAULT_URL_TEMPLATE: &str = "https://{domain_prefix}.retail.lightspeed.app";

/// Page size of the customer search (`offset` + `page_size`).
const CUSTOMER_SEARCH_PAGE: usize = 200;
/// A bound on customer search pages, so a misbehaving server cannot loop us forever.
const CUSTOMER_SEARCH_MAX_PAGES: usize = 50;

/// How a client paces its requests against a retailer's rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// Requests of the budget this client leaves to others: it holds its requests while
    /// `X-RateLimit-Remaining` (less its own requests in flight) is at or below this.
    pub reserve: u32,
    /// The longest a request waits in-process for the budget. A longer wait returns
    /// [`ApiError::RateLimited`] with the wait as `retry_after`, and nothing is sent. Keep it
    /// below the poster's lease and the function timeout.
    pub max_wait: Duration,
    /// The rate-limit window a new gate assumes until it learns a shorter one: Lightspeed's
    /// documented 5 minutes ([`pace::DOCUMENTED_WINDOW`]); a sandbox with a scaled-down
    /// window (tests, `els bench-rate-limit`) says its own, since no header carries it. Too
    /// long costs throughput until the gate learns better; too short costs 429s. The gates
    /// are shared by the clones of a client: the first request for a retailer makes its gate.
    pub window: Duration,
}

/// The sale poster's reserve: above the inventory mirror's back-off (20 remaining), so the
/// mirror still gets requests while a burst of orders runs at the limit.
pub const POSTER_RESERVE: u32 = 25;
/// The default in-process wait cap (`LIGHTSPEED_MAX_RATE_WAIT_MS`).
pub const DEFAULT_MAX_RATE_WAIT: Duration = Duration::from_secs(20);

impl Default for Pacing {
    fn default() -> Self {
        Self {
            reserve: 0,
            max_wait: DEFAULT_MAX_RATE_WAIT,
            window: pace::DOCUMENTED_WINDOW,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LightspeedClient {
    http: reqwest::Client,
    url_template: String,
    pacing: Pacing,
    gates: Gates,
    /// The retailer-wide budget shared with other processes, in front of the gates.
    shared: Option<Arc<dyn SharedBudget>>,
    /// The deployment's API generation (`LIGHTSPEED_API_VERSION`); a connection's setting
    /// overrides it.
    api_version: LsApiVersion,
}

use els_http::header_delay as parse_delay;
use els_http::path_segment;
pub use els_http::{MAX_HEADER_DELAY, parse_retry_after};

/// Parses `X-RateLimit-Reset`: an HTTP date (as the sandbox sends it), seconds from now, or
/// (a number past 10^9) a Unix time. Lightspeed documents only Limit and Remaining.
pub fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    match value.trim().parse::<u64>() {
        // `checked_add`: a huge epoch overflowed `SystemTime` (found by fuzzing).
        Ok(epoch) if epoch > 1_000_000_000 => Some(
            match SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(epoch)) {
                Some(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
                None => MAX_HEADER_DELAY,
            }
            .min(MAX_HEADER_DELAY),
        ),
        _ => parse_delay(value, now),
    }
}

fn error_detail(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let parts: Vec<String> = ["error", "message", "details"]
                .iter()
                .filter_map(|k| v.get(*k))
                .map(|x| match x {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join(": "))
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// Maps a non-2xx Lightspeed answer.
pub fn status_error(status: u16, retry_after: Option<&str>, body: &str) -> ApiError {
    // Error bodies may echo a customer's email; they end up in reasons and logs.
    let body = &els_core::mask::mask_emails_in(body);
    let detail = error_detail(body);
    let retry_after = retry_after.and_then(|v| parse_retry_after(v, SystemTime::now()));
    ApiError::from_status(status, retry_after, detail)
}

#[derive(Deserialize)]
struct DataList<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    version: Option<VersionRange>,
}

#[derive(Deserialize)]
struct DataOne<T> {
    data: T,
}

#[derive(Deserialize)]
struct VersionRange {
    max: Option<i64>,
}

/// A sale as either generation renders it: legacy (`status`, `source_id`, `total_price` +
/// `total_tax`) or 2026-07 (`state`, `source.id`, `totals.price` + `totals.tax`; MAPPING.md
/// §2). A 2026-07 search may answer either shape (§6), so one reader takes both.
#[derive(Deserialize)]
struct RawSale {
    id: String,
    #[serde(default)]
    invoice_number: Option<String>,
    #[serde(default)]
    source_id: Option<String>,
    /// Legacy: a string (`"USER"`, `"ecwid"`); 2026-07: `{"id", "type", ...}`.
    #[serde(default)]
    source: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_decimal")]
    total_price: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    total_tax: Option<Decimal>,
    #[serde(default)]
    totals: Option<RawTotals>,
}

#[derive(Deserialize)]
struct RawTotals {
    #[serde(default, deserialize_with = "opt_decimal")]
    price: Option<Decimal>,
    #[serde(default, deserialize_with = "opt_decimal")]
    tax: Option<Decimal>,
}

impl RawSale {
    /// Our key on the sale: legacy `source_id` or 2026-07 `source.id`.
    fn source_id(&self) -> Option<&str> {
        self.source_id.as_deref().or_else(|| {
            self.source
                .as_ref()
                .and_then(|s| s.get("id"))
                .and_then(serde_json::Value::as_str)
        })
    }
}

impl From<RawSale> for PostedSale {
    fn from(r: RawSale) -> Self {
        let (price, tax) = match &r.totals {
            Some(t) if r.total_price.is_none() => (t.price, t.tax),
            _ => (r.total_price, r.total_tax),
        };
        // `checked_add`: totals beyond a decimal's range are no total, not a panic.
        let total = match (price, tax) {
            (Some(p), Some(t)) => p.checked_add(t),
            _ => None,
        };
        PostedSale {
            id: r.id,
            invoice_number: r.invoice_number,
            status: r.status.or(r.state),
            total,
        }
    }
}

#[derive(Deserialize)]
struct RegisterSaleEnvelope {
    register_sale: RawSale,
}

#[derive(Deserialize)]
struct RawRetailer {
    no_tax_group_id: Option<String>,
    /// `{"code": "USD", "symbol": "$"}` (API 2.0 `RetailerCurrency`); a bare code is
    /// accepted too.
    #[serde(default)]
    currency: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tax_exclusive: Option<bool>,
}

impl RawRetailer {
    /// The currency's ISO code, from either form.
    fn currency_code(&self) -> Option<String> {
        self.currency
            .as_ref()
            .and_then(|c| c.get("code").unwrap_or(c).as_str())
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    }
}

#[derive(Deserialize)]
struct RawTax {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rates: Vec<RawRate>,
    #[serde(default, deserialize_with = "opt_decimal")]
    rate: Option<Decimal>,
}

#[derive(Deserialize)]
struct RawRate {
    #[serde(default, deserialize_with = "opt_decimal")]
    rate: Option<Decimal>,
}

impl LightspeedClient {
    pub fn new(url_template: impl Into<String>, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self::with_http(
            els_http::api_client(timeout)?,
            url_template,
        ))
    }

    pub fn with_http(http: reqwest::Client, url_template: impl Into<String>) -> Self {
        Self {
            http,
            url_template: url_template.into().trim_end_matches('/').to_string(),
            pacing: Pacing::default(),
            gates: Gates::default(),
            shared: None,
            api_version: LsApiVersion::default(),
        }
    }

    /// The same client speaking `version` to connections that do not choose their own.
    pub fn with_api_version(mut self, version: LsApiVersion) -> Self {
        self.api_version = version;
        self
    }

    /// The deployment's API generation.
    pub fn api_version(&self) -> LsApiVersion {
        self.api_version
    }

    /// The API generation spoken to `conn`: its own setting, else the deployment's.
    pub fn version_for(&self, conn: &Connection) -> LsApiVersion {
        conn.settings
            .lightspeed_api_version
            .unwrap_or(self.api_version)
    }

    /// `rest` (`/products`) under the path prefix of `conn`'s generation.
    fn path(&self, conn: &Connection, rest: &str) -> String {
        format!("{}{rest}", self.version_for(conn).prefix())
    }

    /// The same client with other pacing (clones made after this share its gates).
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    pub fn pacing(&self) -> Pacing {
        self.pacing
    }

    /// The retailer's API root for a connection.
    pub fn base_url(&self, conn: &Connection) -> String {
        self.url_template
            .replace("{domain_prefix}", conn.lightspeed.domain_prefix.as_str())
    }

    async fn read<T: serde::de::DeserializeOwned>(
        resp: reqwest::Response,
        what: &str,
    ) -> Result<T, ApiError> {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(|e| ApiError::Unavailable {
            detail: format!(
                "{what}: reading the body failed: {}",
                if e.is_timeout() {
                    "timed out"
                } else {
                    "connection failed"
                }
            ),
        })?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, retry_after.as_deref(), &body));
        }
        serde_json::from_str(&body).map_err(|e| ApiError::Decode {
            detail: format!("{what}: {e}"),
        })
    }

    /// Sends an authenticated GET. A GET has no side effect, so any transport failure is
    /// simply retryable.
    async fn send_get(
        &self,
        conn: &Connection,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, ApiError> {
        self.send_read(conn, reqwest::Method::GET, path, query, None)
            .await
    }

    /// Sends an authenticated request that only reads (a GET, or the 2026-07 inventory feed,
    /// a POST that reads): any transport failure is simply retryable.
    async fn send_read(
        &self,
        conn: &Connection,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, ApiError> {
        let mut admission = self.admit(conn).await?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url(conn)))
            .query(query)
            .bearer_auth(conn.lightspeed.access_token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = request.send().await;
        if let Ok(r) = &resp {
            admission.response(r);
        }
        resp.map_err(|e| ApiError::Unavailable {
            detail: format!(
                "{method} {path}: {}",
                if e.is_timeout() {
                    "timed out"
                } else {
                    "connection failed"
                }
            ),
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        conn: &Connection,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let resp = self.send_get(conn, path, query).await?;
        Self::read(resp, path).await
    }

    /// Reads every page of a version-paginated list. The next `after` is the envelope's
    /// `version.max`, or the items' highest `version` when there is no envelope (2026-07
    /// `TaxCollection` has none: MAPPING.md §9). A server that ignores `after` and answers
    /// the same items again ends the loop; an id seen twice is kept once, as last seen.
    async fn list_all<T: serde::de::DeserializeOwned>(
        &self,
        conn: &Connection,
        path: &str,
    ) -> Result<Vec<T>, ApiError> {
        let mut items: Vec<serde_json::Value> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut after: u64 = 0;
        // A bound that no real list reaches, so a misbehaving server cannot loop us forever.
        for _ in 0..10_000 {
            let page: FeedPage<serde_json::Value> = parse::feed_page(
                self.get::<AnyPage>(
                    conn,
                    path,
                    &[("after", after.to_string()), ("page_size", "500".into())],
                )
                .await?
                .into(),
                None,
                path,
            )?;
            let max = page.max_version;
            for item in page.items {
                // An id seen again is the newer rendering of the same record.
                match item.get("id").map(ToString::to_string) {
                    Some(id) if index.contains_key(&id) => items[index[&id]] = item,
                    Some(id) => {
                        index.insert(id, items.len());
                        items.push(item);
                    }
                    None => items.push(item),
                }
            }
            match max {
                Some(max) if max > after => after = max,
                _ => break,
            }
        }
        items
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<Vec<T>, _>>()
            .map_err(|e| ApiError::Decode {
                detail: format!("{path}: {e}"),
            })
    }
}

/// A list answer: a `{"data", "version"}` page, or a bare array (the 2026-07 inventory
/// calls, MAPPING.md §8).
#[derive(Deserialize)]
#[serde(untagged)]
enum AnyPage {
    Bare(Vec<serde_json::Value>),
    Enveloped(RawPage),
}

impl From<AnyPage> for RawPage {
    fn from(page: AnyPage) -> Self {
        match page {
            AnyPage::Bare(data) => RawPage {
                data,
                version: None,
            },
            AnyPage::Enveloped(page) => page,
        }
    }
}

/// A page of a version-paginated list, items still raw.
#[derive(Deserialize)]
struct RawPage {
    #[serde(default)]
    data: Vec<serde_json::Value>,
    #[serde(default)]
    version: Option<VersionRange>,
}

impl LightspeedClient {
    /// One page of a version-paginated 2.0 feed, with `X-RateLimit-Remaining`. The page's
    /// `version.max` comes from the envelope, or from the items' own `version` fields.
    async fn feed_page<T: serde::de::DeserializeOwned>(
        &self,
        conn: &Connection,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<FeedPage<T>, ApiError> {
        let resp = self.send_get(conn, path, query).await?;
        let remaining = remaining_of(&resp);
        let page: RawPage = Self::read(resp, path).await?;
        parse::feed_page(page, remaining, path)
    }
}

/// A response's `X-RateLimit-Remaining`, for the mirror's back-off.
fn remaining_of(resp: &reqwest::Response) -> Option<u32> {
    resp.headers()
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
}

impl LightspeedClient {
    /// A POST that is not idempotent: an answer that never arrives (timeout, dropped
    /// connection) or cannot be read is [`ApiError::OutcomeUnknown`], since the server may
    /// have acted on it. Only a failed connect is [`ApiError::Unavailable`].
    async fn post_unsafe<B: serde::Serialize + ?Sized, T: serde::de::DeserializeOwned>(
        &self,
        conn: &Connection,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.write_unsafe(conn, reqwest::Method::POST, path, Some(body))
            .await
    }

    /// A write that is not idempotent (`POST`, or a `PUT` that starts a return), with or
    /// without a JSON body: as [`Self::post_unsafe`], an answer that never arrives, cannot be
    /// read or is a 5xx is [`ApiError::OutcomeUnknown`].
    async fn write_unsafe<B: serde::Serialize + ?Sized, T: serde::de::DeserializeOwned>(
        &self,
        conn: &Connection,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let mut admission = self.admit(conn).await?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url(conn)))
            .bearer_auth(conn.lightspeed.access_token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = request.send().await;
        if let Ok(r) = &resp {
            admission.response(r);
        }
        let resp = resp.map_err(|e| {
            if e.is_connect() {
                // Nothing was sent.
                ApiError::Unavailable {
                    detail: format!("{method} {path}: could not connect"),
                }
            } else {
                ApiError::OutcomeUnknown {
                    detail: format!(
                        "{method} {path}: {}",
                        if e.is_timeout() {
                            "timed out"
                        } else {
                            "connection dropped"
                        }
                    ),
                }
            }
        })?;
        Self::read(resp, &format!("{method} {path}"))
            .await
            .map_err(|e| match e {
                // A 2xx we could not read, or a body cut off: the thing may exist.
                ApiError::Decode { detail } | ApiError::Unavailable { detail } => {
                    ApiError::OutcomeUnknown { detail }
                }
                other => other,
            })
    }
}

impl LightspeedApi for LightspeedClient {
    fn generation_for(&self, conn: &Connection) -> Option<LsApiVersion> {
        Some(self.version_for(conn))
    }

    async fn post_sale(&self, conn: &Connection, sale: &SaleDraft) -> Result<PostedSale, ApiError> {
        // Over budget, nothing is sent: the poster returns the message for `retry_after`.
        match self.version_for(conn) {
            LsApiVersion::Legacy => {
                let envelope: RegisterSaleEnvelope =
                    self.post_unsafe(conn, "/api/register_sales", sale).await?;
                Ok(envelope.register_sale.into())
            }
            LsApiVersion::Dated(_) => self.post_dated_sale(conn, sale).await,
        }
    }

    async fn find_sales_by_invoice(
        &self,
        conn: &Connection,
        invoice_number: &str,
    ) -> Result<Vec<PostedSale>, ApiError> {
        if self.version_for(conn).is_dated() {
            match self.our_dated_sale(conn, invoice_number).await {
                Ok(Some(sale)) => return Ok(vec![sale]),
                Ok(None) => {}
                Err(e) if e.is_retryable() => return Err(e),
                // A lookup refused outright is no answer: the search still is one.
                Err(e) => tracing::warn!(error = %e, "looking our sale up by id failed; searching"),
            }
        }
        let page: DataList<RawSale> = self
            .get(
                conn,
                &self.path(conn, "/search"),
                &[
                    ("type", "sales".into()),
                    ("invoice_number", invoice_number.to_string()),
                ],
            )
            .await?;
        // Re-check: a search may match loosely. Whether the register adds its invoice
        // prefix/suffix to a number we send is not documented, so a number that contains
        // ours, or our `source_id`, also counts as ours.
        Ok(parse::sales_matching(page.data, invoice_number))
    }

    async fn get_sale(&self, conn: &Connection, sale_id: &str) -> Result<Option<LsSale>, ApiError> {
        self.read_sale(conn, sale_id).await
    }

    async fn start_return(&self, conn: &Connection, sale_id: &str) -> Result<LsSale, ApiError> {
        self.begin_return(conn, sale_id).await
    }

    async fn complete_return(
        &self,
        conn: &Connection,
        return_id: &str,
        sale: &SaleDraft,
    ) -> Result<PostedSale, ApiError> {
        self.finish_return(conn, return_id, sale).await
    }

    async fn find_products_by_sku(
        &self,
        conn: &Connection,
        sku: &Sku,
    ) -> Result<Vec<LsProduct>, ApiError> {
        // Lightspeed's search wants the SKU in lower case; the caller re-checks the matches.
        let page: DataList<LsProduct> = self
            .get(
                conn,
                &self.path(conn, "/search"),
                &[("type", "products".into()), ("sku", sku.key())],
            )
            .await?;
        Ok(page.data)
    }

    async fn search_customers_by_email(
        &self,
        conn: &Connection,
        email: &str,
    ) -> Result<Vec<LsCustomer>, ApiError> {
        let path = self.path(conn, "/search");
        let mut out = Vec::new();
        for page_no in 0..CUSTOMER_SEARCH_MAX_PAGES {
            let page: DataList<LsCustomer> = self
                .get(
                    conn,
                    &path,
                    &[
                        ("type", "customers".into()),
                        ("email", email.to_string()),
                        ("offset", (page_no * CUSTOMER_SEARCH_PAGE).to_string()),
                        ("page_size", CUSTOMER_SEARCH_PAGE.to_string()),
                    ],
                )
                .await?;
            let n = page.data.len();
            out.extend(page.data);
            if n < CUSTOMER_SEARCH_PAGE {
                break;
            }
        }
        Ok(out)
    }

    async fn create_customer(
        &self,
        conn: &Connection,
        customer: &NewCustomer,
    ) -> Result<LsCustomer, ApiError> {
        let created: DataOne<LsCustomer> = self
            .post_unsafe(conn, &self.path(conn, "/customers"), customer)
            .await?;
        Ok(created.data)
    }

    async fn inventory_changes(
        &self,
        conn: &Connection,
        after: u64,
        page_size: usize,
    ) -> Result<FeedPage<InventoryRecord>, ApiError> {
        if self.version_for(conn).is_dated() {
            return self.dated_inventory_page(conn, after, page_size).await;
        }
        self.feed_page(
            conn,
            "/api/2.0/inventory",
            &[
                ("after", after.to_string()),
                ("page_size", page_size.max(1).to_string()),
            ],
        )
        .await
    }

    async fn product_changes(
        &self,
        conn: &Connection,
        after: u64,
        page_size: usize,
    ) -> Result<FeedPage<LsProduct>, ApiError> {
        self.feed_page(
            conn,
            &self.path(conn, "/products"),
            &[
                ("after", after.to_string()),
                ("page_size", page_size.max(1).to_string()),
                ("deleted", "true".into()),
            ],
        )
        .await
    }

    async fn get_product(
        &self,
        conn: &Connection,
        product_id: &str,
    ) -> Result<Option<LsProduct>, ApiError> {
        let Ok(segment) = path_segment(product_id) else {
            return Ok(None);
        };
        let path = self.path(conn, &format!("/products/{segment}"));
        match self.get::<DataOne<LsProduct>>(conn, &path, &[]).await {
            Ok(one) => Ok(Some(one.data)),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn product_inventory(
        &self,
        conn: &Connection,
        product_id: &str,
    ) -> Result<Vec<InventoryRecord>, ApiError> {
        let segment = path_segment(product_id)?;
        // 2026-07 has no `/products/{id}/inventory`: `GET /inventory/{product_id}` answers a
        // bare array, oldest first by default (MAPPING.md §8).
        let path = match self.version_for(conn) {
            LsApiVersion::Legacy => format!("/api/2.0/products/{segment}/inventory"),
            LsApiVersion::Dated(_) => self.path(conn, &format!("/inventory/{segment}")),
        };
        self.list_all(conn, &path).await
    }

    async fn sale_setup(&self, conn: &Connection) -> Result<SaleSetup, ApiError> {
        let retailer: DataOne<RawRetailer> =
            self.get(conn, &self.path(conn, "/retailer"), &[]).await?;
        let raw: Vec<RawTax> = self.list_all(conn, &self.path(conn, "/taxes")).await?;
        parse::sale_setup(retailer.data, raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_an_http_date_or_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(42))
        );
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(42));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn rate_limit_reset_is_a_date_seconds_or_a_unix_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_reset(&later, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_reset(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_reset("12", now), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_reset("1800000030", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_reset("later", now), None);
    }

    #[test]
    fn lightspeed_errors_keep_their_message() {
        let e = status_error(
            400,
            None,
            r#"{"error":"Bad Request","details":"tax_id is required"}"#,
        );
        assert!(
            matches!(e, ApiError::Rejected { status: 400, detail } if detail.contains("tax_id is required"))
        );
        let e = status_error(
            429,
            Some(&httpdate::fmt_http_date(
                SystemTime::now() + Duration::from_secs(30),
            )),
            r#"{"error":"Too Many Requests","message":"Rate limiting enforced"}"#,
        );
        assert!(matches!(e, ApiError::RateLimited { retry_after: Some(d) } if d.as_secs() >= 28));
    }

    /// A 2026-07 `Sale` (MAPPING.md §2): the total is `totals.price + totals.tax`, the
    /// status its `state`, and `source.id` identifies it as ours like a legacy `source_id`.
    #[test]
    fn dated_sales_parse_and_match_by_source_id() {
        let one: DataOne<RawSale> = serde_json::from_str(
            r#"{"data":{"id":"0b7a0f0e-1111-4a4a-8888-000000000001","invoice_number":"WEB-ECWID-1-A-X","state":"closed","source":{"id":"ECWID-1-A","type":"ecwid"},"totals":{"price":9.09,"tax":"0.91","price_incl_tax":10}}}"#,
        )
        .unwrap();
        let sale = PostedSale::from(one.data);
        assert_eq!(sale.total, Some(Decimal::new(1000, 2)));
        assert_eq!(sale.status.as_deref(), Some("closed"));
        let hits: DataList<RawSale> = serde_json::from_str(
            r#"{"data":[{"id":"a","invoice_number":"OTHER","source":{"id":"ECWID-1-A"}},
                        {"id":"b","invoice_number":"OTHER","source":"USER"},
                        {"id":"c","invoice_number":"OTHER","source_id":"ECWID-1-A"}]}"#,
        )
        .unwrap();
        let ids: Vec<String> = parse::sales_matching(hits.data, "ECWID-1-A")
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["a", "c"]);

        // Another order's number that starts with ours is not ours; a register's affixes are.
        let hits: DataList<RawSale> = serde_json::from_str(
            r#"{"data":[{"id":"o70","invoice_number":"ECWID-1-70"},
                        {"id":"o7a","invoice_number":"ECWID-1-7A"},
                        {"id":"mine","invoice_number":"WEB-ECWID-1-7/W"},
                        {"id":"exact","invoice_number":"ECWID-1-7"}]}"#,
        )
        .unwrap();
        let ids: Vec<String> = parse::sales_matching(hits.data, "ECWID-1-7")
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["mine", "exact"]);
    }

    #[test]
    fn bare_and_enveloped_lists_read_alike() {
        let bare: AnyPage = serde_json::from_str(r#"[{"id":"x","version":7}]"#).unwrap();
        let page = parse::feed_page::<serde_json::Value>(bare.into(), None, "t").unwrap();
        assert_eq!(page.max_version, Some(7));
        let env: AnyPage =
            serde_json::from_str(r#"{"data":[],"version":{"min":null,"max":null}}"#).unwrap();
        let page = parse::feed_page::<serde_json::Value>(env.into(), None, "t").unwrap();
        assert_eq!((page.items.len(), page.max_version), (0, None));
    }

    #[test]
    fn sale_responses_with_string_numbers_parse() {
        let env: RegisterSaleEnvelope = serde_json::from_str(
            r#"{"register_sale":{"id":"s1","invoice_number":"ECWID-1-A","status":"CLOSED","total_price":"9.09000","total_tax":0.91}}"#,
        )
        .unwrap();
        let sale = PostedSale::from(env.register_sale);
        assert_eq!(sale.total, Some(Decimal::new(1000, 2)));
    }
}
