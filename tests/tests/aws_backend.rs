//! The same core on the AWS adapters: ingest → SQS FIFO (moto) → poster → sandbox, with the
//! ledger in DynamoDB (moto); then the operator's status and replay on that backend.

use els_cli::embedded::{Embedded, WorkerOptions};
use els_cli::ops::{self, ReplayResult};
use els_cli::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use els_core::ingest::{IngestConfig, Ingestor};
use els_core::ledger::{OrderKey, OrderState, ReasonCode};
use els_core::poster::{PostOutcome, PosterConfig, SalePoster};
use els_core::{LedgerStore, Secret, WorkQueue};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::LightspeedClient;
use els_sandbox::{OrderItemSpec, OrderSpec, ProductSpec, Sandbox, SandboxConfig};
use els_store_aws::{DynamoStore, SqsQueue};
use els_tests::moto::{aws_config, moto_endpoint};
use rust_decimal::Decimal;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_orders_post_once_and_parked_ones_replay_on_dynamodb_and_sqs() {
    let config = aws_config(&moto_endpoint().await).await;
    let name = format!("els-e2e-{}", uuid::Uuid::new_v4().simple());
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    DynamoStore::create_table(&dynamo, &name).await.unwrap();
    let store = DynamoStore::new(dynamo, name.clone());
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (queue_url, _dlq) = SqsQueue::create_fifo_with_dlq(&sqs, &name, 5)
        .await
        .unwrap();
    let queue = SqsQueue::new(sqs, queue_url);

    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let conn = ops::upsert_connection(&store, sandbox_connection(&sandbox))
        .await
        .unwrap();
    let timeout = Duration::from_secs(5);
    let app = Embedded::new(
        Ingestor::new(
            store.clone(),
            queue.clone(),
            IngestConfig::new(Secret::new(sandbox.config().webhook_client_secret.clone())),
            TokioClock,
        ),
        SalePoster::new(
            store.clone(),
            EcwidClient::new(sandbox.ecwid_api_url(), timeout).unwrap(),
            LightspeedClient::new(lightspeed_url_template(&sandbox), timeout).unwrap(),
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

    // A paid order, its webhook delivered three times.
    let paid = sandbox.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("MUG-001", 2)],
        ..OrderSpec::default()
    });
    let hook = sandbox.order_webhook("order.created", &paid, None, "PAID");
    for _ in 0..3 {
        assert_eq!(sandbox.deliver(&url, &hook).await.unwrap().as_u16(), 200);
    }
    // An order for a SKU Lightspeed does not have yet.
    sandbox.add_ecwid_product_only(ProductSpec {
        sku: "LATE-SKU".into(),
        name: "Late".into(),
        price_excl_tax: Decimal::from(5),
        ecwid_stock: Some(Decimal::from(3)),
        ..ProductSpec::default()
    });
    let unknown = sandbox.place_order(OrderSpec {
        items: vec![OrderItemSpec::new("LATE-SKU", 1)],
        ..OrderSpec::default()
    });
    let hook = sandbox.order_webhook("order.created", &unknown, None, "PAID");
    assert_eq!(sandbox.deliver(&url, &hook).await.unwrap().as_u16(), 200);

    // Drain the SQS queue through the poster (FIFO: one store's messages one at a time).
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        let batch = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        if batch.is_empty() && outcomes.len() >= 2 {
            break;
        }
        for d in batch {
            outcomes.push(app.settle(d).await.expect("no retry needed"));
        }
    }
    assert_eq!(
        outcomes.len(),
        2,
        "three deliveries of one event were deduplicated: {outcomes:?}"
    );
    let key = OrderKey::new(conn.store_id, paid.clone());
    let posted = store.load_order(&key).await.unwrap().unwrap();
    assert_eq!(posted.state, OrderState::Posted);
    let sales: Vec<_> = sandbox
        .sales()
        .into_iter()
        .filter(|s| s["invoice_number"].as_str() == Some(key.invoice_number().as_str()))
        .collect();
    assert_eq!(sales.len(), 1);
    assert_eq!(posted.sale_id.as_deref(), sales[0]["id"].as_str());

    let counts = ops::counts_by_state(&store, conn.store_id).await.unwrap();
    assert_eq!((counts["POSTED"], counts["PARKED"]), (1, 1));
    let parked = store
        .load_order(&OrderKey::new(conn.store_id, unknown.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parked.reason.as_ref().unwrap().code, ReasonCode::UnknownSku);
    assert!(ops::describe(&parked).contains("UNKNOWN_SKU"));

    // The operator adds the SKU in Lightspeed and replays by reason, on DynamoDB + SQS.
    sandbox.add_ls_product_only(ProductSpec {
        sku: "LATE-SKU".into(),
        name: "Late".into(),
        price_excl_tax: Decimal::from(5),
        ls_stock: Decimal::from(3),
        ..ProductSpec::default()
    });
    let replayed = ops::replay_parked(
        &store,
        &queue,
        conn.store_id,
        ReasonCode::UnknownSku,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(replayed.len(), 1);
    let d = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(d.len(), 1);
    assert!(matches!(
        app.settle(d[0].clone()).await,
        Ok(PostOutcome::Posted { .. })
    ));
    assert_eq!(sandbox.sale_count(), 2);
    // Replaying a posted order does nothing, on this backend too.
    assert_eq!(
        ops::replay_order(&store, &queue, &key, chrono::Utc::now())
            .await
            .unwrap(),
        ReplayResult::NotReplayable(OrderState::Posted)
    );
    assert!(
        queue
            .receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(sandbox.counters().ecwid_order_writes, 0);
}
