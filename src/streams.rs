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

use serde_json::Value as Json;

use crate::item::{Key, KeyValue};
use crate::message::{BadMessage, Command, Message, SetSelector};

mod record;
mod rule;
mod template;

use record::Record;
pub use record::is_stream;
pub use rule::{StreamEvent, StreamRule};
pub use template::Template;

/// The triggers a stream body stands for.
#[derive(Debug, Default, PartialEq)]
pub struct StreamTriggers {
    pub messages: Vec<Message>,
    /// Entities whose dependents are reset.
    pub dependencies: Vec<String>,
    /// Records that matched no rule (dropped).
    pub unmatched: usize,
}

/// Compiled rules: what `Config::validate` returns and the worker maps
/// records with.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// A rule with its templates parsed and its target settled.
#[derive(Clone, Debug)]
struct Rule {
    table: String,
    events: Vec<StreamEvent>,
    when_changed: Vec<String>,
    target: Target,
}

/// What a matching record resets.
#[derive(Clone, Debug)]
enum Target {
    /// Sets of one cache item, whose key attributes the templates render
    /// (in the table's key order).
    Item {
        key: Vec<(String, Template)>,
        sets: Vec<SetSelector>,
    },
    /// Every cache that depends on the entity the template renders.
    Dependents(Template),
}

impl Rules {
    /// Compiles the rules; `key_names` is the cache table's key schema.
    /// Every problem of every rule is listed, with the rule's index.
    pub fn new(rules: &[StreamRule], key_names: &[String]) -> Result<Rules, Vec<(usize, String)>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match compile(r, key_names) {
                Ok(rule) => out.push(rule),
                Err(problems) => errors.extend(problems.into_iter().map(|p| (i, p))),
            }
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
            let record = Record::parse(raw).map_err(|r| BadMessage {
                reason: format!("stream record {n}: {r}"),
            })?;
            let mut matched = false;
            for (i, rule) in self.rules.iter().enumerate() {
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
                match &rule.target {
                    Target::Item { key, sets } => {
                        let mut k = Vec::with_capacity(key.len());
                        for (name, t) in key {
                            let v = t.render(&record).map_err(fail)?;
                            if v.is_empty() {
                                return Err(fail(format!("key attribute {name} renders empty")));
                            }
                            k.push((name.clone(), KeyValue::S(v)));
                        }
                        let key = Key(k);
                        for sets in sets {
                            out.messages.push(Message {
                                key: key.clone(),
                                command: Command::Trigger { sets: sets.clone() },
                            });
                        }
                    }
                    Target::Dependents(t) => {
                        out.dependencies.push(t.render(&record).map_err(fail)?);
                    }
                }
            }
            if !matched {
                out.unmatched += 1;
            }
        }
        Ok(out)
    }
}

/// One rule as written to one target, or every problem it has.
fn compile(r: &StreamRule, key_names: &[String]) -> Result<Rule, Vec<String>> {
    let mut errors = Vec::new();
    let target = match (&r.key, &r.dependency) {
        (Some(map), None) => {
            let mut want: Vec<&String> = key_names.iter().collect();
            want.sort();
            if map.keys().collect::<Vec<_>>() != want {
                errors.push(format!(
                    "key must name exactly the table's key attributes {key_names:?}"
                ));
            }
            let mut key = Vec::new();
            for name in key_names {
                if let Some(t) = map.get(name) {
                    match Template::parse(t) {
                        Ok(t) => key.push((name.clone(), t)),
                        Err(e) => errors.push(e),
                    }
                }
            }
            if r.sets.is_empty() {
                errors.push("names a key but no sets".into());
            }
            let sets = r
                .sets
                .iter()
                .map(|s| match s.as_str() {
                    "*" => SetSelector::All,
                    one => SetSelector::One(one.to_owned()),
                })
                .collect();
            Some(Target::Item { key, sets })
        }
        (None, Some(t)) => Template::parse(t)
            .map_err(|e| errors.push(e))
            .ok()
            .map(Target::Dependents),
        (Some(_), Some(_)) | (None, None) => {
            errors.push("needs exactly one of key (with sets) or dependency".into());
            None
        }
    };
    if r.events.is_empty() {
        errors.push("events is empty".into());
    }
    match target {
        Some(target) if errors.is_empty() => Ok(Rule {
            table: r.table.clone(),
            events: r.events.clone(),
            when_changed: r.when_changed.clone(),
            target,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests;
