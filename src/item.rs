//! The DynamoDB item: keys, cache attribute names, and plain-JSON views.
//!
//! Cached values are stored as native DynamoDB maps, lists and scalars (not
//! as JSON strings), so that the user's own tools can read them; this module
//! converts between `serde_json::Value` and `AttributeValue` both ways and
//! estimates item sizes the way DynamoDB counts them.
//!
//! Why by hand and not with `serde_dynamo` (issue 12, point 7): its
//! `AttributeValue` deserializer reads a number as `i64`, else `u64`, else
//! `f64`, so a DynamoDB number JSON cannot hold exactly (38 digits of
//! precision, e.g. `123456789012345678901234567890` or `0.1000000000000000000001`)
//! would come back silently rounded, where [`to_json`] keeps it as its text;
//! and binary values would come back as byte arrays, not base64 text. The
//! conversion is the ~40 lines of [`to_av`] and [`to_json`]; the tests below
//! pin the number semantics.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Number, Value as Json};

use crate::state::{Cache, Field, Val};

/// An item as DynamoDB returns it.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// One key attribute's value: keys are strings or numbers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    S(String),
    /// A number, kept as its decimal text.
    N(String),
}

/// The primary key of an item: the partition key and, if the table has
/// one, the sort key, in that order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub Vec<(String, KeyValue)>);

impl Key {
    pub fn to_item(&self) -> Item {
        self.0
            .iter()
            .map(|(name, v)| {
                let av = match v {
                    KeyValue::S(s) => AttributeValue::S(s.clone()),
                    KeyValue::N(n) => AttributeValue::N(n.clone()),
                };
                (name.clone(), av)
            })
            .collect()
    }

    /// The key as a JSON object, as producers write it and events carry it.
    pub fn to_json(&self) -> Json {
        let mut map = Map::new();
        for (name, v) in &self.0 {
            let j = match v {
                KeyValue::S(s) => Json::String(s.clone()),
                KeyValue::N(n) => n
                    .parse::<Number>()
                    .map(Json::Number)
                    .unwrap_or_else(|_| Json::String(n.clone())),
            };
            map.insert(name.clone(), j);
        }
        Json::Object(map)
    }
}

impl fmt::Display for Key {
    /// `pk=order#123` or `pk=account#9,sk=orders`; used in logs and as the
    /// FIFO message group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match v {
                KeyValue::S(s) | KeyValue::N(s) => write!(f, "{name}={s}")?,
            }
        }
        Ok(())
    }
}

/// Names the cache attributes of one table: `{prefix}_{set}_{field}`.
#[derive(Clone, Debug)]
pub struct Attrs {
    pub prefix: String,
}

impl Attrs {
    pub fn name(&self, set: &str, field: Field) -> String {
        format!("{}_{}_{}", self.prefix, set, field.suffix())
    }

    /// Reads the cache record of `set` from `item`. Attributes of the
    /// wrong type read as absent.
    pub fn cache(&self, item: &Item, set: &str) -> Cache {
        let mut rec = Cache::default();
        // By the item's attributes, not by the names of all fields: no name
        // is built per read, and absent fields stay absent.
        for (name, av) in item {
            let Some(field) = self.field_of(name, set) else {
                continue;
            };
            let val = match field {
                Field::Value | Field::ValueRef => Some(Val::Json(crate::value::decode(av))),
                Field::Answers | Field::Scheduled => Some(Val::Json(to_json(av))),
                Field::Epoch
                | Field::LeaseUntil
                | Field::TriggerDeadline
                | Field::ReadyAt
                | Field::Attempts
                | Field::AnswersOmitted
                | Field::ValueEpoch
                | Field::FailedAt
                | Field::RefreshLease => av
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse::<i64>().ok())
                    .map(Val::Num),
                _ => av.as_s().ok().map(|s| Val::Str(s.clone())),
            };
            rec.put(field, val);
        }
        rec
    }

    /// The field of `set` that the attribute `name` holds, if it is one:
    /// `name` is [`Attrs::name`] of it.
    fn field_of(&self, name: &str, set: &str) -> Option<Field> {
        let suffix = name
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('_')?
            .strip_prefix(set)?
            .strip_prefix('_')?;
        Field::ALL.into_iter().find(|f| f.suffix() == suffix)
    }

    /// Whether `attr` is the value attribute of some set:
    /// `{prefix}_…_value`.
    pub fn is_value_attr(&self, attr: &str) -> bool {
        attr.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with('_'))
            && attr
                .strip_suffix(Field::Value.suffix())
                .is_some_and(|rest| rest.ends_with('_'))
    }

    /// The whole item as plain JSON, compressed values decompressed (what
    /// a processor's job and `inspect` show).
    pub fn item_json(&self, item: &Item) -> Json {
        let mut json = item_to_json(item);
        if let Json::Object(map) = &mut json {
            for (name, av) in item {
                if self.is_value_attr(name) && matches!(av, AttributeValue::B(_)) {
                    map.insert(name.clone(), crate::value::decode(av));
                }
            }
        }
        json
    }
}

/// Converts a stored value to the `AttributeValue` it is stored as.
pub fn val_to_av(val: &Val) -> AttributeValue {
    match val {
        Val::Str(s) => AttributeValue::S(s.clone()),
        Val::Num(n) => AttributeValue::N(n.to_string()),
        Val::Json(j) => to_av(j),
    }
}

/// JSON → DynamoDB: objects become maps, arrays lists, numbers `N`.
pub fn to_av(json: &Json) -> AttributeValue {
    match json {
        Json::Null => AttributeValue::Null(true),
        Json::Bool(b) => AttributeValue::Bool(*b),
        Json::Number(n) => AttributeValue::N(n.to_string()),
        Json::String(s) => AttributeValue::S(s.clone()),
        Json::Array(items) => AttributeValue::L(items.iter().map(to_av).collect()),
        Json::Object(map) => {
            AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_av(v))).collect())
        }
    }
}

/// DynamoDB → JSON. Sets become arrays, binary becomes base64 text, and a
/// number JSON cannot hold exactly stays text.
pub fn to_json(av: &AttributeValue) -> Json {
    match av {
        AttributeValue::S(s) => Json::String(s.clone()),
        AttributeValue::N(n) => number(n),
        AttributeValue::Bool(b) => Json::Bool(*b),
        AttributeValue::Null(_) => Json::Null,
        AttributeValue::L(items) => Json::Array(items.iter().map(to_json).collect()),
        AttributeValue::M(map) => {
            Json::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        AttributeValue::Ss(items) => Json::Array(items.iter().cloned().map(Json::String).collect()),
        AttributeValue::Ns(items) => Json::Array(items.iter().map(|n| number(n)).collect()),
        AttributeValue::B(b) => Json::String(aws_smithy_types::base64::encode(b.as_ref())),
        AttributeValue::Bs(items) => Json::Array(
            items
                .iter()
                .map(|b| Json::String(aws_smithy_types::base64::encode(b.as_ref())))
                .collect(),
        ),
        _ => Json::Null,
    }
}

fn number(n: &str) -> Json {
    if let Ok(i) = n.parse::<i64>() {
        return Json::from(i);
    }
    if let Ok(u) = n.parse::<u64>() {
        return Json::from(u);
    }
    match n.parse::<f64>().ok().and_then(Number::from_f64) {
        Some(f) if f.to_string() == n => Json::Number(f),
        _ => Json::String(n.to_owned()),
    }
}

/// The whole item as plain JSON.
pub fn item_to_json(item: &Item) -> Json {
    let mut map = Map::new();
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    for name in names {
        map.insert(name.clone(), to_json(&item[name]));
    }
    Json::Object(map)
}

/// The size DynamoDB counts for `item`: attribute names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + av_size(v)).sum()
}

/// The size DynamoDB counts for one value (numbers are estimated from
/// their text, which is at least what DynamoDB counts).
pub fn av_size(av: &AttributeValue) -> usize {
    match av {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + av_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + av_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_attribute_values() {
        let v =
            json!({"a": [1, 2.5, "x", null, true], "b": {"c": -7}, "big": 18446744073709551615u64});
        assert_eq!(to_json(&to_av(&v)), v);
    }

    #[test]
    fn numbers_json_cannot_hold_exactly_stay_text() {
        for n in [
            "123456789012345678901234567890",
            "0.1000000000000000000001",
            "1E+2",
        ] {
            assert_eq!(to_json(&AttributeValue::N(n.into())), json!(n), "{n}");
        }
        assert_eq!(
            to_json(&AttributeValue::N("-9223372036854775808".into())),
            json!(i64::MIN)
        );
        assert_eq!(to_json(&AttributeValue::N("2.5".into())), json!(2.5));
        let b = AttributeValue::B(aws_smithy_types::Blob::new(b"hi".to_vec()));
        assert_eq!(to_json(&b), json!("aGk="));
    }

    #[test]
    fn record_reads_fields_and_ignores_wrong_types() {
        let attrs = Attrs {
            prefix: "tc".into(),
        };
        let mut item = Item::new();
        item.insert("tc_s_status".into(), AttributeValue::S("READY".into()));
        item.insert("tc_s_epoch".into(), AttributeValue::N("4".into()));
        item.insert("tc_s_requestId".into(), AttributeValue::N("9".into()));
        item.insert("tc_s_value".into(), to_av(&json!({"x": 1})));
        let rec = attrs.cache(&item, "s");
        assert_eq!(rec.status, Some(crate::state::Status::Ready));
        assert_eq!(rec.epoch, Some(4));
        assert_eq!(rec.request_id, None);
        assert_eq!(rec.value, Some(json!({"x": 1})));
        assert_eq!(attrs.cache(&item, "other"), Cache::default());
    }

    #[test]
    fn item_size_counts_names_and_values() {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::S("abc".into()));
        item.insert("v".into(), to_av(&json!("x".repeat(1000))));
        assert_eq!(item_size(&item), 2 + 3 + 1 + 1000);
    }

    #[test]
    fn key_displays_and_serializes() {
        let key = Key(vec![
            ("pk".into(), KeyValue::S("account#9".into())),
            ("sk".into(), KeyValue::N("12".into())),
        ]);
        assert_eq!(key.to_string(), "pk=account#9,sk=12");
        assert_eq!(key.to_json(), json!({"pk": "account#9", "sk": 12}));
    }
}
