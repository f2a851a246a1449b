//! One retry policy for every call that is tried again within a process: the poster's
//! redelivery delays and lost claim races, the mirror's API calls, the token refresh's store
//! writes and the DynamoDB adapter's unprocessed batch items.
//!
//! A [`Backoff`] says how many attempts there are and how long to wait before each retry:
//! `base × factor^(retry − 1)`, at most `cap`, minus a random part (`jitter`) drawn from an
//! injected [`JitterSource`], so the policy itself stays deterministic and testable. Waits
//! happen on the [`Clock`] port, so core needs no async runtime and a test clock can skip
//! them.
//!
//! Two ways to use it:
//! * [`retry`] runs an attempt again until it succeeds or the caller's rule says stop, for
//!   attempts that carry nothing from one try to the next (the mirror's calls, a claim);
//! * [`Retries`] is the same policy as a counter a loop asks [`Retries::pause`] after each
//!   failure, for attempts that hand state to the next one (the items a batch left
//!   unprocessed, a merged token pair).

use crate::ports::Clock;
use std::future::Future;
use std::time::Duration;

/// Randomness for jitter: each call returns a number in `[0, 1)`.
pub trait JitterSource {
    fn next_unit(&mut self) -> f64;
}

/// No randomness: every wait is the policy's delay exactly.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJitter;

impl JitterSource for NoJitter {
    fn next_unit(&mut self) -> f64 {
        0.0
    }
}

/// Any closure returning numbers in `[0, 1)` (a seeded generator in tests, a random one in
/// an adapter).
impl<F: FnMut() -> f64> JitterSource for F {
    fn next_unit(&mut self) -> f64 {
        self()
    }
}

/// How often to try and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Attempts in all, the first one included (0 counts as 1). `u32::MAX`: no limit here
    /// (the queue's receive count limits the poster's retries).
    pub attempts: u32,
    /// The wait before the first retry.
    pub base: Duration,
    /// Each further wait is the previous one times this (1: constant waits).
    pub factor: u32,
    /// No wait is longer than this.
    pub cap: Duration,
    /// The part of each wait that is random, from 0 (exact waits) to 1 ("full jitter": a
    /// wait anywhere between zero and the delay). Spreads out workers that failed together.
    pub jitter: f64,
}

impl Backoff {
    /// Doubling waits from `base`, at most `cap`, without jitter.
    pub const fn exponential(attempts: u32, base: Duration, cap: Duration) -> Self {
        Self {
            attempts,
            base,
            factor: 2,
            cap,
            jitter: 0.0,
        }
    }

    /// Retries at once: for a lost race that is decided again from a fresh read.
    pub const fn immediate(attempts: u32) -> Self {
        Self::exponential(attempts, Duration::ZERO, Duration::ZERO)
    }

    /// The same policy with `jitter` (clamped to `[0, 1]`) of each wait random.
    pub const fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The delay before retry number `retry` (1 is the first retry; 0 is taken as 1),
    /// before jitter: `base × factor^(retry − 1)`, at most `cap`.
    pub fn delay(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1);
        let mut delay = self.base;
        for _ in 0..exponent {
            if delay.is_zero() || delay >= self.cap || self.factor <= 1 {
                break;
            }
            delay = delay.checked_mul(self.factor).unwrap_or(self.cap);
        }
        delay.min(self.cap)
    }

    /// The wait before retry number `retry`, with jitter, or `None` when the attempts are
    /// spent (`retry` would be attempt `retry + 1`).
    pub fn wait(&self, retry: u32, jitter: &mut impl JitterSource) -> Option<Duration> {
        if retry >= self.attempts.max(1) {
            return None;
        }
        let delay = self.delay(retry);
        if self.jitter <= 0.0 || delay.is_zero() {
            return Some(delay);
        }
        let random = jitter.next_unit().clamp(0.0, 1.0);
        Some(delay.mul_f64(1.0 - self.jitter * random))
    }

    /// A counter of the retries of one operation under this policy.
    pub fn start<J: JitterSource>(&self, jitter: J) -> Retries<J> {
        Retries {
            policy: *self,
            jitter,
            retries: 0,
        }
    }
}

/// The retries of one operation so far; see [`Backoff::start`].
#[derive(Debug, Clone)]
pub struct Retries<J = NoJitter> {
    policy: Backoff,
    jitter: J,
    retries: u32,
}

impl<J: JitterSource> Retries<J> {
    /// Call after a failed attempt: waits the policy's next wait on `clock` and returns
    /// `true`, or returns `false` at once when the attempts are spent.
    pub async fn pause<C: Clock>(&mut self, clock: &C) -> bool {
        let Some(wait) = self.next_wait() else {
            return false;
        };
        sleep(clock, wait).await;
        true
    }

    /// Counts a retry and returns the wait before it without sleeping (a caller that
    /// retries at once ignores it), or `None` when the attempts are spent.
    pub fn next_wait(&mut self) -> Option<Duration> {
        let wait = self.policy.wait(self.retries + 1, &mut self.jitter)?;
        self.retries += 1;
        Some(wait)
    }

    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }
}

/// Runs `attempt` until it succeeds, or until `wait_after` gives up: after each failure,
/// `wait_after(&error, failures)` (failures so far, from 1) returns how long to wait before
/// the next attempt, usually [`Backoff::wait`] for retryable errors, or `None` to return
/// the error. Zero waits do not sleep.
pub async fn retry<C, T, E, Fut>(
    clock: &C,
    mut attempt: impl FnMut() -> Fut,
    mut wait_after: impl FnMut(&E, u32) -> Option<Duration>,
) -> Result<T, E>
where
    C: Clock,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failures: u32 = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                failures = failures.saturating_add(1);
                match wait_after(&e, failures) {
                    Some(wait) => sleep(clock, wait).await,
                    None => return Err(e),
                }
            }
        }
    }
}

async fn sleep<C: Clock>(clock: &C, wait: Duration) {
    if !wait.is_zero() {
        clock.sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use std::sync::{Arc, Mutex};

    /// Records every sleep and returns at once.
    #[derive(Clone, Default)]
    struct Sleeps(Arc<Mutex<Vec<Duration>>>);

    impl Sleeps {
        fn taken(&self) -> Vec<Duration> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Clock for Sleeps {
        fn now(&self) -> DateTime<Utc> {
            DateTime::from_timestamp(1_800_000_000, 0).unwrap()
        }
        fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
            self.0.lock().unwrap().push(duration);
            std::future::ready(())
        }
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap() {
        let policy =
            Backoff::exponential(u32::MAX, Duration::from_secs(5), Duration::from_secs(900));
        let delays: Vec<u64> = (1..=10).map(|r| policy.delay(r).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
        assert_eq!(
            policy.delay(0),
            Duration::from_secs(5),
            "0 is the first retry"
        );
        assert_eq!(
            policy.delay(u32::MAX),
            Duration::from_secs(900),
            "no overflow"
        );

        let constant = Backoff {
            factor: 1,
            ..Backoff::exponential(3, ms(50), ms(500))
        };
        assert_eq!(constant.delay(7), ms(50));
        assert_eq!(Backoff::immediate(3).delay(2), Duration::ZERO);
    }

    #[test]
    fn waits_stop_when_the_attempts_are_spent() {
        let policy = Backoff::exponential(3, ms(100), ms(2000));
        let waits: Vec<_> = (1..=4).map(|r| policy.wait(r, &mut NoJitter)).collect();
        assert_eq!(waits, [Some(ms(100)), Some(ms(200)), None, None]);
        assert_eq!(
            Backoff::exponential(0, ms(1), ms(1)).wait(1, &mut NoJitter),
            None,
            "0 attempts is one attempt, no retry"
        );
    }

    #[test]
    fn jitter_takes_its_share_off_each_wait_from_the_injected_source() {
        let policy = Backoff::exponential(10, ms(400), ms(10_000)).with_jitter(0.5);
        let mut draws = [0.0, 0.5, 0.999].into_iter();
        let mut source = move || draws.next().unwrap();
        assert_eq!(policy.wait(1, &mut source), Some(ms(400)));
        assert_eq!(policy.wait(1, &mut source), Some(ms(300)));
        let last = policy.wait(2, &mut source).unwrap();
        assert!(last > ms(400) && last < ms(401), "{last:?}");
        assert_eq!(policy.with_jitter(7.0).jitter, 1.0, "clamped");
        assert_eq!(
            policy.wait(1, &mut NoJitter),
            Some(ms(400)),
            "no randomness, no jitter"
        );
    }

    #[tokio::test]
    async fn retry_waits_between_attempts_until_success() {
        let clock = Sleeps::default();
        let policy = Backoff::exponential(5, ms(100), ms(2000));
        let mut calls = 0;
        let result: Result<u32, &str> = retry(
            &clock,
            || {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err("busy") } else { Ok(n) } }
            },
            |_, failures| policy.wait(failures, &mut NoJitter),
        )
        .await;
        assert_eq!(result, Ok(3));
        assert_eq!(clock.taken(), [ms(100), ms(200)]);
    }

    #[tokio::test]
    async fn retry_returns_the_last_error_when_the_rule_gives_up() {
        let clock = Sleeps::default();
        let policy = Backoff::exponential(3, ms(100), ms(2000));
        let mut calls = 0;
        let result: Result<(), String> = retry(
            &clock,
            || {
                calls += 1;
                let n = calls;
                async move { Err(format!("failure {n}")) }
            },
            |_, failures| policy.wait(failures, &mut NoJitter),
        )
        .await;
        assert_eq!(result, Err("failure 3".to_string()));
        assert_eq!(clock.taken(), [ms(100), ms(200)]);

        // A permanent error is returned at once.
        let mut calls = 0;
        let result: Result<(), &str> = retry(
            &clock,
            || {
                calls += 1;
                async { Err("refused") }
            },
            |e, failures| (*e != "refused").then(|| policy.wait(failures, &mut NoJitter))?,
        )
        .await;
        assert_eq!((result, calls), (Err("refused"), 1));
    }

    #[tokio::test]
    async fn immediate_retries_and_counters_pause_as_the_policy_says() {
        let clock = Sleeps::default();
        let mut tries = Backoff::immediate(3).start(NoJitter);
        assert!(tries.pause(&clock).await);
        assert!(tries.pause(&clock).await);
        assert!(!tries.pause(&clock).await, "3 attempts: 2 retries");
        assert_eq!(tries.retries(), 2);
        assert!(clock.taken().is_empty(), "zero waits do not sleep");

        let mut tries = Backoff::exponential(4, ms(50), ms(80)).start(NoJitter);
        assert_eq!(tries.next_wait(), Some(ms(50)), "counted, not slept");
        while tries.pause(&clock).await {}
        assert_eq!(clock.taken(), [ms(80), ms(80)]);
        assert_eq!(tries.next_wait(), None);
    }
}
