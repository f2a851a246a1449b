//! A stateful fake **Ecwid REST v3** + **Lightspeed Retail X-Series** HTTP server for tests, the
//! demo and benchmarks.
//!
//! It is never more forgiving than the real APIs: fields the real API requires are required
//! here, ids must exist, a `CLOSED` sale must be fully paid, a repeated `register_sales` POST
//! creates a duplicate sale, and both rate limits are enforced.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use els_sandbox::{OrderItemSpec, OrderSpec, Sandbox, SandboxConfig};
//! let sb = Sandbox::start(SandboxConfig::default()).await?;
//! let order_id = sb.place_order(OrderSpec {
//!     items: vec![OrderItemSpec::new("123123", 1)],
//!     email: "ann@example.com".into(),
//!     ..OrderSpec::default()
//! });
//! let hook = sb.order_webhook("order.created", &order_id, None, "PAID");
//! // POST hook.body to the ingest endpoint with hook.signature ...
//! # Ok(()) }
//! ```
//!
//! URL layout (all on one loopback port):
//! - Ecwid: `{base}/ecwid/api/v3/{storeId}/...` (the real one is `https://app.ecwid.com/api/v3`).
//! - Lightspeed: `{base}/lightspeed/{domain_prefix}/api/...` (the real one is
//!   `https://{domain_prefix}.retail.lightspeed.app/api/...`): `register_sales` (0.9),
//!   `/api/2.0/*` and the date-based `/api/2026-07/*`, all on one retailer's state.
//! - Admin (no auth, for other processes): `{base}/_sandbox/...`, see [`admin`].
//!
//! Choices where the references are uncertain:
//! - Ecwid order item `tax` and `taxes[].total` are LINE totals (see [`Sandbox::place_order`]).
//! - Ecwid `GET /orders?ids=` matches the numeric `internalId` only; `GET /orders/{id}` matches
//!   the string `id` only.
//! - `register_sales`: `price` is the final unit price ex tax and `discount` is informational
//!   (as the Vend sales tutorial says: "declared for reporting"); a `CLOSED` sale must have
//!   payments equal to the sum of `quantity x (price + tax)` over non-voided lines, to the cent.
//! - Lightspeed rate limiting sends only the documented headers (Lightspeed X-Series API docs,
//!   rate limiting: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, and on a 429 `Retry-After`
//!   as an RFC 1123 date). No reset header is documented; `X-RateLimit-Reset` (an RFC 1123
//!   date: when the oldest counted request leaves the window) is sent only with
//!   [`SandboxConfig::ls_rate_limit_reset_header`], off by default. The limiter is a sliding
//!   window (stricter than a fixed one).
//! - Version-paginated lists: `after` and `before` are exclusive; an empty page is
//!   `{"data": []}` with no `version`.
//! - Customer search: case-insensitive substring match (clients must re-check).
//! - Product search by SKU compares the query with the lower-cased SKU, exactly.
//! - `POST /api/2.0/products` (CreateProduct) takes `has_inventory` (default true), accepts a
//!   repeated SKU and refuses fields outside its body; the rest is in its module's doc.
//! - `/api/2026-07/*` (its module's doc, `lightspeed/dated.rs`, cites the reduced 2026-07
//!   OpenAPI fragments and `tests/fixtures/lightspeed/2026-07/MAPPING.md` for each rule): the
//!   CreateSale body is validated against the published `SaleRequest` schema at runtime, then
//!   checked as a `register_sales` body is; a repeated client-supplied sale `id` is refused
//!   with a 409 or replaces the sale ([`SandboxConfig::ls_repeat_sale_id`], undocumented); a
//!   sale without `source.register_id` goes to the first register; `GET /sales/{id}` reads a
//!   sale at once while the search keeps its lag; the dated paths share the legacy paths'
//!   rate-limit budget, headers, counters and faults.
//! - Lightspeed webhooks (`lightspeed/webhooks.rs`, `lightspeed/webhook_delivery.rs`, MAPPING.md
//!   §14): registrations on `/api/2026-07/webhooks` and `/api/2.0/webhooks`; every inventory
//!   change POSTs a form-encoded, `X-Signature`-signed `inventory.update` (a product created
//!   or deleted, `product.update`) to the active registrations, from a spawned task after the
//!   change committed, retried with back-off; test switches lose or delay them
//!   ([`Sandbox::set_ls_webhook_drop`], [`Sandbox::set_ls_webhook_delay`]).

pub mod admin;
mod config;
mod ecwid;
mod ecwid_orders;
mod endpoint;
mod faults;
mod lightspeed;
mod oauth;
pub mod openapi;
mod server;
mod specs;
mod state;
mod util;
mod webhook;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::ServiceExt;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::Layer;

pub use config::{RepeatSaleId, SandboxConfig};
pub use faults::{ChanceFault, ChaosPlan, Fault, FaultKind, FaultTally, Route};
pub use lightspeed::webhook_delivery::sign_ls_webhook;
pub use lightspeed::webhooks::LsWebhook;
pub use oauth::{OAuthMode, OAuthTokens};
pub use specs::{
    Counters, HandlingFeeSpec, OrderItemSpec, OrderSpec, ProductIds, ProductSpec, ReturnLine,
    ReturnPayment, ReturnSale, SeedIds, ShippingSpec, TaxSpec, VariantIds, VariantSpec,
};
pub use webhook::{SignedWebhook, sign_webhook};

use server::{Inner, KillableListener, Shared};
use state::State;

struct ServerHandle {
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
}

/// A running sandbox. Cheap to clone; the server stops when the last clone is dropped or on
/// [`Sandbox::shutdown`].
#[derive(Clone)]
pub struct Sandbox {
    inner: Shared,
    handle: Arc<ServerHandle>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("addr", &self.addr).finish()
    }
}

impl Sandbox {
    /// Start on a free port of 127.0.0.1.
    pub async fn start(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        Self::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Start on a given loopback address.
    pub async fn start_on(config: SandboxConfig, addr: SocketAddr) -> anyhow::Result<Sandbox> {
        if !addr.ip().is_loopback() {
            bail!("the sandbox only binds to loopback addresses, not {addr}");
        }
        if config.ls_rate_limit == 0 || config.ecwid_rate_limit == 0 {
            bail!("rate limits must be positive");
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the sandbox to {addr}"))?;
        let addr = listener.local_addr()?;
        let hooks =
            lightspeed::webhook_delivery::Runtime::new(tokio::runtime::Handle::current(), &config);
        let inner = Arc::new_cyclic(|me| Inner {
            cfg: config.clone(),
            state: Mutex::new(State::new(config)),
            me: me.clone(),
            hooks,
        });
        // Paths are normalized before routing, so the layer wraps the router.
        let app = axum::middleware::map_request(server::normalize_path)
            .layer(server::router(inner.clone()));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(
                KillableListener(listener),
                ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                    server::ConnMeta,
                >(app),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("sandbox server stopped: {e}");
            }
        });
        Ok(Sandbox {
            inner,
            handle: Arc::new(ServerHandle {
                shutdown: Mutex::new(Some(tx)),
                task: Mutex::new(Some(task)),
            }),
            addr,
        })
    }

    /// Stop the server (waits up to 5 s for in-flight requests). Lightspeed webhook
    /// deliveries make no further attempt; nothing waits for them.
    pub async fn shutdown(&self) {
        self.inner.hooks.stop();
        if let Some(tx) = self.handle.shutdown.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
        let task = self.handle.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }

    fn st(&self) -> server::StateGuard<'_> {
        self.inner.lock()
    }

    // -----------------------------------------------------------------------------------------
    // Addresses and ids

    pub fn config(&self) -> &SandboxConfig {
        &self.inner.cfg
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// `{base}/ecwid/api/v3`: append `/{storeId}/orders/{id}` as for the real API.
    pub fn ecwid_api_url(&self) -> String {
        format!("{}/ecwid/api/v3", self.base_url())
    }

    /// `{base}/lightspeed/{domain_prefix}`: append `/api/register_sales`, `/api/2.0/...` or
    /// `/api/2026-07/...`.
    pub fn lightspeed_url(&self) -> String {
        format!(
            "{}/lightspeed/{}",
            self.base_url(),
            self.inner.cfg.ls_domain_prefix
        )
    }

    /// `{base}/_sandbox`
    pub fn admin_url(&self) -> String {
        format!("{}/_sandbox", self.base_url())
    }

    pub fn ids(&self) -> SeedIds {
        self.st().seed.clone()
    }

    // -----------------------------------------------------------------------------------------
    // Inspection

    /// Every register sale, as `POST /api/register_sales` returns it (API 0.9 shape).
    pub fn sales(&self) -> Vec<Value> {
        let st = self.st();
        st.sales
            .iter()
            .map(|s| lightspeed::render_sale_09(&st, s))
            .collect()
    }

    /// Every sale in the API 2.0 shape (`/api/2.0/sales`, search).
    pub fn sales_v2(&self) -> Vec<Value> {
        let st = self.st();
        st.sales
            .iter()
            .map(|s| lightspeed::render_sale_20(&st, s))
            .collect()
    }

    /// Every sale in the 2026-07 `Sale` shape (`GET /api/2026-07/sales/{id}`, its search),
    /// whichever generation created it.
    pub fn sales_2026_07(&self) -> Vec<Value> {
        let st = self.st();
        st.sales
            .iter()
            .map(|s| lightspeed::dated_render::sale(&st, s))
            .collect()
    }

    /// The returns started on sale `sale_id` (referenced returns, `return_for` = it), oldest
    /// first, with their status, lines, total and payments.
    pub fn returns_for(&self, sale_id: &str) -> Vec<ReturnSale> {
        lightspeed::returns::returns_for(&self.st(), sale_id)
    }

    /// Voids a Lightspeed sale, as the POS does (a closed sale can only be voided): its
    /// stock, if it took any, goes back at its outlet with a new inventory version.
    pub fn void_sale(&self, sale_id: &str) -> anyhow::Result<()> {
        let mut st = self.st();
        let idx = st
            .sales
            .iter()
            .position(|s| s.id == sale_id)
            .ok_or_else(|| anyhow::anyhow!("unknown Lightspeed sale {sale_id}"))?;
        lightspeed::returns::void(&mut st, idx);
        Ok(())
    }

    pub fn sale_count(&self) -> usize {
        self.st().sales.len()
    }

    /// Sales whose `invoice_number` is exactly this.
    pub fn sales_with_invoice(&self, invoice_number: &str) -> Vec<Value> {
        let st = self.st();
        st.sales
            .iter()
            .filter(|s| s.invoice_number == invoice_number)
            .map(|s| lightspeed::render_sale_09(&st, s))
            .collect()
    }

    /// Lightspeed stock of a product at an outlet (0 when there is no record).
    pub fn inventory_level(&self, product_id: &str, outlet_id: &str) -> Decimal {
        self.st().inventory_level(product_id, outlet_id)
    }

    /// The `version` of an inventory record.
    pub fn inventory_version(&self, product_id: &str, outlet_id: &str) -> Option<u64> {
        self.st()
            .inventory
            .iter()
            .find(|i| i.product_id == product_id && i.outlet_id == outlet_id)
            .map(|i| i.version)
    }

    /// A Lightspeed product as `/api/2.0/products/{id}` returns it (inside `data`).
    pub fn ls_product(&self, product_id: &str) -> Option<Value> {
        let st = self.st();
        st.ls_product(product_id)
            .map(|p| lightspeed::render_product(&st, p))
    }

    /// Every Lightspeed product, deleted ones too, as `/api/2.0/products/{id}` returns them.
    pub fn ls_products(&self) -> Vec<Value> {
        let st = self.st();
        st.products
            .iter()
            .map(|p| lightspeed::render_product(&st, p))
            .collect()
    }

    /// An Ecwid order as `GET /orders/{id}` returns it.
    pub fn ecwid_order(&self, order_id: &str) -> Option<Value> {
        self.st()
            .ecwid_order_by_id(order_id)
            .map(|(_, o)| o.clone())
    }

    /// All Ecwid orders, oldest first.
    pub fn ecwid_orders(&self) -> Vec<Value> {
        self.st().ecwid_orders.values().cloned().collect()
    }

    /// Ecwid stock of a product (or of one of its combinations); `None` when unknown or
    /// unlimited.
    pub fn ecwid_stock(&self, product_id: u64, combination_id: Option<u64>) -> Option<Decimal> {
        let st = self.st();
        let p = st.ecwid_products.get(&product_id)?;
        let q = match combination_id {
            None => p.quantity,
            Some(cid) => p.combinations.iter().find(|c| c.id == cid)?.quantity,
        };
        q.map(Decimal::from)
    }

    /// An Ecwid product as `GET /products/{id}` returns it.
    pub fn ecwid_product(&self, product_id: u64) -> Option<Value> {
        self.st()
            .ecwid_products
            .get(&product_id)
            .map(ecwid::render_product)
    }

    /// Every Lightspeed customer, as the 2.0 API returns them.
    pub fn customers(&self) -> Vec<Value> {
        self.st()
            .customers
            .iter()
            .map(lightspeed::render_customer)
            .collect()
    }

    pub fn counters(&self) -> Counters {
        self.st().counters.clone()
    }

    pub fn reset_counters(&self) {
        self.st().counters = Counters::default();
    }

    // -----------------------------------------------------------------------------------------
    // Catalog and stock

    /// Create a product in BOTH Ecwid (with combinations for variants) and Lightspeed (variant
    /// product rows). Panics on an invalid spec; see [`Sandbox::try_add_product`].
    pub fn add_product(&self, spec: ProductSpec) -> ProductIds {
        self.try_add_product(spec).expect("valid product spec")
    }

    pub fn try_add_product(&self, spec: ProductSpec) -> anyhow::Result<ProductIds> {
        self.st().add_product(&spec, true, true)
    }

    /// Create the product in Lightspeed only (an SKU unknown to Ecwid, or a duplicate SKU).
    pub fn add_ls_product_only(&self, spec: ProductSpec) -> ProductIds {
        self.st()
            .add_product(&spec, false, true)
            .expect("valid product spec")
    }

    /// Create the product in Ecwid only (an SKU unknown to Lightspeed, or a duplicate SKU).
    pub fn add_ecwid_product_only(&self, spec: ProductSpec) -> ProductIds {
        self.st()
            .add_product(&spec, true, false)
            .expect("valid product spec")
    }

    /// Delete a Lightspeed product (it then shows only with `deleted=true`).
    pub fn delete_ls_product(&self, product_id: &str) -> anyhow::Result<()> {
        let mut st = self.st();
        let version = st.next_version();
        let p = st
            .products
            .iter_mut()
            .find(|p| p.id == product_id)
            .with_context(|| format!("unknown Lightspeed product {product_id}"))?;
        p.deleted_at = Some(chrono::Utc::now());
        p.updated_at = chrono::Utc::now();
        p.version = version;
        let id = p.id.clone();
        lightspeed::webhook_delivery::touch(
            &mut st,
            lightspeed::webhook_delivery::Touched::Product(id),
        );
        Ok(())
    }

    /// A manual stock change in Lightspeed: sets the level and bumps the record's `version`.
    /// Panics on an unknown product or outlet; see [`Sandbox::try_set_ls_inventory`].
    pub fn set_ls_inventory(&self, product_id: &str, outlet_id: &str, level: impl Into<Decimal>) {
        self.try_set_ls_inventory(product_id, outlet_id, level)
            .expect("known product and outlet")
    }

    pub fn try_set_ls_inventory(
        &self,
        product_id: &str,
        outlet_id: &str,
        level: impl Into<Decimal>,
    ) -> anyhow::Result<()> {
        self.st()
            .set_ls_inventory(product_id, outlet_id, level.into())
    }

    /// A manual stock edit in the Ecwid admin (`None` = unlimited).
    pub fn set_ecwid_stock(
        &self,
        product_id: u64,
        combination_id: Option<u64>,
        quantity: Option<i64>,
    ) -> anyhow::Result<()> {
        let mut st = self.st();
        let p = st
            .ecwid_products
            .get_mut(&product_id)
            .with_context(|| format!("unknown Ecwid product {product_id}"))?;
        match combination_id {
            None => p.quantity = quantity,
            Some(cid) => {
                p.combinations
                    .iter_mut()
                    .find(|c| c.id == cid)
                    .with_context(|| format!("unknown combination {cid}"))?
                    .quantity = quantity
            }
        }
        p.updated = chrono::Utc::now();
        Ok(())
    }

    /// A sale made in the POS: a CLOSED cash sale of one line that lowers stock at the
    /// register's outlet. Returns the sale id. Panics on unknown ids.
    pub fn pos_sale(&self, product_id: &str, qty: impl Into<Decimal>, register_id: &str) -> String {
        self.try_pos_sale(product_id, qty, register_id)
            .expect("known product and register")
    }

    pub fn try_pos_sale(
        &self,
        product_id: &str,
        qty: impl Into<Decimal>,
        register_id: &str,
    ) -> anyhow::Result<String> {
        self.st().pos_sale(product_id, qty.into(), register_id)
    }

    /// Create a Lightspeed customer; returns its id. An empty email means none.
    pub fn add_customer(&self, first: &str, last: &str, email: &str) -> String {
        let email = Some(email).filter(|e| !e.is_empty());
        self.st().add_customer(first, last, email)
    }

    /// Add a Lightspeed register at an outlet (it shows in `GET /api/2.0/registers` with a new
    /// version and takes sales). Names need not be unique: two registers called "Main" make an
    /// ambiguous name. Returns the register's id. Panics on a blank name or an unknown outlet;
    /// see [`Sandbox::try_add_register`].
    pub fn add_register(&self, name: &str, outlet_id: &str) -> String {
        self.try_add_register(name, outlet_id)
            .expect("a named register at a known outlet")
    }

    pub fn try_add_register(&self, name: &str, outlet_id: &str) -> anyhow::Result<String> {
        self.st().add_register(name, outlet_id)
    }

    // -----------------------------------------------------------------------------------------
    // Ecwid orders

    /// Simulate an Ecwid checkout: builds a full, internally consistent order JSON and lowers
    /// Ecwid stock. Returns the order `id`. Panics on an invalid spec (unknown SKU, out of
    /// stock...); see [`Sandbox::try_place_order`].
    ///
    /// The money follows Ecwid's documented identities (shipping tax inside the item taxes
    /// and again in `taxesOnShipping`, `tax` = Σ item taxes); the rules and the assumptions
    /// are on `ecwid_orders::place_order` and in the README's sandbox table.
    pub fn place_order(&self, spec: OrderSpec) -> String {
        self.try_place_order(spec).expect("valid order spec")
    }

    pub fn try_place_order(&self, spec: OrderSpec) -> anyhow::Result<String> {
        ecwid_orders::place_order(&mut self.st(), &spec)
    }

    /// Store a raw order JSON as given (e.g. Ecwid's example `order.json`). It needs a string
    /// `id`; an `internalId` is assigned when missing. Returns the `id`.
    pub fn insert_order(&self, order: Value) -> String {
        self.try_insert_order(order).expect("an order with an id")
    }

    pub fn try_insert_order(&self, order: Value) -> anyhow::Result<String> {
        self.st().insert_order(order)
    }

    /// Change `paymentStatus` (and `updateDate`); `CANCELLED` restocks the items.
    pub fn set_payment_status(&self, order_id: &str, status: &str) -> anyhow::Result<()> {
        ecwid_orders::set_payment_status(&mut self.st(), order_id, status)
    }

    /// Refund `amount` of the order as Ecwid records it (`refunds[]`, `refundedAmount`,
    /// `REFUNDED` once the whole total is refunded, else `PARTIALLY_REFUNDED`); stock is not
    /// touched (a manual restock). Send the webhook with [`Sandbox::order_webhook`].
    pub fn refund_order(&self, order_id: &str, amount: Decimal) -> anyhow::Result<()> {
        ecwid_orders::refund_order(&mut self.st(), order_id, amount, true)
    }

    /// As [`Sandbox::refund_order`], for a payment processor that fills neither `refunds[]`
    /// nor `refundedAmount` (Ecwid documents both only for its own processing).
    pub fn refund_order_without_amount(
        &self,
        order_id: &str,
        amount: Decimal,
    ) -> anyhow::Result<()> {
        ecwid_orders::refund_order(&mut self.st(), order_id, amount, false)
    }

    /// A test fault, not Ecwid's documented behaviour: the next `reads` reads of the order by
    /// id (`GET /orders/{id}`) still say `AWAITING_PAYMENT`, as a replica that has not seen
    /// the payment yet would, while the search already lists it as paid. ASSUMPTION (not in
    /// Ecwid's docs): a PAID webhook can outrun the order's own read model; the product must
    /// survive it (issue #12: such an order was skipped for good before the order sweep).
    pub fn lag_payment_status(&self, order_id: &str, reads: u32) {
        self.st().payment_lag.insert(order_id.to_string(), reads);
    }

    /// Shallow-merge fields into an order (`id` and `internalId` never change).
    pub fn update_order(&self, order_id: &str, patch: Value) -> anyhow::Result<()> {
        let Value::Object(patch) = patch else {
            bail!("an order patch must be a JSON object");
        };
        let mut st = self.st();
        let order = st
            .ecwid_order_mut(order_id)
            .with_context(|| format!("no Ecwid order {order_id}"))?;
        ecwid::merge_order(order, &patch);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Webhooks

    /// An order webhook signed like Ecwid: a fresh `eventId` (UUID) and `eventCreated` = now.
    /// `entityId` is the order's `internalId` (0 for an unknown order); the fulfillment statuses
    /// are the order's current one. With `old_payment_status = None` (an `order.created`
    /// event), `data` has no `old*` fields.
    pub fn order_webhook(
        &self,
        event_type: &str,
        order_id: &str,
        old_payment_status: Option<&str>,
        new_payment_status: &str,
    ) -> SignedWebhook {
        self.order_webhook_at(
            &uuid::Uuid::new_v4().to_string(),
            chrono::Utc::now().timestamp(),
            event_type,
            order_id,
            old_payment_status,
            new_payment_status,
        )
    }

    /// As [`Sandbox::order_webhook`], with a given `eventId` and `eventCreated`.
    pub fn order_webhook_at(
        &self,
        event_id: &str,
        event_created: i64,
        event_type: &str,
        order_id: &str,
        old_payment_status: Option<&str>,
        new_payment_status: &str,
    ) -> SignedWebhook {
        let st = self.st();
        let (internal, fulfillment) = st
            .ecwid_order_by_id(order_id)
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
        webhook::build_order_webhook(
            &self.inner.cfg.webhook_client_secret,
            self.inner.cfg.ecwid_store_id,
            event_id,
            event_created,
            event_type,
            order_id,
            internal,
            old_payment_status,
            new_payment_status,
            &fulfillment,
        )
    }

    /// POST a webhook like Ecwid does (`X-Ecwid-Webhook-Signature`,
    /// `Content-Type: application/json; charset=UTF-8`, 3 s connect and 10 s response timeouts).
    pub async fn deliver(
        &self,
        url: &str,
        hook: &SignedWebhook,
    ) -> anyhow::Result<reqwest::StatusCode> {
        deliver(url, hook).await
    }

    // -----------------------------------------------------------------------------------------
    // Faults

    pub fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            self.st().faults.push(fault);
        }
    }

    pub fn clear_faults(&self) {
        self.st().faults.clear();
    }

    /// Faults still armed.
    pub fn faults(&self) -> Vec<Fault> {
        self.st().faults.clone()
    }

    /// Random faults from a seeded plan (replacing any earlier plan); `None` stops them.
    pub fn set_chaos(&self, plan: Option<ChaosPlan>) {
        self.st().chaos = plan.map(faults::Chaos::new);
    }

    /// How many faults fired so far, per route and kind.
    pub fn fault_tally(&self) -> FaultTally {
        self.st().fault_tally.clone()
    }

    /// Everything `GET /_sandbox/state` returns.
    pub fn state_json(&self) -> Value {
        let st = self.st();
        state_json(&st)
    }
}

pub(crate) fn state_json(st: &State) -> Value {
    let sales: Vec<Value> = st
        .sales
        .iter()
        .map(|s| lightspeed::render_sale_09(st, s))
        .collect();
    let customers: Vec<Value> = st
        .customers
        .iter()
        .map(lightspeed::render_customer)
        .collect();
    let inventory: Vec<Value> = st
        .inventory
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "product_id": i.product_id,
                "sku": st.ls_product(&i.product_id).map(|p| p.sku.clone()),
                "outlet_id": i.outlet_id,
                "inventory_level": util::dec_json(i.level),
                "version": i.version,
            })
        })
        .collect();
    let mut stock = Vec::new();
    for p in st.ecwid_products.values() {
        stock.push(json!({"product_id": p.id, "combination_id": null, "sku": p.sku, "quantity": p.quantity}));
        for c in &p.combinations {
            stock.push(json!({"product_id": p.id, "combination_id": c.id, "sku": c.sku, "quantity": c.quantity}));
        }
    }
    json!({
        "seed_ids": st.seed,
        "counters": st.counters,
        "sales": sales,
        "customers": customers,
        "ls_inventory": inventory,
        "ecwid_stock": stock,
        "ecwid_orders": st.ecwid_orders.values().collect::<Vec<_>>(),
        "faults": st.faults,
        "ls_webhooks": st.ls_webhooks,
    })
}

/// POST a signed webhook like Ecwid does.
pub async fn deliver(url: &str, hook: &SignedWebhook) -> anyhow::Result<reqwest::StatusCode> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .build()?;
    let resp = client
        .post(url)
        .header("Content-Type", "application/json; charset=UTF-8")
        .header("X-Ecwid-Webhook-Signature", &hook.signature)
        .body(hook.body.clone())
        .send()
        .await?;
    Ok(resp.status())
}
