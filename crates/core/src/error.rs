//! Errors that cross the port boundary. Adapters translate their own errors into these so
//! that the services can decide: retry, park, or give up.

use crate::ids::StoreId;
use chrono::{DateTime, Utc};
use std::time::Duration;
use thiserror::Error;

/// A failure talking to Ecwid or Lightspeed, classified by what the caller should do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// 429: try again after the delay (Lightspeed sends an HTTP date, Ecwid seconds).
    #[error("rate limited{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx or a connection that failed before the request was sent: safe to retry.
    #[error("service unavailable: {detail}")]
    Unavailable { detail: String },
    /// A timeout or a dropped connection after the request was sent: the server may have
    /// acted on it. For a sale POST this means "search before posting again".
    #[error("outcome unknown: {detail}")]
    OutcomeUnknown { detail: String },
    /// 404: the thing is not there.
    #[error("not found: {detail}")]
    NotFound { detail: String },
    /// 401/403: the token is wrong, expired or lacks a scope. Never hammer on it.
    #[error("unauthorized ({status}): {detail}")]
    Unauthorized { status: u16, detail: String },
    /// Any other 4xx: the request itself was refused; retrying the same request will not help.
    #[error("rejected ({status}): {detail}")]
    Rejected { status: u16, detail: String },
    /// A 2xx whose body we could not read.
    #[error("unexpected response: {detail}")]
    Decode { detail: String },
}

impl ApiError {
    /// The one mapping of a non-2xx answer, for every API client: `retry_after` is the
    /// answer's parsed `Retry-After`, `detail` what its body says (emails masked).
    pub fn from_status(status: u16, retry_after: Option<Duration>, detail: String) -> Self {
        match status {
            429 => ApiError::RateLimited { retry_after },
            401 | 403 => ApiError::Unauthorized { status, detail },
            404 => ApiError::NotFound { detail },
            s if s >= 500 => ApiError::Unavailable {
                detail: format!("HTTP {s}: {detail}"),
            },
            _ => ApiError::Rejected { status, detail },
        }
    }

    /// Whether the same request may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. }
                | ApiError::Unavailable { .. }
                | ApiError::OutcomeUnknown { .. }
        )
    }
}

/// A state-store failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// A conditional write lost: someone else changed the item first.
    #[error("conditional write failed: {0}")]
    Conflict(String),
    /// The backend failed (I/O, throttling, ...). Retryable.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// A stored item could not be decoded.
    #[error("corrupt state item {key}: {detail}")]
    Corrupt { key: String, detail: String },
    /// A store's stored tokens cannot be decrypted, and retrying will not change that: the
    /// ciphertext was copied from another store's item (or attribute), is damaged, or its
    /// key is disabled or gone. Connecting the store again stores new tokens: the stored
    /// `version` (to replace the connection under its version condition) and go-live moment
    /// (which a reconnect keeps) are what can still be read.
    #[error(
        "the stored tokens of store {store_id} cannot be decrypted ({detail}); reconnect the store (els connect) to store new ones"
    )]
    Undecryptable {
        store_id: StoreId,
        version: u64,
        go_live_at: Option<DateTime<Utc>>,
        detail: String,
    },
}

/// A work-queue failure. Always retryable from the caller's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueueError {
    #[error("work queue unavailable: {0}")]
    Unavailable(String),
    #[error("invalid queue message: {0}")]
    InvalidMessage(String),
}
