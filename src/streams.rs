//! DynamoDB Stream records as triggers (change data capture).
//!
//! EventBridge Pipes delivers a DynamoDB Stream record to SQS as its JSON
//! (`{"eventName": "MODIFY", "eventSourceARN": "...", "dynamodb": {"Keys":
//! ..., "NewImage": ..., "OldImage": ...}}`), one record per message; a
//! Lambda-style batch `{"Records": [...]}` is accepted too. Rules in the
//! configuration (`[[streams]]`) map records to triggers:
//!
//! ```toml
//! [[streams]]
//! table = "orders"                       # the source table (from eventSourceARN)
//! events = ["MODIFY"]                    # INSERT, MODIFY, REMOVE (default: all)
//! key = { pk = "order#{Keys.orderId}" }  # the cache item's key, by template
//! sets = ["status-view"]                 # or ["*"]
//! when_changed = ["status"]              # only when one of these changed
//!
//! [[streams]]
//! table = "products"
//! dependency = "product#{Keys.sku}"      # reset every cache depending on it
//! ```
//!
//! Templates name `Keys.<attr>`, `NewImage.<attr>`, `OldImage.<attr>` or
//! `Image.<attr>` (new image, else old). A record that matches no rule is
//! counted and dropped; a rule that names an attribute the record does not
//! have dead-letters the record with the reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::item::{Key, KeyValue};
use crate::message::{BadMessage, Command, Message, SetSelector};

/// A stream event name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum StreamEvent {
    #[serde(rename = "INSERT")]
    Insert,
    #[serde(rename = "MODIFY")]
    Modify,
    #[serde(rename = "REMOVE")]
    Remove,
}

impl StreamEvent {
    fn parse(s: &str) -> Option<StreamEvent> {
        match s {
            "INSERT" => Some(StreamEvent::Insert),
            "MODIFY" => Some(StreamEvent::Modify),
            "REMOVE" => Some(StreamEvent::Remove),
            _ => None,
        }
    }
}

fn all_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::Insert,
        StreamEvent::Modify,
        StreamEvent::Remove,
    ]
}

/// One rule mapping stream records to triggers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRule {
    /// The source table's name (matched against the record's
    /// `eventSourceARN`).
    pub table: String,
    /// Which event names the rule applies to.
    #[serde(default = "all_events")]
    pub events: Vec<StreamEvent>,
    /// The key of the cache item to reset: one template per key attribute.
    #[serde(default)]
    pub key: Option<BTreeMap<String, String>>,
    /// The sets to reset (`["*"]` = every set).
    #[serde(default)]
    pub sets: Vec<String>,
    /// Instead of a key: the entity whose dependents are reset.
    #[serde(default)]
    pub dependency: Option<String>,
    /// Only when one of these attributes differs between old and new image.
    #[serde(default)]
    pub when_changed: Vec<String>,
}

/// A template like `order#{Keys.orderId}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Template(Vec<Part>);

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Attr { image: Image, name: String },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Image {
    Keys,
    New,
    Old,
    Either,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("template {text:?} has an unclosed '{{'"))?
                + start;
            let inner = &rest[start + 1..end];
            let (image, name) = inner.split_once('.').ok_or_else(|| {
                format!("template {text:?}: {{{inner}}} must be like {{Keys.name}}")
            })?;
            let image = match image {
                "Keys" => Image::Keys,
                "NewImage" => Image::New,
                "OldImage" => Image::Old,
                "Image" => Image::Either,
                other => {
                    return Err(format!(
                        "template {text:?}: {other} is not Keys, NewImage, OldImage or Image"
                    ));
                }
            };
            if name.is_empty() {
                return Err(format!("template {text:?}: an attribute name is missing"));
            }
            parts.push(Part::Attr {
                image,
                name: name.to_owned(),
            });
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template(parts))
    }

    fn render(&self, record: &Record<'_>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Attr { image, name } => {
                    let v = record.attr(*image, name).ok_or_else(|| {
                        let where_ = match image {
                            Image::Keys => "Keys",
                            Image::New => "NewImage",
                            Image::Old => "OldImage",
                            Image::Either => "NewImage or OldImage",
                        };
                        format!("the record has no {where_}.{name}")
                    })?;
                    out.push_str(
                        &scalar(v).ok_or_else(|| format!("{name} is not a string or number"))?,
                    );
                }
            }
        }
        Ok(out)
    }
}

/// The text of a DynamoDB-JSON scalar (`{"S": "x"}`, `{"N": "1"}`).
fn scalar(v: &Json) -> Option<String> {
    v.get("S")
        .or_else(|| v.get("N"))
        .and_then(Json::as_str)
        .map(str::to_owned)
}

struct Record<'a> {
    event: StreamEvent,
    table: &'a str,
    keys: Option<&'a Json>,
    new: Option<&'a Json>,
    old: Option<&'a Json>,
}

impl<'a> Record<'a> {
    fn attr(&self, image: Image, name: &str) -> Option<&'a Json> {
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

    fn changed(&self, names: &[String]) -> bool {
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

/// The triggers a stream body stands for.
#[derive(Debug, Default, PartialEq)]
pub struct StreamTriggers {
    pub messages: Vec<Message>,
    /// Entities whose dependents are reset.
    pub dependencies: Vec<String>,
    /// Records that matched no rule (dropped).
    pub unmatched: usize,
}

/// Compiled rules.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    rules: Vec<Compiled>,
}

/// A rule with its templates parsed.
#[derive(Clone, Debug)]
struct Compiled {
    rule: StreamRule,
    key: Option<Vec<(String, Template)>>,
    dependency: Option<Template>,
}

impl Rules {
    /// Compiles the rules; `key_names` is the cache table's key schema.
    pub fn new(rules: &[StreamRule], key_names: &[String]) -> Result<Rules, Vec<(usize, String)>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let key = match &r.key {
                Some(map) => {
                    let names: Vec<&String> = map.keys().collect();
                    let mut want: Vec<&String> = key_names.iter().collect();
                    want.sort();
                    if names != want {
                        errors.push((
                            i,
                            format!(
                                "key must name exactly the table's key attributes {key_names:?}"
                            ),
                        ));
                    }
                    let mut parts = Vec::new();
                    for name in key_names {
                        if let Some(t) = map.get(name) {
                            match Template::parse(t) {
                                Ok(t) => parts.push((name.clone(), t)),
                                Err(e) => errors.push((i, e)),
                            }
                        }
                    }
                    Some(parts)
                }
                None => None,
            };
            let dependency = match &r.dependency {
                Some(t) => match Template::parse(t) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        errors.push((i, e));
                        None
                    }
                },
                None => None,
            };
            match (&r.key, &r.dependency) {
                (Some(_), Some(_)) | (None, None) => errors.push((
                    i,
                    "needs exactly one of key (with sets) or dependency".into(),
                )),
                (Some(_), None) if r.sets.is_empty() => {
                    errors.push((i, "names a key but no sets".into()))
                }
                _ => {}
            }
            if r.events.is_empty() {
                errors.push((i, "events is empty".into()));
            }
            out.push(Compiled {
                rule: r.clone(),
                key,
                dependency,
            });
        }
        if errors.is_empty() {
            Ok(Rules { rules: out })
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Maps a stream body (one record or `{"Records": [...]}`) to triggers.
    pub fn map(&self, body: &Json) -> Result<StreamTriggers, BadMessage> {
        let records: Vec<&Json> = match body.get("Records") {
            Some(Json::Array(items)) => items.iter().collect(),
            _ => vec![body],
        };
        let mut out = StreamTriggers::default();
        for (n, raw) in records.into_iter().enumerate() {
            let record = parse_record(raw).map_err(|r| BadMessage {
                reason: format!("stream record {n}: {r}"),
            })?;
            let mut matched = false;
            for (
                i,
                Compiled {
                    rule,
                    key,
                    dependency,
                },
            ) in self.rules.iter().enumerate()
            {
                if rule.table != record.table || !rule.events.contains(&record.event) {
                    continue;
                }
                if !rule.when_changed.is_empty() && !record.changed(&rule.when_changed) {
                    continue;
                }
                matched = true;
                let fail = |e: String| BadMessage {
                    reason: format!("stream record {n}, rule {i} (table {}): {e}", rule.table),
                };
                if let Some(parts) = key {
                    let mut k = Vec::new();
                    for (name, t) in parts {
                        let v = t.render(&record).map_err(fail)?;
                        if v.is_empty() {
                            return Err(fail(format!("key attribute {name} renders empty")));
                        }
                        k.push((name.clone(), KeyValue::S(v)));
                    }
                    let key = Key(k);
                    for set in &rule.sets {
                        let sets = if set == "*" {
                            SetSelector::All
                        } else {
                            SetSelector::One(set.clone())
                        };
                        out.messages.push(Message {
                            key: key.clone(),
                            command: Command::Trigger { sets },
                        });
                    }
                }
                if let Some(t) = dependency {
                    out.dependencies.push(t.render(&record).map_err(fail)?);
                }
            }
            if !matched {
                out.unmatched += 1;
            }
        }
        Ok(out)
    }
}

fn parse_record(raw: &Json) -> Result<Record<'_>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(event: &str, new_status: &str, old_status: &str) -> Json {
        json!({
            "eventID": "1", "eventName": event, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-23T00:00:00.000",
            "dynamodb": {
                "Keys": {"orderId": {"S": "17"}},
                "NewImage": {"orderId": {"S": "17"}, "status": {"S": new_status}, "total": {"N": "5"}},
                "OldImage": {"orderId": {"S": "17"}, "status": {"S": old_status}, "total": {"N": "4"}},
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            }
        })
    }

    fn rules() -> Rules {
        let r: Vec<StreamRule> = toml::from_str::<BTreeMap<String, Vec<StreamRule>>>(
            r#"
            [[streams]]
            table = "orders"
            key = { pk = "order#{Keys.orderId}" }
            sets = ["summary"]
            [[streams]]
            table = "orders"
            events = ["MODIFY"]
            key = { pk = "order#{Keys.orderId}" }
            sets = ["status-view"]
            when_changed = ["status"]
            [[streams]]
            table = "products"
            dependency = "product#{Image.sku}"
            "#,
        )
        .unwrap()
        .remove("streams")
        .unwrap();
        Rules::new(&r, &["pk".to_string()]).unwrap()
    }

    fn sets(t: &StreamTriggers) -> Vec<String> {
        t.messages
            .iter()
            .map(|m| match &m.command {
                Command::Trigger {
                    sets: SetSelector::One(s),
                } => format!("{}:{s}", m.key),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_status_change_resets_both_sets_and_another_change_only_summary() {
        let t = rules().map(&record("MODIFY", "shipped", "paid")).unwrap();
        assert_eq!(
            sets(&t),
            vec!["pk=order#17:summary", "pk=order#17:status-view"]
        );
        let t = rules().map(&record("MODIFY", "paid", "paid")).unwrap();
        assert_eq!(sets(&t), vec!["pk=order#17:summary"]);
    }

    #[test]
    fn a_batch_maps_every_record_and_counts_the_unmatched() {
        let mut other = record("INSERT", "new", "new");
        other["eventSourceARN"] = json!("arn:aws:dynamodb:us-east-1:1:table/unrelated/stream/x");
        let body = json!({"Records": [record("INSERT", "new", "new"), other]});
        assert!(is_stream(&body));
        let t = rules().map(&body).unwrap();
        assert_eq!(sets(&t), vec!["pk=order#17:summary"]);
        assert_eq!(t.unmatched, 1);
    }

    #[test]
    fn a_dependency_rule_names_the_entity() {
        let body = json!({"eventName": "REMOVE", "eventSource": "aws:dynamodb",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/products/stream/x",
            "dynamodb": {"Keys": {"id": {"S": "9"}}, "OldImage": {"sku": {"S": "A-1"}}}});
        let t = rules().map(&body).unwrap();
        assert_eq!(t.dependencies, vec!["product#A-1".to_string()]);
    }

    #[test]
    fn a_rule_naming_a_missing_attribute_is_an_error_with_the_reason() {
        let mut r = record("INSERT", "x", "x");
        r["dynamodb"]["Keys"] = json!({"other": {"S": "1"}});
        r["dynamodb"]["NewImage"] = json!({});
        r["dynamodb"]["OldImage"] = json!({});
        let err = rules().map(&r).unwrap_err();
        assert!(err.reason.contains("no Keys.orderId"), "{}", err.reason);
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(Template::parse("x{Keys.a").is_err());
        assert!(Template::parse("{Foo.a}").is_err());
        let bad = StreamRule {
            table: "t".into(),
            events: all_events(),
            key: Some(BTreeMap::from([(
                "id".to_string(),
                "{Keys.id}".to_string(),
            )])),
            sets: vec!["s".into()],
            dependency: None,
            when_changed: vec![],
        };
        let errs = Rules::new(&[bad], &["pk".to_string()]).unwrap_err();
        assert!(errs[0].1.contains("key attributes"), "{errs:?}");
    }
}
