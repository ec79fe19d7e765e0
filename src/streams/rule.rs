//! A `[[streams]]` rule as the configuration writes it. The file names the
//! target with one of two keys (`key` with `sets`, or `dependency`), so this
//! form has both; [`super::Rules::new`] turns each rule into one target and
//! refuses a rule with both or neither.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// Every event name: a rule's default.
    pub fn all() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Insert,
            StreamEvent::Modify,
            StreamEvent::Remove,
        ]
    }

    pub(super) fn parse(s: &str) -> Option<StreamEvent> {
        match s {
            "INSERT" => Some(StreamEvent::Insert),
            "MODIFY" => Some(StreamEvent::Modify),
            "REMOVE" => Some(StreamEvent::Remove),
            _ => None,
        }
    }
}

/// One rule mapping stream records to triggers, as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRule {
    /// The source table's name (matched against the record's
    /// `eventSourceARN`).
    pub table: String,
    /// Which event names the rule applies to.
    #[serde(default = "StreamEvent::all")]
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
