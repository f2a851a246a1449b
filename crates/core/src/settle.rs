//! Settling a delivered queue message (invariant 4: nothing is acked before its outcome is
//! recorded). The one rule both edges follow: the `sale-poster` Lambda on SQS and the
//! `els serve` worker on its SQLite queue. They only carry out the [`Settlement`].
//!
//! * The poster recorded an outcome: [`Settlement::Ack`], the message is deleted.
//! * The poster asked for a retry: [`Settlement::RetryAfter`] its delay (a 429's
//!   `Retry-After` is honoured that way); the message stays hidden until then.
//! * It asked for a retry on the message's **last** receive (the receive count has reached
//!   the queue's maximum, after which the queue dead-letters it): [`Settlement::DeadLetter`].
//!   The order is parked as `DEAD_LETTERED` with the last error, so the failure shows in
//!   `els status`, and the message is made visible at once, not acked: the queue moves it to
//!   its dead-letter queue on the next receive (where `els replay --dlq` takes it back), and
//!   its order's FIFO group is not held up meanwhile. If the order cannot be parked (it is in
//!   flight elsewhere), the message goes to the dead-letter queue all the same.

use crate::ports::{Clock, EcwidApi, LightspeedApi, OrderMessage, StateStore, WorkQueue};
use crate::poster::{PostOutcome, RetryLater, SalePoster};
use std::time::Duration;

/// What the edge does with a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The outcome is recorded: delete the message.
    Ack,
    /// Not done yet: make the message visible again after this delay.
    RetryAfter(Duration),
    /// The last receive failed: the order is parked (by [`post_delivered`]) and the message
    /// is made visible at once, for the queue to dead-letter on its next receive.
    DeadLetter,
}

impl Settlement {
    /// When the message should be received again; `None`: delete it.
    pub fn redeliver_after(self) -> Option<Duration> {
        match self {
            Settlement::Ack => None,
            Settlement::RetryAfter(delay) => Some(delay),
            Settlement::DeadLetter => Some(Duration::ZERO),
        }
    }
}

/// The rule: how to settle a message after the poster's `result`. `receive_count` is how
/// often the queue has delivered it (1 on the first receive; `None` when the queue did not
/// say, and then it is never taken for the last one); `max_receives` is the queue's
/// dead-letter threshold.
pub fn settlement(
    result: &Result<PostOutcome, RetryLater>,
    receive_count: Option<u32>,
    max_receives: u32,
) -> Settlement {
    match result {
        Ok(_) => Settlement::Ack,
        Err(_) if receive_count.is_some_and(|n| n >= max_receives) => Settlement::DeadLetter,
        Err(retry) => Settlement::RetryAfter(retry.delay),
    }
}

/// A delivered message, worked: how to settle it, and what the poster made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub settlement: Settlement,
    /// The poster's answer; after a [`Settlement::DeadLetter`], the parking's.
    pub outcome: Result<PostOutcome, RetryLater>,
}

/// Posts one delivered message and says how to settle it, parking the order first when its
/// last receive failed (see the module documentation). `queue` is the one it came from: a
/// delivery that reopens a skipped order queues a follow-up there first
/// ([`SalePoster::post_delivered_order`]).
pub async fn post_delivered<S, E, L, C, Q>(
    poster: &SalePoster<S, E, L, C>,
    queue: &Q,
    message: &OrderMessage,
    receive_count: Option<u32>,
    max_receives: u32,
) -> Settled
where
    S: StateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
    Q: WorkQueue,
{
    let result = poster
        .post_delivered_order(message, &|m: OrderMessage| async move {
            queue.enqueue(&m).await
        })
        .await;
    let settlement = settlement(&result, receive_count, max_receives);
    let outcome = match (settlement, result) {
        (Settlement::DeadLetter, Err(retry)) => {
            let receives = receive_count.unwrap_or(max_receives);
            let parked = poster
                .park_after_last_delivery(message, receives, &retry)
                .await;
            if let Err(still) = &parked {
                tracing::warn!(reason = %still.reason, "last receive, but the order could not be parked");
            }
            tracing::warn!(reason = %retry.reason, "last receive failed; the message goes to the dead-letter queue");
            parked
        }
        (Settlement::RetryAfter(delay), Err(retry)) => {
            tracing::warn!(delay_ms = delay.as_millis() as u64, reason = %retry.reason, "order will be redelivered");
            Err(retry)
        }
        (_, result) => result,
    };
    if let Ok(outcome) = &outcome {
        log_outcome(outcome);
    }
    Settled {
        settlement,
        outcome,
    }
}

fn log_outcome(outcome: &PostOutcome) {
    // The poster logs the details of each outcome; this line ties it to the delivery.
    let kind = match outcome {
        PostOutcome::Posted { .. } => "posted",
        PostOutcome::Adopted { .. } => "adopted",
        PostOutcome::AlreadyPosted { .. } => "already_posted",
        PostOutcome::Skipped(_) => "skipped",
        PostOutcome::Parked(_) => "parked",
        PostOutcome::NoConnection => "no_connection",
        PostOutcome::Refunded { .. } => "refunded",
        PostOutcome::RefundHeld(_) => "refund_held",
    };
    tracing::info!(outcome = kind, "message settled");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecwid::EcwidOrder;
    use crate::fakes::{FakeEcwid, FakeLightspeed, FakeQueue, STORE, TestClock, connection};
    use crate::ledger::{OrderKey, OrderState, ReasonCode};
    use crate::memory::MemoryStore;
    use crate::poster::PosterConfig;
    use crate::{ConnectionStore, LedgerStore};

    const MAX: u32 = 5;

    fn retry(secs: u64) -> Result<PostOutcome, RetryLater> {
        Err(RetryLater {
            delay: Duration::from_secs(secs),
            reason: "Lightspeed answered 503".into(),
        })
    }

    #[test]
    fn a_recorded_outcome_is_acked_on_any_receive() {
        let done = Ok(PostOutcome::NoConnection);
        for receives in [None, Some(1), Some(MAX), Some(MAX + 3)] {
            assert_eq!(settlement(&done, receives, MAX), Settlement::Ack);
        }
        assert_eq!(Settlement::Ack.redeliver_after(), None);
    }

    #[test]
    fn a_retry_before_the_last_receive_comes_back_after_its_delay() {
        for receives in [None, Some(1), Some(MAX - 1)] {
            let s = settlement(&retry(3), receives, MAX);
            assert_eq!(s, Settlement::RetryAfter(Duration::from_secs(3)));
            assert_eq!(s.redeliver_after(), Some(Duration::from_secs(3)));
        }
    }

    #[test]
    fn a_retry_on_the_last_receive_or_later_is_dead_lettered_at_once() {
        for receives in [MAX, MAX + 1] {
            let s = settlement(&retry(3), Some(receives), MAX);
            assert_eq!(s, Settlement::DeadLetter);
            assert_eq!(s.redeliver_after(), Some(Duration::ZERO));
        }
        // A queue that dead-letters after the first receive.
        assert_eq!(settlement(&retry(3), Some(1), 1), Settlement::DeadLetter);
    }

    fn order(payment_status: &str) -> EcwidOrder {
        serde_json::from_value(serde_json::json!({
            "id": "K1", "total": 24, "pricesIncludeTax": false, "paymentStatus": payment_status,
            "items": [{"sku": "MUG", "quantity": 2, "price": 12, "tax": 0}]
        }))
        .unwrap()
    }

    type Poster = SalePoster<MemoryStore, FakeEcwid, FakeLightspeed, TestClock>;

    /// The poster on the in-memory store and fakes, for a paid order K1. With `lose_answer`
    /// the sale POST's answer is lost, so the attempt asks for a retry (after the search
    /// delay).
    async fn poster(lose_answer: bool) -> (Poster, MemoryStore) {
        let (poster, store, _, _) = world(lose_answer).await;
        (poster, store)
    }

    /// [`poster`], with its Ecwid and Lightspeed.
    async fn world(lose_answer: bool) -> (Poster, MemoryStore, FakeEcwid, FakeLightspeed) {
        let store = MemoryStore::new();
        store.put_connection(&connection(), None).await.unwrap();
        let ecwid = FakeEcwid::default();
        ecwid.add_order(order("PAID"));
        let lightspeed = FakeLightspeed::default();
        lightspeed.add_product("ls-mug", "MUG", true);
        if lose_answer {
            lightspeed.lose_next_sale_answer();
        }
        let poster = SalePoster::new(
            store.clone(),
            ecwid.clone(),
            lightspeed.clone(),
            TestClock::new(),
            PosterConfig::default(),
        );
        (poster, store, ecwid, lightspeed)
    }

    async fn ledger_state(store: &MemoryStore) -> (OrderState, Option<ReasonCode>) {
        let entry = store
            .load_order(&OrderKey::new(STORE, "K1"))
            .await
            .unwrap()
            .expect("a ledger entry");
        (entry.state, entry.reason.map(|r| r.code))
    }

    fn message() -> OrderMessage {
        OrderMessage::from_webhook(STORE, "K1", "ev-1")
    }

    #[tokio::test]
    async fn a_failed_receive_before_the_last_is_retried_and_nothing_is_parked() {
        let (poster, store) = poster(true).await;

        let settled =
            post_delivered(&poster, &&FakeQueue::default(), &message(), Some(1), MAX).await;

        assert_eq!(
            settled.settlement,
            Settlement::RetryAfter(PosterConfig::default().search_delay)
        );
        assert!(settled.outcome.is_err());
        assert_ne!(ledger_state(&store).await.0, OrderState::Parked);
    }

    #[tokio::test]
    async fn a_failed_last_receive_parks_the_order_as_dead_lettered() {
        let (poster, store) = poster(true).await;

        let settled =
            post_delivered(&poster, &&FakeQueue::default(), &message(), Some(MAX), MAX).await;

        assert_eq!(settled.settlement, Settlement::DeadLetter);
        assert!(
            matches!(&settled.outcome, Ok(PostOutcome::Parked(r)) if r.code == ReasonCode::DeadLettered),
            "{:?}",
            settled.outcome
        );
        assert_eq!(
            ledger_state(&store).await,
            (OrderState::Parked, Some(ReasonCode::DeadLettered))
        );
    }

    /// K1 skipped as not paid (its skip acknowledged), then paid.
    async fn skipped_then_paid() -> (Poster, MemoryStore, FakeLightspeed) {
        let (poster, store, ecwid, lightspeed) = world(false).await;
        ecwid.add_order(order("AWAITING_PAYMENT"));
        let skipped =
            post_delivered(&poster, &&FakeQueue::default(), &message(), Some(1), MAX).await;
        assert!(
            matches!(skipped.outcome, Ok(PostOutcome::Skipped(_))),
            "{skipped:?}"
        );
        ecwid.add_order(order("PAID"));
        (poster, store, lightspeed)
    }

    #[tokio::test]
    async fn a_delivery_reopening_a_skipped_order_first_queues_a_follow_up() {
        let (poster, store, _) = skipped_then_paid().await;
        let skipped_version = store
            .load_order(&OrderKey::new(STORE, "K1"))
            .await
            .unwrap()
            .unwrap()
            .version;
        let queue = FakeQueue::default();

        let settled = post_delivered(&poster, &&queue, &message(), Some(2), MAX).await;

        assert_eq!(settled.settlement, Settlement::Ack, "{:?}", settled.outcome);
        assert_eq!(ledger_state(&store).await.0, OrderState::Posted);
        assert_eq!(
            queue.accepted(),
            vec![message().reopened(skipped_version)],
            "one follow-up, named after the skipped version"
        );
    }

    #[tokio::test]
    async fn a_skipped_order_is_not_reopened_when_its_follow_up_cannot_be_queued() {
        let (poster, store, lightspeed) = skipped_then_paid().await;
        let queue = FakeQueue::default();
        queue.failing.store(10, std::sync::atomic::Ordering::SeqCst);

        let settled = post_delivered(&poster, &&queue, &message(), Some(2), MAX).await;

        assert!(
            matches!(settled.settlement, Settlement::RetryAfter(_)),
            "{settled:?}"
        );
        assert_eq!(ledger_state(&store).await.0, OrderState::Skipped);
        assert!(lightspeed.sales().is_empty());
    }

    #[tokio::test]
    async fn a_posted_order_is_acked_even_on_the_last_receive() {
        let (poster, store) = poster(false).await;

        let settled =
            post_delivered(&poster, &&FakeQueue::default(), &message(), Some(MAX), MAX).await;

        assert_eq!(settled.settlement, Settlement::Ack, "{:?}", settled.outcome);
        assert_eq!(ledger_state(&store).await.0, OrderState::Posted);
    }
}
