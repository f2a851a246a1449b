//! One Lightspeed rate budget per retailer, shared by processes: two poster workers in
//! separate processes (`poster_worker`: the real DynamoDB store, SQS queue and Lightspeed
//! client with the budget in DynamoDB, all on moto) drain one queue of one store's orders
//! against one retailer of the sandbox. Together they never exceed the sandbox's limit (it
//! answers 429 to any request over it, and none is sent), and every order posts once.
//!
//! The workers leave no reserve, so the budget alone keeps them under the limit (the gates
//! behind it learn only from `X-RateLimit-Remaining`): without it (`ELS_BUDGET_SHARED=0`)
//! the same run gets 429s (16 to 26 in our runs). The window is scaled down from 5 minutes
//! to 2.5 s and the limit to 25, below what two debug workers on moto post per second, so
//! the limit binds all along; the run takes some 40 s.
//!
//! Environment: `ELS_BUDGET_ORDERS` (default 200; the benchmark runs 1000),
//! `ELS_BUDGET_LIMIT` (25), `ELS_BUDGET_WINDOW_MS` (2500), `ELS_BUDGET_RESERVE` (0),
//! `ELS_BUDGET_WORKERS` (2), `ELS_BUDGET_SHARED` (1).

use els_cli::ops;
use els_cli::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use els_core::ledger::{OrderKey, OrderState};
use els_core::ports::OrderMessage;
use els_core::{LedgerStore, WorkQueue};
use els_sandbox::{OrderItemSpec, OrderSpec, ProductSpec, Sandbox, SandboxConfig};
use els_store_aws::{DynamoStore, SqsQueue};
use els_tests::moto::{aws_config, moto_endpoint};
use futures::StreamExt;
use rust_decimal::Decimal;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_poster_processes_share_one_budget_and_post_every_order_once() {
    let orders = env_or("ELS_BUDGET_ORDERS", 200) as usize;
    let limit = env_or("ELS_BUDGET_LIMIT", 25) as u32;
    let window = Duration::from_millis(env_or("ELS_BUDGET_WINDOW_MS", 2500));
    let shared = env_or("ELS_BUDGET_SHARED", 1) != 0;
    let reserve = env_or("ELS_BUDGET_RESERVE", 0) as u32;
    let workers = env_or("ELS_BUDGET_WORKERS", 2) as usize;

    let endpoint = moto_endpoint().await;
    let config = aws_config(&endpoint).await;
    let name = format!("els-budget-{}", uuid::Uuid::new_v4().simple());
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    DynamoStore::create_table(&dynamo, &name).await.unwrap();
    let store = DynamoStore::new(dynamo, name.clone());
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (queue_url, _dlq) = SqsQueue::create_fifo_with_dlq(&sqs, &name, 50)
        .await
        .unwrap();
    let queue = SqsQueue::new(sqs, queue_url.clone());

    let sandbox = Sandbox::start(SandboxConfig {
        ls_rate_limit: limit,
        ls_rate_window: window,
        // Ecwid is not under test here.
        ecwid_rate_limit: 1_000_000,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let conn = ops::upsert_connection(&store, sandbox_connection(&sandbox))
        .await
        .unwrap();
    for (sku, tax) in [("BUDGET-A", 10), ("BUDGET-B", 20)] {
        sandbox.add_product(ProductSpec {
            sku: sku.into(),
            name: format!("Budget test item {sku}"),
            price_excl_tax: Decimal::new(1250, 2),
            tax_percent: Some(Decimal::from(tax)),
            ecwid_stock: None,
            ls_stock: Decimal::from(1_000_000),
            ..ProductSpec::default()
        });
    }
    // One buyer: once the customer and product links are stored, an order is one
    // Lightspeed request (the sale POST), so the orders outrun the budget.
    let ids: Vec<String> = (0..orders)
        .map(|i| {
            sandbox.place_order(OrderSpec {
                items: vec![OrderItemSpec::new(
                    if i % 2 == 0 { "BUDGET-A" } else { "BUDGET-B" },
                    1 + (i % 3) as u32,
                )],
                email: "budget.buyer@example.com".into(),
                first_name: "Budget".into(),
                last_name: "Buyer".into(),
                order_id: Some(format!("SB{i}")),
                ..OrderSpec::default()
            })
        })
        .collect();
    let sent: Vec<_> = futures::stream::iter(ids.iter())
        .map(|id| {
            let queue = &queue;
            let message = OrderMessage::from_webhook(conn.store_id, id.clone(), format!("e-{id}"));
            async move { queue.enqueue(&message).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(sent.iter().all(Result::is_ok), "every order queued");

    // Samples of the sandbox's request counter, for the busiest window.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (sandbox, done) = (sandbox.clone(), done.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let t0 = Instant::now();
            while !done.load(Ordering::Relaxed) {
                samples.push((t0.elapsed(), sandbox.counters().ls_requests));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        })
    };

    let started = Instant::now();
    let processes: Vec<_> = (0..workers)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_poster_worker"))
                .env("ELS_MOTO_ENDPOINT", &endpoint)
                .env("ELS_WORKER_TABLE", &name)
                .env("ELS_WORKER_QUEUE_URL", &queue_url)
                .env("ELS_WORKER_LS_URL", lightspeed_url_template(&sandbox))
                .env("ELS_WORKER_ECWID_URL", sandbox.ecwid_api_url())
                .env("ELS_WORKER_WINDOW_MS", window.as_millis().to_string())
                .env("ELS_WORKER_RESERVE", reserve.to_string())
                .env("ELS_WORKER_SHARED", if shared { "1" } else { "0" })
                // Far beyond what the limit allows: a debug build on moto is slow.
                .env(
                    "ELS_WORKER_DEADLINE_SECS",
                    (120 + orders as u64 * window.as_millis() as u64 / u64::from(limit) / 100)
                        .to_string(),
                )
                .stdout(Stdio::piped())
                .spawn()
                .expect("a poster worker starts")
        })
        .collect();
    // The workers exit once the queue is empty; wait for them off the runtime's threads,
    // which serve the sandbox meanwhile.
    let reports: Vec<serde_json::Value> = tokio::task::spawn_blocking(move || {
        processes
            .into_iter()
            .map(|w| {
                let out = w.wait_with_output().expect("a worker ends");
                assert!(out.status.success(), "a worker failed: {:?}", out.status);
                let stdout = String::from_utf8_lossy(&out.stdout);
                serde_json::from_str(stdout.lines().last().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("a worker's report: {e}: {stdout}"))
            })
            .collect()
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();

    let c = sandbox.counters();
    let ceiling = f64::from(limit) / window.as_secs_f64();
    let stats = els_cli::bench::window_stats(&samples, window, u64::from(limit - reserve));
    let budget = |field: &str| -> u64 {
        reports
            .iter()
            .map(|r| r["budget"][field].as_u64().unwrap())
            .sum()
    };
    eprintln!(
        "shared budget ({}): {orders} orders by {workers} processes in {:.2} s, {} Lightspeed \
         requests ({} sale POSTs, {} searches, {} GETs), {} 429s, at most {} requests in one \
         window of {window:?} (limit {limit}, reserve {reserve}); {:.1} sales/s = {:.0}% of \
         the ceiling {ceiling:.1}/s; budget: {} slots granted, {} DynamoDB writes ({:.2} per \
         request), {} lost races, {} waits ({} of them reads of a full window), {} slots \
         expired unspent",
        if shared { "on" } else { "OFF" },
        elapsed.as_secs_f64(),
        c.ls_requests,
        c.ls_sale_posts,
        c.ls_searches,
        c.ls_gets,
        c.ls_rate_limited,
        stats.busiest,
        orders as f64 / elapsed.as_secs_f64(),
        100.0 * orders as f64 / elapsed.as_secs_f64() / ceiling,
        budget("granted"),
        budget("writes"),
        budget("writes") as f64 / budget("granted").max(1) as f64,
        budget("conflicts"),
        budget("waits"),
        budget("full_reads"),
        budget("unspent"),
    );

    // The workers' AWS calls per order, by operation.
    let mut calls = std::collections::BTreeMap::<String, u64>::new();
    for r in &reports {
        for (op, n) in r["aws_calls"].as_object().into_iter().flatten() {
            *calls.entry(op.clone()).or_default() += n.as_u64().unwrap_or(0);
        }
    }
    let per_order: Vec<String> = calls
        .iter()
        .map(|(op, n)| format!("{op} {:.2}", *n as f64 / orders as f64))
        .collect();
    eprintln!("AWS calls per order: {}", per_order.join(", "));

    // Both worked until the queue was drained, and together settled every order.
    for r in &reports {
        assert_eq!(r["drained"], true, "a worker stopped at its deadline: {r}");
        assert!(
            r["settled"].as_u64().unwrap() > 0,
            "each worker worked: {r}"
        );
    }
    let posted: u64 = reports.iter().map(|r| r["posted"].as_u64().unwrap()).sum();

    // Every order has exactly one sale, and its ledger says POSTED with that sale.
    let sales = sandbox.sales();
    for id in &ids {
        let key = OrderKey::new(conn.store_id, id.clone());
        let invoice = key.invoice_number();
        let mine: Vec<_> = sales
            .iter()
            .filter(|s| s["invoice_number"].as_str() == Some(invoice.as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "order {id}: one sale");
        let entry = store.load_order(&key).await.unwrap().expect("ledger item");
        assert_eq!(entry.state, OrderState::Posted, "order {id}");
        assert_eq!(entry.sale_id.as_deref(), mine[0]["id"].as_str());
    }
    assert_eq!(sales.len(), orders, "one sale per order");
    assert_eq!(posted as usize, orders, "each order posted once");
    assert_eq!(queue.queue_depth().await.unwrap(), (0, 0), "drained");

    // Together they never went over the limit: the sandbox never had to say 429.
    assert_eq!(c.ls_rate_limited, 0, "{c:?}");
    // And the budget was what held them back: the requests outran one window's budget,
    // the workers waited for it, and every request took a slot.
    if shared {
        if c.ls_requests > u64::from(limit) {
            assert!(
                budget("waits") > 0,
                "the limit never bound: make the burst larger"
            );
        }
        assert!(budget("granted") >= c.ls_requests, "{c:?}");
    }
}
