//! One DynamoDB Stream record, as EventBridge Pipes (or a Lambda-style
//! `{"Records": [...]}` batch) delivers it: the event name, the source
//! table, and the keys and images a template reads from.

use serde_json::Value as Json;

use super::rule::StreamEvent;

/// Which part of a record a template's attribute comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Image {
    /// `Keys.x` (falling back to the images, which hold the keys too).
    Keys,
    /// `NewImage.x`.
    New,
    /// `OldImage.x`.
    Old,
    /// `Image.x`: the new image, else the old one.
    Either,
}

impl Image {
    /// Where a missing attribute was looked for, for a reason.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Image::Keys => "Keys",
            Image::New => "NewImage",
            Image::Old => "OldImage",
            Image::Either => "NewImage or OldImage",
        }
    }
}

pub(super) struct Record<'a> {
    pub(super) event: StreamEvent,
    pub(super) table: &'a str,
    keys: Option<&'a Json>,
    new: Option<&'a Json>,
    old: Option<&'a Json>,
}

impl<'a> Record<'a> {
    /// Reads a record's event name, source table, keys and images.
    pub(super) fn parse(raw: &'a Json) -> Result<Record<'a>, String> {
        let event = raw
            .get("eventName")
            .and_then(Json::as_str)
            .ok_or("eventName is missing")?;
        let event = StreamEvent::parse(event)
            .ok_or_else(|| format!("eventName {event:?} is not INSERT, MODIFY or REMOVE"))?;
        let arn = raw
            .get("eventSourceARN")
            .and_then(Json::as_str)
            .ok_or("eventSourceARN is missing")?;
        // arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL
        let table = arn
            .split_once(":table/")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
            .ok_or_else(|| format!("eventSourceARN {arn:?} does not name a table"))?;
        let ddb = raw.get("dynamodb").ok_or("the dynamodb field is missing")?;
        Ok(Record {
            event,
            table,
            keys: ddb.get("Keys"),
            new: ddb.get("NewImage"),
            old: ddb.get("OldImage"),
        })
    }

    pub(super) fn attr(&self, image: Image, name: &str) -> Option<&'a Json> {
        let get = |img: Option<&'a Json>| img.and_then(|i| i.get(name));
        match image {
            Image::Keys => get(self.keys)
                .or_else(|| get(self.new))
                .or_else(|| get(self.old)),
            Image::New => get(self.new),
            Image::Old => get(self.old),
            Image::Either => get(self.new).or_else(|| get(self.old)),
        }
    }

    /// Whether one of `names` differs between the old and the new image.
    pub(super) fn changed(&self, names: &[String]) -> bool {
        names
            .iter()
            .any(|n| self.new.and_then(|i| i.get(n)) != self.old.and_then(|i| i.get(n)))
    }
}

/// Whether a JSON body is a DynamoDB Stream record or a batch of them.
pub fn is_stream(json: &Json) -> bool {
    json.get("Records").is_some_and(Json::is_array)
        || json.get("eventSource").and_then(Json::as_str) == Some("aws:dynamodb")
}
