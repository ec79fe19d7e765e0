//! The SNS adapter: publishing rendered completion events to the topic
//! (batched: `batch.rs`), and the readiness ping. What an event says is
//! [`crate::events`]'s business; this module only carries it.

use aws_sdk_sns::Client;
use tracing::Instrument;

use crate::aws::OnHeap;
use crate::batch::{Answering, Batcher, Lost, Step};
use batch::{Entry, Refusal};

pub use super::error::PublishError;

mod batch;

/// The completion-event topic.
#[derive(Clone, Debug)]
pub struct Topic {
    client: Client,
    arn: String,
    fifo: bool,
    events: Batcher<Entry, Failed>,
}

/// An entry's failure in the batcher: the call and the SDK's error.
#[derive(Debug)]
struct Failed(&'static str, Box<aws_sdk_sns::Error>);

impl From<Lost> for Failed {
    fn from(lost: Lost) -> Self {
        Failed(
            "Publish",
            Box::new(batch::as_sdk_error(None, &lost.to_string())),
        )
    }
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
    /// Must be called inside a tokio runtime (it starts the batcher).
    /// With `answering`, events linger only while messages counted there
    /// have yet to publish theirs ([`crate::batch::Answering`]).
    pub fn new(client: Client, arn: &str, fifo: bool, answering: Option<Answering>) -> Self {
        let events = {
            let (client, arn) = (client.clone(), arn.to_owned());
            let answering = answering.map(|a| (a, Step::Event));
            Batcher::spawn_answering(
                batch::MAX_ENTRIES,
                batch::LINGER,
                answering,
                move |entries| publish_all(client.clone(), arn.clone(), entries),
            )
        };
        Topic {
            client,
            arn: arn.to_owned(),
            fifo,
            events,
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
            .on_heap()
            .await
            .map(|_| ())
            .map_err(|e| self.error("GetTopicAttributes", e.into()))
    }

    /// Publishes one message, with the trace context as attributes, and
    /// returns once SNS accepted it. Messages published concurrently go out
    /// together as one `PublishBatch` (a message alone as `Publish`); the
    /// span covers the caller's wait.
    pub async fn publish(&self, msg: Message<'_>) -> Result<(), PublishError> {
        let mut attributes: Vec<(String, String)> = msg
            .attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        attributes.extend(crate::telemetry::current_context());
        let entry = Entry {
            body: msg.body,
            attributes,
            fifo: self
                .fifo
                .then(|| (msg.group.to_owned(), msg.dedup_id.to_owned())),
        };
        let span = tracing::info_span!("sns.Publish", otel.kind = "producer", event = msg.event);
        self.events
            .submit(entry)
            .instrument(span)
            .await
            .map_err(|Failed(op, source)| self.error(op, *source))
    }

    fn error(&self, op: &'static str, source: aws_sdk_sns::Error) -> PublishError {
        PublishError {
            op,
            topic: self.arn.clone(),
            source,
        }
    }
}

/// The batcher's flush: the entries in runs that fit one `PublishBatch`
/// each, sent concurrently; a run of one as `Publish`.
async fn publish_all(client: Client, arn: String, entries: Vec<Entry>) -> Vec<Result<(), Failed>> {
    let sizes: Vec<usize> = entries.iter().map(Entry::size).collect();
    let runs = batch::runs(&sizes);
    let sent = futures::future::join_all(
        runs.into_iter()
            .map(|r| publish_run(&client, &arn, &entries[r])),
    )
    .await;
    sent.into_iter().flatten().collect()
}

async fn publish_run(client: &Client, arn: &str, entries: &[Entry]) -> Vec<Result<(), Failed>> {
    if let [entry] = entries {
        return vec![publish_one(client, arn, entry.clone()).await];
    }
    let results = batch::send_all(entries, |b| batch::publish_batch(client, arn, b)).await;
    let copies = results.iter().find_map(|r| match r {
        Err(Refusal::Call(e)) => Some(e),
        _ => None,
    });
    let copies: Vec<aws_sdk_sns::Error> = results
        .iter()
        .filter(|r| matches!(r, Err(Refusal::CallShared)))
        .filter_map(|_| copies.map(batch::copy_of))
        .collect();
    let mut copies = copies.into_iter();
    results
        .into_iter()
        .map(|r| match r {
            Ok(()) => Ok(()),
            Err(Refusal::Call(e)) => Err(Failed("PublishBatch", Box::new(e))),
            Err(Refusal::CallShared) => Err(Failed(
                "PublishBatch",
                Box::new(
                    copies
                        .next()
                        .unwrap_or_else(|| batch::as_sdk_error(None, "the batch call failed")),
                ),
            )),
            Err(Refusal::Entry { code, message }) => Err(Failed(
                "PublishBatch",
                Box::new(batch::as_sdk_error(Some(&code), &message)),
            )),
        })
        .collect()
}

async fn publish_one(client: &Client, arn: &str, entry: Entry) -> Result<(), Failed> {
    let mut req = client.publish().topic_arn(arn).message(entry.body);
    for (k, v) in entry.attributes {
        req = req.message_attributes(k, batch::attribute(&v));
    }
    if let Some((group, dedup)) = entry.fifo {
        req = req.message_group_id(group).message_deduplication_id(dedup);
    }
    req.send()
        .on_heap()
        .await
        .map(|_| ())
        .map_err(|e| Failed("Publish", Box::new(e.into())))
}
