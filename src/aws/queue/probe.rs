//! What the readiness probe and the queue gauges ask SQS: one
//! `GetQueueAttributes` per queue, which is also the readiness ping.

use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput;
use aws_sdk_sqs::types::QueueAttributeName;

use super::{Queue, QueueError, QueueFailure};
use crate::aws::OnHeap;

/// What a ping of the request queue found.
#[derive(Clone, Debug, Default)]
pub struct QueueStatus {
    /// `ApproximateNumberOfMessages`, if SQS said it.
    pub depth: Option<i64>,
    /// The raw `RedrivePolicy` JSON, if asked for and set.
    pub redrive_policy: Option<String>,
}

impl Queue {
    /// Asks the request queue whether it answers, with its depth and, if
    /// `with_redrive_policy`, its redrive policy (one call either way).
    pub async fn ping(&self, with_redrive_policy: bool) -> Result<QueueStatus, QueueError> {
        let mut names = vec![QueueAttributeName::ApproximateNumberOfMessages];
        if with_redrive_policy {
            names.push(QueueAttributeName::RedrivePolicy);
        }
        let out = self.attributes(&self.url, names).await?;
        Ok(QueueStatus {
            depth: depth(&out),
            redrive_policy: attribute(&out, QueueAttributeName::RedrivePolicy),
        })
    }

    /// The dead-letter queue's `ApproximateNumberOfMessages`.
    pub async fn dlq_depth(&self) -> Result<Option<i64>, QueueError> {
        let out = self
            .attributes(
                &self.dlq_url,
                vec![QueueAttributeName::ApproximateNumberOfMessages],
            )
            .await?;
        Ok(depth(&out))
    }

    /// The request queue's `RedrivePolicy` JSON, `None` if it has none.
    pub async fn redrive_policy(&self) -> Result<Option<String>, QueueError> {
        let out = self
            .attributes(&self.url, vec![QueueAttributeName::RedrivePolicy])
            .await?;
        Ok(attribute(&out, QueueAttributeName::RedrivePolicy))
    }

    async fn attributes(
        &self,
        url: &str,
        names: Vec<QueueAttributeName>,
    ) -> Result<GetQueueAttributesOutput, QueueError> {
        self.client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names))
            .send()
            .on_heap()
            .await
            .map_err(|e| self.error("GetQueueAttributes", url, QueueFailure::call(e)))
    }
}

fn attribute(out: &GetQueueAttributesOutput, name: QueueAttributeName) -> Option<String> {
    out.attributes()?.get(&name).cloned()
}

fn depth(out: &GetQueueAttributesOutput) -> Option<i64> {
    attribute(out, QueueAttributeName::ApproximateNumberOfMessages)?
        .parse()
        .ok()
}
