//! [`JobQueue`] on an SQS FIFO queue of its own (template.yaml `StoreJobsQueue`): message
//! group = the store, deduplication id = the job's ([`StoreJob`]). The schedule's tick
//! enqueues one job per store with `SendMessageBatch` (10 per request, several requests in
//! flight), so 10,000 stores cost 1,000 requests; entries SQS refuses in a batch are sent
//! again (twice), and what is still refused fails the tick (the `Errors` alarm), which the
//! next tick repeats.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use els_core::QueueError;
use els_core::jobs::{JobQueue, StoreJob};
use futures::stream::{self, StreamExt, TryStreamExt};

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

impl JobQueue for SqsJobQueue {
    async fn enqueue_jobs(&self, jobs: &[StoreJob]) -> Result<(), QueueError> {
        let mut pending: Vec<StoreJob> = jobs.to_vec();
        for _ in 0..=RESENDS {
            if pending.is_empty() {
                return Ok(());
            }
            let batches: Vec<Vec<StoreJob>> = pending.chunks(BATCH).map(<[_]>::to_vec).collect();
            let refused: Vec<Vec<StoreJob>> = stream::iter(batches)
                .map(|batch| self.send_batch(batch))
                .buffer_unordered(IN_FLIGHT)
                .try_collect()
                .await?;
            pending = refused.into_iter().flatten().collect();
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(QueueError::Unavailable(format!(
                "SQS refused {} of {} store jobs after {RESENDS} resends",
                pending.len(),
                jobs.len()
            )))
        }
    }
}
