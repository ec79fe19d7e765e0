//! Decoding queue messages (DESIGN §3).
//!
//! A message is versioned JSON naming the item by its key attributes:
//!
//! ```json
//! {"v":1, "type":"request", "key":{"pk":"order#123"}, "set":"summary"}
//! ```
//!
//! Anything that cannot be understood is a [`BadMessage`] whose reason is
//! written for the person who reads the dead-letter queue: it names the
//! field and what was expected. Beside the native form, an SNS notification
//! that wraps the body (SNS → SQS without raw delivery) is unwrapped.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json};

use crate::item::{Key, KeyValue};

/// The largest body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The longest request id or trigger id accepted.
pub const MAX_ID_CHARS: usize = 128;

/// What a message asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// "I need the cached object (key, set)".
    Request {
        set: String,
        /// The producer's request id; `None` means the SQS MessageId.
        request_id: Option<String>,
        input: Option<Json>,
    },
    /// "The data behind (key, sets) changed".
    Trigger { sets: SetSelector },
    /// "A flow that changes the data has started".
    TriggerStart { set: String, trigger_id: String },
    /// "That flow has ended".
    TriggerEnd { set: String, trigger_id: String },
}

/// One set, or every configured set (`"*"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetSelector {
    One(String),
    All,
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub key: Key,
    pub command: Command,
}

/// Why a message was dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct BadMessage {
    pub reason: String,
}

fn bad(reason: impl Into<String>) -> BadMessage {
    BadMessage {
        reason: reason.into(),
    }
}

/// What decoding needs to know about the deployment.
#[derive(Clone, Debug)]
pub struct Schema {
    pub partition_key: String,
    pub sort_key: Option<String>,
    pub sets: BTreeSet<String>,
}

const FIELDS: [&str; 8] = [
    "v",
    "type",
    "key",
    "set",
    "requestId",
    "input",
    "triggerId",
    "dependency",
];

/// Every form a queue message can take.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// A native message about one item.
    Message(Message),
    /// `{"v":1,"type":"trigger","dependency":"product#A"}`: reset every
    /// cache that depends on the entity.
    Dependency(String),
    /// DynamoDB Stream records, mapped by the configured rules.
    Stream(crate::streams::StreamTriggers),
}

/// A decoded body and the message attributes of the envelope it came in
/// (an SNS notification's `MessageAttributes`, e.g. `traceparent`).
#[derive(Debug, PartialEq)]
pub struct Envelope {
    pub decoded: Decoded,
    pub attributes: Vec<(String, String)>,
}

impl Schema {
    /// Decodes a native message body (unwrapping an SNS notification).
    pub fn decode(&self, body: &str) -> Result<Message, BadMessage> {
        match self
            .decode_any(body, &crate::streams::Rules::default())?
            .decoded
        {
            Decoded::Message(m) => Ok(m),
            Decoded::Dependency(_) => Err(bad("a dependency trigger names no item")),
            Decoded::Stream(_) => Err(bad("a stream record is not a native message")),
        }
    }

    /// Decodes any body: a native message, an SNS notification wrapping
    /// one, or DynamoDB Stream records (mapped by `rules`).
    pub fn decode_any(
        &self,
        body: &str,
        rules: &crate::streams::Rules,
    ) -> Result<Envelope, BadMessage> {
        if body.len() > MAX_BODY_BYTES {
            return Err(bad(format!(
                "body is {} bytes, over the limit of {MAX_BODY_BYTES}",
                body.len()
            )));
        }
        let json: Json =
            serde_json::from_str(body).map_err(|e| bad(format!("body is not JSON: {e}")))?;
        if let Json::Object(obj) = &json
            && let Some(inner) = sns_message(obj)
        {
            let mut env = self.decode_any(inner, rules)?;
            env.attributes.extend(sns_attributes(obj));
            return Ok(env);
        }
        if crate::streams::is_stream(&json) {
            if rules.is_empty() {
                return Err(bad(
                    "a DynamoDB Stream record arrived but no [[streams]] rules are configured",
                ));
            }
            let triggers = rules.map(&json)?;
            return Ok(Envelope {
                decoded: Decoded::Stream(triggers),
                attributes: vec![],
            });
        }
        let Json::Object(obj) = json else {
            return Err(bad("body is not a JSON object"));
        };
        Ok(Envelope {
            decoded: self.decode_object(&obj)?,
            attributes: vec![],
        })
    }

    fn decode_object(&self, obj: &Map<String, Json>) -> Result<Decoded, BadMessage> {
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(format!(
                "unknown field `{}`; known fields are {}",
                printable(unknown),
                FIELDS.join(", ")
            )));
        }
        match obj.get("v") {
            Some(Json::Number(n)) if n.as_u64() == Some(1) => {}
            Some(other) => {
                return Err(bad(format!(
                    "field `v` is {}, this worker understands version 1",
                    short(other)
                )));
            }
            None => return Err(bad("field `v` is missing (the message version, 1)")),
        }
        let kind = string_field(obj, "type")?.ok_or_else(|| {
            bad("field `type` is missing (request, trigger, trigger_start or trigger_end)")
        })?;
        if kind == "trigger" && obj.contains_key("dependency") {
            if let Some(extra) = ["key", "set", "requestId", "input", "triggerId"]
                .into_iter()
                .find(|f| obj.contains_key(*f))
            {
                return Err(bad(format!(
                    "field `{extra}` does not belong in a dependency trigger (it names only `dependency`)"
                )));
            }
            let entity =
                id_field(obj, "dependency")?.ok_or_else(|| bad("field `dependency` is missing"))?;
            return Ok(Decoded::Dependency(entity));
        }
        if obj.contains_key("dependency") {
            return Err(bad(format!(
                "field `dependency` does not belong in a `{kind}` message"
            )));
        }
        let key = self.key(obj.get("key"))?;
        let set = string_field(obj, "set")?.ok_or_else(|| bad("field `set` is missing"))?;
        let allowed = |names: &[&str]| -> Result<(), BadMessage> {
            for field in ["requestId", "input", "triggerId"] {
                if obj.contains_key(field) && !names.contains(&field) {
                    return Err(bad(format!(
                        "field `{field}` does not belong in a `{kind}` message"
                    )));
                }
            }
            Ok(())
        };
        let command = match kind {
            "request" => {
                allowed(&["requestId", "input"])?;
                Command::Request {
                    set: self.set(set)?,
                    request_id: id_field(obj, "requestId")?,
                    input: obj.get("input").cloned(),
                }
            }
            "trigger" => {
                allowed(&[])?;
                let sets = if set == "*" {
                    SetSelector::All
                } else {
                    SetSelector::One(self.set(set)?)
                };
                Command::Trigger { sets }
            }
            "trigger_start" | "trigger_end" => {
                allowed(&["triggerId"])?;
                let set = self.set(set)?;
                let trigger_id = id_field(obj, "triggerId")?.ok_or_else(|| {
                    bad(format!(
                        "field `triggerId` is missing (a `{kind}` names its flow)"
                    ))
                })?;
                if kind == "trigger_start" {
                    Command::TriggerStart { set, trigger_id }
                } else {
                    Command::TriggerEnd { set, trigger_id }
                }
            }
            other => {
                return Err(bad(format!(
                    "field `type` is `{}`; expected request, trigger, trigger_start or trigger_end",
                    printable(other)
                )));
            }
        };
        Ok(Decoded::Message(Message { key, command }))
    }

    fn set(&self, set: &str) -> Result<String, BadMessage> {
        if self.sets.contains(set) {
            Ok(set.to_owned())
        } else {
            Err(bad(format!(
                "set `{}` is not configured; configured sets are {}",
                printable(set),
                self.sets.iter().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
    }

    fn key(&self, key: Option<&Json>) -> Result<Key, BadMessage> {
        let expected = match &self.sort_key {
            Some(sk) => format!("{{\"{}\": ..., \"{sk}\": ...}}", self.partition_key),
            None => format!("{{\"{}\": ...}}", self.partition_key),
        };
        let Some(key) = key else {
            return Err(bad(format!("field `key` is missing; expected {expected}")));
        };
        let Json::Object(map) = key else {
            return Err(bad(format!(
                "field `key` is {}, expected an object {expected}",
                short(key)
            )));
        };
        let names: Vec<&String> = std::iter::once(&self.partition_key)
            .chain(self.sort_key.as_ref())
            .collect();
        if let Some(extra) = map.keys().find(|k| !names.contains(k)) {
            return Err(bad(format!(
                "key attribute `{}` is not part of the table's key; expected {expected}",
                printable(extra)
            )));
        }
        let mut parts = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            // DynamoDB's limits on a key attribute's string value.
            let (role, limit) = match i {
                0 => ("partition key", MAX_PARTITION_KEY_BYTES),
                _ => ("sort key", MAX_SORT_KEY_BYTES),
            };
            let value = match map.get(name.as_str()) {
                Some(Json::String(s)) if s.len() > limit => {
                    return Err(bad(format!(
                        "key attribute `{name}` is too long: a string of {} bytes, {} over DynamoDB's limit of {limit} bytes for a {role}",
                        s.len(),
                        s.len() - limit
                    )));
                }
                Some(Json::String(s)) if !s.is_empty() => KeyValue::S(s.clone()),
                Some(Json::Number(n)) => KeyValue::N(n.to_string()),
                Some(other) => {
                    return Err(bad(format!(
                        "key attribute `{name}` is {}, expected a non-empty string (at most {limit} bytes) or a number",
                        short(other)
                    )));
                }
                None => {
                    return Err(bad(format!(
                        "key attribute `{name}` is missing; expected {expected}"
                    )));
                }
            };
            parts.push((name.clone(), value));
        }
        Ok(Key(parts))
    }
}

/// DynamoDB's limit on a partition key's value.
const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB's limit on a sort key's value.
const MAX_SORT_KEY_BYTES: usize = 1024;

/// The inner message of an SNS notification envelope, if `obj` is one.
fn sns_message(obj: &Map<String, Json>) -> Option<&str> {
    if obj.get("Type").and_then(Json::as_str) == Some("Notification")
        && obj.contains_key("TopicArn")
    {
        obj.get("Message").and_then(Json::as_str)
    } else {
        None
    }
}

/// An SNS notification's message attributes as name/value pairs.
fn sns_attributes(obj: &Map<String, Json>) -> Vec<(String, String)> {
    obj.get("MessageAttributes")
        .and_then(Json::as_object)
        .map(|attrs| {
            attrs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.get("Value")?.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn string_field<'a>(
    obj: &'a Map<String, Json>,
    field: &str,
) -> Result<Option<&'a str>, BadMessage> {
    match obj.get(field) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad(format!(
            "field `{field}` is {}, expected a string",
            short(other)
        ))),
    }
}

/// Ids travel in attributes, logs and events: printable, bounded.
fn id_field(obj: &Map<String, Json>, field: &str) -> Result<Option<String>, BadMessage> {
    let Some(id) = string_field(obj, field)? else {
        return Ok(None);
    };
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS {
        return Err(bad(format!(
            "field `{field}` must be 1 to {MAX_ID_CHARS} characters"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(bad(format!("field `{field}` contains control characters")));
    }
    Ok(Some(id.to_owned()))
}

/// A short, printable rendering of a JSON value for a reason.
fn short(v: &Json) -> String {
    let kind = match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    };
    let text = v.to_string();
    if text.len() <= 40 {
        format!("{kind} {}", printable(&text))
    } else {
        kind.to_owned()
    }
}

/// Control characters escaped and length bounded, for reasons and logs.
pub fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_default).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
