//! Ports: what the services need from the outside world. Adapters implement them:
//! SQLite or DynamoDB/SQS for state and work, reqwest clients for Ecwid and Lightspeed.
//!
//! Methods return `impl Future + Send` so services can run on a multi-threaded runtime and
//! be generic over adapters with static dispatch.

use crate::connection::Connection;
use crate::customers::CustomerLink;
use crate::ecwid::{EcwidOrder, OrderQuery, OrderSearchPage};
use crate::error::{ApiError, QueueError, StoreError};
use crate::ids::{Sku, StoreId};
use crate::inventory::{
    BatchStatus, CatalogLink, CatalogLinkUpdate, EcwidCatalogProduct, EcwidProductPage,
    EcwidTarget, FeedPage, InventoryCursor, InventoryRecord, PendingWebSale, PushedStock,
    StockLevel,
};
use crate::ledger::{LedgerEntry, OrderKey, OrderState};
use crate::lightspeed::{
    LsCustomer, LsProduct, LsSale, NewCustomer, PostedSale, SaleDraft, SaleSetup,
};
use crate::sweep::SweepCursor;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// A cached SKU link between the two catalogs (P1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductLink {
    pub sku: Sku,
    pub lightspeed_product_id: String,
    #[serde(default)]
    pub ecwid_product_id: Option<u64>,
    #[serde(default)]
    pub ecwid_combination_id: Option<u64>,
    pub updated_at: DateTime<Utc>,
}

/// A verified webhook event, recorded so that a replay of its `eventId` with an altered
/// body is recognised (see `crate::ingest`). Keyed by `event_id` alone: Ecwid's event ids
/// are globally unique, and `store_id` is not signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEventRecord {
    pub event_id: String,
    /// The store the first delivery named (for operators; not part of the key).
    pub store_id: StoreId,
    /// What the event asked for (`crate::ingest::event_fingerprint`).
    pub fingerprint: String,
    pub recorded_at: DateTime<Utc>,
    /// After this the record may be deleted and no longer counts.
    pub expires_at: DateTime<Utc>,
}

/// What [`WebhookEventStore::record_webhook_event`] found. Adapters only report this; what
/// it means for the delivery is decided once, in [`EventDelivery::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRecordOutcome {
    /// The event id was not recorded (or its record had expired): it is recorded now.
    Inserted,
    /// The event id is recorded and not expired: the stored record (the first delivery's),
    /// left as it is.
    Existing(WebhookEventRecord),
}

/// What a verified webhook delivery is, given what recording its event id found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDelivery {
    /// The first delivery of the event (or the first since its record expired).
    First,
    /// The event was recorded with the same fingerprint: a redelivery by Ecwid.
    Redelivery,
    /// The event was recorded with another fingerprint: the body was altered. The first
    /// delivery's record.
    Altered(WebhookEventRecord),
}

impl EventDelivery {
    /// The delivery that tried to record `record` and `found` this: a stored record with the
    /// same fingerprint is a redelivery, one with another fingerprint an altered body (the
    /// store that first delivery named does not matter: it is not signed).
    pub fn of(record: &WebhookEventRecord, found: EventRecordOutcome) -> Self {
        match found {
            EventRecordOutcome::Inserted => EventDelivery::First,
            EventRecordOutcome::Existing(first) if first.fingerprint == record.fingerprint => {
                EventDelivery::Redelivery
            }
            EventRecordOutcome::Existing(first) => EventDelivery::Altered(first),
        }
    }
}

// --- State ---------------------------------------------------------------------------------
//
// One small port per aggregate, so a service names only the state it uses and a test fake
// implements only that. Writes that can race are conditional on the item's `version`; a
// lost race is [`StoreError::Conflict`]. An adapter (SQLite, DynamoDB, in memory) implements
// them all, and is then a [`StateStore`].

/// Connections: one per Ecwid store, with the Lightspeed account and its tokens.
pub trait ConnectionStore: Send + Sync {
    fn get_connection(
        &self,
        store_id: StoreId,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;
    /// Writes `connection` (whose `version` is the new version) if the stored version equals
    /// `expected_version` (None: no connection may exist yet).
    fn put_connection(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn list_connections(&self) -> impl Future<Output = Result<Vec<Connection>, StoreError>> + Send;
}

/// The order ledger: one entry per Ecwid order, and the web quantities its open entries
/// hold.
pub trait LedgerStore: Send + Sync {
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
        store_id: StoreId,
        state: Option<OrderState>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LedgerEntry>, StoreError>> + Send;
    /// The ledger entries of a store that hold web quantities Lightspeed has not seen yet
    /// ([`LedgerEntry::is_pending_web_sale`]): paid, fetched, not yet POSTED. The cost grows
    /// with the number of such orders, not with the ledger.
    fn list_pending_web_sales(
        &self,
        store_id: StoreId,
    ) -> impl Future<Output = Result<Vec<PendingWebSale>, StoreError>> + Send;
}

/// The poster's links: an Ecwid SKU to its Lightspeed product (P1), a buyer's email to its
/// Lightspeed customer (C1).
pub trait LinkStore: Send + Sync {
    fn get_product_link(
        &self,
        store_id: StoreId,
        sku: &Sku,
    ) -> impl Future<Output = Result<Option<ProductLink>, StoreError>> + Send;
    fn put_product_link(
        &self,
        store_id: StoreId,
        link: &ProductLink,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The customer link of (`store_id`, `email`); `email` is normalised (C1).
    fn get_customer_link(
        &self,
        store_id: StoreId,
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

/// The inventory mirror's state (see `crate::inventory`): the cursor and run lease, the
/// catalog links with their SKU index, and the levels last pushed to Ecwid.
pub trait InventoryStateStore: Send + Sync {
    /// The inventory cursor (and run lease) of a store.
    fn get_inventory_cursor(
        &self,
        store_id: StoreId,
    ) -> impl Future<Output = Result<Option<InventoryCursor>, StoreError>> + Send;
    /// Writes `cursor` (whose `version` is the new version) if the stored version equals
    /// `expected_version` (None: no cursor may exist yet). A lost race is a conflict.
    fn put_inventory_cursor(
        &self,
        cursor: &InventoryCursor,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The catalog links of these Lightspeed products (those that exist, in any order).
    fn get_catalog_links(
        &self,
        store_id: StoreId,
        lightspeed_product_ids: &[String],
    ) -> impl Future<Output = Result<Vec<CatalogLink>, StoreError>> + Send;
    /// Upserts catalog links and keeps the SKU index behind
    /// [`InventoryStateStore::lightspeed_products_with_sku`] in step (an update names the
    /// SKU key the stored link had, so its old index entry goes).
    fn put_catalog_links(
        &self,
        store_id: StoreId,
        updates: &[CatalogLinkUpdate],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every catalog link of a store.
    fn list_catalog_links(
        &self,
        store_id: StoreId,
    ) -> impl Future<Output = Result<Vec<CatalogLink>, StoreError>> + Send;
    /// For each SKU key, the ids of the **live** Lightspeed products whose link has it
    /// (keys with none are absent). More than one id means the SKU is ambiguous (P1).
    fn lightspeed_products_with_sku(
        &self,
        store_id: StoreId,
        sku_keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Vec<String>>, StoreError>> + Send;

    /// The last levels pushed to Ecwid for these Lightspeed products (those that exist).
    fn get_pushed_stock(
        &self,
        store_id: StoreId,
        lightspeed_product_ids: &[String],
    ) -> impl Future<Output = Result<Vec<PushedStock>, StoreError>> + Send;
    /// Upserts pushed levels (one item per Lightspeed product).
    fn put_pushed_stock(
        &self,
        store_id: StoreId,
        items: &[PushedStock],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The webhook event ids ingest has seen (replay protection, see `crate::ingest`).
pub trait WebhookEventStore: Send + Sync {
    /// Records a verified webhook event unless its `event_id` is already recorded: a
    /// conditional insert keyed by `event_id` only, which returns the stored record when
    /// there is one (and compares nothing). A stored record whose `expires_at` is not after
    /// `record.recorded_at` counts as absent and is replaced.
    fn record_webhook_event(
        &self,
        record: &WebhookEventRecord,
    ) -> impl Future<Output = Result<EventRecordOutcome, StoreError>> + Send;
}

/// The order sweep's cursor and run lease, one per store (see `crate::sweep`).
pub trait SweepStateStore: Send + Sync {
    fn get_sweep_cursor(
        &self,
        store_id: StoreId,
    ) -> impl Future<Output = Result<Option<SweepCursor>, StoreError>> + Send;
    /// Writes `cursor` (whose `version` is the new version) if the stored version equals
    /// `expected_version` (None: no cursor may exist yet). A lost race is a conflict.
    fn put_sweep_cursor(
        &self,
        cursor: &SweepCursor,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Every state port: what a backend implements, and what the wiring of a whole process
/// (which runs every service on one store) asks for. Services ask only for the ports they
/// use. Implemented for every type that implements them all.
pub trait StateStore:
    ConnectionStore
    + LedgerStore
    + LinkStore
    + InventoryStateStore
    + WebhookEventStore
    + SweepStateStore
{
}

impl<T> StateStore for T where
    T: ConnectionStore
        + LedgerStore
        + LinkStore
        + InventoryStateStore
        + WebhookEventStore
        + SweepStateStore
{
}

/// The work item: "look at this order". It carries no order data; the poster re-fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderMessage {
    pub store_id: StoreId,
    pub order_id: String,
    #[serde(default)]
    pub event_id: Option<String>,
    /// FIFO deduplication id: `store:order:eventId` for webhooks, so Ecwid's repeated
    /// deliveries of one event collapse, while a *new* event for the same order (say the
    /// PAID update after an unpaid fetch) is never swallowed by the 5-minute window. The
    /// ledger, not the queue, is what guarantees one sale per order. Unique for a replay.
    pub dedup_id: String,
    /// Sent by `els backfill`: the order is posted even if it was created before the
    /// connection's go-live moment (the operator asked for exactly these orders).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
}

impl OrderMessage {
    pub fn from_webhook(
        store_id: StoreId,
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
            backfill: false,
        }
    }

    /// Found by the order sweep in the window that ends at `window_end` (Unix seconds):
    /// one run's copies collapse in the queue, the ledger settles the rest.
    pub fn sweep(key: &OrderKey, window_end: i64) -> Self {
        Self {
            dedup_id: format!("{}:{}:sweep:{window_end}", key.store_id, key.order_id),
            store_id: key.store_id,
            order_id: key.order_id.clone(),
            event_id: None,
            backfill: false,
        }
    }

    /// Asked for by `els backfill` (run `nonce`): posted whatever its creation date.
    pub fn backfill(key: &OrderKey, nonce: &str) -> Self {
        Self {
            dedup_id: format!("{}:{}:backfill:{nonce}", key.store_id, key.order_id),
            store_id: key.store_id,
            order_id: key.order_id.clone(),
            event_id: None,
            backfill: true,
        }
    }

    /// A replay requested by an operator; `nonce` makes its dedup id unique.
    pub fn replay(key: &OrderKey, nonce: &str) -> Self {
        Self {
            dedup_id: format!("{}:{}:replay:{nonce}", key.store_id, key.order_id),
            store_id: key.store_id,
            order_id: key.order_id.clone(),
            event_id: None,
            backfill: false,
        }
    }

    /// Queued before a delivery of this message reopens the order's SKIPPED ledger entry
    /// (version `skipped_version`): the skip was acknowledged, so this message may already be
    /// gone from the queue (a late delivery of it, its visibility run out, while another
    /// delivery skipped the order and deleted it). The follow-up brings the order back
    /// whatever the reopening attempt ends in, a retry or a crash; one per reopened version.
    pub fn reopened(&self, skipped_version: u64) -> Self {
        Self {
            dedup_id: format!(
                "{}:{}:reopen:{skipped_version}",
                self.store_id, self.order_id
            ),
            store_id: self.store_id,
            order_id: self.order_id.clone(),
            event_id: None,
            backfill: self.backfill,
        }
    }

    pub fn key(&self) -> OrderKey {
        OrderKey::new(self.store_id, self.order_id.clone())
    }

    /// The FIFO message group, `{store}:{order}`: one order's messages are worked in order,
    /// one at a time (a refund never overtakes its own sale), while a store's orders post in
    /// parallel (one order waiting out a back-off does not hold back the next). Exactly once
    /// never rested on the group: the ledger's conditional claim and lease, the deterministic
    /// invoice number and the search before posting again hold whatever runs in parallel,
    /// and a new customer is created under its own claim; a late delivery that reopens a
    /// skipped order queues a follow-up first ([`OrderMessage::reopened`]), so no QUEUED
    /// order is left without a message. (A queue may rewrite a group id it cannot carry,
    /// keeping one group per value: see `SqsQueue`.)
    pub fn group_id(&self) -> String {
        format!("{}:{}", self.store_id, self.order_id)
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
    /// `GET /orders?paymentStatus=&updatedFrom=&updatedTo=&createdFrom=&createdTo=&offset=&limit=`:
    /// one page of an order search (the sweep, the backfill).
    fn search_orders(
        &self,
        connection: &Connection,
        query: &OrderQuery,
    ) -> impl Future<Output = Result<OrderSearchPage, ApiError>> + Send;

    // --- Catalog and stock (the inventory mirror) ------------------------------------------

    /// `GET /products?sku=`: the products whose SKU or a combination's SKU may equal `sku`
    /// (the caller re-checks and picks the combination).
    fn find_products_by_sku(
        &self,
        connection: &Connection,
        sku: &Sku,
    ) -> impl Future<Output = Result<Vec<EcwidCatalogProduct>, ApiError>> + Send;
    /// `GET /products?offset=&limit=`: one page of the catalog, combinations included.
    fn list_products(
        &self,
        connection: &Connection,
        offset: u64,
        limit: u64,
    ) -> impl Future<Output = Result<EcwidProductPage, ApiError>> + Send;
    /// `PUT /products/{id}` or `PUT /products/{id}/combinations/{cid}` with the level's
    /// body. Idempotent: it sets an absolute level.
    fn set_stock(
        &self,
        connection: &Connection,
        target: &EcwidTarget,
        level: StockLevel,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// `POST /batch?stopOnFirstFailure=false&deduplicationKey=...` with one sub-request per
    /// write (up to 500), each as [`EcwidApi::set_stock`] would send it, the sub-request of
    /// `writes[i]` with id `i`; returns the ticket. A repeated key returns the first batch's
    /// ticket.
    fn submit_batch(
        &self,
        connection: &Connection,
        deduplication_key: &str,
        writes: &[(EcwidTarget, StockLevel)],
    ) -> impl Future<Output = Result<String, ApiError>> + Send;
    /// `GET /batch?ticket=...`.
    fn batch_status(
        &self,
        connection: &Connection,
        ticket: &str,
    ) -> impl Future<Output = Result<BatchStatus, ApiError>> + Send;
}

/// Lightspeed X-Series, as far as posting sales needs it.
pub trait LightspeedApi: Send + Sync {
    /// The API generation spoken to `connection`, when the client has generations. Feed
    /// versions (the inventory cursor) are read on one generation; after a switch the mirror
    /// reads its feeds from the start once rather than trust the other's numbering.
    fn generation_for(&self, _connection: &Connection) -> Option<crate::lightspeed::LsApiVersion> {
        None
    }
    /// `POST /api/register_sales` (legacy) or `POST /api/<version>/sales`. Not idempotent: a
    /// repeat may create a second sale (legacy does; on the dated API it is undocumented).
    fn post_sale(
        &self,
        connection: &Connection,
        sale: &SaleDraft,
    ) -> impl Future<Output = Result<PostedSale, ApiError>> + Send;
    /// Our sales for an invoice number: on the dated API first `GET /sales/{our id}`, then
    /// (both generations) `GET .../search?type=sales&invoice_number=...`, re-checked.
    fn find_sales_by_invoice(
        &self,
        connection: &Connection,
        invoice_number: &str,
    ) -> impl Future<Output = Result<Vec<PostedSale>, ApiError>> + Send;
    /// One sale (or return) by id: `GET /api/2.0/sales/{id}` (legacy) or
    /// `GET /api/<version>/sales/{id}`; `None` when Lightspeed has no such sale.
    fn get_sale(
        &self,
        connection: &Connection,
        sale_id: &str,
    ) -> impl Future<Output = Result<Option<LsSale>, ApiError>> + Send;
    /// Starts a referenced return of the closed sale `sale_id`
    /// (`PUT /api/2.0/sales/{id}/actions/return` legacy, `POST /api/<version>/sales/{id}/actions/return`):
    /// the new SAVED return sale, with `return_for` and the original's lines negated. Not
    /// idempotent: each call starts another return (the dated API voids the other parked ones).
    fn start_return(
        &self,
        connection: &Connection,
        sale_id: &str,
    ) -> impl Future<Output = Result<LsSale, ApiError>> + Send;
    /// Completes the started return `return_id` with `sale` (negative line quantities,
    /// negative payments, status CLOSED, `return_for` set): legacy `POST /api/register_sales`
    /// with the return's `id`, dated `PUT /api/<version>/sales/{id}`. Repeating it updates
    /// the same sale (or is refused once it is closed); it never creates another sale.
    fn complete_return(
        &self,
        connection: &Connection,
        return_id: &str,
        sale: &SaleDraft,
    ) -> impl Future<Output = Result<PostedSale, ApiError>> + Send;
    /// Every product row whose SKU may equal `sku` (the caller re-checks).
    fn find_products_by_sku(
        &self,
        connection: &Connection,
        sku: &Sku,
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

    // --- Reading stock (the inventory mirror). There is deliberately no call that writes
    // --- Lightspeed stock: levels flow from Lightspeed to Ecwid only (S2).

    /// `GET /api/2.0/inventory?after=&page_size=`: inventory records of every outlet whose
    /// `version` is above `after`, in version order.
    fn inventory_changes(
        &self,
        connection: &Connection,
        after: u64,
        page_size: usize,
    ) -> impl Future<Output = Result<FeedPage<InventoryRecord>, ApiError>> + Send;
    /// `GET /api/2.0/products?after=&page_size=&deleted=true`: product rows (deleted ones
    /// included) whose `version` is above `after`, in version order.
    fn product_changes(
        &self,
        connection: &Connection,
        after: u64,
        page_size: usize,
    ) -> impl Future<Output = Result<FeedPage<LsProduct>, ApiError>> + Send;
    /// `GET /api/2.0/products/{id}`; `None` when Lightspeed has no such product.
    fn get_product(
        &self,
        connection: &Connection,
        product_id: &str,
    ) -> impl Future<Output = Result<Option<LsProduct>, ApiError>> + Send;
    /// `GET /api/2.0/products/{id}/inventory`: the product's records at every outlet.
    fn product_inventory(
        &self,
        connection: &Connection,
        product_id: &str,
    ) -> impl Future<Output = Result<Vec<InventoryRecord>, ApiError>> + Send;
}

/// Time, as a port so tests can move it. The adapters' clock is `els_http::TokioClock`
/// (system time, tokio's timer); the services' tests use a clock that moves only when told.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// Waits `duration` (a rate-limit pause, a retry's backoff, batch polling, a token
    /// refresh waiter). Dropping the future cancels the wait.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(store_id: StoreId, fingerprint: &str) -> WebhookEventRecord {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        WebhookEventRecord {
            event_id: "ev-1".into(),
            store_id,
            fingerprint: fingerprint.into(),
            recorded_at: at,
            expires_at: at + chrono::Duration::days(30),
        }
    }

    #[test]
    fn a_recorded_event_is_a_redelivery_with_the_same_fingerprint_else_altered() {
        let delivery = record(StoreId::literal(1003), "order.updated:K1:PAID");
        assert_eq!(
            EventDelivery::of(&delivery, EventRecordOutcome::Inserted),
            EventDelivery::First
        );
        assert_eq!(
            EventDelivery::of(
                &delivery,
                EventRecordOutcome::Existing(record(
                    StoreId::literal(1003),
                    "order.updated:K1:PAID"
                ))
            ),
            EventDelivery::Redelivery
        );
        // The unsigned store id does not make a delivery new or altered; the content does.
        assert_eq!(
            EventDelivery::of(
                &delivery,
                EventRecordOutcome::Existing(record(
                    StoreId::literal(2002),
                    "order.updated:K1:PAID"
                ))
            ),
            EventDelivery::Redelivery
        );
        let first = record(StoreId::literal(1003), "order.updated:K2:PAID");
        assert_eq!(
            EventDelivery::of(&delivery, EventRecordOutcome::Existing(first.clone())),
            EventDelivery::Altered(first)
        );
    }
}
