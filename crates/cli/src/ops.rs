//! Operator actions that work on any backend: connection upsert, status, replay.

use els_core::ledger::{self, LedgerEntry, OrderKey, OrderState, ReasonCode};
use els_core::{Connection, OrderMessage, StateStore, StoreError, WorkQueue};
use std::collections::BTreeMap;

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

/// Puts one parked or skipped order back on the queue.
pub async fn replay_order<S: StateStore, Q: WorkQueue>(
    store: &S,
    queue: &Q,
    key: &OrderKey,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<ReplayResult> {
    let Some(entry) = store.load_order(key).await? else {
        return Ok(ReplayResult::Unknown);
    };
    let Some(requeued) = ledger::requeue_for_replay(&entry, now) else {
        return Ok(ReplayResult::NotReplayable(entry.state));
    };
    store.save_order(&requeued, Some(entry.version)).await?;
    let nonce = format!("{}-{}", requeued.version, now.timestamp_millis());
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
