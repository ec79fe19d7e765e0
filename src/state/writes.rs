//! The writes of the owner of a processing run, after its claim held.
//!
//! While it runs, commits, retries or gives up, the owner writes only under
//! the condition [`owner`]: still `PROCESSING`, still its request id, still
//! the epoch it claimed. A trigger moves the epoch and a takeover changes
//! the request id, so a run that lost its claim can never overwrite the
//! state (invariant 2, DESIGN §5); [`classify_rejection`] says what such a
//! rejected write means for the message.

use serde_json::Value as Json;

use super::{Cache, Clock, Cond, Field, Op, Status, Val, Write};

/// The condition that `rid` still owns the run for `epoch`.
pub fn owner(rid: &str, epoch: i64) -> Vec<Cond> {
    vec![
        Cond::Eq(Field::Status, Status::Processing.into()),
        Cond::Eq(Field::RequestId, Val::Str(rid.to_owned())),
        Cond::Eq(Field::Epoch, Val::Num(epoch)),
    ]
}

/// The heartbeat's lease renewal; fails once the run was invalidated.
pub fn renew(rid: &str, epoch: i64, clock: &Clock) -> Write {
    Write {
        conds: owner(rid, epoch),
        ops: vec![Op::Set(
            Field::LeaseUntil,
            Val::Num(clock.now + clock.lease),
        )],
    }
}

/// The fenced commit: `READY` with `value`, only if `rid` still owns the
/// run for `epoch` (invariant 2).
pub fn commit(rid: &str, epoch: i64, value: Json, now: i64) -> Write {
    committing(rid, epoch, Field::Value, value, Field::ValueRef, now)
}

/// The fenced commit of a value offloaded to S3: `READY` with the pointer
/// `value_ref` instead of the value. The object was written before, under
/// a key of this run's own; if this write is rejected, nothing refers to it.
pub fn commit_ref(rid: &str, epoch: i64, value_ref: Json, now: i64) -> Write {
    committing(rid, epoch, Field::ValueRef, value_ref, Field::Value, now)
}

fn committing(rid: &str, epoch: i64, set: Field, json: Json, other: Field, now: i64) -> Write {
    Write {
        conds: owner(rid, epoch),
        ops: vec![
            Op::Set(Field::Status, Status::Ready.into()),
            Op::Set(set, Val::Json(json)),
            Op::Remove(other),
            Op::Set(Field::ReadyAt, Val::Num(now)),
            Op::Remove(Field::LeaseUntil),
            Op::Remove(Field::Error),
            // Which epoch the value is (a later trigger leaves it as an
            // earlier epoch's: `serve_stale`); a fresh value needs no
            // background refresh (`refresh_after`).
            Op::Set(Field::ValueEpoch, Val::Num(epoch)),
            Op::Remove(Field::RefreshOwner),
            Op::Remove(Field::RefreshLease),
        ],
    }
}

/// A retryable failure: keep ownership and hold the lease past the backoff
/// so that other requests wait for the owner's redelivery instead of
/// taking over.
pub fn retry_later(rid: &str, epoch: i64, error: &str, hold_until: i64) -> Write {
    Write {
        conds: owner(rid, epoch),
        ops: vec![
            Op::Set(Field::LeaseUntil, Val::Num(hold_until)),
            Op::Set(Field::Error, Val::Str(error.to_owned())),
        ],
    }
}

/// The run failed for good: `FAILED` with the error. The owner and the SQS
/// message that ran it (`message_id`) stay recorded so that a redelivery of
/// that message re-publishes the same `failed` event instead of running
/// again.
pub fn fail(rid: &str, epoch: i64, error: &str, message_id: &str) -> Write {
    Write {
        conds: owner(rid, epoch),
        ops: vec![
            Op::Set(Field::Status, Status::Failed.into()),
            Op::Set(Field::Error, Val::Str(error.to_owned())),
            Op::Set(Field::FailedMessageId, Val::Str(message_id.to_owned())),
            Op::Remove(Field::LeaseUntil),
        ],
    }
}

/// Gives up a lease at once (shutdown), so that the next request or the
/// owner's redelivered message continues without waiting for it to lapse.
pub fn release(rid: &str, epoch: i64) -> Write {
    Write {
        conds: owner(rid, epoch),
        ops: vec![Op::Set(Field::LeaseUntil, Val::Num(0))],
    }
}

/// Why a write by the owner of a run was rejected, from the record as it
/// is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The run was invalidated (a trigger moved the epoch) or otherwise
    /// changed under us: handle the message again from the top.
    Rehandle,
    /// Another request took over after our lease lapsed, in this epoch:
    /// discard our result, delete the message, publish nothing.
    TakenOver,
}

pub fn classify_rejection(now: &Cache, rid: &str, epoch: i64) -> Rejected {
    if now.epoch() == epoch && now.request_id.as_deref().is_some_and(|r| r != rid) {
        Rejected::TakenOver
    } else {
        Rejected::Rehandle
    }
}

/// The delay before a retryable failure is retried: `base * 2^(attempt-1)`,
/// capped.
pub fn backoff(attempt: i64, base_ms: i64, cap_ms: i64) -> i64 {
    let exp = attempt.clamp(1, 32) - 1;
    base_ms.saturating_mul(1i64 << exp).min(cap_ms)
}

// Tests: one per row of DESIGN §4 and the property test against a model of
// conditional writes are in tests/state_model.rs (public API only).
