//! Merchant tokens in DynamoDB are KMS ciphertext (issue #17), on moto (DynamoDB, SQS, KMS):
//! the item holds no token in clear, a connection's tokens are sealed in one ciphertext (one
//! Decrypt per cold read, counted by the cipher and by the SDK meter); items written one
//! ciphertext per token are still read and are sealed by their next write; ingest (no key)
//! → SQS → poster (key) → sandbox and the inventory mirror work, with the KMS calls of a cold
//! and a warm container counted; a ciphertext moved to another store's item (or attribute)
//! does not decrypt and that store's orders park asking to reconnect; the migration seals
//! plain-text and per-token connections once.
//!
//! moto's KMS binds a ciphertext to its encryption context (the AES-GCM additional data),
//! so the moved-ciphertext refusal below is moto's, as it would be KMS's.

use aws_sdk_dynamodb::types::AttributeValue;
use els_cli::embedded::{Embedded, WorkerOptions};
use els_cli::ops;
use els_cli::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use els_core::ingest::{IngestConfig, Ingestor};
use els_core::inventory::mirror::{InventoryMirror, MirrorConfig};
use els_core::ledger::{OrderKey, OrderState, ReasonCode};
use els_core::poster::{PostOutcome, PosterConfig, SalePoster};
use els_core::{
    Connection, ConnectionStore, LedgerStore, OrderMessage, Secret, StoreError, StoreId, WorkQueue,
};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::LightspeedClient;
use els_sandbox::{OrderItemSpec, OrderSpec, Sandbox, SandboxConfig};
use els_store_aws::metering::{KMS, Meter};
use els_store_aws::{
    DynamoStore, ENCRYPTED_TOKEN_PLACEHOLDER, KmsCalls, SqsQueue, TokenAttribute, TokenCipher,
};
use els_tests::contract::{sample_connection, unique_store_id};
use els_tests::moto::{aws_config, encrypted_table, moto_endpoint};
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Item = HashMap<String, AttributeValue>;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The same table and key as `store`, as another container sees it: its own cipher, so an
/// empty cache and its own KMS call counts.
fn cold_container(store: &DynamoStore) -> DynamoStore {
    let cipher = store
        .token_cipher()
        .expect("an encrypted store")
        .clone()
        .with_cache_ttl(TokenCipher::DEFAULT_CACHE_TTL);
    DynamoStore::new(store.client().clone(), store.table()).with_token_cipher(cipher)
}

/// A cold container whose KMS client carries the cost meter: the requests KMS really gets.
async fn metered_container(store: &DynamoStore) -> (DynamoStore, Meter) {
    let config = aws_config(&moto_endpoint().await).await;
    let meter = Meter::new();
    let kms = meter.kms((&config).into());
    let key = store.token_cipher().expect("a cipher").key_id().to_string();
    let container = DynamoStore::new(store.client().clone(), store.table())
        .with_token_cipher(TokenCipher::new(kms, key));
    (container, meter)
}

/// The table as webhook-ingest opens it: no token key.
fn without_key(store: &DynamoStore) -> DynamoStore {
    DynamoStore::new(store.client().clone(), store.table())
}

fn calls(store: &DynamoStore) -> KmsCalls {
    store.token_cipher().expect("a cipher").kms_calls()
}

async fn put_raw(store: &DynamoStore, item: Item) {
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// `conn` as the code before the tokens were sealed together wrote it: each token its own
/// KMS ciphertext under the encryption context of its attribute, no `tokens` attribute.
async fn put_per_token_format(store: &DynamoStore, conn: &Connection) {
    let plain = without_key(store);
    plain.put_connection(conn, None).await.unwrap();
    let mut item = raw_connection(store, conn.store_id).await;
    let cipher = store.token_cipher().unwrap();
    let mut sealed = Vec::new();
    for (attribute, token) in [
        (TokenAttribute::EcwidToken, Some(&conn.ecwid_token)),
        (
            TokenAttribute::LightspeedAccessToken,
            Some(&conn.lightspeed.access_token),
        ),
        (
            TokenAttribute::LightspeedRefreshToken,
            conn.lightspeed.refresh_token.as_ref(),
        ),
    ] {
        if let Some(token) = token {
            let ciphertext = cipher
                .encrypt(conn.store_id, attribute, token)
                .await
                .unwrap();
            sealed.push((
                attribute,
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(ciphertext)),
            ));
        }
    }
    let mut lightspeed = item["lightspeed"].as_m().unwrap().clone();
    for (attribute, value) in sealed {
        match attribute {
            TokenAttribute::EcwidToken => {
                item.insert("ecwid_token".into(), value);
            }
            TokenAttribute::LightspeedAccessToken => {
                lightspeed.insert("access_token".into(), value);
            }
            _ => {
                lightspeed.insert("refresh_token".into(), value);
            }
        }
    }
    item.insert("lightspeed".into(), AttributeValue::M(lightspeed));
    put_raw(store, item).await;
}

/// Whether the item is in the sealed format: one `tokens` ciphertext, and `true` where each
/// of the connection's tokens was.
fn assert_sealed(item: &Item, with_refresh_token: bool) {
    assert!(
        matches!(item.get("tokens"), Some(AttributeValue::B(_))),
        "one ciphertext for the tokens"
    );
    assert_eq!(item["ecwid_token"], AttributeValue::Bool(true));
    let lightspeed = item["lightspeed"].as_m().unwrap();
    assert_eq!(lightspeed["access_token"], AttributeValue::Bool(true));
    if with_refresh_token {
        assert_eq!(lightspeed["refresh_token"], AttributeValue::Bool(true));
    }
}

async fn raw_connection(store: &DynamoStore, store_id: StoreId) -> Item {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("STORE#{store_id}")))
        .key("sk", AttributeValue::S("CONNECTION".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the connection item")
}

/// Every string and every binary value (as text) anywhere in the item.
fn all_values(value: &AttributeValue, out: &mut Vec<String>) {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => out.push(s.clone()),
        AttributeValue::B(b) => out.push(String::from_utf8_lossy(b.as_ref()).into_owned()),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => out.extend(v.iter().cloned()),
        AttributeValue::Bs(v) => out.extend(
            v.iter()
                .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned()),
        ),
        AttributeValue::M(m) => m.values().for_each(|v| all_values(v, out)),
        AttributeValue::L(l) => l.iter().for_each(|v| all_values(v, out)),
        _ => {}
    }
}

fn assert_no_token_in_clear(item: &Item, tokens: &[&str]) {
    let mut values = Vec::new();
    for (name, value) in item {
        values.push(name.clone());
        all_values(value, &mut values);
    }
    for token in tokens {
        assert!(!token.is_empty());
        for v in &values {
            assert!(!v.contains(token), "token {token:?} in clear in {v:?}");
        }
    }
}

fn tokens_of(conn: &Connection) -> Vec<String> {
    let mut out = vec![
        conn.ecwid_token.expose().to_string(),
        conn.lightspeed.access_token.expose().to_string(),
    ];
    out.extend(
        conn.lightspeed
            .refresh_token
            .as_ref()
            .map(|t| t.expose().to_string()),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_item_holds_no_token_in_clear() {
    let store = encrypted_table("els-tokens").await;
    let conn = sample_connection(unique_store_id());
    store.put_connection(&conn, None).await.unwrap();

    let item = raw_connection(&store, conn.store_id).await;
    let tokens = tokens_of(&conn);
    assert_eq!(tokens.len(), 3);
    assert_no_token_in_clear(
        &item,
        &tokens.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_sealed(&item, true);

    // Read back by another container (a cold cache): the same connection, one Decrypt for
    // its three tokens, as KMS counts it.
    let (cold, meter) = metered_container(&store).await;
    assert_eq!(
        cold.get_connection(conn.store_id).await.unwrap(),
        Some(conn.clone())
    );
    assert_eq!(
        calls(&cold),
        KmsCalls {
            encrypt: 0,
            decrypt: 1
        }
    );
    assert_eq!(meter.snapshot().requests(KMS, "Decrypt"), 1);
    assert_eq!(cold.list_connections().await.unwrap(), vec![conn.clone()]);
    assert_eq!(calls(&cold).decrypt, 1, "listed from the cache");

    // A settings change keeps the tokens: their ciphertext is reused, no Encrypt.
    let mut settings = conn.clone();
    settings.settings.post_sales = false;
    settings.version = 2;
    cold.put_connection(&settings, Some(1)).await.unwrap();
    assert_eq!(calls(&cold).encrypt, 0);
    assert_eq!(
        raw_connection(&store, conn.store_id).await["tokens"],
        item["tokens"],
        "the same ciphertext"
    );

    // A version-conditioned rewrite with one new token (a refresh) seals the tokens again:
    // one Encrypt.
    let mut refreshed = settings.clone();
    refreshed.lightspeed.access_token = Secret::new("lsxs_at_2");
    refreshed.version = 3;
    cold.put_connection(&refreshed, Some(2)).await.unwrap();
    assert_eq!(
        calls(&cold),
        KmsCalls {
            encrypt: 1,
            decrypt: 1
        }
    );
    assert_eq!(meter.snapshot().requests(KMS, "Encrypt"), 1);
    assert_eq!(
        store.get_connection(conn.store_id).await.unwrap(),
        Some(refreshed.clone())
    );
    assert!(matches!(
        cold.put_connection(&refreshed, Some(2)).await,
        Err(StoreError::Conflict(_))
    ));
    let item = raw_connection(&store, conn.store_id).await;
    assert_no_token_in_clear(
        &item,
        &["lsxs_at_2", "lsxs_rt_1", conn.ecwid_token.expose()],
    );

    // Without the key (webhook-ingest): the connection exists, its tokens are placeholders,
    // no KMS call is possible, and the placeholders cannot be written back.
    let ingest = without_key(&store);
    let seen = ingest.get_connection(conn.store_id).await.unwrap().unwrap();
    assert_eq!(seen.ecwid_token.expose(), ENCRYPTED_TOKEN_PLACEHOLDER);
    assert_eq!(
        seen.lightspeed.access_token.expose(),
        ENCRYPTED_TOKEN_PLACEHOLDER
    );
    assert_eq!(seen.register_id, conn.register_id);
    assert_eq!(
        seen.lightspeed
            .refresh_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        Some(ENCRYPTED_TOKEN_PLACEHOLDER.to_string())
    );
    let mut next = seen.clone();
    next.version = 4;
    assert!(matches!(
        ingest.put_connection(&next, Some(3)).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.put_connection(&next, Some(3)).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(
        store.get_connection(conn.store_id).await.unwrap(),
        Some(refreshed)
    );
}

/// A connection written one ciphertext per token (deployments from before the tokens were
/// sealed together) is still read, one Decrypt per token; its next write seals the tokens
/// in one ciphertext, after which a cold read is one Decrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_token_connection_is_read_and_its_next_write_seals_it() {
    let store = encrypted_table("els-tokens-old").await;
    let conn = sample_connection(unique_store_id());
    put_per_token_format(&store, &conn).await;
    let old = raw_connection(&store, conn.store_id).await;
    assert!(matches!(old["ecwid_token"], AttributeValue::B(_)));
    assert!(!old.contains_key("tokens"));
    assert_no_token_in_clear(
        &old,
        &tokens_of(&conn)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );

    let (reader, meter) = metered_container(&store).await;
    assert_eq!(
        reader.get_connection(conn.store_id).await.unwrap(),
        Some(conn.clone())
    );
    assert_eq!(meter.take().requests(KMS, "Decrypt"), 3, "one per token");
    assert_eq!(reader.list_connections().await.unwrap(), vec![conn.clone()]);
    // Without the key, each token is a placeholder.
    let seen = without_key(&store)
        .get_connection(conn.store_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.ecwid_token.expose(), ENCRYPTED_TOKEN_PLACEHOLDER);

    // The next write of the connection (a settings change) seals the tokens: one Encrypt.
    let mut changed = conn.clone();
    changed.settings.post_sales = false;
    changed.version = conn.version + 1;
    reader
        .put_connection(&changed, Some(conn.version))
        .await
        .unwrap();
    assert_eq!(meter.take().requests(KMS, "Encrypt"), 1);
    let sealed = raw_connection(&store, conn.store_id).await;
    assert_sealed(&sealed, true);
    assert_no_token_in_clear(
        &sealed,
        &tokens_of(&conn)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let (cold, cold_meter) = metered_container(&store).await;
    assert_eq!(
        cold.get_connection(conn.store_id).await.unwrap(),
        Some(changed)
    );
    let counted = cold_meter.snapshot();
    assert_eq!(counted.requests(KMS, "Decrypt"), 1, "one for all tokens");
    assert_eq!(counted.service_requests(KMS), 1);
}

/// Ingest (without the key) → SQS → poster (a cold container with the key) → sandbox, then
/// the inventory mirror, with the KMS calls counted: the first order of a store costs one
/// Decrypt (its tokens are sealed together), the next ones none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_and_the_inventory_mirror_work_with_encrypted_tokens() {
    let config = aws_config(&moto_endpoint().await).await;
    let store = encrypted_table("els-tokens-e2e").await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (queue_url, _dlq) = SqsQueue::create_fifo_with_dlq(&sqs, store.table(), 5)
        .await
        .unwrap();
    let queue = SqsQueue::new(sqs, queue_url);
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let conn = ops::upsert_connection(&store, sandbox_connection(&sandbox))
        .await
        .unwrap();
    let item = raw_connection(&store, conn.store_id).await;
    assert_no_token_in_clear(
        &item,
        &tokens_of(&conn)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );

    let poster_store = cold_container(&store);
    let app = Embedded::new(
        Ingestor::new(
            without_key(&store),
            queue.clone(),
            IngestConfig::new(Secret::new(sandbox.config().webhook_client_secret.clone())),
            TokioClock,
        ),
        SalePoster::new(
            poster_store.clone(),
            EcwidClient::new(sandbox.ecwid_api_url(), TIMEOUT).unwrap(),
            LightspeedClient::new(lightspeed_url_template(&sandbox), TIMEOUT).unwrap(),
            TokioClock,
            PosterConfig::default(),
        ),
        queue.clone(),
        WorkerOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/ecwid", listener.local_addr().unwrap());
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut per_order = Vec::new();
    for i in 0..3 {
        let order = sandbox.place_order(OrderSpec {
            items: vec![OrderItemSpec::new("MUG-001", 1)],
            email: format!("buyer{i}@example.com"),
            ..OrderSpec::default()
        });
        let hook = sandbox.order_webhook("order.created", &order, None, "PAID");
        assert_eq!(sandbox.deliver(&url, &hook).await.unwrap().as_u16(), 200);
        let before = calls(&poster_store);
        let started = Instant::now();
        let delivered = queue.receive(1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(delivered.len(), 1, "order {i} was queued by ingest");
        let outcome = app.settle(delivered[0].clone()).await.expect("no retry");
        let elapsed = started.elapsed();
        assert!(
            matches!(outcome, PostOutcome::Posted { .. }),
            "order {i}: {outcome:?}"
        );
        let after = calls(&poster_store);
        per_order.push((
            after.encrypt - before.encrypt,
            after.decrypt - before.decrypt,
            elapsed,
        ));
        let entry = store
            .load_order(&OrderKey::new(conn.store_id, order))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.state, OrderState::Posted);
    }
    eprintln!("KMS calls per order (encrypt, decrypt, time to settle): {per_order:?}");
    // The sandbox's connection has an Ecwid token and a personal Lightspeed token (no
    // refresh token), sealed together: one Decrypt for the first order, none after.
    assert_eq!((per_order[0].0, per_order[0].1), (0, 1), "{per_order:?}");
    for (encrypt, decrypt, _) in &per_order[1..] {
        assert_eq!(
            (*encrypt, *decrypt),
            (0, 0),
            "a warm order calls KMS: {per_order:?}"
        );
    }
    assert_eq!(sandbox.sale_count(), 3);

    // The inventory mirror, in a container of its own: it lists (and decrypts) the
    // connection once, then runs from its cache.
    let mirror_store = cold_container(&store);
    let mirror = InventoryMirror::new(
        mirror_store.clone(),
        EcwidClient::new(sandbox.ecwid_api_url(), TIMEOUT).unwrap(),
        LightspeedClient::new(lightspeed_url_template(&sandbox), TIMEOUT).unwrap(),
        TokioClock,
        MirrorConfig::default(),
    );
    let first = mirror.mirror_all().await.unwrap();
    assert_eq!(first.len(), 1);
    first[0].as_ref().expect("the first run completes");
    assert_eq!(
        calls(&mirror_store),
        KmsCalls {
            encrypt: 0,
            decrypt: 1
        }
    );
    let ids = sandbox.ids();
    sandbox.pos_sale(ids.mug.ls_id(), 5, &ids.register_id);
    let second = mirror.mirror_all().await.unwrap();
    let report = second[0].as_ref().expect("the second run completes");
    assert!(report.written >= 1, "{report:?}");
    let mug = sandbox.ecwid_stock(ids.mug.ecwid_id(), None).unwrap();
    let ls_mug = sandbox.inventory_level(ids.mug.ls_id(), &ids.outlet_id);
    assert_eq!(mug, ls_mug, "Ecwid has Lightspeed's level");
    assert_eq!(
        calls(&mirror_store),
        KmsCalls {
            encrypt: 0,
            decrypt: 1
        },
        "the warm run made no KMS call"
    );
}

/// A ciphertext copied into another store's item, or into another attribute, does not
/// decrypt: the listing leaves that store out, and its orders park `UNAUTHORIZED` asking to
/// reconnect; connecting again fixes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciphertext_moved_to_another_store_does_not_decrypt_and_its_orders_park() {
    let store = encrypted_table("els-tokens-moved").await;
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let a = ops::upsert_connection(&store, sandbox_connection(&sandbox))
        .await
        .unwrap();
    let go_live = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let b = ops::upsert_connection(
        &store,
        Connection {
            go_live_at: Some(go_live),
            ..sample_connection(unique_store_id())
        },
    )
    .await
    .unwrap();
    let c = ops::upsert_connection(&store, sample_connection(unique_store_id()))
        .await
        .unwrap();

    // Someone with write access to the table copies store A's sealed tokens into store B's
    // item, and store C's into C's own Lightspeed access token.
    let a_tokens = raw_connection(&store, a.store_id).await["tokens"].clone();
    let c_tokens = raw_connection(&store, c.store_id).await["tokens"].clone();
    assert!(matches!(a_tokens, AttributeValue::B(_)));
    for (target, path, value) in [
        (b.store_id, "tokens", a_tokens),
        (c.store_id, "lightspeed.access_token", c_tokens),
    ] {
        let (names, expression) = match path.split_once('.') {
            Some((map, field)) => (
                vec![("#m", map.to_string()), ("#f", field.to_string())],
                "SET #m.#f = :v",
            ),
            None => (vec![("#m", path.to_string())], "SET #m = :v"),
        };
        let mut update = store
            .client()
            .update_item()
            .table_name(store.table())
            .key("pk", AttributeValue::S(format!("STORE#{target}")))
            .key("sk", AttributeValue::S("CONNECTION".into()))
            .update_expression(expression)
            .expression_attribute_values(":v", value);
        for (k, v) in names {
            update = update.expression_attribute_names(k, v);
        }
        update.send().await.unwrap();
    }

    let reader = cold_container(&store);
    for (victim, attribute, kept) in [
        (&b, "tokens", Some(go_live)),
        (&c, "lightspeed.access_token", None),
    ] {
        match reader.get_connection(victim.store_id).await {
            Err(StoreError::Undecryptable {
                store_id,
                version,
                go_live_at,
                detail,
            }) => {
                assert_eq!(store_id, victim.store_id);
                // What a reconnect needs: the version to replace, the go-live to keep.
                assert_eq!((version, go_live_at), (victim.version, kept));
                assert!(detail.contains(attribute), "{detail}");
                assert!(detail.contains("InvalidCiphertext"), "{detail}");
            }
            other => panic!(
                "store {}: expected Undecryptable, got {other:?}",
                victim.store_id
            ),
        }
    }
    // The listing goes on without them.
    let listing = reader.list_connections_paged(None).await.unwrap();
    assert_eq!(
        listing
            .connections
            .iter()
            .map(|c| c.store_id)
            .collect::<Vec<_>>(),
        vec![a.store_id]
    );
    let mut left_out: Vec<StoreId> = listing.undecryptable.iter().map(|(s, _)| *s).collect();
    left_out.sort();
    let mut expected = vec![b.store_id, c.store_id];
    expected.sort();
    assert_eq!(left_out, expected);
    // Without the key (ingest), B still exists: its webhooks are queued, not dropped.
    assert!(
        without_key(&store)
            .get_connection(b.store_id)
            .await
            .unwrap()
            .is_some()
    );

    // B's order parks with a reason that says what to do; A's still posts.
    let poster = SalePoster::new(
        reader.clone(),
        EcwidClient::new(sandbox.ecwid_api_url(), TIMEOUT).unwrap(),
        LightspeedClient::new(lightspeed_url_template(&sandbox), TIMEOUT).unwrap(),
        TokioClock,
        PosterConfig::default(),
    );
    let b_order = OrderMessage::from_webhook(b.store_id, "1001", "evt-b");
    let outcome = poster.post_paid_order(&b_order).await.expect("no retry");
    let PostOutcome::Parked(reason) = outcome else {
        panic!("expected a parked order, got {outcome:?}");
    };
    assert_eq!(reason.code, ReasonCode::Unauthorized);
    assert!(reason.message.contains("reconnect"), "{}", reason.message);
    let parked = store
        .load_order(&OrderKey::new(b.store_id, "1001"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parked.state, OrderState::Parked);
    assert!(ops::describe(&parked).contains("reconnect"));
    assert_eq!(
        sandbox.counters().ecwid_requests,
        0,
        "nothing sent with a bad token"
    );

    let a_order = sandbox.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 1)],
        ..OrderSpec::default()
    });
    let a_message = OrderMessage::from_webhook(a.store_id, a_order, "evt-a");
    assert!(matches!(
        poster.post_paid_order(&a_message).await,
        Ok(PostOutcome::Posted { .. })
    ));

    // Reconnecting B (what `els connect` writes) replaces the connection at its version with
    // new ciphertext; it reads again, and a settings change (which keeps the tokens) works.
    let again = ops::upsert_connection(&store, sample_connection(b.store_id))
        .await
        .unwrap();
    assert_eq!(again.version, b.version + 1);
    assert_eq!(
        reader.get_connection(b.store_id).await.unwrap(),
        Some(again)
    );
    // C's settings cannot change while its tokens are unreadable: nothing would be kept.
    assert!(matches!(
        ops::update_connection(&store, c.store_id, |c| c.settings.post_sales = false).await,
        Err(StoreError::Undecryptable { .. })
    ));
}

/// A table from before encryption, and from before the tokens were sealed together: the
/// migration reports its plain-text and per-token connections, seals them once at their
/// version, and a second run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_seals_plain_text_and_per_token_connections_once() {
    let store = encrypted_table("els-tokens-migrate").await;
    let old = without_key(&store);
    let plain = sample_connection(unique_store_id());
    old.put_connection(&plain, None).await.unwrap();
    let encrypted = sample_connection(unique_store_id());
    store.put_connection(&encrypted, None).await.unwrap();
    let per_token = sample_connection(unique_store_id());
    put_per_token_format(&store, &per_token).await;
    let tokens = tokens_of(&plain);
    let raw = raw_connection(&store, plain.store_id).await;
    let raw_per_token = raw_connection(&store, per_token.store_id).await;
    assert_eq!(raw["ecwid_token"], AttributeValue::S(tokens[0].clone()));
    // Plain text is still read, with or without the key.
    assert_eq!(
        store.get_connection(plain.store_id).await.unwrap(),
        Some(plain.clone())
    );

    let dry = store.encrypt_tokens(false).await.unwrap();
    assert_eq!(dry.connections, 3);
    assert_eq!(dry.plain_text, vec![plain.store_id]);
    assert_eq!(dry.per_token, vec![per_token.store_id]);
    assert_eq!(dry.encrypted, 0);
    assert_eq!(
        raw_connection(&store, plain.store_id).await,
        raw,
        "a dry run writes nothing"
    );
    assert_eq!(
        raw_connection(&store, per_token.store_id).await,
        raw_per_token
    );
    assert!(matches!(
        old.encrypt_tokens(true).await,
        Err(StoreError::Unavailable(m)) if m.contains("token key")
    ));

    let first = store.encrypt_tokens(true).await.unwrap();
    assert_eq!(first.plain_text, vec![plain.store_id]);
    assert_eq!(first.per_token, vec![per_token.store_id]);
    assert_eq!(first.encrypted, 2);
    assert!(first.undecryptable.is_empty());
    for (conn, before) in [(&plain, &raw), (&per_token, &raw_per_token)] {
        let migrated = raw_connection(&store, conn.store_id).await;
        assert_sealed(&migrated, true);
        assert_no_token_in_clear(
            &migrated,
            &tokens_of(conn)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            migrated["version"], before["version"],
            "the version is kept"
        );
        assert_eq!(migrated["gsi_connections"], before["gsi_connections"]);
        let (cold, meter) = metered_container(&store).await;
        assert_eq!(
            cold.get_connection(conn.store_id).await.unwrap(),
            Some(conn.clone())
        );
        assert_eq!(meter.snapshot().requests(KMS, "Decrypt"), 1);
    }

    let untouched: Vec<Item> = futures::future::join_all(
        [&plain, &encrypted, &per_token].map(|c| raw_connection(&store, c.store_id)),
    )
    .await;
    let second = store.encrypt_tokens(true).await.unwrap();
    assert_eq!(second.connections, 3);
    assert!(second.plain_text.is_empty(), "{second:?}");
    assert!(second.per_token.is_empty(), "{second:?}");
    assert_eq!(second.encrypted, 0);
    let after: Vec<Item> = futures::future::join_all(
        [&plain, &encrypted, &per_token].map(|c| raw_connection(&store, c.store_id)),
    )
    .await;
    assert_eq!(after, untouched);
}
