//! The handler's steps for `answer_each_request` (the decisions and the
//! reasons are in `state/answers.rs`): a request that leaves its answer to
//! another run or to a flow first adds its id to the item's list (and
//! decides again if that write is refused); a request that parks lists
//! itself in the same write; an owner whose run was taken over decides
//! again instead of leaving quietly (`run.rs`), so that it lists itself
//! with the new owner. The `ready` or `failed` event carries the list as
//! read with the write it reports (or the read it re-publishes from), and
//! once it is out the list is cleared if nothing was added since.

use super::machine::{Handler, Phase};
use super::{Answer, Disposition, Effect, Input, Note, Subject};
use crate::config::EventKind;
use crate::state::{self, Cache, LeaveReason, Write};

/// A request adding itself to the list before it leaves: what its
/// `Note::Left` reports once the write holds.
#[derive(Clone, Debug)]
pub(super) struct Leaving {
    reason: LeaveReason,
    owner: Option<String>,
    awaiting: Option<String>,
    running: Option<String>,
}

impl Handler {
    /// The request id of the message this handler settles: after an
    /// adoption the handler acts as the owner, whose own message is handled
    /// again (coalesce.rs), but this message's request is the one to list.
    fn own_rid(&self) -> &str {
        match &self.subject {
            Subject::Request { rid, .. } => rid,
            Subject::TriggerEnd { message_id, .. } => message_id,
        }
    }

    fn bound(&self) -> Option<usize> {
        match self.subject {
            Subject::Request { .. } => self.policy.answer_each_request,
            Subject::TriggerEnd { .. } => None,
        }
    }

    /// Keeps what the record as last read or written lists: the event
    /// that follows lists the same.
    pub(super) fn keep_listed(&mut self, input: &Input) {
        if self.policy.answer_each_request.is_none() {
            return;
        }
        if let Input::Read(rec)
        | Input::Applied(rec)
        | Input::Rejected(rec)
        | Input::Invalidated(rec) = input
        {
            self.listed = state::listed(rec);
        }
    }

    /// A request that leaves its answer to somebody else: the write that
    /// lists it, if it is not listed yet.
    pub(super) fn leave_listed(&mut self, rec: &Cache, reason: LeaveReason) -> Option<Effect> {
        let write = state::leave_listed(rec, self.own_rid(), reason, self.bound()?)?;
        self.phase = Phase::Listing(Leaving {
            reason,
            owner: rec.request_id.clone(),
            awaiting: rec.awaiting.clone(),
            running: rec.trigger_id.clone(),
        });
        Some(Effect::Write(write))
    }

    /// The request is listed: it leaves, answered by the event that lists
    /// it.
    pub(super) fn left(&mut self, leaving: Leaving) -> Effect {
        self.notes.push(Note::Left {
            reason: leaving.reason,
            owner: leaving.owner,
            awaiting: leaving.awaiting,
            running: leaving.running,
        });
        self.settle(Disposition::Delete)
    }

    /// A park that also lists the parked request.
    pub(super) fn park_listed(&self, rec: &Cache, write: Write) -> Write {
        match self.bound() {
            Some(bound) => state::park_listed(rec, self.own_rid(), bound, write),
            None => write,
        }
    }

    /// A `ready` or `failed` event lists what the record lists; the list
    /// is cleared once it is out.
    pub(super) fn with_answers(&mut self, answer: Answer) -> Answer {
        if self.policy.answer_each_request.is_none()
            || !matches!(answer.kind, EventKind::Ready | EventKind::Failed)
            || self.listed.is_empty()
        {
            return answer;
        }
        self.clear = Some(state::clear_answers(&self.listed));
        Answer {
            answers: self.listed.clone(),
            ..answer
        }
    }

    /// The event is out: clear what it listed, then settle.
    pub(super) fn published(&mut self, then: Disposition) -> Effect {
        match self.clear.take() {
            Some(write) => {
                self.phase = Phase::Clearing(then);
                Effect::Write(write)
            }
            None => self.settle(then),
        }
    }
}
