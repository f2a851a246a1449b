//! One process, the same handlers: webhook endpoint → queue → sale poster; the inventory
//! loop is [`crate::stock_jobs::run_inventory`].

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use els_core::ingest::{IngestOutcome, Ingestor, RESPONSE_CONTENT_TYPE};
use els_core::poster::{PostOutcome, SalePoster};
use els_core::settle::post_delivered;
use els_core::sweep::OrderSweep;
use els_core::{Clock, Delivery, EcwidApi, LightspeedApi, StateStore, WorkQueue};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

/// The path Ecwid posts webhooks to (the same path the SAM template routes).
pub const WEBHOOK_PATH: &str = "/webhooks/ecwid";

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Messages taken per receive.
    pub batch: usize,
    /// How long a received message stays hidden; longer than the poster's lease.
    pub visibility: Duration,
    /// How often an idle worker looks at the queue when nothing woke it.
    pub idle_poll: Duration,
    /// The queue's maximum receives (its dead-letter threshold). A retryable failure on the
    /// last delivery parks the order (`DEAD_LETTERED`, with the last error) and leaves the
    /// message to the queue, which dead-letters it on its next receive.
    pub max_receives: u32,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            batch: 10,
            visibility: Duration::from_secs(150),
            idle_poll: Duration::from_millis(250),
            max_receives: 10,
        }
    }
}

/// The embedded app: the webhook endpoint and the worker, sharing one store and queue.
pub struct Embedded<S, Q, E, L, C> {
    ingestor: Ingestor<S, Q, C>,
    poster: SalePoster<S, E, L, C>,
    queue: Q,
    /// Rung after a webhook is queued, so the worker starts at once instead of polling.
    wake: Notify,
    options: WorkerOptions,
}

impl<S, Q, E, L, C> Embedded<S, Q, E, L, C>
where
    S: StateStore + 'static,
    Q: WorkQueue + 'static,
    E: EcwidApi + 'static,
    L: LightspeedApi + 'static,
    C: Clock + 'static,
{
    pub fn new(
        ingestor: Ingestor<S, Q, C>,
        poster: SalePoster<S, E, L, C>,
        queue: Q,
        options: WorkerOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            ingestor,
            poster,
            queue,
            wake: Notify::new(),
            options,
        })
    }

    pub fn poster(&self) -> &SalePoster<S, E, L, C> {
        &self.poster
    }

    /// Starts the worker at once instead of at its next poll (after a sweep enqueued work).
    pub fn wake_worker(&self) {
        self.wake.notify_one();
    }

    /// The HTTP routes: `POST /webhooks/ecwid` and `GET /healthz`.
    pub fn router(self: &Arc<Self>) -> Router {
        // Our own size check answers 413; axum's limit only stops absurd bodies first.
        let hard_limit = self
            .ingestor
            .max_body_bytes()
            .saturating_mul(4)
            .max(1 << 20);
        Router::new()
            .route(WEBHOOK_PATH, post(webhook::<S, Q, E, L, C>))
            .route("/healthz", get(|| async { "ok" }))
            .layer(axum::extract::DefaultBodyLimit::max(hard_limit))
            .with_state(self.clone())
    }

    /// Serves [`Self::router`] on `listener` until `shutdown` turns true (then lets the
    /// requests in flight finish).
    pub fn spawn_server(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        self.spawn_server_with(listener, Router::new(), shutdown)
    }

    /// [`Self::spawn_server`] with more routes (Lightspeed's stock webhooks).
    pub fn spawn_server_with(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        extra: Router,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        let router = self.router().merge(extra);
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.changed().await;
                })
                .await
        })
    }

    /// Drains the queue until `shutdown` turns true.
    pub async fn run_worker(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self
                .queue
                .receive(self.options.batch, self.options.visibility)
                .await
            {
                Ok(deliveries) if !deliveries.is_empty() => {
                    // The poster logs each outcome; the worker only settles the messages. A
                    // batch holds at most one message per order (one FIFO group each): its
                    // orders post side by side, each within its visibility timeout rather
                    // than after the batch's earlier ones.
                    futures::future::join_all(deliveries.into_iter().map(|d| self.settle(d))).await;
                }
                Ok(_) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.options.idle_poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "receiving from the work queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Works one delivery and settles it by the core's rule ([`els_core::settle`], the same
    /// as the `sale-poster` Lambda's): ack once the outcome is recorded, otherwise hide it
    /// until the retry is due (invariant 4: nothing is acked before its outcome).
    ///
    /// On the last allowed receive a retryable failure parks the order (`DEAD_LETTERED`) and
    /// the message is *not* acked: it is made visible at once, so the queue's next receive
    /// moves it to the dead-letter table (like the `sale-poster` Lambda, whose record goes
    /// to the SQS DLQ). `els replay --dlq` takes it back from there.
    pub async fn settle(&self, d: Delivery) -> Result<PostOutcome, els_core::poster::RetryLater> {
        settle(&self.poster, &self.queue, &self.options, d).await
    }
}

/// Works one delivery with `poster` and settles it on `queue` (see [`Embedded::settle`]).
pub async fn settle<S, Q, E, L, C>(
    poster: &SalePoster<S, E, L, C>,
    queue: &Q,
    options: &WorkerOptions,
    d: Delivery,
) -> Result<PostOutcome, els_core::poster::RetryLater>
where
    S: StateStore,
    Q: WorkQueue,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    let span = tracing::info_span!("order", store_id = d.message.store_id.get(), order_id = %d.message.order_id, receive_count = d.receive_count);
    let settled = post_delivered(
        poster,
        queue,
        &d.message,
        Some(d.receive_count),
        options.max_receives,
    )
    .instrument(span)
    .await;
    let done = match settled.settlement.redeliver_after() {
        None => queue.ack(&d.receipt).await,
        Some(delay) => queue.retry_after(&d.receipt, delay).await,
    };
    if let Err(e) = done {
        // The message reappears after its visibility timeout; the ledger makes that safe.
        tracing::error!(order_id = %d.message.order_id, error = %e, "could not settle the queue message");
    }
    settled.outcome
}

/// Works the queue until `done` says so (checked whenever the queue has nothing visible) or
/// `timeout` passes: `els backfill` and `els sweep` on SQLite post what they enqueued this
/// way when no `els serve` runs (with one running, the two share the queue safely).
pub async fn drain_until<S, Q, E, L, C, F, Fut>(
    poster: &SalePoster<S, E, L, C>,
    queue: &Q,
    options: &WorkerOptions,
    timeout: Duration,
    mut done: F,
) -> bool
where
    S: StateStore,
    Q: WorkQueue,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        match queue.receive(options.batch, options.visibility).await {
            Ok(deliveries) if !deliveries.is_empty() => {
                for d in deliveries {
                    let _ = settle(poster, queue, options, d).await;
                }
            }
            Ok(_) => {
                if done().await {
                    return true;
                }
                tokio::time::sleep(options.idle_poll).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "receiving from the work queue failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    false
}

/// The shared app as axum state.
type AppState<S, Q, E, L, C> = State<Arc<Embedded<S, Q, E, L, C>>>;

async fn webhook<S, Q, E, L, C>(
    State(app): AppState<S, Q, E, L, C>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse
where
    S: StateStore + 'static,
    Q: WorkQueue + 'static,
    E: EcwidApi + 'static,
    L: LightspeedApi + 'static,
    C: Clock + 'static,
{
    let signature = headers
        .get(els_core::webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let response = app.ingestor.handle_webhook(&body, signature).await;
    if response.outcome == IngestOutcome::Queued {
        app.wake.notify_one();
    }
    // The same answer as the `webhook-ingest` Lambda's.
    let (status, body) = response.http();
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(axum::http::header::CONTENT_TYPE, RESPONSE_CONTENT_TYPE)],
        body,
    )
}

/// The embedded stand-in for the scheduled `order-sweep` function: sweeps every connection
/// every `interval` (the first run one interval after start, when the webhooks of the
/// moment have had their chance), until `shutdown` turns true; wakes the worker when it
/// enqueued something. A failed store is logged; its next run resumes from the cursor.
pub async fn run_sweep_timer<S, E, Q, C>(
    sweep: Arc<OrderSweep<S, E, Q, C>>,
    interval: Duration,
    wake: impl Fn() + Send + 'static,
    mut shutdown: watch::Receiver<bool>,
) where
    S: StateStore + 'static,
    E: EcwidApi + 'static,
    Q: WorkQueue + 'static,
    C: Clock + 'static,
{
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        match sweep.sweep_all().await {
            Ok(report) => {
                for r in report.stores.iter().filter(|r| r.found() > 0) {
                    tracing::info!("{}", crate::sweep::describe_sweep_run(r));
                }
                for (store_id, problem) in report.unhealthy() {
                    tracing::warn!(store_id = store_id.get(), %problem, "store unhealthy");
                }
                if report.found() > 0 {
                    wake();
                }
            }
            Err(e) => tracing::error!(error = %e, "listing connections for the order sweep failed"),
        }
    }
}
