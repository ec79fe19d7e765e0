//! Dependency tracking: which caches depend on which entities.
//!
//! A processor may answer `"dependsOn": ["product#A", ...]`. Each such
//! dependency is an **edge** item in the dependency table (configured as
//! `dependencies.table`):
//!
//! | attribute | value |
//! |---|---|
//! | `entity` (partition key, S) | the entity, e.g. `product#A` |
//! | `dependent` (sort key, S) | `{set}\u{1f}{key as JSON}`: one cache |
//! | `key` (M), `set` (S) | the cache's item key and set, to reset it |
//!
//! so "everything that depends on X" is one `Query` on X, paginated for
//! entities with many dependents. The cached item remembers the entities of
//! its last run in `{prefix}_{set}_dependsOn`, so that a later run that no
//! longer reports an entity removes that edge.
//!
//! Ordering keeps a dependency trigger from missing a cache: new edges are
//! written **before** the commit (a crash after them leaves an extra edge,
//! which only costs an extra reset), edges no longer reported are removed
//! **after** it. A trigger of an entity during the run moves the epoch, so
//! the run's commit fails and it recomputes.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use serde_json::Value as Json;

use super::error::TableError;
use crate::aws::OnHeap;
use crate::item::{Item, Key, KeyValue, to_av, to_json};

/// The dependency table.
#[derive(Clone, Debug)]
pub struct Dependencies {
    client: Client,
    table: String,
}

/// One cache that depends on an entity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependent {
    pub key: Key,
    pub set: String,
}

fn dependent_id(key: &Key, set: &str) -> String {
    format!("{set}\u{1f}{}", key.to_json())
}

/// The entities an item's set reported last time (from its `dependsOn`
/// attribute).
pub fn recorded(item: &Item, attr: &str) -> BTreeSet<String> {
    match item.get(attr).map(to_json) {
        Some(Json::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => BTreeSet::new(),
    }
}

impl Dependencies {
    pub fn new(client: Client, table: String) -> Self {
        Dependencies { client, table }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes the edges `entity -> (key, set)` (idempotent).
    pub async fn add(
        &self,
        key: &Key,
        set: &str,
        entities: &BTreeSet<String>,
    ) -> Result<(), TableError> {
        let requests: Vec<WriteRequest> = entities
            .iter()
            .map(|entity| {
                let item = [
                    ("entity".to_string(), AttributeValue::S(entity.clone())),
                    (
                        "dependent".to_string(),
                        AttributeValue::S(dependent_id(key, set)),
                    ),
                    ("key".to_string(), to_av(&key.to_json())),
                    ("set".to_string(), AttributeValue::S(set.to_owned())),
                ]
                .into_iter()
                .collect();
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .expect("item is set"),
                    )
                    .build()
            })
            .collect();
        self.write(requests).await
    }

    /// Removes the edges `entity -> (key, set)`.
    pub async fn remove(
        &self,
        key: &Key,
        set: &str,
        entities: &BTreeSet<String>,
    ) -> Result<(), TableError> {
        let requests: Vec<WriteRequest> = entities
            .iter()
            .map(|entity| {
                let k = [
                    ("entity".to_string(), AttributeValue::S(entity.clone())),
                    (
                        "dependent".to_string(),
                        AttributeValue::S(dependent_id(key, set)),
                    ),
                ]
                .into_iter()
                .collect();
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(k))
                            .build()
                            .expect("key is set"),
                    )
                    .build()
            })
            .collect();
        self.write(requests).await
    }

    /// `BatchWriteItem` in chunks of 25, retrying unprocessed items.
    async fn write(&self, requests: Vec<WriteRequest>) -> Result<(), TableError> {
        for chunk in requests.chunks(25) {
            let mut pending = chunk.to_vec();
            for attempt in 0..8 {
                if pending.is_empty() {
                    break;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending.clone())
                    .send()
                    .on_heap()
                    .await
                    .map_err(|e| self.call_error("BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                }
            }
            if !pending.is_empty() {
                return Err(TableError::Unprocessed {
                    op: "BatchWriteItem",
                    table: self.table.clone(),
                    left: pending.len(),
                });
            }
        }
        Ok(())
    }

    /// Every cache that depends on `entity` (a paginated, strongly
    /// consistent `Query`).
    pub async fn dependents(&self, entity: &str) -> Result<Vec<Dependent>, TableError> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("entity = :e")
            .expression_attribute_values(":e", AttributeValue::S(entity.to_owned()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.call_error("Query", e))?;
        Ok(items.iter().filter_map(parse_dependent).collect())
    }

    fn call_error<E>(&self, op: &'static str, err: E) -> TableError
    where
        aws_sdk_dynamodb::Error: From<E>,
    {
        TableError::Call {
            op,
            table: self.table.clone(),
            source: err.into(),
        }
    }
}

fn parse_dependent(item: &Item) -> Option<Dependent> {
    let set = item.get("set")?.as_s().ok()?.clone();
    let Json::Object(map) = to_json(item.get("key")?) else {
        return None;
    };
    let mut parts: Vec<(String, KeyValue)> = Vec::new();
    for (name, v) in map {
        let value = match v {
            Json::String(s) => KeyValue::S(s),
            Json::Number(n) => KeyValue::N(n.to_string()),
            _ => return None,
        };
        parts.push((name, value));
    }
    Some(Dependent {
        key: Key(parts),
        set,
    })
}
