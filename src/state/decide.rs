//! The decisions: what one message does to one cache set, given the record
//! as read (strongly consistent) and the clock.
//!
//! Each `decide_*` function is one message type's row group of DESIGN §4.
//! A decision that changes state carries exactly one conditional [`Write`]:
//! a claim is fenced by the whole state that was read ([`Cache::fence`]),
//! so of several workers that read the same state exactly one wins; a
//! trigger is unconditional, so that it always invalidates a run in flight.
//! Nothing here performs the write or reads the clock: the worker does
//! both, and the property tests apply the same values to an in-memory
//! record.

use super::writes::owner;
use super::{Cache, Clock, Cond, Field, Op, Status, Val, Write};

/// Why a request (or a trigger end) starts a processing run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimReason {
    /// Never processed, or reset by a trigger.
    Stale,
    /// The last run failed; a new request tries again.
    Failed,
    /// `READY`, but older than the set's ttl.
    TtlExpired,
    /// The owner's lease (plus the skew margin) has passed: a takeover.
    LeaseExpired,
    /// A trigger flow never ended and its deadline has passed.
    TriggerDeadlinePassed,
    /// A trigger flow ended and a request was parked.
    TriggerEnded,
}

/// Whether a processing run is a new claim or the owner continuing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    Claim(ClaimReason),
    /// A redelivery of the owner's own message continues its run.
    Continue,
}

/// Why a message is answered by somebody else's event and deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// Another request owns a live processing run; its event answers.
    OwnedElsewhere,
    /// A trigger flow runs and a request is already parked.
    AlreadyParked,
    /// A `trigger_end` whose id does not match the running flow.
    StaleTriggerEnd,
}

/// Which completion event a redelivery re-publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ready,
    Failed,
}

/// What to do next for one message and one set.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The cache is valid: publish a `hit` event and delete the message.
    Hit,
    /// A redelivery after the outcome was committed: re-publish the same
    /// event (same `eventId`).
    Republish(Outcome),
    /// Perform `write`; if it holds, run the processing flow for `epoch`.
    Process { write: Write, epoch: i64, run: Run },
    /// Perform `write` (park as the awaiting step); then delete.
    Park { write: Write },
    /// Perform `write` (a trigger flow ended, nothing parked: `STALE`).
    Unblock { write: Write },
    /// Delete the message; somebody else's event answers it.
    Leave(LeaveReason),
    /// `failure_ttl`: the recorded failure is recent; answer with a
    /// `failed` event from the item and delete, without a run.
    AnswerFailed,
    /// `refresh_after`: publish a `hit`, then perform `write` (the claim of
    /// a background refresh of the value of `epoch`); if it holds, refresh.
    Refresh { write: Write, epoch: i64 },
}

fn lease_expired(rec: &Cache, clock: &Clock) -> bool {
    rec.lease_until
        .is_none_or(|until| clock.now > until.saturating_add(clock.skew))
}

fn deadline_passed(rec: &Cache, clock: &Clock) -> bool {
    rec.trigger_deadline
        .is_none_or(|deadline| clock.now > deadline.saturating_add(clock.skew))
}

fn ttl_expired(rec: &Cache, clock: &Clock) -> bool {
    match (clock.ttl, rec.ready_at) {
        (Some(ttl), Some(at)) => clock.now >= at.saturating_add(ttl),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The claim: `PROCESSING` owned by `rid` with a fresh lease, only if the
/// state is still what was read.
fn claim(rec: &Cache, rid: &str, clock: &Clock, reason: ClaimReason) -> Decision {
    let epoch = rec.epoch();
    let write = Write {
        conds: rec.fence(),
        ops: vec![
            Op::Set(Field::Status, Status::Processing.into()),
            Op::Set(Field::RequestId, Val::Str(rid.to_owned())),
            Op::Set(Field::LeaseUntil, Val::Num(clock.now + clock.lease)),
            Op::Set(Field::Epoch, Val::Num(epoch)),
            Op::Set(Field::Attempts, Val::Num(1)),
            Op::Remove(Field::Error),
            Op::Remove(Field::TriggerId),
            Op::Remove(Field::TriggerDeadline),
            Op::Remove(Field::Awaiting),
        ],
    };
    Decision::Process {
        write,
        epoch,
        run: Run::Claim(reason),
    }
}

fn continue_run(rec: &Cache, rid: &str, clock: &Clock) -> Decision {
    let epoch = rec.epoch();
    Decision::Process {
        write: Write {
            conds: owner(rid, epoch),
            ops: vec![
                Op::Set(Field::LeaseUntil, Val::Num(clock.now + clock.lease)),
                Op::Increment(Field::Attempts),
            ],
        },
        epoch,
        run: Run::Continue,
    }
}

/// Whether the record is `FAILED` by the run of this very SQS message: its
/// redelivery (the worker died between recording the failure and
/// dead-lettering the message) re-publishes the `failed` event. Any other
/// message claims, even with the same request id (DESIGN §4: `FAILED` →
/// claim): a redrive or a producer's retry is a new attempt.
fn failed_by(rec: &Cache, message_id: &str) -> bool {
    rec.failed_message_id.as_deref() == Some(message_id)
}

/// What a `request` with request id `rid`, carried by the SQS message
/// `message_id`, does to the record as read (DESIGN §4, request).
pub fn decide_request(rec: &Cache, rid: &str, message_id: &str, clock: &Clock) -> Decision {
    let own = rec.request_id.as_deref() == Some(rid);
    match rec.status() {
        Status::Ready if own => Decision::Republish(Outcome::Ready),
        Status::Ready if ttl_expired(rec, clock) => claim(rec, rid, clock, ClaimReason::TtlExpired),
        Status::Ready => Decision::Hit,
        Status::Failed if own && failed_by(rec, message_id) => Decision::Republish(Outcome::Failed),
        Status::Failed => claim(rec, rid, clock, ClaimReason::Failed),
        Status::Stale => claim(rec, rid, clock, ClaimReason::Stale),
        Status::Processing if own => continue_run(rec, rid, clock),
        Status::Processing if lease_expired(rec, clock) => {
            claim(rec, rid, clock, ClaimReason::LeaseExpired)
        }
        Status::Processing => Decision::Leave(LeaveReason::OwnedElsewhere),
        Status::Triggered if deadline_passed(rec, clock) => {
            claim(rec, rid, clock, ClaimReason::TriggerDeadlinePassed)
        }
        Status::Triggered if rec.awaiting.is_some() => Decision::Leave(LeaveReason::AlreadyParked),
        Status::Triggered => Decision::Park {
            write: Write {
                conds: rec.fence(),
                ops: vec![Op::Set(Field::Awaiting, Val::Str(rid.to_owned()))],
            },
        },
    }
}

/// What a `trigger_end(trigger_id)` carried by message `rid` does (DESIGN
/// §4, trigger_end). A matching end with a parked request claims the item
/// for `rid` in the same write, so its redeliveries continue like a
/// request's; a redelivery after its run was reset by a trigger finds
/// `endedTriggerId` and is decided as the request it carries.
pub fn decide_trigger_end(rec: &Cache, trigger_id: &str, rid: &str, clock: &Clock) -> Decision {
    let own = rec.request_id.as_deref() == Some(rid);
    match rec.status() {
        Status::Processing if own => return continue_run(rec, rid, clock),
        Status::Ready if own => return Decision::Republish(Outcome::Ready),
        // A trigger end's request id is its own MessageId.
        Status::Failed if own && failed_by(rec, rid) => {
            return Decision::Republish(Outcome::Failed);
        }
        Status::Triggered if rec.trigger_id.as_deref() == Some(trigger_id) => {}
        // This flow already ended: this is a redelivery of the end that
        // ended it (its worker died or its run was retried later, and a
        // trigger may have reset the item since). If it claimed, it carries
        // the parked request, whose answer nothing else owes: handle it as
        // that request. (If it only unblocked, this costs one run nobody
        // waits for; a redelivery is rare.)
        _ if rec.ended_trigger_id.as_deref() == Some(trigger_id) => {
            return decide_request(rec, rid, rid, clock);
        }
        _ => return Decision::Leave(LeaveReason::StaleTriggerEnd),
    }
    let ended = Op::Set(Field::EndedTriggerId, Val::Str(trigger_id.to_owned()));
    if rec.awaiting.is_some() {
        let mut decision = claim(rec, rid, clock, ClaimReason::TriggerEnded);
        if let Decision::Process { write, .. } = &mut decision {
            write.ops.push(ended);
        }
        return decision;
    }
    Decision::Unblock {
        write: Write {
            conds: rec.fence(),
            ops: vec![
                Op::Set(Field::Status, Status::Stale.into()),
                Op::Remove(Field::TriggerId),
                Op::Remove(Field::TriggerDeadline),
                ended,
            ],
        },
    }
}

/// Ops that reset a cache and clear any processing run. The awaiting step
/// is not touched here: a parked request must stay parked until some run
/// answers it.
fn reset_ops(status: Status) -> Vec<Op> {
    vec![
        Op::Increment(Field::Epoch),
        Op::Set(Field::Status, status.into()),
        Op::Remove(Field::RequestId),
        Op::Remove(Field::LeaseUntil),
        Op::Remove(Field::Attempts),
        Op::Remove(Field::Error),
    ]
}

/// Whether a trigger flow is running and still blocks reprocessing.
fn flow_running(rec: &Cache, clock: &Clock) -> bool {
    rec.status() == Status::Triggered && rec.trigger_id.is_some() && !deadline_passed(rec, clock)
}

/// `trigger`: epoch + 1 and `STALE`, unconditionally, so that a processing
/// run in flight loses its next renewal or its commit (invariant 2). The
/// one exception: while a trigger flow runs, the cache is already reset and
/// blocked, so the trigger only moves the epoch and the flow (with its
/// parked request) carries on; that write holds only while the flow runs.
pub fn decide_trigger(rec: &Cache, clock: &Clock) -> Write {
    if flow_running(rec, clock) {
        let tid = rec.trigger_id.clone().unwrap_or_default();
        return Write {
            ops: vec![Op::Increment(Field::Epoch)],
            conds: vec![
                Cond::Eq(Field::Status, Status::Triggered.into()),
                Cond::Eq(Field::TriggerId, Val::Str(tid)),
            ],
        };
    }
    trigger()
}

/// The plain reset of [`decide_trigger`]: epoch + 1, `STALE`, no flow, no
/// owner, nothing parked.
pub fn trigger() -> Write {
    let mut ops = reset_ops(Status::Stale);
    ops.push(Op::Remove(Field::TriggerId));
    ops.push(Op::Remove(Field::TriggerDeadline));
    ops.push(Op::Remove(Field::Awaiting));
    Write { ops, conds: vec![] }
}

/// `trigger_start`: epoch + 1, `TRIGGERED` until `trigger_end` or
/// `deadline`. Unconditional, except that a redelivery of the same start
/// (the flow with this id already runs) changes nothing, which keeps a
/// request that parked meanwhile, and that a start of the flow that ended
/// last (`endedTriggerId`: a redelivery after the end, or a late copy)
/// changes nothing either, also when the end lands between read and write. A request parked in an earlier flow
/// stays parked and is answered when this one ends.
pub fn decide_trigger_start(rec: &Cache, trigger_id: &str, deadline: i64) -> Option<Write> {
    if rec.status() == Status::Triggered && rec.trigger_id.as_deref() == Some(trigger_id) {
        return None;
    }
    if rec.ended_trigger_id.as_deref() == Some(trigger_id) {
        // This flow already ended: the start is a redelivery (its worker
        // died before deleting it) or arrived late. Starting the flow again
        // would block the cache until its deadline.
        return None;
    }
    let mut ops = reset_ops(Status::Triggered);
    ops.push(Op::Set(Field::TriggerId, Val::Str(trigger_id.to_owned())));
    ops.push(Op::Set(Field::TriggerDeadline, Val::Num(deadline)));
    Some(Write {
        ops,
        conds: vec![Cond::Ne(
            Field::EndedTriggerId,
            Val::Str(trigger_id.to_owned()),
        )],
    })
}
