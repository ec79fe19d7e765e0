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
//! field and what was expected. The envelopes a native body may come in (an
//! SNS notification) and the other forms of a body (DynamoDB Stream
//! records) are told apart in `crate::envelope`.

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

pub(crate) fn bad(reason: impl Into<String>) -> BadMessage {
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

/// What a native body stands for (an envelope may also hold stream
/// records: `crate::envelope`).
#[derive(Debug, PartialEq)]
pub enum Native {
    /// A message about one item.
    Message(Message),
    /// `{"v":1,"type":"trigger","dependency":"product#A"}`: reset every
    /// cache that depends on the entity.
    Dependency(String),
}

impl Schema {
    /// Decodes a native message's JSON object.
    pub(crate) fn decode_object(&self, obj: &Map<String, Json>) -> Result<Native, BadMessage> {
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
            return Ok(Native::Dependency(entity));
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
        Ok(Native::Message(Message { key, command }))
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
