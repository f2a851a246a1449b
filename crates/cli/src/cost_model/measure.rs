//! The measurement behind `els cost`: the real code paths on the AWS adapters, against moto
//! (DynamoDB, SQS, KMS) and the embedded sandbox (Ecwid, Lightspeed), with a
//! [`Meter`] on every AWS client.
//!
//! - **Orders.** Each order is placed in the sandbox and its signed `order.created` PAID
//!   webhook handed to [`Ingestor::handle_webhook`] (webhook-ingest: the DynamoDB
//!   webhook-event store without a token key, the SQS FIFO queue); every `batch_size`
//!   orders, the queue is drained as the sale-poster is fed: one ReceiveMessage of up to
//!   `batch_size` messages per invocation, each record posted by [`SalePoster`] (the
//!   DynamoDB ledger, tokens decrypted with KMS) and settled on the queue. With
//!   `cold_token_cache`, the poster's token cache is emptied before each order: at a million
//!   orders a month over 10,000 stores a store's orders are hours apart, and the cache keeps
//!   a token 15 minutes.
//! - **Store-minutes.** `stores` connections, each on its own sandbox, with a small catalog.
//!   One warm-up minute links the catalogs (not counted, except the KMS Decrypts of a cold
//!   token cache, per store); then each of `minutes` minutes changes `changes_per_minute`
//!   Lightspeed levels per store and runs the fan-out as deployed: inventory-sync's tick
//!   (schema check, connection listing without tokens, one "mirror store S" job per store
//!   on the store-jobs FIFO queue), then store-worker as its SQS event source feeds it
//!   (a receive of up to `worker_batch_size` jobs, the batch's stores mirrored concurrently
//!   by [`InventoryMirror::mirror_store`], one DeleteMessageBatch).
//!
//! Wall times are measured around each step (the floor of a Lambda's billed duration: the
//! real APIs answer slower than the sandbox on loopback), and log bytes are what the
//! functions' JSON log format writes for those steps at `info`.

use crate::embedded::{WorkerOptions, settle};
use crate::ops;
use crate::sandbox_setup::{lightspeed_url_template, sandbox_connection};
use anyhow::{Context, bail, ensure};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use els_core::ingest::{IngestConfig, Ingestor};
use els_core::inventory::mirror::{InventoryMirror, MirrorConfig};
use els_core::jobs::{JobKind, JobQueue, StoreJob, tick_jobs};
use els_core::ledger::OrderKey;
use els_core::poster::{PosterConfig, SalePoster};
use els_core::{ConnectionStore, LedgerStore, Secret, WorkQueue};
use els_ecwid::EcwidClient;
use els_http::TokioClock;
use els_lightspeed::LightspeedClient;
use els_sandbox::{OrderItemSpec, OrderSpec, ProductSpec, Sandbox, SandboxConfig};
use els_store_aws::metering::{KMS, Meter, Metered, OperationCount};
use els_store_aws::{DynamoStore, SqsJobQueue, SqsQueue, TokenCipher};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::instrument::WithSubscriber;

/// What to run.
#[derive(Clone, Debug)]
pub struct MeasureOptions {
    pub moto_endpoint: String,
    pub orders: usize,
    /// Messages per sale-poster invocation (template.yaml `PosterBatchSize`, default 1).
    pub batch_size: usize,
    /// Jobs per store-worker invocation (template.yaml `InventoryWorkerBatchSize`).
    pub worker_batch_size: usize,
    pub stores: usize,
    pub minutes: usize,
    pub changes_per_minute: usize,
    pub cold_token_cache: bool,
}

/// What was counted, per phase.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub options: MeasureOptions,
    /// Webhook-ingest, for all orders.
    pub ingest: Metered,
    /// The sale-poster's receives, posts and settlements, for all orders.
    pub poster: Metered,
    /// inventory-sync's ticks: schema check, connection listing, jobs enqueued.
    pub tick: Metered,
    /// store-worker: the jobs received, `mirror_store` of every store, the batch
    /// deletes (the SQS event source's requests are billed to the account too).
    pub worker: Metered,
    /// KMS Decrypts per store when its token cache is cold (the warm-up minute).
    pub cold_decrypts_per_store: f64,
    /// Wall time of each phase, in seconds.
    pub ingest_secs: f64,
    pub poster_secs: f64,
    pub tick_secs: f64,
    /// Summed over store-worker invocations (a batch's stores run concurrently).
    pub worker_secs: f64,
    /// ReceiveMessage calls that returned messages: one invocation each.
    pub poster_invocations: u64,
    pub worker_invocations: u64,
    /// Log bytes each phase wrote in the functions' format.
    pub ingest_log_bytes: u64,
    pub poster_log_bytes: u64,
    pub tick_log_bytes: u64,
    pub worker_log_bytes: u64,
    /// Orders whose ledger entry is POSTED at the end.
    pub posted: usize,
    /// Ledger saves, read back from the table: the sum of the orders' ledger `version`s
    /// (each save adds one).
    pub ledger_saves: u64,
}

impl Measurement {
    pub fn store_minutes(&self) -> usize {
        self.options.stores * self.options.minutes
    }
}

/// Counts the bytes written through it.
#[derive(Clone, Default)]
struct ByteCount(Arc<AtomicU64>);

impl Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `fut` with the functions' log format (crates/functions/src/telemetry.rs: JSON, one
/// object per line, span list, `info`) writing into `bytes`; returns its output and wall time.
async fn step<T>(bytes: &ByteCount, fut: impl Future<Output = T>) -> (T, f64) {
    let sink = bytes.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(true)
        .with_writer(move || sink.clone())
        .finish();
    let started = Instant::now();
    let out = fut.with_subscriber(subscriber).await;
    (out, started.elapsed().as_secs_f64())
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Products per inventory store's catalog.
const CATALOG: usize = 20;

fn unlimited_sandbox(store_id: u64) -> SandboxConfig {
    SandboxConfig {
        ecwid_store_id: store_id,
        // The measurement counts AWS requests, not the rate limiters.
        ls_rate_limit: u32::MAX / 2,
        ecwid_rate_limit: u32::MAX / 2,
        ..SandboxConfig::default()
    }
}

/// Runs the measurement (see the module doc).
pub async fn run(opts: MeasureOptions) -> anyhow::Result<Measurement> {
    ensure!(opts.orders > 0, "--orders must be at least 1");
    ensure!(
        (1..=10).contains(&opts.batch_size),
        "--batch-size must be 1 to 10 (SQS FIFO)"
    );
    ensure!(
        (1..=10).contains(&opts.worker_batch_size),
        "--worker-batch-size must be 1 to 10 (SQS)"
    );
    ensure!(
        opts.stores > 0 && opts.minutes > 0,
        "--stores and --minutes must be at least 1"
    );
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .empty_test_environment()
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .endpoint_url(&opts.moto_endpoint)
        .load()
        .await;
    let meter = Meter::new();
    let dynamo = meter.dynamodb((&sdk).into());
    let sqs = meter.sqs((&sdk).into());
    let kms = meter.kms((&sdk).into());

    let name = format!("els-cost-{}", uuid_like());
    DynamoStore::create_table(&dynamo, &name)
        .await
        .with_context(|| {
            format!(
                "creating a DynamoDB table on moto at {} (is moto running?)",
                opts.moto_endpoint
            )
        })?;
    let (queue_url, _dlq) = SqsQueue::create_fifo_with_dlq(&sqs, &name, 10).await?;
    let key = kms
        .create_key()
        .description("els cost: connection tokens")
        .send()
        .await?
        .key_metadata
        .and_then(|m| m.arn)
        .context("KMS CreateKey returned no ARN")?;
    // Each function has its own process, so its own token cache.
    let cipher = || TokenCipher::new(kms.clone(), key.clone());
    let ingest_store = DynamoStore::new(dynamo.clone(), name.clone());
    let poster_cipher = cipher();
    let poster_store =
        DynamoStore::new(dynamo.clone(), name.clone()).with_token_cipher(poster_cipher.clone());
    let mirror_cipher = cipher();
    let mirror_store =
        DynamoStore::new(dynamo.clone(), name.clone()).with_token_cipher(mirror_cipher.clone());
    let queue = SqsQueue::new(sqs.clone(), queue_url);

    // The sandboxes: the first takes the orders and is the first inventory store.
    let mut sandboxes = Vec::with_capacity(opts.stores);
    for i in 0..opts.stores {
        let sandbox = Sandbox::start(unlimited_sandbox(1003 + i as u64)).await?;
        ops::upsert_connection(&poster_store, sandbox_connection(&sandbox)).await?;
        sandboxes.push(sandbox);
    }
    DynamoStore::migrated(dynamo.clone(), name.clone()).await?;
    let orders_sandbox = &sandboxes[0];
    let store_id = sandbox_connection(orders_sandbox).store_id;
    orders_sandbox.add_product(ProductSpec {
        sku: "COST-A".into(),
        name: "Cost item".into(),
        price_excl_tax: Decimal::new(1999, 2),
        tax_percent: Some(Decimal::from(10)),
        ecwid_stock: None,
        ls_stock: Decimal::from(1_000_000),
        ..ProductSpec::default()
    });
    meter.take();

    let ingestor = Ingestor::new(
        ingest_store,
        queue.clone(),
        IngestConfig::new(Secret::new(
            orders_sandbox.config().webhook_client_secret.clone(),
        )),
        TokioClock,
    );
    let poster = SalePoster::new(
        poster_store.clone(),
        EcwidClient::new(orders_sandbox.ecwid_api_url(), HTTP_TIMEOUT)?,
        // As every function instance: behind the retailer's budget in the table.
        LightspeedClient::new(lightspeed_url_template(orders_sandbox), HTTP_TIMEOUT)?
            .with_shared_budget(shared_budget(&poster_store)),
        TokioClock,
        PosterConfig::default(),
    );
    let worker = WorkerOptions {
        batch: opts.batch_size,
        ..WorkerOptions::default()
    };

    // Orders.
    let (mut ingest, mut poster_metered) = (Metered::default(), Metered::default());
    let (ingest_logs, poster_logs) = (ByteCount::default(), ByteCount::default());
    let (mut ingest_secs, mut poster_secs) = (0.0, 0.0);
    let mut poster_invocations = 0;
    let mut keys = Vec::with_capacity(opts.orders);
    let mut queued = 0usize;
    for i in 0..opts.orders {
        let order_id = orders_sandbox.place_order(OrderSpec {
            items: vec![OrderItemSpec::new("COST-A", 1)],
            ..OrderSpec::default()
        });
        let hook = orders_sandbox.order_webhook("order.created", &order_id, None, "PAID");
        keys.push(OrderKey::new(store_id, order_id));
        let (status, secs) = step(
            &ingest_logs,
            ingestor.handle_webhook(&hook.body, Some(&hook.signature)),
        )
        .await;
        ensure!(
            status.status() == 200,
            "webhook-ingest answered {}",
            status.status()
        );
        ingest_secs += secs;
        ingest.merge(&meter.take());
        queued += 1;
        if queued < opts.batch_size && i + 1 < opts.orders {
            continue;
        }
        // Drain what was queued, one invocation per receive.
        let mut empty = 0;
        while queued > 0 {
            if opts.cold_token_cache {
                poster_cipher.clear_cache();
            }
            let ((), secs) = step(&poster_logs, async {
                let batch = match queue.receive(opts.batch_size, worker.visibility).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "receive failed");
                        return;
                    }
                };
                if !batch.is_empty() {
                    poster_invocations += 1;
                }
                for d in batch {
                    queued -= 1;
                    let _ = settle(&poster, &queue, &worker, d).await;
                }
            })
            .await;
            poster_secs += secs;
            let counted = meter.take();
            if counted.requests(els_store_aws::metering::SQS, "DeleteMessage") == 0 {
                empty += 1;
                ensure!(
                    empty < 20,
                    "the queue holds {queued} messages it does not return"
                );
            }
            poster_metered.merge(&counted);
        }
    }
    let mut posted = 0;
    let mut ledger_saves = 0;
    for key in &keys {
        if let Some(e) = poster_store.load_order(key).await? {
            ledger_saves += e.version;
            posted += usize::from(e.state == els_core::ledger::OrderState::Posted);
        }
    }
    meter.take();

    // Store-minutes.
    let (jobs_url, _jobs_dlq) =
        SqsQueue::create_fifo_with_dlq(&sqs, &format!("{name}-store-jobs"), 3).await?;
    let jobs = SqsJobQueue::new(sqs.clone(), jobs_url.clone());
    let jobs_raw = SqsQueue::new(sqs.clone(), jobs_url.clone());
    // The tick reads settings, never tokens: no cipher (as inventory-sync).
    let tick_store = DynamoStore::new(dynamo.clone(), name.clone());
    let mut mirrors = HashMap::with_capacity(opts.stores);
    let mut levels = Vec::with_capacity(opts.stores);
    for sandbox in &sandboxes {
        let mut ids = Vec::with_capacity(CATALOG);
        for p in 0..CATALOG {
            let product = sandbox.add_product(ProductSpec {
                sku: format!("INV-{p:03}"),
                name: format!("Inventory item {p}"),
                price_excl_tax: Decimal::from(5),
                ecwid_stock: Some(Decimal::from(20)),
                ls_stock: Decimal::from(20),
                ..ProductSpec::default()
            });
            ids.push(product.ls_id().to_string());
        }
        levels.push(ids);
        mirrors.insert(
            sandbox_connection(sandbox).store_id,
            InventoryMirror::new(
                mirror_store.clone(),
                EcwidClient::new(sandbox.ecwid_api_url(), HTTP_TIMEOUT)?,
                LightspeedClient::new(lightspeed_url_template(sandbox), HTTP_TIMEOUT)?
                    .with_shared_budget(shared_budget(&mirror_store)),
                TokioClock,
                MirrorConfig {
                    batch_poll_interval: Duration::from_millis(50),
                    ..MirrorConfig::default()
                },
            ),
        );
    }
    // Warm-up: links every catalog; counts only the Decrypts of a cold cache.
    mirror_cipher.clear_cache();
    for (id, mirror) in &mirrors {
        mirror
            .mirror_store(*id)
            .await
            .map_err(|e| anyhow::anyhow!("warm-up mirror of store {id}: {e}"))?;
    }
    let warm_up = meter.take();
    let cold_decrypts_per_store = warm_up.requests(KMS, "Decrypt") as f64 / opts.stores as f64;

    let (mut tick, mut worker_metered) = (Metered::default(), Metered::default());
    let (tick_logs, worker_logs) = (ByteCount::default(), ByteCount::default());
    let (mut tick_secs, mut worker_secs) = (0.0, 0.0);
    let mut worker_invocations = 0;
    let first_tick = chrono::Utc::now();
    for minute in 0..opts.minutes {
        for (sandbox, ids) in sandboxes.iter().zip(&levels) {
            let outlet = sandbox.ids().outlet_id;
            for c in 0..opts.changes_per_minute {
                let id = &ids[(minute * opts.changes_per_minute + c) % ids.len()];
                sandbox.set_ls_inventory(id, &outlet, (30 + minute) as i64);
            }
        }
        // inventory-sync's tick: the schema check, the listing, one job per store.
        let at = first_tick + chrono::Duration::minutes(minute as i64);
        let (ticked, secs) = step(&tick_logs, async {
            tick_store.ensure_migrated().await?;
            let connections = tick_store.list_connections().await?;
            let (store_jobs, report) = tick_jobs(&connections, JobKind::Mirror, at);
            jobs.enqueue_jobs(&store_jobs)
                .await
                .map_err(|e| els_core::StoreError::Unavailable(e.to_string()))?;
            Ok::<_, els_core::StoreError>(report)
        })
        .await;
        let ticked = ticked.map_err(|e| anyhow::anyhow!("the tick failed: {e}"))?;
        ensure!(
            ticked.enqueued == opts.stores,
            "the tick enqueued {} jobs",
            ticked.enqueued
        );
        tick_secs += secs;
        tick.merge(&meter.take());
        // store-worker under its SQS event source: a receive of up to `worker_batch`
        // jobs, the batch's stores mirrored concurrently, one batch delete of the done.
        let mut done = 0;
        let mut receives = 0;
        while done < opts.stores {
            receives += 1;
            ensure!(
                receives <= 10 * opts.stores,
                "the store jobs did not come back"
            );
            let batch = jobs_raw
                .receive_raw(opts.worker_batch_size, Duration::from_secs(540))
                .await?;
            if batch.is_empty() {
                continue;
            }
            worker_invocations += 1;
            let (runs, secs) = step(&worker_logs, async {
                futures::future::join_all(batch.iter().map(|m| async {
                    let job = StoreJob::from_body(&m.body).map_err(|e| anyhow::anyhow!(e))?;
                    let mirror = mirrors
                        .get(&job.store_id)
                        .context("a job for a store not measured")?;
                    match mirror.mirror_store(job.store_id).await {
                        Ok(Some(r))
                            if r.written as usize >= opts.changes_per_minute.min(CATALOG) =>
                        {
                            Ok(())
                        }
                        Ok(r) => bail!(
                            "the mirror of store {} wrote too little: {r:?}",
                            job.store_id
                        ),
                        Err(e) => bail!("the mirror of store {} failed: {e}", job.store_id),
                    }
                }))
                .await
            })
            .await;
            runs.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
            worker_secs += secs;
            done += batch.len();
            // The event source deletes a successful batch with one request.
            let entries = batch
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            sqs.delete_message_batch()
                .queue_url(&jobs_url)
                .set_entries(Some(entries))
                .send()
                .await?;
        }
        worker_metered.merge(&meter.take());
    }
    for sandbox in &sandboxes {
        sandbox.shutdown().await;
    }
    Ok(Measurement {
        options: opts,
        ingest,
        poster: poster_metered,
        tick,
        worker: worker_metered,
        cold_decrypts_per_store,
        ingest_secs,
        poster_secs,
        tick_secs,
        worker_secs,
        poster_invocations,
        worker_invocations,
        ingest_log_bytes: ingest_logs.0.load(Ordering::Relaxed),
        poster_log_bytes: poster_logs.0.load(Ordering::Relaxed),
        tick_log_bytes: tick_logs.0.load(Ordering::Relaxed),
        worker_log_bytes: worker_logs.0.load(Ordering::Relaxed),
        posted,
        ledger_saves,
    })
}

/// A name suffix unique enough for moto's tables and queues.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}")
}

/// Every operation of `m`, for a report.
pub fn operations(m: &Metered) -> Vec<OperationCount> {
    m.operations().cloned().collect()
}

/// The retailer-wide Lightspeed budget on the (metered) table, as `ApiClients` gives every
/// function instance.
fn shared_budget(store: &DynamoStore) -> std::sync::Arc<dyn els_lightspeed::SharedBudget> {
    std::sync::Arc::new(els_store_aws::budget::dynamo_budget(
        store,
        els_lightspeed::Pacing::default().window,
    ))
}
