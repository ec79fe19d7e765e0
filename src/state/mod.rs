//! The triggered-cache state machine, pure.
//!
//! Everything the daemon decides about one cache set of one item lives here:
//! given the [`Cache`] as it was read (strongly consistent) and what the
//! message asks for, a `decide_*` function returns a [`Decision`], which
//! carries the single conditional [`Write`] to perform next. Nothing here
//! talks to AWS: the table adapter translates a [`Write`] into one
//! `UpdateItem` (its `ops` become the update expression, its `conds` the
//! condition expression), and [`Cache::apply`] gives the same semantics in
//! memory so that the property tests can check the invariants of DESIGN §5
//! against a model of DynamoDB's conditional writes.
//!
//! Why a *fence* of the whole state rather than a version number: the item
//! belongs to the user and carries no version of ours. A claim holds only if
//! status, epoch, owner, lease, trigger flow and awaiting step are all still
//! what was read. Request ids are unique and epochs only grow, so a state can
//! never come back to exactly what was read (no ABA), and of several
//! concurrent claimants that read the same state exactly one wins.
//!
//! Names: the [`Cache`] is the state of one triggered cache (one set of one
//! item) as read; "record" means the whole item, as DESIGN and the
//! processor's job and the completion events use the word.
//!
//! The module is in three parts, so that each reads on its own:
//! - here, the write model: the fields of a cache set ([`Field`]), the
//!   [`Cache`] as read, a [`Write`] of [`Op`]s under [`Cond`]s, and
//!   [`Cache::apply`], the in-memory model of one conditional write;
//! - `decide.rs`: what a message does to the record as read (the rows of
//!   DESIGN §4), the only place where a claim, a park or a reset is decided;
//! - `writes.rs`: the writes of the owner of a run (renew, commit, retry
//!   later, fail, release), all fenced by owner and epoch, and what a
//!   rejection of one of them means;
//! - `policy.rs`: a set's cache policies (`serve_stale`, `failure_ttl`,
//!   `refresh_after`) on top of the request's decision, and the fenced
//!   writes of a background refresh.
//!
//! Every public item is re-exported here: callers write
//! `state::decide_request`, `state::commit`, not the part it lives in.

mod answers;
mod decide;
mod parked;
mod policy;
mod schedule;
mod writes;

pub use answers::{Listed, clear_answers, leave_listed, listed, park_listed};
pub use decide::{
    ClaimReason, Decision, LeaveReason, Outcome, Run, decide_request, decide_trigger,
    decide_trigger_end, decide_trigger_start, trigger,
};
pub use parked::carry_parked;
pub use policy::{
    Policies, Stale, claim_refresh, commit_refresh, decide_with_policies, hold_refresh,
    release_refresh, renew_refresh, stale_value,
};
pub use schedule::{KEEP_SCHEDULED, applied_epoch, resend_delay, scheduled};
pub use writes::{
    Rejected, backoff, classify_rejection, commit, commit_ref, fail, owner, release, renew,
    retry_later,
};

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
    /// `answer_each_request`: the request ids the next answering event
    /// lists (a list, bounded; `answers.rs`).
    Answers,
    /// `answer_each_request`: how many requests past the bound of
    /// `answers` the next answering event answers by key and set only.
    AnswersOmitted,
    /// The scheduled triggers that took effect last, as `id@epoch`
    /// (a list, bounded; `schedule.rs`): a second copy of one does nothing.
    Scheduled,
    /// The pointer to a value offloaded to S3 (`{bucket, key, size,
    /// sha256}`), stored instead of `value`: a commit sets one and removes
    /// the other.
    ValueRef,
    /// The epoch the stored value was computed for (set by every commit):
    /// after a trigger moved the epoch, the value is an earlier epoch's,
    /// servable only as stale (`serve_stale`, state/policy.rs).
    ValueEpoch,
    /// When `FAILED` was recorded (epoch millis): `failure_ttl` answers
    /// from the item until this plus the ttl.
    FailedAt,
    /// The request id of a background refresh of a `READY` value
    /// (`refresh_after`); the status and the epoch stay as they are.
    RefreshOwner,
    /// Epoch millis; the refresh owner renews it, after it another hit may
    /// start the refresh again.
    RefreshLease,
}

impl Field {
    pub const ALL: [Field; 21] = [
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
        Field::Answers,
        Field::AnswersOmitted,
        Field::Scheduled,
        Field::ValueRef,
        Field::ValueEpoch,
        Field::FailedAt,
        Field::RefreshOwner,
        Field::RefreshLease,
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
            Field::Answers => "answers",
            Field::AnswersOmitted => "answersOmitted",
            Field::Scheduled => "scheduled",
            Field::ValueRef => "valueRef",
            Field::ValueEpoch => "valueEpoch",
            Field::FailedAt => "failedAt",
            Field::RefreshOwner => "refreshOwner",
            Field::RefreshLease => "refreshLease",
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
    /// Appends one value to a list field (created if absent):
    /// `list_append(if_not_exists(field, []), [value])`.
    Append(Field, Val),
}

/// One part of a condition; all parts must hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Eq(Field, Val),
    Absent(Field),
    /// The field is absent or holds another value.
    Ne(Field, Val),
    /// The list field is absent or holds fewer than this many values.
    Shorter(Field, usize),
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
pub struct Cache {
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
    pub answers: Option<Vec<String>>,
    pub answers_omitted: Option<i64>,
    pub scheduled: Option<Vec<String>>,
    /// The pointer to the value in S3, when it was offloaded.
    pub value_ref: Option<Json>,
    pub value_epoch: Option<i64>,
    pub failed_at: Option<i64>,
    pub refresh_owner: Option<String>,
    pub refresh_lease: Option<i64>,
}

impl Cache {
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
            Field::Answers => list(&self.answers),
            Field::AnswersOmitted => n(&self.answers_omitted),
            Field::Scheduled => list(&self.scheduled),
            Field::ValueRef => self.value_ref.clone().map(Val::Json),
            Field::ValueEpoch => n(&self.value_epoch),
            Field::FailedAt => n(&self.failed_at),
            Field::RefreshOwner => s(&self.refresh_owner),
            Field::RefreshLease => n(&self.refresh_lease),
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
            Field::Answers => self.answers = strings(val),
            Field::AnswersOmitted => self.answers_omitted = n(val),
            Field::Scheduled => self.scheduled = strings(val),
            Field::ValueRef => {
                self.value_ref = match val {
                    Some(Val::Json(j)) => Some(j),
                    _ => None,
                }
            }
            Field::ValueEpoch => self.value_epoch = n(val),
            Field::FailedAt => self.failed_at = n(val),
            Field::RefreshOwner => self.refresh_owner = s(val),
            Field::RefreshLease => self.refresh_lease = n(val),
        }
    }

    /// Whether every condition of `write` holds on this record.
    pub fn satisfies(&self, conds: &[Cond]) -> bool {
        conds.iter().all(|c| match c {
            Cond::Eq(f, v) => self.get(*f).as_ref() == Some(v),
            Cond::Absent(f) => self.get(*f).is_none(),
            Cond::Ne(f, v) => self.get(*f).as_ref() != Some(v),
            Cond::Shorter(f, max) => match self.get(*f) {
                Some(Val::Json(Json::Array(l))) => l.len() < *max,
                _ => true,
            },
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
                Op::Append(f, v) => {
                    let mut l = match self.get(*f) {
                        Some(Val::Json(Json::Array(l))) => l,
                        _ => vec![],
                    };
                    l.push(match v {
                        Val::Str(s) => Json::String(s.clone()),
                        Val::Num(n) => Json::from(*n),
                        Val::Json(j) => j.clone(),
                    });
                    self.put(*f, Some(Val::Json(Json::Array(l))));
                }
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

/// A list of strings as stored (a JSON array).
fn list(v: &Option<Vec<String>>) -> Option<Val> {
    v.as_ref()
        .map(|l| Val::Json(Json::Array(l.iter().cloned().map(Json::String).collect())))
}

/// A stored list of strings; anything else reads as absent.
fn strings(v: Option<Val>) -> Option<Vec<String>> {
    match v {
        Some(Val::Json(Json::Array(l))) => Some(
            l.into_iter()
                .filter_map(|j| j.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
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
