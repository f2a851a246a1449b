//! Operator actions that work on any backend: connection upsert, status, replay, the
//! inventory mirror's one-shot run and reconcile.

use els_core::StoreId;
use els_core::inventory::StockLevel;
use els_core::inventory::mirror::{
    InventoryMirror, MirrorError, MirrorReport, ReconcileProgress, RunOutcome,
};
use els_core::inventory::reconcile::ReconcileReport;
use els_core::ledger::{self, LedgerEntry, OrderKey, OrderState, ReasonCode};
use els_core::{
    Clock, Connection, ConnectionStore, EcwidApi, InventoryStateStore, LedgerStore, LightspeedApi,
    OrderMessage, StoreError, WorkQueue,
};
use els_store_aws::SqsQueue;
use els_store_sqlite::SqliteStore;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// Creates or replaces a connection, keeping the version chain intact.
pub async fn upsert_connection<S: ConnectionStore>(
    store: &S,
    conn: Connection,
) -> Result<Connection, StoreError> {
    let written = write_connection(store, conn.store_id, 3, |_| Some(conn.clone())).await?;
    Ok(written.expect("an upsert always writes"))
}

/// Changes a stored connection with `change`, on the latest stored version (retried when
/// another writer, a token refresh say, got there first), so the tokens it does not touch
/// stay whatever is stored. `Ok(None)`: the store has no connection.
pub async fn update_connection<S: ConnectionStore>(
    store: &S,
    store_id: StoreId,
    change: impl Fn(&mut Connection),
) -> Result<Option<Connection>, StoreError> {
    write_connection(store, store_id, 5, |existing| {
        existing.map(|mut c| {
            change(&mut c);
            c
        })
    })
    .await
}

/// Writes `next(stored)` (nothing when it is `None`) as the stored version's successor,
/// conditioned on that version; a lost race reads again, up to `attempts` times.
async fn write_connection<S: ConnectionStore>(
    store: &S,
    store_id: StoreId,
    attempts: usize,
    next: impl Fn(Option<Connection>) -> Option<Connection>,
) -> Result<Option<Connection>, StoreError> {
    for _ in 0..attempts {
        let (existing, expected) = match store.get_connection(store_id).await {
            Ok(existing) => {
                let expected = existing.as_ref().map(|c| c.version);
                (existing, expected)
            }
            // Tokens that cannot be decrypted: a new connection replaces the stored one at
            // its version (an update has nothing to keep, and fails).
            Err(StoreError::Undecryptable { version, .. }) if next(None).is_some() => {
                (None, Some(version))
            }
            Err(e) => return Err(e),
        };
        let Some(mut conn) = next(existing) else {
            return Ok(None);
        };
        conn.version = expected.unwrap_or(0) + 1;
        match store.put_connection(&conn, expected).await {
            Ok(()) => return Ok(Some(conn)),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(format!(
        "connection of store {store_id} kept changing"
    )))
}

/// Ledger counts by state for one store.
pub async fn counts_by_state<S: LedgerStore>(
    store: &S,
    store_id: StoreId,
) -> Result<BTreeMap<&'static str, usize>, StoreError> {
    Ok(count_states(
        &store.list_orders(store_id, None, usize::MAX).await?,
    ))
}

/// What `els status` says of a store beyond its counts, from its ledger `entries`: when it
/// last posted, how long the oldest unposted order has waited, and the last sweep and
/// inventory runs.
pub async fn store_activity<S>(
    store: &S,
    store_id: StoreId,
    entries: &[LedgerEntry],
) -> Result<String, StoreError>
where
    S: els_core::SweepStateStore + els_core::InventoryStateStore,
{
    let now = chrono::Utc::now();
    let ago = |t: chrono::DateTime<chrono::Utc>| {
        let secs = (now - t).num_seconds().max(0);
        match secs {
            0..120 => format!("{secs} s ago"),
            120..7200 => format!("{} min ago", secs / 60),
            _ => format!("{} h ago", secs / 3600),
        }
    };
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("never".to_string(), |t| {
            format!("{} ({})", t.to_rfc3339(), ago(t))
        })
    };
    let last_post = entries
        .iter()
        .filter(|e| e.state == OrderState::Posted)
        .map(|e| e.updated_at)
        .max();
    let oldest_waiting = entries
        .iter()
        .filter(|e| matches!(e.state, OrderState::Queued | OrderState::Posting))
        .map(|e| e.created_at)
        .min();
    let sweep = store.get_sweep_cursor(store_id).await?;
    let mirror = store.get_inventory_cursor(store_id).await?;
    let mut out = String::new();
    let _ = writeln!(out, "  last sale posted       {}", when(last_post));
    let _ = writeln!(
        out,
        "  oldest queued order    {}",
        oldest_waiting.map_or("none".to_string(), |t| format!("waiting since {}", ago(t)))
    );
    let _ = writeln!(
        out,
        "  last inventory run     {}",
        when(mirror.map(|m| m.updated_at))
    );
    match sweep {
        None => {
            let _ = writeln!(out, "  last order sweep       never");
        }
        Some(c) => {
            let _ = writeln!(
                out,
                "  last order sweep       {}; {} found last run, {} in all; swept to {}",
                when(c.last_completed_at),
                c.last_found,
                c.total_found,
                when(c.swept_to)
            );
            if let Some(problem) = c.health.and_then(|h| h.problem) {
                let _ = writeln!(out, "  health                 {problem}");
            }
            if let Some(e) = c.last_error {
                let _ = writeln!(out, "  last sweep error       {e}");
            }
        }
    }
    Ok(out)
}

/// What `els restore-check` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Connections marked restored (their older orders search before posting).
    pub connections: usize,
    /// Ledger entries marked "search Lightspeed before posting".
    pub orders_marked: usize,
    /// Entries already marked or POSTED, left alone.
    pub orders_unchanged: usize,
}

/// After the state was restored from a backup: every connection records the moment (orders
/// created before it search Lightspeed before their first post, including orders the
/// restored ledger does not know at all), and every ledger entry that is not POSTED is marked
/// to search first. Idempotent; a concurrent worker's write is retried against.
pub async fn restore_check<S: ConnectionStore + LedgerStore>(
    store: &S,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<RestoreReport, StoreError> {
    let mut report = RestoreReport::default();
    for conn in store.list_connections().await? {
        update_connection(store, conn.store_id, |c| c.restored_at = Some(now)).await?;
        report.connections += 1;
        for entry in store.list_orders(conn.store_id, None, usize::MAX).await? {
            let mut current = Some(entry);
            // A worker may write the entry meanwhile: read again and retry a few times.
            for _ in 0..5 {
                let Some(e) = current.take() else { break };
                let Some(next) = ledger::mark_restored(&e, now) else {
                    report.orders_unchanged += 1;
                    break;
                };
                match store.save_order(&next, Some(e.version)).await {
                    Ok(()) => {
                        report.orders_marked += 1;
                        break;
                    }
                    Err(StoreError::Conflict(_)) => current = store.load_order(&e.key).await?,
                    Err(other) => return Err(other),
                }
            }
        }
    }
    Ok(report)
}

/// Ledger entries counted by state (every state present, 0 when none).
pub fn count_states(entries: &[LedgerEntry]) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> =
        OrderState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for e in entries {
        *counts.entry(e.state.as_str()).or_default() += 1;
    }
    counts
}

/// A human-readable account of one order.
pub fn describe(entry: &LedgerEntry) -> String {
    let mut out = String::new();
    out.push_str(&format!("order      {}\n", entry.key));
    out.push_str(&format!("state      {}\n", entry.state));
    if let Some(id) = &entry.sale_id {
        out.push_str(&format!("sale       {id}\n"));
    }
    out.push_str(&format!("invoice    {}\n", entry.invoice_number));
    if let Some(t) = entry.total {
        out.push_str(&format!("total      {t:.2}\n"));
    }
    if let Some(r) = &entry.reason {
        out.push_str(&format!("reason     {r}\n"));
    }
    if let Some(e) = &entry.last_error {
        out.push_str(&format!("last error {e}\n"));
    }
    out.push_str(&format!("attempts   {}\n", entry.attempts));
    for l in &entry.lines {
        out.push_str(&format!("line       {} x {}\n", l.quantity, l.sku));
    }
    let r = &entry.returns;
    for done in &r.done {
        out.push_str(&format!(
            "return     {}  {:.2} {}  Lightspeed sale {}{}  {}\n",
            done.seq,
            done.amount,
            done.kind.as_str(),
            done.sale_id,
            if done.adopted {
                " (found after an unknown outcome)"
            } else {
                ""
            },
            done.at.format("%Y-%m-%d %H:%M:%S")
        ));
    }
    if !r.done.is_empty() {
        out.push_str(&format!("returned   {:.2}\n", r.returned()));
    }
    if let Some(p) = &r.pending {
        out.push_str(&format!(
            "returning  {}  {:.2} {}  invoice {}{}\n",
            p.seq,
            p.amount,
            p.kind.as_str(),
            p.invoice_number,
            if p.may_exist {
                " (may have reached Lightspeed: looked for before posting again)"
            } else {
                ""
            }
        ));
    }
    if let Some(h) = &r.held {
        out.push_str(&format!(
            "refund     held: {h} (els replay --order {} takes it back)\n",
            entry.key.order_id
        ));
    }
    if let Some(e) = &r.last_error {
        out.push_str(&format!("refund err {e}\n"));
    }
    out.push_str("history\n");
    for h in &entry.history {
        out.push_str(&format!(
            "  {}  {:<8} {}\n",
            h.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            h.state.as_str(),
            h.detail
        ));
    }
    out
}

/// What a replay did to one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayResult {
    Requeued,
    /// Posted, in flight or queued already: nothing to do (a replay never duplicates a sale).
    NotReplayable(OrderState),
    Unknown,
}

/// Puts one parked or skipped order (or a stranded one: QUEUED without a message, POSTING
/// with an expired lease) back on the queue. The ledger is updated before the message is
/// sent; if sending fails, the order is QUEUED and a second replay sends it again. A
/// duplicate message is harmless: the poster's claim sees the order's state.
pub async fn replay_order<S: LedgerStore, Q: WorkQueue>(
    store: &S,
    queue: &Q,
    key: &OrderKey,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<ReplayResult> {
    let Some(entry) = store.load_order(key).await? else {
        return Ok(ReplayResult::Unknown);
    };
    let version = match ledger::requeue_for_replay(&entry, now)
        .or_else(|| ledger::release_held_returns(&entry, now))
    {
        // A held refund of a posted order is released the same way (R6): the next
        // delivery decides it again.
        Some(requeued) => {
            store.save_order(&requeued, Some(entry.version)).await?;
            requeued.version
        }
        None if entry.state == OrderState::Queued => entry.version,
        None => return Ok(ReplayResult::NotReplayable(entry.state)),
    };
    let nonce = format!("{version}-{}", now.timestamp_millis());
    queue.enqueue(&OrderMessage::replay(key, &nonce)).await?;
    Ok(ReplayResult::Requeued)
}

/// Replays every parked or skipped order of a store with the given reason code (for example
/// `UNKNOWN_SKU` once the SKU exists, or `POST_SALES_OFF` once posting is switched on).
pub async fn replay_parked<S: LedgerStore, Q: WorkQueue>(
    store: &S,
    queue: &Q,
    store_id: StoreId,
    code: ReasonCode,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<OrderKey>> {
    let mut done = Vec::new();
    for e in store.list_orders(store_id, None, usize::MAX).await? {
        let parked = matches!(e.state, OrderState::Parked | OrderState::Skipped)
            && e.reason.as_ref().map(|r| r.code) == Some(code);
        let held = e.returns.held.as_ref().map(|r| r.code) == Some(code);
        if (parked || held)
            && replay_order(store, queue, &e.key, now).await? == ReplayResult::Requeued
        {
            done.push(e.key);
        }
    }
    Ok(done)
}

// --- The dead-letter queue (`els replay --dlq`) -------------------------------------------

/// One message read from a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Names the message in reports: the SQS `MessageId`, or the SQLite row number.
    pub id: String,
    /// What deletes the message or puts it back (a receipt handle, a row number).
    pub handle: String,
    /// The order message, or why the body is not one.
    pub message: Result<OrderMessage, String>,
}

/// A dead-letter queue as an operator reads it. The port ([`WorkQueue`]) does not cover it:
/// only `els replay --dlq` and `els status` look at the DLQ.
pub trait DeadLetterQueue: Send + Sync {
    /// Up to 10 messages this reader has not taken before, oldest first. On SQS they stay
    /// hidden from other readers until deleted or released; a message whose visibility ran
    /// out may be taken again (the caller recognises it by its id).
    fn take(&self) -> impl Future<Output = anyhow::Result<Vec<DeadLetter>>> + Send;
    /// Deletes the message: it was replayed, or its order is posted.
    fn delete(&self, letter: &DeadLetter) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Leaves the message in the queue, visible again.
    fn release(&self, letter: &DeadLetter) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// How many messages the DLQ holds (approximate on SQS).
    fn depth(&self) -> impl Future<Output = anyhow::Result<usize>> + Send;
}

/// The embedded mode's dead-letter table.
pub struct SqliteDeadLetters<'a> {
    store: &'a SqliteStore,
    /// The last row taken: `take` pages through the table once.
    after: Mutex<i64>,
}

impl<'a> SqliteDeadLetters<'a> {
    pub fn new(store: &'a SqliteStore) -> Self {
        Self {
            store,
            after: Mutex::new(0),
        }
    }
}

impl DeadLetterQueue for SqliteDeadLetters<'_> {
    async fn take(&self) -> anyhow::Result<Vec<DeadLetter>> {
        let after = *self.after.lock().unwrap_or_else(|p| p.into_inner());
        let page = self.store.dead_letters_after(after, 10)?;
        if let Some((last, _)) = page.last() {
            *self.after.lock().unwrap_or_else(|p| p.into_inner()) = *last;
        }
        Ok(page
            .into_iter()
            .map(|(seq, message)| DeadLetter {
                id: format!("dead letter #{seq}"),
                handle: seq.to_string(),
                message,
            })
            .collect())
    }

    async fn delete(&self, letter: &DeadLetter) -> anyhow::Result<()> {
        let seq: i64 = letter.handle.parse()?;
        self.store.delete_dead_letter(seq)?;
        Ok(())
    }

    async fn release(&self, _letter: &DeadLetter) -> anyhow::Result<()> {
        // Reading a row does not hide it: nothing to undo.
        Ok(())
    }

    async fn depth(&self) -> anyhow::Result<usize> {
        Ok(self.store.dead_letter_count()?)
    }
}

/// The SQS FIFO dead-letter queue of the order queue.
pub struct SqsDeadLetters {
    dlq: SqsQueue,
    /// How long a taken message stays hidden while the replay works on it.
    visibility: Duration,
}

impl SqsDeadLetters {
    /// The DLQ at `dlq_url`, or else the one the main queue's redrive policy names.
    pub async fn for_queue(main: &SqsQueue, dlq_url: Option<String>) -> anyhow::Result<Self> {
        let url = match dlq_url {
            Some(url) => url,
            None => main.dead_letter_queue_url().await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "the queue {} has no redrive policy naming a dead-letter queue; pass --dlq-url (or DLQ_URL)",
                    main.queue_url()
                )
            })?,
        };
        Ok(Self {
            dlq: SqsQueue::new(main.client().clone(), url),
            visibility: Duration::from_secs(300),
        })
    }

    pub fn url(&self) -> &str {
        self.dlq.queue_url()
    }
}

impl DeadLetterQueue for SqsDeadLetters {
    async fn take(&self) -> anyhow::Result<Vec<DeadLetter>> {
        Ok(self
            .dlq
            .receive_raw(10, self.visibility)
            .await?
            .into_iter()
            .map(|m| DeadLetter {
                message: serde_json::from_str(&m.body).map_err(|e| e.to_string()),
                id: m.message_id,
                handle: m.receipt,
            })
            .collect())
    }

    async fn delete(&self, letter: &DeadLetter) -> anyhow::Result<()> {
        Ok(self.dlq.ack(&letter.handle).await?)
    }

    async fn release(&self, letter: &DeadLetter) -> anyhow::Result<()> {
        Ok(self.dlq.retry_after(&letter.handle, Duration::ZERO).await?)
    }

    async fn depth(&self) -> anyhow::Result<usize> {
        let (visible, in_flight) = self.dlq.queue_depth().await?;
        Ok(visible + in_flight)
    }
}

/// What `replay_dead_letters` did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DlqReport {
    pub dry_run: bool,
    /// One per message put back on the main queue (an order may appear twice).
    pub replayed: Vec<OrderKey>,
    /// Orders already POSTED: their messages were deleted from the DLQ.
    pub already_posted: Vec<OrderKey>,
    /// Messages left in the DLQ: `(message id, why)`.
    pub left: Vec<(String, String)>,
}

enum Disposition {
    Replayed(OrderKey),
    AlreadyPosted(OrderKey),
    Left(String),
}

/// Takes every message of the dead-letter queue back. For each one: the order's ledger item
/// goes back to QUEUED ([`ledger::requeue_for_replay`]: a PARKED `DEAD_LETTERED` order, or any
/// parked, skipped or stranded one; a QUEUED order or one without an item needs nothing),
/// then a fresh replay message goes on the main queue, then the DLQ message is deleted. In
/// that order: a crash in between leaves a duplicate message (harmless, the ledger keeps it
/// to one sale), never a lost one. A POSTED order's message is only deleted. A body that is
/// not an order message, or an order in flight (live lease), stays in the DLQ and is
/// reported. `dry_run` changes nothing and reports what would happen.
pub async fn replay_dead_letters<S, Q, D>(
    store: &S,
    queue: &Q,
    dlq: &D,
    now: chrono::DateTime<chrono::Utc>,
    dry_run: bool,
) -> anyhow::Result<DlqReport>
where
    S: LedgerStore,
    Q: WorkQueue,
    D: DeadLetterQueue,
{
    let mut report = DlqReport {
        dry_run,
        ..DlqReport::default()
    };
    let mut seen = HashSet::new();
    // Messages kept hidden while the run goes on, made visible again at the end.
    let mut held = Vec::new();
    loop {
        let letters = dlq.take().await?;
        let mut fresh = false;
        for letter in letters {
            if !seen.insert(letter.id.clone()) {
                held.push(letter);
                continue;
            }
            fresh = true;
            let left = match replay_dead_letter(store, queue, dlq, &letter, now, dry_run).await {
                Ok(Disposition::Replayed(key)) => {
                    report.replayed.push(key);
                    false
                }
                Ok(Disposition::AlreadyPosted(key)) => {
                    report.already_posted.push(key);
                    false
                }
                Ok(Disposition::Left(why)) => {
                    report.left.push((letter.id.clone(), why));
                    true
                }
                Err(e) => {
                    report.left.push((letter.id.clone(), format!("{e:#}")));
                    true
                }
            };
            if dry_run || left {
                held.push(letter);
            }
        }
        if !fresh {
            break;
        }
    }
    for letter in &held {
        if let Err(e) = dlq.release(letter).await {
            tracing::warn!(message_id = %letter.id, error = %e, "could not make a dead letter visible again; it returns after its visibility timeout");
        }
    }
    Ok(report)
}

async fn replay_dead_letter<S, Q, D>(
    store: &S,
    queue: &Q,
    dlq: &D,
    letter: &DeadLetter,
    now: chrono::DateTime<chrono::Utc>,
    dry_run: bool,
) -> anyhow::Result<Disposition>
where
    S: LedgerStore,
    Q: WorkQueue,
    D: DeadLetterQueue,
{
    let message = match &letter.message {
        Ok(m) => m,
        Err(why) => {
            return Ok(Disposition::Left(format!(
                "not an order message ({why}); left for inspection"
            )));
        }
    };
    let key = message.key();
    let entry = store.load_order(&key).await?;
    let version = match &entry {
        Some(e) if e.state == OrderState::Posted => {
            if !dry_run {
                dlq.delete(letter).await?;
            }
            return Ok(Disposition::AlreadyPosted(key));
        }
        // Never claimed: the poster creates the item.
        None => 0,
        Some(e) if e.state == OrderState::Queued => e.version,
        Some(e) => match ledger::requeue_for_replay(e, now) {
            Some(requeued) => {
                if !dry_run {
                    store.save_order(&requeued, Some(e.version)).await?;
                }
                requeued.version
            }
            None => {
                return Ok(Disposition::Left(format!(
                    "order {key} is {} under a live lease (being posted); run the replay again later",
                    e.state
                )));
            }
        },
    };
    if !dry_run {
        let nonce = format!("dlq-{version}-{}", now.timestamp_millis());
        queue.enqueue(&OrderMessage::replay(&key, &nonce)).await?;
        dlq.delete(letter).await?;
    }
    Ok(Disposition::Replayed(key))
}

/// The summary `els replay --dlq` prints.
pub fn describe_dlq_replay(r: &DlqReport) -> String {
    let mut out = String::new();
    let (replayed, posted) = if r.dry_run {
        ("would replay", "already posted (would delete)")
    } else {
        ("replayed", "already posted (deleted)")
    };
    let read = r.replayed.len() + r.already_posted.len() + r.left.len();
    let _ = writeln!(
        out,
        "dead-letter queue: {read} message(s) read{}",
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "  {replayed:<30} {}", r.replayed.len());
    for k in &r.replayed {
        let _ = writeln!(out, "    {k}");
    }
    let _ = writeln!(out, "  {posted:<30} {}", r.already_posted.len());
    for k in &r.already_posted {
        let _ = writeln!(out, "    {k}");
    }
    let _ = writeln!(out, "  {:<30} {}", "left in the DLQ", r.left.len());
    for (id, why) in &r.left {
        let _ = writeln!(out, "    {id}: {why}");
    }
    if !r.left.is_empty() {
        let _ = writeln!(
            out,
            "  (on SQS, later messages of the same store wait behind one left in place: deal with it, then run the replay again)"
        );
    }
    if r.dry_run && read > 0 {
        let _ = writeln!(
            out,
            "  (on SQS a dry run holds what it read, so it sees at most 10 messages per store)"
        );
    }
    out
}

/// One line about a mirror run, for `els sync-inventory` and logs.
pub fn describe_mirror_run(r: &MirrorReport) -> String {
    let mut out = format!("store {}: ", r.store_id);
    match r.outcome {
        RunOutcome::SyncOff => {
            out.push_str("sync_inventory is off; nothing written (S4)");
            return out;
        }
        RunOutcome::Busy => {
            out.push_str("another inventory run holds the cursor; skipped");
            return out;
        }
        RunOutcome::Completed if r.quiet => {
            out.push_str("nothing changed since the last run; no lease taken, nothing written");
            return out;
        }
        RunOutcome::Completed => out.push_str("completed"),
        RunOutcome::Deferred => {
            let _ = write!(
                out,
                "deferred ({})",
                r.deferred_reason.as_deref().unwrap_or("budget")
            );
        }
    }
    let _ = write!(
        out,
        "; {} written ({} by PUT, {} in {} batch(es)), {} unchanged, {} unlinked, {} ambiguous, \
         {} record(s) at other outlets; inventory cursor {} -> {}; {} Lightspeed and {} Ecwid \
         request(s) in {} ms",
        r.written,
        r.written_by_put,
        r.written_by_batch,
        r.batches,
        r.unchanged,
        r.unlinked,
        r.ambiguous,
        r.other_outlet,
        r.inventory_cursor_from,
        r.inventory_cursor_to,
        r.lightspeed_requests,
        r.ecwid_requests,
        r.elapsed_ms
    );
    if !r.unlinked_skus.is_empty() {
        let _ = write!(out, "\n  unlinked SKUs: {}", r.unlinked_skus.join(", "));
    }
    if !r.ambiguous_skus.is_empty() {
        let _ = write!(out, "\n  ambiguous SKUs: {}", r.ambiguous_skus.join(", "));
    }
    out
}

fn level(l: Option<StockLevel>) -> String {
    l.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
}

/// The drift report of `els reconcile`.
pub fn describe_reconcile(r: &ReconcileReport, fix: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "store {}: {} Lightspeed product(s), {} Ecwid product(s) read",
        r.store_id, r.lightspeed_products, r.ecwid_products
    );
    let _ = writeln!(
        out,
        "  linked {}   in sync {}   drift {}   unlinked {}   ambiguous {}",
        r.linked,
        r.in_sync,
        r.drift.len(),
        r.unlinked,
        r.ambiguous
    );
    if !r.drift.is_empty() {
        let _ = writeln!(
            out,
            "  {:<24} {:<28} {:>10} {:>8} {:>10} {:>10}{}",
            "SKU",
            "Ecwid",
            "Lightspeed",
            "pending",
            "expected",
            "Ecwid has",
            if fix { "  fixed" } else { "" }
        );
        for d in &r.drift {
            let ls = d
                .ls_level
                .map(|l| l.normalize().to_string())
                .unwrap_or_else(|| "untracked".into());
            let _ = writeln!(
                out,
                "  {:<24} {:<28} {:>10} {:>8} {:>10} {:>10}{}",
                d.sku,
                d.target.to_string(),
                ls,
                d.pending.normalize().to_string(),
                d.expected.to_string(),
                level(d.actual),
                if fix {
                    if d.fixed { "  yes" } else { "  FAILED" }
                } else {
                    ""
                }
            );
        }
    }
    if !r.unlinked_skus.is_empty() {
        let _ = writeln!(out, "  unlinked SKUs: {}", r.unlinked_skus.join(", "));
    }
    if !r.ambiguous_skus.is_empty() {
        let _ = writeln!(out, "  ambiguous SKUs: {}", r.ambiguous_skus.join(", "));
    }
    if fix {
        let _ = writeln!(
            out,
            "  fixed {} level(s) in Ecwid, {} failed (nothing is ever written to Lightspeed)",
            r.fixed, r.fix_failed
        );
    } else if !r.drift.is_empty() {
        let _ = writeln!(
            out,
            "  run with --fix to write the expected levels to Ecwid"
        );
    }
    out
}

/// Runs `reconcile` with a progress bar on stderr; `show_progress` false (stdout is not a
/// terminal, or a test) hides it.
pub async fn reconcile_with_progress<S, E, L, C>(
    mirror: &InventoryMirror<S, E, L, C>,
    conn: &Connection,
    fix: bool,
    show_progress: bool,
) -> Result<ReconcileReport, MirrorError>
where
    S: ConnectionStore + LedgerStore + InventoryStateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    let bar = ProgressBar::with_draw_target(
        None,
        if show_progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let counted = ProgressStyle::with_template("{msg:<22} [{bar:40}] {pos}/{len} ({eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let open = ProgressStyle::with_template("{spinner} {msg:<22} {pos} read")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let progress = {
        let bar = bar.clone();
        move |p: ReconcileProgress| match p {
            ReconcileProgress::Phase { name, total } => {
                bar.reset();
                bar.set_message(name);
                match total {
                    Some(n) => {
                        bar.set_style(counted.clone());
                        bar.set_length(n);
                    }
                    None => {
                        bar.set_style(open.clone());
                        bar.unset_length();
                    }
                }
            }
            ReconcileProgress::Advance(n) => bar.inc(n),
        }
    };
    let result = mirror.reconcile(conn, fix, &progress).await;
    bar.finish_and_clear();
    result
}
