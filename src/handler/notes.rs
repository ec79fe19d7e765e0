//! What a handler observed on the way: each [`Note`] is one observable
//! event that the executor logs and counts in one place
//! (`observe/notes.rs`), so a log line and its metric never drift apart.
//! The property test reads the same notes to keep its books.

use crate::state::{ClaimReason, LeaveReason, Outcome};

#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// A request found the cache not valid (counted once per message).
    Miss,
    /// A request was answered from the cache.
    Hit,
    /// A redelivery after the outcome was committed re-publishes its event.
    Republished { epoch: i64, outcome: Outcome },
    /// The message is answered by somebody else's event.
    Left {
        reason: LeaveReason,
        /// The record's owner, parked request and running flow, as read.
        owner: Option<String>,
        awaiting: Option<String>,
        running: Option<String>,
    },
    /// The request parked as the awaiting step of this flow.
    Parked { trigger_id: Option<String> },
    /// A trigger flow ended with nothing parked: the cache is STALE.
    Unblocked,
    /// The owner's request joined this one in-process; going on as it.
    Adopted { owner: String },
    /// A claim's condition failed: the state moved since it was read.
    ClaimLost,
    /// A claim held: a processing run starts.
    ClaimWon {
        epoch: i64,
        reason: ClaimReason,
        /// The record as read before the claim.
        previous_owner: Option<String>,
        lease_until: Option<i64>,
        trigger_id: Option<String>,
    },
    /// A redelivery of the owner's message continues its run.
    Continued { epoch: i64 },
    /// A lease renewal was rejected: the run was invalidated.
    RenewalRejected,
    /// The processor failed (`retryable` or `permanent`).
    ProcessingFailed { kind: &'static str },
    /// A retryable failure: the message comes back after the backoff.
    RetryScheduled {
        attempt: i64,
        max_attempts: u32,
        delay_ms: i64,
        error: String,
    },
    /// The run failed for good: FAILED.
    Failed { epoch: i64, error: String },
    /// The run's value was committed: READY.
    Committed { epoch: i64, attempt: i64 },
    /// Another request took the run over; this one's result is discarded.
    TakenOver { new_owner: Option<String> },
    /// A trigger moved the epoch during the run; its result is discarded.
    StaleResult { epoch: i64, current_epoch: i64 },
    /// The state kept moving under the message; it is left for later.
    KeptMoving { rehandles: u32 },
    /// The run's value was written to S3 before its commit (issue 14).
    Offloaded { epoch: i64 },
    /// `serve_stale`: answered at once with the value of `value_epoch`,
    /// `age_ms` old, marked stale; the normal path runs next.
    ServedStale { value_epoch: i64, age_ms: i64 },
    /// `failure_ttl`: answered with the failure recorded at `failed_at`.
    FailureCached { epoch: i64, failed_at: Option<i64> },
    /// `refresh_after`: this request refreshes the value of `epoch`;
    /// `took_over` names the refresher whose lease had lapsed.
    RefreshStarted {
        epoch: i64,
        took_over: Option<String>,
    },
    /// The refresh committed a new value of the same epoch.
    Refreshed { epoch: i64 },
    /// The refresh failed; the current value stays until its ttl.
    RefreshFailed { error: String },
    /// Another request refreshes, or a trigger won over this refresh (the
    /// record is now at `epoch`, `status`).
    RefreshLost {
        epoch: i64,
        status: crate::state::Status,
    },
}
