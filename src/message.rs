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
//! field and what was expected. The forms are serde types (`wire`: the
//! head, then the form of its type, each with exactly its fields); what
//! only the deployment knows (the table's key, the configured sets) is
//! checked here. The envelopes a native body may come in (an
//! SNS notification) and the other forms of a body (DynamoDB Stream
//! records) are told apart in `crate::envelope`.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json};

use crate::item::{Key, KeyValue};

mod schedule;
mod wire;

pub use schedule::{Due, Schedule, rfc3339};

use wire::{Form, Kind, Problem};

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
        /// Where the input is, when it is too large for a message: read
        /// from S3 (inside `s3.bucket`/`s3.prefix`) and given as `input`.
        input_ref: Option<crate::value::ObjectRef>,
        /// `"retry": true`: a new run even while a recent failure is
        /// cached (`failure_ttl`).
        retry: bool,
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

/// Every field of every native form, for the reason that names an unknown
/// one.
const FIELDS: [&str; 12] = [
    "v",
    "type",
    "key",
    "set",
    "requestId",
    "input",
    "inputRef",
    "retry",
    "triggerId",
    "dependency",
    "at",
    "delay",
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
    /// Decodes a native message's JSON object: the head (`v`, `type`),
    /// the trigger's schedule (`at` or `delay`) if it has one, then the form
    /// of its type (`wire`), then what only the deployment can say (the
    /// key, the sets).
    pub(crate) fn decode_scheduled(
        &self,
        obj: &Map<String, Json>,
    ) -> Result<(Native, Option<Schedule>), BadMessage> {
        let head = wire::head(obj).map_err(|p| self.reason(p, None))?;
        let kind = Kind::of(&head.kind).map_err(bad)?;
        let dependency = kind == Kind::Trigger && head.dependency.is_some();
        // A request has no schedule: its `at` or `delay` is a field that
        // does not belong (the form says so).
        let schedule = match kind {
            Kind::Request => None,
            _ => schedule::take(obj)?,
        };
        let obj = schedule.as_ref().map_or(obj, |s| &s.body);
        let form = Form::read(kind, dependency, obj)
            .map_err(|p| self.reason(p, Some((kind, dependency))))?;
        let native = self.native(form)?;
        Ok((native, schedule))
    }

    fn native(&self, form: Form) -> Result<Native, BadMessage> {
        let (key, command) = match form {
            Form::Dependency(d) => return Ok(Native::Dependency(d.dependency)),
            Form::Request(r) => {
                if r.input.is_some() && r.input_ref.is_some() {
                    return Err(bad(
                        "fields `input` and `inputRef` are both set; send one: `input` inline, or `inputRef` naming an S3 object that holds it",
                    ));
                }
                (
                    r.key,
                    Command::Request {
                        set: self.set(&r.set)?,
                        request_id: r.request_id,
                        input: r.input,
                        input_ref: r.input_ref,
                        retry: r.retry,
                    },
                )
            }
            Form::Trigger(t) => {
                let sets = if t.set == "*" {
                    SetSelector::All
                } else {
                    SetSelector::One(self.set(&t.set)?)
                };
                (t.key, Command::Trigger { sets })
            }
            Form::TriggerStart(f) => (
                f.key,
                Command::TriggerStart {
                    set: self.set(&f.set)?,
                    trigger_id: f.trigger_id,
                },
            ),
            Form::TriggerEnd(f) => (
                f.key,
                Command::TriggerEnd {
                    set: self.set(&f.set)?,
                    trigger_id: f.trigger_id,
                },
            ),
        };
        let key = self.key(&key)?;
        Ok(Native::Message(Message { key, command }))
    }

    /// The reason for what serde found wrong, in the words of the field and
    /// the form (`None` for the head; `(kind, names a dependency)`).
    fn reason(&self, problem: Problem, form: Option<(Kind, bool)>) -> BadMessage {
        bad(match (problem, form) {
            (Problem::Missing("v"), _) => "field `v` is missing (the message version, 1)".into(),
            (Problem::Missing("type"), _) => {
                "field `type` is missing (request, trigger, trigger_start or trigger_end)".into()
            }
            (Problem::Missing("key"), _) => {
                format!("field `key` is missing; expected {}", self.expected_key())
            }
            (Problem::Missing("triggerId"), Some((kind, _))) => format!(
                "field `triggerId` is missing (a `{}` names its flow)",
                kind.as_str()
            ),
            (Problem::Missing(field), _) => format!("field `{field}` is missing"),
            (Problem::Unknown(field), _) if !FIELDS.contains(&field.as_str()) => format!(
                "unknown field `{}`; known fields are {}",
                printable(&field),
                FIELDS.join(", ")
            ),
            (Problem::Unknown(field), Some((_, true))) => format!(
                "field `{field}` does not belong in a dependency trigger (it names only `dependency`)"
            ),
            (Problem::Unknown(field), Some((kind, false))) => format!(
                "field `{field}` does not belong in a `{}` message",
                kind.as_str()
            ),
            (problem, _) => problem.to_string(),
        })
    }

    /// How the key of this table is written, for reasons.
    fn expected_key(&self) -> String {
        match &self.sort_key {
            Some(sk) => format!("{{\"{}\": ..., \"{sk}\": ...}}", self.partition_key),
            None => format!("{{\"{}\": ...}}", self.partition_key),
        }
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

    fn key(&self, key: &Json) -> Result<Key, BadMessage> {
        let expected = self.expected_key();
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

/// A short, printable rendering of a JSON value for a reason.
pub(crate) fn short(v: &Json) -> String {
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

#[cfg(test)]
mod reasons_tests;
