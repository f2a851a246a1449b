//! The state ports ([`els_core::StateStore`]) on SQLite: connections, the order ledger, product and customer links, and
//! the inventory mirror's cursor, catalog links and pushed stock, and the webhook event ids
//! ingest has seen.

use crate::{Failure, SqliteStore, store_int, to_sql_int};
use els_core::customers::CustomerLink;
use els_core::inventory::{
    CatalogLink, CatalogLinkUpdate, InventoryCursor, PendingWebSale, PushedStock,
};
use els_core::ledger::{LedgerEntry, OrderKey, OrderState};
use els_core::ports::{
    ConnectionStore, EventRecordOutcome, InventoryStateStore, LedgerStore, LinkStore, ProductLink,
    SweepStateStore, WebhookEventRecord, WebhookEventStore,
};
use els_core::sweep::SweepCursor;
use els_core::{Connection, Sku, StoreError, StoreId};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

fn encode<T: Serialize>(item: &T, key: &str) -> Result<String, Failure> {
    serde_json::to_string(item).map_err(|e| Failure::Corrupt {
        key: key.to_owned(),
        detail: format!("cannot encode: {e}"),
    })
}

fn decode<T: DeserializeOwned>(json: &str, key: &str) -> Result<T, Failure> {
    serde_json::from_str(json).map_err(|e| Failure::Corrupt {
        key: key.to_owned(),
        detail: e.to_string(),
    })
}

fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String)> {
    Ok((r.get(0)?, r.get(1)?))
}

fn connection_key(store_id: StoreId) -> String {
    format!("STORE#{store_id}/CONNECTION")
}

fn order_key(key: &OrderKey) -> String {
    format!("STORE#{}/ORDER#{}", key.store_id, key.order_id)
}

fn sku_key(store_id: StoreId, sku: &str) -> String {
    format!("STORE#{store_id}/SKU#{sku}")
}

fn cursor_key(store_id: StoreId) -> String {
    format!("STORE#{store_id}/CURSOR#inventory")
}

fn sweep_key(store_id: StoreId) -> String {
    format!("STORE#{store_id}/CURSOR#sweep")
}

const CATALOG_LINKS_BY_ID: &str =
    "SELECT item FROM catalog_links WHERE store_id = ?1 AND ls_product_id = ?2";
const PUSHED_STOCK_BY_ID: &str =
    "SELECT item FROM pushed_stock WHERE store_id = ?1 AND ls_product_id = ?2";

impl SqliteStore {
    /// The items of one per-Lightspeed-product table (`select` takes store id and product id)
    /// for the given ids, each id read once whatever the caller passed.
    async fn items_by_ls_product_id<T: DeserializeOwned + Send + 'static>(
        &self,
        select: &'static str,
        store_id: StoreId,
        lightspeed_product_ids: &[String],
        key: fn(StoreId, &str) -> String,
    ) -> Result<Vec<T>, Failure> {
        let ids: std::collections::BTreeSet<String> =
            lightspeed_product_ids.iter().cloned().collect();
        self.run(move |conn, _| {
            let mut stmt = conn.prepare_cached(select)?;
            let mut out = Vec::new();
            for id in &ids {
                let json: Option<String> = stmt
                    .query_row(params![store_int(store_id), id], |r| r.get(0))
                    .optional()?;
                if let Some(j) = json {
                    out.push(decode(&j, &key(store_id, id))?);
                }
            }
            Ok(out)
        })
        .await
    }
}

fn link_key(store_id: StoreId, ls_product_id: &str) -> String {
    format!("STORE#{store_id}/LSPRODUCT#{ls_product_id}")
}

fn stock_key(store_id: StoreId, ls_product_id: &str) -> String {
    format!("STORE#{store_id}/STOCK#{ls_product_id}")
}

/// The label of a customer link in errors: the email is masked, errors reach log lines.
fn email_key(store_id: StoreId, email: &str) -> String {
    format!(
        "STORE#{store_id}/EMAIL#{}",
        els_core::mask::mask_email(email)
    )
}

/// Insert when `expected` is None (the row must not exist), otherwise update the row whose
/// version equals `expected`. Zero rows changed is a lost race.
fn conditional_write(
    conn: &rusqlite::Connection,
    insert_sql: &str,
    update_sql: &str,
    params: &[&dyn rusqlite::ToSql],
    expected: Option<u64>,
    what: &str,
) -> Result<(), Failure> {
    let changed = match expected {
        None => conn.prepare_cached(insert_sql)?.execute(params)?,
        Some(v) => {
            let mut all: Vec<&dyn rusqlite::ToSql> = params.to_vec();
            let v = to_sql_int(v);
            all.push(&v);
            conn.prepare_cached(update_sql)?.execute(all.as_slice())?
        }
    };
    if changed == 1 {
        Ok(())
    } else {
        Err(Failure::Conflict(match expected {
            None => format!("{what} already exists"),
            Some(v) => format!("{what} is no longer at version {v}"),
        }))
    }
}

impl ConnectionStore for SqliteStore {
    async fn get_connection(&self, store_id: StoreId) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached("SELECT item FROM connections WHERE store_id = ?1")?
                    .query_row([store_int(store_id)], |r| r.get(0))
                    .optional()?;
                json.map(|j| decode(&j, &connection_key(store_id)))
                    .transpose()
            })
            .await?)
    }

    async fn put_connection(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let store_id = connection.store_id;
        let version = connection.version;
        let key = connection_key(store_id);
        let json = encode(connection, &key)?;
        Ok(self
            .run(move |conn, _| {
                conditional_write(
                    conn,
                    "INSERT INTO connections (store_id, version, item) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store_id) DO NOTHING",
                    "UPDATE connections SET version = ?2, item = ?3
                     WHERE store_id = ?1 AND version = ?4",
                    &[&store_int(store_id), &to_sql_int(version), &json],
                    expected_version,
                    &key,
                )
            })
            .await?)
    }

    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        Ok(self
            .run(|conn, _| {
                let mut stmt = conn
                    .prepare_cached("SELECT store_id, item FROM connections ORDER BY store_id")?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
                let mut out = Vec::new();
                for row in rows {
                    let (store_id, json) = row?;
                    out.push(decode(&json, &format!("STORE#{store_id}/CONNECTION"))?);
                }
                Ok(out)
            })
            .await?)
    }
}

impl LedgerStore for SqliteStore {
    async fn load_order(&self, key: &OrderKey) -> Result<Option<LedgerEntry>, StoreError> {
        let key = key.clone();
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached(
                        "SELECT item FROM orders WHERE store_id = ?1 AND order_id = ?2",
                    )?
                    .query_row(params![store_int(key.store_id), key.order_id], |r| r.get(0))
                    .optional()?;
                json.map(|j| decode(&j, &order_key(&key))).transpose()
            })
            .await?)
    }

    async fn save_order(
        &self,
        entry: &LedgerEntry,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let key = entry.key.clone();
        let label = order_key(&key);
        let json = encode(entry, &label)?;
        let state = entry.state.as_str();
        let created_at = entry.created_at.timestamp_micros();
        let version = entry.version;
        Ok(self
            .run(move |conn, _| {
                conditional_write(
                    conn,
                    "INSERT INTO orders (store_id, order_id, state, created_at, version, item)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (store_id, order_id) DO NOTHING",
                    "UPDATE orders SET state = ?3, created_at = ?4, version = ?5, item = ?6
                     WHERE store_id = ?1 AND order_id = ?2 AND version = ?7",
                    &[
                        &store_int(key.store_id),
                        &key.order_id,
                        &state,
                        &created_at,
                        &to_sql_int(version),
                        &json,
                    ],
                    expected_version,
                    &label,
                )
            })
            .await?)
    }

    async fn list_orders(
        &self,
        store_id: StoreId,
        state: Option<OrderState>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .run(move |conn, _| {
                // One statement per case, so that each walks its index in created_at order.
                let mut stmt;
                let rows = match state {
                    Some(state) => {
                        stmt = conn.prepare_cached(
                            "SELECT order_id, item FROM orders WHERE store_id = ?1 AND state = ?2
                             ORDER BY created_at, order_id LIMIT ?3",
                        )?;
                        stmt.query_map(
                            params![store_int(store_id), state.as_str(), limit],
                            order_row,
                        )?
                    }
                    None => {
                        stmt = conn.prepare_cached(
                            "SELECT order_id, item FROM orders WHERE store_id = ?1
                             ORDER BY created_at, order_id LIMIT ?2",
                        )?;
                        stmt.query_map(params![store_int(store_id), limit], order_row)?
                    }
                };
                let mut out = Vec::new();
                for row in rows {
                    let (order_id, json) = row?;
                    out.push(decode(
                        &json,
                        &order_key(&OrderKey::new(store_id, order_id)),
                    )?);
                }
                Ok(out)
            })
            .await?)
    }

    /// Walks the `orders_by_state` index over the states that can hold web quantities.
    async fn list_pending_web_sales(
        &self,
        store_id: StoreId,
    ) -> Result<Vec<PendingWebSale>, StoreError> {
        Ok(self
            .run(move |conn, _| {
                let mut stmt = conn.prepare_cached(
                    "SELECT order_id, item FROM orders INDEXED BY orders_by_state
                     WHERE store_id = ?1 AND state IN ('QUEUED', 'POSTING', 'PARKED')",
                )?;
                let rows = stmt.query_map([store_int(store_id)], order_row)?;
                let mut out = Vec::new();
                for row in rows {
                    let (order_id, json) = row?;
                    let entry: LedgerEntry =
                        decode(&json, &order_key(&OrderKey::new(store_id, order_id)))?;
                    if entry.is_pending_web_sale() {
                        out.push(PendingWebSale::of(&entry));
                    }
                }
                out.sort_by(|a, b| a.order_id.cmp(&b.order_id));
                Ok(out)
            })
            .await?)
    }
}

impl LinkStore for SqliteStore {
    async fn get_product_link(
        &self,
        store_id: StoreId,
        sku: &Sku,
    ) -> Result<Option<ProductLink>, StoreError> {
        let sku = sku.as_str().to_owned();
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached(
                        "SELECT item FROM product_links WHERE store_id = ?1 AND sku = ?2",
                    )?
                    .query_row(params![store_int(store_id), sku], |r| r.get(0))
                    .optional()?;
                json.map(|j| decode(&j, &sku_key(store_id, &sku)))
                    .transpose()
            })
            .await?)
    }

    async fn put_product_link(
        &self,
        store_id: StoreId,
        link: &ProductLink,
    ) -> Result<(), StoreError> {
        let sku = link.sku.as_str().to_owned();
        let json = encode(link, &sku_key(store_id, &sku))?;
        Ok(self
            .run(move |conn, _| {
                conn.prepare_cached(
                    "INSERT INTO product_links (store_id, sku, item) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store_id, sku) DO UPDATE SET item = excluded.item",
                )?
                .execute(params![store_int(store_id), sku, json])?;
                Ok(())
            })
            .await?)
    }

    async fn get_customer_link(
        &self,
        store_id: StoreId,
        email: &str,
    ) -> Result<Option<CustomerLink>, StoreError> {
        let email = email.to_owned();
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached(
                        "SELECT item FROM customer_links WHERE store_id = ?1 AND email = ?2",
                    )?
                    .query_row(params![store_int(store_id), email], |r| r.get(0))
                    .optional()?;
                json.map(|j| decode(&j, &email_key(store_id, &email)))
                    .transpose()
            })
            .await?)
    }

    async fn put_customer_link(
        &self,
        link: &CustomerLink,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let store_id = link.store_id;
        let email = link.email.clone();
        let version = link.version;
        let label = email_key(store_id, &email);
        let json = encode(link, &label)?;
        Ok(self
            .run(move |conn, _| {
                conditional_write(
                    conn,
                    "INSERT INTO customer_links (store_id, email, version, item)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (store_id, email) DO NOTHING",
                    "UPDATE customer_links SET version = ?3, item = ?4
                     WHERE store_id = ?1 AND email = ?2 AND version = ?5",
                    &[&store_int(store_id), &email, &to_sql_int(version), &json],
                    expected_version,
                    &label,
                )
            })
            .await?)
    }
}

impl SweepStateStore for SqliteStore {
    async fn get_sweep_cursor(&self, store_id: StoreId) -> Result<Option<SweepCursor>, StoreError> {
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached("SELECT item FROM sweep_cursors WHERE store_id = ?1")?
                    .query_row([store_int(store_id)], |r| r.get(0))
                    .optional()?;
                json.map(|j| decode(&j, &sweep_key(store_id))).transpose()
            })
            .await?)
    }

    async fn put_sweep_cursor(
        &self,
        cursor: &SweepCursor,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let store_id = cursor.store_id;
        let version = cursor.version;
        let key = sweep_key(store_id);
        let json = encode(cursor, &key)?;
        Ok(self
            .run(move |conn, _| {
                conditional_write(
                    conn,
                    "INSERT INTO sweep_cursors (store_id, version, item) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store_id) DO NOTHING",
                    "UPDATE sweep_cursors SET version = ?2, item = ?3
                     WHERE store_id = ?1 AND version = ?4",
                    &[&store_int(store_id), &to_sql_int(version), &json],
                    expected_version,
                    &key,
                )
            })
            .await?)
    }
}

impl InventoryStateStore for SqliteStore {
    async fn get_inventory_cursor(
        &self,
        store_id: StoreId,
    ) -> Result<Option<InventoryCursor>, StoreError> {
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached("SELECT item FROM inventory_cursors WHERE store_id = ?1")?
                    .query_row([store_int(store_id)], |r| r.get(0))
                    .optional()?;
                json.map(|j| decode(&j, &cursor_key(store_id))).transpose()
            })
            .await?)
    }

    async fn put_inventory_cursor(
        &self,
        cursor: &InventoryCursor,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let store_id = cursor.store_id;
        let version = cursor.version;
        let key = cursor_key(store_id);
        let json = encode(cursor, &key)?;
        Ok(self
            .run(move |conn, _| {
                conditional_write(
                    conn,
                    "INSERT INTO inventory_cursors (store_id, version, item) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store_id) DO NOTHING",
                    "UPDATE inventory_cursors SET version = ?2, item = ?3
                     WHERE store_id = ?1 AND version = ?4",
                    &[&store_int(store_id), &to_sql_int(version), &json],
                    expected_version,
                    &key,
                )
            })
            .await?)
    }

    async fn get_catalog_links(
        &self,
        store_id: StoreId,
        lightspeed_product_ids: &[String],
    ) -> Result<Vec<CatalogLink>, StoreError> {
        Ok(self
            .items_by_ls_product_id(
                CATALOG_LINKS_BY_ID,
                store_id,
                lightspeed_product_ids,
                link_key,
            )
            .await?)
    }

    async fn put_catalog_links(
        &self,
        store_id: StoreId,
        updates: &[CatalogLinkUpdate],
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(updates.len());
        for u in updates {
            let l = &u.link;
            let json = encode(l, &link_key(store_id, &l.lightspeed_product_id))?;
            rows.push((
                l.lightspeed_product_id.clone(),
                l.sku_key.clone(),
                l.live,
                json,
            ));
        }
        Ok(self
            .run(move |conn, _| {
                let tx = conn.transaction()?;
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT INTO catalog_links (store_id, ls_product_id, sku_key, live, item)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (store_id, ls_product_id) DO UPDATE SET
                           sku_key = excluded.sku_key, live = excluded.live, item = excluded.item",
                    )?;
                    for (id, key, live, json) in &rows {
                        stmt.execute(params![store_int(store_id), id, key, *live as i64, json])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn list_catalog_links(&self, store_id: StoreId) -> Result<Vec<CatalogLink>, StoreError> {
        Ok(self
            .run(move |conn, _| {
                let mut stmt = conn.prepare_cached(
                    "SELECT ls_product_id, item FROM catalog_links WHERE store_id = ?1
                     ORDER BY ls_product_id",
                )?;
                let rows = stmt.query_map([store_int(store_id)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, json) = row?;
                    out.push(decode(&json, &link_key(store_id, &id))?);
                }
                Ok(out)
            })
            .await?)
    }

    async fn lightspeed_products_with_sku(
        &self,
        store_id: StoreId,
        sku_keys: &[String],
    ) -> Result<HashMap<String, Vec<String>>, StoreError> {
        let keys = sku_keys.to_vec();
        Ok(self
            .run(move |conn, _| {
                let mut stmt = conn.prepare_cached(
                    "SELECT ls_product_id FROM catalog_links
                     WHERE store_id = ?1 AND sku_key = ?2 AND live = 1 ORDER BY ls_product_id",
                )?;
                let mut out = HashMap::new();
                for key in keys.iter().filter(|k| !k.is_empty()) {
                    let ids = stmt
                        .query_map(params![store_int(store_id), key], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()?;
                    if !ids.is_empty() {
                        out.insert(key.clone(), ids);
                    }
                }
                Ok(out)
            })
            .await?)
    }

    async fn get_pushed_stock(
        &self,
        store_id: StoreId,
        lightspeed_product_ids: &[String],
    ) -> Result<Vec<PushedStock>, StoreError> {
        Ok(self
            .items_by_ls_product_id(
                PUSHED_STOCK_BY_ID,
                store_id,
                lightspeed_product_ids,
                stock_key,
            )
            .await?)
    }

    async fn put_pushed_stock(
        &self,
        store_id: StoreId,
        items: &[PushedStock],
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(items.len());
        for p in items {
            let json = encode(p, &stock_key(store_id, &p.lightspeed_product_id))?;
            rows.push((p.lightspeed_product_id.clone(), json));
        }
        Ok(self
            .run(move |conn, _| {
                let tx = conn.transaction()?;
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT INTO pushed_stock (store_id, ls_product_id, item) VALUES (?1, ?2, ?3)
                         ON CONFLICT (store_id, ls_product_id) DO UPDATE SET item = excluded.item",
                    )?;
                    for (id, json) in &rows {
                        stmt.execute(params![store_int(store_id), id, json])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
            .await?)
    }
}

impl WebhookEventStore for SqliteStore {
    /// One transaction: a bounded sweep of expired records (so the table stays small
    /// without a separate job), then the insert unless a live record has the event id.
    async fn record_webhook_event(
        &self,
        record: &WebhookEventRecord,
    ) -> Result<EventRecordOutcome, StoreError> {
        let key = format!("EVENT#{}", record.event_id);
        let json = encode(record, &key)?;
        let event_id = record.event_id.clone();
        let now = record.recorded_at.timestamp_micros();
        let expires_at = record.expires_at.timestamp_micros();
        Ok(self
            .run(move |conn, _| {
                let tx = conn.transaction()?;
                tx.prepare_cached(
                    "DELETE FROM webhook_events WHERE event_id IN
                     (SELECT event_id FROM webhook_events WHERE expires_at <= ?1 LIMIT 100)",
                )?
                .execute([now])?;
                let stored: Option<String> = tx
                    .prepare_cached(
                        "SELECT item FROM webhook_events WHERE event_id = ?1 AND expires_at > ?2",
                    )?
                    .query_row(params![event_id, now], |r| r.get(0))
                    .optional()?;
                let outcome = match stored {
                    Some(j) => EventRecordOutcome::Existing(decode(&j, &key)?),
                    None => {
                        // An expired record the sweep did not reach is replaced.
                        tx.prepare_cached(
                            "INSERT INTO webhook_events (event_id, expires_at, item)
                             VALUES (?1, ?2, ?3)
                             ON CONFLICT (event_id) DO UPDATE
                             SET expires_at = excluded.expires_at, item = excluded.item",
                        )?
                        .execute(params![event_id, expires_at, json])?;
                        EventRecordOutcome::Inserted
                    }
                };
                tx.commit()?;
                Ok(outcome)
            })
            .await?)
    }
}
