//! Every state port in memory: the adapter for unit tests of the services and for trying
//! things out, beside the SQLite and DynamoDB ones. It meets the same contract
//! (`tests/src/contract.rs`): conditional writes on `version`, the SKU index of live catalog
//! links, pending web sales, webhook event records with their expiry. Built with the
//! `memory` feature (and always in this crate's tests).
//!
//! Clones share one state, like clones of the other adapters share one database.

use crate::connection::Connection;
use crate::customers::CustomerLink;
use crate::error::StoreError;
use crate::ids::{Sku, StoreId};
use crate::inventory::{
    CatalogLink, CatalogLinkUpdate, InventoryCursor, PendingWebSale, PushedStock,
};
use crate::ledger::{LedgerEntry, OrderKey, OrderState};
use crate::ports::{
    ConnectionStore, EventRecordOutcome, InventoryStateStore, LedgerStore, LinkStore, ProductLink,
    SweepStateStore, WebhookEventRecord, WebhookEventStore,
};
use crate::sweep::SweepCursor;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// The state ports in memory. See the module doc.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

/// Items keyed like the other adapters' rows: by store id first.
#[derive(Debug, Default)]
struct State {
    /// Writes that fail with [`StoreError::Unavailable`] before the next one succeeds.
    failing_writes: usize,
    connections: BTreeMap<StoreId, Connection>,
    orders: BTreeMap<(StoreId, String), LedgerEntry>,
    product_links: BTreeMap<(StoreId, String), ProductLink>,
    customer_links: BTreeMap<(StoreId, String), CustomerLink>,
    cursors: BTreeMap<StoreId, InventoryCursor>,
    catalog_links: BTreeMap<(StoreId, String), CatalogLink>,
    pushed_stock: BTreeMap<(StoreId, String), PushedStock>,
    webhook_events: BTreeMap<String, WebhookEventRecord>,
    sweep_cursors: BTreeMap<StoreId, SweepCursor>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `writes` writes (puts, saves, records) fail with
    /// [`StoreError::Unavailable`], as a throttled backend would; reads still succeed. For
    /// tests of what the services do when a write fails.
    pub fn fail_next_writes(&self, writes: usize) {
        self.guard().failing_writes = writes;
    }

    /// Every webhook event record, by event id (what the port does not read back).
    pub fn webhook_events(&self) -> Vec<WebhookEventRecord> {
        self.guard().webhook_events.values().cloned().collect()
    }

    fn guard(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock left whole items: the state is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state for a write, or the injected failure.
    fn state_to_write(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let mut state = self.guard();
        if state.failing_writes > 0 {
            state.failing_writes -= 1;
            return Err(StoreError::Unavailable("injected write failure".into()));
        }
        Ok(state)
    }
}

/// Writes `item` under `key` if the stored item's version equals `expected` (None: no item
/// may exist). Anything else is a lost race.
fn conditional_put<K: Ord, V>(
    items: &mut BTreeMap<K, V>,
    key: K,
    item: V,
    version: impl Fn(&V) -> u64,
    expected: Option<u64>,
    what: &str,
) -> Result<(), StoreError> {
    match (items.get(&key).map(version), expected) {
        (None, None) => {}
        (Some(stored), Some(expected)) if stored == expected => {}
        (Some(_), None) => return Err(StoreError::Conflict(format!("{what} already exists"))),
        (_, Some(expected)) => {
            return Err(StoreError::Conflict(format!(
                "{what} is no longer at version {expected}"
            )));
        }
    }
    items.insert(key, item);
    Ok(())
}

/// The items of these Lightspeed products (each id once, whatever the caller passed).
fn by_ls_product_id<T: Clone>(
    items: &BTreeMap<(StoreId, String), T>,
    store_id: StoreId,
    ids: &[String],
) -> Vec<T> {
    let ids: BTreeSet<&String> = ids.iter().collect();
    ids.into_iter()
        .filter_map(|id| items.get(&(store_id, id.clone())).cloned())
        .collect()
}

impl ConnectionStore for MemoryStore {
    async fn get_connection(&self, store_id: StoreId) -> Result<Option<Connection>, StoreError> {
        Ok(self.guard().connections.get(&store_id).cloned())
    }

    async fn put_connection(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        conditional_put(
            &mut self.state_to_write()?.connections,
            connection.store_id,
            connection.clone(),
            |c| c.version,
            expected_version,
            &format!("connection of store {}", connection.store_id),
        )
    }

    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        Ok(self.guard().connections.values().cloned().collect())
    }
}

impl LedgerStore for MemoryStore {
    async fn load_order(&self, key: &OrderKey) -> Result<Option<LedgerEntry>, StoreError> {
        let state = self.guard();
        Ok(state
            .orders
            .get(&(key.store_id, key.order_id.clone()))
            .cloned())
    }

    async fn save_order(
        &self,
        entry: &LedgerEntry,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        conditional_put(
            &mut self.state_to_write()?.orders,
            (entry.key.store_id, entry.key.order_id.clone()),
            entry.clone(),
            |e| e.version,
            expected_version,
            &format!("order {}", entry.key),
        )
    }

    async fn list_orders(
        &self,
        store_id: StoreId,
        state: Option<OrderState>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let store = self.guard();
        let mut found: Vec<&LedgerEntry> = store
            .orders
            .range((store_id, String::new())..)
            .take_while(|((s, _), _)| *s == store_id)
            .map(|(_, e)| e)
            .filter(|e| state.is_none_or(|wanted| e.state == wanted))
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.key.order_id).cmp(&(b.created_at, &b.key.order_id)));
        Ok(found.into_iter().take(limit).cloned().collect())
    }

    async fn list_pending_web_sales(
        &self,
        store_id: StoreId,
    ) -> Result<Vec<PendingWebSale>, StoreError> {
        let store = self.guard();
        Ok(store
            .orders
            .range((store_id, String::new())..)
            .take_while(|((s, _), _)| *s == store_id)
            .map(|(_, e)| e)
            .filter(|e| e.is_pending_web_sale())
            .map(PendingWebSale::of)
            .collect())
    }
}

impl LinkStore for MemoryStore {
    async fn get_product_link(
        &self,
        store_id: StoreId,
        sku: &Sku,
    ) -> Result<Option<ProductLink>, StoreError> {
        let state = self.guard();
        Ok(state
            .product_links
            .get(&(store_id, sku.as_str().to_string()))
            .cloned())
    }

    async fn put_product_link(
        &self,
        store_id: StoreId,
        link: &ProductLink,
    ) -> Result<(), StoreError> {
        self.state_to_write()?
            .product_links
            .insert((store_id, link.sku.as_str().to_string()), link.clone());
        Ok(())
    }

    async fn get_customer_link(
        &self,
        store_id: StoreId,
        email: &str,
    ) -> Result<Option<CustomerLink>, StoreError> {
        let state = self.guard();
        Ok(state
            .customer_links
            .get(&(store_id, email.to_string()))
            .cloned())
    }

    async fn put_customer_link(
        &self,
        link: &CustomerLink,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        conditional_put(
            &mut self.state_to_write()?.customer_links,
            (link.store_id, link.email.clone()),
            link.clone(),
            |l| l.version,
            expected_version,
            &format!(
                "customer link of {} in store {}",
                crate::mask::mask_email(&link.email),
                link.store_id
            ),
        )
    }
}

impl SweepStateStore for MemoryStore {
    async fn get_sweep_cursor(&self, store_id: StoreId) -> Result<Option<SweepCursor>, StoreError> {
        Ok(self.guard().sweep_cursors.get(&store_id).cloned())
    }

    async fn put_sweep_cursor(
        &self,
        cursor: &SweepCursor,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        conditional_put(
            &mut self.state_to_write()?.sweep_cursors,
            cursor.store_id,
            cursor.clone(),
            |c| c.version,
            expected_version,
            &format!("sweep cursor of store {}", cursor.store_id),
        )
    }
}

impl InventoryStateStore for MemoryStore {
    async fn get_inventory_cursor(
        &self,
        store_id: StoreId,
    ) -> Result<Option<InventoryCursor>, StoreError> {
        Ok(self.guard().cursors.get(&store_id).cloned())
    }

    async fn put_inventory_cursor(
        &self,
        cursor: &InventoryCursor,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        conditional_put(
            &mut self.state_to_write()?.cursors,
            cursor.store_id,
            cursor.clone(),
            |c| c.version,
            expected_version,
            &format!("inventory cursor of store {}", cursor.store_id),
        )
    }

    async fn get_catalog_links(
        &self,
        store_id: StoreId,
        lightspeed_product_ids: &[String],
    ) -> Result<Vec<CatalogLink>, StoreError> {
        let state = self.guard();
        Ok(by_ls_product_id(
            &state.catalog_links,
            store_id,
            lightspeed_product_ids,
        ))
    }

    /// The SKU index is read from the links themselves, so there is nothing else to keep
    /// in step.
    async fn put_catalog_links(
        &self,
        store_id: StoreId,
        updates: &[CatalogLinkUpdate],
    ) -> Result<(), StoreError> {
        let mut state = self.state_to_write()?;
        for u in updates {
            state.catalog_links.insert(
                (store_id, u.link.lightspeed_product_id.clone()),
                u.link.clone(),
            );
        }
        Ok(())
    }

    async fn list_catalog_links(&self, store_id: StoreId) -> Result<Vec<CatalogLink>, StoreError> {
        let state = self.guard();
        Ok(state
            .catalog_links
            .range((store_id, String::new())..)
            .take_while(|((s, _), _)| *s == store_id)
            .map(|(_, l)| l.clone())
            .collect())
    }

    async fn lightspeed_products_with_sku(
        &self,
        store_id: StoreId,
        sku_keys: &[String],
    ) -> Result<HashMap<String, Vec<String>>, StoreError> {
        let state = self.guard();
        let mut owners: HashMap<String, Vec<String>> = HashMap::new();
        for key in sku_keys.iter().filter(|k| !k.is_empty()) {
            let ids: Vec<String> = state
                .catalog_links
                .range((store_id, String::new())..)
                .take_while(|((s, _), _)| *s == store_id)
                .map(|(_, l)| l)
                .filter(|l| l.live && l.sku_key == *key)
                .map(|l| l.lightspeed_product_id.clone())
                .collect();
            if !ids.is_empty() {
                owners.insert(key.clone(), ids);
            }
        }
        Ok(owners)
    }

    async fn get_pushed_stock(
        &self,
        store_id: StoreId,
        lightspeed_product_ids: &[String],
    ) -> Result<Vec<PushedStock>, StoreError> {
        let state = self.guard();
        Ok(by_ls_product_id(
            &state.pushed_stock,
            store_id,
            lightspeed_product_ids,
        ))
    }

    async fn put_pushed_stock(
        &self,
        store_id: StoreId,
        items: &[PushedStock],
    ) -> Result<(), StoreError> {
        let mut state = self.state_to_write()?;
        for p in items {
            state
                .pushed_stock
                .insert((store_id, p.lightspeed_product_id.clone()), p.clone());
        }
        Ok(())
    }
}

impl WebhookEventStore for MemoryStore {
    async fn record_webhook_event(
        &self,
        record: &WebhookEventRecord,
    ) -> Result<EventRecordOutcome, StoreError> {
        let mut state = self.state_to_write()?;
        match state.webhook_events.get(&record.event_id) {
            Some(first) if first.expires_at > record.recorded_at => {
                Ok(EventRecordOutcome::Existing(first.clone()))
            }
            // Absent, or expired: recorded now.
            _ => {
                state
                    .webhook_events
                    .insert(record.event_id.clone(), record.clone());
                Ok(EventRecordOutcome::Inserted)
            }
        }
    }
}
