//! Ports: what the services need from the outside world. Adapters implement them:
//! SQLite or DynamoDB/SQS for state and work, reqwest clients for Ecwid and Lightspeed.
//!
//! Methods return `impl Future + Send` so services can run on a multi-threaded runtime and
//! be generic over adapters with static dispatch.

use crate::connection::Connection;
use crate::customers::CustomerLink;
use crate::ecwid::EcwidOrder;
use crate::error::{ApiError, QueueError, StoreError};
use crate::ledger::{LedgerEntry, OrderKey, OrderState};
use crate::lightspeed::{LsCustomer, LsProduct, NewCustomer, PostedSale, SaleDraft, SaleSetup};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// A cached SKU link between the two catalogs (P1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductLink {
    pub sku: String,
    pub lightspeed_product_id: String,
    #[serde(default)]
    pub ecwid_product_id: Option<u64>,
    #[serde(default)]
    pub ecwid_combination_id: Option<u64>,
    pub updated_at: DateTime<Utc>,
}

/// State: connections, the order ledger and links. Writes that can race are conditional on
/// the item's `version`; a lost race is [`StoreError::Conflict`].
pub trait StateStore: Send + Sync {
    fn get_connection(
        &self,
        store_id: u64,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;
    /// Writes `connection` (whose `version` is the new version) if the stored version equals
    /// `expected_version` (None: no connection may exist yet).
    fn put_connection(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn list_connections(&self) -> impl Future<Output = Result<Vec<Connection>, StoreError>> + Send;

    fn load_order(
        &self,
        key: &OrderKey,
    ) -> impl Future<Output = Result<Option<LedgerEntry>, StoreError>> + Send;
    /// Writes `entry` (whose `version` is the new version) if the stored version equals
    /// `expected_version` (None: the order may have no item yet).
    fn save_order(
        &self,
        entry: &LedgerEntry,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Ledger items of one store, optionally in one state, oldest first, at most `limit`.
    fn list_orders(
        &self,
        store_id: u64,
        state: Option<OrderState>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LedgerEntry>, StoreError>> + Send;

    fn get_product_link(
        &self,
        store_id: u64,
        sku: &str,
    ) -> impl Future<Output = Result<Option<ProductLink>, StoreError>> + Send;
    fn put_product_link(
        &self,
        store_id: u64,
        link: &ProductLink,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The customer link of (`store_id`, `email`); `email` is normalised (C1).
    fn get_customer_link(
        &self,
        store_id: u64,
        email: &str,
    ) -> impl Future<Output = Result<Option<CustomerLink>, StoreError>> + Send;
    /// Writes `link` (whose `version` is the new version) if the stored version equals
    /// `expected_version` (None: no link may exist yet). A lost race is a conflict: this is
    /// the claim that keeps concurrent orders from creating two customers.
    fn put_customer_link(
        &self,
        link: &CustomerLink,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The work item: "look at this order". It carries no order data; the poster re-fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderMessage {
    pub store_id: u64,
    pub order_id: String,
    #[serde(default)]
    pub event_id: Option<String>,
    /// FIFO deduplication id: `store:order:eventId` for webhooks, so Ecwid's repeated
    /// deliveries of one event collapse, while a *new* event for the same order (say the
    /// PAID update after an unpaid fetch) is never swallowed by the 5-minute window. The
    /// ledger, not the queue, is what guarantees one sale per order. Unique for a replay.
    pub dedup_id: String,
}

impl OrderMessage {
    pub fn from_webhook(
        store_id: u64,
        order_id: impl Into<String>,
        event_id: impl Into<String>,
    ) -> Self {
        let order_id = order_id.into();
        let event_id = event_id.into();
        Self {
            dedup_id: format!("{store_id}:{order_id}:{event_id}"),
            store_id,
            order_id,
            event_id: Some(event_id),
        }
    }

    /// A replay requested by an operator; `nonce` makes its dedup id unique.
    pub fn replay(key: &OrderKey, nonce: &str) -> Self {
        Self {
            dedup_id: format!("{}:{}:replay:{nonce}", key.store_id, key.order_id),
            store_id: key.store_id,
            order_id: key.order_id.clone(),
            event_id: None,
        }
    }

    pub fn key(&self) -> OrderKey {
        OrderKey::new(self.store_id, self.order_id.clone())
    }

    /// The FIFO message group: one store's orders are worked in order, one at a time.
    pub fn group_id(&self) -> String {
        self.store_id.to_string()
    }
}

/// A received message and the handle to settle it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message: OrderMessage,
    pub receipt: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

/// The work queue between ingest and the poster (SQS FIFO, or a SQLite table).
pub trait WorkQueue: Send + Sync {
    /// Durably enqueues the message. A message with the same `dedup_id` within the
    /// deduplication window (5 minutes, like SQS FIFO) is accepted and dropped.
    fn enqueue(
        &self,
        message: &OrderMessage,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Receives up to `max` visible messages and hides them for `visibility`.
    fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, QueueError>> + Send;
    /// Deletes a message whose outcome is recorded.
    fn ack(&self, receipt: &str) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Makes the message visible again after `delay` (a retry).
    fn retry_after(
        &self,
        receipt: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Ecwid REST v3, read side of orders.
pub trait EcwidApi: Send + Sync {
    fn get_order(
        &self,
        connection: &Connection,
        order_id: &str,
    ) -> impl Future<Output = Result<EcwidOrder, ApiError>> + Send;
}

/// Lightspeed X-Series, as far as posting sales needs it.
pub trait LightspeedApi: Send + Sync {
    /// `POST /api/register_sales`. Not idempotent: a repeat creates a second sale.
    fn post_sale(
        &self,
        connection: &Connection,
        sale: &SaleDraft,
    ) -> impl Future<Output = Result<PostedSale, ApiError>> + Send;
    /// `GET /api/2.0/search?type=sales&invoice_number=...`.
    fn find_sales_by_invoice(
        &self,
        connection: &Connection,
        invoice_number: &str,
    ) -> impl Future<Output = Result<Vec<PostedSale>, ApiError>> + Send;
    /// Every product row whose SKU may equal `sku` (the caller re-checks).
    fn find_products_by_sku(
        &self,
        connection: &Connection,
        sku: &str,
    ) -> impl Future<Output = Result<Vec<LsProduct>, ApiError>> + Send;
    /// The retailer's taxes and no-tax group.
    fn sale_setup(
        &self,
        connection: &Connection,
    ) -> impl Future<Output = Result<SaleSetup, ApiError>> + Send;
    /// `GET /api/2.0/search?type=customers&email=...`, every page. The match may be loose
    /// (case, substring): the caller re-checks the hits.
    fn search_customers_by_email(
        &self,
        connection: &Connection,
        email: &str,
    ) -> impl Future<Output = Result<Vec<LsCustomer>, ApiError>> + Send;
    /// `POST /api/2.0/customers`. Not idempotent: a repeat creates a second customer. There
    /// is deliberately no update call: a matched customer is never changed (C2).
    fn create_customer(
        &self,
        connection: &Connection,
        customer: &NewCustomer,
    ) -> impl Future<Output = Result<LsCustomer, ApiError>> + Send;
}

/// Time, as a port so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
