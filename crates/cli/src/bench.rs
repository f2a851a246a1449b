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

/// `els bench-inventory`: the inventory mirror on a large catalog.
pub struct InventoryBenchOptions {
    pub catalog: usize,
    pub changes: Vec<usize>,
}

/// Process memory from `/proc/self/status` (Linux), in MiB: (current RSS, peak RSS).
fn memory_mib() -> (Option<f64>, Option<f64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.0} MiB"))
        .unwrap_or_else(|| "n/a".into())
}

/// Builds a catalog of `catalog` products in the sandbox (Ecwid and Lightspeed, equal
/// levels), links it with a first run, then for each entry of `changes` changes that many
/// Lightspeed levels and times one mirror run. Request counts come from the sandbox. The
/// sandbox's rate limits are lifted so the numbers show the mirror's own cost; with the real
/// limits a run needs the same requests. Memory is the whole process (sandbox included).
pub async fn run_inventory(dir: &Path, opts: InventoryBenchOptions) -> anyhow::Result<()> {
    use els_core::inventory::mirror::{InventoryMirror, MirrorConfig};
    let sandbox = Sandbox::start(SandboxConfig {
        seed_demo: false,
        ls_rate_limit: u32::MAX / 2,
        ecwid_rate_limit: u32::MAX / 2,
        ..SandboxConfig::default()
    })
    .await
    .context("starting the sandbox")?;
    let store = SqliteStore::open(dir.join("bench.sqlite"))?;
    let conn = ops::upsert_connection(&store, sandbox_connection(&sandbox)).await?;
    let outlet = sandbox.ids().outlet_id;

    let t = Instant::now();
    let mut ls_ids = Vec::with_capacity(opts.catalog);
    for i in 0..opts.catalog {
        let ids = sandbox.add_product(ProductSpec {
            sku: format!("SKU-{i:06}"),
            name: format!("Product {i}"),
            price_excl_tax: Decimal::from(5),
            ecwid_stock: Some(Decimal::from(20)),
            ls_stock: Decimal::from(20),
            ls_stock_other: Decimal::from(3),
            ..ProductSpec::default()
        });
        ls_ids.push(ids.ls_id().to_string());
    }
    println!(
        "catalog: {} products in Ecwid and Lightspeed (2 outlets) built in {:.1} s",
        opts.catalog,
        t.elapsed().as_secs_f64()
    );

    let timeout = Duration::from_secs(60);
    let mirror = InventoryMirror::new(
        store.clone(),
        EcwidClient::new(sandbox.ecwid_api_url(), timeout)?,
        LightspeedClient::new(lightspeed_url_template(&sandbox), timeout)?,
        SystemClock,
        MirrorConfig {
            max_run: Duration::from_secs(3600),
            batch_poll_interval: Duration::from_millis(50),
            ..MirrorConfig::default()
        },
    );
    let run = |label: String| {
        let mirror = &mirror;
        let sandbox = &sandbox;
        let conn = &conn;
        async move {
            sandbox.reset_counters();
            let t = Instant::now();
            let r = mirror
                .mirror_connection(conn)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let secs = t.elapsed().as_secs_f64();
            let c = sandbox.counters();
            let (rss, peak) = memory_mib();
            println!(
                "{label:<24} {secs:>7.2} s   Lightspeed {:>4} req   Ecwid {:>5} req ({} batch POSTs, {} polls, {} PUTs, {} lookups/scan pages)   written {:>6}   RSS {}   peak {}",
                c.ls_requests,
                c.ecwid_requests,
                c.ecwid_batches,
                r.batch_polls,
                r.written_by_put,
                c.ecwid_requests - c.ecwid_batches - r.batch_polls - r.written_by_put,
                r.written,
                mib(rss),
                mib(peak)
            );
            anyhow::Ok(r)
        }
    };
    run(format!("first run ({} links)", opts.catalog)).await?;
    run("no change".into()).await?;
    for (round, n) in opts.changes.iter().enumerate() {
        let n = (*n).min(ls_ids.len());
        let step = (ls_ids.len() / n.max(1)).max(1);
        for id in ls_ids.iter().step_by(step).take(n) {
            sandbox.set_ls_inventory(id, &outlet, (round as i64) + 1);
        }
        run(format!("{n} change(s)")).await?;
    }
    Ok(())
}
