//! The shared budget at run time: the [`SharedBudget`] the client asks, and
//! [`WindowBudget`], which keeps this process's blocks and takes them from a
//! [`WindowStore`] with the arithmetic of the parent module (see its docs for the design).

use super::{
    BudgetSettings, CONFLICT_WAIT, ONE_REGISTER_LIMIT, Plan, WindowState, epoch_ms, live_slots,
    plan, record_taken,
};
use els_core::{ApiError, DomainPrefix, StoreError};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A boxed future, so the budget traits can be used as trait objects.
pub type BudgetFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where window records are kept. `save` is a conditional write: it stores `next` only if
/// the stored version is still `expected` (0: no record), and answers whether it did.
pub trait WindowStore: Send + Sync + std::fmt::Debug {
    /// The record, read strongly consistently ([`WindowState::default`] when there is none).
    fn load<'a>(
        &'a self,
        domain_prefix: &'a DomainPrefix,
    ) -> BudgetFuture<'a, Result<WindowState, StoreError>>;
    /// Stores `next` if the record is still at `expected`; `Ok(false)` if it is not.
    fn save<'a>(
        &'a self,
        domain_prefix: &'a DomainPrefix,
        expected: u64,
        next: &'a WindowState,
    ) -> BudgetFuture<'a, Result<bool, StoreError>>;
}

/// Window records in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryWindows {
    records: Mutex<HashMap<String, WindowState>>,
}

impl WindowStore for MemoryWindows {
    fn load<'a>(
        &'a self,
        domain_prefix: &'a DomainPrefix,
    ) -> BudgetFuture<'a, Result<WindowState, StoreError>> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let state = records
            .get(domain_prefix.as_str())
            .cloned()
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(state)))
    }

    fn save<'a>(
        &'a self,
        domain_prefix: &'a DomainPrefix,
        expected: u64,
        next: &'a WindowState,
    ) -> BudgetFuture<'a, Result<bool, StoreError>> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let stored = records
            .entry(domain_prefix.as_str().to_string())
            .or_default();
        let saved = stored.version == expected;
        if saved {
            *stored = next.clone();
        }
        Box::pin(std::future::ready(Ok(saved)))
    }
}

/// What the client asks of the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// The latest `X-RateLimit-Limit` this process saw.
    pub limit: Option<u32>,
    /// Requests of the budget to leave to others (`Pacing::reserve`).
    pub reserve: u32,
}

/// The budget's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// One request may be sent, until this instant (later, ask again: the slot is spent).
    Go { valid_until: Instant },
    /// No slot now: ask again after this long.
    Wait(Duration),
}

/// A rate budget shared by the processes that call Lightspeed for the same retailers.
pub trait SharedBudget: Send + Sync + std::fmt::Debug {
    /// One slot for a request to `domain_prefix`, or how long until there is one. A store
    /// failure is [`ApiError::Unavailable`]: nothing is sent without a slot.
    fn acquire<'a>(
        &'a self,
        domain_prefix: &'a DomainPrefix,
        ask: Ask,
    ) -> BudgetFuture<'a, Result<Grant, ApiError>>;
}

/// What a [`WindowBudget`] did, for benchmarks and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// Slots handed to requests.
    pub granted: u64,
    /// Record writes that took a block.
    pub writes: u64,
    /// Conditional writes that lost a race.
    pub conflicts: u64,
    /// Acquisitions answered with a wait.
    pub waits: u64,
    /// Record reads that found the window full (the other waits cost no read).
    pub full_reads: u64,
    /// Slots of blocks that expired unspent.
    pub unspent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    granted: AtomicU64,
    writes: AtomicU64,
    conflicts: AtomicU64,
    waits: AtomicU64,
    full_reads: AtomicU64,
    unspent: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// This process's block of slots for one retailer.
#[derive(Debug, Default)]
struct Block {
    left: u32,
    /// Slots the block was given.
    taken: u32,
    valid_until: Option<Instant>,
    /// When its last slot was handed out.
    emptied_at: Option<Instant>,
    /// Slots to ask for next ([`next_block_size`]; 0 before the first block: 1).
    size: u32,
    /// The record said nothing frees before this: until then the process's other requests
    /// wait without reading it again.
    full_until: Option<Instant>,
}

/// The size of a process's next block, at most `max`: twice the last one when it was spent
/// within the first half of its hold (`early`), the same when spent later, and what was
/// spent of it (at least 1) when some of it expired. A process sending a request now and
/// then takes one slot per write, a busy one `max`, and few slots expire unspent either way.
pub fn next_block_size(size: u32, taken: u32, left: u32, early: bool, max: u32) -> u32 {
    let max = max.max(1);
    match (left, early) {
        (0, true) => size.max(1).saturating_mul(2).min(max),
        (0, false) => size.clamp(1, max),
        _ => taken.saturating_sub(left).clamp(1, max),
    }
}

/// The shared budget over a [`WindowStore`] (see the module docs).
#[derive(Debug)]
pub struct WindowBudget<S> {
    store: S,
    settings: BudgetSettings,
    /// Per retailer; the async lock makes one task refill while the others wait for it.
    blocks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Block>>>>,
    counters: Counters,
}

impl WindowBudget<MemoryWindows> {
    /// A budget for one process (`els serve`): no block is needed, the record is memory.
    pub fn in_process(settings: BudgetSettings) -> Self {
        Self::new(MemoryWindows::default(), settings.with_block(1))
    }
}

impl<S: WindowStore> WindowBudget<S> {
    pub fn new(store: S, settings: BudgetSettings) -> Self {
        Self {
            store,
            settings,
            blocks: Mutex::default(),
            counters: Counters::default(),
        }
    }

    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn stats(&self) -> BudgetStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BudgetStats {
            granted: get(&c.granted),
            writes: get(&c.writes),
            conflicts: get(&c.conflicts),
            waits: get(&c.waits),
            full_reads: get(&c.full_reads),
            unspent: get(&c.unspent),
        }
    }

    async fn take(&self, domain_prefix: &DomainPrefix, ask: Ask) -> Result<Grant, ApiError> {
        let cell = {
            let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            blocks
                .entry(domain_prefix.as_str().to_string())
                .or_default()
                .clone()
        };
        let mut block = cell.lock().await;
        if let Some(valid_until) = block.valid_until
            && block.left > 0
            && Instant::now() < valid_until
        {
            block.left -= 1;
            if block.left == 0 {
                block.emptied_at = Some(Instant::now());
            }
            bump(&self.counters.granted, 1);
            return Ok(Grant::Go { valid_until });
        }
        if let Some(until) = block.full_until {
            let now = Instant::now();
            if now < until {
                bump(&self.counters.waits, 1);
                return Ok(Grant::Wait(until - now));
            }
            block.full_until = None;
        }
        let s = &self.settings;
        if let Some(valid_until) = block.valid_until {
            bump(&self.counters.unspent, u64::from(block.left));
            let early = block
                .emptied_at
                .is_some_and(|at| at + s.hold / 2 <= valid_until);
            block.size = next_block_size(block.size, block.taken, block.left, early, s.block);
            block.left = 0;
            block.taken = 0;
            block.valid_until = None;
            block.emptied_at = None;
        }
        let want = block.size.clamp(1, s.block.max(1));
        for attempt in 0..s.conflict_retries.max(1) {
            let started = Instant::now();
            let now_ms = epoch_ms(SystemTime::now());
            let mut state = self
                .store
                .load(domain_prefix)
                .await
                .map_err(budget_unavailable)?;
            let expected = state.version;
            live_slots(&mut state.slots, now_ms, s);
            let limit = ask.limit.or(state.limit).unwrap_or(ONE_REGISTER_LIMIT);
            let cap = limit.saturating_sub(ask.reserve);
            match plan(&state.slots, now_ms, want, cap, s) {
                Plan::Wait(wait) => {
                    bump(&self.counters.waits, 1);
                    bump(&self.counters.full_reads, 1);
                    block.full_until = Some(started + wait);
                    return Ok(Grant::Wait(wait));
                }
                Plan::Take(n) => {
                    record_taken(&mut state, now_ms, n, ask.limit, s);
                    let saved = self
                        .store
                        .save(domain_prefix, expected, &state)
                        .await
                        .map_err(budget_unavailable)?;
                    if saved {
                        bump(&self.counters.writes, 1);
                        bump(&self.counters.granted, 1);
                        let valid_until = started + s.hold;
                        block.left = n - 1;
                        block.taken = n;
                        block.valid_until = Some(valid_until);
                        block.emptied_at = (n == 1).then(Instant::now);
                        return Ok(Grant::Go { valid_until });
                    }
                    bump(&self.counters.conflicts, 1);
                    // Another process wrote first: read again, after a moment that grows
                    // with each lost race, so the writers spread out.
                    let spread = 1u64 << attempt.min(5);
                    let pause = jitter() % (spread + 1);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        }
        bump(&self.counters.waits, 1);
        Ok(Grant::Wait(CONFLICT_WAIT))
    }
}

/// A pseudo-random number (std's per-process random hash keys), enough to spread writers.
fn jitter() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

fn budget_unavailable(e: StoreError) -> ApiError {
    ApiError::Unavailable {
        detail: format!("the shared Lightspeed rate budget: {e}"),
    }
}

impl<S: WindowStore> SharedBudget for WindowBudget<S> {
    fn acquire<'a>(
        &'a self,
        domain_prefix: &'a DomainPrefix,
        ask: Ask,
    ) -> BudgetFuture<'a, Result<Grant, ApiError>> {
        Box::pin(self.take(domain_prefix, ask))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_grow_while_spent_early_and_shrink_to_what_was_spent() {
        // Spent within half the hold: from the first block of 1, 2, 4, then the maximum.
        assert_eq!(next_block_size(0, 1, 0, true, 5), 2);
        assert_eq!(next_block_size(2, 2, 0, true, 5), 4);
        assert_eq!(next_block_size(4, 4, 0, true, 5), 5);
        assert_eq!(next_block_size(5, 5, 0, true, 5), 5);
        // Spent, but only late in the hold: the same size again.
        assert_eq!(next_block_size(2, 2, 0, false, 5), 2);
        // 2 of 5 spent before the hold ran out: 2 next time; none spent: 1.
        assert_eq!(next_block_size(5, 5, 3, false, 5), 2);
        assert_eq!(next_block_size(5, 5, 5, false, 5), 1);
        // A block cut short by a full window, spent early: it grows from what it was asked.
        assert_eq!(next_block_size(4, 1, 0, true, 5), 5);
    }

    #[tokio::test]
    async fn one_process_takes_blocks_and_waits_when_the_window_is_full() {
        let settings = BudgetSettings::for_window(Duration::from_secs(300));
        let budget = WindowBudget::new(MemoryWindows::default(), settings);
        let shop = DomainPrefix::parse("shop").unwrap();
        let ask = Ask {
            limit: Some(10),
            reserve: 2,
        };
        let mut went = 0;
        for _ in 0..20 {
            match budget.acquire(&shop, ask).await.unwrap() {
                Grant::Go { .. } => went += 1,
                Grant::Wait(wait) => {
                    // Full: nothing frees before the first slot leaves, minutes from now.
                    assert!(wait > Duration::from_secs(290), "{wait:?}");
                    break;
                }
            }
        }
        assert_eq!(went, 8, "the limit less the reserve");
        let stats = budget.stats();
        // Blocks of 1, 2, 4, then the 1 left: four writes for eight slots.
        assert_eq!((stats.granted, stats.writes, stats.waits), (8, 4, 1));
        // The other requests of the process wait without reading the record again.
        assert!(matches!(
            budget.acquire(&shop, ask).await.unwrap(),
            Grant::Wait(_)
        ));
        assert_eq!(budget.stats().full_reads, 1);
        // The record holds the slots and the limit for the other processes.
        let record = budget.store().load(&shop).await.unwrap();
        assert_eq!(record.slots.values().sum::<u32>(), 8);
        assert_eq!(record.limit, Some(10));
        // Another retailer has its own record.
        let other = DomainPrefix::parse("other").unwrap();
        assert!(matches!(
            budget.acquire(&other, ask).await.unwrap(),
            Grant::Go { .. }
        ));
    }
}
