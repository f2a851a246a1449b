//! `els bench`: ingest throughput and webhook-to-sale latency of the embedded mode, against
//! the sandbox on loopback. A benchmark, not a test: it reports numbers, it asserts nothing.

use crate::embedded::{Embedded, WEBHOOK_PATH, WorkerOptions};
use crate::ops;
use crate::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use anyhow::Context;
use els_core::ingest::{IngestConfig, Ingestor};
use els_core::ledger::{OrderKey, OrderState};
use els_core::poster::{PosterConfig, SalePoster};
use els_core::{Secret, StateStore, SystemClock};
use els_ecwid::EcwidClient;
use els_lightspeed::LightspeedClient;
use els_sandbox::{OrderItemSpec, OrderSpec, ProductSpec, Sandbox, SandboxConfig};
use els_store_sqlite::SqliteStore;
use rust_decimal::Decimal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct BenchOptions {
    pub webhooks: usize,
    pub concurrency: usize,
    pub orders: usize,
}

pub struct BenchReport {
    pub webhooks: usize,
    pub ingest_secs: f64,
    pub ingest_per_sec: f64,
    pub latencies_ms: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

impl BenchReport {
    pub fn print(&self) {
        let mut l = self.latencies_ms.clone();
        l.sort_by(|a, b| a.total_cmp(b));
        println!(
            "ingest: {} signed webhooks in {:.2} s = {:.0} webhooks/s",
            self.webhooks, self.ingest_secs, self.ingest_per_sec
        );
        println!(
            "webhook → sale latency over {} orders: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            l.len(),
            percentile(&l, 50.0),
            percentile(&l, 90.0),
            percentile(&l, 99.0),
            l.last().copied().unwrap_or(f64::NAN)
        );
    }
}

pub async fn run(dir: &Path, opts: BenchOptions) -> anyhow::Result<BenchReport> {
    let sandbox = Sandbox::start(SandboxConfig {
        // The benchmark measures us, not the rate limiter.
        ls_rate_limit: 1_000_000,
        ecwid_rate_limit: 1_000_000,
        ..SandboxConfig::default()
    })
    .await?;
    // Ecwid's stock of the tracked demo items would run out; bench items are unlimited.
    for (sku, tax) in [("BENCH-A", Some(10)), ("BENCH-B", Some(20))] {
        sandbox.add_product(ProductSpec {
            sku: sku.into(),
            name: format!("Benchmark item {sku}"),
            price_excl_tax: Decimal::new(1999, 2),
            tax_percent: tax.map(Decimal::from),
            ecwid_stock: None,
            ls_stock: Decimal::from(1_000_000),
            ..ProductSpec::default()
        });
    }
    let store = SqliteStore::open(dir.join("bench.sqlite"))?;
    let conn = ops::upsert_connection(&store, sandbox_connection(&sandbox)).await?;
    let timeout = Duration::from_secs(10);
    let app = Embedded::new(
        Ingestor::new(
            store.clone(),
            store.clone(),
            IngestConfig::new(Secret::new(sandbox.config().webhook_client_secret.clone())),
        ),
        SalePoster::new(
            store.clone(),
            EcwidClient::new(sandbox.ecwid_api_url(), timeout)?,
            LightspeedClient::new(lightspeed_url_template(&sandbox), timeout)?,
            SystemClock,
            PosterConfig::default(),
        ),
        store.clone(),
        WorkerOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{WEBHOOK_PATH}", listener.local_addr()?);
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    // Phase 1: ingest only (no worker), distinct signed events, `concurrency` connections.
    let hooks: Vec<_> = (0..opts.webhooks)
        .map(|i| sandbox.order_webhook("order.created", &format!("BENCH{i}"), None, "PAID"))
        .collect();
    let hooks = Arc::new(hooks);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency)
        .build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..opts.concurrency {
        let (hooks, http, next, url) = (hooks.clone(), http.clone(), next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(h) = hooks.get(i) else { break };
                let resp = http
                    .post(&url)
                    .header("Content-Type", "application/json; charset=UTF-8")
                    .header(els_core::webhook::SIGNATURE_HEADER, &h.signature)
                    .body(h.body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(resp.status() == 200, "ingest answered {}", resp.status());
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    let (visible, _) = store.queue_depth()?;
    anyhow::ensure!(
        visible == opts.webhooks,
        "expected {} queued messages, found {visible}",
        opts.webhooks
    );
    // Drop the synthetic messages before measuring latency.
    store.purge_queue()?;

    // Phase 2: worker on; one order at a time, webhook sent → ledger POSTED.
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(app.clone().run_worker(stop_rx));
    let mut latencies = Vec::with_capacity(opts.orders);
    for _ in 0..opts.orders {
        let order_id = sandbox.place_order(OrderSpec {
            items: vec![
                OrderItemSpec::new("BENCH-A", 1),
                OrderItemSpec::new("BENCH-B", 2),
            ],
            ..OrderSpec::default()
        });
        let hook = sandbox.order_webhook("order.created", &order_id, None, "PAID");
        let key = OrderKey::new(conn.store_id, order_id);
        let t0 = Instant::now();
        sandbox.deliver(&url, &hook).await?;
        loop {
            if let Some(e) = store.load_order(&key).await?
                && e.state == OrderState::Posted
            {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(10),
                "order {key} not posted within 10 s"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = stop_tx.send(true);
    worker.await.context("worker")?;
    anyhow::ensure!(
        sandbox.sale_count() == opts.orders,
        "expected {} sales",
        opts.orders
    );
    Ok(BenchReport {
        webhooks: opts.webhooks,
        ingest_secs,
        ingest_per_sec: opts.webhooks as f64 / ingest_secs,
        latencies_ms: latencies,
    })
}
