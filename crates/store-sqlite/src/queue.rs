//! [`WorkQueue`] on SQLite, with SQS FIFO semantics (see the crate docs). The message group
//! is [`OrderMessage::group_id`], the order (`{store}:{order}`): one order's messages one at
//! a time, a store's orders side by side. Messages queued by an earlier version under their
//! store's group drain as they are.

use crate::{Failure, Inner, SqliteStore, duration_millis, now_millis};
use els_core::QueueError;
use els_core::ports::{Delivery, OrderMessage, WorkQueue};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Expired deduplication ids are pruned on every this many enqueues, so that an enqueue
/// stays one small transaction.
const PRUNE_EVERY: u64 = 256;

/// A receipt names the delivery: the message's sequence number and its receive count. A
/// later delivery of the same message has a higher count, so an old receipt stops matching.
fn receipt_for(seq: i64, receive_count: i64) -> String {
    format!("{seq}-{receive_count}")
}

fn parse_receipt(receipt: &str) -> Result<i64, Failure> {
    receipt
        .split_once('-')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or_else(|| Failure::InvalidMessage(format!("malformed receipt handle {receipt:?}")))
}

fn decode_message(body: &str, seq: i64) -> Result<OrderMessage, Failure> {
    serde_json::from_str(body).map_err(|e| Failure::Corrupt {
        key: format!("queue message {seq}"),
        detail: e.to_string(),
    })
}

/// After the head of `group_id` left the queue, its next message becomes the head.
fn promote_next_head(tx: &rusqlite::Transaction<'_>, group_id: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE queue SET is_head = 1
         WHERE seq = (SELECT MIN(seq) FROM queue WHERE group_id = ?1)",
    )?
    .execute([group_id])?;
    Ok(())
}

fn enqueue_in(
    conn: &mut rusqlite::Connection,
    inner: &Inner,
    body: &str,
    group_id: &str,
    dedup_id: &str,
) -> Result<(), Failure> {
    let now = now_millis();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if inner
        .enqueues
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(PRUNE_EVERY)
    {
        tx.prepare_cached("DELETE FROM queue_dedup WHERE expires_at <= ?1")?
            .execute([now])?;
    }
    let seen_until: Option<i64> = tx
        .prepare_cached("SELECT expires_at FROM queue_dedup WHERE dedup_id = ?1")?
        .query_row([dedup_id], |r| r.get(0))
        .optional()?;
    if seen_until.is_some_and(|until| until > now) {
        // A duplicate within the window: accepted and dropped, like SQS FIFO.
        return Ok(());
    }
    let expires_at = now.saturating_add(duration_millis(inner.config.dedup_window));
    tx.prepare_cached(
        "INSERT INTO queue_dedup (dedup_id, expires_at) VALUES (?1, ?2)
         ON CONFLICT (dedup_id) DO UPDATE SET expires_at = excluded.expires_at",
    )?
    .execute(params![dedup_id, expires_at])?;
    tx.prepare_cached(
        "INSERT INTO queue (group_id, body, enqueued_at, visible_at, receive_count, is_head)
         VALUES (?1, ?2, ?3, ?3, 0, NOT EXISTS (SELECT 1 FROM queue WHERE group_id = ?1))",
    )?
    .execute(params![group_id, body, now])?;
    tx.commit()?;
    Ok(())
}

fn receive_in(
    conn: &mut rusqlite::Connection,
    inner: &Inner,
    max: usize,
    visibility: Duration,
) -> Result<Vec<Delivery>, Failure> {
    let now = now_millis();
    let hidden_until = now.saturating_add(duration_millis(visibility));
    let max_receives = i64::from(inner.config.max_receives);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Vec::new();
    // Walk the visible group heads in age order. `after` moves forward, so a message
    // delivered (or a head promoted) in this call is never picked twice.
    let mut after = 0i64;
    while out.len() < max {
        let head: Option<(i64, String, String, i64, i64)> = tx
            .prepare_cached(
                "SELECT seq, group_id, body, enqueued_at, receive_count FROM queue
                 WHERE is_head = 1 AND seq > ?1 AND visible_at <= ?2
                 ORDER BY seq LIMIT 1",
            )?
            .query_row(params![after, now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let Some((seq, group_id, body, enqueued_at, receive_count)) = head else {
            break;
        };
        after = seq;
        if receive_count >= max_receives {
            // The redrive policy: this receive would exceed the maximum.
            tx.prepare_cached(
                "INSERT INTO dead_letters (group_id, body, enqueued_at, receive_count, dead_lettered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![group_id, body, enqueued_at, receive_count, now])?;
            tx.prepare_cached("DELETE FROM queue WHERE seq = ?1")?
                .execute([seq])?;
            promote_next_head(&tx, &group_id)?;
            tracing::warn!(
                seq,
                receive_count,
                "queue message moved to the dead-letter table"
            );
            continue;
        }
        let count = receive_count + 1;
        let receipt = receipt_for(seq, count);
        tx.prepare_cached(
            "UPDATE queue SET receive_count = ?2, receipt = ?3, visible_at = ?4 WHERE seq = ?1",
        )?
        .execute(params![seq, count, receipt, hidden_until])?;
        match decode_message(&body, seq) {
            Ok(message) => out.push(Delivery {
                message,
                receipt,
                receive_count: u32::try_from(count).unwrap_or(u32::MAX),
            }),
            // Left in flight: it dead-letters after its maximum receives, like a poison
            // message on SQS, instead of failing every receive.
            Err(e) => tracing::warn!(seq, error = ?e, "undecodable queue message skipped"),
        }
    }
    tx.commit()?;
    Ok(out)
}

impl WorkQueue for SqliteStore {
    async fn enqueue(&self, message: &OrderMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(message)
            .map_err(|e| QueueError::InvalidMessage(e.to_string()))?;
        let group_id = message.group_id();
        let dedup_id = message.dedup_id.clone();
        Ok(self
            .run(move |conn, inner| enqueue_in(conn, inner, &body, &group_id, &dedup_id))
            .await?)
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .run(move |conn, inner| receive_in(conn, inner, max, visibility))
            .await?)
    }

    /// Deletes the message. A receipt from an earlier delivery matches nothing: a no-op.
    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        let seq = parse_receipt(receipt)?;
        let receipt = receipt.to_owned();
        Ok(self
            .run(move |conn, _| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let group: Option<String> = tx
                    .prepare_cached(
                        "DELETE FROM queue WHERE seq = ?1 AND receipt = ?2 RETURNING group_id",
                    )?
                    .query_row(params![seq, receipt], |r| r.get(0))
                    .optional()?;
                if let Some(group_id) = group {
                    promote_next_head(&tx, &group_id)?;
                }
                tx.commit()?;
                Ok(())
            })
            .await?)
    }

    /// Makes the message visible at now + `delay`. A stale receipt is an error, like SQS's
    /// `MessageNotInflight` / `ReceiptHandleIsInvalid`.
    async fn retry_after(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let seq = parse_receipt(receipt)?;
        let receipt = receipt.to_owned();
        Ok(self
            .run(move |conn, _| {
                let visible_at = now_millis().saturating_add(duration_millis(delay));
                let changed = conn
                    .prepare_cached(
                        "UPDATE queue SET visible_at = ?3 WHERE seq = ?1 AND receipt = ?2",
                    )?
                    .execute(params![seq, receipt, visible_at])?;
                if changed == 0 {
                    return Err(Failure::InvalidMessage(format!(
                        "receipt handle {receipt} is no longer valid"
                    )));
                }
                Ok(())
            })
            .await?)
    }
}

/// A row of the dead-letter table: its sequence number and the message, or why the body is
/// not an [`OrderMessage`].
pub type DeadLetterRow = (i64, Result<OrderMessage, String>);

/// Operator and benchmark helpers. They run on the calling thread: each is one short
/// transaction.
impl SqliteStore {
    /// The messages that exceeded their maximum receives, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<OrderMessage>, QueueError> {
        Ok(self.run_now(|conn, _| {
            let mut stmt =
                conn.prepare_cached("SELECT seq, body FROM dead_letters ORDER BY seq")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, body) = row?;
                match decode_message(&body, seq) {
                    Ok(m) => out.push(m),
                    Err(e) => {
                        tracing::warn!(seq, error = ?e, "undecodable dead letter skipped")
                    }
                }
            }
            Ok(out)
        })?)
    }

    /// Up to `limit` dead letters with a sequence number above `after`, oldest first, as
    /// `(seq, message)`; a body that does not decode is `Err` with the reason (it is kept,
    /// never dropped, so an operator can look at it).
    pub fn dead_letters_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetterRow>, QueueError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self.run_now(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, body FROM dead_letters WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, body) = row?;
                let message = serde_json::from_str(&body).map_err(|e| e.to_string());
                out.push((seq, message));
            }
            Ok(out)
        })?)
    }

    /// Deletes one dead letter; `false` when it was not there (already deleted).
    pub fn delete_dead_letter(&self, seq: i64) -> Result<bool, QueueError> {
        Ok(self.run_now(move |conn, _| {
            Ok(conn
                .prepare_cached("DELETE FROM dead_letters WHERE seq = ?1")?
                .execute([seq])?
                > 0)
        })?)
    }

    /// How many messages sit in the dead-letter table.
    pub fn dead_letter_count(&self) -> Result<usize, QueueError> {
        Ok(self.run_now(|conn, _| {
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })?)
    }

    /// `(visible, in_flight)`: messages that may be received now (including ones waiting
    /// behind their group's head) and messages hidden by a receive or a retry delay.
    pub fn queue_depth(&self) -> Result<(usize, usize), QueueError> {
        Ok(self.run_now(|conn, _| {
            let now = now_millis();
            let (visible, hidden): (i64, i64) = conn.query_row(
                "SELECT COALESCE(SUM(visible_at <= ?1), 0), COALESCE(SUM(visible_at > ?1), 0)
                     FROM queue",
                [now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((visible as usize, hidden as usize))
        })?)
    }

    /// Moves every dead letter back to the end of its group, with a fresh receive count.
    /// Returns how many were moved.
    pub fn redrive_dead_letters(&self) -> Result<usize, QueueError> {
        Ok(self.run_now(|conn, _| {
                let now = now_millis();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let letters: Vec<(i64, String, String)> = {
                    let mut stmt =
                        tx.prepare_cached("SELECT seq, group_id, body FROM dead_letters ORDER BY seq")?;
                    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for (seq, group_id, body) in &letters {
                    tx.prepare_cached(
                        "INSERT INTO queue (group_id, body, enqueued_at, visible_at, receive_count, is_head)
                         VALUES (?1, ?2, ?3, ?3, 0, NOT EXISTS (SELECT 1 FROM queue WHERE group_id = ?1))",
                    )?
                    .execute(params![group_id, body, now])?;
                    tx.prepare_cached("DELETE FROM dead_letters WHERE seq = ?1")?
                        .execute([seq])?;
                }
                tx.commit()?;
                Ok(letters.len())
        })?)
    }

    /// Deletes every message in the queue (not the dead letters, not the deduplication
    /// history). Returns how many were deleted.
    pub fn purge_queue(&self) -> Result<usize, QueueError> {
        Ok(self.run_now(|conn, _| Ok(conn.execute("DELETE FROM queue", [])?))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueueConfig;
    use els_core::StoreId;

    fn message(store_id: u64, order_id: &str) -> OrderMessage {
        event(store_id, order_id, &format!("ev-{order_id}"))
    }

    /// Another event of an order: the same message group.
    fn event(store_id: u64, order_id: &str, event_id: &str) -> OrderMessage {
        OrderMessage::from_webhook(StoreId::literal(store_id), order_id, event_id)
    }

    fn store(config: QueueConfig) -> SqliteStore {
        SqliteStore::open_in_memory_with(config).unwrap()
    }

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_receive_hands_out_one_message_per_order_oldest_first() {
        let q = store(QueueConfig::default());
        let later = event(1, "a", "ev-a-refund");
        for m in [
            message(1, "a"),
            message(2, "b"),
            later.clone(),
            message(1, "c"),
            message(3, "d"),
        ] {
            q.enqueue(&m).await.unwrap();
        }
        // The group is the order: store 1's order "c" goes beside "a", "a"'s next event waits.
        let got = q.receive(10, LONG).await.unwrap();
        let ids: Vec<_> = got.iter().map(|d| d.message.order_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(q.queue_depth().unwrap(), (1, 4));
        q.ack(&got[0].receipt).await.unwrap();
        let next = q.receive(10, LONG).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].message, later);
    }

    #[tokio::test]
    async fn the_dedup_window_expires() {
        let q = store(QueueConfig {
            dedup_window: Duration::from_millis(100),
            ..QueueConfig::default()
        });
        let m = message(1, "a");
        q.enqueue(&m).await.unwrap();
        q.enqueue(&m).await.unwrap();
        assert_eq!(q.queue_depth().unwrap(), (1, 0));
        tokio::time::sleep(Duration::from_millis(150)).await;
        q.enqueue(&m).await.unwrap();
        assert_eq!(q.queue_depth().unwrap(), (2, 0));
    }

    #[tokio::test]
    async fn stale_and_malformed_receipts() {
        let q = store(QueueConfig::default());
        q.enqueue(&message(1, "a")).await.unwrap();
        let first = q.receive(1, Duration::ZERO).await.unwrap().remove(0);
        let second = q.receive(1, LONG).await.unwrap().remove(0);
        assert_eq!(second.receive_count, 2);
        // An old receipt neither deletes nor delays the redelivered message.
        q.ack(&first.receipt).await.unwrap();
        assert!(matches!(
            q.retry_after(&first.receipt, Duration::ZERO).await,
            Err(QueueError::InvalidMessage(_))
        ));
        assert_eq!(q.queue_depth().unwrap(), (0, 1));
        assert!(matches!(
            q.ack("not-a-receipt").await,
            Err(QueueError::InvalidMessage(_))
        ));
        q.ack(&second.receipt).await.unwrap();
        assert_eq!(q.queue_depth().unwrap(), (0, 0));
    }

    #[tokio::test]
    async fn dead_letters_are_redriven_to_the_end_of_their_group() {
        let q = store(QueueConfig {
            max_receives: 1,
            ..QueueConfig::default()
        });
        let poison = message(1, "a");
        q.enqueue(&poison).await.unwrap();
        let d = q.receive(1, LONG).await.unwrap().remove(0);
        q.retry_after(&d.receipt, Duration::ZERO).await.unwrap();
        let after = event(1, "a", "ev-a-later");
        q.enqueue(&after).await.unwrap();
        let next = q.receive(10, LONG).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].message, after);
        assert_eq!(q.dead_letters().unwrap(), vec![poison.clone()]);

        assert_eq!(q.redrive_dead_letters().unwrap(), 1);
        assert!(q.dead_letters().unwrap().is_empty());
        // Behind the order's later message, which is still in flight.
        assert!(q.receive(10, LONG).await.unwrap().is_empty());
        q.ack(&next[0].receipt).await.unwrap();
        let again = q.receive(10, LONG).await.unwrap();
        assert_eq!(again[0].message, poison);
        assert_eq!(again[0].receive_count, 1);
    }

    #[tokio::test]
    async fn dead_letters_are_paged_kept_when_undecodable_and_deleted_one_by_one() {
        let q = store(QueueConfig {
            max_receives: 1,
            ..QueueConfig::default()
        });
        q.enqueue(&message(1, "a")).await.unwrap();
        q.enqueue(&message(2, "b")).await.unwrap();
        q.run_now(|conn, _| {
            conn.execute(
                "INSERT INTO queue (group_id, body, enqueued_at, visible_at, receive_count, is_head)
                 VALUES ('3', 'not json', 0, 0, 0, 1)",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        // First receive hands them out (the junk one is skipped but counted), the second
        // moves all three to the dead-letter table.
        for d in q.receive(10, Duration::ZERO).await.unwrap() {
            q.retry_after(&d.receipt, Duration::ZERO).await.unwrap();
        }
        assert!(q.receive(10, LONG).await.unwrap().is_empty());
        assert_eq!(q.dead_letter_count().unwrap(), 3);

        let first = q.dead_letters_after(0, 2).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].1.as_ref().unwrap(), &message(1, "a"));
        let rest = q.dead_letters_after(first[1].0, 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert!(rest[0].1.is_err(), "the junk body is reported, not dropped");

        assert!(q.delete_dead_letter(first[0].0).unwrap());
        assert!(!q.delete_dead_letter(first[0].0).unwrap());
        assert_eq!(q.dead_letter_count().unwrap(), 2);
    }

    #[tokio::test]
    async fn purge_empties_the_queue() {
        let q = store(QueueConfig::default());
        q.enqueue(&message(1, "a")).await.unwrap();
        q.enqueue(&message(2, "b")).await.unwrap();
        assert_eq!(q.purge_queue().unwrap(), 2);
        assert_eq!(q.queue_depth().unwrap(), (0, 0));
        q.enqueue(&message(1, "c")).await.unwrap();
        assert_eq!(q.receive(10, LONG).await.unwrap().len(), 1);
    }
}
