//! [`StateStore`] on SQLite: connections, the order ledger, product and customer links.

use crate::{Failure, SqliteStore, to_sql_int};
use els_core::customers::CustomerLink;
use els_core::ledger::{LedgerEntry, OrderKey, OrderState};
use els_core::ports::{ProductLink, StateStore};
use els_core::{Connection, StoreError};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

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

fn connection_key(store_id: u64) -> String {
    format!("STORE#{store_id}/CONNECTION")
}

fn order_key(key: &OrderKey) -> String {
    format!("STORE#{}/ORDER#{}", key.store_id, key.order_id)
}

fn sku_key(store_id: u64, sku: &str) -> String {
    format!("STORE#{store_id}/SKU#{sku}")
}

/// The label of a customer link in errors: the email is masked, errors reach log lines.
fn email_key(store_id: u64, email: &str) -> String {
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

impl StateStore for SqliteStore {
    async fn get_connection(&self, store_id: u64) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached("SELECT item FROM connections WHERE store_id = ?1")?
                    .query_row([to_sql_int(store_id)], |r| r.get(0))
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
                    &[&to_sql_int(store_id), &to_sql_int(version), &json],
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
                    out.push(decode(&json, &connection_key(store_id as u64))?);
                }
                Ok(out)
            })
            .await?)
    }

    async fn load_order(&self, key: &OrderKey) -> Result<Option<LedgerEntry>, StoreError> {
        let key = key.clone();
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached(
                        "SELECT item FROM orders WHERE store_id = ?1 AND order_id = ?2",
                    )?
                    .query_row(params![to_sql_int(key.store_id), key.order_id], |r| {
                        r.get(0)
                    })
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
                        &to_sql_int(key.store_id),
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
        store_id: u64,
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
                            params![to_sql_int(store_id), state.as_str(), limit],
                            order_row,
                        )?
                    }
                    None => {
                        stmt = conn.prepare_cached(
                            "SELECT order_id, item FROM orders WHERE store_id = ?1
                             ORDER BY created_at, order_id LIMIT ?2",
                        )?;
                        stmt.query_map(params![to_sql_int(store_id), limit], order_row)?
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

    async fn get_product_link(
        &self,
        store_id: u64,
        sku: &str,
    ) -> Result<Option<ProductLink>, StoreError> {
        let sku = sku.to_owned();
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached(
                        "SELECT item FROM product_links WHERE store_id = ?1 AND sku = ?2",
                    )?
                    .query_row(params![to_sql_int(store_id), sku], |r| r.get(0))
                    .optional()?;
                json.map(|j| decode(&j, &sku_key(store_id, &sku)))
                    .transpose()
            })
            .await?)
    }

    async fn put_product_link(&self, store_id: u64, link: &ProductLink) -> Result<(), StoreError> {
        let sku = link.sku.clone();
        let json = encode(link, &sku_key(store_id, &sku))?;
        Ok(self
            .run(move |conn, _| {
                conn.prepare_cached(
                    "INSERT INTO product_links (store_id, sku, item) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store_id, sku) DO UPDATE SET item = excluded.item",
                )?
                .execute(params![to_sql_int(store_id), sku, json])?;
                Ok(())
            })
            .await?)
    }

    async fn get_customer_link(
        &self,
        store_id: u64,
        email: &str,
    ) -> Result<Option<CustomerLink>, StoreError> {
        let email = email.to_owned();
        Ok(self
            .run(move |conn, _| {
                let json: Option<String> = conn
                    .prepare_cached(
                        "SELECT item FROM customer_links WHERE store_id = ?1 AND email = ?2",
                    )?
                    .query_row(params![to_sql_int(store_id), email], |r| r.get(0))
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
                    &[&to_sql_int(store_id), &email, &to_sql_int(version), &json],
                    expected_version,
                    &label,
                )
            })
            .await?)
    }
}
