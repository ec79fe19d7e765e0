//! Completion events on SNS (DESIGN §7).
//!
//! One JSON message per outcome, with the SNS message attributes `event`
//! and `set` so that subscribers can filter. The `eventId` is derived from
//! what the event is about (kind, key, set, epoch, request id), so a
//! re-publish after a crash carries the same id and consumers can
//! de-duplicate.

use std::collections::HashSet;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value as Json;

use crate::aws::topic::{Message, Topic};
use crate::config::Config;
use crate::item::{Attrs, Item, Key, to_json};
use crate::state::Stale;

pub use crate::aws::topic::PublishError;
pub use kind::EventKind;

mod kind;
#[cfg(test)]
mod render_tests;

/// SNS's default limit for a message with its attributes
/// (`sns.max_message_bytes` raises it, up to 1 MiB).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Room left in an event for everything but the value (key, record,
/// ids), when deciding whether an offloaded value is worth reading back.
const EVENT_ROOM: usize = 4 * 1024;
/// Room left for message attributes.
const ATTRIBUTE_ROOM: usize = 1024;

/// The namespace of event ids.
const EVENT_NS: uuid::Uuid = uuid::Uuid::from_u128(0x7c3e_51a2_9d4b_4f0e_a6d1_2b8f_c0e9_1a37);

/// One completion event, before it is rendered.
#[derive(Clone, Debug)]
pub struct CompletionEvent<'a> {
    pub kind: EventKind,
    pub key: &'a Key,
    pub set: &'a str,
    pub epoch: i64,
    pub request_id: Option<&'a str>,
    /// The item as read or written (projected when rendered).
    pub item: Option<&'a Item>,
    pub value: Option<&'a Json>,
    pub error: Option<&'a str>,
    /// Other requests answered by this same event (coalesced in-process).
    pub coalesced: &'a [String],
    /// For a `failed` event: the SQS message whose run recorded the
    /// failure. Part of the `eventId`, so that a redelivery of that message
    /// re-publishes the same event, while a new message with the same
    /// request id that fails again is a new event (and is not dropped by a
    /// FIFO topic's de-duplication).
    pub failed_message_id: Option<&'a str>,
    /// `answer_each_request`: the other requests this event answers, by
    /// id (`answers`), and how many more past the bound it answers by key
    /// and set only (`answersOmitted`).
    pub answers: &'a [String],
    pub answers_omitted: i64,
    /// Where the value is when it was offloaded to S3: carried instead of
    /// the value when the value does not fit the event.
    pub value_ref: Option<&'a Json>,
    /// A presigned GET URL of the offloaded value (`s3.presign_expiry`).
    pub value_url: Option<&'a str>,
    /// A `hit` answered with a value of an earlier epoch or past its ttl
    /// (`serve_stale`): rendered `"stale": true` with `valueEpoch` and
    /// `ageMs`, and part of the `eventId` (a fresh hit of the same request
    /// and epoch is another event).
    pub stale: Option<Stale>,
}

impl<'a> CompletionEvent<'a> {
    /// An event about `(key, set)` at `epoch` with nothing else yet; fill
    /// in the rest with struct update syntax.
    pub fn new(kind: EventKind, key: &'a Key, set: &'a str, epoch: i64) -> Self {
        CompletionEvent {
            kind,
            key,
            set,
            epoch,
            request_id: None,
            item: None,
            value: None,
            error: None,
            coalesced: &[],
            failed_message_id: None,
            answers: &[],
            answers_omitted: 0,
            value_ref: None,
            value_url: None,
            stale: None,
        }
    }
}

/// An event as it is sent, serialized straight from what it borrows. The
/// fields are in alphabetical order, the order of the JSON object's keys.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    age_ms: Option<i64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    answers: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    answers_omitted: Option<i64>,
    at: String,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    coalesced: &'a [String],
    epoch: i64,
    error: Option<&'a str>,
    event: &'a str,
    event_id: &'a str,
    key: Json,
    record: Option<&'a Json>,
    request_id: Option<&'a str>,
    set: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<bool>,
    /// Only in a truncated event: the cache's status, if there is an item.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated: Option<bool>,
    value: Option<&'a Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_epoch: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_ref: Option<&'a Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_url: Option<&'a str>,
}

impl Body<'_> {
    fn text(&self) -> String {
        serde_json::to_string(self).expect("an event serializes")
    }
}

/// The stable id of an event.
pub fn event_id(ev: &CompletionEvent<'_>) -> String {
    let mut name = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        ev.kind.as_str(),
        ev.key,
        ev.set,
        ev.epoch,
        ev.request_id.unwrap_or("")
    );
    if let Some(message_id) = ev.failed_message_id {
        name.push('\u{1f}');
        name.push_str(message_id);
    }
    if ev.stale.is_some() {
        name.push_str("\u{1f}stale");
    }
    uuid::Uuid::new_v5(&EVENT_NS, name.as_bytes()).to_string()
}

/// Publishes completion events to the configured topic.
#[derive(Clone, Debug)]
pub struct Publisher {
    topic: Topic,
    enabled: HashSet<EventKind>,
    projection: Option<Vec<String>>,
    attrs: Attrs,
    /// `sns.max_message_bytes`.
    max_bytes: usize,
}

impl Publisher {
    pub fn new(client: aws_sdk_sns::Client, cfg: &Config) -> Self {
        Self::answering(client, cfg, None)
    }

    /// Like [`Publisher::new`], with events that linger only while
    /// messages counted in `answering` have yet to publish theirs.
    pub fn answering(
        client: aws_sdk_sns::Client,
        cfg: &Config,
        answering: Option<crate::batch::Answering>,
    ) -> Self {
        Publisher {
            topic: Topic::new(client, &cfg.sns.topic_arn, cfg.fifo_topic(), answering),
            enabled: cfg.sns.events.iter().copied().collect(),
            projection: cfg.sns.record_attributes.clone(),
            attrs: Attrs {
                prefix: cfg.dynamodb.attribute_prefix.clone(),
            },
            max_bytes: cfg.sns.max_message_bytes as usize,
        }
    }

    /// The largest value an event can carry: an offloaded value larger than
    /// this is not read back, the event carries its `valueRef`.
    pub fn max_value_bytes(&self) -> usize {
        self.max_bytes.saturating_sub(EVENT_ROOM + ATTRIBUTE_ROOM)
    }

    /// Asks SNS whether the topic answers: the readiness ping.
    pub async fn ping(&self) -> Result<(), PublishError> {
        self.topic.ping().await
    }

    pub fn topic_arn(&self) -> &str {
        self.topic.arn()
    }

    pub fn enabled(&self, kind: EventKind) -> bool {
        self.enabled.contains(&kind)
    }

    /// Renders the event as JSON. An offloaded value's event carries its
    /// `valueRef` (and `valueUrl`), and the value too when it fits an SNS
    /// message (`sns.max_message_bytes`); an event that does not fit
    /// otherwise drops record and value, and says so (`truncated`).
    pub fn render(&self, ev: &CompletionEvent<'_>) -> (String, String) {
        let id = event_id(ev);
        let record = ev.item.map(|item| self.project(item));
        let mut body = Body {
            age_ms: ev.stale.map(|s| s.age_ms),
            answers: ev.answers,
            answers_omitted: (ev.answers_omitted > 0).then_some(ev.answers_omitted),
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            coalesced: ev.coalesced,
            epoch: ev.epoch,
            error: ev.error,
            event: ev.kind.as_str(),
            event_id: &id,
            key: ev.key.to_json(),
            record: record.as_ref(),
            request_id: ev.request_id,
            set: ev.set,
            stale: ev.stale.map(|_| true),
            status: None,
            truncated: None,
            value: ev.value,
            value_epoch: ev.stale.map(|s| s.value_epoch),
            value_ref: ev.value_ref,
            value_url: ev.value_ref.and(ev.value_url),
        };
        let fits = |text: &str| text.len() + ATTRIBUTE_ROOM <= self.max_bytes;
        let text = body.text();
        if fits(&text) {
            return (id, text);
        }
        // An offloaded value: the pointer (and URL) always, the value too
        // when it fits.
        if ev.value_ref.is_some() {
            body.value = None;
            let text = body.text();
            if fits(&text) {
                return (id, text);
            }
        }
        let status = ev
            .item
            .map(|item| self.attrs.cache(item, ev.set).status().as_str());
        body.record = None;
        body.value = None;
        body.status = Some(status);
        body.truncated = Some(true);
        body.coalesced = &ev.coalesced[..ev.coalesced.len().min(100)];
        let text = body.text();
        (id, text)
    }

    fn project(&self, item: &Item) -> Json {
        let pick = |names: Vec<&String>| -> Json {
            Json::Object(
                names
                    .into_iter()
                    .filter_map(|name| Some((name.clone(), to_json(item.get(name)?))))
                    .collect(),
            )
        };
        match &self.projection {
            Some(names) => pick(names.iter().collect()),
            None => {
                let mut names: Vec<&String> = item
                    .keys()
                    .filter(|k| !self.attrs.is_value_attr(k))
                    .collect();
                names.sort();
                pick(names)
            }
        }
    }

    /// Publishes `ev` if its kind is enabled. Returns the event id.
    pub async fn publish(&self, ev: &CompletionEvent<'_>) -> Result<Option<String>, PublishError> {
        if !self.enabled(ev.kind) {
            return Ok(None);
        }
        let (id, body) = self.render(ev);
        // The group is used by a FIFO topic only.
        let group = group_id(ev.key);
        self.topic
            .publish(Message {
                body,
                attributes: &[("event", ev.kind.as_str()), ("set", ev.set)],
                group: &group,
                dedup_id: &id,
                event: ev.kind.as_str(),
            })
            .await?;
        Ok(Some(id))
    }
}

/// A FIFO message group: the key, or a hash of it when it is too long.
fn group_id(key: &Key) -> String {
    let text = key.to_string();
    if text.len() <= 128 && text.chars().all(|c| c.is_ascii_graphic()) {
        text
    } else {
        uuid::Uuid::new_v5(&EVENT_NS, text.as_bytes()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::KeyValue;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let key = Key(vec![("pk".into(), KeyValue::S("a".into()))]);
        let id = |kind, set, epoch, failed_message_id| {
            event_id(&CompletionEvent {
                request_id: Some("r1"),
                failed_message_id,
                ..CompletionEvent::new(kind, &key, set, epoch)
            })
        };
        let a = id(EventKind::Ready, "s", 3, None);
        assert_eq!(a, id(EventKind::Ready, "s", 3, None));
        assert_ne!(a, id(EventKind::Ready, "s", 4, None));
        assert_ne!(a, id(EventKind::Hit, "s", 3, None));
        assert_ne!(a, id(EventKind::Ready, "t", 3, None));
        // A failure re-published for the same message keeps its id; the
        // failure of a new message with the same request id is new.
        let f = id(EventKind::Failed, "s", 3, Some("m1"));
        assert_eq!(f, id(EventKind::Failed, "s", 3, Some("m1")));
        assert_ne!(f, id(EventKind::Failed, "s", 3, Some("m2")));
        // A stale hit is another event than a fresh hit of the same epoch.
        let stale = event_id(&CompletionEvent {
            request_id: Some("r1"),
            stale: Some(Stale {
                value_epoch: 2,
                age_ms: 5,
            }),
            ..CompletionEvent::new(EventKind::Hit, &key, "s", 3)
        });
        assert_ne!(stale, id(EventKind::Hit, "s", 3, None));
    }
}
