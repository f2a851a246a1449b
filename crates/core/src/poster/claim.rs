//! Claiming an order and parking it after its last delivery: conditional ledger writes
//! that are decided again from a fresh read when another worker wrote first.

use super::{Attempt, FollowUp, PostOutcome, RetryLater, SalePoster};
use crate::error::StoreError;
use crate::ledger::{
    self, ClaimDecision, LedgerEntry, OrderKey, OrderState, Outcome, Reason, ReasonCode,
};
use crate::ports::{
    Clock, ConnectionStore, EcwidApi, LedgerStore, LightspeedApi, LinkStore, OrderMessage,
};
use crate::retry::{Backoff, NoJitter, retry};
use std::time::Duration;

/// A conditional write that lost to another worker's is decided again, at once, from
/// a fresh read: three tries in all.
const RACES: Backoff = Backoff::immediate(3);

/// How one try of a conditional write (a ledger entry, a customer link) failed.
pub(super) enum Raced<F = RetryLater> {
    /// Another worker wrote first: read and decide again.
    Lost,
    /// Anything else: the message comes back later.
    Failed(F),
}

impl<F> Raced<F> {
    /// The `retry` rule for a lost race: retry at once while tries remain.
    pub(super) fn retry_after(&self, failures: u32) -> Option<Duration> {
        match self {
            Raced::Lost => RACES.wait(failures, &mut NoJitter),
            Raced::Failed(_) => None,
        }
    }
}

impl<S, E, L, C> SalePoster<S, E, L, C>
where
    S: LedgerStore,
    C: Clock,
{
    /// Called when the queue will not deliver this message again (its last allowed receive)
    /// and the attempt asked for a retry: the order is parked with the last error
    /// (`DEAD_LETTERED`), so nothing is lost silently and `replay` can take it back.
    /// `Err` when the order is in flight elsewhere: the message may go to the DLQ, and the
    /// other worker records the outcome.
    pub async fn park_after_last_delivery(
        &self,
        message: &OrderMessage,
        receives: u32,
        last: &RetryLater,
    ) -> Result<PostOutcome, RetryLater> {
        let key = message.key();
        let parked = retry(
            &self.clock,
            || self.try_park(&key, receives, last),
            Raced::retry_after,
        )
        .await;
        match parked {
            Ok(reason) => {
                tracing::error!(store_id = key.store_id.get(), order_id = %key.order_id, code = %reason.code, reason = %reason.message, "order parked after its last delivery");
                Ok(PostOutcome::Parked(reason))
            }
            Err(Raced::Lost) => Err(last.clone()),
            Err(Raced::Failed(retry)) => Err(retry),
        }
    }

    /// One try of [`Self::park_after_last_delivery`]: the reason it parked the order with.
    async fn try_park(
        &self,
        key: &OrderKey,
        receives: u32,
        last: &RetryLater,
    ) -> Result<Reason, Raced> {
        let existing = self
            .store
            .load_order(key)
            .await
            .map_err(|e| Raced::Failed(self.store_retry("loading the ledger", e)))?;
        let Some((parked, expected)) = ledger::dead_letter(
            existing.as_ref(),
            key,
            receives,
            &last.reason,
            self.clock.now(),
        ) else {
            return Err(Raced::Failed(last.clone()));
        };
        match self.store.save_order(&parked, expected).await {
            Ok(()) => Ok(parked
                .reason
                .or(parked.returns.held)
                .expect("dead_letter sets a reason")),
            Err(StoreError::Conflict(_)) => Err(Raced::Lost),
            Err(e) => Err(Raced::Failed(self.store_retry("parking the order", e))),
        }
    }

    /// Claims the order `message` names, or says why there is nothing to do. Before a
    /// SKIPPED entry is reopened, `follow_up` queues [`OrderMessage::reopened`] (see
    /// [`SalePoster::post_delivered_order`]).
    pub(super) async fn claim(
        &self,
        message: &OrderMessage,
        follow_up: &impl FollowUp,
    ) -> Result<Result<(LedgerEntry, bool), PostOutcome>, RetryLater> {
        let key = &message.key();
        let claimed = retry(
            &self.clock,
            || self.try_claim(message, follow_up),
            Raced::retry_after,
        )
        .await;
        match claimed {
            Ok(claimed) => Ok(claimed),
            Err(Raced::Lost) => Err(RetryLater {
                delay: self.config.retry_base,
                reason: format!("order {key}: claim kept losing races"),
            }),
            Err(Raced::Failed(retry)) => Err(retry),
        }
    }

    /// One try of [`Self::claim`].
    async fn try_claim(
        &self,
        message: &OrderMessage,
        follow_up: &impl FollowUp,
    ) -> Result<Result<(LedgerEntry, bool), PostOutcome>, Raced> {
        let key = &message.key();
        let search_delay = chrono::Duration::from_std(self.config.search_delay)
            .unwrap_or(chrono::Duration::seconds(90));
        let existing = self
            .store
            .load_order(key)
            .await
            .map_err(|e| Raced::Failed(self.store_retry("loading the ledger", e)))?;
        match ledger::claim_after_search_delay(
            existing.as_ref(),
            key,
            self.clock.now(),
            self.lease(),
            search_delay,
        ) {
            ClaimDecision::AlreadyPosted { sale_id } => {
                tracing::info!(store_id = key.store_id.get(), order_id = %key.order_id, %sale_id, "already posted");
                Ok(Err(PostOutcome::AlreadyPosted { sale_id }))
            }
            ClaimDecision::Parked { reason } => {
                tracing::info!(store_id = key.store_id.get(), order_id = %key.order_id, reason = %reason, "parked; waiting for replay");
                Ok(Err(PostOutcome::Parked(reason)))
            }
            ClaimDecision::Busy { retry_in } => Err(Raced::Failed(RetryLater {
                delay: retry_in.max(Duration::from_millis(100)),
                reason: format!(
                    "order {key} is being posted by another worker, or waits for Lightspeed's search to show an earlier attempt's sale"
                ),
            })),
            ClaimDecision::Claim {
                entry,
                expected_version,
                search_first,
            } => {
                if let Some(skipped) = existing.filter(|e| e.state == OrderState::Skipped) {
                    // The skip was acknowledged: this delivery's message may be gone, and
                    // whatever this attempt ends in must still find one (see
                    // `OrderMessage::reopened`).
                    follow_up
                        .queue(message.reopened(skipped.version))
                        .await
                        .map_err(|e| {
                            Raced::Failed(RetryLater {
                                delay: self.config.retry_base,
                                reason: format!(
                                    "order {key}: queueing a follow-up before reopening the skipped order: {e}"
                                ),
                            })
                        })?;
                    tracing::info!(store_id = key.store_id.get(), order_id = %key.order_id, "skipped order reopened; follow-up message queued");
                }
                self.save_claim(&entry, expected_version, search_first)
                    .await
            }
        }
    }

    /// Writes a decided claim under its version condition.
    async fn save_claim(
        &self,
        entry: &LedgerEntry,
        expected_version: Option<u64>,
        search_first: bool,
    ) -> Result<Result<(LedgerEntry, bool), PostOutcome>, Raced> {
        match self.store.save_order(entry, expected_version).await {
            Ok(()) => Ok(Ok((entry.clone(), search_first))),
            Err(StoreError::Conflict(_)) => Err(Raced::Lost),
            Err(e) => Err(Raced::Failed(self.store_retry("claiming the order", e))),
        }
    }
}

impl<S, E, L, C> SalePoster<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + LinkStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    /// The connection's stored tokens cannot be decrypted ([`StoreError::Undecryptable`]):
    /// the order is claimed and parked `UNAUTHORIZED` with a reason that asks for the store
    /// to be connected again, after which `els replay` posts it.
    pub(super) async fn park_unreadable_connection(
        &self,
        message: &OrderMessage,
        follow_up: &impl FollowUp,
        detail: &str,
    ) -> Result<PostOutcome, RetryLater> {
        let key = &message.key();
        let (claimed, _) = match self.claim(message, follow_up).await? {
            Ok(claimed) => claimed,
            Err(done) => return Ok(done),
        };
        let reason = Reason::new(
            ReasonCode::Unauthorized,
            format!(
                "order {}: the stored tokens of store {} cannot be decrypted ({detail}); \
                 reconnect the store (els connect) to store new tokens, then replay the order",
                key.order_id, key.store_id
            ),
        );
        self.record(key, &claimed, Attempt::done(Outcome::Parked(reason)))
            .await
    }
}
