//! [`WorkQueue`] on an SQS FIFO queue: message group = the order
//! ([`OrderMessage::group_id`], `{store}:{order}`), deduplication id from the message, and a
//! redrive policy that moves a message to the dead-letter queue after its maximum receives.
//!
//! One group per order: a refund never overtakes its own sale, while a store's orders post
//! in parallel (SQS FIFO hands out one in-flight message per group, so one order waiting out
//! a Lightspeed back-off no longer holds back the store's later orders; Lambda scales the
//! poster with the number of groups that have messages). Exactly once does not depend on the
//! group: the ledger's conditional claim and lease, the deterministic invoice number and the
//! search before posting again; customers are created under their own claim. Messages sent
//! by an earlier version under the store's group drain as they are (an order then present in
//! both groups is settled by the ledger, as a redelivery is). A group id SQS cannot carry
//! (over 128 characters, or not printable ASCII: an order id is Ecwid's) is replaced by its
//! hash, as the deduplication id is, so each order still has its own group.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use els_core::QueueError;
use els_core::ports::{Delivery, OrderMessage, WorkQueue};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::time::Duration;

/// SQS's largest visibility timeout: 12 hours.
const MAX_VISIBILITY_SECS: u64 = 43_200;
/// SQS returns at most 10 messages per receive.
const MAX_BATCH: usize = 10;

/// A message as SQS returned it, before decoding (see [`SqsQueue::receive_raw`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    pub message_id: String,
    pub receipt: String,
    /// The FIFO message group (`{store}:{order}` for our messages; the store id for those
    /// sent before groups were per order).
    pub group_id: Option<String>,
    pub body: String,
}

/// The work queue on an SQS FIFO queue.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

fn unavailable<E, R>(what: &str, err: SdkError<E, R>) -> QueueError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    QueueError::Unavailable(format!("SQS {what}: {}", DisplayErrorContext(&err)))
}

/// Whole seconds for SQS, rounded up (a retry never comes early), capped at 12 hours.
fn visibility_secs(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    // The cap fits in i32.
    secs.min(MAX_VISIBILITY_SECS) as i32
}

/// SQS accepts up to 128 printable ASCII characters in a deduplication or group id;
/// anything else is replaced by a hash, which keeps deduplication (and one group per value)
/// working for arbitrary ids.
fn sqs_id(id: &str) -> String {
    if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        return id.to_owned();
    }
    format!("sha256:{}", hex::encode(Sha256::digest(id.as_bytes())))
}

/// `(account, queue name)` of `arn:aws:sqs:{region}:{account}:{name}`.
fn parse_queue_arn(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.split(':');
    let (account, name) = (parts.nth(4)?, parts.next()?);
    (!account.is_empty() && !name.is_empty()).then_some((account, name))
}

impl SqsQueue {
    /// The queue at `queue_url`, with a client built once by the caller.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Creates the FIFO queue `{name}.fifo` and its dead-letter queue `{name}-dlq.fifo`
    /// (14 days' retention), with a redrive policy after `max_receive_count` receives.
    /// Returns `(queue_url, dlq_url)`. Creating queues that exist with the same attributes
    /// is a no-op on SQS.
    pub async fn create_fifo_with_dlq(
        client: &Client,
        name: &str,
        max_receive_count: u32,
    ) -> Result<(String, String), QueueError> {
        let base = name.strip_suffix(".fifo").unwrap_or(name);
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{base}-dlq.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await
            .map_err(|e| unavailable("CreateQueue (dead-letter queue)", e))?
            .queue_url
            .ok_or_else(|| QueueError::Unavailable("SQS CreateQueue returned no URL".into()))?;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| unavailable("GetQueueAttributes", e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| {
                QueueError::Unavailable("SQS returned no dead-letter queue ARN".into())
            })?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count,
        });
        let queue_url = client
            .create_queue()
            .queue_name(format!("{base}.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .map_err(|e| unavailable("CreateQueue", e))?
            .queue_url
            .ok_or_else(|| QueueError::Unavailable("SQS CreateQueue returned no URL".into()))?;
        Ok((queue_url, dlq_url))
    }

    /// The URL of the dead-letter queue named in this queue's redrive policy.
    pub async fn dead_letter_queue_url(&self) -> Result<Option<String>, QueueError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| unavailable("GetQueueAttributes", e))?
            .attributes
            .unwrap_or_default();
        let Some(policy) = attributes.get(&QueueAttributeName::RedrivePolicy) else {
            return Ok(None);
        };
        let policy: serde_json::Value = serde_json::from_str(policy)
            .map_err(|e| QueueError::Unavailable(format!("unreadable redrive policy: {e}")))?;
        let Some((account, name)) = policy["deadLetterTargetArn"]
            .as_str()
            .and_then(parse_queue_arn)
        else {
            return Ok(None);
        };
        let url = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| unavailable("GetQueueUrl", e))?
            .queue_url;
        Ok(url)
    }

    /// A peek at the dead-letter queue: messages are received with a short visibility and
    /// made visible again at once. SQS FIFO hides the rest of a message group while some of
    /// it is in flight, so at most 10 messages per group (an order; a store for messages
    /// sent before groups were per order) are seen.
    pub async fn dead_letters(&self) -> Result<Vec<OrderMessage>, QueueError> {
        let Some(dlq_url) = self.dead_letter_queue_url().await? else {
            return Ok(Vec::new());
        };
        let mut seen = HashSet::new();
        let mut receipts = Vec::new();
        let mut out = Vec::new();
        for _ in 0..100 {
            let batch = self
                .client
                .receive_message()
                .queue_url(&dlq_url)
                .max_number_of_messages(MAX_BATCH as i32)
                .visibility_timeout(30)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| unavailable("ReceiveMessage (dead-letter queue)", e))?
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for m in batch {
                receipts.extend(m.receipt_handle.clone());
                if !seen.insert(m.message_id.clone().unwrap_or_default()) {
                    continue;
                }
                match serde_json::from_str(m.body().unwrap_or_default()) {
                    Ok(message) => out.push(message),
                    Err(e) => tracing::warn!(
                        message_id = m.message_id().unwrap_or_default(),
                        error = %e,
                        "undecodable dead letter skipped"
                    ),
                }
            }
        }
        for (chunk_no, chunk) in receipts.chunks(MAX_BATCH).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("m{chunk_no}-{i}"))
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| QueueError::Unavailable(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.client
                .change_message_visibility_batch()
                .queue_url(&dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable("ChangeMessageVisibilityBatch", e))?;
        }
        Ok(out)
    }

    /// Receives up to `max` messages as they are, undecoded, and hides them for
    /// `visibility`: the operator's view of a dead-letter queue (open it with
    /// [`SqsQueue::new`] on the DLQ's URL), where a body that is not an [`OrderMessage`] must
    /// be reported rather than skipped. Settle them with [`WorkQueue::ack`] (delete) or
    /// [`WorkQueue::retry_after`] (make visible again).
    pub async fn receive_raw(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<RawMessage>, QueueError> {
        let messages = self
            .receive_messages(max, visibility, MessageSystemAttributeName::MessageGroupId)
            .await?;
        Ok(messages
            .into_iter()
            .filter_map(|m| {
                let group_id = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .cloned();
                Some(RawMessage {
                    receipt: m.receipt_handle?,
                    message_id: m.message_id.unwrap_or_default(),
                    group_id,
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// One `ReceiveMessage` call: up to `max` messages (at most the SQS batch), hidden for
    /// `visibility`, waiting up to `wait` for the first, with the system attribute `attribute`.
    async fn receive_messages(
        &self,
        max: usize,
        visibility: Duration,
        attribute: MessageSystemAttributeName,
    ) -> Result<Vec<Message>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.min(MAX_BATCH) as i32)
            .visibility_timeout(visibility_secs(visibility))
            // No long polling: the callers' loops decide when to ask again.
            .wait_time_seconds(0)
            .message_system_attribute_names(attribute)
            .send()
            .await
            .map_err(|e| unavailable("ReceiveMessage", e))?
            .messages
            .unwrap_or_default())
    }

    /// `(visible, in_flight)` from the approximate counts SQS keeps.
    pub async fn queue_depth(&self) -> Result<(usize, usize), QueueError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| unavailable("GetQueueAttributes", e))?
            .attributes
            .unwrap_or_default();
        let count = |name: &QueueAttributeName| {
            attributes
                .get(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(&QueueAttributeName::ApproximateNumberOfMessages),
            count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

impl WorkQueue for SqsQueue {
    async fn enqueue(&self, message: &OrderMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(message)
            .map_err(|e| QueueError::InvalidMessage(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(sqs_id(&message.group_id()))
            .message_deduplication_id(sqs_id(&message.dedup_id))
            .message_body(body)
            .send()
            .await
            .map_err(|e| unavailable("SendMessage", e))?;
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        let messages = self
            .receive_messages(
                max,
                visibility,
                MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .await?;
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let Some(receipt) = m.receipt_handle.clone() else {
                continue;
            };
            let receive_count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            match serde_json::from_str(m.body().unwrap_or_default()) {
                Ok(message) => out.push(Delivery {
                    message,
                    receipt,
                    receive_count,
                }),
                // Not ours to handle: it stays in flight and dead-letters after its
                // maximum receives instead of failing every receive.
                Err(e) => tracing::warn!(
                    message_id = m.message_id().unwrap_or_default(),
                    error = %e,
                    "undecodable queue message skipped"
                ),
            }
        }
        Ok(out)
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        match self
            .client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid()) =>
            {
                Err(QueueError::InvalidMessage(
                    "receipt handle is no longer valid".into(),
                ))
            }
            Err(e) => Err(unavailable("DeleteMessage", e)),
        }
    }

    async fn retry_after(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        match self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility_secs(delay))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_receipt_handle_is_invalid() || s.is_message_not_inflight()
                }) =>
            {
                Err(QueueError::InvalidMessage(
                    "receipt handle is no longer valid".into(),
                ))
            }
            Err(e) => Err(unavailable("ChangeMessageVisibility", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_ids_that_sqs_accepts_pass_unchanged() {
        assert_eq!(sqs_id("1003:K8XTQ"), "1003:K8XTQ");
        assert_eq!(
            sqs_id("1003:K8XTQ:replay:abc-def"),
            "1003:K8XTQ:replay:abc-def"
        );
    }

    #[test]
    fn the_group_is_the_order_and_hashed_when_sqs_cannot_carry_it() {
        let store = els_core::StoreId::literal(1003);
        let m = OrderMessage::from_webhook(store, "K8XTQ", "e1");
        let refund = OrderMessage::from_webhook(store, "K8XTQ", "e2");
        let other = OrderMessage::from_webhook(store, "K8XTR", "e1");
        assert_eq!(sqs_id(&m.group_id()), "1003:K8XTQ");
        assert_eq!(m.group_id(), refund.group_id());
        assert_ne!(m.group_id(), other.group_id());
        let odd = OrderMessage::from_webhook(store, "заказ 7", "e1");
        assert!(sqs_id(&odd.group_id()).starts_with("sha256:"));
    }

    #[test]
    fn other_dedup_ids_are_hashed_stably() {
        let long = "x".repeat(200);
        let hashed = sqs_id(&long);
        assert!(hashed.starts_with("sha256:") && hashed.len() == 7 + 64);
        assert_eq!(hashed, sqs_id(&long));
        assert_ne!(sqs_id("a b"), sqs_id("a_b"));
        assert!(sqs_id("é").starts_with("sha256:"));
    }

    #[test]
    fn visibility_rounds_up_and_caps() {
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(Duration::from_millis(1)), 1);
        assert_eq!(visibility_secs(Duration::from_millis(1500)), 2);
        assert_eq!(visibility_secs(Duration::from_secs(3)), 3);
        assert_eq!(visibility_secs(Duration::from_secs(100_000)), 43_200);
    }

    #[test]
    fn dead_letter_queue_name_comes_from_its_arn() {
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:us-east-1:123456789012:orders-dlq.fifo"),
            Some(("123456789012", "orders-dlq.fifo"))
        );
        assert_eq!(parse_queue_arn("orders-dlq.fifo"), None);
    }
}
