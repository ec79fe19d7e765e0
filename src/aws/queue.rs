//! The SQS adapter: long-poll receives, batched deletes and visibility
//! changes, and dead-lettering with a reason; the readiness ping and queue
//! depths (`probe`), and the CLI's batch sends (`send`).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName,
};

use crate::aws::OnHeap;
use crate::batch::{Batcher, Linger};

mod dead_letter;
mod probe;
mod resend;
mod send;

pub use super::error::{QueueError, QueueFailure};
pub use dead_letter::{MAX_MESSAGE_BYTES, attr_size, dlq_attributes};
pub use probe::QueueStatus;
pub use resend::{MAX_DELAY, SCHEDULE_ID_ATTR};
pub use send::{MAX_BATCH, Outgoing, Sender};

/// How long deletes and visibility changes wait for company: half the
/// batch call's recent latency, 10 to 50 ms. They are off the answer's
/// path, and on a slow backend a fixed 10 ms filled batches with ~2
/// entries.
const LINGER: Linger = Linger::Adaptive {
    min: Duration::from_millis(10),
    max: Duration::from_millis(50),
};

/// The longest long poll SQS allows.
const MAX_WAIT: Duration = Duration::from_secs(20);

/// The message attribute that carries the reason a message was
/// dead-lettered.
pub const ATTR_ERROR: &str = "error";
/// The message attribute with the kind of dead-letter (`malformed`,
/// `failed`): the `kind` of `Disposition::DeadLetter`, the same word as the
/// `kind` label of `dead_lettered_total`.
pub const ATTR_KIND: &str = "deadLetterKind";
/// What [`ATTR_KIND`] was called before: messages that earlier releases
/// dead-lettered carry it and may sit in a DLQ for up to 14 days, so it is
/// still read (`dlq list`, `dlq redrive`) and stripped, never written.
pub const ATTR_KIND_BEFORE: &str = "errorKind";
/// The message attribute with the MessageId the message had on the main
/// queue.
pub const ATTR_SOURCE_ID: &str = "sourceMessageId";
/// The attributes the daemon adds to a dead-lettered copy: stripped from a
/// message that is redriven or dead-lettered again, so that its copy
/// carries only the newest reason.
pub const DEAD_LETTER_ATTRS: [&str; 4] = [ATTR_ERROR, ATTR_KIND, ATTR_KIND_BEFORE, ATTR_SOURCE_ID];

/// A received message.
#[derive(Clone, Debug)]
pub struct Received {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on first delivery.
    pub receive_count: u32,
    /// `SentTimestamp`: when the message was first sent (ms since the
    /// epoch, SQS's clock).
    pub sent_at: Option<i64>,
    pub attributes: HashMap<String, MessageAttributeValue>,
}

/// The request queue and its dead-letter queue.
#[derive(Clone, Debug)]
pub struct Queue {
    client: Client,
    url: String,
    dlq_url: String,
    deletes: Batcher<String, QueueFailure>,
    visibility: Batcher<(String, i32), QueueFailure>,
}

/// The entries of one `DeleteMessageBatch` (at most 10 receipts), with
/// their positions as ids.
pub fn delete_entries(receipts: &[String]) -> Vec<DeleteMessageBatchRequestEntry> {
    receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(r)
                .build()
                .expect("id and receipt are set")
        })
        .collect()
}

/// The entries of one `ChangeMessageVisibilityBatch` (at most 10
/// receipts, each with its new timeout in seconds), with their positions
/// as ids.
pub fn visibility_entries(
    changes: Vec<(String, i32)>,
) -> Vec<ChangeMessageVisibilityBatchRequestEntry> {
    changes
        .into_iter()
        .enumerate()
        .map(|(i, (r, secs))| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(r)
                .visibility_timeout(secs)
                .build()
                .expect("id and receipt are set")
        })
        .collect()
}

impl Queue {
    /// Must be called inside a tokio runtime (it starts the batchers).
    pub fn new(client: Client, url: String, dlq_url: String) -> Self {
        let deletes = {
            let client = client.clone();
            let url = url.clone();
            Batcher::spawn(MAX_BATCH, LINGER, move |receipts: Vec<String>| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let entries = delete_entries(&receipts);
                    let n = entries.len();
                    let res = client
                        .delete_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .on_heap()
                        .await;
                    per_entry(n, res.map(|o| o.failed).map_err(QueueFailure::call))
                }
            })
        };
        let visibility = {
            let client = client.clone();
            let url = url.clone();
            Batcher::spawn(MAX_BATCH, LINGER, move |changes: Vec<(String, i32)>| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let entries = visibility_entries(changes);
                    let n = entries.len();
                    let res = client
                        .change_message_visibility_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .on_heap()
                        .await;
                    per_entry(n, res.map(|o| o.failed).map_err(QueueFailure::call))
                }
            })
        };
        Queue {
            client,
            url,
            dlq_url,
            deletes,
            visibility,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    /// The attempt timeout of a long poll of `wait`: the client's own
    /// (`aws.call_timeout`) on top of the wait, so that waiting for messages
    /// is never mistaken for a call that hangs.
    fn long_poll_timeout(&self, wait: Duration) -> aws_sdk_sqs::config::Builder {
        let attempt = self
            .client
            .config()
            .timeout_config()
            .and_then(|t| t.operation_attempt_timeout());
        let mut timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder();
        if let Some(attempt) = attempt {
            timeouts = timeouts.operation_attempt_timeout(attempt + wait.min(MAX_WAIT));
        }
        aws_sdk_sqs::config::Builder::default().timeout_config(timeouts.build())
    }

    /// One long-poll receive of up to `max` messages.
    pub async fn receive(
        &self,
        max: i32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait.min(MAX_WAIT).as_secs() as i32)
            .visibility_timeout(visibility_secs(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .customize()
            .config_override(self.long_poll_timeout(wait))
            .send()
            .on_heap()
            .await
            .map_err(|e| self.error("ReceiveMessage", &self.url, QueueFailure::call(e)))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let system = |name: MessageSystemAttributeName| {
                    m.attributes.as_ref().and_then(|a| a.get(&name)).cloned()
                };
                let receive_count = system(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                let sent_at =
                    system(MessageSystemAttributeName::SentTimestamp).and_then(|t| t.parse().ok());
                Some(Received {
                    message_id: m.message_id?,
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    receive_count,
                    sent_at,
                    attributes: m.message_attributes.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Deletes a message (batched).
    pub async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.deletes
            .submit(receipt.to_owned())
            .await
            .map_err(|m| self.error("DeleteMessageBatch", &self.url, m))
    }

    /// Sets a message's visibility timeout (batched): extends it while the
    /// message is in flight, sets the backoff of a retry, or 0 to return it
    /// at once.
    pub async fn set_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.visibility
            .submit((receipt.to_owned(), visibility_secs(visibility)))
            .await
            .map_err(|m| self.error("ChangeMessageVisibilityBatch", &self.url, m))
    }

    /// Sends a copy of `msg` to the dead-letter queue with the reason as a
    /// message attribute, then deletes it from the queue. If the send
    /// fails, the message stays on the queue (nothing is lost).
    pub async fn dead_letter(
        &self,
        msg: &Received,
        kind: &str,
        reason: &str,
    ) -> Result<(), QueueError> {
        let body = if msg.body.is_empty() {
            "(empty body)".to_owned()
        } else {
            msg.body.clone()
        };
        let carried: Vec<(String, MessageAttributeValue)> = msg
            .attributes
            .iter()
            .filter(|(k, _)| !DEAD_LETTER_ATTRS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let attributes = dlq_attributes(body.len(), kind, reason, &msg.message_id, carried);
        if !attributes.contains_key(ATTR_ERROR) {
            // A body at SQS's size limit leaves no room for the reason:
            // keep the message whole and say why here.
            tracing::error!(
                kind,
                reason = %reason,
                source_message_id = %msg.message_id,
                "dead-lettering a message too large to carry its reason; the reason is only in this log line"
            );
        }
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(body)
            .set_message_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .on_heap()
            .await
            .map_err(|e| self.error("SendMessage", &self.dlq_url, QueueFailure::call(e)))?;
        self.delete(&msg.receipt).await
    }

    fn error(&self, op: &'static str, queue: &str, source: QueueFailure) -> QueueError {
        QueueError {
            op,
            queue: queue.to_owned(),
            source,
        }
    }
}

/// Seconds for SQS, rounded up, within SQS's 0..=12h.
pub fn visibility_secs(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.min(12 * 3600) as i32
}

/// Spreads a batch call's outcome over its entries.
fn per_entry(
    n: usize,
    res: Result<Vec<aws_sdk_sqs::types::BatchResultErrorEntry>, QueueFailure>,
) -> Vec<Result<(), QueueFailure>> {
    match res {
        Err(e) => vec![Err(e); n],
        Ok(failed) => {
            let mut out = vec![Ok(()); n];
            for f in failed {
                if let Ok(i) = f.id.parse::<usize>()
                    && i < n
                {
                    out[i] = Err(QueueFailure::Entry {
                        code: f.code,
                        message: f.message.unwrap_or_default(),
                    });
                }
            }
            out
        }
    }
}
