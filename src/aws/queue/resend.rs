//! What the daemon sends to its own request queue: a scheduled trigger's
//! copy that is not due yet (held back by `DelaySeconds`), and a request
//! that was parked behind a flow a trigger resets (`state/parked.rs`).

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;

use super::{Queue, QueueError, QueueFailure};
use crate::aws::OnHeap;

/// The message attribute that carries a scheduled trigger's id from copy
/// to copy (the MessageId of the first message of the schedule).
pub const SCHEDULE_ID_ATTR: &str = "triggeredCacheScheduleId";

/// SQS's longest `DelaySeconds`.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

impl Queue {
    /// Sends `body` to the request queue, held back for `delay` (rounded
    /// up to whole seconds, at most [`MAX_DELAY`]), with the schedule id
    /// if it is a scheduled trigger's copy. Returns its MessageId.
    pub async fn resend(
        &self,
        body: String,
        delay: Duration,
        schedule_id: Option<&str>,
    ) -> Result<String, QueueError> {
        let secs = (delay.as_millis().div_ceil(1000) as i32).clamp(0, MAX_DELAY.as_secs() as i32);
        let attribute = schedule_id.map(|id| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(id)
                .build()
                .expect("data type is set")
        });
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(secs)
            .set_message_attributes(attribute.map(|a| [(SCHEDULE_ID_ATTR.to_owned(), a)].into()))
            .send()
            .on_heap()
            .await
            .map_err(|e| QueueError {
                op: "SendMessage",
                queue: self.url.clone(),
                source: QueueFailure::call(e),
            })?;
        Ok(out.message_id.unwrap_or_default())
    }
}
