//! The state ports ([`els_core::StateStore`]) on one DynamoDB table.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | connection | `STORE#{storeId}` | `CONNECTION` |
//! | order ledger | `STORE#{storeId}` | `ORDER#{orderId}` |
//! | product link | `STORE#{storeId}` | `SKU#{sku}` |
//! | customer link | `STORE#{storeId}` | `EMAIL#{normalised email}` |
//! | inventory cursor | `STORE#{storeId}` | `CURSOR#inventory` |
//! | order sweep cursor | `STORE#{storeId}` | `CURSOR#sweep` |
//! | catalog link | `STORE#{storeId}` | `LSPRODUCT#{lsProductId}` |
//! | SKU index | `STORE#{storeId}` | `LSSKU#{sku key}` (the live Lightspeed ids with that SKU) |
//! | pushed stock | `STORE#{storeId}` | `STOCK#{lsProductId}` |
//! | pending web sale | `STORE#{storeId}` | `PENDING#{orderId}` |
//! | webhook event | `EVENT#{eventId}` | `EVENT` (expires through the table's TTL) |
//! | rate window (the shared Lightspeed budget, `budget.rs`) | `RATE#{domainPrefix}` | `WINDOW` |
//! | schema version | `META` | `SCHEMA` |
//!
//! **Connections are listed through a sparse index**, never by a Scan. Every connection item
//! carries the top-level attribute `gsi_connections` = `"CONNECTION"`; no other item has it.
//! The global secondary index `connections` (hash key `gsi_connections`, range key `pk`,
//! projection `KEYS_ONLY`: no token is copied into it) therefore holds the connections and
//! nothing else. [`ConnectionStore::list_connections`] Queries it (paged), then reads the
//! items with a strongly consistent BatchGetItem, sorted by store id: the cost grows with
//! the number of connections, not with the ledger (a Scan read every ledger, link and event
//! item of the table, ~260,000 RCU per listing for a million ledger items).
//!
//! A global secondary index is eventually consistent: a connection created a moment ago
//! (typically under a second) may be missing from one listing. That is acceptable for the
//! listings, which are the schedules' (inventory every minute, the order sweep every few
//! minutes) and the operator's: the next run lists it. What a listing returns is read from
//! the table, so a listed connection is always its latest version (a token refreshed just
//! before is seen), and [`ConnectionStore::get_connection`] stays a strongly consistent
//! GetItem.
//!
//! **Schema version and migration.** The item `META`/`SCHEMA` holds `schema_version`, the
//! version of the item layout the table's items follow; a table without it is version 1
//! (written before versions existed). Version 2: connections carry `gsi_connections`.
//! - [`DynamoStore::migrate`] brings a table up to [`DynamoStore::SCHEMA_VERSION`]: one
//!   GetItem when it already is; otherwise, for 1 → 2, one Scan of the table for connection
//!   items without the attribute (only their keys are read back), a conditional UpdateItem
//!   `SET gsi_connections` on each (`attribute_exists(pk)`: a connection deleted meanwhile
//!   is not recreated; the rest of the item, `version` included, is untouched, so a
//!   concurrent token refresh is neither lost nor conflicted), then the META item, written
//!   only if it does not already say the same or a newer version. Idempotent, and safe to
//!   run from two processes at once (both tag the same items; one META write wins).
//! - [`DynamoStore::ensure_migrated`] is the cheap check (one GetItem of META): an error
//!   naming the fix when the table is behind.
//!
//! **Who migrates.** Only the operator's `els` commands on `--backend aws` (the CLI opens the
//! store with [`DynamoStore::migrated`]): the migration needs Scan and UpdateItem, and the
//! Scan reads the whole table once, which on a large table may not fit in a function's
//! timeout. No function role has `dynamodb:Scan` (crates/functions/tests/template.rs checks
//! it). The functions that list connections (inventory-sync, the order sweep) call
//! [`DynamoStore::ensure_migrated`] at the start of each run and fail while the table is
//! behind: failing runs raise the function's Errors alarm with the message "run any els
//! command with --backend aws", whereas listing anyway would silently skip every store
//! connected before the upgrade (no inventory mirrored, no order swept). The functions that
//! read connections by key (webhook-ingest, sale-poster) work on either version and need no
//! check. On a new stack the first `els connect --backend aws` writes the version.
//!
//! Upgrade order: deploy the new functions, then run `els` once. A connection that an older
//! version writes after the migration (its token refresh puts the whole item) loses the
//! attribute, and `migrate` does not look again once META says 2;
//! [`DynamoStore::index_connections`] repairs that (the same Scan, unconditionally).
//!
//! **Tokens are KMS ciphertext.** A connection item's tokens (`ecwid_token`,
//! `lightspeed.access_token` and, for OAuth, `lightspeed.refresh_token`) are sealed together:
//! the binary attribute `tokens` is the KMS `Encrypt`, under the deployment's key
//! (template.yaml `TokenKmsKey`, or `TokenKmsKeyArn`), of a small JSON object of the tokens,
//! with the encryption context `{"store_id": "<id>", "attribute": "tokens"}` (the store id of
//! the item's `pk`); each token's own attribute holds `true` (sealed). A table reader (a
//! read-only role, a restored backup, a PITR export) sees ciphertext, and a ciphertext copied
//! to another store's item or into another attribute does not decrypt. Why KMS and not
//! envelope encryption with a data key: the tokens are far below KMS's 4 KB limit, so one
//! call is the whole cipher (no AES-GCM code of ours, no wrapped data key to store beside
//! it, rotation and audit in KMS), and the in-memory cache below makes the call count per
//! store what a data key's would be. Why one ciphertext for all: a cold read is one
//! `Decrypt` per connection instead of one per token (KMS was the largest line of an
//! order's cost).
//! - [`DynamoStore::with_token_cipher`] gives the store a [`TokenCipher`]:
//!   [`ConnectionStore::put_connection`] seals before its (unchanged) version-conditioned
//!   PutItem, so a token refresh writes new ciphertext under the same condition as before;
//!   `get_connection` and `list_connections` decrypt.
//! - Decrypted tokens are cached per process for 15 minutes, keyed by store, attribute and
//!   the SHA-256 of the ciphertext: the first read of a store costs one `Decrypt`, a warm
//!   container's next reads of that store none, and a write of unchanged tokens reuses their
//!   ciphertext (a refresh costs one `Encrypt`, a settings change none).
//! - Items written before the tokens were sealed together hold one ciphertext per token
//!   (each with the encryption context `{"store_id": "<id>", "attribute": "<that token's
//!   name>"}`): they are still read (one `Decrypt` per token), and the next write of the
//!   connection seals them together. Plain-text tokens (items written before encryption)
//!   are still read as they are. [`DynamoStore::encrypt_tokens`] (`els migrate
//!   --encrypt-tokens`) rewrites both kinds sealed, at the version they hold, idempotently.
//! - A ciphertext KMS refuses for good (another store's or attribute's, damaged, another
//!   key, the key disabled or deleted) is [`StoreError::Undecryptable`]: the poster parks
//!   that store's orders `UNAUTHORIZED` with a reason asking to reconnect, a listing leaves
//!   the store out (logged; [`ConnectionListing::undecryptable`]), and `els connect`
//!   replaces the connection at its version. Throttling, network and a denied permission are
//!   [`StoreError::Unavailable`] (retried; the last is a deployment to fix).
//! - Without a cipher (webhook-ingest, which only checks that a connection exists, and has
//!   no `kms:Decrypt`), each encrypted or sealed token reads as
//!   [`crate::ENCRYPTED_TOKEN_PLACEHOLDER`] with no KMS call, and a connection holding a
//!   placeholder is never written back. Tokens written without a cipher are plain text
//!   (tests, and tables from before); every `els` command on `--backend aws` and every
//!   function that writes tokens has the cipher.
//! - A version of this code from before the tokens were sealed together reads a sealed
//!   connection as corrupt (the `true` where it expects a token is never used as one): after
//!   rolling back to such a version, reconnect the stores (`els connect`), or roll forward.
//!
//! **Pending web sales** are a sparse index of the ledger: an order's `PENDING#` item exists
//! while [`LedgerEntry::is_pending_web_sale`] and holds its [`PendingWebSale`] (lines, state,
//! since). The inventory mirror then reads only the pending orders (one strongly consistent
//! Query), not the whole ledger; it is not a global secondary index, whose reads are
//! eventually consistent (a posted order's quantity could be subtracted twice, or a new
//! one's not at all, and the mirror would oversell). The `PENDING#` item only changes with
//! its ledger item, and only in the same transaction; most saves do not change it (a claim
//! before the order's lines are known, the lease renewed before the sale POST, the posted
//! outcome of an order that never held a pending quantity, a refund of a posted order), and
//! a transaction costs twice the write units of each of its items. So:
//! - every ledger item that `save_order` writes carries `pending_digest`: a digest of the
//!   `PENDING#` item it has (`-` when it has none);
//! - a save of version `v` is first one PutItem conditioned on `version = v AND
//!   pending_digest = <the new entry's>`: if it succeeds, the stored `PENDING#` item was
//!   already the new one, so the ledger and its pending quantities stay in step without a
//!   transaction;
//! - if the condition fails because another version is stored (DynamoDB returns the stored
//!   item), it is a lost race ([`StoreError::Conflict`]); if it fails on the digest (the
//!   pending item changes: the order's lines became known, it was claimed or released or
//!   parked while pending, it stopped being pending), or on an item written before digests
//!   existed, the save is the transaction: the ledger item (conditioned on `v`) with the
//!   `PENDING#` put or delete. That costs the failed PutItem's write units on top, once per
//!   change of the pending item;
//! - a new ledger item is a conditional PutItem, or the transaction when it is already a
//!   pending web sale.
//!
//! In a typical order's life (claim, renewal before the POST, posted) no save is a
//! transaction.
//!
//! The **SKU index** items are written by read-modify-write without a condition: only the
//! inventory mirror writes them, and it does so under its cursor's lease, one run per store.
//!
//! **Webhook events** (replay protection) are keyed by the event id alone, each in its own
//! partition: `storeId` is not signed, so a record under the store would land wherever an
//! altered body pointed it. The item holds `event_id`, `store_id`, `fingerprint`,
//! `recorded_at` (RFC 3339) and `expires_at`, the table's TTL attribute (epoch seconds).
//! DynamoDB deletes expired items within days, not at once, so a read treats an item whose
//! `expires_at` has passed as absent.
//!
//! Items are the serde_dynamo rendering of the core types (native attributes, so an
//! operator can read them in the console, tokens excepted) plus `pk` and `sk`. `version` is a top-level
//! number on every versioned item, and ledger items keep `state` and `created_at` top-level.
//! Reads are strongly consistent, so a read after a write sees it, as in SQLite.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CreateGlobalSecondaryIndexAction, Delete,
    DeleteRequest, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, Put, PutRequest,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TransactWriteItem,
    WriteRequest,
};
use els_core::customers::CustomerLink;
use els_core::inventory::{
    CatalogLink, CatalogLinkUpdate, InventoryCursor, PendingWebSale, PushedStock,
};
use els_core::ledger::{LedgerEntry, OrderKey, OrderState};
use els_core::ports::{
    ConnectionStore, EventRecordOutcome, InventoryStateStore, LedgerStore, LinkStore, ProductLink,
    SweepStateStore, WebhookEventRecord, WebhookEventStore,
};
use els_core::retry::Backoff;
use els_core::sweep::SweepCursor;
use els_core::{Connection, StoreError};
use els_core::{Sku, StoreId};
use els_http::TokioClock;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use crate::tokens::{self, TokenCipher};

type Item = HashMap<String, AttributeValue>;

const CONNECTION_SK: &str = "CONNECTION";
const ORDER_PREFIX: &str = "ORDER#";
const SKU_PREFIX: &str = "SKU#";
const EMAIL_PREFIX: &str = "EMAIL#";
const CURSOR_SK: &str = "CURSOR#inventory";
const SWEEP_SK: &str = "CURSOR#sweep";
const LINK_PREFIX: &str = "LSPRODUCT#";
const SKU_INDEX_PREFIX: &str = "LSSKU#";
const STOCK_PREFIX: &str = "STOCK#";
const PENDING_PREFIX: &str = "PENDING#";
/// The ledger item's digest of its `PENDING#` item ([`pending_digest`]).
const PENDING_DIGEST: &str = "pending_digest";
/// The digest of a ledger item that has no `PENDING#` item.
const NOT_PENDING: &str = "-";
const EVENT_PREFIX: &str = "EVENT#";
const EVENT_SK: &str = "EVENT";
const META_PK: &str = "META";
const SCHEMA_SK: &str = "SCHEMA";
const SCHEMA_ATTRIBUTE: &str = "schema_version";
/// The version of a table that has no META item: written before versions existed.
const UNVERSIONED: u32 = 1;
/// The table's TTL attribute (template.yaml `TimeToLiveSpecification`): epoch seconds.
const TTL_ATTRIBUTE: &str = "expires_at";
/// Connections whose tokens a listing decrypts at once.
const LIST_DECRYPT_CONCURRENCY: usize = 16;
/// BatchGetItem and BatchWriteItem limits.
const BATCH_GET: usize = 100;
const BATCH_WRITE: usize = 25;
/// Items a batch request left unprocessed (throttling) are sent again with exponential
/// backoff and jitter, as AWS asks: 10 requests in all, waiting 50 ms doubling to at most
/// 500 ms, half of each wait random so that throttled writers spread out.
const UNPROCESSED: Backoff =
    Backoff::exponential(10, Duration::from_millis(50), Duration::from_millis(500))
        .with_jitter(0.5);

/// A number in `[0, 1)` for jitter, from the standard library's randomly keyed hasher.
fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(std::time::SystemTime::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// One SKU index item: the live Lightspeed products whose catalog link has the SKU.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SkuOwners {
    sku_key: String,
    ids: BTreeSet<String>,
}

/// The state store on a DynamoDB table with a string `pk` and `sk`.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Encrypts the connections' tokens on write and decrypts them on read (see the module
    /// doc); `None`: tokens are written as plain text and ciphertext reads as a placeholder.
    tokens: Option<TokenCipher>,
}

/// One listing of the connections and what it read ([`DynamoStore::list_connections_paged`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionListing {
    /// Sorted by store id.
    pub connections: Vec<Connection>,
    /// Query requests on the index (pages).
    pub index_pages: usize,
    /// Index entries the Queries evaluated (their `ScannedCount`): one per connection, as
    /// no other item is in the index.
    pub index_entries: usize,
    /// Connections left out because their tokens cannot be decrypted
    /// ([`StoreError::Undecryptable`]): each store and why. Sorted by store id.
    pub undecryptable: Vec<(StoreId, String)>,
}

/// What [`DynamoStore::encrypt_tokens`] found (and did).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenMigrationReport {
    /// Items the Scan evaluated.
    pub scanned: u64,
    /// Connection items read.
    pub connections: usize,
    /// The stores whose connection held a token in plain text when read, sorted.
    pub plain_text: Vec<StoreId>,
    /// The stores whose connection held its tokens in the per-token format (one ciphertext
    /// per token, from before they were sealed together) when read, sorted.
    pub per_token: Vec<StoreId>,
    /// Connections rewritten with their tokens sealed (0 in a dry run).
    pub encrypted: usize,
    /// Connections deleted between the Scan and their rewrite (left deleted).
    pub vanished: usize,
    /// Connections left as they were because KMS refused to decrypt their per-token
    /// ciphertext ([`StoreError::Undecryptable`]: reconnect them), sorted.
    pub undecryptable: Vec<StoreId>,
}

/// What [`DynamoStore::migrate`] (or [`DynamoStore::index_connections`]) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema version the table was at (1: no META item).
    pub from_version: u32,
    /// The version it is at now.
    pub to_version: u32,
    /// Items the Scan evaluated (0: nothing to migrate, no Scan).
    pub scanned: u64,
    /// Connections given the index attribute.
    pub connections_indexed: usize,
    /// Connections deleted between the Scan and their update (left deleted).
    pub vanished: usize,
}

impl MigrationReport {
    /// Whether this run changed the table's schema version.
    pub fn migrated(&self) -> bool {
        self.to_version > self.from_version
    }
}

fn pk(store_id: StoreId) -> String {
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

/// The store of a `STORE#{id}` partition key.
fn store_of(item: &Item) -> Option<StoreId> {
    item.get("pk")?
        .as_s()
        .ok()?
        .strip_prefix("STORE#")?
        .parse()
        .ok()
}

/// A connection's item: its serde rendering, the keys, and the index attribute that puts it
/// in the `connections` index. `from_item` ignores the attribute (`Connection` does not deny
/// unknown fields, as it ignores `pk` and `sk`). Tokens are still plain text here
/// ([`tokens::seal`] encrypts them).
fn connection_item(connection: &Connection) -> Result<Item, StoreError> {
    let mut item = to_item(connection, pk(connection.store_id), CONNECTION_SK.into())?;
    item.insert(
        DynamoStore::CONNECTIONS_INDEX_ATTRIBUTE.into(),
        s(CONNECTION_SK),
    );
    Ok(item)
}

/// What a ledger item's `PENDING#` item holds, as a short digest: [`NOT_PENDING`] when the
/// entry is not a pending web sale (no `PENDING#` item), else the first 16 bytes of the
/// SHA-256 of the [`PendingWebSale`]'s JSON, in hex. Two entries with the same digest have
/// the same `PENDING#` item.
fn pending_digest(entry: &LedgerEntry) -> Result<String, StoreError> {
    if !entry.is_pending_web_sale() {
        return Ok(NOT_PENDING.to_string());
    }
    let json = serde_json::to_vec(&PendingWebSale::of(entry)).map_err(|e| StoreError::Corrupt {
        key: format!(
            "{}/{PENDING_PREFIX}{}",
            pk(entry.key.store_id),
            entry.key.order_id
        ),
        detail: format!("cannot encode: {e}"),
    })?;
    Ok(hex::encode(&Sha256::digest(&json)[..16]))
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
            tokens: None,
        }
    }

    /// The same store with the connections' tokens encrypted by `cipher` on write and
    /// decrypted on read (see the module doc).
    pub fn with_token_cipher(mut self, cipher: TokenCipher) -> Self {
        self.tokens = Some(cipher);
        self
    }

    pub fn token_cipher(&self) -> Option<&TokenCipher> {
        self.tokens.as_ref()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The schema version this code reads and writes (see the module doc).
    pub const SCHEMA_VERSION: u32 = 2;
    /// The sparse global secondary index of the connection items.
    pub const CONNECTIONS_INDEX: &'static str = "connections";
    /// The index's hash key: `"CONNECTION"` on connection items, absent on every other item.
    /// Its range key is `pk` (`STORE#{id}`), so pages come in a stable order.
    pub const CONNECTIONS_INDEX_ATTRIBUTE: &'static str = "gsi_connections";

    /// The store on `table`, migrated to [`Self::SCHEMA_VERSION`] first (one GetItem when it
    /// already is; see [`Self::migrate`]). For the operator's commands, whose credentials may
    /// Scan and UpdateItem; the functions use [`Self::new`] and [`Self::ensure_migrated`].
    pub async fn migrated(client: Client, table: impl Into<String>) -> Result<Self, StoreError> {
        let store = Self::new(client, table);
        store.migrate().await?;
        Ok(store)
    }

    /// Creates the table as template.yaml does (on-demand, string `pk` hash key and `sk`
    /// range key, the `connections` index) at the current schema version, and waits until it
    /// and its index are active. An existing table of that name keeps its items and its
    /// schema version; the index is added to it if it lacks one (as a deployment of the
    /// template adds it), and [`Self::migrate`] then indexes its connections.
    pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
        let build_error = |e: aws_sdk_dynamodb::error::BuildError| {
            StoreError::Unavailable(format!("DynamoDB CreateTable: {e}"))
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(build_error)
        };
        let index_keys = vec![
            key(Self::CONNECTIONS_INDEX_ATTRIBUTE, KeyType::Hash)?,
            key("pk", KeyType::Range)?,
        ];
        let keys_only = Projection::builder()
            .projection_type(ProjectionType::KeysOnly)
            .build();
        let index = GlobalSecondaryIndex::builder()
            .index_name(Self::CONNECTIONS_INDEX)
            .set_key_schema(Some(index_keys.clone()))
            .projection(keys_only.clone())
            .build()
            .map_err(build_error)?;
        let created = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .attribute_definitions(attribute(Self::CONNECTIONS_INDEX_ATTRIBUTE)?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        let fresh = match created {
            Ok(_) => true,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                false
            }
            Err(err) => return Err(unavailable("CreateTable", err)),
        };
        let mut indexed = Self::wait_until_active(client, name).await?;
        if !indexed {
            let create = CreateGlobalSecondaryIndexAction::builder()
                .index_name(Self::CONNECTIONS_INDEX)
                .set_key_schema(Some(index_keys))
                .projection(keys_only)
                .build()
                .map_err(build_error)?;
            client
                .update_table()
                .table_name(name)
                .attribute_definitions(attribute("pk")?)
                .attribute_definitions(attribute(Self::CONNECTIONS_INDEX_ATTRIBUTE)?)
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder().create(create).build(),
                )
                .send()
                .await
                .map_err(|e| unavailable("UpdateTable", e))?;
            indexed = Self::wait_until_active(client, name).await?;
        }
        if !indexed {
            return Err(StoreError::Unavailable(format!(
                "DynamoDB table {name} has no {} index after UpdateTable",
                Self::CONNECTIONS_INDEX
            )));
        }
        if fresh {
            // Nothing in a new table predates the current layout.
            Self::new(client.clone(), name)
                .put_schema_version(Self::SCHEMA_VERSION)
                .await?;
        }
        Ok(())
    }

    /// Waits until the table and all its indexes are active; whether it has the
    /// `connections` index.
    async fn wait_until_active(client: &Client, name: &str) -> Result<bool, StoreError> {
        for _ in 0..240 {
            let described = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| unavailable("DescribeTable", e))?;
            if let Some(table) = described.table() {
                let indexes = table.global_secondary_indexes();
                let active = table.table_status() == Some(&TableStatus::Active)
                    && indexes.iter().all(|i| {
                        i.index_status() == Some(&IndexStatus::Active)
                            && i.backfilling() != Some(true)
                    });
                if active {
                    return Ok(indexes
                        .iter()
                        .any(|i| i.index_name() == Some(Self::CONNECTIONS_INDEX)));
                }
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

impl DynamoStore {
    fn key(store_id: StoreId, sk: String) -> Item {
        HashMap::from([
            ("pk".to_string(), s(pk(store_id))),
            ("sk".to_string(), s(sk)),
        ])
    }

    /// BatchGetItem over `keys` (100 per request, unprocessed keys retried), strongly
    /// consistent.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending: Vec<Item> = chunk.to_vec();
            let mut tries = UNPROCESSED.start(random_unit);
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Unavailable(format!("DynamoDB BatchGetItem: {e}")))?;
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchGetItem", e))?;
                if let Some(mut responses) = answer.responses
                    && let Some(items) = responses.remove(&self.table)
                {
                    out.extend(items);
                }
                if let Some(mut unprocessed) = answer.unprocessed_keys
                    && let Some(left) = unprocessed.remove(&self.table)
                {
                    pending = left.keys;
                }
                if !pending.is_empty() && !tries.pause(&TokioClock).await {
                    return Err(StoreError::Unavailable(
                        "DynamoDB BatchGetItem: keys left unprocessed".into(),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// BatchWriteItem of `requests` (25 per request, unprocessed items retried).
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_WRITE) {
            let mut pending: Vec<WriteRequest> = chunk.to_vec();
            let mut tries = UNPROCESSED.start(random_unit);
            while !pending.is_empty() {
                let answer = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchWriteItem", e))?;
                if let Some(mut unprocessed) = answer.unprocessed_items
                    && let Some(left) = unprocessed.remove(&self.table)
                {
                    pending = left;
                }
                if !pending.is_empty() && !tries.pause(&TokioClock).await {
                    return Err(StoreError::Unavailable(
                        "DynamoDB BatchWriteItem: items left unprocessed".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn put_request(item: Item) -> Result<WriteRequest, StoreError> {
        let put = PutRequest::builder()
            .set_item(Some(item))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("DynamoDB BatchWriteItem: {e}")))?;
        Ok(WriteRequest::builder().put_request(put).build())
    }

    fn delete_request(key: Item) -> Result<WriteRequest, StoreError> {
        let delete = DeleteRequest::builder()
            .set_key(Some(key))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("DynamoDB BatchWriteItem: {e}")))?;
        Ok(WriteRequest::builder().delete_request(delete).build())
    }

    /// Every item of the store whose sort key starts with `prefix`.
    async fn query_prefix(&self, store_id: StoreId, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk(store_id)))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn sku_owners(
        &self,
        store_id: StoreId,
        sku_keys: &[String],
    ) -> Result<HashMap<String, SkuOwners>, StoreError> {
        let unique: BTreeSet<&String> = sku_keys.iter().filter(|k| !k.is_empty()).collect();
        let keys = unique
            .into_iter()
            .map(|k| Self::key(store_id, format!("{SKU_INDEX_PREFIX}{k}")))
            .collect();
        let mut out = HashMap::new();
        for item in self.batch_get(keys).await? {
            let owners: SkuOwners = from_item(item)?;
            out.insert(owners.sku_key.clone(), owners);
        }
        Ok(out)
    }
}

fn event_item(record: &WebhookEventRecord) -> Item {
    HashMap::from([
        (
            "pk".to_string(),
            s(format!("{EVENT_PREFIX}{}", record.event_id)),
        ),
        ("sk".to_string(), s(EVENT_SK)),
        ("event_id".to_string(), s(record.event_id.clone())),
        ("store_id".to_string(), n(record.store_id.get())),
        ("fingerprint".to_string(), s(record.fingerprint.clone())),
        (
            "recorded_at".to_string(),
            s(record.recorded_at.to_rfc3339()),
        ),
        (
            TTL_ATTRIBUTE.to_string(),
            AttributeValue::N(record.expires_at.timestamp().to_string()),
        ),
    ])
}

fn event_from_item(item: &Item) -> Result<WebhookEventRecord, StoreError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let corrupt = |detail: &str| StoreError::Corrupt {
        key: format!(
            "{}/{EVENT_SK}",
            text("pk").unwrap_or_else(|| EVENT_PREFIX.to_string())
        ),
        detail: detail.to_string(),
    };
    let recorded_at = text("recorded_at")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .ok_or_else(|| corrupt("recorded_at is not an RFC 3339 time"))?
        .with_timezone(&chrono::Utc);
    let expires_at = number(TTL_ATTRIBUTE)
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .ok_or_else(|| corrupt("expires_at is not epoch seconds"))?;
    Ok(WebhookEventRecord {
        event_id: text("event_id").ok_or_else(|| corrupt("no event_id"))?,
        store_id: number("store_id")
            .and_then(|v| u64::try_from(v).ok())
            .and_then(|v| StoreId::new(v).ok())
            .ok_or_else(|| corrupt("no store_id"))?,
        fingerprint: text("fingerprint").ok_or_else(|| corrupt("no fingerprint"))?,
        recorded_at,
        expires_at,
    })
}

impl ConnectionStore for DynamoStore {
    /// One GetItem; the tokens decrypted (or placeholders, without a cipher).
    async fn get_connection(&self, store_id: StoreId) -> Result<Option<Connection>, StoreError> {
        let Some(mut item) = self.get(pk(store_id), CONNECTION_SK.into()).await? else {
            return Ok(None);
        };
        tokens::open(self.tokens.as_ref(), store_id, &mut item).await?;
        from_item(item).map(Some)
    }

    /// The whole item, `gsi_connections` included, so the connection is (still) listed;
    /// the tokens encrypted first (with a cipher).
    async fn put_connection(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut item = connection_item(connection)?;
        tokens::seal(self.tokens.as_ref(), connection.store_id, &mut item).await?;
        let label = format!("connection of store {}", connection.store_id);
        self.put_versioned(item, expected_version, &label).await
    }

    /// The `connections` index, then the items (see the module doc: a connection created
    /// within the last moment may be missing; the next listing has it). A connection whose
    /// tokens cannot be decrypted is left out (and logged), so it stops no other store.
    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        Ok(self.list_connections_paged(None).await?.connections)
    }
}

impl DynamoStore {
    /// [`ConnectionStore::list_connections`] with the index read `page_size` entries per
    /// Query (`None`: DynamoDB's 1 MB pages, thousands of keys), and what it read.
    pub async fn list_connections_paged(
        &self,
        page_size: Option<i32>,
    ) -> Result<ConnectionListing, StoreError> {
        let mut keys = Vec::new();
        let mut index_pages = 0;
        let mut index_entries = 0;
        let mut start: Option<Item> = None;
        loop {
            // A global secondary index has no strongly consistent reads.
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(Self::CONNECTIONS_INDEX)
                .key_condition_expression("#index = :connection")
                .expression_attribute_names("#index", Self::CONNECTIONS_INDEX_ATTRIBUTE)
                .expression_attribute_values(":connection", s(CONNECTION_SK))
                .set_limit(page_size)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            index_pages += 1;
            index_entries += usize::try_from(page.scanned_count).unwrap_or_default();
            for entry in page.items.unwrap_or_default() {
                // Only the table's keys; an item that is not a connection (its sort key)
                // would not be one even if it carried the attribute.
                let key: Item = entry
                    .into_iter()
                    .filter(|(name, _)| name == "pk" || name == "sk")
                    .collect();
                if key
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some(CONNECTION_SK)
                    && key.contains_key("pk")
                {
                    keys.push(key);
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        // Strongly consistent: each listed connection is its latest version. One deleted
        // since the Query is simply not returned.
        let items = self.batch_get(keys).await?;
        // Tokens are decrypted a few stores at a time (each store's at once): a cold
        // listing of many stores is not one KMS round trip per store in a row.
        let opened: Vec<Result<Item, StoreError>> = futures::stream::iter(items)
            .map(|mut item| async move {
                let store_id = store_of(&item).ok_or_else(|| StoreError::Corrupt {
                    key: format!("?/{CONNECTION_SK}"),
                    detail: "the partition key is not STORE#{id}".into(),
                })?;
                tokens::open(self.tokens.as_ref(), store_id, &mut item).await?;
                Ok(item)
            })
            .buffer_unordered(LIST_DECRYPT_CONCURRENCY)
            .collect()
            .await;
        let mut connections = Vec::with_capacity(opened.len());
        let mut undecryptable = Vec::new();
        for item in opened {
            match item {
                Ok(item) => connections.push(from_item::<Connection>(item)?),
                Err(StoreError::Undecryptable {
                    store_id, detail, ..
                }) => {
                    tracing::error!(
                        store_id = store_id.get(),
                        %detail,
                        "connection left out of the listing: its tokens cannot be decrypted; reconnect the store (els connect)"
                    );
                    undecryptable.push((store_id, detail));
                }
                Err(e) => return Err(e),
            }
        }
        connections.sort_by_key(|c| c.store_id);
        undecryptable.sort();
        Ok(ConnectionListing {
            connections,
            index_pages,
            index_entries,
            undecryptable,
        })
    }

    /// The table's schema version: one strongly consistent GetItem of META (no META item:
    /// version 1, a table written before versions existed).
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        let Some(item) = self.get(META_PK.into(), SCHEMA_SK.into()).await? else {
            return Ok(UNVERSIONED);
        };
        item.get(SCHEMA_ATTRIBUTE)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("{META_PK}/{SCHEMA_SK}"),
                detail: format!("{SCHEMA_ATTRIBUTE} is not a number"),
            })
    }

    /// The cheap check for the functions that list connections, at the start of a run: one
    /// GetItem. An error while the table is below [`Self::SCHEMA_VERSION`] (connections
    /// written before are not listed until it is migrated); a newer version is accepted
    /// (migrations only add, so a rolled back function keeps working).
    pub async fn ensure_migrated(&self) -> Result<(), StoreError> {
        let stored = self.schema_version().await?;
        if stored >= Self::SCHEMA_VERSION {
            return Ok(());
        }
        Err(StoreError::Unavailable(format!(
            "DynamoDB table {} is at schema version {stored}, this code needs {}: connections \
             saved before are not listed until it is migrated; run any els command with \
             --backend aws --table {} (it migrates with the operator's credentials)",
            self.table,
            Self::SCHEMA_VERSION,
            self.table
        )))
    }

    /// Brings the table to [`Self::SCHEMA_VERSION`] (see the module doc): one GetItem when it
    /// already is; otherwise the 1 → 2 step ([`Self::index_connections`]), then the META
    /// item. Idempotent; two processes may run it at once. Needs GetItem, Scan, UpdateItem
    /// and PutItem: the operator's credentials, not a function's role.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let from = self.schema_version().await?;
        if from >= Self::SCHEMA_VERSION {
            return Ok(MigrationReport {
                from_version: from,
                to_version: from,
                scanned: 0,
                connections_indexed: 0,
                vanished: 0,
            });
        }
        // 1 → 2: connections carry the index attribute. (A later step goes here, each one
        // idempotent, so a run interrupted before META is written is simply run again.)
        let mut report = self.tag_connections(from).await?;
        self.put_schema_version(Self::SCHEMA_VERSION).await?;
        report.to_version = Self::SCHEMA_VERSION;
        tracing::info!(
            table = %self.table,
            from = report.from_version,
            to = report.to_version,
            scanned = report.scanned,
            connections_indexed = report.connections_indexed,
            "migrated the state table"
        );
        Ok(report)
    }

    /// One Scan for the connection items without `gsi_connections` (their keys only), and
    /// a conditional UpdateItem `SET gsi_connections` on each. Unconditional: it repairs a
    /// connection that an older version rewrote without the attribute after the migration.
    /// The report's versions are the stored one (the META item is not written here).
    pub async fn index_connections(&self) -> Result<MigrationReport, StoreError> {
        let version = self.schema_version().await?;
        self.tag_connections(version).await
    }

    async fn tag_connections(&self, version: u32) -> Result<MigrationReport, StoreError> {
        let mut report = MigrationReport {
            from_version: version,
            to_version: version,
            scanned: 0,
            connections_indexed: 0,
            vanished: 0,
        };
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :connection AND attribute_not_exists(#index)")
                .projection_expression("pk, sk")
                .expression_attribute_names("#index", Self::CONNECTIONS_INDEX_ATTRIBUTE)
                .expression_attribute_values(":connection", s(CONNECTION_SK))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Scan", e))?;
            report.scanned += u64::try_from(page.scanned_count).unwrap_or_default();
            for key in page.items.unwrap_or_default() {
                if self.index_connection(key).await? {
                    report.connections_indexed += 1;
                } else {
                    report.vanished += 1;
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(report)
    }

    /// `SET gsi_connections` on one connection item if it still exists; false if it does not.
    async fn index_connection(&self, key: Item) -> Result<bool, StoreError> {
        let label = format!(
            "{}/{CONNECTION_SK}",
            key.get("pk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        );
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("SET #index = :connection")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#index", Self::CONNECTIONS_INDEX_ATTRIBUTE)
            .expression_attribute_values(":connection", s(CONNECTION_SK))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(err) => match write_error("UpdateItem", &label, err) {
                StoreError::Conflict(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Writes META at `version` unless it already says `version` or newer (another process
    /// migrated it first, or a newer version did).
    async fn put_schema_version(&self, version: u32) -> Result<(), StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(META_PK))
            .item("sk", s(SCHEMA_SK))
            .item(SCHEMA_ATTRIBUTE, n(u64::from(version)))
            .item("migrated_at", s(chrono::Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(pk) OR #v < :v")
            .expression_attribute_names("#v", SCHEMA_ATTRIBUTE)
            .expression_attribute_values(":v", n(u64::from(version)))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(err) => match write_error("PutItem", "schema version", err) {
                StoreError::Conflict(_) => Ok(()),
                other => Err(other),
            },
        }
    }
}

impl DynamoStore {
    /// Finds the connections whose tokens are stored as plain text (items written before
    /// encryption, or by a process without a cipher) or in the per-token format (one
    /// ciphertext per token, written before the tokens were sealed together) and, with
    /// `apply`, rewrites each with its tokens sealed by this store's cipher. One Scan of the
    /// table (connection items only are returned), then per such connection one KMS Decrypt
    /// per per-token ciphertext, one Encrypt, and one PutItem conditioned on the `version` it
    /// was read at, which it keeps: a concurrent token refresh (which writes the next
    /// version) is neither lost nor made to conflict; if it wrote first, the connection is
    /// read again and rewritten if still needed. Idempotent: a second run finds nothing to
    /// do and writes nothing. Needs Scan, GetItem, PutItem, kms:Encrypt and kms:Decrypt: the
    /// operator's credentials.
    pub async fn encrypt_tokens(&self, apply: bool) -> Result<TokenMigrationReport, StoreError> {
        if apply && self.tokens.is_none() {
            return Err(StoreError::Unavailable(
                "encrypting tokens needs the token key (--token-kms-key or TOKEN_KMS_KEY_ID)"
                    .into(),
            ));
        }
        let mut report = TokenMigrationReport::default();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :connection")
                .expression_attribute_values(":connection", s(CONNECTION_SK))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Scan", e))?;
            report.scanned += u64::try_from(page.scanned_count).unwrap_or_default();
            for item in page.items.unwrap_or_default() {
                report.connections += 1;
                let plain = !tokens::plain_tokens(&item).is_empty();
                let per_token = !tokens::per_token_ciphertexts(&item).is_empty();
                if !plain && !per_token {
                    continue;
                }
                let store_id = store_of(&item).ok_or_else(|| StoreError::Corrupt {
                    key: format!("?/{CONNECTION_SK}"),
                    detail: "the partition key is not STORE#{id}".into(),
                })?;
                if plain {
                    report.plain_text.push(store_id);
                }
                if per_token {
                    report.per_token.push(store_id);
                }
                if apply {
                    match self.encrypt_connection_tokens(store_id, item).await {
                        Ok(true) => report.encrypted += 1,
                        Ok(false) => report.vanished += 1,
                        Err(StoreError::Undecryptable { detail, .. }) => {
                            tracing::error!(
                                store_id = store_id.get(),
                                %detail,
                                "connection tokens cannot be decrypted, left as they are; reconnect the store (els connect)"
                            );
                            report.undecryptable.push(store_id);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        report.plain_text.sort();
        report.per_token.sort();
        report.undecryptable.sort();
        tracing::info!(
            table = %self.table,
            connections = report.connections,
            plain_text = report.plain_text.len(),
            per_token = report.per_token.len(),
            encrypted = report.encrypted,
            "connection tokens checked"
        );
        Ok(report)
    }

    /// Rewrites one connection item with its tokens sealed (plain text or per-token
    /// ciphertext before), at the version it holds. `false` when the connection no longer
    /// exists.
    async fn encrypt_connection_tokens(
        &self,
        store_id: StoreId,
        mut item: Item,
    ) -> Result<bool, StoreError> {
        for _ in 0..5 {
            if tokens::plain_tokens(&item).is_empty()
                && tokens::per_token_ciphertexts(&item).is_empty()
            {
                return Ok(true);
            }
            let version = item.get("version").cloned();
            tokens::open(self.tokens.as_ref(), store_id, &mut item).await?;
            tokens::seal(self.tokens.as_ref(), store_id, &mut item).await?;
            let request = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .expression_attribute_names("#v", "version");
            let request = match version {
                Some(v) => request
                    .condition_expression("#v = :v")
                    .expression_attribute_values(":v", v),
                None => request
                    .condition_expression("attribute_exists(pk) AND attribute_not_exists(#v)"),
            };
            let label = format!("connection of store {store_id}");
            match request.send().await {
                Ok(_) => return Ok(true),
                Err(err) => match write_error("PutItem", &label, err) {
                    StoreError::Conflict(_) => {}
                    other => return Err(other),
                },
            }
            match self.get(pk(store_id), CONNECTION_SK.into()).await? {
                Some(fresh) => item = fresh,
                None => return Ok(false),
            }
        }
        Err(StoreError::Conflict(format!(
            "connection of store {store_id} kept changing while its tokens were encrypted; run it again"
        )))
    }
}

impl LedgerStore for DynamoStore {
    async fn load_order(&self, key: &OrderKey) -> Result<Option<LedgerEntry>, StoreError> {
        self.get(pk(key.store_id), format!("{ORDER_PREFIX}{}", key.order_id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// The ledger item, conditioned on its version; with it, in one transaction, the
    /// `PENDING#` item when that changes (see the module doc, "Pending web sales"): one
    /// conditional PutItem when the stored ledger item's `pending_digest` is the new one,
    /// else a transaction of the ledger item and the `PENDING#` put or delete.
    async fn save_order(
        &self,
        entry: &LedgerEntry,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let pk_value = pk(entry.key.store_id);
        let mut item = to_item(
            entry,
            pk_value.clone(),
            format!("{ORDER_PREFIX}{}", entry.key.order_id),
        )?;
        let digest = pending_digest(entry)?;
        item.insert(PENDING_DIGEST.into(), s(digest.clone()));
        let label = format!("order {}", entry.key);
        match expected_version {
            // A new ledger item that is not a pending web sale (the first claim, before the
            // order's lines are known) has no PENDING# item to put or delete.
            None if !entry.is_pending_web_sale() => {
                return self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| write_error("PutItem", &label, e));
            }
            None => {}
            // The stored ledger item's digest is the new one: its PENDING# item (or its
            // absence) is already what this entry's would be.
            Some(v) => {
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()))
                    .condition_expression("#v = :expected AND #pd = :pd")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_names("#pd", PENDING_DIGEST)
                    .expression_attribute_values(":expected", n(v))
                    .expression_attribute_values(":pd", s(digest))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                match put {
                    Ok(_) => return Ok(()),
                    Err(err) => match err.as_service_error() {
                        Some(PutItemError::ConditionalCheckFailedException(e)) => {
                            // Another version stored: a lost race, no transaction needed.
                            // (No item returned: the transaction's condition decides.)
                            let stored = e
                                .item()
                                .and_then(|old| old.get("version"))
                                .and_then(|v| v.as_n().ok())
                                .and_then(|v| v.parse::<u64>().ok());
                            if e.item().is_some() && stored != Some(v) {
                                return Err(StoreError::Conflict(format!(
                                    "{label} changed concurrently"
                                )));
                            }
                        }
                        _ => return Err(unavailable("PutItem", err)),
                    },
                }
            }
        }
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match expected_version {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", n(v)),
        }
        .build()
        .map_err(|e| StoreError::Unavailable(format!("DynamoDB TransactWriteItems: {e}")))?;
        let pending_sk = format!("{PENDING_PREFIX}{}", entry.key.order_id);
        let pending = if entry.is_pending_web_sale() {
            let sale = PendingWebSale::of(entry);
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(to_item(&sale, pk_value.clone(), pending_sk)?))
                        .build()
                        .map_err(|e| {
                            StoreError::Unavailable(format!("DynamoDB TransactWriteItems: {e}"))
                        })?,
                )
                .build()
        } else {
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .key("pk", s(pk_value.clone()))
                        .key("sk", s(pending_sk))
                        .build()
                        .map_err(|e| {
                            StoreError::Unavailable(format!("DynamoDB TransactWriteItems: {e}"))
                        })?,
                )
                .build()
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(pending)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                let lost_race = err.as_service_error().is_some_and(|e| {
                    e.is_transaction_canceled_exception()
                        && match e {
                            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => {
                                let reasons = t.cancellation_reasons();
                                reasons.is_empty()
                                    || reasons.iter().any(|r| {
                                        matches!(
                                            r.code(),
                                            Some("ConditionalCheckFailed" | "TransactionConflict")
                                        )
                                    })
                            }
                            _ => false,
                        }
                });
                if lost_race {
                    Err(StoreError::Conflict(format!(
                        "{label} changed concurrently"
                    )))
                } else {
                    Err(unavailable("TransactWriteItems", err))
                }
            }
        }
    }

    /// Queries every ledger item of the store (filtered by state), then returns the oldest
    /// `limit`. Sort keys are order ids, not times, so the oldest can only be known after
    /// reading the whole partition; the cost grows with the store's ledger.
    async fn list_orders(
        &self,
        store_id: StoreId,
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

    /// One Query over the `PENDING#` items that `save_order` keeps in step.
    async fn list_pending_web_sales(
        &self,
        store_id: StoreId,
    ) -> Result<Vec<PendingWebSale>, StoreError> {
        let mut out: Vec<PendingWebSale> = self
            .query_prefix(store_id, PENDING_PREFIX)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Ok(out)
    }
}

impl LinkStore for DynamoStore {
    async fn get_product_link(
        &self,
        store_id: StoreId,
        sku: &Sku,
    ) -> Result<Option<ProductLink>, StoreError> {
        self.get(pk(store_id), format!("{SKU_PREFIX}{sku}"))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn put_product_link(
        &self,
        store_id: StoreId,
        link: &ProductLink,
    ) -> Result<(), StoreError> {
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
        store_id: StoreId,
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

impl SweepStateStore for DynamoStore {
    async fn get_sweep_cursor(&self, store_id: StoreId) -> Result<Option<SweepCursor>, StoreError> {
        self.get(pk(store_id), SWEEP_SK.into())
            .await?
            .map(from_item)
            .transpose()
    }

    async fn put_sweep_cursor(
        &self,
        cursor: &SweepCursor,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = to_item(cursor, pk(cursor.store_id), SWEEP_SK.into())?;
        let label = format!("sweep cursor of store {}", cursor.store_id);
        self.put_versioned(item, expected_version, &label).await
    }
}

impl InventoryStateStore for DynamoStore {
    async fn get_inventory_cursor(
        &self,
        store_id: StoreId,
    ) -> Result<Option<InventoryCursor>, StoreError> {
        self.get(pk(store_id), CURSOR_SK.into())
            .await?
            .map(from_item)
            .transpose()
    }

    async fn put_inventory_cursor(
        &self,
        cursor: &InventoryCursor,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = to_item(cursor, pk(cursor.store_id), CURSOR_SK.into())?;
        let label = format!("inventory cursor of store {}", cursor.store_id);
        self.put_versioned(item, expected_version, &label).await
    }

    async fn get_catalog_links(
        &self,
        store_id: StoreId,
        lightspeed_product_ids: &[String],
    ) -> Result<Vec<CatalogLink>, StoreError> {
        let unique: BTreeSet<&String> = lightspeed_product_ids.iter().collect();
        let keys = unique
            .into_iter()
            .map(|id| Self::key(store_id, format!("{LINK_PREFIX}{id}")))
            .collect();
        self.batch_get(keys)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn put_catalog_links(
        &self,
        store_id: StoreId,
        updates: &[CatalogLinkUpdate],
    ) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        // The SKU index first: a crash before the links are written leaves the links as
        // they were, and the repeat of the same update converges.
        let mut touched: Vec<String> = Vec::new();
        for u in updates {
            touched.extend(u.previous_sku_key.iter().cloned());
            touched.push(u.link.sku_key.clone());
        }
        let mut owners = self.sku_owners(store_id, &touched).await?;
        let before: HashMap<String, BTreeSet<String>> = owners
            .iter()
            .map(|(k, o)| (k.clone(), o.ids.clone()))
            .collect();
        for u in updates {
            let id = &u.link.lightspeed_product_id;
            if let Some(prev) = u.previous_sku_key.as_ref().filter(|k| !k.is_empty())
                && let Some(o) = owners.get_mut(prev)
            {
                o.ids.remove(id);
            }
            if u.link.live && !u.link.sku_key.is_empty() {
                owners
                    .entry(u.link.sku_key.clone())
                    .or_insert_with(|| SkuOwners {
                        sku_key: u.link.sku_key.clone(),
                        ids: BTreeSet::new(),
                    })
                    .ids
                    .insert(id.clone());
            }
        }
        let mut requests = Vec::new();
        for (key, o) in &owners {
            if before.get(key) == Some(&o.ids) {
                continue;
            }
            let sk = format!("{SKU_INDEX_PREFIX}{key}");
            if o.ids.is_empty() {
                requests.push(Self::delete_request(Self::key(store_id, sk))?);
            } else {
                requests.push(Self::put_request(to_item(o, pk(store_id), sk)?)?);
            }
        }
        self.batch_write(requests).await?;
        // One request per link in a batch: the last update of a product wins.
        let mut links: BTreeMap<&str, &CatalogLink> = BTreeMap::new();
        for u in updates {
            links.insert(&u.link.lightspeed_product_id, &u.link);
        }
        let mut requests = Vec::with_capacity(links.len());
        for (id, link) in links {
            requests.push(Self::put_request(to_item(
                link,
                pk(store_id),
                format!("{LINK_PREFIX}{id}"),
            )?)?);
        }
        self.batch_write(requests).await
    }

    async fn list_catalog_links(&self, store_id: StoreId) -> Result<Vec<CatalogLink>, StoreError> {
        let mut out: Vec<CatalogLink> = self
            .query_prefix(store_id, LINK_PREFIX)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.lightspeed_product_id.cmp(&b.lightspeed_product_id));
        Ok(out)
    }

    async fn lightspeed_products_with_sku(
        &self,
        store_id: StoreId,
        sku_keys: &[String],
    ) -> Result<HashMap<String, Vec<String>>, StoreError> {
        Ok(self
            .sku_owners(store_id, sku_keys)
            .await?
            .into_iter()
            .filter(|(_, o)| !o.ids.is_empty())
            .map(|(k, o)| (k, o.ids.into_iter().collect()))
            .collect())
    }

    async fn get_pushed_stock(
        &self,
        store_id: StoreId,
        lightspeed_product_ids: &[String],
    ) -> Result<Vec<PushedStock>, StoreError> {
        let unique: BTreeSet<&String> = lightspeed_product_ids.iter().collect();
        let keys = unique
            .into_iter()
            .map(|id| Self::key(store_id, format!("{STOCK_PREFIX}{id}")))
            .collect();
        self.batch_get(keys)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn put_pushed_stock(
        &self,
        store_id: StoreId,
        items: &[PushedStock],
    ) -> Result<(), StoreError> {
        let mut latest: BTreeMap<&str, &PushedStock> = BTreeMap::new();
        for p in items {
            latest.insert(&p.lightspeed_product_id, p);
        }
        let mut requests = Vec::with_capacity(latest.len());
        for (id, p) in latest {
            requests.push(Self::put_request(to_item(
                p,
                pk(store_id),
                format!("{STOCK_PREFIX}{id}"),
            )?)?);
        }
        self.batch_write(requests).await
    }
}

impl WebhookEventStore for DynamoStore {
    /// One conditional PutItem: it succeeds when no item has the event id or the item's TTL
    /// has passed; otherwise DynamoDB returns the stored item with the failure
    /// (`ReturnValuesOnConditionCheckFailure`), which is returned. Needs only PutItem (and
    /// GetItem should a backend not return the item).
    async fn record_webhook_event(
        &self,
        record: &WebhookEventRecord,
    ) -> Result<EventRecordOutcome, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(event_item(record)))
            .condition_expression("attribute_not_exists(pk) OR #expires <= :now")
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(
                ":now",
                AttributeValue::N(record.recorded_at.timestamp().to_string()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match put {
            Ok(_) => return Ok(EventRecordOutcome::Inserted),
            Err(err) => err,
        };
        let returned = match err.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
            _ => return Err(unavailable("PutItem", err)),
        };
        let stored = match returned {
            Some(item) => item,
            None => self
                .get(
                    format!("{EVENT_PREFIX}{}", record.event_id),
                    EVENT_SK.into(),
                )
                .await?
                .ok_or_else(|| {
                    StoreError::Unavailable(format!(
                        "webhook event {} vanished during its conditional write",
                        record.event_id
                    ))
                })?,
        };
        Ok(EventRecordOutcome::Existing(event_from_item(&stored)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprocessed_items_are_retried_nine_times_with_capped_jittered_waits() {
        let mut source = random_unit;
        let waits: Vec<Duration> = (1..=10)
            .map_while(|retry| UNPROCESSED.wait(retry, &mut source))
            .collect();
        assert_eq!(waits.len(), 9, "10 requests in all, as before");
        for (retry, wait) in (1..).zip(&waits) {
            let delay = UNPROCESSED.delay(retry);
            assert!(*wait <= delay && *wait >= delay / 2, "{retry}: {wait:?}");
        }
        assert_eq!(UNPROCESSED.delay(5), Duration::from_millis(500));
        assert!(
            (0..1000)
                .map(|_| random_unit())
                .all(|u| (0.0..1.0).contains(&u))
        );
    }
}
