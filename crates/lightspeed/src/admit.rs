//! Admission of a request: a slot of the retailer's shared budget (if the client has one,
//! [`crate::budget`]), then the per-process gate ([`crate::pace`]), waiting at most
//! [`Pacing::max_wait`](crate::Pacing::max_wait) for both; then the answer's rate-limit
//! headers go back to the gate.
//!
//! The shared slot is taken first and the gate asked second, because a gate ticket means
//! "sent now" (its log dates the request): if the gate would hold the request past the
//! slot's `valid_until`, the slot is let go (it counts as spent) and a new one is taken
//! after the gate's wait, so a request never goes out later than its slot allows. So that
//! this seldom happens, the gate is first asked, taking nothing, when it would let a
//! request go, and the slot is taken only then ([`Gate::ready_at`](crate::pace::Gate)).

use crate::budget::{Ask, Grant, SharedBudget};
use crate::{LightspeedClient, pace, parse_reset, parse_retry_after};
use els_core::{ApiError, Connection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The per-retailer gates, shared by clones of a client.
pub(crate) type Gates = Arc<Mutex<HashMap<String, pace::Gate>>>;

/// A request let through by the gate; reports its response (or its absence, on drop).
pub(crate) struct Admission {
    gates: Gates,
    prefix: String,
    /// The window a gate made by this admission's report assumes.
    window: Duration,
    ticket: u64,
    done: bool,
}

impl Admission {
    fn observe(&mut self, seen: pace::Observed) {
        if self.done {
            return;
        }
        self.done = true;
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates
            .entry(self.prefix.clone())
            .or_insert_with(|| pace::Gate::with_window(self.window))
            .observe(self.ticket, Instant::now(), seen);
    }

    /// Reads the rate-limit headers of a response.
    pub(crate) fn response(&mut self, resp: &reqwest::Response) {
        let now = SystemTime::now();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let status = resp.status().as_u16();
        let limited = status == 429;
        // Whether a refused token counts against the limit is not documented (the sandbox
        // does not count it): such an answer tells the gate nothing.
        let counted = status != 401;
        self.observe(pace::Observed {
            limit: header("x-ratelimit-limit").and_then(|v| v.parse().ok()),
            remaining: header("x-ratelimit-remaining")
                .filter(|_| counted)
                .and_then(|v| v.parse().ok()),
            reset_in: header("x-ratelimit-reset").and_then(|v| parse_reset(v, now)),
            retry_after: if limited {
                header("retry-after").and_then(|v| parse_retry_after(v, now))
            } else {
                None
            },
            limited,
        });
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.observe(pace::Observed::default());
    }
}

/// Over the wait cap: reported like a 429, nothing sent.
fn over_cap(retry_after: Duration) -> ApiError {
    let retry_after = retry_after.max(Duration::from_secs(1));
    tracing::info!(
        retry_after_ms = retry_after.as_millis() as u64,
        "Lightspeed rate limit budget spent; not sending"
    );
    ApiError::RateLimited {
        retry_after: Some(retry_after),
    }
}

impl LightspeedClient {
    /// The same client taking a slot of `budget` before each request, in front of its
    /// per-process gate (clones made after this share it).
    pub fn with_shared_budget(mut self, budget: Arc<dyn SharedBudget>) -> Self {
        self.shared = Some(budget);
        self
    }

    /// The shared budget, if the client has one.
    pub fn shared_budget(&self) -> Option<&Arc<dyn SharedBudget>> {
        self.shared.as_ref()
    }

    /// A slot of the shared budget, waiting for one until `deadline`: when it must be sent
    /// by (`None` without a shared budget).
    async fn shared_slot(
        &self,
        conn: &Connection,
        deadline: Option<Instant>,
    ) -> Result<Option<Instant>, ApiError> {
        let Some(budget) = &self.shared else {
            return Ok(None);
        };
        let prefix = &conn.lightspeed.domain_prefix;
        let limit = {
            let gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            gates.get(prefix.as_str()).and_then(pace::Gate::limit)
        };
        let ask = Ask {
            limit,
            reserve: self.pacing.reserve,
        };
        loop {
            let now = Instant::now();
            match budget.acquire(prefix, ask).await? {
                Grant::Go { valid_until } if valid_until > Instant::now() => {
                    return Ok(Some(valid_until));
                }
                // Taken too late to be sent in time (a slow store): take another, unless
                // the wait is over (the slots already count as spent: a slow store must not
                // burn the budget in a loop).
                Grant::Go { .. } => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(over_cap(Instant::now().duration_since(now)));
                    }
                }
                Grant::Wait(wait) => {
                    let at = now + wait;
                    if deadline.is_some_and(|d| at > d) {
                        return Err(over_cap(wait));
                    }
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                }
            }
        }
    }

    /// Waits, taking nothing, until the retailer's gate would let a request go, or fails
    /// when that is past `deadline`: a shared slot taken only then is not spent waiting on
    /// the gate (a slot held past its `valid_until` counts as spent for every process).
    async fn gate_ready(&self, prefix: &str, deadline: Option<Instant>) -> Result<(), ApiError> {
        loop {
            let now = Instant::now();
            let ready_at = {
                let gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
                gates
                    .get(prefix)
                    .and_then(|g| g.ready_at(now, self.pacing.reserve))
            };
            match ready_at {
                None => return Ok(()),
                Some(at) if deadline.is_some_and(|d| at > d) => {
                    return Err(over_cap(at.duration_since(now)));
                }
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
            }
        }
    }

    /// Waits until the retailer's shared budget and gate allow a request, at most
    /// [`crate::Pacing::max_wait`].
    pub(crate) async fn admit(&self, conn: &Connection) -> Result<Admission, ApiError> {
        let prefix = conn.lightspeed.domain_prefix.as_str();
        let started = Instant::now();
        // A configured cap too large for the clock means no cap.
        let deadline = started.checked_add(self.pacing.max_wait);
        'slot: loop {
            if self.shared.is_some() {
                self.gate_ready(prefix, deadline).await?;
            }
            let slot = self.shared_slot(conn, deadline).await?;
            loop {
                let now = Instant::now();
                let decision = {
                    let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
                    gates
                        .entry(prefix.to_string())
                        .or_insert_with(|| pace::Gate::with_window(self.pacing.window))
                        .decide(now, self.pacing.reserve)
                };
                match decision {
                    pace::Decision::Go(ticket) => {
                        let waited = now.duration_since(started);
                        if waited >= Duration::from_millis(100) {
                            tracing::debug!(
                                waited_ms = waited.as_millis() as u64,
                                "waited for the Lightspeed rate limit"
                            );
                        }
                        return Ok(Admission {
                            gates: self.gates.clone(),
                            prefix: prefix.to_string(),
                            window: self.pacing.window,
                            ticket,
                            done: false,
                        });
                    }
                    pace::Decision::WaitUntil(at) if deadline.is_some_and(|d| at > d) => {
                        return Err(over_cap(at.duration_since(now)));
                    }
                    pace::Decision::WaitUntil(at) => {
                        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                        // The slot expired while the gate held the request: a new one.
                        if slot.is_some_and(|until| Instant::now() >= until) {
                            continue 'slot;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{BudgetSettings, WindowBudget};
    use crate::{Pacing, pace};

    fn connection() -> Connection {
        serde_json::from_value(serde_json::json!({
            "store_id": 1003, "ecwid_token": "secret_t",
            "lightspeed": {"domain_prefix": "shop", "access_token": "lsat"},
            "register_id": "r", "outlet_id": "o", "user_id": "u",
            "payment_type_id": "p", "version": 1
        }))
        .expect("a connection")
    }

    /// A slot of the shared budget must be sent within about 2 s. A gate holding the
    /// request longer (a 429's `Retry-After` of 3 s) used to cost a slot that expired
    /// unspent, for every process of the retailer; now the slot is taken once the gate
    /// would let the request go.
    #[tokio::test]
    async fn a_request_the_gate_holds_takes_its_shared_slot_only_when_the_gate_opens() {
        let budget = Arc::new(WindowBudget::in_process(BudgetSettings::default()));
        let client =
            LightspeedClient::new("http://127.0.0.1:9/{domain_prefix}", Duration::from_secs(1))
                .unwrap()
                .with_pacing(Pacing {
                    max_wait: Duration::from_secs(10),
                    ..Pacing::default()
                })
                .with_shared_budget(budget.clone());
        {
            let mut gate = pace::Gate::default();
            let now = Instant::now();
            let pace::Decision::Go(ticket) = gate.decide(now, 0) else {
                panic!("a fresh gate lets the first request go");
            };
            gate.observe(
                ticket,
                now,
                pace::Observed {
                    limited: true,
                    retry_after: Some(Duration::from_secs(3)),
                    ..pace::Observed::default()
                },
            );
            client.gates.lock().unwrap().insert("shop".into(), gate);
        }
        let started = Instant::now();

        let admission = client.admit(&connection()).await.expect("admitted");

        assert!(
            started.elapsed() >= Duration::from_millis(2900),
            "the gate held it"
        );
        let stats = budget.stats();
        assert_eq!((stats.granted, stats.unspent), (1, 0), "{stats:?}");
        drop(admission);
    }
}
