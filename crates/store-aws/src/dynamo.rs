//! [`StateStore`] on one DynamoDB table.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | connection | `STORE#{storeId}` | `CONNECTION` |
//! | order ledger | `STORE#{storeId}` | `ORDER#{orderId}` |
//! | product link | `STORE#{storeId}` | `SKU#{sku}` |
//! | customer link | `STORE#{storeId}` | `EMAIL#{normalised email}` |
//!
//! Items are the serde_dynamo rendering of the core types (native attributes, so an
//! operator can read them in the console) plus `pk` and `sk`. `version` is a top-level
//! number on every versioned item, and ledger items keep `state` and `created_at` top-level.
//! Reads are strongly consistent, so a read after a write sees it, as in SQLite.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use els_core::customers::CustomerLink;
use els_core::ledger::{LedgerEntry, OrderKey, OrderState};
use els_core::ports::{ProductLink, StateStore};
use els_core::{Connection, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::time::Duration;

type Item = HashMap<String, AttributeValue>;

const CONNECTION_SK: &str = "CONNECTION";
const ORDER_PREFIX: &str = "ORDER#";
const SKU_PREFIX: &str = "SKU#";
const EMAIL_PREFIX: &str = "EMAIL#";

/// The state store on a DynamoDB table with a string `pk` and `sk`.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn pk(store_id: u64) -> String {
    format!("STORE#{store_id}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable<E, R>(what: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!("DynamoDB {what}: {}", DisplayErrorContext(&err)))
}

/// A failed conditional write is a lost race; anything else is the backend failing.
fn write_error<E, R>(what: &str, label: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.as_service_error().and_then(|e| e.code()) {
        Some("ConditionalCheckFailedException") => {
            StoreError::Conflict(format!("{label} changed concurrently"))
        }
        _ => unavailable(what, err),
    }
}

fn to_item<T: Serialize>(value: &T, pk: String, sk: String) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt {
        key: format!("{pk}/{sk}"),
        detail: format!("cannot encode: {e}"),
    })?;
    item.insert("pk".into(), s(pk));
    item.insert("sk".into(), s(sk));
    Ok(item)
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    let key = |item: &Item, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let label = format!("{}/{}", key(&item, "pk"), key(&item, "sk"));
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt {
        key: label,
        detail: e.to_string(),
    })
}

impl DynamoStore {
    /// The store on `table`, with a client built once by the caller.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (on-demand, string `pk` hash key and `sk` range key) and waits until
    /// it is active. An existing table of that name is left as it is.
    pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let built = (|| {
            Ok::<_, aws_sdk_dynamodb::error::BuildError>((
                attribute("pk")?,
                attribute("sk")?,
                key("pk", KeyType::Hash)?,
                key("sk", KeyType::Range)?,
            ))
        })()
        .map_err(|e| StoreError::Unavailable(format!("DynamoDB CreateTable: {e}")))?;
        let (pk_attr, sk_attr, pk_key, sk_key) = built;
        let created = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(pk_attr)
            .attribute_definitions(sk_attr)
            .key_schema(pk_key)
            .key_schema(sk_key)
            .send()
            .await;
        if let Err(err) = created {
            let exists = err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception());
            if !exists {
                return Err(unavailable("CreateTable", err));
            }
        }
        for _ in 0..120 {
            let described = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| unavailable("DescribeTable", e))?;
            let status = described.table().and_then(|t| t.table_status());
            if status == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::Unavailable(format!(
            "DynamoDB table {name} did not become active"
        )))
    }

    async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(out.item)
    }

    /// Puts `item` if the stored version equals `expected` (None: no item may exist).
    async fn put_versioned(
        &self,
        item: Item,
        expected: Option<u64>,
        label: &str,
    ) -> Result<(), StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", n(v)),
        };
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| write_error("PutItem", label, e))
    }
}

impl StateStore for DynamoStore {
    async fn get_connection(&self, store_id: u64) -> Result<Option<Connection>, StoreError> {
        self.get(pk(store_id), CONNECTION_SK.into())
            .await?
            .map(from_item)
            .transpose()
    }

    async fn put_connection(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = to_item(connection, pk(connection.store_id), CONNECTION_SK.into())?;
        let label = format!("connection of store {}", connection.store_id);
        self.put_versioned(item, expected_version, &label).await
    }

    /// A scan over the table: connections are few, and this serves the operator and the
    /// inventory schedule, not the hot path.
    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :sk")
                .expression_attribute_values(":sk", s(CONNECTION_SK))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Scan", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(from_item::<Connection>(item)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        out.sort_by_key(|c| c.store_id);
        Ok(out)
    }

    async fn load_order(&self, key: &OrderKey) -> Result<Option<LedgerEntry>, StoreError> {
        self.get(pk(key.store_id), format!("{ORDER_PREFIX}{}", key.order_id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn save_order(
        &self,
        entry: &LedgerEntry,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = to_item(
            entry,
            pk(entry.key.store_id),
            format!("{ORDER_PREFIX}{}", entry.key.order_id),
        )?;
        let label = format!("order {}", entry.key);
        self.put_versioned(item, expected_version, &label).await
    }

    /// Queries every ledger item of the store (filtered by state), then returns the oldest
    /// `limit`. Sort keys are order ids, not times, so the oldest can only be known after
    /// reading the whole partition; the cost grows with the store's ledger.
    async fn list_orders(
        &self,
        store_id: u64,
        state: Option<OrderState>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut out: Vec<LedgerEntry> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk(store_id)))
                .expression_attribute_values(":prefix", s(ORDER_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if let Some(state) = state {
                request = request
                    .filter_expression("#st = :st")
                    .expression_attribute_names("#st", "state")
                    .expression_attribute_values(":st", s(state.as_str()));
            }
            let page = request.send().await.map_err(|e| unavailable("Query", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(from_item(item)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.key.order_id).cmp(&(b.created_at, &b.key.order_id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn get_product_link(
        &self,
        store_id: u64,
        sku: &str,
    ) -> Result<Option<ProductLink>, StoreError> {
        self.get(pk(store_id), format!("{SKU_PREFIX}{sku}"))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn put_product_link(&self, store_id: u64, link: &ProductLink) -> Result<(), StoreError> {
        let item = to_item(link, pk(store_id), format!("{SKU_PREFIX}{}", link.sku))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("PutItem", e))
    }

    async fn get_customer_link(
        &self,
        store_id: u64,
        email: &str,
    ) -> Result<Option<CustomerLink>, StoreError> {
        self.get(pk(store_id), format!("{EMAIL_PREFIX}{email}"))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn put_customer_link(
        &self,
        link: &CustomerLink,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = to_item(
            link,
            pk(link.store_id),
            format!("{EMAIL_PREFIX}{}", link.email),
        )?;
        // The email is masked: conflict messages reach log lines.
        let label = format!(
            "customer link {}/{}",
            link.store_id,
            els_core::mask::mask_email(&link.email)
        );
        self.put_versioned(item, expected_version, &label).await
    }
}
