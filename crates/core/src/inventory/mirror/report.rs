//! What a run reports: how it ended, what it did, and why it failed.

use crate::error::{ApiError, StoreError};
use crate::ids::StoreId;
use crate::inventory::Skip;
use crate::inventory::reconcile::SAMPLE;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Both feeds were read to their end.
    #[default]
    Completed,
    /// Stopped early (time budget, Lightspeed rate-limit reserve); the next run continues
    /// from the cursor.
    Deferred,
    /// `sync_inventory` is off (S4): nothing was read or written.
    SyncOff,
    /// Another run holds the store's cursor.
    Busy,
}

/// What one run of one connection did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MirrorReport {
    /// A report is output only (a [`StoreId`]'s number).
    pub store_id: u64,
    pub outcome: RunOutcome,
    pub deferred_reason: Option<String>,
    pub inventory_cursor_from: u64,
    pub inventory_cursor_to: u64,
    pub products_cursor_from: u64,
    pub products_cursor_to: u64,
    pub product_pages: u64,
    pub inventory_pages: u64,
    /// Product rows read from the products feed.
    pub products_seen: u64,
    /// Inventory records read (every outlet).
    pub records: u64,
    /// Records at other outlets, dropped (S3).
    pub other_outlet: u64,
    /// Levels written to Ecwid, and how.
    pub written: u64,
    pub written_by_put: u64,
    pub written_by_batch: u64,
    /// Of `written`, levels set to unlimited (untracked in Lightspeed).
    pub set_unlimited: u64,
    pub batches: u64,
    pub batch_polls: u64,
    /// Levels equal to the last one pushed: not written.
    pub unchanged: u64,
    /// Not written: blank SKU or no Ecwid product/combination has it.
    pub unlinked: u64,
    /// Not written: several Ecwid products/combinations, or Lightspeed products, have it.
    pub ambiguous: u64,
    /// Not written: deleted in Lightspeed.
    pub deleted: u64,
    /// Ecwid answered 404 for a linked product: the link is looked up again next time.
    pub stale_links: u64,
    /// Ecwid refused a write for good (a 4xx other than 404/429).
    pub rejected: u64,
    pub unlinked_skus: Vec<String>,
    pub ambiguous_skus: Vec<String>,
    /// Links looked up in Ecwid, and how.
    pub links_resolved: u64,
    pub ecwid_sku_lookups: u64,
    pub catalog_scans: u64,
    /// SKUs with a pending web quantity, and products re-published because it dropped.
    pub pending_skus: u64,
    pub pending_republished: u64,
    /// Requests sent (retries included).
    pub lightspeed_requests: u64,
    pub ecwid_requests: u64,
    /// 429s waited out.
    pub rate_limit_waits: u64,
    /// The last `X-RateLimit-Remaining` Lightspeed reported.
    pub lightspeed_rate_remaining: Option<u32>,
    pub elapsed_ms: u64,
    /// Nothing to do, found without taking the lease: no Lightspeed change after the
    /// cursor and the same pending web quantities, so no write at all.
    pub quiet: bool,
}

impl MirrorReport {
    pub(super) fn new(store_id: StoreId) -> Self {
        Self {
            store_id: store_id.get(),
            ..Self::default()
        }
    }

    pub(super) fn note_skip(&mut self, skip: Skip, sku: &str) {
        let (count, sample) = match skip {
            Skip::Deleted => {
                self.deleted += 1;
                return;
            }
            Skip::Unlinked => (&mut self.unlinked, &mut self.unlinked_skus),
            Skip::Ambiguous => (&mut self.ambiguous, &mut self.ambiguous_skus),
        };
        *count += 1;
        if sample.len() < SAMPLE && !sample.iter().any(|s| s == sku) {
            sample.push(sku.to_string());
        }
    }
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorFailure {
    Api(ApiError),
    Store(StoreError),
    /// Another run took the cursor over (this run outlived its lease).
    LeaseLost,
    /// `reconcile --fix` found a mirror run holding the cursor.
    Busy {
        until: DateTime<Utc>,
    },
}

impl std::fmt::Display for MirrorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MirrorFailure::Api(e) => write!(f, "{e}"),
            MirrorFailure::Store(e) => write!(f, "{e}"),
            MirrorFailure::LeaseLost => f.write_str("another run took the cursor over"),
            MirrorFailure::Busy { until } => {
                write!(f, "a mirror run holds the cursor until {until}")
            }
        }
    }
}

/// A failed run. The cursor stays on the last page that was fully applied, so the next run
/// repeats only the rest; `report` says what was done before the failure.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorError {
    pub store_id: StoreId,
    pub doing: String,
    pub failure: MirrorFailure,
    pub report: Box<MirrorReport>,
}

impl std::fmt::Display for MirrorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "inventory mirror of store {} failed while {}: {}",
            self.store_id, self.doing, self.failure
        )
    }
}

impl std::error::Error for MirrorError {}

impl MirrorError {
    /// When a retry makes sense: the `Retry-After` of a rate limit, if that was the cause.
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.failure {
            MirrorFailure::Api(ApiError::RateLimited { retry_after }) => *retry_after,
            _ => None,
        }
    }
}
