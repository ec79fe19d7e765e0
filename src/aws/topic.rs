//! The SNS adapter: publishing a rendered completion event to the topic,
//! and the readiness ping. What an event says is [`crate::events`]'s
//! business; this module only carries it.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use tracing::Instrument;

pub use super::error::PublishError;

/// The completion-event topic.
#[derive(Clone, Debug)]
pub struct Topic {
    client: Client,
    arn: String,
    fifo: bool,
}

/// One message for the topic.
pub struct Message<'a> {
    pub body: String,
    /// String message attributes subscribers filter on.
    pub attributes: &'a [(&'a str, &'a str)],
    /// For a FIFO topic: the message group and the de-duplication id.
    pub group: &'a str,
    pub dedup_id: &'a str,
    /// The span's `event` field.
    pub event: &'a str,
}

impl Topic {
    pub fn new(client: Client, arn: &str, fifo: bool) -> Self {
        Topic {
            client,
            arn: arn.to_owned(),
            fifo,
        }
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Asks SNS whether the topic answers (`GetTopicAttributes`): the
    /// readiness ping.
    pub async fn ping(&self) -> Result<(), PublishError> {
        self.client
            .get_topic_attributes()
            .topic_arn(&self.arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("GetTopicAttributes", e.into()))
    }

    /// Publishes one message, with the trace context as attributes.
    pub async fn publish(&self, msg: Message<'_>) -> Result<(), PublishError> {
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .expect("data type and value are set")
        };
        let mut req = self.client.publish().topic_arn(&self.arn).message(msg.body);
        for (k, v) in msg.attributes {
            req = req.message_attributes(*k, attr(v));
        }
        for (k, v) in crate::telemetry::current_context() {
            req = req.message_attributes(k, attr(&v));
        }
        if self.fifo {
            req = req
                .message_group_id(msg.group)
                .message_deduplication_id(msg.dedup_id);
        }
        let span = tracing::info_span!("sns.Publish", otel.kind = "producer", event = msg.event);
        req.send()
            .instrument(span)
            .await
            .map_err(|e| self.error("Publish", e.into()))?;
        Ok(())
    }

    fn error(&self, op: &'static str, source: aws_sdk_sns::Error) -> PublishError {
        PublishError {
            op,
            topic: self.arn.clone(),
            source,
        }
    }
}
