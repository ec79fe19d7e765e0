//! The DynamoDB adapter: strongly consistent reads (batched: `reads.rs`),
//! and the state machine's [`Write`]s as single conditional `UpdateItem`
//! calls.
//!
//! A rejected write comes back with the item as it is now
//! (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), so the caller decides
//! again without a second read.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use tracing::Instrument;

use crate::aws::OnHeap;
use crate::batch::{Answering, Batcher, Step};
use crate::item::{Attrs, Item, Key, val_to_av};
use crate::state::{Cond, Field, Op, Val, Write};

pub use super::error::{TableError, is_item_too_large};

mod reads;

/// The user's table, seen through the cache attributes of its items.
#[derive(Clone, Debug)]
pub struct Table {
    client: Client,
    name: String,
    pub attrs: Attrs,
    reads: Batcher<Key, TableError, Item>,
    /// The sets whose values are written compressed (`sets.*.compress`).
    compress: std::sync::Arc<std::collections::BTreeSet<String>>,
}

/// Plain attributes set (or, with `None`, removed) beside a write.
type Plain = Vec<(String, Option<AttributeValue>)>;

/// What an update did.
#[derive(Debug)]
pub enum Updated {
    /// The write held; the item as it is after it.
    Applied(Item),
    /// The condition failed; the item as it is now (empty if it does not
    /// exist).
    Rejected(Item),
}

impl Table {
    /// Must be called inside a tokio runtime (it starts the read batcher).
    pub fn new(client: Client, name: impl Into<String>, attrs: Attrs) -> Self {
        Self::answering(client, name, attrs, None)
    }

    /// Like [`Table::new`], with reads that linger only while messages
    /// counted in `answering` have yet to read ([`crate::batch::Answering`]).
    pub fn answering(
        client: Client,
        name: impl Into<String>,
        attrs: Attrs,
        answering: Option<Answering>,
    ) -> Self {
        let name = name.into();
        let reads = {
            let (client, name) = (client.clone(), name.clone());
            let answering = answering.map(|a| (a, Step::Read));
            Batcher::spawn_answering(
                reads::MAX_KEYS,
                reads::LINGER,
                answering,
                move |keys: Vec<Key>| reads::read(client.clone(), name.clone(), keys),
            )
        };
        Table {
            client,
            name,
            attrs,
            reads,
            compress: Default::default(),
        }
    }

    /// This table, writing the values of `sets` compressed when that makes
    /// them smaller ([`crate::value::encode`]); reads decompress whatever
    /// they find.
    pub fn compressing(mut self, sets: std::collections::BTreeSet<String>) -> Self {
        self.compress = std::sync::Arc::new(sets);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks DynamoDB whether the table answers (`DescribeTable`): the
    /// readiness ping.
    pub async fn ping(&self) -> Result<(), TableError> {
        self.client
            .describe_table()
            .table_name(&self.name)
            .send()
            .on_heap()
            .await
            .map(|_| ())
            .map_err(|e| self.call_error("DescribeTable", e))
    }

    /// Reads the item strongly consistently; a missing item is empty. The
    /// reads of concurrent callers go out together as one `BatchGetItem`
    /// (a read alone as `GetItem`); the span covers the caller's wait.
    pub async fn get(&self, key: &Key) -> Result<Item, TableError> {
        self.reads
            .submit(key.clone())
            .instrument(
                tracing::info_span!("dynamodb.GetItem", otel.kind = "client", table = %self.name),
            )
            .await
    }

    /// Performs the writes to one or more sets of one item as a single
    /// conditional `UpdateItem`.
    pub async fn update(
        &self,
        key: &Key,
        writes: &[(&str, &Write)],
    ) -> Result<Updated, TableError> {
        self.update_with(key, writes, &[]).await
    }

    /// [`Table::update`] that also sets (or, with `None`, removes) plain
    /// attributes outside the state machine, in the same write (the
    /// dependency bookkeeping of a commit).
    pub async fn update_with(
        &self,
        key: &Key,
        writes: &[(&str, &Write)],
        extra: &[(String, Option<AttributeValue>)],
    ) -> Result<Updated, TableError> {
        let expr = if writes.iter().any(|(set, _)| self.compress.contains(*set)) {
            let (writes, extra) = self.compressed(writes, extra);
            let writes: Vec<(&str, &Write)> = writes.iter().map(|(s, w)| (*s, w)).collect();
            let mut expr = Expression::build(&self.attrs, &writes);
            expr.add_plain(&extra);
            expr
        } else {
            let mut expr = Expression::build(&self.attrs, writes);
            expr.add_plain(extra);
            expr
        };
        let mut req = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key.to_item()))
            .update_expression(expr.update)
            .set_expression_attribute_names(Some(expr.names))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !expr.values.is_empty() {
            req = req.set_expression_attribute_values(Some(expr.values));
        }
        if let Some(cond) = expr.condition {
            req = req.condition_expression(cond);
        }
        let span =
            tracing::info_span!("dynamodb.UpdateItem", otel.kind = "client", table = %self.name);
        match req.send().on_heap().instrument(span).await {
            Ok(out) => Ok(Updated::Applied(out.attributes.unwrap_or_default())),
            Err(SdkError::ServiceError(se)) => match se.into_err() {
                UpdateItemError::ConditionalCheckFailedException(e) => {
                    Ok(Updated::Rejected(e.item.unwrap_or_default()))
                }
                other if is_item_too_large(other.code(), other.message()) => Err(
                    TableError::TooLarge(other.message().unwrap_or_default().to_owned()),
                ),
                other => Err(TableError::Call {
                    op: "UpdateItem",
                    table: self.name.clone(),
                    source: other.into(),
                }),
            },
            Err(e) => Err(self.call_error("UpdateItem", e)),
        }
    }

    /// The writes with the values of compressing sets taken out and set,
    /// encoded, as plain attributes.
    fn compressed<'w>(
        &self,
        writes: &[(&'w str, &Write)],
        extra: &[(String, Option<AttributeValue>)],
    ) -> (Vec<(&'w str, Write)>, Plain) {
        let mut extra = extra.to_vec();
        let writes = writes
            .iter()
            .map(|(set, write)| {
                let mut write = (*write).clone();
                if self.compress.contains(*set) {
                    write.ops.retain(|op| match op {
                        Op::Set(Field::Value, Val::Json(v)) => {
                            let av = crate::value::encode(v, true);
                            extra.push((self.attrs.name(set, Field::Value), Some(av)));
                            false
                        }
                        _ => true,
                    });
                }
                (*set, write)
            })
            .collect();
        (writes, extra)
    }

    fn call_error<E>(&self, op: &'static str, err: E) -> TableError
    where
        aws_sdk_dynamodb::Error: From<E>,
    {
        TableError::Call {
            op,
            table: self.name.clone(),
            source: err.into(),
        }
    }
}

/// An update expression with its placeholders.
#[derive(Debug, Default)]
pub struct Expression {
    pub update: String,
    pub condition: Option<String>,
    pub names: std::collections::HashMap<String, String>,
    pub values: std::collections::HashMap<String, AttributeValue>,
}

impl Expression {
    pub fn build(attrs: &Attrs, writes: &[(&str, &Write)]) -> Expression {
        let mut e = Expression::default();
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut conds = Vec::new();
        let mut zero_one = false;
        for (set, write) in writes {
            for op in &write.ops {
                match op {
                    Op::Set(f, v) => {
                        let n = e.name(attrs.name(set, *f));
                        let v = e.value(val_to_av(v));
                        sets.push(format!("{n} = {v}"));
                    }
                    Op::Increment(f) => {
                        let n = e.name(attrs.name(set, *f));
                        zero_one = true;
                        sets.push(format!("{n} = if_not_exists({n}, :zero) + :one"));
                    }
                    Op::Remove(f) => removes.push(e.name(attrs.name(set, *f))),
                    Op::Append(f, v) => {
                        let n = e.name(attrs.name(set, *f));
                        let v = e.value(AttributeValue::L(vec![val_to_av(v)]));
                        let empty = e.value(AttributeValue::L(vec![]));
                        sets.push(format!(
                            "{n} = list_append(if_not_exists({n}, {empty}), {v})"
                        ));
                    }
                }
            }
            for cond in &write.conds {
                match cond {
                    Cond::Eq(f, v) => {
                        let n = e.name(attrs.name(set, *f));
                        let v = e.value(val_to_av(v));
                        conds.push(format!("{n} = {v}"));
                    }
                    Cond::Absent(f) => {
                        let n = e.name(attrs.name(set, *f));
                        conds.push(format!("attribute_not_exists({n})"));
                    }
                    Cond::Ne(f, v) => {
                        let n = e.name(attrs.name(set, *f));
                        let v = e.value(val_to_av(v));
                        conds.push(format!("(attribute_not_exists({n}) OR {n} <> {v})"));
                    }
                    Cond::Shorter(f, max) => {
                        let n = e.name(attrs.name(set, *f));
                        let v = e.value(AttributeValue::N(max.to_string()));
                        conds.push(format!("(attribute_not_exists({n}) OR size({n}) < {v})"));
                    }
                }
            }
        }
        if zero_one {
            e.values
                .insert(":zero".into(), AttributeValue::N("0".into()));
            e.values
                .insert(":one".into(), AttributeValue::N("1".into()));
        }
        let mut update = String::new();
        if !sets.is_empty() {
            update.push_str("SET ");
            update.push_str(&sets.join(", "));
        }
        if !removes.is_empty() {
            if !update.is_empty() {
                update.push(' ');
            }
            update.push_str("REMOVE ");
            update.push_str(&removes.join(", "));
        }
        e.update = update;
        if !conds.is_empty() {
            e.condition = Some(conds.join(" AND "));
        }
        e
    }

    /// Adds plain `SET attr = value` / `REMOVE attr` parts.
    pub fn add_plain(&mut self, extra: &[(String, Option<AttributeValue>)]) {
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        for (attr, value) in extra {
            let n = self.name(attr.clone());
            match value {
                Some(v) => {
                    let v = self.value(v.clone());
                    sets.push(format!("{n} = {v}"));
                }
                None => removes.push(n),
            }
        }
        // Insert into the existing clauses (SET must come before REMOVE).
        let (set_part, remove_part) = match self.update.split_once("REMOVE ") {
            Some((s, r)) => (s.trim().to_string(), r.to_string()),
            None => (self.update.trim().to_string(), String::new()),
        };
        let mut set_items: Vec<String> = set_part
            .strip_prefix("SET ")
            .map(|s| s.split(", ").map(str::to_owned).collect())
            .unwrap_or_default();
        set_items.extend(sets);
        let mut remove_items: Vec<String> = if remove_part.is_empty() {
            vec![]
        } else {
            remove_part.split(", ").map(str::to_owned).collect()
        };
        remove_items.extend(removes);
        let mut update = String::new();
        if !set_items.is_empty() {
            update = format!("SET {}", set_items.join(", "));
        }
        if !remove_items.is_empty() {
            if !update.is_empty() {
                update.push(' ');
            }
            update.push_str(&format!("REMOVE {}", remove_items.join(", ")));
        }
        self.update = update;
    }

    fn name(&mut self, attr: String) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, a)| **a == attr) {
            return placeholder.clone();
        }
        let placeholder = format!("#a{}", self.names.len());
        self.names.insert(placeholder.clone(), attr);
        placeholder
    }

    fn value(&mut self, av: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), av);
        placeholder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{self, Cache, Field, Status, Val};

    #[test]
    fn claim_becomes_one_update_with_the_read_state_as_condition() {
        let attrs = Attrs {
            prefix: "triggeredCache".into(),
        };
        let rec = Cache {
            status: Some(Status::Stale),
            epoch: Some(3),
            ..Cache::default()
        };
        let clock = state::Clock {
            now: 1000,
            lease: 60_000,
            skew: 0,
            ttl: None,
        };
        let state::Decision::Process { write, .. } =
            state::decide_request(&rec, "r1", "r1", &clock)
        else {
            panic!("expected a claim");
        };
        let e = Expression::build(&attrs, &[("summary", &write)]);
        assert!(e.update.starts_with("SET "), "{}", e.update);
        assert!(e.update.contains(" REMOVE "), "{}", e.update);
        let cond = e.condition.unwrap();
        assert_eq!(cond.matches(" AND ").count(), 5, "{cond}");
        assert!(cond.contains("attribute_not_exists("), "{cond}");
        assert!(
            e.names
                .values()
                .any(|n| n == "triggeredCache_summary_status")
        );
        // Each attribute has one placeholder.
        let mut names: Vec<_> = e.names.values().collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), e.names.len());
        let _ = (Field::Status, Val::Num(0));
    }

    #[test]
    fn trigger_on_two_sets_is_one_unconditional_update() {
        let attrs = Attrs {
            prefix: "tc".into(),
        };
        let t = state::trigger();
        let e = Expression::build(&attrs, &[("a", &t), ("b", &t)]);
        assert!(e.condition.is_none());
        assert!(e.update.contains("if_not_exists("));
        assert!(e.names.values().any(|n| n == "tc_a_epoch"));
        assert!(e.names.values().any(|n| n == "tc_b_epoch"));
    }
}
