//! The pool's events: what the queue brought, and what became of each
//! message on the queue side.

use std::time::Duration;

use tracing::{error, warn};

use tracing::info;

use crate::aws::error_message;
use crate::aws::queue::{QueueError, Received};
use crate::aws::table::TableError;
use crate::item::Key;
use crate::metrics::{KindLabel, Metrics};

/// Something that happened on the queue side of the pool.
pub enum PoolEvent<'a> {
    /// A receive brought `messages` (maybe none) at `now` (ms).
    Received { messages: &'a [Received], now: i64 },
    /// A receive failed; the poller tries again after `retry_in`.
    ReceiveFailed {
        error: &'a QueueError,
        retry_in: Duration,
    },
    /// A poller panicked; a new one starts.
    PollerPanicked,
    /// A message's handler panicked: the message goes back to the queue.
    HandlerPanicked { panic: &'a str },
    /// A message was deleted (answered).
    Deleted,
    /// A delete failed: the message is handled again.
    DeleteFailed { error: &'a QueueError },
    /// Setting a retry's delay failed: the message comes back after its
    /// visibility timeout instead.
    RetryDelayFailed { error: &'a QueueError },
    /// A message went to the DLQ with its `kind` and `reason`, and left
    /// the request queue.
    DeadLettered { kind: &'a str, reason: &'a str },
    /// Dead-lettering failed: the message stays on the queue.
    DeadLetterFailed { error: &'a QueueError },
    /// The heartbeat could not extend a message's visibility.
    VisibilityExtendFailed { error: &'a QueueError },
    /// The heartbeat could not renew a run's lease; it tries again on the
    /// next beat.
    LeaseRenewalFailed { error: &'a TableError },
    /// The lease of a run that did not finish was given up.
    LeaseReleased {
        key: &'a Key,
        set: &'a str,
        rid: &'a str,
    },
    /// Giving up a lease failed: it lapses by itself.
    LeaseReleaseFailed {
        key: &'a Key,
        set: &'a str,
        error: &'a TableError,
    },
}

impl PoolEvent<'_> {
    /// Logs the event and counts it.
    pub fn emit(&self, metrics: &Metrics) {
        match self {
            PoolEvent::Received { messages, now } => {
                metrics.receive_batch_size.observe(messages.len() as f64);
                metrics.received.inc_by(messages.len() as u64);
                for sent_at in messages.iter().filter_map(|m| m.sent_at) {
                    let age_ms = (now - sent_at).max(0);
                    metrics.message_age_seconds.observe(age_ms as f64 / 1000.0);
                }
            }
            PoolEvent::ReceiveFailed { error, retry_in } => {
                metrics.aws_error("sqs");
                warn!(error = %error_message(*error), retry_in = ?retry_in, "receive failed");
            }
            PoolEvent::PollerPanicked => {
                metrics.panics.inc();
                error!("a poller panicked; starting a new one");
            }
            PoolEvent::HandlerPanicked { panic } => {
                metrics.panics.inc();
                error!(
                    panic,
                    "handler panicked; the message goes back to the queue"
                );
            }
            PoolEvent::Deleted => {
                metrics.deleted.inc();
            }
            PoolEvent::DeleteFailed { error } => {
                warn!(error = %error_message(*error), "delete failed; the message will be handled again")
            }
            PoolEvent::RetryDelayFailed { error } => {
                warn!(error = %error_message(*error), "could not set the retry delay; the message comes back after its visibility timeout")
            }
            PoolEvent::DeadLettered { kind, reason } => {
                metrics
                    .dead_lettered
                    .get_or_create(&KindLabel {
                        kind: (*kind).into(),
                    })
                    .inc();
                metrics.deleted.inc();
                warn!(kind, reason = %reason, "message dead-lettered");
            }
            PoolEvent::DeadLetterFailed { error } => {
                warn!(error = %error_message(*error), "dead-lettering failed; the message stays on the queue")
            }
            PoolEvent::VisibilityExtendFailed { error } => {
                metrics.aws_error("sqs");
                warn!(error = %error_message(*error), "could not extend the message's visibility");
            }
            PoolEvent::LeaseRenewalFailed { error } => {
                metrics.aws_error("dynamodb");
                warn!(error = %error_message(*error), "lease renewal failed; retrying on the next heartbeat");
            }
            PoolEvent::LeaseReleased { key, set, rid } => {
                info!(%key, set, request_id = rid, "lease released")
            }
            PoolEvent::LeaseReleaseFailed { key, set, error } => {
                metrics.aws_error("dynamodb");
                warn!(%key, set, error = %error_message(*error), "could not release a lease; it lapses by itself");
            }
        }
    }
}
