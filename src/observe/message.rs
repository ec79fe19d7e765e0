//! One message's events outside the handler's steps: it cannot be
//! understood, its handling failed, it joined another request's run, a
//! processing run, its completion event.

use std::time::Duration;

use tracing::{debug, warn};

use crate::events::EventKind;
use crate::metrics::{EventLabel, Metrics};

/// Something that happened to one message outside the handler's steps.
pub enum MessageEvent<'a> {
    /// The body cannot be understood: it is dead-lettered with `reason`.
    Malformed { reason: &'a str },
    /// Handling failed (an AWS call, the processor's I/O): the message
    /// comes back after `retry_in`.
    HandlingFailed {
        error: &'a anyhow::Error,
        retry_in: Duration,
    },
    /// A request of `set` joined another request's flight in this process
    /// (counted once per request, however often it joins).
    Coalesced { set: &'a str },
    /// A processing run of `set` started.
    RunStarted { set: &'a str },
    /// A processing run of `set` ended (answered, timed out or stopped).
    RunEnded { set: &'a str, took: Duration },
    /// A completion event went out (`event_id` is its stable eventId).
    Published {
        kind: EventKind,
        set: &'a str,
        event_id: &'a str,
    },
    /// Publishing a completion event failed; its error is logged with the
    /// message's [`MessageEvent::HandlingFailed`].
    PublishFailed,
}

impl MessageEvent<'_> {
    /// Logs the event and counts it.
    pub fn emit(&self, metrics: &Metrics) {
        match self {
            MessageEvent::Malformed { reason } => {
                warn!(reason = %reason, "message cannot be understood; dead-lettering it")
            }
            MessageEvent::HandlingFailed { error, retry_in } => {
                // SNS failures are counted where they happen
                // (`PublishFailed`).
                if let Some(service) = crate::aws::failed_service(error).filter(|s| *s != "sns") {
                    metrics.aws_error(service);
                }
                warn!(error = %format!("{error:#}"), retry_in = ?retry_in, "handling failed; the message will come back");
            }
            MessageEvent::Coalesced { set } => {
                Metrics::inc(&metrics.coalesced, set);
                debug!("coalesced with a request in flight for the same key and set");
            }
            MessageEvent::RunStarted { set } => Metrics::inc(&metrics.processing_runs, set),
            MessageEvent::RunEnded { set, took } => metrics
                .processing_seconds
                .get_or_create(&Metrics::set(set))
                .observe(took.as_secs_f64()),
            MessageEvent::Published {
                kind,
                set,
                event_id,
            } => {
                metrics
                    .events_published
                    .get_or_create(&EventLabel {
                        event: kind.as_str().into(),
                        set: (*set).into(),
                    })
                    .inc();
                debug!(
                    event = kind.as_str(),
                    event_id, "completion event published"
                );
            }
            MessageEvent::PublishFailed => metrics.aws_error("sns"),
        }
    }
}
