//! Many levels at once through Ecwid's batch API: one key per page so a batch whose
//! outcome was lost is found again, polling, and one re-send of failed sub-requests.

use super::{Fail, InventoryMirror, Run, System, chrono_duration};
use crate::connection::Connection;
use crate::error::ApiError;
use crate::inventory::{
    BatchResponse, BatchState, BatchStatus, EcwidTarget, StockLevel, WriteOutcome, batch_dedup_key,
    classify_batch_response,
};
use crate::ports::{
    Clock, ConnectionStore, EcwidApi, InventoryStateStore, LedgerStore, LightspeedApi,
};
use std::collections::HashMap;

/// What became of one batch.
enum BatchRun {
    /// Ecwid's result, final for the batch's key: re-sent under that key, the batch would
    /// get this result again.
    Final(Vec<WriteOutcome>),
    /// Not known (the POST or the polling failed): a re-send keeps the key.
    Unknown(Vec<WriteOutcome>),
}

impl<S, E, L, C> InventoryMirror<S, E, L, C>
where
    S: ConnectionStore + LedgerStore + InventoryStateStore,
    E: EcwidApi,
    L: LightspeedApi,
    C: Clock,
{
    /// Writes one batch; one outcome per write, in order. See [`batch_dedup_key`] for which
    /// key a batch carries. First the page's deterministic key: a batch whose outcome an
    /// earlier attempt left unknown is found again rather than sent twice. When Ecwid's
    /// answer under it is a known failure (this run's, or the replay of an earlier run's),
    /// the failed sub-requests are sent once more under a key that names this run, which
    /// Ecwid has never seen; what still fails then fails the page, and the next run repeats
    /// this under its own fresh key.
    pub(super) async fn write_batch(
        &self,
        conn: &Connection,
        run: &mut Run,
        pairs: &[(EcwidTarget, StockLevel)],
        context: &str,
    ) -> Result<Vec<WriteOutcome>, Fail> {
        let key = batch_dedup_key(run.store_id, context, pairs);
        let mut outcomes = match self.run_batch(conn, run, &key, pairs).await? {
            BatchRun::Final(outcomes) => outcomes,
            BatchRun::Unknown(outcomes) => return Ok(outcomes),
        };
        let failed: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, WriteOutcome::Retry(_)))
            .map(|(j, _)| j)
            .collect();
        if failed.is_empty() {
            return Ok(outcomes);
        }
        // The key is spent. A short pause first, as for any retry, when the run has time.
        let Some(wait) = self.pause_for(
            run,
            &ApiError::Unavailable {
                detail: "batch failed".into(),
            },
            0,
        ) else {
            return Ok(outcomes);
        };
        self.clock.sleep(wait).await;
        let retry_pairs: Vec<(EcwidTarget, StockLevel)> =
            failed.iter().map(|&j| pairs[j]).collect();
        let retry_key = batch_dedup_key(
            run.store_id,
            &format!("{context}:resend:{}", run.batch_salt),
            &retry_pairs,
        );
        tracing::info!(
            store_id = run.store_id.get(),
            failed = failed.len(),
            spent_key = %key,
            %retry_key,
            "Ecwid batch had failed sub-requests; re-sending them under a fresh key"
        );
        let retried = match self.run_batch(conn, run, &retry_key, &retry_pairs).await? {
            BatchRun::Final(o) | BatchRun::Unknown(o) => o,
        };
        for (j, outcome) in failed.into_iter().zip(retried) {
            outcomes[j] = outcome;
        }
        Ok(outcomes)
    }

    /// Sends one batch under `key` and waits for its result: one outcome per write (the
    /// sub-request of write `j` has id `j`).
    async fn run_batch(
        &self,
        conn: &Connection,
        run: &mut Run,
        key: &str,
        writes: &[(EcwidTarget, StockLevel)],
    ) -> Result<BatchRun, Fail> {
        let all = |outcome: WriteOutcome| writes.iter().map(|_| outcome.clone()).collect();
        // A POST that failed is re-sent with the same key (its outcome is unknown).
        let ticket = self
            .call(run, System::Ecwid, || {
                self.ecwid.submit_batch(conn, key, writes)
            })
            .await;
        let ticket = match ticket {
            Ok(t) => t,
            Err(e @ ApiError::Unauthorized { .. }) => {
                return Err(Fail::api("sending a batch to Ecwid", e));
            }
            // Refused as a whole: the same batch would be refused again.
            Err(e) if !e.is_retryable() => {
                return Ok(BatchRun::Final(all(WriteOutcome::Rejected(e.to_string()))));
            }
            Err(e) => return Ok(BatchRun::Unknown(all(WriteOutcome::Retry(e.to_string())))),
        };
        run.report.batches += 1;
        let status = match self.poll_batch(conn, run, &ticket).await {
            Ok(status) => status,
            Err(e) => return Ok(BatchRun::Unknown(all(WriteOutcome::Retry(e.to_string())))),
        };
        if let BatchState::Failed(s) = status.state() {
            return Ok(BatchRun::Final(all(WriteOutcome::Retry(format!(
                "batch {ticket} ended {s}"
            )))));
        }
        let by_id: HashMap<&str, &BatchResponse> = status
            .responses
            .iter()
            .map(|r| (r.id.as_str(), r))
            .collect();
        let mut outcomes = Vec::with_capacity(writes.len());
        for j in 0..writes.len() {
            let outcome = classify_batch_response(by_id.get(j.to_string().as_str()).copied());
            if outcome == WriteOutcome::Written {
                run.report.written_by_batch += 1;
            }
            outcomes.push(outcome);
        }
        Ok(BatchRun::Final(outcomes))
    }

    /// Polls a batch until Ecwid reports it ended, or the poll timeout passes. `QUEUED` and
    /// `IN_PROGRESS` (whose `responses` are `null`) mean not done yet.
    async fn poll_batch(
        &self,
        conn: &Connection,
        run: &mut Run,
        ticket: &str,
    ) -> Result<BatchStatus, ApiError> {
        let give_up = self.clock.now() + chrono_duration(self.config.batch_poll_timeout);
        loop {
            let status = self
                .call(run, System::Ecwid, || self.ecwid.batch_status(conn, ticket))
                .await?;
            run.report.batch_polls += 1;
            if status.state() != BatchState::Pending {
                return Ok(status);
            }
            if self.clock.now() >= give_up {
                return Err(ApiError::Unavailable {
                    detail: format!("batch {ticket} still {} after polling", status.status),
                });
            }
            self.clock.sleep(self.config.batch_poll_interval).await;
        }
    }
}
