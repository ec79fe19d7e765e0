//! The dead-letter queue as the operators' commands see it: its depth,
//! receives that hide messages while a command works on them, and the
//! release that makes them visible again at once. `dlq list` lives here;
//! `dlq redrive` in [`super::redrive`].

use std::collections::{HashMap, HashSet};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, QueueAttributeName,
};

use super::show;
use crate::aws::error_message;
use crate::aws::queue::{ATTR_ERROR, ATTR_ERROR_KIND, ATTR_SOURCE_ID, delete_entries};
use crate::config::Config;

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

    /// The daemon's `errorKind` (`malformed`, `failed`); `None` for a
    /// message SQS moved itself (redrive policy), which carries no reason.
    pub fn kind(&self) -> Option<&str> {
        self.attr(ATTR_ERROR_KIND)
    }
}

/// The dead-letter queue.
pub struct Dlq {
    sqs: aws_sdk_sqs::Client,
    pub url: String,
}

impl Dlq {
    pub fn new(sqs: aws_sdk_sqs::Client, url: &str) -> Dlq {
        Dlq {
            sqs,
            url: url.to_owned(),
        }
    }

    /// `ApproximateNumberOfMessages`: the visible messages.
    pub async fn depth(&self) -> anyhow::Result<u64> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("reading the depth of {}: {}", self.url, error_message(&e))
            })?;
        Ok(out
            .attributes
            .unwrap_or_default()
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// One long-poll receive (1 s) of up to `max` messages, hidden for
    /// `hide_secs` while the command works on them.
    pub async fn receive(&self, max: usize, hide_secs: i32) -> anyhow::Result<Vec<DeadLetter>> {
        let resp = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(hide_secs)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("receiving from {}: {}", self.url, error_message(&e)))?;
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
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                        .expect("id and receipt are set")
                })
                .collect::<Vec<_>>();
            match self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => stuck += out.failed.len(),
                Err(_) => stuck += chunk.len(),
            }
        }
        stuck
    }

    /// Deletes messages; fails naming how many could not be deleted.
    pub async fn delete(&self, receipts: &[String]) -> anyhow::Result<()> {
        for chunk in receipts.chunks(10) {
            let entries = delete_entries(chunk);
            let out = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!("deleting from {}: {}", self.url, error_message(&e))
                })?;
            if let Some(f) = out.failed.first() {
                anyhow::bail!(
                    "deleting {} message(s) from {}: {}: {}",
                    out.failed.len(),
                    self.url,
                    f.code,
                    f.message.clone().unwrap_or_default()
                );
            }
        }
        Ok(())
    }
}

/// How long `dlq list` hides the messages it reads before releasing them.
const LIST_HIDE_SECS: i32 = 30;

/// `dlq list`: up to `limit` dead-lettered messages with their reasons.
/// They stay in the DLQ, visible again at once. Bodies and reasons that
/// are JSON are printed as JSON.
pub async fn dlq_list(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    limit: usize,
) -> anyhow::Result<()> {
    let dlq = Dlq::new(aws_sdk_sqs::Client::new(sdk), &cfg.sqs.dlq_url);
    let mut seen = HashSet::new();
    let mut msgs = Vec::new();
    let mut receipts = Vec::new();
    // Stop after two receives that brought nothing new: the queue is
    // empty, or what we hid became visible again during a long listing.
    let mut idle = 0;
    let mut failure = None;
    while msgs.len() < limit && idle < 2 {
        let got = match dlq.receive(limit - msgs.len(), LIST_HIDE_SECS).await {
            Ok(got) => got,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        idle += 1;
        for m in got {
            receipts.push(m.receipt.clone());
            if seen.insert(m.message_id.clone()) {
                idle = 0;
                msgs.push(m);
            }
        }
    }
    let stuck = dlq.release(receipts).await;
    if stuck > 0 {
        eprintln!(
            "warning: {stuck} listed message(s) stay hidden for up to {LIST_HIDE_SECS}s before they are visible again"
        );
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if msgs.is_empty() {
        println!("the dead-letter queue is empty");
        return Ok(());
    }
    for m in &msgs {
        println!("{}", entry(m));
    }
    eprintln!("{} message(s)", msgs.len());
    Ok(())
}

/// One message of `dlq list`: who it was, why it was dead-lettered, what
/// it said.
fn entry(m: &DeadLetter) -> String {
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    format!(
        "MessageId {}  sourceMessageId {}  errorKind {}\n  error: {}\n  body:  {}\n",
        m.message_id,
        or_dash(m.attr(ATTR_SOURCE_ID)),
        or_dash(m.kind()),
        m.attr(ATTR_ERROR).map(show::readable).unwrap_or_else(|| {
            "- (none: moved by the queue's redrive policy, or too large to carry a reason)".into()
        }),
        show::readable(&m.body),
    )
}
