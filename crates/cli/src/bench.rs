//! `els bench`: ingest throughput and webhook-to-sale latency of the embedded mode, against
//! the sandbox on loopback. A benchmark, not a test: it reports numbers, it asserts nothing.

use crate::embedded::{Embedded, WEBHOOK_PATH, WorkerOptions};
use crate::ops;
use crate::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use anyhow::Context;
use els_core::ingest::{IngestConfig, Ingestor};
use els_core::ledger::{OrderKey, OrderState};
use els_core::lightspeed::LsApiVersion;
use els_core::poster::{PosterConfig, SalePoster};
use els_core::{LedgerStore, Secret};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::{LightspeedClient, POSTER_RESERVE, Pacing};
use els_sandbox::{OrderItemSpec, OrderSpec, ProductSpec, Sandbox, SandboxConfig};
use els_store_sqlite::SqliteStore;
use rust_decimal::Decimal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A fresh directory under the system temp dir for one benchmark run's SQLite file, removed
/// when dropped, so a failed run leaves nothing behind either.
pub fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("els-bench-").tempdir()
}

pub struct BenchOptions {
    pub webhooks: usize,
    pub concurrency: usize,
    pub orders: usize,
    pub api_version: LsApiVersion,
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

/// Timeout of the benchmarked app's Ecwid and Lightspeed requests.
const BENCH_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

type BenchApp = Embedded<SqliteStore, SqliteStore, EcwidClient, LightspeedClient, TokioClock>;

/// The embedded app on `store`, wired to `sandbox` with the poster's Lightspeed client
/// paced by `pacing`, serving webhooks on a free loopback port: the app and the webhook URL.
async fn serve_bench_app(
    sandbox: &Sandbox,
    store: &SqliteStore,
    pacing: Pacing,
    api_version: LsApiVersion,
) -> anyhow::Result<(Arc<BenchApp>, String)> {
    let timeout = BENCH_HTTP_TIMEOUT;
    let app = Embedded::new(
        Ingestor::new(
            store.clone(),
            store.clone(),
            IngestConfig::new(Secret::new(sandbox.config().webhook_client_secret.clone())),
            TokioClock,
        ),
        SalePoster::new(
            store.clone(),
            EcwidClient::new(sandbox.ecwid_api_url(), timeout)?,
            LightspeedClient::new(lightspeed_url_template(sandbox), timeout)?
                .with_api_version(api_version)
                .with_pacing(pacing),
            TokioClock,
            PosterConfig::default(),
        ),
        store.clone(),
        WorkerOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{WEBHOOK_PATH}", listener.local_addr()?);
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((app, url))
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
    let (app, url) = serve_bench_app(&sandbox, &store, Pacing::default(), opts.api_version).await?;

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
    pub api_version: LsApiVersion,
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
        LightspeedClient::new(lightspeed_url_template(&sandbox), timeout)?
            .with_api_version(opts.api_version),
        TokioClock,
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

/// `els bench-rate-limit`: a burst of paid orders against the sandbox's Lightspeed rate limit.
pub struct RateLimitBenchOptions {
    pub orders: usize,
    /// Lightspeed requests allowed per window (350 = one register).
    pub limit: u32,
    /// The window, scaled down from Lightspeed's 5 minutes.
    pub window: Duration,
    pub api_version: LsApiVersion,
}

/// What a rate-limit burst achieved.
pub struct RateLimitBenchReport {
    pub orders: usize,
    pub limit: u32,
    pub window: Duration,
    pub secs: f64,
    pub ls_requests: u64,
    pub ls_rate_limited: u64,
    pub stats: WindowStats,
}

/// Request counts over time, read against a sliding-window limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowStats {
    /// The most requests counted in any window.
    pub busiest: u64,
    /// Requests per window from the moment the first window's budget was spent, over as many
    /// whole windows as the run lasted after it (`None`: not one whole window). The empty
    /// window at the start gives one free burst, so the overall rate says little.
    pub steady_per_window: Option<f64>,
    pub steady_windows: u32,
}

/// Reads `samples` of `(time, requests so far)` (in time order) against a `window`; the
/// budget counts as spent at `spent` requests.
pub fn window_stats(samples: &[(Duration, u64)], window: Duration, spent: u64) -> WindowStats {
    let count_at = |t: Duration| {
        samples
            .iter()
            .take_while(|(u, _)| *u <= t)
            .last()
            .map_or(0, |(_, n)| *n)
    };
    let busiest = samples
        .iter()
        .map(|(t, n)| n - count_at(t.saturating_sub(window)).min(*n))
        .max()
        .unwrap_or(0);
    let mut stats = WindowStats {
        busiest,
        steady_per_window: None,
        steady_windows: 0,
    };
    if let (Some((t_a, n_a)), Some((t_end, _))) =
        (samples.iter().find(|(_, n)| *n >= spent), samples.last())
    {
        let whole = (t_end.saturating_sub(*t_a).as_secs_f64() / window.as_secs_f64()) as u32;
        if whole >= 1 {
            let n_b = count_at(*t_a + window * whole);
            stats.steady_per_window = Some((n_b - n_a) as f64 / f64::from(whole));
            stats.steady_windows = whole;
        }
    }
    stats
}

impl RateLimitBenchReport {
    pub fn ceiling(&self) -> f64 {
        f64::from(self.limit) / self.window.as_secs_f64()
    }

    pub fn print(&self) {
        let rate = self.orders as f64 / self.secs;
        let ceiling = self.ceiling();
        println!(
            "rate limit {} per {:.1} s (ceiling {ceiling:.1} requests/s), poster reserve {}",
            self.limit,
            self.window.as_secs_f64(),
            els_lightspeed::POSTER_RESERVE
        );
        println!(
            "{} orders posted in {:.2} s: {rate:.1} sales/s = {:.0}% of the ceiling overall \
             (the empty window at the start gives one free burst)",
            self.orders,
            self.secs,
            100.0 * rate / ceiling
        );
        if let Some(s) = self.stats.steady_per_window {
            println!(
                "steady state (over {} whole windows after the first budget was spent): {s:.0} \
                 requests per window = {:.0}% of the limit",
                self.stats.steady_windows,
                100.0 * s / f64::from(self.limit)
            );
        }
        println!(
            "{} Lightspeed requests, {} answered 429, at most {} in one window",
            self.ls_requests, self.ls_rate_limited, self.stats.busiest
        );
    }
}

/// Sends `orders` paid-order webhooks at once to the embedded app, with the worker on, and
/// waits until every order is POSTED. The product, setup and customer caches warm up on the
/// first order, so each further order costs one Lightspeed request (the sale POST).
pub async fn run_rate_limit(
    dir: &Path,
    opts: RateLimitBenchOptions,
) -> anyhow::Result<RateLimitBenchReport> {
    let sandbox = Sandbox::start(SandboxConfig {
        ls_rate_limit: opts.limit,
        ls_rate_window: opts.window,
        ecwid_rate_limit: 1_000_000,
        ..SandboxConfig::default()
    })
    .await?;
    sandbox.add_product(ProductSpec {
        sku: "BENCH-A".into(),
        name: "Benchmark item".into(),
        price_excl_tax: Decimal::new(1999, 2),
        tax_percent: Some(Decimal::from(10)),
        ecwid_stock: None,
        ls_stock: Decimal::from(1_000_000),
        ..ProductSpec::default()
    });
    let store = SqliteStore::open(dir.join("bench.sqlite"))?;
    let conn = ops::upsert_connection(&store, sandbox_connection(&sandbox)).await?;
    // The sandbox sends only the documented headers, and the window is in none of them: the
    // gates assume the scaled window, as they assume the documented 5 minutes in production.
    let pacing = Pacing {
        reserve: POSTER_RESERVE,
        window: opts.window,
        ..Pacing::default()
    };
    let (app, url) = serve_bench_app(&sandbox, &store, pacing, opts.api_version).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(app.clone().run_worker(stop_rx));

    let ids: Vec<String> = (0..opts.orders)
        .map(|_| {
            sandbox.place_order(OrderSpec {
                items: vec![OrderItemSpec::new("BENCH-A", 1)],
                email: "bench.buyer@example.com".into(),
                first_name: "Bench".into(),
                last_name: "Buyer".into(),
                ..OrderSpec::default()
            })
        })
        .collect();
    sandbox.reset_counters();
    let started = Instant::now();
    // Samples of the request counter, from the first webhook on.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (sandbox, done) = (sandbox.clone(), done.clone());
        tokio::spawn(async move {
            let mut samples: Vec<(Duration, u64)> = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                samples.push((started.elapsed(), sandbox.counters().ls_requests));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples.push((started.elapsed(), sandbox.counters().ls_requests));
            samples
        })
    };
    for id in &ids {
        let hook = sandbox.order_webhook("order.created", id, None, "PAID");
        let status = sandbox.deliver(&url, &hook).await?;
        anyhow::ensure!(status.as_u16() == 200, "ingest answered {status}");
    }
    let deadline = opts.window * (opts.orders as u32 / opts.limit.max(1) + 4) + BENCH_HTTP_TIMEOUT;
    loop {
        let c = sandbox.counters();
        if c.ls_sale_posts as usize >= opts.orders {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < deadline,
            "only {} of {} sales posted within {deadline:?}",
            c.ls_sale_posts,
            opts.orders
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.await.context("sampler")?;
    let _ = stop_tx.send(true);
    worker.await.context("worker")?;
    for id in &ids {
        let e = store
            .load_order(&OrderKey::new(conn.store_id, id.clone()))
            .await?;
        anyhow::ensure!(
            e.as_ref().is_some_and(|e| e.state == OrderState::Posted),
            "order {id} is not POSTED"
        );
    }
    anyhow::ensure!(sandbox.sale_count() == opts.orders, "one sale per order");
    let c = sandbox.counters();
    let spent = u64::from(opts.limit.saturating_sub(POSTER_RESERVE));
    let stats = window_stats(&samples, opts.window, spent);
    Ok(RateLimitBenchReport {
        orders: opts.orders,
        limit: opts.limit,
        window: opts.window,
        secs,
        ls_requests: c.ls_requests,
        ls_rate_limited: c.ls_rate_limited,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_stats_count_whole_windows_after_the_first_spent_budget() {
        let s = |ms: u64, n: u64| (Duration::from_millis(ms), n);
        // 10 per 1 s window: spent at 0.5 s, then 8 per window for two windows.
        let samples = [
            s(0, 0),
            s(500, 10),
            s(1000, 12),
            s(1500, 18),
            s(2500, 26),
            s(2700, 27),
        ];
        let w = window_stats(&samples, Duration::from_secs(1), 10);
        assert_eq!(w.busiest, 12);
        assert_eq!(w.steady_windows, 2);
        assert_eq!(w.steady_per_window, Some(8.0));
        assert_eq!(
            window_stats(&samples[..2], Duration::from_secs(1), 10).steady_per_window,
            None
        );
    }

    #[test]
    fn scratch_dir_is_removed_on_drop_with_its_files() {
        let dir = scratch_dir().unwrap();
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("bench.sqlite"), b"x").unwrap();
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
    }
}
