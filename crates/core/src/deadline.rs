//! The current invocation's deadline, shared by the services of one process.
//!
//! A Lambda invocation ends at a hard deadline: work still running then is killed, as by a
//! crash. Two steps must not be cut off half-way: a sale POST (killed after Lightspeed acted,
//! it leaves a sale the ledger does not know yet; safe, but it costs a search) and above all
//! an OAuth refresh (killed after Lightspeed rotated the tokens, it loses the only usable
//! refresh token and the store must be reconnected). So neither starts unless the time left
//! is at least what it needs (twice its request timeout, plus any rate-limit wait before it).
//!
//! The function handler [`Deadline::set`]s the invocation's deadline when it starts (a Lambda
//! container runs one invocation at a time); the poster and the token refresher ask
//! [`Deadline::allows`] before those steps. Without a deadline (`els serve`) everything is
//! allowed.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A shared, settable deadline (clones share it).
#[derive(Debug, Clone, Default)]
pub struct Deadline(Arc<Mutex<Option<DateTime<Utc>>>>);

impl Deadline {
    /// No deadline until one is set.
    pub fn none() -> Self {
        Self::default()
    }

    /// The deadline of the invocation that starts now (None: no limit).
    pub fn set(&self, at: Option<DateTime<Utc>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Sets it from a Lambda context's `deadline`: Unix milliseconds, as the Runtime API
    /// documents (`Lambda-Runtime-Deadline-Ms`). A value too small to be such a date (before
    /// 2001) is read as a lifetime from `now`: the local emulator (`cargo lambda watch`)
    /// sends its timeout (600000) that way.
    pub fn set_from_lambda(&self, millis: u64, now: DateTime<Utc>) {
        const DATE_FLOOR_MS: u64 = 1_000_000_000_000;
        self.set(if millis >= DATE_FLOOR_MS {
            DateTime::from_timestamp_millis(millis as i64)
        } else {
            Some(now + chrono::Duration::milliseconds(millis as i64))
        });
    }

    pub fn get(&self) -> Option<DateTime<Utc>> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a step that needs `needed` may start at `now`.
    pub fn allows(&self, now: DateTime<Utc>, needed: Duration) -> bool {
        self.get().is_none_or(|at| {
            at - now >= chrono::Duration::from_std(needed).unwrap_or(chrono::Duration::MAX)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_starts_only_with_the_time_it_needs() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let deadline = Deadline::none();
        assert!(
            deadline.allows(now, Duration::from_secs(3600)),
            "no deadline"
        );
        let shared = deadline.clone();
        shared.set(Some(now + chrono::Duration::seconds(25)));
        assert!(deadline.allows(now, Duration::from_secs(20)));
        assert!(deadline.allows(now, Duration::from_secs(25)));
        assert!(!deadline.allows(now, Duration::from_secs(26)));
        deadline.set_from_lambda(1_800_000_010_000, now);
        assert!(!deadline.allows(now, Duration::from_secs(11)));
        assert!(deadline.allows(now, Duration::from_secs(10)));
        // The emulator's lifetime in milliseconds.
        deadline.set_from_lambda(600_000, now);
        assert!(deadline.allows(now, Duration::from_secs(600)));
        assert!(!deadline.allows(now, Duration::from_secs(601)));
    }
}
