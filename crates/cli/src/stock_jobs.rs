//! The embedded mode's store jobs: what the store-jobs queue and `store-worker` are in
//! AWS, in one process. Lightspeed's stock webhooks (`POST /webhooks/lightspeed/{store}/{token}`,
//! [`router`]) put a store's job on an in-process channel ([`LocalJobs`]), and the inventory
//! loop ([`run_inventory`]) mirrors that store at once, between its scheduled runs of every
//! store. Jobs that arrive while a run is going are coalesced: each store runs once more,
//! after the run, so the change that triggered the job is seen.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::post;
use els_core::inventory::mirror::InventoryMirror;
use els_core::jobs::{JobQueue, StoreJob};
use els_core::ls_webhooks::{LS_WEBHOOK_PATH_PREFIX, accept_delivery};
use els_core::{Clock, ConnectionStore, EcwidApi, LightspeedApi, QueueError, StateStore, StoreId};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Store jobs on an in-process channel.
#[derive(Clone)]
pub struct LocalJobs(mpsc::UnboundedSender<StoreJob>);

/// A channel of store jobs: the sender for the endpoint, the receiver for [`run_inventory`].
pub fn local_jobs() -> (LocalJobs, mpsc::UnboundedReceiver<StoreJob>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (LocalJobs(tx), rx)
}

impl JobQueue for LocalJobs {
    async fn enqueue_jobs(&self, jobs: &[StoreJob]) -> Result<(), QueueError> {
        for job in jobs {
            self.0
                .send(job.clone())
                .map_err(|_| QueueError::Unavailable("the inventory loop has stopped".into()))?;
        }
        Ok(())
    }
}

struct HookState<S> {
    store: S,
    jobs: LocalJobs,
}

/// `POST /webhooks/lightspeed/{store}/{token}`: Lightspeed's deliveries, answered at once.
pub fn router<S: ConnectionStore + 'static>(store: S, jobs: LocalJobs) -> Router {
    Router::new()
        .route(
            &format!("{LS_WEBHOOK_PATH_PREFIX}/{{store}}/{{token}}"),
            post(delivery::<S>),
        )
        .with_state(Arc::new(HookState { store, jobs }))
}

async fn delivery<S: ConnectionStore + 'static>(
    State(state): State<Arc<HookState<S>>>,
    uri: Uri,
) -> StatusCode {
    let outcome = accept_delivery(&state.store, &state.jobs, uri.path(), chrono::Utc::now()).await;
    StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The embedded inventory loop: every connection at once and then every `interval` (`None`:
/// never, not even at start), and each store whose job arrives on `jobs` at once; until
/// `shutdown` turns true. A failed run is logged; the next one resumes from the cursor.
pub async fn run_inventory<S, E, L, C>(
    mirror: Arc<InventoryMirror<S, E, L, C>>,
    interval: Option<Duration>,
    mut jobs: mpsc::UnboundedReceiver<StoreJob>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: StateStore + 'static,
    E: EcwidApi + 'static,
    L: LightspeedApi + 'static,
    C: Clock + 'static,
{
    let mut next_tick = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let tick = async {
            match interval {
                Some(_) => tokio::time::sleep_until(next_tick).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick => {
                match mirror.mirror_all().await {
                    Ok(results) => {
                        for e in results.into_iter().filter_map(Result::err) {
                            tracing::warn!(error = %e, "inventory mirror run failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "listing connections for the inventory mirror failed"),
                }
                next_tick = tokio::time::Instant::now() + interval.unwrap_or_default();
            }
            job = jobs.recv() => {
                let Some(job) = job else { break };
                // Every store asked for so far, once each.
                let mut stores: BTreeSet<StoreId> = BTreeSet::from([job.store_id]);
                while let Ok(more) = jobs.try_recv() {
                    stores.insert(more.store_id);
                }
                for store_id in stores {
                    if let Err(e) = mirror.mirror_store(store_id).await {
                        tracing::warn!(error = %e, "inventory mirror run (webhook) failed");
                    }
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}
