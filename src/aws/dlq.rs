//! The dead-letter queue as the operators' commands see it (`dlq list`,
//! `dlq redrive`): its depth, receives that hide messages while a command
//! works on them, the release that makes them visible again at once, and
//! deletes. The daemon's own use of the DLQ (dead-lettering with a reason)
//! is in [`super::queue`].

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};

use super::queue::{
    ATTR_KIND, ATTR_KIND_BEFORE, QueueError, QueueFailure, delete_entries, visibility_entries,
};
use crate::aws::OnHeap;

/// One dead-lettered message.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The MessageId in the DLQ.
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    pub attributes: HashMap<String, MessageAttributeValue>,
}

impl DeadLetter {
    /// A string attribute, if the message has it.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(|a| a.string_value())
    }

    /// The daemon's dead-letter kind (`malformed`, `failed`); `None` for a
    /// message SQS moved itself (redrive policy), which carries no reason.
    /// Messages dead-lettered by earlier releases carry it under its old
    /// name, `errorKind`: read as a fallback.
    pub fn kind(&self) -> Option<&str> {
        self.attr(ATTR_KIND).or_else(|| self.attr(ATTR_KIND_BEFORE))
    }
}

/// The dead-letter queue.
#[derive(Clone, Debug)]
pub struct Dlq {
    client: Client,
    url: String,
}

impl Dlq {
    pub fn new(client: Client, url: &str) -> Dlq {
        Dlq {
            client,
            url: url.to_owned(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `ApproximateNumberOfMessages`: the visible messages.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .on_heap()
            .await
            .map_err(|e| self.error("GetQueueAttributes", QueueFailure::call(e)))?;
        Ok(out
            .attributes
            .unwrap_or_default()
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// One long-poll receive (1 s) of up to `max` messages, hidden for
    /// `hide_secs` while the command works on them.
    pub async fn receive(&self, max: usize, hide_secs: i32) -> Result<Vec<DeadLetter>, QueueError> {
        let resp = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(hide_secs)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .on_heap()
            .await
            .map_err(|e| self.error("ReceiveMessage", QueueFailure::call(e)))?;
        Ok(resp
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                Some(DeadLetter {
                    message_id: m.message_id?,
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    attributes: m.message_attributes.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Makes received messages visible again at once. Returns how many
    /// could not be released: they stay hidden until their visibility
    /// timeout ends, then are visible again (never lost).
    pub async fn release(&self, receipts: Vec<String>) -> usize {
        let mut stuck = 0;
        for chunk in receipts.chunks(10) {
            let changes: Vec<(String, i32)> = chunk.iter().map(|r| (r.clone(), 0)).collect();
            match self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(visibility_entries(changes)))
                .send()
                .on_heap()
                .await
            {
                Ok(out) => stuck += out.failed.len(),
                Err(_) => stuck += chunk.len(),
            }
        }
        stuck
    }

    /// Deletes messages; fails naming how many could not be deleted.
    pub async fn delete(&self, receipts: &[String]) -> Result<(), QueueError> {
        for chunk in receipts.chunks(10) {
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(delete_entries(chunk)))
                .send()
                .on_heap()
                .await
                .map_err(|e| self.error("DeleteMessageBatch", QueueFailure::call(e)))?;
            if let Some(f) = out.failed.first() {
                return Err(self.error(
                    "DeleteMessageBatch",
                    QueueFailure::Entries {
                        refused: out.failed.len(),
                        code: f.code.clone(),
                        message: f.message.clone().unwrap_or_default(),
                    },
                ));
            }
        }
        Ok(())
    }

    fn error(&self, op: &'static str, source: QueueFailure) -> QueueError {
        QueueError {
            op,
            queue: self.url.clone(),
            source,
        }
    }
}
