//! Operator actions that work on any backend: connection upsert, status, replay, the
//! inventory mirror's one-shot run and reconcile.

use els_core::inventory::StockLevel;
use els_core::inventory::mirror::{
    InventoryMirror, MirrorError, MirrorReport, ReconcileProgress, RunOutcome,
};
use els_core::inventory::reconcile::ReconcileReport;
use els_core::ledger::{self, LedgerEntry, OrderKey, OrderState, ReasonCode};
use els_core::{
    Clock, Connection, EcwidApi, LightspeedApi, OrderMessage, StateStore, StoreError, WorkQueue,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Creates or replaces a connection, keeping the version chain intact.
pub async fn upsert_connection<S: StateStore>(
    store: &S,
    mut conn: Connection,
) -> Result<Connection, StoreError> {
    for _ in 0..3 {
        let existing = store.get_connection(conn.store_id).await?;
        let expected = existing.as_ref().map(|c| c.version);
        conn.version = expected.unwrap_or(0) + 1;
        match store.put_connection(&conn, expected).await {
            Ok(()) => return Ok(conn),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(format!(
        "connection of store {} kept changing",
        conn.store_id
    )))
}

/// Ledger counts by state for one store.
pub async fn counts_by_state<S: StateStore>(
    store: &S,
    store_id: u64,
) -> Result<BTreeMap<&'static str, usize>, StoreError> {
    let mut counts: BTreeMap<&'static str, usize> =
        OrderState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for e in store.list_orders(store_id, None, usize::MAX).await? {
        *counts.entry(e.state.as_str()).or_default() += 1;
    }
    Ok(counts)
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
pub async fn replay_order<S: StateStore, Q: WorkQueue>(
    store: &S,
    queue: &Q,
    key: &OrderKey,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<ReplayResult> {
    let Some(entry) = store.load_order(key).await? else {
        return Ok(ReplayResult::Unknown);
    };
    let version = match ledger::requeue_for_replay(&entry, now) {
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
pub async fn replay_parked<S: StateStore, Q: WorkQueue>(
    store: &S,
    queue: &Q,
    store_id: u64,
    code: ReasonCode,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<OrderKey>> {
    let mut done = Vec::new();
    for e in store.list_orders(store_id, None, usize::MAX).await? {
        if matches!(e.state, OrderState::Parked | OrderState::Skipped)
            && e.reason.as_ref().map(|r| r.code) == Some(code)
            && replay_order(store, queue, &e.key, now).await? == ReplayResult::Requeued
        {
            done.push(e.key);
        }
    }
    Ok(done)
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
    S: StateStore,
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
