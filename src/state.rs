//! The triggered-cache state machine, pure.
//!
//! Everything the daemon decides about one cache set of one item lives here:
//! given the [`Record`] as it was read (strongly consistent) and what the
//! message asks for, a `decide_*` function returns a [`Decision`], which
//! carries the single conditional [`Write`] to perform next. Nothing here
//! talks to AWS: the table adapter translates a [`Write`] into one
//! `UpdateItem` (its `ops` become the update expression, its `conds` the
//! condition expression), and [`Record::apply`] gives the same semantics in
//! memory so that the property tests can check the invariants of DESIGN §5
//! against a model of DynamoDB's conditional writes.
//!
//! Why a *fence* of the whole state rather than a version number: the item
//! belongs to the user and carries no version of ours. A claim holds only if
//! status, epoch, owner, lease, trigger flow and awaiting step are all still
//! what was read. Request ids are unique and epochs only grow, so a state can
//! never come back to exactly what was read (no ABA), and of several
//! concurrent claimants that read the same state exactly one wins.

use serde_json::Value as Json;

/// The status of one cache set. An absent status means "never processed"
/// and is treated as [`Status::Stale`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Stale,
    Triggered,
    Processing,
    Ready,
    Failed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Stale,
        Status::Triggered,
        Status::Processing,
        Status::Ready,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stale => "STALE",
            Status::Triggered => "TRIGGERED",
            Status::Processing => "PROCESSING",
            Status::Ready => "READY",
            Status::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One attribute of a cache set. Stored as `{prefix}_{set}_{suffix}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Status,
    Epoch,
    RequestId,
    LeaseUntil,
    TriggerId,
    TriggerDeadline,
    /// The id of the last trigger flow that ended: a redelivered or late
    /// `trigger_start` of it must not start it again.
    EndedTriggerId,
    Awaiting,
    Value,
    ReadyAt,
    Attempts,
    Error,
    /// The SQS MessageId of the message whose run recorded `FAILED`: a
    /// redelivery of that very message is dead-lettered again without a
    /// second run, while any other message (a redrive, a producer's retry
    /// with the same `requestId`) claims and processes. Read only while
    /// `FAILED` (every write of `FAILED` sets it), so a claim leaves it.
    FailedMessageId,
}

impl Field {
    pub const ALL: [Field; 13] = [
        Field::Status,
        Field::Epoch,
        Field::RequestId,
        Field::LeaseUntil,
        Field::TriggerId,
        Field::TriggerDeadline,
        Field::EndedTriggerId,
        Field::Awaiting,
        Field::Value,
        Field::ReadyAt,
        Field::Attempts,
        Field::Error,
        Field::FailedMessageId,
    ];

    /// The attribute name suffix, as in DESIGN §2.
    pub fn suffix(self) -> &'static str {
        match self {
            Field::Status => "status",
            Field::Epoch => "epoch",
            Field::RequestId => "requestId",
            Field::LeaseUntil => "leaseUntil",
            Field::TriggerId => "triggerId",
            Field::TriggerDeadline => "triggerDeadline",
            Field::EndedTriggerId => "endedTriggerId",
            Field::Awaiting => "awaiting",
            Field::Value => "value",
            Field::ReadyAt => "readyAt",
            Field::Attempts => "attempts",
            Field::Error => "error",
            Field::FailedMessageId => "failedMessageId",
        }
    }

    /// The fields whose values together identify the state a claim was
    /// decided on.
    const FENCE: [Field; 6] = [
        Field::Status,
        Field::Epoch,
        Field::RequestId,
        Field::LeaseUntil,
        Field::TriggerId,
        Field::Awaiting,
    ];
}

/// A value written to or compared with a field.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Str(String),
    Num(i64),
    Json(Json),
}

impl From<Status> for Val {
    fn from(s: Status) -> Val {
        Val::Str(s.as_str().to_owned())
    }
}

/// One part of an update.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Set(Field, Val),
    /// `field = if_not_exists(field, 0) + 1`
    Increment(Field),
    Remove(Field),
}

/// One part of a condition; all parts must hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Eq(Field, Val),
    Absent(Field),
    /// The field is absent or holds another value.
    Ne(Field, Val),
}

/// A single conditional write to one cache set. Empty `conds` means
/// unconditional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Write {
    pub ops: Vec<Op>,
    pub conds: Vec<Cond>,
}

/// The cache state of one set of one item, as read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub status: Option<Status>,
    pub epoch: Option<i64>,
    pub request_id: Option<String>,
    pub lease_until: Option<i64>,
    pub trigger_id: Option<String>,
    pub trigger_deadline: Option<i64>,
    pub ended_trigger_id: Option<String>,
    pub awaiting: Option<String>,
    pub value: Option<Json>,
    pub ready_at: Option<i64>,
    pub attempts: Option<i64>,
    pub error: Option<String>,
    pub failed_message_id: Option<String>,
}

impl Record {
    /// The status, with absent read as `STALE`.
    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Stale)
    }

    /// The epoch, with absent read as 0.
    pub fn epoch(&self) -> i64 {
        self.epoch.unwrap_or(0)
    }

    pub fn attempts(&self) -> i64 {
        self.attempts.unwrap_or(0)
    }

    pub fn get(&self, field: Field) -> Option<Val> {
        let s = |v: &Option<String>| v.clone().map(Val::Str);
        let n = |v: &Option<i64>| v.map(Val::Num);
        match field {
            Field::Status => self.status.map(Val::from),
            Field::Epoch => n(&self.epoch),
            Field::RequestId => s(&self.request_id),
            Field::LeaseUntil => n(&self.lease_until),
            Field::TriggerId => s(&self.trigger_id),
            Field::TriggerDeadline => n(&self.trigger_deadline),
            Field::EndedTriggerId => s(&self.ended_trigger_id),
            Field::Awaiting => s(&self.awaiting),
            Field::Value => self.value.clone().map(Val::Json),
            Field::ReadyAt => n(&self.ready_at),
            Field::Attempts => n(&self.attempts),
            Field::Error => s(&self.error),
            Field::FailedMessageId => s(&self.failed_message_id),
        }
    }

    /// Sets a field from a stored value; values of the wrong type are
    /// treated as absent (a user may have written nonsense into our
    /// attributes, and that must not crash the worker).
    pub fn put(&mut self, field: Field, val: Option<Val>) {
        let s = |v: Option<Val>| match v {
            Some(Val::Str(s)) => Some(s),
            _ => None,
        };
        let n = |v: Option<Val>| match v {
            Some(Val::Num(n)) => Some(n),
            _ => None,
        };
        match field {
            Field::Status => self.status = s(val).as_deref().and_then(Status::parse),
            Field::Epoch => self.epoch = n(val),
            Field::RequestId => self.request_id = s(val),
            Field::LeaseUntil => self.lease_until = n(val),
            Field::TriggerId => self.trigger_id = s(val),
            Field::TriggerDeadline => self.trigger_deadline = n(val),
            Field::EndedTriggerId => self.ended_trigger_id = s(val),
            Field::Awaiting => self.awaiting = s(val),
            Field::Value => {
                self.value = match val {
                    Some(Val::Json(j)) => Some(j),
                    Some(Val::Str(s)) => Some(Json::String(s)),
                    Some(Val::Num(n)) => Some(Json::from(n)),
                    None => None,
                }
            }
            Field::ReadyAt => self.ready_at = n(val),
            Field::Attempts => self.attempts = n(val),
            Field::Error => self.error = s(val),
            Field::FailedMessageId => self.failed_message_id = s(val),
        }
    }

    /// Whether every condition of `write` holds on this record.
    pub fn satisfies(&self, conds: &[Cond]) -> bool {
        conds.iter().all(|c| match c {
            Cond::Eq(f, v) => self.get(*f).as_ref() == Some(v),
            Cond::Absent(f) => self.get(*f).is_none(),
            Cond::Ne(f, v) => self.get(*f).as_ref() != Some(v),
        })
    }

    /// Applies `write` with DynamoDB's semantics: all or nothing, only if
    /// the condition holds. Returns whether it was applied.
    pub fn apply(&mut self, write: &Write) -> bool {
        if !self.satisfies(&write.conds) {
            return false;
        }
        for op in &write.ops {
            match op {
                Op::Set(f, v) => self.put(*f, Some(v.clone())),
                Op::Increment(f) => {
                    let cur = match self.get(*f) {
                        Some(Val::Num(n)) => n,
                        _ => 0,
                    };
                    self.put(*f, Some(Val::Num(cur + 1)));
                }
                Op::Remove(f) => self.put(*f, None),
            }
        }
        true
    }

    /// The condition "the state is still what was read".
    pub fn fence(&self) -> Vec<Cond> {
        Field::FENCE
            .iter()
            .map(|f| match self.get(*f) {
                Some(v) => Cond::Eq(*f, v),
                None => Cond::Absent(*f),
            })
            .collect()
    }
}

/// The timing a decision depends on, all in epoch milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock now.
    pub now: i64,
    /// How long a fresh or renewed lease lasts.
    pub lease: i64,
    /// How long past `leaseUntil` (and `triggerDeadline`) a takeover waits,
    /// for clocks that disagree between hosts.
    pub skew: i64,
    /// The set's ttl: `READY` older than this is treated as stale.
    pub ttl: Option<i64>,
}

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
}

fn lease_expired(rec: &Record, clock: &Clock) -> bool {
    rec.lease_until
        .is_none_or(|until| clock.now > until.saturating_add(clock.skew))
}

fn deadline_passed(rec: &Record, clock: &Clock) -> bool {
    rec.trigger_deadline
        .is_none_or(|deadline| clock.now > deadline.saturating_add(clock.skew))
}

fn ttl_expired(rec: &Record, clock: &Clock) -> bool {
    match (clock.ttl, rec.ready_at) {
        (Some(ttl), Some(at)) => clock.now >= at.saturating_add(ttl),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The claim: `PROCESSING` owned by `rid` with a fresh lease, only if the
/// state is still what was read.
fn claim(rec: &Record, rid: &str, clock: &Clock, reason: ClaimReason) -> Decision {
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

/// The condition that `rid` still owns the run for `epoch`.
pub fn owner(rid: &str, epoch: i64) -> Vec<Cond> {
    vec![
        Cond::Eq(Field::Status, Status::Processing.into()),
        Cond::Eq(Field::RequestId, Val::Str(rid.to_owned())),
        Cond::Eq(Field::Epoch, Val::Num(epoch)),
    ]
}

fn continue_run(rec: &Record, rid: &str, clock: &Clock) -> Decision {
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
fn failed_by(rec: &Record, message_id: &str) -> bool {
    rec.failed_message_id.as_deref() == Some(message_id)
}

/// What a `request` with request id `rid`, carried by the SQS message
/// `message_id`, does to the record as read (DESIGN §4, request).
pub fn decide_request(rec: &Record, rid: &str, message_id: &str, clock: &Clock) -> Decision {
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
/// request's.
pub fn decide_trigger_end(rec: &Record, trigger_id: &str, rid: &str, clock: &Clock) -> Decision {
    let own = rec.request_id.as_deref() == Some(rid);
    match rec.status() {
        Status::Processing if own => return continue_run(rec, rid, clock),
        Status::Ready if own => return Decision::Republish(Outcome::Ready),
        // A trigger end's request id is its own MessageId.
        Status::Failed if own && failed_by(rec, rid) => {
            return Decision::Republish(Outcome::Failed);
        }
        Status::Triggered if rec.trigger_id.as_deref() == Some(trigger_id) => {}
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
fn flow_running(rec: &Record, clock: &Clock) -> bool {
    rec.status() == Status::Triggered && rec.trigger_id.is_some() && !deadline_passed(rec, clock)
}

/// `trigger`: epoch + 1 and `STALE`, unconditionally, so that a processing
/// run in flight loses its next renewal or its commit (invariant 2). The
/// one exception: while a trigger flow runs, the cache is already reset and
/// blocked, so the trigger only moves the epoch and the flow (with its
/// parked request) carries on; that write holds only while the flow runs.
pub fn decide_trigger(rec: &Record, clock: &Clock) -> Write {
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
pub fn decide_trigger_start(rec: &Record, trigger_id: &str, deadline: i64) -> Option<Write> {
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
    Write {
        conds: owner(rid, epoch),
        ops: vec![
            Op::Set(Field::Status, Status::Ready.into()),
            Op::Set(Field::Value, Val::Json(value)),
            Op::Set(Field::ReadyAt, Val::Num(now)),
            Op::Remove(Field::LeaseUntil),
            Op::Remove(Field::Error),
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

pub fn classify_rejection(now: &Record, rid: &str, epoch: i64) -> Rejected {
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
