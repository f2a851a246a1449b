//! [`JobQueue`] on an SQS FIFO queue of its own (template.yaml `StoreJobsQueue`): message
//! group = the store, deduplication id = the job's ([`StoreJob`]). The schedule's tick
//! enqueues one job per store with `SendMessageBatch` (10 per request, several requests in
//! flight), so 10,000 stores cost 1,000 requests; entries SQS refuses in a batch, and the
//! jobs of a request that failed as a whole, are sent again (twice), and what is still
//! refused fails the tick (the `Errors` alarm), which the next tick repeats.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use els_core::QueueError;
use els_core::jobs::{JobQueue, StoreJob};
use futures::stream::{self, StreamExt};

/// A batch's refused jobs, or why its request failed and its jobs.
type BatchResult = Result<Vec<StoreJob>, (QueueError, Vec<StoreJob>)>;

/// SQS's most entries per `SendMessageBatch`.
const BATCH: usize = 10;
/// Batches in flight at once.
const IN_FLIGHT: usize = 16;
/// Sends of a batch's refused entries after the first.
const RESENDS: usize = 2;

/// The store-jobs queue.
#[derive(Clone)]
pub struct SqsJobQueue {
    client: Client,
    queue_url: String,
}

impl SqsJobQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends one batch (≤ 10 jobs); the jobs SQS refused come back.
    async fn send_batch(&self, jobs: Vec<StoreJob>) -> Result<Vec<StoreJob>, QueueError> {
        let entries = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(job.to_body())
                    .message_group_id(job.group_id())
                    .message_deduplication_id(&job.dedup_id)
                    .build()
                    .map_err(|e| QueueError::InvalidMessage(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                QueueError::Unavailable(format!(
                    "SQS SendMessageBatch: {}",
                    DisplayErrorContext(&e)
                ))
            })?;
        let refused = out
            .failed()
            .iter()
            .filter_map(|f| f.id().parse::<usize>().ok())
            .filter_map(|i| jobs.get(i).cloned())
            .collect::<Vec<_>>();
        if let Some(f) = out.failed().first() {
            tracing::warn!(
                refused = refused.len(),
                code = f.code(),
                sender_fault = f.sender_fault(),
                "SQS refused some store jobs of a batch"
            );
        }
        Ok(refused)
    }
}

impl SqsJobQueue {
    /// Makes a received job visible again after `delay` (a failed job's retry, sooner than
    /// the queue's visibility timeout, so its store's later jobs are not held up long).
    pub async fn retry_after(
        &self,
        receipt: &str,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                QueueError::Unavailable(format!(
                    "SQS ChangeMessageVisibility: {}",
                    DisplayErrorContext(&e)
                ))
            })
    }
}

impl JobQueue for SqsJobQueue {
    async fn enqueue_jobs(&self, jobs: &[StoreJob]) -> Result<(), QueueError> {
        let mut pending: Vec<StoreJob> = jobs.to_vec();
        let mut last_error: Option<QueueError> = None;
        for _ in 0..=RESENDS {
            if pending.is_empty() {
                return Ok(());
            }
            let batches: Vec<Vec<StoreJob>> = pending.chunks(BATCH).map(<[_]>::to_vec).collect();
            // A batch whose request failed as a whole is sent again, like refused entries:
            // one failed request must not cost the other stores their jobs.
            let results: Vec<BatchResult> =
                stream::iter(batches)
                    .map(|batch| async move {
                        self.send_batch(batch.clone()).await.map_err(|e| (e, batch))
                    })
                    .buffer_unordered(IN_FLIGHT)
                    .collect()
                    .await;
            pending = Vec::new();
            for result in results {
                match result {
                    Ok(refused) => pending.extend(refused),
                    Err((e, batch)) => {
                        tracing::warn!(jobs = batch.len(), error = %e, "a SendMessageBatch failed; its jobs are sent again");
                        last_error = Some(e);
                        pending.extend(batch);
                    }
                }
            }
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(QueueError::Unavailable(format!(
                "SQS refused {} of {} store jobs after {RESENDS} resends{}",
                pending.len(),
                jobs.len(),
                last_error
                    .map(|e| format!(" (last: {e})"))
                    .unwrap_or_default()
            )))
        }
    }
}
