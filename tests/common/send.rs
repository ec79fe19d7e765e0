//! What a test puts in: request bodies and keys, sent to the request queue.

use serde_json::{Value as Json, json};
use triggered_cache::item::{Key, KeyValue};

use super::Env;

impl Env {
    pub fn key(pk: &str) -> Key {
        Key(vec![("pk".into(), KeyValue::S(pk.into()))])
    }

    /// Sends one message body; returns its MessageId.
    pub async fn send(&self, body: &Json) -> String {
        self.send_raw(&body.to_string()).await
    }

    pub async fn send_raw(&self, body: &str) -> String {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap()
            .message_id
            .unwrap()
    }

    /// Sends many bodies with SendMessageBatch; returns their MessageIds.
    pub async fn send_many(&self, bodies: &[Json]) -> Vec<String> {
        let mut ids = Vec::new();
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b.to_string())
                        .build()
                        .unwrap()
                })
                .collect::<Vec<_>>();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .unwrap();
            assert!(out.failed.is_empty(), "{:?}", out.failed);
            ids.extend(out.successful.into_iter().map(|s| s.message_id));
        }
        ids
    }

    pub fn request(pk: &str, set: &str) -> Json {
        json!({"v": 1, "type": "request", "key": {"pk": pk}, "set": set})
    }
}
