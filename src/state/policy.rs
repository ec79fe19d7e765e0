//! The cache policies of a set (DESIGN §9), pure: `serve_stale`,
//! `failure_ttl` and `refresh_after`, all off unless configured.
//!
//! Each is a small change to what [`decide_request`] decides, never a
//! weaker invariant:
//! - **serve_stale** adds nothing to the decision: before it is carried
//!   out, a request that finds the cache invalid may be answered at once
//!   with the value the item still holds ([`stale_value`]), always marked
//!   stale. The value and its epoch (`valueEpoch`, written by every commit)
//!   survive a trigger, which only moves the epoch; the status never says
//!   `READY` for it, so invariant 2 is untouched.
//! - **failure_ttl** turns the claim of a `FAILED` cache into
//!   [`Decision::AnswerFailed`] while the failure is younger than the ttl
//!   (`failedAt`), unless the request asks for a retry. A trigger moves
//!   the status away from `FAILED`, which ends it at once.
//! - **refresh_after** turns a hit on an older value into
//!   [`Decision::Refresh`]: answer the hit, then claim a background refresh
//!   with its own owner and lease (`refreshOwner`, `refreshLease`), fenced
//!   like a claim, so one replica refreshes. Status and epoch do not move;
//!   its commit holds only while the cache is still `READY` at that epoch
//!   with that owner, so a trigger during the refresh wins.

use serde_json::Value as Json;

use super::decide::{ClaimReason, Decision, Run, decide_request};
use super::{Cache, Clock, Cond, Field, Op, Status, Val, Write};

/// A set's cache policies, in milliseconds; `None` = off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policies {
    /// The oldest value answered stale while the cache is invalid.
    pub serve_stale: Option<i64>,
    /// How long a `FAILED` cache answers with its failure.
    pub failure_ttl: Option<i64>,
    /// The age of a `READY` value at which a hit starts a refresh.
    pub refresh_after: Option<i64>,
}

/// How stale a value answered stale is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stale {
    /// The epoch the value was computed for.
    pub value_epoch: i64,
    /// Milliseconds since it was committed.
    pub age_ms: i64,
}

/// What a `request` does with the set's policies: [`decide_request`],
/// with a cached failure answered from the item and a hit on an older
/// value refreshed in the background. `retry`: the request asked for a
/// new run (`"retry": true`, or a `dlq redrive`).
pub fn decide_with_policies(
    rec: &Cache,
    rid: &str,
    message_id: &str,
    clock: &Clock,
    policies: &Policies,
    retry: bool,
) -> Decision {
    let decision = decide_request(rec, rid, message_id, clock);
    match decision {
        Decision::Process {
            run: Run::Claim(ClaimReason::Failed),
            ..
        } if !retry && failure_cached(rec, clock, policies) => Decision::AnswerFailed,
        Decision::Hit => match refresh_due(rec, rid, clock, policies) {
            Some(write) => Decision::Refresh {
                write,
                epoch: rec.epoch(),
            },
            None => Decision::Hit,
        },
        decision => decision,
    }
}

/// Whether a `FAILED` cache still answers with its failure.
fn failure_cached(rec: &Cache, clock: &Clock, policies: &Policies) -> bool {
    match (policies.failure_ttl, rec.failed_at) {
        (Some(ttl), Some(at)) => {
            rec.status() == Status::Failed && clock.now < at.saturating_add(ttl)
        }
        _ => false,
    }
}

/// The value to answer stale before `decision` is carried out, if
/// `serve_stale` allows one: the request is not answered from the cache
/// anyway, and the item holds a value (of an earlier epoch, or past its
/// ttl) no older than the set's `serve_stale`.
pub fn stale_value(
    rec: &Cache,
    decision: &Decision,
    clock: &Clock,
    policies: &Policies,
) -> Option<(Json, Stale)> {
    let max_age = policies.serve_stale?;
    if matches!(
        decision,
        Decision::Hit
            | Decision::Republish(_)
            | Decision::AnswerFailed
            | Decision::Refresh { .. }
            | Decision::Unblock { .. }
    ) {
        return None;
    }
    // An offloaded value (issue 14) is served too: the answer carries its
    // `valueRef` and the event reads it back from S3 (`Json::Null` here).
    let value = rec
        .value
        .clone()
        .or_else(|| rec.value_ref.as_ref().map(|_| Json::Null))?;
    let value_epoch = rec.value_epoch?;
    let age_ms = clock.now.saturating_sub(rec.ready_at?).max(0);
    (age_ms <= max_age && value_epoch <= rec.epoch()).then_some((
        value,
        Stale {
            value_epoch,
            age_ms,
        },
    ))
}

/// The claim of a refresh, if a hit on `rec` is due one: the value is older
/// than `refresh_after` and no other request holds a live refresh lease
/// (a redelivery of the refreshing request claims again).
fn refresh_due(rec: &Cache, rid: &str, clock: &Clock, policies: &Policies) -> Option<Write> {
    let after = policies.refresh_after?;
    if clock.now < rec.ready_at?.saturating_add(after) {
        return None;
    }
    let free = match rec.refresh_owner.as_deref() {
        None => true,
        Some(owner) if owner == rid => true,
        Some(_) => rec
            .refresh_lease
            .is_none_or(|until| clock.now > until.saturating_add(clock.skew)),
    };
    free.then(|| claim_refresh(rec, rid, clock))
}

/// Claims the refresh of the value as read for `rid`: only if the cache,
/// its value and its refresh are still what was read, so of several
/// replicas that read the same hit exactly one refreshes.
pub fn claim_refresh(rec: &Cache, rid: &str, clock: &Clock) -> Write {
    let conds = [
        Field::Status,
        Field::Epoch,
        Field::ReadyAt,
        Field::RefreshOwner,
        Field::RefreshLease,
    ]
    .iter()
    .map(|f| match rec.get(*f) {
        Some(v) => Cond::Eq(*f, v),
        None => Cond::Absent(*f),
    })
    .collect();
    Write {
        conds,
        ops: vec![
            Op::Set(Field::RefreshOwner, Val::Str(rid.to_owned())),
            Op::Set(Field::RefreshLease, Val::Num(clock.now + clock.lease)),
        ],
    }
}

/// The condition that `rid` still refreshes the `READY` value of `epoch`.
fn refresher(rid: &str, epoch: i64) -> Vec<Cond> {
    vec![
        Cond::Eq(Field::Status, Status::Ready.into()),
        Cond::Eq(Field::Epoch, Val::Num(epoch)),
        Cond::Eq(Field::RefreshOwner, Val::Str(rid.to_owned())),
    ]
}

/// The heartbeat's renewal of a refresh lease; fails once a trigger moved
/// the epoch (or the refresh was taken over).
pub fn renew_refresh(rid: &str, epoch: i64, clock: &Clock) -> Write {
    Write {
        conds: refresher(rid, epoch),
        ops: vec![Op::Set(
            Field::RefreshLease,
            Val::Num(clock.now + clock.lease),
        )],
    }
}

/// The fenced commit of a refresh: the new value of the same epoch, still
/// `READY`. The request id becomes the refresher's, so that a redelivery of
/// its message re-publishes the same `ready` event.
pub fn commit_refresh(
    rid: &str,
    epoch: i64,
    value: Json,
    value_ref: Option<Json>,
    now: i64,
) -> Write {
    // The value in the item, or the pointer to it in S3: one, never both.
    let (stored, other) = match value_ref {
        Some(r) => (Op::Set(Field::ValueRef, Val::Json(r)), Field::Value),
        None => (Op::Set(Field::Value, Val::Json(value)), Field::ValueRef),
    };
    Write {
        conds: refresher(rid, epoch),
        ops: vec![
            stored,
            Op::Remove(other),
            Op::Set(Field::ReadyAt, Val::Num(now)),
            Op::Set(Field::ValueEpoch, Val::Num(epoch)),
            Op::Set(Field::RequestId, Val::Str(rid.to_owned())),
            Op::Remove(Field::RefreshOwner),
            Op::Remove(Field::RefreshLease),
        ],
    }
}

/// A refresh failed: the current value stays (until its ttl), and the
/// refresh lease is held until `until`, so that the hits meanwhile do not
/// start one failing refresh each.
pub fn hold_refresh(rid: &str, epoch: i64, until: i64) -> Write {
    Write {
        conds: refresher(rid, epoch),
        ops: vec![Op::Set(Field::RefreshLease, Val::Num(until))],
    }
}

/// Gives up a refresh lease at once (shutdown).
pub fn release_refresh(rid: &str, epoch: i64) -> Write {
    hold_refresh(rid, epoch, 0)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
