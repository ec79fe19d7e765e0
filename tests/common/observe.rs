//! What a test reads back: the item and its cache record, completion events,
//! the DLQ and queue depths. Every wait has a deadline and polls; none
//! sleeps a fixed time and hopes.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value as Json;
use triggered_cache::item::{Attrs, Item};
use triggered_cache::state::Cache;

use super::Env;

impl Env {
    /// Reads the item.
    pub async fn item(&self, pk: &str) -> Item {
        self.ddb
            .get_item()
            .table_name(&self.name)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default()
    }

    pub async fn cache(&self, pk: &str, set: &str) -> Cache {
        Attrs {
            prefix: "triggeredCache".into(),
        }
        .cache(&self.item(pk).await, set)
    }

    pub async fn scan_count(&self) -> i32 {
        self.ddb
            .scan()
            .table_name(&self.name)
            .send()
            .await
            .unwrap()
            .count
    }

    /// Pulls what has arrived on the events queue into `self.events`.
    pub async fn pull_events(&self) {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.events_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let body: Json = serde_json::from_str(m.body.as_deref().unwrap_or("null")).unwrap();
            self.events.lock().unwrap().push(body);
            self.sqs
                .delete_message()
                .queue_url(&self.events_url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    /// Waits until `pred` holds for the events received so far.
    pub async fn wait_events(
        &self,
        what: &str,
        deadline: Duration,
        pred: impl Fn(&[Json]) -> bool,
    ) -> Vec<Json> {
        let until = Instant::now() + deadline;
        loop {
            {
                let evs = self.events.lock().unwrap();
                if pred(&evs) {
                    return evs.clone();
                }
            }
            if Instant::now() > until {
                panic!(
                    "timed out waiting for {what}; events so far: {:#?}",
                    self.events.lock().unwrap()
                );
            }
            self.pull_events().await;
        }
    }

    /// Events of a kind seen so far.
    pub fn events_of(&self, kind: &str) -> Vec<Json> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == kind)
            .cloned()
            .collect()
    }

    /// Waits until the DLQ holds `n` messages; returns (body, attributes).
    pub async fn wait_dlq(
        &self,
        n: usize,
        deadline: Duration,
    ) -> Vec<(String, BTreeMap<String, String>)> {
        let until = Instant::now() + deadline;
        let mut got = Vec::new();
        while got.len() < n {
            assert!(
                Instant::now() < until,
                "timed out waiting for {n} DLQ messages; got {got:#?}"
            );
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            for m in out.messages.unwrap_or_default() {
                let attrs = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                    .collect();
                got.push((m.body.unwrap_or_default(), attrs));
                self.sqs
                    .delete_message()
                    .queue_url(&self.dlq_url)
                    .receipt_handle(m.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        got
    }

    /// Visible plus in-flight messages of the request queue.
    pub async fn queue_depth(&self) -> (i64, i64) {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes.unwrap_or_default();
        let get = |k: QueueAttributeName| attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Visible messages of the DLQ (none is received).
    pub async fn dlq_depth(&self) -> i64 {
        self.sqs
            .get_queue_attributes()
            .queue_url(&self.dlq_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default()
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until the request queue is empty (every message deleted).
    pub async fn wait_queue_empty(&self, deadline: Duration) {
        wait_until("the request queue to be empty", deadline, || async {
            self.queue_depth().await == (0, 0)
        })
        .await;
    }
}

/// Polls `cond` until it holds or the deadline passes.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    while !cond().await {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
