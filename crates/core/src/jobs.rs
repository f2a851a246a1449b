//! Store jobs: the many-stores fan-out of the inventory mirror and the order sweep.
//!
//! The schedules do not run the stores themselves: each tick lists the connections (through
//! the store's index, never a Scan) and enqueues one job per connection that has the work
//! on, onto a queue of its own ([`JobQueue`]; SQS FIFO in the AWS deployment): **"mirror
//! store S"** ([`JobKind::Mirror`], `sync_inventory` on) every minute, **"sweep store S"**
//! ([`JobKind::Sweep`], posting sales or refunds on) every few minutes. Workers take the
//! jobs and run [`crate::inventory::mirror::InventoryMirror::mirror_store`] or
//! [`crate::sweep::OrderSweep::sweep_store`] for that store, under the store's cursor lease,
//! so two workers never run one store at once. A failed store is retried alone (its message
//! comes back), never holding up the others, and the next tick brings a new job anyway: the
//! schedule stays the guarantee.
//!
//! A Lightspeed `inventory.update` webhook enqueues the same job at once
//! ([`StoreJob::from_lightspeed_webhook`]), so stock moves in seconds instead of on the
//! minute.
//!
//! **Deduplication.** Each job has a deduplication id: a scheduled job names its tick's
//! minute (two ticks of one minute collapse), a webhook job the [`HOOK_COALESCE`] slot it
//! arrived in, so a burst of deliveries for one store (a sale of ten products sends ten)
//! makes one job, not ten. **Ordering.** The message group is the store: one store's jobs
//! run one after another, so a job enqueued while the store is being mirrored runs after
//! that run, and sees the change that triggered it (a job started meanwhile would find the
//! lease taken and end `Busy`, losing the trigger until the next tick).

use crate::connection::Connection;
use crate::error::QueueError;
use crate::ids::StoreId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// Deliveries of Lightspeed webhooks for one store within this slot make one job.
pub const HOOK_COALESCE: Duration = Duration::from_secs(2);

/// What a job does to its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// The inventory mirror (Lightspeed stock to Ecwid).
    Mirror,
    /// The order sweep (paid or refunded orders no webhook brought).
    Sweep,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Mirror => "mirror",
            JobKind::Sweep => "sweep",
        }
    }

    /// Whether `conn` has this work on: the mirror with `sync_inventory` (S4), the sweep
    /// while sales or refunds are posted (O5, R5).
    pub fn is_on_for(self, conn: &Connection) -> bool {
        match self {
            JobKind::Mirror => conn.settings.sync_inventory,
            JobKind::Sweep => conn.settings.post_sales || conn.settings.post_refunds,
        }
    }
}

fn mirror() -> JobKind {
    JobKind::Mirror
}

/// What started a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobTrigger {
    /// The schedule's tick.
    Schedule,
    /// A Lightspeed `inventory.update` or `product.update` delivery.
    LightspeedWebhook,
}

/// "Mirror store S": one store's inventory run. It carries no data: the worker reads the
/// connection and Lightspeed's feeds itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreJob {
    pub store_id: StoreId,
    /// Absent in jobs of the first release (mirror jobs only).
    #[serde(default = "mirror")]
    pub kind: JobKind,
    pub trigger: JobTrigger,
    /// FIFO deduplication id (see the module doc).
    pub dedup_id: String,
    /// When the job was made (for the lag a worker reports).
    pub enqueued_at: DateTime<Utc>,
}

impl StoreJob {
    /// The job of `kind` of the schedule's tick at `tick` (one per store, kind and minute).
    pub fn scheduled(store_id: StoreId, kind: JobKind, tick: DateTime<Utc>) -> Self {
        Self {
            dedup_id: format!(
                "{store_id}:{}:tick:{}",
                kind.as_str(),
                tick.timestamp().div_euclid(60)
            ),
            store_id,
            kind,
            trigger: JobTrigger::Schedule,
            enqueued_at: tick,
        }
    }

    /// The job of a Lightspeed webhook delivered at `now` (one per store per
    /// [`HOOK_COALESCE`] slot).
    pub fn from_lightspeed_webhook(store_id: StoreId, now: DateTime<Utc>) -> Self {
        let slot = now
            .timestamp_millis()
            .div_euclid(HOOK_COALESCE.as_millis() as i64);
        Self {
            dedup_id: format!("{store_id}:mirror:hook:{slot}"),
            store_id,
            kind: JobKind::Mirror,
            trigger: JobTrigger::LightspeedWebhook,
            enqueued_at: now,
        }
    }

    /// The FIFO message group: the store (its mirror and sweep jobs run one after another).
    pub fn group_id(&self) -> String {
        self.store_id.to_string()
    }

    /// The message body.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a job always serializes")
    }

    /// Parses a message body; the error says what is wrong (never the whole body).
    pub fn from_body(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| format!("not a store job: {e}"))
    }
}

/// The queue of store jobs (SQS FIFO in the AWS deployment).
pub trait JobQueue: Send + Sync {
    /// Durably enqueues every job (in batches where the queue has them). `Err` when some
    /// could not be enqueued after the adapter's retries; the error names how many.
    fn enqueue_jobs(
        &self,
        jobs: &[StoreJob],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// What one tick of a schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Connections listed.
    pub connections: usize,
    /// Jobs enqueued (connections with the work on).
    pub enqueued: usize,
    /// Connections with the work off: no job ([`JobKind::is_on_for`]).
    pub off: usize,
}

/// The jobs of `kind` of one tick: one per connection with that work on, in store order.
pub fn tick_jobs(
    connections: &[Connection],
    kind: JobKind,
    tick: DateTime<Utc>,
) -> (Vec<StoreJob>, TickReport) {
    let jobs: Vec<StoreJob> = connections
        .iter()
        .filter(|c| kind.is_on_for(c))
        .map(|c| StoreJob::scheduled(c.store_id, kind, tick))
        .collect();
    let report = TickReport {
        connections: connections.len(),
        enqueued: jobs.len(),
        off: connections.len() - jobs.len(),
    };
    (jobs, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn store(n: u64) -> StoreId {
        StoreId::new(n).unwrap()
    }

    #[test]
    fn ticks_of_one_minute_collapse_and_the_next_minute_does_not() {
        let t = Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 5).unwrap();
        let a = StoreJob::scheduled(store(7), JobKind::Mirror, t);
        let b = StoreJob::scheduled(store(7), JobKind::Mirror, t + chrono::Duration::seconds(50));
        let c = StoreJob::scheduled(store(7), JobKind::Mirror, t + chrono::Duration::seconds(60));
        assert_eq!(a.dedup_id, b.dedup_id);
        assert_ne!(a.dedup_id, c.dedup_id);
        assert_ne!(
            a.dedup_id,
            StoreJob::scheduled(store(8), JobKind::Mirror, t).dedup_id,
            "stores never collapse"
        );
        assert_ne!(
            a.dedup_id,
            StoreJob::scheduled(store(7), JobKind::Sweep, t).dedup_id,
            "nor kinds"
        );
    }

    #[test]
    fn webhook_jobs_coalesce_within_a_slot_and_not_with_the_tick() {
        let t = Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 0).unwrap();
        let a = StoreJob::from_lightspeed_webhook(store(7), t);
        let b =
            StoreJob::from_lightspeed_webhook(store(7), t + chrono::Duration::milliseconds(1999));
        let c = StoreJob::from_lightspeed_webhook(store(7), t + chrono::Duration::seconds(2));
        assert_eq!(a.dedup_id, b.dedup_id);
        assert_ne!(a.dedup_id, c.dedup_id);
        assert_ne!(
            a.dedup_id,
            StoreJob::scheduled(store(7), JobKind::Mirror, t).dedup_id
        );
        assert_eq!(a.group_id(), "7");
    }

    #[test]
    fn a_job_round_trips_its_body_and_garbage_is_refused() {
        let t = Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 0).unwrap();
        let job = StoreJob::from_lightspeed_webhook(store(42), t);
        assert_eq!(StoreJob::from_body(&job.to_body()).unwrap(), job);
        let err = StoreJob::from_body(r#"{"storeId":0}"#).unwrap_err();
        assert!(err.starts_with("not a store job"), "{err}");
        // A job of the first release (no kind) is a mirror job.
        let old = r#"{"storeId":42,"trigger":"schedule","dedupId":"42:mirror:tick:1","enqueuedAt":"2026-12-06T03:00:00Z"}"#;
        assert_eq!(StoreJob::from_body(old).unwrap().kind, JobKind::Mirror);
    }

    #[test]
    fn each_kind_has_its_own_switch() {
        let mut conn = crate::fakes::connection();
        conn.settings.sync_inventory = false;
        conn.settings.post_sales = false;
        assert!(!JobKind::Mirror.is_on_for(&conn));
        assert!(JobKind::Sweep.is_on_for(&conn), "refunds are still posted");
        conn.settings.post_refunds = false;
        assert!(!JobKind::Sweep.is_on_for(&conn));
    }
}
