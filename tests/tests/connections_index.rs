//! Connections are listed through the sparse `connections` index, not by a Scan, and a table
//! written before the index (schema version 1) is migrated to it. On moto, each test on its
//! own table.
//!
//! moto reports a fixed consumed capacity per request, so what a read cost is measured by
//! what it evaluated (`ScannedCount`) and by the size of the items it read, from which the
//! test prints the read capacity DynamoDB would charge (`--nocapture` shows it).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ProjectionType,
    PutRequest, ScalarAttributeType, WriteRequest,
};
use els_core::{Connection, ConnectionStore, StoreId};
use els_store_aws::DynamoStore;
use els_tests::contract::{sample_connection, unique_store_id};
use els_tests::moto::{aws_config, moto_endpoint};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

async fn client() -> Client {
    Client::new(&aws_config(&moto_endpoint().await).await)
}

fn unique_table() -> String {
    format!("els-index-{}", uuid::Uuid::new_v4().simple())
}

async fn fresh_store() -> DynamoStore {
    let client = client().await;
    let table = unique_table();
    DynamoStore::create_table(&client, &table).await.unwrap();
    DynamoStore::new(client, table)
}

/// A table as the previous version's template and `create_table` made it: keys only, no
/// index, no META item.
async fn version_1_table() -> DynamoStore {
    let client = client().await;
    let table = unique_table();
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .unwrap();
    DynamoStore::new(client, table)
}

fn connection(store_id: StoreId) -> Connection {
    sample_connection(store_id)
}

async fn raw_get(store: &DynamoStore, pk: &str, sk: &str) -> Option<Item> {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Writes `conn` as the previous version did: the same item without `gsi_connections`.
/// (The current code renders it on a scratch table; the attribute is then removed.)
async fn put_as_version_1(store: &DynamoStore, scratch: &DynamoStore, conn: &Connection) {
    scratch.put_connection(conn, None).await.unwrap();
    let pk = format!("STORE#{}", conn.store_id);
    let mut item = raw_get(scratch, &pk, "CONNECTION").await.unwrap();
    assert!(
        item.remove(DynamoStore::CONNECTIONS_INDEX_ATTRIBUTE)
            .is_some()
    );
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// `count` ledger-like items spread over `stores`, and as many webhook events, each about
/// 700 bytes (the size of a real ledger item), written with BatchWriteItem.
async fn fill_with_other_items(store: &DynamoStore, stores: &[StoreId], count: usize) {
    let payload = "x".repeat(600);
    let mut requests = Vec::new();
    for i in 0..count {
        let store_id = stores[i % stores.len()];
        for (pk, sk) in [
            (format!("STORE#{store_id}"), format!("ORDER#{i}")),
            (format!("EVENT#evt-{i}"), "EVENT".to_string()),
        ] {
            let item = HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk)),
                ("sk".to_string(), AttributeValue::S(sk)),
                ("state".to_string(), AttributeValue::S("POSTED".into())),
                (
                    "store_id".to_string(),
                    AttributeValue::N(store_id.to_string()),
                ),
                ("payload".to_string(), AttributeValue::S(payload.clone())),
            ]);
            let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
            requests.push(WriteRequest::builder().put_request(put).build());
        }
    }
    for chunk in requests.chunks(25) {
        let answer = store
            .client()
            .batch_write_item()
            .request_items(store.table(), chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            answer.unprocessed_items.unwrap_or_default().is_empty(),
            "moto processes every item"
        );
    }
}

/// An item's size as DynamoDB bills it, near enough: names and values (strings in UTF-8,
/// numbers about half their digits, nested values summed with 3 bytes each).
fn item_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| k.len() + value(v) + 1).sum::<usize>()
            }
            AttributeValue::L(l) => 3 + l.iter().map(|v| value(v) + 1).sum::<usize>(),
            _ => 16,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// The listing as the previous version did it: a strongly consistent Scan of the table,
/// filtered to the connections. (items evaluated, read capacity units DynamoDB charges.)
async fn old_scan_listing(store: &DynamoStore) -> (u64, f64) {
    let mut evaluated = 0;
    let mut units = 0.0;
    let mut start = None;
    loop {
        // The bill is for every item the Scan reads, before the filter: measure them.
        let page = store
            .client()
            .scan()
            .table_name(store.table())
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        evaluated += page.scanned_count as u64;
        let bytes: usize = page.items().iter().map(item_size).sum();
        units += bytes.div_ceil(4096) as f64;
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    (evaluated, units)
}

/// What a listing through the index costs on DynamoDB: the Query (eventually consistent,
/// half a unit per 4 KB of index entries) and one strongly consistent unit per 4 KB of
/// each connection item read by BatchGetItem.
async fn index_listing_units(store: &DynamoStore, connections: &[Connection]) -> f64 {
    let entries = index_entries(store).await;
    let entry_bytes: usize = entries.iter().map(item_size).sum();
    let mut units = entry_bytes.div_ceil(4096) as f64 / 2.0;
    for c in connections {
        let item = raw_get(store, &format!("STORE#{}", c.store_id), "CONNECTION")
            .await
            .unwrap();
        units += item_size(&item).div_ceil(4096) as f64;
    }
    units
}

/// The index's entries, read raw.
async fn index_entries(store: &DynamoStore) -> Vec<Item> {
    store
        .client()
        .query()
        .table_name(store.table())
        .index_name(DynamoStore::CONNECTIONS_INDEX)
        .key_condition_expression("#i = :c")
        .expression_attribute_names("#i", DynamoStore::CONNECTIONS_INDEX_ATTRIBUTE)
        .expression_attribute_values(":c", AttributeValue::S("CONNECTION".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

fn ids(connections: &[Connection]) -> Vec<StoreId> {
    connections.iter().map(|c| c.store_id).collect()
}

fn sorted(mut ids: Vec<StoreId>) -> Vec<StoreId> {
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn create_table_makes_a_sparse_keys_only_index_at_the_current_schema_version() {
    let store = fresh_store().await;
    let described = store
        .client()
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let table = described.table().unwrap();
    let index = table
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(DynamoStore::CONNECTIONS_INDEX))
        .expect("the connections index");
    assert_eq!(
        index.projection().and_then(|p| p.projection_type()),
        Some(&ProjectionType::KeysOnly)
    );
    let keys: Vec<(&str, &KeyType)> = index
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (DynamoStore::CONNECTIONS_INDEX_ATTRIBUTE, &KeyType::Hash),
            ("pk", &KeyType::Range)
        ]
    );
    // A new table has nothing to migrate.
    assert_eq!(
        store.schema_version().await.unwrap(),
        DynamoStore::SCHEMA_VERSION
    );
    store.ensure_migrated().await.unwrap();
    let report = store.migrate().await.unwrap();
    assert!(!report.migrated() && report.scanned == 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_listed_from_the_index_among_thousands_of_other_items() {
    let store = fresh_store().await;
    let stores: Vec<StoreId> = (0..3).map(|_| unique_store_id()).collect();
    for id in &stores {
        store.put_connection(&connection(*id), None).await.unwrap();
    }
    fill_with_other_items(&store, &stores, 2500).await;

    let listing = store.list_connections_paged(None).await.unwrap();
    assert_eq!(ids(&listing.connections), sorted(stores.clone()));
    for c in &listing.connections {
        assert_eq!(
            Some(c),
            store.get_connection(c.store_id).await.unwrap().as_ref()
        );
    }
    // The Query evaluated the three connections' entries and nothing else.
    assert_eq!((listing.index_pages, listing.index_entries), (1, 3));
    assert_eq!(
        store.list_connections().await.unwrap(),
        listing.connections,
        "the trait's listing is the same"
    );

    // The index holds keys only: no token is copied into it.
    let entries = index_entries(&store).await;
    assert_eq!(entries.len(), 3);
    for entry in &entries {
        let mut names: Vec<&str> = entry.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["gsi_connections", "pk", "sk"]);
    }

    // What the previous Scan read for the same answer, and what each costs on DynamoDB.
    let (scanned, scan_units) = old_scan_listing(&store).await;
    assert_eq!(scanned, 3 + 2 * 2500 + 1, "every item, META included");
    let index_units = index_listing_units(&store, &listing.connections).await;
    println!(
        "listing 3 connections among {scanned} items: the Scan evaluated {scanned} items \
         (~{scan_units} RCU strongly consistent); the index evaluated {} entries in {} page, \
         then BatchGetItem read 3 items (~{index_units} RCU)",
        listing.index_entries, listing.index_pages
    );
    assert!(
        index_units * 100.0 < scan_units,
        "{index_units} vs {scan_units}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listing_pages_through_the_index_and_batches_past_one_hundred_items() {
    let store = fresh_store().await;
    let stores: Vec<StoreId> = (0..130).map(|_| unique_store_id()).collect();
    for id in &stores {
        store.put_connection(&connection(*id), None).await.unwrap();
    }
    fill_with_other_items(&store, &stores[..5], 200).await;

    let listing = store.list_connections_paged(Some(7)).await.unwrap();
    assert_eq!(ids(&listing.connections), sorted(stores.clone()));
    assert_eq!(listing.index_entries, 130);
    // 130 entries, 7 a page: 19 pages (the last one may be an empty page that ends it).
    assert!(
        (19..=20).contains(&listing.index_pages),
        "{}",
        listing.index_pages
    );
    let whole = store.list_connections_paged(None).await.unwrap();
    assert_eq!(whole.connections, listing.connections);
    assert_eq!(whole.index_pages, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_1_table_is_migrated_once_and_its_old_connections_are_listed() {
    let scratch = fresh_store().await;
    let store = version_1_table().await;
    let old: Vec<Connection> = (0..4).map(|_| connection(unique_store_id())).collect();
    for c in &old {
        put_as_version_1(&store, &scratch, c).await;
    }
    fill_with_other_items(&store, &ids(&old), 300).await;
    assert_eq!(store.schema_version().await.unwrap(), 1, "no META item");
    let behind = store.ensure_migrated().await.unwrap_err().to_string();
    assert!(
        behind.contains("schema version 1") && behind.contains("--backend aws"),
        "{behind}"
    );

    // The deployment adds the index (here create_table does, as on an existing table), and
    // the items keep their version.
    DynamoStore::create_table(store.client(), store.table())
        .await
        .unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 1);
    // Not listed yet: an old connection is not in the index (but is read by key).
    let fresh = connection(unique_store_id());
    store.put_connection(&fresh, None).await.unwrap();
    assert_eq!(
        ids(&store.list_connections().await.unwrap()),
        vec![fresh.store_id]
    );
    assert_eq!(
        store.get_connection(old[0].store_id).await.unwrap(),
        Some(old[0].clone())
    );

    let report = store.migrate().await.unwrap();
    assert_eq!(
        (report.from_version, report.to_version),
        (1, DynamoStore::SCHEMA_VERSION)
    );
    assert!(report.migrated());
    assert_eq!((report.connections_indexed, report.vanished), (4, 0));
    assert_eq!(report.scanned, 4 + 1 + 2 * 300, "one Scan of the table");
    store.ensure_migrated().await.unwrap();

    let mut all: Vec<StoreId> = ids(&old);
    all.push(fresh.store_id);
    let listed = store.list_connections().await.unwrap();
    assert_eq!(ids(&listed), sorted(all.clone()));
    // Nothing but the attribute changed: same contents, same version.
    for c in &old {
        assert_eq!(
            store.get_connection(c.store_id).await.unwrap(),
            Some(c.clone())
        );
    }

    // Idempotent: once at version 2, one GetItem and no Scan.
    let again = store.migrate().await.unwrap();
    assert!(!again.migrated() && again.scanned == 0, "{again:?}");
    let reindexed = store.index_connections().await.unwrap();
    assert_eq!(reindexed.connections_indexed, 0, "{reindexed:?}");
    assert_eq!(ids(&store.list_connections().await.unwrap()), sorted(all));

    // A version-conditioned update (a token refresh) still applies on the migrated item.
    let mut refreshed = old[1].clone();
    refreshed.version += 1;
    store
        .put_connection(&refreshed, Some(old[1].version))
        .await
        .unwrap();
    assert_eq!(
        store.get_connection(refreshed.store_id).await.unwrap(),
        Some(refreshed)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_migrations_and_a_token_refresh_all_succeed() {
    let scratch = fresh_store().await;
    let store = version_1_table().await;
    DynamoStore::create_table(store.client(), store.table())
        .await
        .unwrap();
    let old: Vec<Connection> = (0..40).map(|_| connection(unique_store_id())).collect();
    for c in &old {
        put_as_version_1(&store, &scratch, c).await;
    }
    let mut refreshed = old[7].clone();
    refreshed.version += 1;
    refreshed.lightspeed.access_token = els_core::Secret::new("lsxs_at_2");
    let other = store.clone();
    let (a, b, refresh) = tokio::join!(
        store.migrate(),
        other.migrate(),
        store.put_connection(&refreshed, Some(old[7].version))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    refresh.expect("the migration does not conflict with a version-conditioned write");
    assert!(
        a.connections_indexed + b.connections_indexed >= 39,
        "{a:?} {b:?}"
    );
    assert_eq!(
        store.schema_version().await.unwrap(),
        DynamoStore::SCHEMA_VERSION
    );

    let listed = store.list_connections().await.unwrap();
    assert_eq!(ids(&listed), sorted(ids(&old)));
    let got = listed.iter().find(|c| c.store_id == refreshed.store_id);
    assert_eq!(got, Some(&refreshed), "the refresh is not lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_migration_does_not_downgrade_a_newer_schema_version() {
    let store = fresh_store().await;
    store
        .client()
        .put_item()
        .table_name(store.table())
        .item("pk", AttributeValue::S("META".into()))
        .item("sk", AttributeValue::S("SCHEMA".into()))
        .item("schema_version", AttributeValue::N("9".into()))
        .send()
        .await
        .unwrap();
    let report = store.migrate().await.unwrap();
    assert_eq!((report.from_version, report.to_version), (9, 9));
    assert_eq!(store.schema_version().await.unwrap(), 9);
    store
        .ensure_migrated()
        .await
        .expect("a newer version is accepted");
}
