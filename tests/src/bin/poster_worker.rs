//! One sale-poster worker process for `tests/tests/shared_budget.rs`: drains the SQS queue on
//! moto with the real DynamoDB store, the real SQS queue and the real Lightspeed client
//! behind the retailer's shared budget in DynamoDB (as the `sale-poster` function wires it,
//! `els_functions::wiring::dynamo_budget`), against a sandbox another process runs.
//!
//! Settings (environment): `ELS_MOTO_ENDPOINT`; `ELS_WORKER_TABLE`, `ELS_WORKER_QUEUE_URL`;
//! `ELS_WORKER_LS_URL` (the Lightspeed URL template), `ELS_WORKER_ECWID_URL`;
//! `ELS_WORKER_WINDOW_MS` (the window the client assumes), `ELS_WORKER_RESERVE`,
//! `ELS_WORKER_MAX_WAIT_MS`; `ELS_WORKER_CONCURRENCY` (deliveries worked at once, default
//! 10); `ELS_WORKER_SHARED=0` runs without the shared budget (each process its own gate
//! only: what the budget is there to prevent); `ELS_WORKER_IDLE_MS` (default 1500): the
//! worker exits once the queue has held nothing, visible or in flight, that long;
//! `ELS_WORKER_DEADLINE_SECS` (default 300) bounds its run (then it reports `drained`
//! false).
//!
//! It prints one JSON line on stdout: what it settled, its budget's counters and its AWS
//! calls by operation (a [`Meter`] on its clients).

use els_cli::embedded::{WorkerOptions, settle};
use els_core::WorkQueue;
use els_core::poster::{PostOutcome, PosterConfig, SalePoster};
use els_ecwid::EcwidClient;
use els_functions::wiring::dynamo_budget;
use els_http::TokioClock;
use els_lightspeed::{LightspeedClient, Pacing};
use els_store_aws::metering::Meter;
use els_store_aws::{DynamoStore, SqsQueue};
use futures::StreamExt;
use std::time::{Duration, Instant};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let config = els_tests::moto::aws_config(&var("ELS_MOTO_ENDPOINT")).await;
    // Counts the AWS calls, for the report (the budget's share among them).
    let meter = Meter::new();
    let dynamo = meter.dynamodb(aws_sdk_dynamodb::config::Builder::from(&config));
    let store = DynamoStore::new(dynamo, var("ELS_WORKER_TABLE"));
    let queue = SqsQueue::new(
        meter.sqs(aws_sdk_sqs::config::Builder::from(&config)),
        var("ELS_WORKER_QUEUE_URL"),
    );
    let timeout = Duration::from_secs(5);
    let pacing = Pacing {
        reserve: number(
            "ELS_WORKER_RESERVE",
            u64::from(els_lightspeed::POSTER_RESERVE),
        ) as u32,
        max_wait: Duration::from_millis(number("ELS_WORKER_MAX_WAIT_MS", 4000)),
        window: Duration::from_millis(number("ELS_WORKER_WINDOW_MS", 300_000)),
    };
    let shared = number("ELS_WORKER_SHARED", 1) != 0;
    let budget = dynamo_budget(&store, &pacing);
    let mut lightspeed = LightspeedClient::new(var("ELS_WORKER_LS_URL"), timeout)
        .expect("HTTP client")
        .with_pacing(pacing);
    if shared {
        lightspeed = lightspeed.with_shared_budget(budget.clone());
    }
    let poster = SalePoster::new(
        store.clone(),
        EcwidClient::new(var("ELS_WORKER_ECWID_URL"), timeout).expect("HTTP client"),
        lightspeed,
        TokioClock,
        PosterConfig {
            lease: Duration::from_secs(10),
            retry_base: Duration::from_millis(200),
            retry_cap: Duration::from_secs(2),
            search_delay: Duration::from_millis(200),
            ..PosterConfig::default()
        },
    );
    let options = WorkerOptions {
        batch: number("ELS_WORKER_CONCURRENCY", 10) as usize,
        visibility: Duration::from_secs(30),
        idle_poll: Duration::from_millis(50),
        max_receives: 50,
    };
    let idle = Duration::from_millis(number("ELS_WORKER_IDLE_MS", 1500));
    let deadline = Instant::now() + Duration::from_secs(number("ELS_WORKER_DEADLINE_SECS", 300));

    let started = Instant::now();
    let (mut settled, mut posted, mut retried) = (0u64, 0u64, 0u64);
    let mut empty_since: Option<Instant> = None;
    let mut drained = false;
    while Instant::now() < deadline {
        let batch = match queue.receive(options.batch, options.visibility).await {
            Ok(batch) => batch,
            Err(e) => {
                eprintln!("receive failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if batch.is_empty() {
            let (visible, in_flight) = queue.queue_depth().await.unwrap_or((1, 0));
            if visible + in_flight == 0 {
                let since = *empty_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= idle {
                    drained = true;
                    break;
                }
            } else {
                empty_since = None;
            }
            tokio::time::sleep(options.idle_poll).await;
            continue;
        }
        empty_since = None;
        let outcomes: Vec<_> = futures::stream::iter(batch)
            .map(|d| settle(&poster, &queue, &options, d))
            .buffer_unordered(options.batch)
            .collect()
            .await;
        for outcome in outcomes {
            settled += 1;
            match outcome {
                Ok(PostOutcome::Posted { .. }) => posted += 1,
                Ok(_) => {}
                Err(_) => retried += 1,
            }
        }
    }
    let stats = budget.stats();
    let metered = meter.snapshot();
    let calls: serde_json::Map<String, serde_json::Value> = metered
        .operations()
        .map(|c| (format!("{}.{}", c.service, c.operation), c.requests.into()))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "settled": settled,
            "posted": posted,
            "retried": retried,
            "seconds": started.elapsed().as_secs_f64(),
            "shared": shared,
            "drained": drained,
            "aws_calls": calls,
            "window_writes": metered.item_writes(els_store_aws::budget::RATE_WINDOW_SK).items,
            "budget": {
                "granted": stats.granted,
                "writes": stats.writes,
                "conflicts": stats.conflicts,
                "waits": stats.waits,
                "full_reads": stats.full_reads,
                "unspent": stats.unspent,
            },
        })
    );
}
