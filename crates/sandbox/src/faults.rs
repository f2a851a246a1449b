//! Fault injection.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::util::duration_ms;

/// Which requests a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Route {
    /// `GET /api/v3/{storeId}/orders/{orderId}` on Ecwid.
    EcwidGetOrder,
    /// Any Ecwid API request.
    EcwidAny,
    /// A sale creation or update on Lightspeed, in either generation: `POST
    /// /api/register_sales` (with or without an `id`, so also a return's completion),
    /// `POST /api/2026-07/sales` and `PUT /api/2026-07/sales/{id}` (UpdateSale, the dated
    /// completion of a return).
    LsPostSale,
    /// A search on Lightspeed, in either generation: `GET /api/2.0/search` and
    /// `GET /api/2026-07/search`.
    LsSearch,
    /// Any Lightspeed API request (legacy and `/api/2026-07/*`), but the OAuth token endpoint.
    LsAny,
    /// Reading one sale by id on Lightspeed, in either generation:
    /// `GET /api/register_sales/{id}`, `GET /api/2.0/sales/{id}` and
    /// `GET /api/2026-07/sales/{id}`. A
    /// [`FaultKind::Status`]`(404)` here stands for a sale that exists but cannot be read yet
    /// (the read-after-write lag the search also has; an assumption, see README).
    LsGetSale,
    /// Starting a return on Lightspeed, in either generation: `PUT
    /// /api/2.0/sales/{id}/actions/return` and `POST /api/2026-07/sales/{id}/actions/return`.
    /// [`FaultKind::DropAfterCommit`]: the return is started, then the connection drops.
    LsStartReturn,
    /// An Ecwid batch (`POST /api/v3/{storeId}/batch`) as Ecwid runs it, not the HTTP
    /// request (an [`Route::EcwidAny`] fault answers the POST itself). Checked once per new
    /// batch; a POST that repeats a `deduplicationKey` gets the first batch's result and
    /// meets no fault. [`FaultKind::Queued`]: the batch waits. [`FaultKind::Status`] or
    /// [`FaultKind::RateLimit`]: the batch completes with every sub-request `FAILED` with
    /// that HTTP status, nothing executed. Other kinds do nothing here.
    EcwidBatch,
}

/// What happens to a matched request.
///
/// JSON: `{"Status": 503}`, `{"Delay": 1500}` (milliseconds), `"DropAfterCommit"`,
/// `{"RateLimit": {"retry_after": 2000}}` (milliseconds), `{"Queued": {"polls": 2}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// Answer with this status (5xx expected) and a realistic body; nothing is executed.
    Status(u16),
    /// Execute the request, then wait this long before answering. A client that times out
    /// meanwhile does not know the outcome (for a POST the write did happen).
    Delay(#[serde(with = "duration_ms")] Duration),
    /// Execute the request (for `LsPostSale`: the sale is created and stock lowered), then close
    /// the TCP connection without sending any HTTP response. Fires only on a 2xx outcome;
    /// otherwise it stays armed.
    DropAfterCommit,
    /// Answer 429 exactly like the real API does (Lightspeed: `Retry-After` as an HTTP date;
    /// Ecwid: `Retry-After` in seconds); nothing is executed.
    RateLimit {
        #[serde(with = "duration_ms")]
        retry_after: Duration,
    },
    /// For [`Route::EcwidBatch`] only: the batch is accepted but not run yet. Its first
    /// `polls` polls (`GET /batch?ticket=`) answer `QUEUED` (the last of them `IN_PROGRESS`
    /// when `polls` is 2 or more) with `"responses": null`, as Ecwid does; the next poll runs
    /// it and answers `COMPLETED`.
    Queued { polls: u32 },
}

/// A fault armed for the next `times` matching requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub route: Route,
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// A fault that fires once.
    pub fn once(route: Route, kind: FaultKind) -> Fault {
        Fault {
            route,
            kind,
            times: 1,
        }
    }

    /// A fault that fires `times` times.
    pub fn times(route: Route, kind: FaultKind, times: u32) -> Fault {
        Fault { route, kind, times }
    }
}

impl FaultKind {
    /// A short name for reports: `Status(503)`, `Delay`, `DropAfterCommit`, `RateLimit`,
    /// `Queued`.
    pub fn label(&self) -> String {
        match self {
            FaultKind::Status(code) => format!("Status({code})"),
            FaultKind::Delay(_) => "Delay".into(),
            FaultKind::DropAfterCommit => "DropAfterCommit".into(),
            FaultKind::RateLimit { .. } => "RateLimit".into(),
            FaultKind::Queued { .. } => "Queued".into(),
        }
    }
}

/// A fault that fires on each matching request with probability `probability` (0..=1).
///
/// JSON: `{"route": "LsPostSale", "kind": {"Status": 503}, "probability": 0.05}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChanceFault {
    pub route: Route,
    pub kind: FaultKind,
    pub probability: f64,
}

impl ChanceFault {
    pub fn new(route: Route, kind: FaultKind, probability: f64) -> ChanceFault {
        ChanceFault {
            route,
            kind,
            probability,
        }
    }
}

/// Random faults drawn from an RNG seeded with `seed`: the same seed gives the same
/// sequence of draws (which request meets which draw depends on request order). Faults
/// armed with [`Fault`] go first; a request that matches none of them draws here, one draw
/// per matching entry in order, and the first hit fires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChaosPlan {
    pub seed: u64,
    pub faults: Vec<ChanceFault>,
}

/// A [`ChaosPlan`] in play: its RNG state.
#[derive(Debug)]
pub(crate) struct Chaos {
    faults: Vec<ChanceFault>,
    rng: rand::rngs::StdRng,
}

impl Chaos {
    pub(crate) fn new(plan: ChaosPlan) -> Chaos {
        use rand::SeedableRng;
        Chaos {
            faults: plan.faults,
            rng: rand::rngs::StdRng::seed_from_u64(plan.seed),
        }
    }

    /// Draws for a request; the fault that fires, if any.
    pub(crate) fn draw(&mut self, matches: impl Fn(Route) -> bool) -> Option<(Route, FaultKind)> {
        use rand::Rng;
        for f in &self.faults {
            if matches(f.route) && self.rng.random::<f64>() < f.probability {
                return Some((f.route, f.kind.clone()));
            }
        }
        None
    }
}

/// How many faults fired, per route and kind (armed and random ones alike). Key:
/// `"{route:?} {kind.label()}"`, e.g. `"LsPostSale DropAfterCommit"`. A `DropAfterCommit`
/// counts when the connection was actually dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultTally(pub std::collections::BTreeMap<String, u64>);

impl FaultTally {
    fn key(route: Route, kind: &FaultKind) -> String {
        format!("{route:?} {}", kind.label())
    }

    pub(crate) fn record(&mut self, route: Route, kind: &FaultKind) {
        *self.0.entry(Self::key(route, kind)).or_default() += 1;
    }

    pub(crate) fn unrecord(&mut self, route: Route, kind: &FaultKind) {
        let key = Self::key(route, kind);
        if let Some(n) = self.0.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.0.remove(&key);
            }
        }
    }

    /// The count for one route and kind.
    pub fn get(&self, route: Route, kind: &FaultKind) -> u64 {
        self.0.get(&Self::key(route, kind)).copied().unwrap_or(0)
    }

    /// All faults fired.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl std::fmt::Display for FaultTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, n)| format!("{k}={n}")).collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> ChaosPlan {
        ChaosPlan {
            seed,
            faults: vec![
                ChanceFault::new(Route::LsPostSale, FaultKind::Status(503), 0.3),
                ChanceFault::new(Route::EcwidGetOrder, FaultKind::Status(500), 0.5),
            ],
        }
    }

    fn draws(seed: u64) -> Vec<Option<(Route, FaultKind)>> {
        let mut chaos = Chaos::new(plan(seed));
        (0..200)
            .map(|_| chaos.draw(|r| r == Route::LsPostSale))
            .collect()
    }

    #[test]
    fn the_same_seed_draws_the_same_faults_and_only_for_matching_routes() {
        let a = draws(7);
        assert_eq!(a, draws(7));
        assert_ne!(a, draws(8));
        let fired = a.iter().flatten().count();
        assert!(
            (30..=90).contains(&fired),
            "about 30% of 200 fire, got {fired}"
        );
        assert!(
            a.iter()
                .flatten()
                .all(|(r, k)| *r == Route::LsPostSale && *k == FaultKind::Status(503))
        );
    }

    #[test]
    fn the_tally_counts_per_route_and_kind() {
        let mut t = FaultTally::default();
        t.record(Route::LsPostSale, &FaultKind::DropAfterCommit);
        t.record(Route::LsPostSale, &FaultKind::DropAfterCommit);
        t.record(Route::EcwidGetOrder, &FaultKind::Status(503));
        t.unrecord(Route::LsPostSale, &FaultKind::DropAfterCommit);
        assert_eq!(t.get(Route::LsPostSale, &FaultKind::DropAfterCommit), 1);
        assert_eq!(t.total(), 2);
        assert_eq!(
            t.to_string(),
            "EcwidGetOrder Status(503)=1, LsPostSale DropAfterCommit=1"
        );
    }
}
