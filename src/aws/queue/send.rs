//! Sending to a queue by URL in batches: the CLI's `send` and `dlq
//! redrive`. The daemon itself never sends to the request queue.

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use super::{QueueError, QueueFailure};
use crate::aws::OnHeap;

/// SQS's most messages in one `SendMessageBatch`.
pub const MAX_BATCH: usize = 10;

/// One message to send.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub body: String,
    pub attributes: Option<HashMap<String, MessageAttributeValue>>,
}

/// A queue that the CLI sends to.
#[derive(Clone, Debug)]
pub struct Sender {
    client: Client,
    url: String,
}

impl Sender {
    pub fn new(client: Client, url: &str) -> Self {
        Sender {
            client,
            url: url.to_owned(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One `SendMessageBatch` of up to [`MAX_BATCH`] messages. Per message,
    /// in order: its MessageId, or why SQS refused it (`code: message`).
    pub async fn send_batch(
        &self,
        msgs: Vec<Outgoing>,
    ) -> Result<Vec<Result<String, String>>, QueueError> {
        let n = msgs.len();
        let entries = msgs
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body)
                    .set_message_attributes(m.attributes)
                    .build()
                    .expect("id and body are set")
            })
            .collect::<Vec<_>>();
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .on_heap()
            .await
            .map_err(|e| QueueError {
                op: "SendMessageBatch",
                queue: self.url.clone(),
                source: QueueFailure::call(e),
            })?;
        let mut res: Vec<Result<String, String>> =
            vec![Err("SQS did not report this message".to_owned()); n];
        for s in out.successful {
            if let Some(slot) = s.id.parse::<usize>().ok().and_then(|i| res.get_mut(i)) {
                *slot = Ok(s.message_id);
            }
        }
        for f in out.failed {
            if let Some(slot) = f.id.parse::<usize>().ok().and_then(|i| res.get_mut(i)) {
                *slot = Err(format!("{}: {}", f.code, f.message.unwrap_or_default()));
            }
        }
        Ok(res)
    }
}
