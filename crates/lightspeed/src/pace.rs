//! Pacing against Lightspeed's rate limit (`300 x registers + 50` requests per 5 minutes, per
//! retailer per app), as pure arithmetic over instants so it can be tested without a clock.
//!
//! The budget is the server's: every response carries `X-RateLimit-Remaining` (and, where
//! sent, `X-RateLimit-Limit` and `X-RateLimit-Reset`, an HTTP date). The gate hands out
//! numbered tickets; a response reports what was left after its own request, so the budget
//! now is that figure minus the tickets handed out since (requests the server may not have
//! counted yet). Only the newest report counts: an older one is stale.
//!
//! The window slides: a request's slot frees one window after it was counted. The gate keeps
//! a log of its own requests and learns the window's length from `X-RateLimit-Reset` (when
//! the oldest counted request leaves): `Limit - Remaining` says which of its requests is the
//! oldest counted, and the reset less that request's send time is never shorter than the
//! window (the date is rounded up, the request took time to arrive, and other clients'
//! requests only make the real oldest older). With it, its own requests that have left the
//! window since the last report are credited back, so a burst keeps running at the ceiling
//! instead of waiting for rounded reset dates.
//!
//! When the budget is down to the reserve, the gate waits until enough of its own requests
//! should have left the window, or for the reported reset, and then lets one request through
//! as a probe whose answer tells how much is free. Until it arrives nobody else is let
//! through. A 429's `Retry-After` blocks every request until it has passed, and forgets the
//! learnt window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long the gate waits for a reset it was not told about (no `X-RateLimit-Reset`).
pub const RESET_FALLBACK: Duration = Duration::from_secs(1);
/// The least time between two probes, so a reset date in the past (clock skew) cannot
/// turn the gate into a busy loop.
pub const MIN_PROBE_GAP: Duration = Duration::from_millis(100);
/// How often a request waiting behind a probe looks again.
pub const PROBE_POLL: Duration = Duration::from_millis(5);
/// The most own requests the gate remembers.
const MAX_LOG: usize = 100_000;

/// What a response said about the budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `X-RateLimit-Limit`.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset`, as a delay from when the response was read.
    pub reset_in: Option<Duration>,
    /// A 429's `Retry-After`, as a delay.
    pub retry_after: Option<Duration>,
    /// The response was a 429.
    pub limited: bool,
}

/// The gate's answer to "may I send now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send, and report the response under this ticket.
    Go(u64),
    /// Ask again at this instant.
    WaitUntil(Instant),
}

#[derive(Clone, Copy, Debug)]
struct Report {
    ticket: u64,
    remaining: u32,
    reset_at: Instant,
    at: Instant,
}

/// One of our requests: its ticket, when it was sent, and whether the server counted it
/// (answered with rate-limit headers).
#[derive(Clone, Copy, Debug)]
struct Sent {
    ticket: u64,
    at: Instant,
    counted: bool,
}

/// One retailer's budget, as far as this process knows it.
#[derive(Debug, Default)]
pub struct Gate {
    issued: u64,
    report: Option<Report>,
    blocked_until: Option<Instant>,
    probe: Option<u64>,
    last_probe: Option<Instant>,
    log: VecDeque<Sent>,
    window: Option<Duration>,
}

impl Gate {
    /// The window's length as learnt from resets (never shorter than the real one).
    pub fn window(&self) -> Option<Duration> {
        self.window
    }

    /// When each of our counted requests that were in the window at the last report leaves
    /// it, oldest first.
    fn leaving(&self) -> impl Iterator<Item = Instant> + '_ {
        let known = self.report.zip(self.window);
        self.log.iter().filter_map(move |s| {
            let (r, w) = known?;
            let out = s.at + w;
            (s.counted && s.ticket <= r.ticket && out > r.at).then_some(out)
        })
    }

    /// Requests this process may send at `now` (before any reserve), if known: the last
    /// report, less the tickets handed out since, plus our requests that left the window since.
    pub fn available_at(&self, now: Instant) -> Option<i64> {
        let r = self.report?;
        let credit = self.leaving().filter(|out| *out <= now).count() as i64;
        Some(i64::from(r.remaining) - self.issued.saturating_sub(r.ticket) as i64 + credit)
    }

    /// Whether a request may go now, keeping `reserve` requests of the budget for others.
    pub fn decide(&mut self, now: Instant, reserve: u32) -> Decision {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Decision::WaitUntil(until);
            }
            self.blocked_until = None;
        }
        let Some(report) = self.report else {
            return Decision::Go(self.issue(now));
        };
        let available = self.available_at(now).unwrap_or(0);
        if available > i64::from(reserve) {
            return Decision::Go(self.issue(now));
        }
        // Down to the reserve: wait until enough of our requests have left the window, or
        // for the reset; then one probe, and nobody else until it answers.
        if self.probe.is_some() {
            return Decision::WaitUntil(now + PROBE_POLL);
        }
        let short = usize::try_from(i64::from(reserve) + 1 - available).unwrap_or(usize::MAX);
        // The reset is when the oldest counted request leaves; once our own requests are
        // credited as they leave, our next one leaving is the better time to look again.
        let mut due = self
            .leaving()
            .filter(|out| *out > now)
            .nth(short.saturating_sub(1))
            .unwrap_or(report.reset_at);
        if let Some(last) = self.last_probe {
            due = due.max(last + MIN_PROBE_GAP);
        }
        if now < due {
            return Decision::WaitUntil(due);
        }
        let ticket = self.issue(now);
        self.probe = Some(ticket);
        self.last_probe = Some(now);
        Decision::Go(ticket)
    }

    fn issue(&mut self, now: Instant) -> u64 {
        self.issued += 1;
        if self.log.len() >= MAX_LOG {
            self.log.pop_front();
        }
        self.log.push_back(Sent {
            ticket: self.issued,
            at: now,
            counted: false,
        });
        self.issued
    }

    /// Learns the window from a report: if every request in the server's window was ours,
    /// the oldest is our `limit - remaining`-th newest counted request up to `ticket`.
    fn learn_window(&mut self, ticket: u64, limit: u32, remaining: u32, reset_at: Instant) {
        let in_window = limit.saturating_sub(remaining) as usize;
        if in_window == 0 {
            return;
        }
        let oldest = self
            .log
            .iter()
            .rev()
            .filter(|s| s.counted && s.ticket <= ticket)
            .nth(in_window - 1);
        if let Some(oldest) = oldest {
            let w = reset_at.saturating_duration_since(oldest.at);
            if !w.is_zero() {
                self.window = Some(self.window.map_or(w, |known| known.min(w)));
            }
        }
    }

    /// Drops log entries that can no longer be credited.
    fn prune(&mut self) {
        let Some((r, w)) = self.report.zip(self.window) else {
            return;
        };
        while self
            .log
            .front()
            .is_some_and(|s| s.at + w <= r.at && s.ticket <= r.ticket)
        {
            self.log.pop_front();
        }
    }

    /// Records what the response to `ticket` said (call it for every ticket, answered or not,
    /// with [`Observed::default`] when there was no answer).
    pub fn observe(&mut self, ticket: u64, now: Instant, seen: Observed) {
        if self.probe == Some(ticket) {
            self.probe = None;
        }
        // Only a request the server answered with the headers is known to be counted.
        if let Ok(i) = self.log.binary_search_by_key(&ticket, |s| s.ticket) {
            if seen.remaining.is_some() && !seen.limited {
                self.log[i].counted = true;
            } else {
                self.log.remove(i);
            }
        }
        if seen.limited {
            let wait = seen.retry_after.or(seen.reset_in).unwrap_or(RESET_FALLBACK);
            let until = now + wait;
            self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
            // Whatever was learnt did not keep us under the limit.
            self.window = None;
        }
        let remaining = match (seen.remaining, seen.limited) {
            (_, true) => 0,
            (Some(r), false) => r,
            (None, false) => return,
        };
        if self.report.is_some_and(|r| r.ticket > ticket) {
            return;
        }
        let reset_at = now + seen.reset_in.or(seen.retry_after).unwrap_or(RESET_FALLBACK);
        if let (Some(limit), Some(_), false) = (seen.limit, seen.reset_in, seen.limited) {
            self.learn_window(ticket, limit, remaining, reset_at);
        }
        self.report = Some(Report {
            ticket,
            remaining,
            reset_at,
            at: now,
        });
        self.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(remaining: u32, reset_ms: u64) -> Observed {
        Observed {
            remaining: Some(remaining),
            reset_in: Some(Duration::from_millis(reset_ms)),
            ..Observed::default()
        }
    }

    fn go(d: Decision) -> u64 {
        match d {
            Decision::Go(t) => t,
            other => panic!("expected to go, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_budget_lets_requests_through() {
        let mut g = Gate::default();
        let now = Instant::now();
        assert_eq!(g.decide(now, 25), Decision::Go(1));
        assert_eq!(g.decide(now, 25), Decision::Go(2));
        assert_eq!(g.available_at(now), None);
    }

    #[test]
    fn tickets_issued_after_a_report_count_against_it() {
        let mut g = Gate::default();
        let now = Instant::now();
        let t1 = go(g.decide(now, 2));
        let t2 = go(g.decide(now, 2));
        // The answer to the first request: 5 left then; the second is in flight.
        g.observe(t1, now, seen(5, 3000));
        assert_eq!(g.available_at(now), Some(4));
        go(g.decide(now, 2)); // 3 left
        go(g.decide(now, 2)); // 2 left: the reserve
        assert_eq!(g.available_at(now), Some(2));
        assert!(matches!(g.decide(now, 2), Decision::WaitUntil(_)));
        // A late answer to an older ticket does not overwrite a newer report.
        g.observe(t2, now, seen(4, 3000));
        g.observe(4, now, seen(2, 3000));
        g.observe(t2, now, seen(9, 3000));
        assert_eq!(g.available_at(now), Some(2));
    }

    #[test]
    fn at_the_reserve_it_waits_for_the_reset_then_sends_one_probe() {
        let mut g = Gate::default();
        let now = Instant::now();
        let t = go(g.decide(now, 1));
        g.observe(t, now, seen(1, 2000));
        let reset = now + Duration::from_millis(2000);
        assert_eq!(g.decide(now, 1), Decision::WaitUntil(reset));
        // After the reset: one probe; the others wait for its answer.
        let probe = go(g.decide(reset, 1));
        assert_eq!(g.decide(reset, 1), Decision::WaitUntil(reset + PROBE_POLL));
        // The probe says 40 slots freed up: everyone goes again.
        g.observe(probe, reset, seen(40, 500));
        assert_eq!(g.available_at(reset), Some(40));
        go(g.decide(reset, 1));
    }

    #[test]
    fn a_probe_that_finds_no_room_waits_for_the_next_reset() {
        let mut g = Gate::default();
        let now = Instant::now();
        let t = go(g.decide(now, 0));
        g.observe(t, now, seen(0, 1000));
        let at = now + Duration::from_millis(1000);
        let probe = go(g.decide(at, 0));
        g.observe(probe, at, seen(0, 0));
        // A reset "now" (rounded dates, skew) still spaces the probes.
        assert_eq!(g.decide(at, 0), Decision::WaitUntil(at + MIN_PROBE_GAP));
        // An unanswered probe (transport failure) frees the gate for the next one.
        let p2 = go(g.decide(at + MIN_PROBE_GAP, 0));
        g.observe(p2, at + MIN_PROBE_GAP, Observed::default());
        assert!(matches!(
            g.decide(at + MIN_PROBE_GAP * 2, 0),
            Decision::Go(_)
        ));
    }

    #[test]
    fn a_429_blocks_everyone_until_retry_after() {
        let mut g = Gate::default();
        let now = Instant::now();
        let t = go(g.decide(now, 0));
        g.observe(
            t,
            now,
            Observed {
                retry_after: Some(Duration::from_secs(3)),
                limited: true,
                ..Observed::default()
            },
        );
        let until = now + Duration::from_secs(3);
        assert_eq!(g.decide(now, 0), Decision::WaitUntil(until));
        assert_eq!(
            g.decide(until - Duration::from_millis(1), 0),
            Decision::WaitUntil(until)
        );
        // Then a probe: the budget is still believed to be empty.
        go(g.decide(until, 0));
        assert!(matches!(g.decide(until, 0), Decision::WaitUntil(_)));
    }

    #[test]
    fn the_window_is_learnt_from_resets_and_own_requests_are_credited_back() {
        let mut g = Gate::default();
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let with_limit = |remaining: u32, reset_in: Duration| Observed {
            limit: Some(10),
            remaining: Some(remaining),
            reset_in: Some(reset_in),
            ..Observed::default()
        };
        // Ten requests 100 ms apart into an empty 10-per-1 s window; each answer's reset is
        // when the first leaves, rounded up to the next whole second.
        for i in 0..10u64 {
            let at = t0 + ms(100 * i);
            let t = go(g.decide(at, 0));
            g.observe(t, at, with_limit(9 - i as u32, (t0 + ms(1000)) - at));
        }
        // The first answer alone: 1 in the window, reset 1 s after it was sent.
        assert_eq!(g.window(), Some(ms(1000)));
        let full = t0 + ms(950);
        assert_eq!(g.available_at(full), Some(0));
        // Not before the first request leaves; then one slot per request that left.
        assert_eq!(g.decide(full, 0), Decision::WaitUntil(t0 + ms(1000)));
        assert_eq!(g.available_at(t0 + ms(1000)), Some(1));
        assert_eq!(g.available_at(t0 + ms(1250)), Some(3));
        let t = go(g.decide(t0 + ms(1250), 0));
        assert_eq!(t, 11);
        assert_eq!(g.available_at(t0 + ms(1250)), Some(2));
        // A reserve of 2 needs one more to leave: at 1.3 s.
        assert_eq!(
            g.decide(t0 + ms(1250), 2),
            Decision::WaitUntil(t0 + ms(1300))
        );
    }

    #[test]
    fn a_429_forgets_the_window_and_unanswered_requests_are_not_credited() {
        let mut g = Gate::default();
        let now = Instant::now();
        let t1 = go(g.decide(now, 0));
        g.observe(
            t1,
            now,
            Observed {
                limit: Some(5),
                remaining: Some(4),
                reset_in: Some(Duration::from_secs(2)),
                ..Observed::default()
            },
        );
        assert_eq!(g.window(), Some(Duration::from_secs(2)));
        let t2 = go(g.decide(now, 0));
        g.observe(t2, now, Observed::default());
        assert_eq!(g.leaving().count(), 1, "only the answered request");
        let t3 = go(g.decide(now, 0));
        g.observe(
            t3,
            now,
            Observed {
                limited: true,
                retry_after: Some(Duration::from_secs(1)),
                ..Observed::default()
            },
        );
        assert_eq!(g.window(), None);
    }
}
