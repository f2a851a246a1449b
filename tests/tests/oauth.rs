//! Lightspeed OAuth with rotating refresh tokens, against the sandbox's strict token
//! endpoint: one refresh for many workers, a refresh after a 401, personal tokens untouched,
//! and a dead refresh token parking the order with a readable reason.

use els_cli::ops;
use els_cli::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use els_core::auth::{AuthConfig, AuthenticatedLightspeed};
use els_core::ledger::{OrderState, ReasonCode};
use els_core::poster::{PostOutcome, PosterConfig, SalePoster};
use els_core::{
    Connection, ConnectionStore, LedgerStore, OrderKey, OrderMessage, Secret, StateStore, StoreId,
};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::LightspeedClient;
use els_lightspeed::oauth::{LightspeedTokenClient, OAuthCredentials};
use els_sandbox::{OAuthMode, OrderItemSpec, OrderSpec, Sandbox, SandboxConfig};
use els_store_aws::DynamoStore;
use els_store_sqlite::SqliteStore;
use els_tests::moto::{aws_config, moto_endpoint};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

type Authenticated<S> =
    AuthenticatedLightspeed<LightspeedClient, S, LightspeedTokenClient, TokioClock>;

/// A fresh adapter: its own HTTP clients and no shared in-process cache, like one Lambda
/// instance.
fn adapter<S: ConnectionStore>(sandbox: &Sandbox, store: S, mode: &OAuthMode) -> Authenticated<S> {
    let template = lightspeed_url_template(sandbox);
    AuthenticatedLightspeed::new(
        LightspeedClient::new(template.clone(), TIMEOUT).unwrap(),
        store,
        LightspeedTokenClient::new(
            reqwest::Client::builder().timeout(TIMEOUT).build().unwrap(),
            template,
            Some(OAuthCredentials {
                client_id: mode.client_id.clone(),
                client_secret: Secret::new(mode.client_secret.clone()),
            }),
        ),
        TokioClock,
        AuthConfig {
            poll_interval: Duration::from_millis(20),
            ..AuthConfig::default()
        },
    )
}

fn poster<S: StateStore + Clone>(
    sandbox: &Sandbox,
    store: &S,
    mode: &OAuthMode,
) -> SalePoster<S, EcwidClient, Authenticated<S>, TokioClock> {
    SalePoster::new(
        store.clone(),
        EcwidClient::new(sandbox.ecwid_api_url(), TIMEOUT).unwrap(),
        adapter(sandbox, store.clone(), mode),
        TokioClock,
        PosterConfig {
            lease: Duration::from_secs(5),
            retry_base: Duration::from_millis(50),
            retry_cap: Duration::from_millis(500),
            search_delay: Duration::from_millis(100),
            ..PosterConfig::default()
        },
    )
}

/// Switches the sandbox to OAuth with a token expiring in `expires_in_secs` and stores the
/// matching connection.
async fn oauth_connection<S: StateStore>(
    sandbox: &Sandbox,
    store: &S,
    expires_in_secs: i64,
) -> (OAuthMode, Connection) {
    let mode = OAuthMode {
        expires_in_secs,
        ..OAuthMode::default()
    };
    sandbox.enable_ls_oauth(mode.clone());
    let mut conn = sandbox_connection(sandbox);
    conn.lightspeed.access_token = Secret::new(mode.access_token.clone());
    conn.lightspeed.refresh_token = Some(Secret::new(mode.refresh_token.clone()));
    conn.lightspeed.expires_at =
        Some(chrono::Utc::now() + chrono::Duration::seconds(expires_in_secs));
    let conn = ops::upsert_connection(store, conn).await.unwrap();
    (mode, conn)
}

fn paid_order(sandbox: &Sandbox, i: usize) -> OrderMessage {
    let order_id = sandbox.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 1)],
        email: format!("buyer{i}@example.com"),
        ..OrderSpec::default()
    });
    OrderMessage::from_webhook(
        StoreId::literal(sandbox.config().ecwid_store_id),
        order_id,
        format!("evt-{i}"),
    )
}

/// Ten independent workers (own adapter, own HTTP clients, one shared store) post ten orders
/// at once while the token is about to expire.
async fn ten_workers_refresh_once<S: StateStore + Clone + 'static>(store: S) {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    // 30 s left, inside the 60 s refresh margin: every worker wants a refresh.
    let (mode, _) = oauth_connection(&sandbox, &store, 30).await;
    let messages: Vec<OrderMessage> = (0..10).map(|i| paid_order(&sandbox, i)).collect();
    sandbox.reset_counters();

    let start = Arc::new(tokio::sync::Barrier::new(messages.len()));
    let workers = messages.iter().cloned().map(|message| {
        let worker = poster(&sandbox, &store, &mode);
        let start = start.clone();
        tokio::spawn(async move {
            start.wait().await;
            worker.post_paid_order(&message).await
        })
    });
    let outcomes = futures::future::join_all(workers).await;

    for outcome in outcomes {
        let outcome = outcome.expect("worker ran").expect("no retry needed");
        assert!(
            matches!(outcome, PostOutcome::Posted { .. }),
            "posted: {outcome:?}"
        );
    }
    assert_eq!(sandbox.sale_count(), 10, "every order became a sale");
    let counters = sandbox.counters();
    assert_eq!(counters.ls_token_refreshes, 1, "exactly one refresh");
    assert_eq!(counters.ls_token_requests, 1, "nobody else spent the token");
    assert_eq!(
        counters.ls_stale_token_requests, 0,
        "no invalidated token in use"
    );
    let newest = sandbox.ls_oauth_tokens().unwrap();
    let stored = store
        .get_connection(StoreId::literal(sandbox.config().ecwid_store_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.lightspeed.access_token.expose(), newest.access_token);
    assert_eq!(
        stored.lightspeed.refresh_token.as_ref().map(Secret::expose),
        Some(newest.refresh_token.as_str())
    );
    assert_ne!(newest.refresh_token, mode.refresh_token, "it rotated");
    assert_eq!(stored.lightspeed.refresh_lease_until, None);
    assert!(
        stored.lightspeed.expires_at.unwrap() > chrono::Utc::now() + chrono::Duration::minutes(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_workers_refresh_an_expiring_token_once_on_sqlite() {
    ten_workers_refresh_once(SqliteStore::open_in_memory().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_workers_refresh_an_expiring_token_once_on_dynamodb() {
    let config = aws_config(&moto_endpoint().await).await;
    let name = format!("els-oauth-{}", uuid::Uuid::new_v4().simple());
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    DynamoStore::create_table(&dynamo, &name).await.unwrap();
    ten_workers_refresh_once(DynamoStore::new(dynamo, name)).await;
}

/// The same race with the tokens stored as KMS ciphertext: the rotated pair is encrypted
/// under the same version-conditioned write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_workers_refresh_an_expiring_encrypted_token_once_on_dynamodb() {
    let store = els_tests::moto::encrypted_table("els-oauth").await;
    ten_workers_refresh_once(store.clone()).await;
    let calls = store.token_cipher().unwrap().kms_calls();
    // connect + the rotated pair, each one Encrypt (a connection's tokens are sealed
    // together); every read answered from the cache.
    assert_eq!(calls.encrypt, 2, "{calls:?}");
    assert_eq!(calls.decrypt, 0, "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_mid_life_refreshes_once_and_the_order_posts() {
    let store = SqliteStore::open_in_memory().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (mode, _) = oauth_connection(&sandbox, &store, 1800).await;
    let message = paid_order(&sandbox, 0);
    sandbox.revoke_ls_access_token();
    sandbox.reset_counters();

    let outcome = poster(&sandbox, &store, &mode)
        .post_paid_order(&message)
        .await
        .expect("no retry needed");

    assert!(matches!(outcome, PostOutcome::Posted { .. }), "{outcome:?}");
    assert_eq!(sandbox.sale_count(), 1);
    let counters = sandbox.counters();
    assert_eq!(counters.ls_token_refreshes, 1);
    assert_eq!(
        counters.ls_stale_token_requests, 1,
        "only the request that discovered the revocation"
    );
    let stored = store
        .get_connection(message.store_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.lightspeed.access_token.expose(),
        sandbox.ls_oauth_tokens().unwrap().access_token
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_token_never_calls_the_token_endpoint() {
    let store = SqliteStore::open_in_memory().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let conn = ops::upsert_connection(&store, sandbox_connection(&sandbox))
        .await
        .unwrap();
    assert!(conn.lightspeed.refresh_token.is_none());
    let message = paid_order(&sandbox, 0);

    let outcome = poster(&sandbox, &store, &OAuthMode::default())
        .post_paid_order(&message)
        .await
        .expect("no retry needed");

    assert!(matches!(outcome, PostOutcome::Posted { .. }), "{outcome:?}");
    assert_eq!(sandbox.sale_count(), 1);
    assert_eq!(sandbox.counters().ls_token_requests, 0);
    let stored = store
        .get_connection(message.store_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, conn, "the connection is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_refresh_token_parks_the_order_unauthorized() {
    let store = SqliteStore::open_in_memory().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    // Expired already, and the refresh token the store holds is not the retailer's.
    let (mode, mut conn) = oauth_connection(&sandbox, &store, -10).await;
    conn.lightspeed.refresh_token = Some(Secret::new("lsxs_rt_revoked"));
    let conn = ops::upsert_connection(&store, conn).await.unwrap();
    let message = paid_order(&sandbox, 0);
    sandbox.reset_counters();

    let outcome = poster(&sandbox, &store, &mode)
        .post_paid_order(&message)
        .await
        .expect("an outcome, not a retry");

    let PostOutcome::Parked(reason) = outcome else {
        panic!("parked: {outcome:?}");
    };
    assert_eq!(reason.code, ReasonCode::Unauthorized);
    assert!(reason.message.contains("reconnect"), "{}", reason.message);
    assert_eq!(sandbox.sale_count(), 0, "nothing posted");
    assert_eq!(sandbox.counters().ls_sale_posts, 0);
    assert_eq!(sandbox.counters().ls_token_refreshes, 0);
    let entry = store
        .load_order(&OrderKey::new(message.store_id, message.order_id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.state, OrderState::Parked);
    // The failed refresh left no lease behind.
    let stored = store.get_connection(conn.store_id).await.unwrap().unwrap();
    assert_eq!(stored.lightspeed.refresh_lease_until, None);
    assert_eq!(stored.lightspeed.access_token, conn.lightspeed.access_token);
}

/// The sandbox's token endpoint is strict: wrong client credentials and a spent refresh
/// token are refused, and a refresh kills the old access token at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_rotates_and_refuses_spent_tokens() {
    use els_core::LightspeedApi as _;
    use els_core::auth::LightspeedTokens as _;
    let store = SqliteStore::open_in_memory().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (mode, conn) = oauth_connection(&sandbox, &store, 1800).await;
    let template = lightspeed_url_template(&sandbox);
    let http = reqwest::Client::new();
    let tokens = |secret: &str| {
        LightspeedTokenClient::new(
            http.clone(),
            template.clone(),
            Some(OAuthCredentials {
                client_id: mode.client_id.clone(),
                client_secret: Secret::new(secret),
            }),
        )
    };
    let old_refresh = Secret::new(mode.refresh_token.clone());

    let wrong_client = tokens("not-the-secret").refresh(&conn, &old_refresh).await;
    assert!(
        matches!(
            wrong_client,
            Err(els_core::ApiError::Unauthorized { status: 401, .. })
        ),
        "{wrong_client:?}"
    );
    let answer = tokens(&mode.client_secret)
        .refresh(&conn, &old_refresh)
        .await
        .expect("a new pair")
        .into_grant(chrono::Utc::now())
        .unwrap();
    assert!(answer.refresh_token.is_some());
    assert!(answer.expires_at.is_some());
    let spent = tokens(&mode.client_secret)
        .refresh(&conn, &old_refresh)
        .await;
    assert!(
        matches!(spent, Err(els_core::ApiError::Rejected { status: 400, .. })),
        "{spent:?}"
    );

    // The old access token died with the refresh; the new one works.
    let client = LightspeedClient::new(template.clone(), TIMEOUT).unwrap();
    sandbox.reset_counters();
    let old = client.sale_setup(&conn).await;
    assert!(
        matches!(
            old,
            Err(els_core::ApiError::Unauthorized { status: 401, .. })
        ),
        "{old:?}"
    );
    assert_eq!(sandbox.counters().ls_stale_token_requests, 1);
    let mut fresh = conn.clone();
    fresh.lightspeed.access_token = answer.access_token;
    client
        .sale_setup(&fresh)
        .await
        .expect("the new token works");
}

/// A token answer without `refresh_token` keeps the stored one, which still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_refresh_token_keeps_the_old_one() {
    use els_core::LightspeedApi as _;
    let store = SqliteStore::open_in_memory().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let mode = OAuthMode {
        expires_in_secs: 10,
        rotate_refresh_token: false,
        ..OAuthMode::default()
    };
    sandbox.enable_ls_oauth(mode.clone());
    let mut conn = sandbox_connection(&sandbox);
    conn.lightspeed.access_token = Secret::new(mode.access_token.clone());
    conn.lightspeed.refresh_token = Some(Secret::new(mode.refresh_token.clone()));
    conn.lightspeed.expires_at = Some(chrono::Utc::now() + chrono::Duration::seconds(10));
    let conn = ops::upsert_connection(&store, conn).await.unwrap();

    adapter(&sandbox, store.clone(), &mode)
        .sale_setup(&conn)
        .await
        .expect("refreshed, then read");

    let stored = store.get_connection(conn.store_id).await.unwrap().unwrap();
    assert_eq!(sandbox.counters().ls_token_refreshes, 1);
    assert_eq!(
        stored.lightspeed.refresh_token.as_ref().map(Secret::expose),
        Some(mode.refresh_token.as_str())
    );
    assert_ne!(stored.lightspeed.access_token, conn.lightspeed.access_token);
    // Force the next refresh: the kept refresh token is still the valid one.
    sandbox.revoke_ls_access_token();
    adapter(&sandbox, store.clone(), &mode)
        .sale_setup(&stored)
        .await
        .expect("a 401, a refresh with the kept token, a retry");
    assert_eq!(sandbox.counters().ls_token_refreshes, 2);
}

/// Issue #12, Lambda deadlines: with less time left than a step needs, neither the token
/// refresh nor the sale POST starts (a refresh killed after Lightspeed rotated the pair would
/// lose the only refresh token); the order is released and posts once time allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_refresh_and_no_sale_post_start_too_close_to_the_deadline() {
    let store = SqliteStore::open_in_memory().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    // 30 s left on the token: inside the refresh margin.
    let (mode, _) = oauth_connection(&sandbox, &store, 30).await;
    let message = paid_order(&sandbox, 0);
    sandbox.reset_counters();
    let deadline = els_core::deadline::Deadline::none();
    let worker = SalePoster::new(
        store.clone(),
        EcwidClient::new(sandbox.ecwid_api_url(), TIMEOUT).unwrap(),
        adapter(&sandbox, store.clone(), &mode).with_deadline(deadline.clone()),
        TokioClock,
        PosterConfig {
            lease: Duration::from_secs(5),
            search_delay: Duration::from_millis(100),
            ..PosterConfig::default()
        },
    )
    .with_deadline(deadline.clone());
    let refresh_needs = AuthConfig::default().refresh_time_needed;

    // Less than the refresh needs: the token is not refreshed, the (still valid) old one
    // is used, and the sale POST, which needs as long, does not start either.
    deadline.set(Some(
        chrono::Utc::now() + chrono::Duration::from_std(refresh_needs / 2).unwrap(),
    ));
    let retry = worker
        .post_paid_order(&message)
        .await
        .expect_err("released for a retry");
    assert!(retry.reason.contains("too little time left"), "{retry:?}");
    assert_eq!(
        sandbox.counters().ls_token_requests,
        0,
        "no refresh started"
    );
    assert_eq!(sandbox.sale_count(), 0, "no sale POST started");
    let entry = store.load_order(&message.key()).await.unwrap().unwrap();
    assert_eq!(entry.state, OrderState::Queued);
    assert!(!entry.post_may_exist, "nothing was sent");

    // The next invocation has its full time: one refresh, one sale.
    deadline.set(Some(chrono::Utc::now() + chrono::Duration::minutes(5)));
    let outcome = worker.post_paid_order(&message).await.expect("posted");
    assert!(matches!(outcome, PostOutcome::Posted { .. }), "{outcome:?}");
    assert_eq!(sandbox.counters().ls_token_refreshes, 1);
    assert_eq!(sandbox.sale_count(), 1);
}

/// A store that refuses to take a new token pair (a put whose access token is not the
/// original one) while `refusals` lasts, as a throttled table would.
#[derive(Clone)]
struct RefusesNewPairs<S> {
    inner: S,
    original: String,
    refusals: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: ConnectionStore> ConnectionStore for RefusesNewPairs<S> {
    async fn get_connection(
        &self,
        store_id: StoreId,
    ) -> Result<Option<Connection>, els_core::StoreError> {
        self.inner.get_connection(store_id).await
    }
    async fn put_connection(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
    ) -> Result<(), els_core::StoreError> {
        use std::sync::atomic::Ordering;
        if connection.lightspeed.access_token.expose() != self.original
            && self
                .refusals
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(els_core::StoreError::Unavailable("throttled".into()));
        }
        self.inner
            .put_connection(connection, expected_version)
            .await
    }
    async fn list_connections(&self) -> Result<Vec<Connection>, els_core::StoreError> {
        self.inner.list_connections().await
    }
}

/// Issue #12: a refreshed pair the store did not take (the old refresh token is spent) is
/// stored again before anything else uses the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_pair_the_store_did_not_take_is_stored_before_the_next_use() {
    let sqlite = SqliteStore::open_in_memory().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let (mode, conn) = oauth_connection(&sandbox, &sqlite, 30).await;
    let store = RefusesNewPairs {
        inner: sqlite.clone(),
        original: mode.access_token.clone(),
        // Every attempt of the refresh itself.
        refusals: Arc::new(std::sync::atomic::AtomicUsize::new(
            AuthConfig::default().store_attempts as usize,
        )),
    };
    let client = adapter(&sandbox, store.clone(), &mode);
    sandbox.reset_counters();

    use els_core::LightspeedApi as _;
    client
        .sale_setup(&conn)
        .await
        .expect("the new token works from memory");
    assert_eq!(sandbox.counters().ls_token_refreshes, 1);
    let stored = sqlite.get_connection(conn.store_id).await.unwrap().unwrap();
    assert_eq!(
        stored.lightspeed.access_token.expose(),
        mode.access_token,
        "the store refused the new pair"
    );

    // The next use stores it first (the table took writes again), then reads.
    client.sale_setup(&conn).await.expect("read");
    let stored = sqlite.get_connection(conn.store_id).await.unwrap().unwrap();
    let issued = sandbox.ls_oauth_tokens().unwrap();
    assert_eq!(stored.lightspeed.access_token.expose(), issued.access_token);
    assert_eq!(
        stored.lightspeed.refresh_token.as_ref().map(Secret::expose),
        Some(issued.refresh_token.as_str())
    );
    assert_eq!(stored.lightspeed.refresh_lease_until, None);
    assert_eq!(sandbox.counters().ls_token_refreshes, 1, "spent once");
}
