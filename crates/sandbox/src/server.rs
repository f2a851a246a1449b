//! The HTTP front: listener with killable connections, routing, and each API's gate (auth,
//! rate limits, faults, counters) in front of its endpoints.

use std::io;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{FromRequest, MatchedPath, Path, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::config::SandboxConfig;
use crate::endpoint::{JsonBody, Op};
use crate::faults::{FaultKind, Route};
use crate::lightspeed::webhook_delivery::Runtime as WebhookRuntime;
use crate::state::State;
use crate::util::{ceil_secs, http_date_after};

/// Shared by the server and every `Sandbox` handle.
pub(crate) struct Inner {
    pub cfg: SandboxConfig,
    pub state: Mutex<State>,
    /// This very `Inner`, for the webhook deliveries' tasks (they must not keep it alive).
    pub me: Weak<Inner>,
    /// Lightspeed webhook deliveries (`lightspeed::webhook_delivery`).
    pub hooks: WebhookRuntime,
}

impl Inner {
    pub fn lock(&self) -> StateGuard<'_> {
        // A panic while holding the lock leaves consistent-enough test state; keep serving.
        StateGuard {
            inner: self,
            guard: Some(self.state.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

/// The state, locked. When it is released, the changes made under it that webhook
/// registrations must hear of become deliveries, sent by spawned tasks once the lock is gone
/// (`lightspeed::webhook_delivery`): every path that changes the state (API requests, admin
/// endpoints, `Sandbox` helpers) goes through here.
pub(crate) struct StateGuard<'a> {
    inner: &'a Inner,
    guard: Option<MutexGuard<'a, State>>,
}

impl Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        let deliveries = crate::lightspeed::webhook_delivery::drain(&mut guard, &self.inner.hooks);
        drop(guard);
        if !deliveries.is_empty() {
            self.inner.hooks.spawn(&self.inner.me, deliveries);
        }
    }
}

pub(crate) type Shared = Arc<Inner>;

// ---------------------------------------------------------------------------------------------
// Responses

pub(crate) enum Body {
    Json(Value),
    Html(String),
    /// No body at all (an answer whose operation declares no content).
    Empty,
}

/// A response computed while holding the state lock.
pub(crate) struct ApiResponse {
    pub status: StatusCode,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiResponse {
    pub fn json(status: StatusCode, body: Value) -> ApiResponse {
        ApiResponse {
            status,
            body: Body::Json(body),
            headers: Vec::new(),
        }
    }

    pub fn ok(body: Value) -> ApiResponse {
        ApiResponse::json(StatusCode::OK, body)
    }

    /// An answer without a body.
    pub fn empty(status: StatusCode) -> ApiResponse {
        ApiResponse {
            status,
            body: Body::Empty,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> ApiResponse {
        self.headers.push((name, value.into()));
        self
    }

    /// A 5xx as a load balancer or the app would send it.
    pub fn server_error(code: u16) -> ApiResponse {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code == 500 {
            return ApiResponse::json(
                status,
                serde_json::json!({"error": "Internal Server Error", "errorMessage": "Internal Server Error", "errorCode": "INTERNAL_SERVER_ERROR"}),
            );
        }
        let reason = status.canonical_reason().unwrap_or("Error");
        ApiResponse {
            status,
            body: Body::Html(format!(
                "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            )),
            headers: Vec::new(),
        }
    }

    pub fn into_response(self) -> Response {
        let mut resp = match self.body {
            Body::Json(v) => {
                let mut r = serde_json::to_vec(&v).unwrap_or_default().into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=UTF-8"),
                );
                r
            }
            Body::Html(s) => {
                let mut r = s.into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                r
            }
            Body::Empty => ().into_response(),
        };
        *resp.status_mut() = self.status;
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

// ---------------------------------------------------------------------------------------------
// Killable connections (for DropAfterCommit)

/// Connection info handed to handlers: lets a handler kill its own TCP connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnMeta {
    kill: Arc<AtomicBool>,
}

impl ConnMeta {
    /// After this, the connection fails every read and write: hyper drops it without sending
    /// the response, and the client sees the connection close with no HTTP answer.
    pub fn kill(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

pub(crate) struct KillableListener(pub TcpListener);

pub(crate) struct KillableIo {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

fn killed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "sandbox fault: connection dropped",
    )
}

impl AsyncRead for KillableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Listener for KillableListener {
    type Io = KillableIo;
    type Addr = ConnMeta;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, _remote)) => {
                    let _ = stream.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    return (
                        KillableIo {
                            inner: stream,
                            kill: kill.clone(),
                        },
                        ConnMeta { kill },
                    );
                }
                Err(e) => {
                    tracing::debug!("sandbox accept error: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()?;
        Ok(ConnMeta {
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnMeta {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Router

/// The whole server: each API's endpoints behind its gate, and the admin API.
pub(crate) fn router(shared: Shared) -> Router {
    let ecwid = crate::ecwid::routes(false).layer(from_fn_with_state(shared.clone(), ecwid_gate));
    let lightspeed = crate::lightspeed::routes().layer(from_fn_with_state(shared.clone(), ls_gate));
    Router::new()
        .nest("/ecwid/api/v3/{store_id}", ecwid)
        .nest("/lightspeed/{prefix}", lightspeed)
        .nest(
            "/_sandbox",
            crate::admin::router()
                .merge(crate::oauth::admin_router())
                .merge(crate::lightspeed::webhooks::admin_router()),
        )
        .fallback(not_found)
        .with_state(shared)
}

/// Drops empty path segments before routing (`//a/b/` is `/a/b`), as the APIs always did.
pub(crate) async fn normalize_path(mut req: Request) -> Request {
    let Some(path_and_query) = req.uri().path_and_query() else {
        return req;
    };
    let normalized = crate::endpoint::normalize(path_and_query.as_str());
    if normalized != path_and_query.as_str() {
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = normalized.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

async fn not_found() -> Response {
    ApiResponse::json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error": "Not Found"}),
    )
    .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

/// A request's body, read to the end (within axum's default limit).
async fn read_body(req: &mut Request) -> Result<Bytes, Response> {
    let body = std::mem::take(req.body_mut());
    Bytes::from_request(Request::new(body), &())
        .await
        .map_err(IntoResponse::into_response)
}

/// The parsed JSON body of a request: `Ok(None)` when there is none.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Option<Value>, &'static str> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json(headers) {
        return Err("Content-Type must be application/json");
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|_| "The request body is not valid JSON")
}

/// The op of the endpoint the request was routed to, given the parsed body; `Err` with the
/// answer when there is none (see [`Op::from_routed`]).
async fn endpoint_op(
    mut req: Request,
    endpoint: Next,
    body: Option<Value>,
    bad_parameter: fn(&str) -> ApiResponse,
) -> Result<Op, Response> {
    req.extensions_mut().insert(JsonBody(body));
    let routed = endpoint.run(req).await;
    Op::from_routed(&routed, bad_parameter).ok_or(routed)
}

/// Run the op under the lock, then apply the armed fault, if any.
async fn finish(
    shared: &Shared,
    meta: &ConnMeta,
    route_of_drop: Route,
    fault: Option<FaultKind>,
    op: Op,
) -> ApiResponse {
    let resp = op.run(&mut shared.lock());
    match fault {
        Some(FaultKind::Delay(d)) => {
            tokio::time::sleep(d).await;
        }
        Some(FaultKind::DropAfterCommit) => {
            if resp.status.is_success() {
                meta.kill();
            } else {
                shared
                    .lock()
                    .rearm(route_of_drop, FaultKind::DropAfterCommit);
            }
        }
        _ => {}
    }
    resp
}

/// axum answers `HEAD` with a `GET` route; neither API has `HEAD`, so a route answers it 405
/// (an unknown path still 404, and the OAuth token path, not an API route, 404 too).
fn refuses_head(method: &Method, route: &Option<MatchedPath>) -> bool {
    *method == Method::HEAD && route.is_some() && !matched(route, crate::lightspeed::TOKEN_PATH)
}

/// Whether the route the request matched is `template` (relative to the API's root).
fn matched(matched: &Option<MatchedPath>, template: &str) -> bool {
    matched
        .as_ref()
        .is_some_and(|m| m.as_str().ends_with(template))
}

/// Whether the route the request matched is one of `templates` (a route's twins).
fn matched_any(route: &Option<MatchedPath>, templates: &[&str]) -> bool {
    templates.iter().any(|t| matched(route, t))
}

// ---------------------------------------------------------------------------------------------
// Ecwid

#[derive(Deserialize)]
struct Store {
    store_id: String,
}

/// In front of every Ecwid endpoint: counters, store, token, rate limit and faults, the JSON
/// body; then the endpoint's op.
async fn ecwid_gate(
    AxState(shared): AxState<Shared>,
    ConnectInfo(meta): ConnectInfo<ConnMeta>,
    Path(Store { store_id }): Path<Store>,
    route: Option<MatchedPath>,
    mut req: Request,
    endpoint: Next,
) -> Response {
    let body = match read_body(&mut req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let cfg = &shared.cfg;
    let method = req.method().clone();
    let is_get_order = method == Method::GET && matched(&route, "/orders/{id}");
    let resource = req
        .uri()
        .path()
        .split('/')
        .find(|s| !s.is_empty())
        .unwrap_or("")
        .to_string();

    let pre = {
        let mut st = shared.lock();
        st.counters.ecwid_requests += 1;
        if store_id != cfg.ecwid_store_id.to_string() {
            Err(crate::ecwid::error(
                StatusCode::NOT_FOUND,
                "STORE_NOT_FOUND",
                "Store not found",
            ))
        } else {
            crate::ecwid::count(&mut st, &method, &resource);
            if bearer(req.headers()) != Some(cfg.ecwid_token.as_str()) {
                Err(crate::ecwid::error(
                    StatusCode::FORBIDDEN,
                    "INVALID_API_TOKEN",
                    "Access denied: the API token is missing or invalid",
                ))
            } else {
                match st
                    .ecwid_rate
                    .hit(cfg.ecwid_rate_limit, cfg.ecwid_rate_window, Instant::now())
                {
                    Err(wait) => {
                        st.counters.ecwid_rate_limited += 1;
                        Err(crate::ecwid::rate_limited(wait))
                    }
                    Ok(_) => {
                        let fault = st.take_fault(|r| {
                            r == Route::EcwidAny || (r == Route::EcwidGetOrder && is_get_order)
                        });
                        match fault {
                            Some(FaultKind::Status(code)) => Err(ApiResponse::server_error(code)),
                            Some(FaultKind::RateLimit { retry_after }) => {
                                st.counters.ecwid_rate_limited += 1;
                                Err(crate::ecwid::rate_limited(retry_after))
                            }
                            other => Ok(other),
                        }
                    }
                }
            }
        }
    };
    let fault = match pre {
        Err(resp) => return resp.into_response(),
        Ok(f) => f,
    };
    let parsed = match parse_body(req.headers(), &body) {
        Ok(v) => v,
        Err(msg) => {
            let status = if msg.starts_with("Content-Type") {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else {
                StatusCode::BAD_REQUEST
            };
            return crate::ecwid::error(status, "WRONG_PARAMETER", msg).into_response();
        }
    };
    let drop_route = if is_get_order {
        Route::EcwidGetOrder
    } else {
        Route::EcwidAny
    };
    match endpoint_op(req, endpoint, parsed, crate::ecwid::bad_parameter).await {
        Ok(op) => {
            let op = if refuses_head(&method, &route) {
                crate::ecwid::method_not_allowed().await
            } else {
                op
            };
            finish(&shared, &meta, drop_route, fault, op)
                .await
                .into_response()
        }
        Err(unrouted) => unrouted,
    }
}

// ---------------------------------------------------------------------------------------------
// Lightspeed

/// Lightspeed's rate-limit headers. Documented (Lightspeed X-Series API docs, rate limiting:
/// X-RateLimit-Limit, X-RateLimit-Remaining, Retry-After): every response carries
/// `X-RateLimit-Limit` and `X-RateLimit-Remaining`, and a 429 `Retry-After` (an HTTP date, set
/// by [`crate::lightspeed::rate_limited`]). No reset header is documented: `X-RateLimit-Reset`
/// (when the oldest counted request leaves the window, an HTTP date) is `reset_date`, which is
/// `Some` only with [`SandboxConfig::ls_rate_limit_reset_header`] on (an ASSUMPTION, off by
/// default).
///
/// [`SandboxConfig::ls_rate_limit_reset_header`]: crate::SandboxConfig::ls_rate_limit_reset_header
fn rate_headers(
    resp: ApiResponse,
    limit: u32,
    remaining: u32,
    reset_date: Option<&str>,
) -> ApiResponse {
    let resp = resp
        .header("X-RateLimit-Limit", limit.to_string())
        .header("X-RateLimit-Remaining", remaining.to_string());
    match reset_date {
        Some(date) => resp.header("X-RateLimit-Reset", date.to_string()),
        None => resp,
    }
}

#[derive(Deserialize)]
struct Retailer {
    prefix: String,
}

/// In front of every Lightspeed endpoint but the OAuth token endpoint, legacy and 2026-07
/// alike: counters, retailer, token, rate limit (one budget) and faults, the JSON body; then the
/// endpoint's op, with the rate-limit headers. ASSUMPTION (MAPPING.md §12: the spec is silent,
/// nothing says the date-based API has its own limiter): `/api/2026-07/*` sends the same
/// `X-RateLimit-*` headers and shares the legacy paths' budget, and a dated route meets its
/// legacy twin's faults and counters (`crate::lightspeed::SALE_CREATE`...).
async fn ls_gate(
    AxState(shared): AxState<Shared>,
    ConnectInfo(meta): ConnectInfo<ConnMeta>,
    Path(Retailer { prefix }): Path<Retailer>,
    route: Option<MatchedPath>,
    mut req: Request,
    endpoint: Next,
) -> Response {
    let method = req.method().clone();
    if method == Method::POST && matched(&route, crate::lightspeed::TOKEN_PATH) {
        // Authenticated by client credentials, not a bearer token.
        return endpoint.run(req).await;
    }
    let body = match read_body(&mut req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let cfg = &shared.cfg;
    // Each in both generations: `/api/2026-07/*` twins count and fault as the legacy routes.
    let is_sale_post =
        method == Method::POST && matched_any(&route, &crate::lightspeed::SALE_CREATE);
    // 2026-07 UpdateSale: a return's completion (`Route::LsPostSale`, not counted as a post).
    let is_sale_put = method == Method::PUT && matched(&route, crate::lightspeed::SALE_UPDATE);
    let is_return_start = (method == Method::PUT || method == Method::POST)
        && matched_any(&route, &crate::lightspeed::RETURN_START);
    let is_search = method == Method::GET && matched_any(&route, &crate::lightspeed::SEARCH);
    let is_sale_get = method == Method::GET && matched_any(&route, &crate::lightspeed::SALE_GET);
    let is_customer_create =
        method == Method::POST && matched_any(&route, &crate::lightspeed::CUSTOMER_CREATE);
    let is_product_create =
        method == Method::POST && matched_any(&route, &crate::lightspeed::PRODUCT_CREATE);
    // 2026-07 `ListInventoryRecords` is a POST that only reads (MAPPING.md §8).
    let is_read = method == Method::GET
        || (method == Method::POST && matched(&route, "/api/2026-07/inventory"));

    let limit = cfg.ls_rate_limit;
    let reset_header = cfg.ls_rate_limit_reset_header;
    let pre = {
        let mut st = shared.lock();
        st.counters.ls_requests += 1;
        if prefix != cfg.ls_domain_prefix {
            Err(ApiResponse::json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "Not Found", "details": "Unknown retailer"}),
            ))
        } else {
            if method == Method::GET {
                st.counters.ls_gets += 1;
            }
            if is_read {
                st.counters.ls_reads += 1;
            }
            if is_sale_post {
                st.counters.ls_sale_posts += 1;
            }
            if is_search {
                st.counters.ls_searches += 1;
            }
            if is_return_start {
                st.counters.ls_return_starts += 1;
            }
            if is_customer_create {
                st.counters.ls_customer_creates += 1;
            }
            if is_product_create {
                st.counters.ls_product_creates += 1;
            }
            if !crate::oauth::authorized(&mut st, &cfg.ls_token, bearer(req.headers())) {
                // Not counted (the limit applies to authorized requests), but still reported.
                let now = st.ls_rate.peek(limit, cfg.ls_rate_window, Instant::now());
                Err(rate_headers(
                    ApiResponse::json(
                        StatusCode::UNAUTHORIZED,
                        serde_json::json!({"error": "Unauthorized", "details": "The access token is missing, invalid or expired"}),
                    ),
                    limit,
                    now.remaining,
                    reset_header
                        .then(|| http_date_after(now.reset_in))
                        .as_deref(),
                ))
            } else {
                match st.ls_rate.hit(limit, cfg.ls_rate_window, Instant::now()) {
                    Err(wait) => {
                        st.counters.ls_rate_limited += 1;
                        let date = http_date_after(wait);
                        Err(rate_headers(
                            crate::lightspeed::rate_limited(&date),
                            limit,
                            0,
                            reset_header.then_some(date.as_str()),
                        ))
                    }
                    Ok(ok) => {
                        let reset = reset_header.then(|| http_date_after(ok.reset_in));
                        let fault = st.take_fault(|r| {
                            r == Route::LsAny
                                || (r == Route::LsPostSale && (is_sale_post || is_sale_put))
                                || (r == Route::LsStartReturn && is_return_start)
                                || (r == Route::LsSearch && is_search)
                                || (r == Route::LsGetSale && is_sale_get)
                        });
                        match fault {
                            Some(FaultKind::Status(code)) => Err(rate_headers(
                                ApiResponse::server_error(code),
                                limit,
                                ok.remaining,
                                reset.as_deref(),
                            )),
                            Some(FaultKind::RateLimit { retry_after }) => {
                                st.counters.ls_rate_limited += 1;
                                let date = http_date_after(retry_after);
                                Err(rate_headers(
                                    crate::lightspeed::rate_limited(&date),
                                    limit,
                                    0,
                                    reset_header.then_some(date.as_str()),
                                ))
                            }
                            other => Ok((other, ok.remaining, reset)),
                        }
                    }
                }
            }
        }
    };
    let (fault, remaining, reset) = match pre {
        Err(resp) => return resp.into_response(),
        Ok(x) => x,
    };
    let parsed = match parse_body(req.headers(), &body) {
        Ok(v) => v,
        Err(msg) => {
            return rate_headers(
                crate::lightspeed::error(StatusCode::BAD_REQUEST, msg),
                limit,
                remaining,
                reset.as_deref(),
            )
            .into_response();
        }
    };
    let drop_route = if is_sale_post || is_sale_put {
        Route::LsPostSale
    } else if is_return_start {
        Route::LsStartReturn
    } else if is_search {
        Route::LsSearch
    } else {
        Route::LsAny
    };
    match endpoint_op(req, endpoint, parsed, crate::lightspeed::bad_parameter).await {
        Ok(op) => {
            let op = if refuses_head(&method, &route) {
                crate::lightspeed::method_not_allowed().await
            } else {
                op
            };
            let resp = finish(&shared, &meta, drop_route, fault, op).await;
            rate_headers(resp, limit, remaining, reset.as_deref()).into_response()
        }
        Err(unrouted) => unrouted,
    }
}

/// Seconds for Ecwid's `Retry-After`.
pub(crate) fn retry_after_secs(d: std::time::Duration) -> String {
    ceil_secs(d).to_string()
}
