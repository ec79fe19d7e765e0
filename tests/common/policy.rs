//! What the cache policies' tests do to an item: move one of its cache
//! timestamps into the past (a value or a failure "older" than a policy's
//! duration), with a plain `UpdateItem`, as if that time had passed.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use triggered_cache::clock::now_millis;

use super::Env;

impl Env {
    /// Sets `triggeredCache_{set}_{field}` (a time in epoch millis) to
    /// `ago` before now.
    pub async fn backdate(&self, pk: &str, set: &str, field: &str, ago: Duration) {
        let at = now_millis() - ago.as_millis() as i64;
        self.ddb
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.into()))
            .update_expression("SET #f = :at")
            .expression_attribute_names("#f", format!("triggeredCache_{set}_{field}"))
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
            .send()
            .await
            .unwrap();
    }
}
