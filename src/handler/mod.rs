//! The order of the steps that settle one request or trigger end, as pure
//! code: no AWS, no clock of its own, no processor.
//!
//! [`crate::state`] decides what one conditional write does to the record
//! as read. This module decides what happens around it: read first, write
//! the decision, run the processor if the claim holds, commit or retry or
//! fail, publish the completion event, and settle the message. A
//! [`Handler`] is a small state machine: each call to [`Handler::next`]
//! takes the outcome of the last [`Effect`] (an [`Input`]) and returns the
//! next effect, with the [`Note`]s (observable events) it gave rise to.
//!
//! The executor in `worker/execute.rs` carries the effects out against
//! DynamoDB, the processor and SNS; `tests/state_model.rs` carries them out
//! against an in-memory model of conditional writes, so the property test
//! checks this very code. Everything that decides (the `max_attempts` gate,
//! retry or fail, a trigger end becoming its parked request, owner
//! adoption, miss counting) is here, nowhere else.

mod answers;
mod machine;
mod notes;
mod policy;
mod run;
mod store;

use std::time::Duration;

use serde_json::Value as Json;

pub use machine::Handler;
pub use notes::Note;

use crate::config::EventKind;
use crate::processor::{Output, ProcessError};
use crate::state::{Cache, Policies, Stale, Write};

/// What the pool does with a message once its handler returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Answered (or nothing to do): delete it.
    Delete,
    /// Send it to the dead-letter queue with the reason, then delete it.
    DeadLetter { kind: &'static str, reason: String },
    /// Leave it on the queue; it comes back after this delay (retry with
    /// backoff, set through its visibility timeout).
    RetryAfter(Duration),
}

/// The delay before a message whose handling failed (AWS errors) comes
/// back: 1s, 2s, 4s ... 60s by receive count.
pub fn error_backoff(receive_count: u32) -> Duration {
    Duration::from_secs(1u64 << receive_count.clamp(1, 7).saturating_sub(1))
        .min(Duration::from_secs(60))
}

/// The set's settings a handler decides with.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The set's name, for error messages that name its keys.
    pub set: String,
    pub max_attempts: u32,
    pub backoff_base_ms: i64,
    pub backoff_cap_ms: i64,
    /// How many times the state may move under one message before it is
    /// left for later (`worker.max_rehandles`).
    pub max_rehandles: u32,
    /// `answer_each_request`: requests that leave their answer to another
    /// run or to a flow are listed by id on the item, up to this many
    /// (`handler/answers.rs`); `None`: off.
    pub answer_each_request: Option<usize>,
    /// Whether a value is stored ([`Effect::Store`]) before its commit:
    /// the set offloads large values to S3 (`offload_over`).
    pub offload: bool,
    /// The set's cache policies (`serve_stale`, `failure_ttl`,
    /// `refresh_after`); all off by default.
    pub policies: Policies,
}

/// What is being settled.
#[derive(Clone, Debug, PartialEq)]
pub enum Subject {
    /// A request with its request id, carried by the SQS message
    /// `message_id`: with its own `requestId`, a new message (a redrive, a
    /// producer's retry) is told apart from a redelivery of the same one.
    Request {
        rid: String,
        message_id: String,
        input: Option<Json>,
    },
    /// A trigger end; its request id is its MessageId.
    TriggerEnd {
        trigger_id: String,
        message_id: String,
    },
}

/// The outcome of the last effect.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// [`Effect::Read`]: the record as read (absent item: default).
    Read(Cache),
    /// [`Effect::Adopt`]: whether the owner's request joined this one.
    Adopted(bool),
    /// A write ([`Effect::Write`], [`Effect::Commit`]) held; the record
    /// after it.
    Applied(Cache),
    /// A write's condition failed; the record as it is now.
    Rejected(Cache),
    /// [`Effect::Commit`]: the value cannot be stored (the reason).
    TooLarge(String),
    /// [`Effect::Run`]: the processor's answer (a timeout is a retryable
    /// error).
    Ran(Result<Output, ProcessError>),
    /// [`Effect::Run`]: a lease renewal was rejected during the run; the
    /// record as it is now.
    Invalidated(Cache),
    /// [`Effect::Publish`]: the event is out.
    Published,
    /// [`Effect::Store`]: the pointer to the object the value was written
    /// to, or `None` when it is small enough to stay in the item.
    Stored(Option<Json>),
}

/// A completion event to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub kind: EventKind,
    pub request_id: String,
    pub epoch: i64,
    pub value: Option<Json>,
    pub error: Option<String>,
    /// For `failed`: the message whose run recorded the failure.
    pub failed_message_id: Option<String>,
    /// `answer_each_request`: the other requests a `ready` or `failed`
    /// event answers, by id, and how many more by key and set only.
    pub answers: crate::state::Listed,
    /// Where the value is, when it was offloaded to S3: the event carries
    /// this pointer when the value itself does not fit.
    pub value_ref: Option<Json>,
    /// A `hit` with a value of an earlier epoch or past its ttl
    /// (`serve_stale`): rendered `"stale": true`, `valueEpoch`, `ageMs`.
    pub stale: Option<Stale>,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Read the item (strongly consistent).
    Read,
    /// Ask the in-process flight whether the request `owner` (the owner of
    /// the item's run) joined this one: its redelivery after its process
    /// died. If so this handler goes on as the owner.
    Adopt { owner: String },
    /// Perform this conditional write on the set.
    Write(Write),
    /// Run the processor for `epoch` (attempt `attempt`) under lease
    /// renewals by `rid`.
    Run {
        rid: String,
        epoch: i64,
        attempt: i64,
        input: Option<Json>,
    },
    /// Store the value of the run of `rid` at `epoch` before its commit:
    /// in S3 if it is larger than the set's `offload_over` (answered by
    /// [`Input::Stored`]).
    Store {
        rid: String,
        epoch: i64,
        value: Json,
    },
    /// Commit the processor's output with this fenced write (with its
    /// dependency bookkeeping).
    Commit { write: Write, output: Output },
    /// Publish a completion event.
    Publish(Answer),
    /// Run the processor for a background refresh of the `READY` value of
    /// `epoch` (`refresh_after`), under renewals of the refresh lease of
    /// `rid`.
    Refresh {
        rid: String,
        epoch: i64,
        input: Option<Json>,
    },
    /// Settle the message; the handler is done.
    Settle(Disposition),
}

/// The next effect and what was observed on the way to it.
#[derive(Debug)]
pub struct Step {
    pub effect: Effect,
    pub notes: Vec<Note>,
}

#[cfg(test)]
use crate::state::Clock;

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "policy_tests.rs"]
mod policy_tests;
