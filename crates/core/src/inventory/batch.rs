//! Ecwid's batch API as the mirror uses it: the key that makes a re-sent batch find the
//! first one, and what became of each sub-request. The sub-requests themselves (paths and
//! bodies) are the Ecwid client's (`els_ecwid`): the mirror hands it the writes.

use super::{EcwidTarget, StockLevel};
use crate::ids::StoreId;
use serde::{Deserialize, Deserializer, Serialize};

/// The state of a batch (`GET /batch?ticket=`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchStatus {
    /// `QUEUED`, `IN_PROGRESS` or `COMPLETED`.
    pub status: String,
    /// The sub-responses. Ecwid sends `null` (or nothing) while the batch is `QUEUED` or
    /// `IN_PROGRESS`: read as none yet.
    #[serde(deserialize_with = "null_as_empty")]
    pub responses: Vec<BatchResponse>,
}

/// Where a batch stands, from its `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchState {
    /// `QUEUED` or `IN_PROGRESS`: poll again.
    Pending,
    /// `COMPLETED`: each sub-response says what became of its sub-request.
    Completed,
    /// Any other status (none is documented): the batch ended without usable answers. Its
    /// result is final, like a completed batch's.
    Failed(String),
}

impl BatchStatus {
    pub fn state(&self) -> BatchState {
        let s = self.status.trim();
        if s.eq_ignore_ascii_case("COMPLETED") {
            BatchState::Completed
        } else if s.eq_ignore_ascii_case("QUEUED") || s.eq_ignore_ascii_case("IN_PROGRESS") {
            BatchState::Pending
        } else {
            BatchState::Failed(s.to_string())
        }
    }

    pub fn is_completed(&self) -> bool {
        self.state() == BatchState::Completed
    }
}

/// A list that Ecwid may send as `null`.
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// The answer to one sub-request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchResponse {
    pub id: String,
    /// `COMPLETED`, `FAILED` or `NOT_EXECUTED`.
    pub status: String,
    pub http_status_code: Option<u16>,
    pub http_body: Option<serde_json::Value>,
}

/// A deterministic `deduplicationKey` (UUID-shaped) for a batch: the same sub-requests for
/// the same page of the same store give the same key; any other batch gets another key.
///
/// Ecwid answers a repeated key with the FIRST batch's ticket (and so its result) for an
/// hour, whatever that result was. Which key a re-send carries is therefore a choice:
/// - **Outcome unknown** (the POST timed out or failed with a 5xx, the polling gave up, the
///   run crashed): the re-send keeps the key. If Ecwid did take the first batch, it answers
///   with that batch instead of running the writes a second time: a batch still queued at
///   Ecwid is waited for rather than doubled, so it can never land after a newer level and
///   overwrite it; one that completed is recorded without being applied again. If Ecwid did
///   not take it, the key is new to Ecwid and the batch simply runs.
/// - **Known failed** (a completed batch with sub-requests that failed for a reason worth a
///   retry, or a batch that ended in another status): the key is spent. Re-sent under it,
///   the batch would get the same failed result for an hour and stall the store's mirror on
///   that page. The failed sub-requests are re-sent under a fresh key: the mirror derives it
///   with [`batch_dedup_key`] from a context that names the run (see
///   `InventoryMirror::write_levels`).
///
/// Nothing is stored between runs about spent keys: the next run sends a page's batch under
/// its first key again and Ecwid's answer tells which case it is (a known failure costs one
/// POST and one poll that apply nothing, then the fresh re-send).
pub fn batch_dedup_key(
    store_id: StoreId,
    context: &str,
    writes: &[(EcwidTarget, StockLevel)],
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(store_id.to_string().as_bytes());
    h.update([0]);
    h.update(context.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(writes).unwrap_or_default());
    let hex = hex::encode(&h.finalize()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// What became of one sub-request or PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// 404: the Ecwid product or combination is gone; the link must be looked up again.
    Gone,
    /// 429, 5xx, or no answer: the page must be retried.
    Retry(String),
    /// Any other refusal: retrying the same write will not help.
    Rejected(String),
}

/// Classifies one sub-response of a completed batch.
pub fn classify_batch_response(response: Option<&BatchResponse>) -> WriteOutcome {
    let Some(r) = response else {
        return WriteOutcome::Retry("no answer for the sub-request".into());
    };
    let detail = || {
        r.http_body
            .as_ref()
            .map(|b| b.to_string().chars().take(200).collect::<String>())
            .unwrap_or_default()
    };
    match r.http_status_code {
        Some(s) if (200..300).contains(&s) && !r.status.eq_ignore_ascii_case("FAILED") => {
            WriteOutcome::Written
        }
        Some(404) => WriteOutcome::Gone,
        Some(s) if s == 429 || s >= 500 => WriteOutcome::Retry(format!("HTTP {s}: {}", detail())),
        Some(s) => WriteOutcome::Rejected(format!("HTTP {s}: {}", detail())),
        None => WriteOutcome::Retry(format!("sub-request {}", r.status)),
    }
}
