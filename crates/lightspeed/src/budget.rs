//! One Lightspeed rate budget per retailer, shared by every process of a deployment.
//!
//! Lightspeed limits each retailer (domain prefix) to `300 x registers + 50` requests per 5
//! minutes, a sliding window. The per-process [`crate::pace::Gate`] paces one process by the
//! answers' `X-RateLimit-Remaining`, but several processes (the `sale-poster` instances, the
//! inventory mirror) each read the same `Remaining` and can overshoot together. So before
//! every request the client also takes a slot from a budget shared by all of them
//! ([`SharedBudget`]); the gate stays behind it and still reacts to `Remaining` (other apps)
//! and to 429s.
//!
//! **The window record.** One record per retailer (in DynamoDB: pk `RATE#{domain_prefix}`,
//! sk `WINDOW`, see `els_store_aws::RateWindows`) holds the requests counted per time slot
//! ([`BudgetSettings::slot`], a thirtieth of the window: 10 s of the documented 5 minutes),
//! keyed by the slot's end (epoch milliseconds), a `version`, and the latest
//! `X-RateLimit-Limit` any process saw. Taking slots ([`WindowBudget`]):
//! 1. read the record (strongly consistent);
//! 2. drop the slots that left the window ([`live_slots`]);
//! 3. if `used + 1 <= limit - reserve`, add up to [`BudgetSettings::block`] requests to the
//!    current slot ([`plan`], [`record_taken`]) and write the record under the condition
//!    that its `version` is still the one read; a lost race reads again (at most
//!    [`BudgetSettings::conflict_retries`] times);
//! 4. otherwise answer how long until the oldest slots leave ([`Grant::Wait`]); the client
//!    waits (at most `Pacing::max_wait`, else it reports "rate limited, retry later" without
//!    sending, as for the gate). Nothing frees before then, so the process's other requests
//!    get the same answer without reading the record again.
//!
//! **Blocks.** To keep the writes per request low, a process takes a block of slots at once
//! (up to [`BudgetSettings::block`], 5: one read and one write per 5 requests) and spends
//! them locally. A block is good for [`BudgetSettings::hold`] after it was taken; what is
//! left then is dropped, and counts as spent: conservative, never an overshoot. The size
//! adapts to the process's pace ([`next_block_size`]): 1, then doubling while blocks are
//! spent within half their hold, and down to what was spent when one expires, so a process
//! that sends a request now and then does not waste the budget others wait for.
//!
//! **Why it never overshoots.** A slot ending at `end` holds requests taken before `end`,
//! each sent within `hold` of being taken and reaching Lightspeed within `grace` (latency
//! and clock skew between processes). Each has left Lightspeed's window by
//! `end + hold + grace + window` ([`leaves_at`]), and until then its slot counts. The
//! conditional writes are serialised by `version`, so the write that granted the latest
//! request saw every earlier grant whose slot still counts: Lightspeed never counts more of
//! our requests in a window than `limit - reserve`. The cost is a window longer by one slot,
//! `hold` and `grace` (at 5 minutes: 10 + 2 + 1 s, 4 %).
//!
//! **The limit.** `limit` is the latest `X-RateLimit-Limit` this process saw (the gate
//! keeps it), else the one stored on the record by another process, else the formula for
//! one register ([`ONE_REGISTER_LIMIT`], 350): never above the real one before the first
//! answer. `reserve` is the client's `Pacing::reserve` (the poster's 25 leave room for the
//! inventory mirror, whose reserve is 0).
//!
//! **Settings.** [`BudgetSettings::for_window`] scales everything to the window the client
//! assumes (`Pacing::window`: the documented 5 minutes, or a sandbox's scaled one), so a
//! test can run a window of seconds. All processes sharing a record must assume the same
//! window; slots are keyed by their end, so different slot lengths would still add up.
//!
//! Implementations: [`WindowBudget`] over a [`WindowStore`]: [`MemoryWindows`] (one process,
//! `els serve`: the poster and the mirror share it) or the DynamoDB table (every function
//! instance). The arithmetic is pure ([`slot_end`], [`leaves_at`], [`live_slots`],
//! [`plan`], [`record_taken`]) and tested without a clock.

use crate::pace;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

mod shared;

pub use shared::{
    Ask, BudgetFuture, BudgetStats, Grant, MemoryWindows, SharedBudget, WindowBudget, WindowStore,
    next_block_size,
};

/// Lightspeed's limit for a retailer with `registers` registers: `300 x registers + 50`.
pub const fn limit_for_registers(registers: u32) -> u32 {
    registers.saturating_mul(300).saturating_add(50)
}

/// The limit assumed before any answer said `X-RateLimit-Limit`: one register's.
pub const ONE_REGISTER_LIMIT: u32 = limit_for_registers(1);

/// Slots per window.
pub const SLOTS_PER_WINDOW: u32 = 30;
/// Requests a process takes per write.
pub const DEFAULT_BLOCK: u32 = 5;
/// How long a block may be spent: a hundred-and-fiftieth of the window, within these bounds
/// (2 s at 5 minutes).
pub const HOLD_BOUNDS: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(2));
/// The allowance for latency and clock skew: a three-hundredth of the window, within these
/// bounds (1 s at 5 minutes; Lambda clocks are NTP-synchronised to well under that).
pub const GRACE_BOUNDS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));
/// The wait answered after every attempt lost a race.
pub const CONFLICT_WAIT: Duration = Duration::from_millis(20);
/// How long an idle record is kept (DynamoDB TTL) after its last slot left the window.
pub const RECORD_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How a [`WindowBudget`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetSettings {
    /// Lightspeed's window (assumed: no header carries it).
    pub window: Duration,
    /// The length of a counting slot.
    pub slot: Duration,
    /// Slots taken per write and spent locally.
    pub block: u32,
    /// How long after it was taken a block may be spent.
    pub hold: Duration,
    /// Allowance for the time from sending to being counted, and for clock skew.
    pub grace: Duration,
    /// Conditional writes attempted per acquisition before answering a short wait.
    pub conflict_retries: u32,
}

impl Default for BudgetSettings {
    /// For Lightspeed's documented window.
    fn default() -> Self {
        Self::for_window(pace::DOCUMENTED_WINDOW)
    }
}

impl BudgetSettings {
    /// Settings scaled to `window`.
    pub fn for_window(window: Duration) -> Self {
        let window = window.clamp(Duration::from_millis(1), pace::MAX_WINDOW);
        Self {
            window,
            slot: (window / SLOTS_PER_WINDOW).max(Duration::from_millis(1)),
            block: DEFAULT_BLOCK,
            hold: (window / 150).clamp(HOLD_BOUNDS.0, HOLD_BOUNDS.1),
            grace: (window / 300).clamp(GRACE_BOUNDS.0, GRACE_BOUNDS.1),
            conflict_retries: 8,
        }
    }

    /// The same settings taking `block` slots per write (at least 1).
    pub fn with_block(mut self, block: u32) -> Self {
        self.block = block.max(1);
        self
    }
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Now, in epoch milliseconds.
pub fn epoch_ms(now: SystemTime) -> i64 {
    match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => millis(d),
        Err(e) => -millis(e.duration()),
    }
}

/// The end (epoch ms, exclusive) of the slot `now_ms` falls in.
pub fn slot_end(now_ms: i64, settings: &BudgetSettings) -> i64 {
    let slot = millis(settings.slot).max(1);
    now_ms
        .div_euclid(slot)
        .saturating_add(1)
        .saturating_mul(slot)
}

/// When the requests of the slot ending at `end` have all left Lightspeed's window: taken
/// before `end`, sent within `hold`, counted within `grace`, gone one window later.
pub fn leaves_at(end: i64, settings: &BudgetSettings) -> i64 {
    end.saturating_add(millis(settings.window))
        .saturating_add(millis(settings.hold))
        .saturating_add(millis(settings.grace))
}

/// Drops the slots that left the window by `now_ms` (and empty ones).
pub fn live_slots(slots: &mut BTreeMap<i64, u32>, now_ms: i64, settings: &BudgetSettings) {
    slots.retain(|end, n| *n > 0 && leaves_at(*end, settings) > now_ms);
}

/// What a budget may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Take this many slots (at least 1).
    Take(u32),
    /// Nothing is free: look again after this long, when the oldest slots have left.
    Wait(Duration),
}

/// With `slots` live at `now_ms`, how many of `want` slots may be taken without the window
/// holding more than `cap` (at least 1), or how long until one may.
pub fn plan(
    slots: &BTreeMap<i64, u32>,
    now_ms: i64,
    want: u32,
    cap: u32,
    settings: &BudgetSettings,
) -> Plan {
    let cap = u64::from(cap.max(1));
    let used: u64 = slots.values().map(|n| u64::from(*n)).sum();
    if used < cap {
        let free = u32::try_from(cap - used).unwrap_or(u32::MAX);
        return Plan::Take(want.max(1).min(free));
    }
    // Oldest first: the first slot whose leaving frees one.
    let mut left = used;
    for (end, n) in slots {
        left -= u64::from(*n);
        if left < cap {
            let wait = leaves_at(*end, settings).saturating_sub(now_ms).max(1);
            return Plan::Wait(Duration::from_millis(wait.unsigned_abs()));
        }
    }
    Plan::Wait(settings.window)
}

/// One retailer's window record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowState {
    /// 0 when there is no record; each write adds 1.
    pub version: u64,
    /// Requests taken per slot, keyed by the slot's end (epoch ms).
    pub slots: BTreeMap<i64, u32>,
    /// The latest `X-RateLimit-Limit` a process saw.
    pub limit: Option<u32>,
    /// When the record may be deleted (epoch seconds; DynamoDB's TTL attribute).
    pub expires_at: i64,
}

/// Records `n` slots taken at `now_ms` on a record read at version `state.version` (its
/// old slots already dropped): the next version, the limit seen (if any), the expiry.
pub fn record_taken(
    state: &mut WindowState,
    now_ms: i64,
    n: u32,
    limit_seen: Option<u32>,
    settings: &BudgetSettings,
) {
    let end = slot_end(now_ms, settings);
    let count = state.slots.entry(end).or_insert(0);
    *count = count.saturating_add(n);
    state.version = state.version.saturating_add(1);
    if limit_seen.is_some() {
        state.limit = limit_seen;
    }
    let last = state.slots.keys().next_back().copied().unwrap_or(end);
    state.expires_at = leaves_at(last, settings).saturating_add(millis(RECORD_TTL)) / 1000;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BudgetSettings {
        // 300 s: 10 s slots, a 2 s hold, a 1 s grace.
        BudgetSettings::default()
    }

    const S: i64 = 1000;

    #[test]
    fn the_documented_window_has_ten_second_slots_and_a_few_seconds_of_margin() {
        let s = settings();
        assert_eq!(s.slot, Duration::from_secs(10));
        assert_eq!(s.hold, Duration::from_secs(2));
        assert_eq!(s.grace, Duration::from_secs(1));
        assert_eq!(limit_for_registers(1), 350);
        assert_eq!(limit_for_registers(3), 950);
        // A sandbox's scaled window keeps margins a debug build can meet.
        let scaled = BudgetSettings::for_window(Duration::from_secs(3));
        assert_eq!(scaled.slot, Duration::from_millis(100));
        assert_eq!(scaled.hold, HOLD_BOUNDS.0);
        assert_eq!(scaled.grace, GRACE_BOUNDS.0);
    }

    #[test]
    fn slots_end_on_slot_boundaries_and_leave_a_window_plus_margins_later() {
        let s = settings();
        let t = 1_800_000_003 * S;
        assert_eq!(slot_end(t, &s), 1_800_000_010 * S);
        assert_eq!(slot_end(1_800_000_010 * S, &s), 1_800_000_020 * S);
        assert_eq!(slot_end(1_800_000_010 * S - 1, &s), 1_800_000_010 * S);
        assert_eq!(
            leaves_at(1_800_000_010 * S, &s),
            (1_800_000_010 + 300 + 2 + 1) * S
        );
    }

    #[test]
    fn slots_that_left_the_window_are_dropped() {
        let s = settings();
        let mut slots = BTreeMap::from([(10 * S, 4), (20 * S, 0), (30 * S, 7)]);
        // The slot ending at 10 s leaves at 313 s.
        live_slots(&mut slots, 312 * S, &s);
        assert_eq!(slots, BTreeMap::from([(10 * S, 4), (30 * S, 7)]));
        live_slots(&mut slots, 313 * S, &s);
        assert_eq!(slots, BTreeMap::from([(30 * S, 7)]));
    }

    #[test]
    fn a_block_is_cut_to_what_is_free_and_a_full_window_waits_for_its_oldest_slots() {
        let s = settings();
        let slots = BTreeMap::from([(10 * S, 4), (20 * S, 3), (30 * S, 2)]);
        let now = 35 * S;
        // 9 used of a cap of 20: a whole block.
        assert_eq!(plan(&slots, now, 5, 20, &s), Plan::Take(5));
        // Of a cap of 11: two.
        assert_eq!(plan(&slots, now, 5, 11, &s), Plan::Take(2));
        // Full at 9: one frees when the slot ending at 10 s leaves (313 s).
        assert_eq!(
            plan(&slots, now, 5, 9, &s),
            Plan::Wait(Duration::from_secs(313 - 35))
        );
        // Over-full (the limit went down): 4 + 3 must leave to get below 3, at 323 s.
        assert_eq!(
            plan(&slots, now, 1, 3, &s),
            Plan::Wait(Duration::from_secs(323 - 35))
        );
        // A cap of 0 still lets one request through an empty window.
        assert_eq!(plan(&BTreeMap::new(), now, 5, 0, &s), Plan::Take(1));
    }

    #[test]
    fn taking_counts_in_the_current_slot_and_moves_the_version() {
        let s = settings();
        let mut state = WindowState {
            version: 7,
            slots: BTreeMap::from([(10 * S, 4)]),
            limit: Some(650),
            expires_at: 0,
        };
        record_taken(&mut state, 12 * S, 5, None, &s);
        record_taken(&mut state, 19 * S, 1, Some(950), &s);
        assert_eq!(state.slots, BTreeMap::from([(10 * S, 4), (20 * S, 6)]));
        assert_eq!(state.version, 9);
        assert_eq!(state.limit, Some(950));
        assert_eq!(state.expires_at, 20 + 303 + 86_400);
    }

    /// Lightspeed's sliding window, in epoch ms: `limit` per `window`.
    struct Server {
        limit: usize,
        window: i64,
        hits: Vec<i64>,
        refused: u32,
    }

    impl Server {
        fn send(&mut self, at: i64) {
            let window = self.window;
            self.hits.retain(|h| at - h < window);
            if self.hits.len() >= self.limit {
                self.refused += 1;
            } else {
                self.hits.push(at);
            }
        }
    }

    #[test]
    fn processes_sharing_the_record_never_exceed_the_limit() {
        // Three processes taking blocks of 5 from one record whenever it lets them, each
        // asking again at its own odd moments, so blocks are taken anywhere in a slot
        // (the first burst 10 ms before a slot ends). The worst case for the margins: the
        // blocks taken last in a slot are counted as late as allowed (the hold and the grace
        // after they were taken), and the blocks taken when that slot leaves at once.
        let s = BudgetSettings::for_window(Duration::from_secs(300));
        // The server refuses anything over the budget's cap (350 less a reserve of 25).
        let mut server = Server {
            limit: 325,
            window: 300 * S,
            hits: Vec::new(),
            refused: 0,
        };
        let mut state = WindowState::default();
        let start = 1_800_000_000 * S - 10;
        let mut next = [start, start + 333, start + 666];
        let odd = [7, 1_013, 4_567];
        let (mut sent, mut sends) = (0u32, Vec::new());
        while let Some((p, now)) = next.iter().copied().enumerate().min_by_key(|(_, t)| *t)
            && now < start + 1200 * S
        {
            live_slots(&mut state.slots, now, &s);
            match plan(&state.slots, now, 5, 350 - 25, &s) {
                Plan::Take(n) => {
                    record_taken(&mut state, now, n, Some(350), &s);
                    // Blocks taken in a slot's last seconds are counted late; others at once.
                    let late = millis(s.hold) + millis(s.grace) - 2;
                    let delay = if slot_end(now, &s) - now < late {
                        late
                    } else {
                        0
                    };
                    sends.extend(std::iter::repeat_n(now + delay, n as usize));
                    sent += n;
                    next[p] = now + odd[p];
                }
                Plan::Wait(d) => next[p] = now + millis(d) + odd[p] % 97,
            }
        }
        sends.sort_unstable();
        for at in sends {
            server.send(at);
        }
        assert_eq!(server.refused, 0);
        // Four windows at about the ceiling less the reserve.
        assert!(sent >= 4 * 300, "{sent}");
    }
}
