//! Reading the merged configuration into [`Config`](super::Config) with an
//! error type of our own, so that serde says what is wrong as data: a
//! missing or unknown key by name (with the keys it knows), a wrong type as
//! what was found and what was expected, and the full key of where it
//! happened (`sets.summary.processor.url`), collected on the way back up.
//!
//! The `config` crate merges the file and the environment into one tree
//! (read here as JSON). Its own deserializer reports every problem as text
//! only; this one reads the same tree the way it did: a string from the
//! environment reads as a number or a boolean where one is expected, and a
//! number as a string where a string is.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value as Json};

use super::error::ConfigIssue;

/// Reads `T` from the merged tree; a problem names its full key.
pub(super) fn read<T: DeserializeOwned>(tree: &Json) -> Result<T, ConfigIssue> {
    T::deserialize(Tree(tree)).map_err(Problem::into_issue)
}

/// What serde found wrong, and where (the path, innermost segment first
/// while it travels up).
#[derive(Clone, Debug)]
pub(super) struct Problem {
    path: Vec<String>,
    what: What,
}

#[derive(Clone, Debug)]
enum What {
    Missing(&'static str),
    Unknown {
        field: String,
        known: &'static [&'static str],
    },
    WrongType(String),
    Invalid(String),
}

impl Problem {
    fn new(what: What) -> Self {
        Problem { path: vec![], what }
    }

    /// The problem, one level up: inside the value of `segment`.
    fn under(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }

    fn key(&self, field: Option<&str>) -> String {
        let mut key = String::new();
        for segment in self.path.iter().rev().map(String::as_str).chain(field) {
            if !key.is_empty() && !segment.starts_with('[') {
                key.push('.');
            }
            key.push_str(segment);
        }
        key
    }

    fn into_issue(self) -> ConfigIssue {
        match &self.what {
            What::Missing(field) => ConfigIssue::key(self.key(Some(field)), "is missing"),
            What::Unknown { field, known } => ConfigIssue::unknown(self.key(Some(field)), known),
            What::WrongType(problem) => {
                ConfigIssue::key(self.key(None), format!("has the wrong type: {problem}"))
            }
            What::Invalid(problem) => {
                ConfigIssue::key(self.key(None), format!("is invalid: {problem}"))
            }
        }
    }
}

impl de::Error for Problem {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Problem::new(What::Invalid(msg.to_string()))
    }

    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Problem::new(What::WrongType(format!(
            "found {unexpected}, expected {expected}"
        )))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Problem::new(What::Invalid(format!(
            "`{variant}` is not one of {}",
            expected.join(", ")
        )))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Problem::new(What::Unknown {
            field: field.to_owned(),
            known: expected,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        Problem::new(What::Missing(field))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.clone().into_issue())
    }
}

impl std::error::Error for Problem {}

/// A node of the merged tree.
struct Tree<'a>(&'a Json);

/// What a node is, for an error about its type.
fn unexpected(node: &Json) -> Unexpected<'_> {
    match node {
        Json::Null => Unexpected::Unit,
        Json::Bool(b) => Unexpected::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, Some(f)) => Unexpected::Float(f),
            _ => Unexpected::Other("a number"),
        },
        Json::String(s) => Unexpected::Str(s),
        Json::Array(_) => Unexpected::Seq,
        Json::Object(_) => Unexpected::Map,
    }
}

/// A number or a boolean: from the environment, it is a string.
macro_rules! scalar {
    ($($method:ident: $ty:ty => $visit:ident,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
            match self.0 {
                Json::String(s) => match s.trim().parse::<$ty>() {
                    Ok(v) => visitor.$visit(v),
                    Err(_) => Err(de::Error::invalid_type(Unexpected::Str(s), &visitor)),
                },
                _ => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Tree<'de> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(*b),
            Json::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Json::String(s) => visitor.visit_borrowed_str(s),
            Json::Array(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
            }),
            Json::Object(map) => visitor.visit_map(Entries::new(map)),
        }
    }

    scalar! {
        deserialize_bool: bool => visit_bool,
        deserialize_i8: i8 => visit_i8,
        deserialize_i16: i16 => visit_i16,
        deserialize_i32: i32 => visit_i32,
        deserialize_i64: i64 => visit_i64,
        deserialize_u8: u8 => visit_u8,
        deserialize_u16: u16 => visit_u16,
        deserialize_u32: u32 => visit_u32,
        deserialize_u64: u64 => visit_u64,
        deserialize_f32: f32 => visit_f32,
        deserialize_f64: f64 => visit_f64,
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            Json::Number(n) => visitor.visit_string(n.to_string()),
            Json::Bool(b) => visitor.visit_string(b.to_string()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            Json::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Problem> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Problem> {
        match self.0 {
            Json::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct seq tuple tuple_struct map
        struct identifier
    }
}

/// A table's entries; a problem inside a value is placed under its key.
struct Entries<'a> {
    entries: serde_json::map::Iter<'a>,
    value: Option<(&'a String, &'a Json)>,
}

impl<'a> Entries<'a> {
    fn new(map: &'a Map<String, Json>) -> Self {
        Entries {
            entries: map.iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Problem;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Problem> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        seed.deserialize(key.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Problem> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value was read before its key"))?;
        seed.deserialize(Tree(value))
            .map_err(|p| p.under(key.clone()))
    }
}

/// An array's items; a problem inside one is placed under its index.
struct Items<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Json>>,
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Problem;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Problem> {
        match self.items.next() {
            Some((i, item)) => seed
                .deserialize(Tree(item))
                .map(Some)
                .map_err(|p| p.under(format!("[{i}]"))),
            None => Ok(None),
        }
    }
}
