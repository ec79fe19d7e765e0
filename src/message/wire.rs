//! Native messages as serde types, read the way an internally tagged enum
//! (`#[serde(tag = "type")]`) is, in two passes: [`Head`] reads `v` and
//! `type`, then the form of that type ([`Form`]), whose struct has exactly
//! its fields (`deny_unknown_fields`), reads the rest.
//!
//! The passes run on [`Fields`], a serde map over the JSON object whose
//! error type is [`Problem`]: serde reports a missing or an unknown field
//! by name, as data, and each field's own check (below) writes its reason
//! itself, so `crate::message` words every reason without reading serde's
//! text.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};
use serde_json::{Map, Value as Json};

use super::{MAX_ID_CHARS, printable, short};

/// What was wrong with a native message, as serde found it.
#[derive(Debug, PartialEq)]
pub(super) enum Problem {
    /// A field the form needs is absent.
    Missing(&'static str),
    /// A field the form does not have.
    Unknown(String),
    /// A field's value is wrong; the reason says which and how.
    Reason(String),
}

impl de::Error for Problem {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Problem::Reason(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Problem::Missing(field)
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        Problem::Unknown(field.to_owned())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing(field) => write!(f, "field `{field}` is missing"),
            Problem::Unknown(field) => write!(f, "unknown field `{}`", printable(field)),
            Problem::Reason(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for Problem {}

/// The first pass: the version, and the type that picks the form.
#[derive(Deserialize)]
pub(super) struct Head {
    #[serde(rename = "v", deserialize_with = "version")]
    _version: (),
    /// Read as any JSON so that a wrong version is named before a wrong
    /// type (the version says how to read the rest): [`Kind::of`].
    #[serde(rename = "type")]
    pub(super) kind: Json,
    /// Whether the message names a dependency (whatever its value).
    #[serde(default, deserialize_with = "present")]
    pub(super) dependency: Option<Json>,
}

/// A native message's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Request,
    Trigger,
    TriggerStart,
    TriggerEnd,
}

impl Kind {
    /// The kind a `type` field names, or the reason it names none.
    pub(super) fn of(kind: &Json) -> Result<Kind, String> {
        let Json::String(name) = kind else {
            return Err(format!(
                "field `type` is {}, expected a string",
                short(kind)
            ));
        };
        match name.as_str() {
            "request" => Ok(Kind::Request),
            "trigger" => Ok(Kind::Trigger),
            "trigger_start" => Ok(Kind::TriggerStart),
            "trigger_end" => Ok(Kind::TriggerEnd),
            other => Err(format!(
                "field `type` is `{}`; expected request, trigger, trigger_start or trigger_end",
                printable(other)
            )),
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Trigger => "trigger",
            Kind::TriggerStart => "trigger_start",
            Kind::TriggerEnd => "trigger_end",
        }
    }
}

/// `request`: the item, the set, the producer's request id and the input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Request {
    pub(super) key: Json,
    #[serde(deserialize_with = "set")]
    pub(super) set: String,
    #[serde(rename = "requestId", default, deserialize_with = "request_id")]
    pub(super) request_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(super) input: Option<Json>,
    /// An S3 object that holds the input, for one too large for a message.
    #[serde(rename = "inputRef", default, deserialize_with = "input_ref")]
    pub(super) input_ref: Option<crate::value::ObjectRef>,
    #[serde(default)]
    pub(super) retry: bool,
}

/// `trigger` about an item: the item and the set (`*`: every set).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Trigger {
    pub(super) key: Json,
    #[serde(deserialize_with = "set")]
    pub(super) set: String,
}

/// `trigger_start` and `trigger_end`: the item, the set and the flow.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Flow {
    pub(super) key: Json,
    #[serde(deserialize_with = "set")]
    pub(super) set: String,
    #[serde(rename = "triggerId", deserialize_with = "trigger_id")]
    pub(super) trigger_id: String,
}

/// `trigger` about a dependency: only the entity.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Dependency {
    #[serde(deserialize_with = "dependency")]
    pub(super) dependency: String,
}

/// The form of a native message, by its type.
pub(super) enum Form {
    Request(Request),
    Trigger(Trigger),
    TriggerStart(Flow),
    TriggerEnd(Flow),
    Dependency(Dependency),
}

impl Form {
    /// The second pass: the fields of the form `head` picked.
    pub(super) fn read(
        kind: Kind,
        dependency: bool,
        obj: &Map<String, Json>,
    ) -> Result<Form, Problem> {
        Ok(match kind {
            Kind::Trigger if dependency => Form::Dependency(read(obj)?),
            Kind::Request => Form::Request(read(obj)?),
            Kind::Trigger => Form::Trigger(read(obj)?),
            Kind::TriggerStart => Form::TriggerStart(read(obj)?),
            Kind::TriggerEnd => Form::TriggerEnd(read(obj)?),
        })
    }
}

/// The first pass over `obj`.
pub(super) fn head(obj: &Map<String, Json>) -> Result<Head, Problem> {
    Head::deserialize(Fields::new(obj, &[]))
}

/// A form's fields: all but `v` and `type`, which the head read.
fn read<'a, T: Deserialize<'a>>(obj: &'a Map<String, Json>) -> Result<T, Problem> {
    T::deserialize(Fields::new(obj, &["v", "type"]))
}

fn version<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    match Json::deserialize(d)? {
        Json::Number(n) if n.as_u64() == Some(1) => Ok(()),
        other => Err(de::Error::custom(format!(
            "field `v` is {}, this worker understands version 1",
            short(&other)
        ))),
    }
}

fn string<'de, D: Deserializer<'de>>(field: &str, d: D) -> Result<String, D::Error> {
    match Json::deserialize(d)? {
        Json::String(s) => Ok(s),
        other => Err(de::Error::custom(format!(
            "field `{field}` is {}, expected a string",
            short(&other)
        ))),
    }
}

/// Ids travel in attributes, logs and events: printable, bounded.
fn id<'de, D: Deserializer<'de>>(field: &str, d: D) -> Result<String, D::Error> {
    let id = string(field, d)?;
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS {
        return Err(de::Error::custom(format!(
            "field `{field}` must be 1 to {MAX_ID_CHARS} characters"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(de::Error::custom(format!(
            "field `{field}` contains control characters"
        )));
    }
    Ok(id)
}

fn set<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string("set", d)
}

fn request_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    id("requestId", d).map(Some)
}

fn trigger_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    id("triggerId", d)
}

fn dependency<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    id("dependency", d)
}

/// `inputRef`: `{"bucket": "...", "key": "..."}`, exactly.
fn input_ref<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::value::ObjectRef>, D::Error> {
    let shape = || {
        de::Error::custom(
            "field `inputRef` must be an object with exactly `bucket` and `key`, both non-empty strings: {\"bucket\": \"my-bucket\", \"key\": \"inputs/abc.json\"}",
        )
    };
    let Json::Object(obj) = Json::deserialize(d)? else {
        return Err(shape());
    };
    let field = |name: &str| match obj.get(name) {
        Some(Json::String(s)) if !s.is_empty() && s.len() <= 1024 => Some(s.clone()),
        _ => None,
    };
    match (field("bucket"), field("key"), obj.len()) {
        (Some(bucket), Some(key), 2) => Ok(Some(crate::value::ObjectRef {
            bucket,
            key,
            size: None,
            sha256: None,
        })),
        _ => Err(shape()),
    }
}

/// A field that is there, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

/// A JSON object's fields (but `skip`) as a serde map whose errors are
/// [`Problem`]s.
struct Fields<'a> {
    entries: serde_json::map::Iter<'a>,
    skip: &'static [&'static str],
    value: Option<&'a Json>,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a Map<String, Json>, skip: &'static [&'static str]) -> Self {
        Fields {
            entries: obj.iter(),
            skip,
            value: None,
        }
    }
}

impl<'de> Deserializer<'de> for Fields<'de> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        visitor.visit_map(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for Fields<'de> {
    type Error = Problem;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Problem> {
        for (key, value) in self.entries.by_ref() {
            if self.skip.contains(&key.as_str()) {
                continue;
            }
            self.value = Some(value);
            return seed.deserialize(key.as_str().into_deserializer()).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Problem> {
        match self.value.take() {
            Some(value) => seed.deserialize(Value(value)),
            None => Err(de::Error::custom("a field's value was read twice")),
        }
    }
}

/// One field's value. The field types read it as JSON and write their own
/// reasons, as [`Problem`]s.
struct Value<'a>(&'a Json);

impl<'de> Deserializer<'de> for Value<'de> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        // Reading JSON as JSON cannot fail; any other type's complaint is
        // passed on as it is.
        self.0
            .deserialize_any(visitor)
            .map_err(|e| Problem::Reason(e.to_string()))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
