//! Test wiring shared by the handler tests: real components only (SQLite, the sandbox, the
//! reqwest clients), no mocks.

use els_cli::sandbox_setup::lightspeed_url_template;
use els_core::StoreId;
use els_core::inventory::mirror::{InventoryMirror, MirrorConfig};
use els_core::poster::{PosterConfig, SalePoster};
use els_core::{Connection, ConnectionStore, LightspeedAccount, Secret, Settings};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::LightspeedClient;
use els_sandbox::{Sandbox, SandboxConfig};
use els_store_sqlite::SqliteStore;
use std::time::Duration;

pub type TestPoster = SalePoster<SqliteStore, EcwidClient, LightspeedClient, TokioClock>;
pub type TestMirror = InventoryMirror<SqliteStore, EcwidClient, LightspeedClient, TokioClock>;

/// The sandbox's connection (the one builder, shared with `els serve`) as
/// [`sandbox_and_store`] stores it: version 1.
pub fn sandbox_connection(sb: &Sandbox) -> Connection {
    Connection {
        version: 1,
        ..els_cli::sandbox_setup::sandbox_connection(sb)
    }
}

/// A stand-in connection for a store the sandbox does not serve (ingest only reads that
/// one exists).
pub fn placeholder_connection(store_id: StoreId) -> Connection {
    Connection {
        store_id,
        ecwid_token: Secret::new("secret_placeholder"),
        lightspeed: LightspeedAccount {
            domain_prefix: "placeholder".parse().expect("a valid prefix"),
            access_token: Secret::new("lsxs_pt_placeholder"),
            refresh_token: None,
            expires_at: None,
            refresh_lease_until: None,
        },
        register_id: "register".into(),
        outlet_id: "outlet".into(),
        user_id: "user".into(),
        payment_type_id: "payment-type".into(),
        shipping_product_id: None,
        discount_product_id: None,
        fees_product_id: None,
        gift_card_payment_type_id: None,
        refund_product_id: None,
        go_live_at: None,
        restored_at: None,
        lightspeed_webhooks: None,
        settings: Settings::default(),
        version: 1,
    }
}

/// A fresh sandbox and an in-memory SQLite store that holds its connection.
pub async fn sandbox_and_store() -> (Sandbox, SqliteStore) {
    let sb = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let store = SqliteStore::open_in_memory().expect("SQLite opens");
    store
        .put_connection(&sandbox_connection(&sb), None)
        .await
        .expect("connection stored");
    (sb, store)
}

/// The Ecwid and Lightspeed clients as the functions' mains build them (one shared HTTP
/// client), on the sandbox.
fn sandbox_clients(sb: &Sandbox) -> (EcwidClient, LightspeedClient) {
    let http = crate::tls::api_http_client(Duration::from_secs(5)).expect("HTTP client");
    let ecwid = EcwidClient::with_http(http.clone(), sb.ecwid_api_url());
    let lightspeed = LightspeedClient::with_http(http, lightspeed_url_template(sb));
    (ecwid, lightspeed)
}

/// The poster as `sale-poster`'s main builds it, pointed at the sandbox.
pub fn sandbox_poster(sb: &Sandbox, store: &SqliteStore) -> TestPoster {
    let (ecwid, lightspeed) = sandbox_clients(sb);
    SalePoster::new(
        store.clone(),
        ecwid,
        lightspeed,
        TokioClock,
        PosterConfig::default(),
    )
}

/// The mirror as `inventory-sync`'s main builds it, pointed at the sandbox.
pub fn sandbox_mirror(sb: &Sandbox, store: &SqliteStore) -> TestMirror {
    let (ecwid, lightspeed) = sandbox_clients(sb);
    InventoryMirror::new(
        store.clone(),
        ecwid,
        lightspeed,
        TokioClock,
        MirrorConfig::default(),
    )
}

/// The sample EventBridge scheduled event (`infra/events/inventory-sync.scheduled.json`), as
/// the schedules deliver it to `inventory-sync` and `order-sweep`.
pub fn scheduled_event() -> aws_lambda_events::eventbridge::EventBridgeEvent {
    serde_json::from_str(include_str!(
        "../../../infra/events/inventory-sync.scheduled.json"
    ))
    .expect("sample scheduled event parses")
}
