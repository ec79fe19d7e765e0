//! Answers by request id (`answer_each_request`, DESIGN §9): the requests
//! an answering event lists besides its own.
//!
//! A request that leaves its answer to another run (it finds the key
//! `PROCESSING`, loses a claim and then finds it so, or its run was taken
//! over) or to a trigger flow (it parks, or finds a request parked) adds
//! its id to a bounded list on the item, `answers`. The `ready` or
//! `failed` event that answers the key lists them all; past the bound the
//! write counts the request in `answersOmitted` instead, and the event
//! says how many it answers by key and set only.
//!
//! Every addition is one conditional write, like every other: it holds
//! only while the run (owner and epoch) or the flow (the state as read)
//! it counts on is still there, so an id is never added to a list that no
//! event will answer; if it fails, the request decides again on the record
//! as it is now (a hit, a claim, or another addition). The list is not
//! part of the claim's fence: adding to it changes no state a claim
//! decides on, so of concurrent claimants exactly one still wins.
//!
//! When the list is cleared: not by a claim, a trigger or a commit, since
//! a run that is invalidated (a trigger moves the epoch, another request
//! claims) is answered by the next run of the key, whose event must still
//! list the ids added meanwhile. The list is cleared by the one who
//! published an event listing it, after the event is out, and only if it
//! is still exactly what the event listed ([`clear_answers`]); ids added
//! after that stay for the next event. A crash before the clear leaves
//! ids that a later event lists again: a duplicate answer, never a lost
//! one.

use super::writes::owner;
use super::{Cache, Cond, Field, LeaveReason, Op, Val, Write};

/// What an answering event lists: the request ids and how many more it
/// answers by key and set only.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listed {
    pub ids: Vec<String>,
    pub omitted: i64,
}

impl Listed {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.omitted == 0
    }
}

/// What the record lists for the next answering event.
pub fn listed(rec: &Cache) -> Listed {
    Listed {
        ids: rec.answers.clone().unwrap_or_default(),
        omitted: rec.answers_omitted.unwrap_or(0),
    }
}

/// The ops that add `rid` to the list (or count it past `bound`), with the
/// condition that keeps the bound; `None` if `rid` is listed already (a
/// redelivery of a request that added itself).
fn add(rec: &Cache, rid: &str, bound: usize) -> Option<(Op, Option<Cond>)> {
    let ids = rec.answers.as_deref().unwrap_or_default();
    if ids.iter().any(|r| r == rid) {
        return None;
    }
    Some(if ids.len() < bound {
        (
            Op::Append(Field::Answers, Val::Str(rid.to_owned())),
            Some(Cond::Shorter(Field::Answers, bound)),
        )
    } else {
        (Op::Increment(Field::AnswersOmitted), None)
    })
}

/// The write by which a request that leaves its answer to somebody else
/// (`reason`) adds itself to the list: it holds only while the owner's run
/// of the epoch as read goes on (`OwnedElsewhere`), or while the trigger
/// flow with its parked request is as read (`AlreadyParked`). `None`: the
/// request is listed already, or the reason is not a request's.
pub fn leave_listed(rec: &Cache, rid: &str, reason: LeaveReason, bound: usize) -> Option<Write> {
    let mut conds = match reason {
        LeaveReason::OwnedElsewhere => owner(rec.request_id.as_deref()?, rec.epoch()),
        LeaveReason::AlreadyParked => rec.fence(),
        LeaveReason::StaleTriggerEnd => return None,
    };
    let (op, cond) = add(rec, rid, bound)?;
    conds.extend(cond);
    Some(Write {
        ops: vec![op],
        conds,
    })
}

/// A park (`write`, fenced by the state as read) that also lists the
/// parked request: the event of the run that the flow's end starts (under
/// the trigger end's own id) answers it by its id too.
pub fn park_listed(rec: &Cache, rid: &str, bound: usize, mut write: Write) -> Write {
    if let Some((op, cond)) = add(rec, rid, bound) {
        write.ops.push(op);
        write.conds.extend(cond);
    }
    write
}

/// Clears what an event listed once it is out: only if the list is still
/// exactly that, so that ids added since stay for the next event.
pub fn clear_answers(listed: &Listed) -> Write {
    let ids = Val::Json(serde_json::json!(listed.ids));
    Write {
        ops: vec![
            Op::Remove(Field::Answers),
            Op::Remove(Field::AnswersOmitted),
        ],
        conds: vec![
            if listed.ids.is_empty() {
                Cond::Absent(Field::Answers)
            } else {
                Cond::Eq(Field::Answers, ids)
            },
            if listed.omitted == 0 {
                Cond::Absent(Field::AnswersOmitted)
            } else {
                Cond::Eq(Field::AnswersOmitted, Val::Num(listed.omitted))
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Status;

    fn processing() -> Cache {
        Cache {
            status: Some(Status::Processing),
            epoch: Some(2),
            request_id: Some("owner".into()),
            lease_until: Some(10),
            ..Cache::default()
        }
    }

    #[test]
    fn a_request_that_leaves_is_listed_while_the_owners_run_goes_on() {
        let mut rec = processing();
        let w = leave_listed(&rec, "r1", LeaveReason::OwnedElsewhere, 2).unwrap();
        assert!(rec.apply(&w));
        assert_eq!(listed(&rec).ids, vec!["r1".to_string()]);
        // Listed already: nothing to write.
        assert!(leave_listed(&rec, "r1", LeaveReason::OwnedElsewhere, 2).is_none());
        // A renewal does not move the condition; a commit does.
        let mut renewed = rec.clone();
        renewed.lease_until = Some(99);
        let w2 = leave_listed(&rec, "r2", LeaveReason::OwnedElsewhere, 2).unwrap();
        assert!(renewed.clone().apply(&w2));
        let mut ready = rec.clone();
        ready.status = Some(Status::Ready);
        assert!(!ready.apply(&w2));
    }

    #[test]
    fn past_the_bound_requests_are_counted_not_listed() {
        let mut rec = processing();
        for rid in ["a", "b", "c", "d"] {
            let w = leave_listed(&rec, rid, LeaveReason::OwnedElsewhere, 2).unwrap();
            assert!(rec.apply(&w));
        }
        assert_eq!(
            listed(&rec),
            Listed {
                ids: vec!["a".into(), "b".into()],
                omitted: 2
            }
        );
        // Two that read a list with room: the second append is refused.
        let mut rec = processing();
        let a = leave_listed(&rec, "a", LeaveReason::OwnedElsewhere, 1).unwrap();
        let b = leave_listed(&rec, "b", LeaveReason::OwnedElsewhere, 1).unwrap();
        assert!(rec.apply(&a));
        assert!(!rec.apply(&b));
    }

    #[test]
    fn clearing_keeps_ids_added_after_the_event() {
        let mut rec = processing();
        for rid in ["a", "b"] {
            assert!(rec.apply(&leave_listed(&rec, rid, LeaveReason::OwnedElsewhere, 9).unwrap()));
        }
        let published = listed(&rec);
        assert!(rec.apply(&leave_listed(&rec, "c", LeaveReason::OwnedElsewhere, 9).unwrap()));
        assert!(!rec.apply(&clear_answers(&published)));
        assert_eq!(listed(&rec).ids.len(), 3);
        assert!(rec.apply(&clear_answers(&listed(&rec))));
        assert!(listed(&rec).is_empty());
    }
}
