//! The handler's state machine: which effect answers which, and the
//! decision on a record as read (see the module docs of [`super`]).

use serde_json::Value as Json;

use super::policy::{Progress, Refresh};
use super::{Answer, Disposition, Effect, Input, Note, Policy, Step, Subject, error_backoff};
use crate::config::EventKind;
use crate::state::{self, Cache, Clock, Decision, Outcome, Run, Status};

/// Which write is in flight.
#[derive(Clone, Debug)]
pub(super) enum Phase {
    Reading,
    Adopting(Cache),
    Parking(Cache),
    Unblocking,
    Claiming {
        epoch: i64,
        run: Run,
        read: Cache,
    },
    Running {
        epoch: i64,
        attempt: i64,
    },
    /// The value is being stored before its commit (issue 14).
    Storing {
        epoch: i64,
        attempt: i64,
        output: crate::processor::Output,
    },
    /// A write of the run's owner: retry later, fail, or commit.
    Owning {
        epoch: i64,
        write: OwnerWrite,
    },
    Publishing(Disposition),
    Done,
    /// `answer_each_request`: a request that leaves its answer to another
    /// run or a flow is adding itself to the list (`answers.rs`).
    Listing(super::answers::Leaving),
    /// `answer_each_request`: clearing what the event just published
    /// listed; then settle.
    Clearing(Disposition),
    /// A stale answer goes out (`serve_stale`); then the request is decided
    /// again on this record as read.
    ServingStale(Cache),
    /// A background refresh (`refresh_after`, handler/policy.rs).
    Refresh(Refresh),
}

#[derive(Clone, Debug)]
pub(super) enum OwnerWrite {
    Retry {
        attempt: i64,
        delay_ms: i64,
        error: String,
    },
    Fail(String),
    Commit {
        attempt: i64,
        value: Json,
        /// Where the value was offloaded, if it was.
        value_ref: Option<Json>,
    },
}

/// Settles one message (see the module docs).
#[derive(Debug)]
pub struct Handler {
    pub(super) policy: Policy,
    pub(super) subject: Subject,
    pub(super) rid: String,
    pub(super) phase: Phase,
    pub(super) decisions: u32,
    pub(super) counted_miss: bool,
    pub(super) notes: Vec<Note>,
    /// `answer_each_request`: what the record as last read or written
    /// lists, and the clear of what the event published (`answers.rs`).
    pub(super) listed: crate::state::Listed,
    pub(super) clear: Option<crate::state::Write>,
    pub(super) progress: Progress,
}

impl Handler {
    pub fn new(policy: Policy, subject: Subject) -> Handler {
        let rid = match &subject {
            Subject::Request { rid, .. } => rid.clone(),
            Subject::TriggerEnd { message_id, .. } => message_id.clone(),
        };
        Handler {
            policy,
            subject,
            rid,
            phase: Phase::Reading,
            decisions: 0,
            counted_miss: false,
            notes: vec![],
            listed: crate::state::Listed::default(),
            clear: None,
            progress: Progress::default(),
        }
    }

    /// The first effect: read the item.
    pub fn start(&self) -> Effect {
        Effect::Read
    }

    /// The request id this handler acts as (the owner's, once adopted).
    pub fn request_id(&self) -> &str {
        &self.rid
    }

    pub(super) fn message_id(&self) -> &str {
        match &self.subject {
            Subject::Request { message_id, .. } | Subject::TriggerEnd { message_id, .. } => {
                message_id
            }
        }
    }

    /// Takes the outcome of the last effect and returns the next one.
    pub fn next(&mut self, input: Input, clock: &Clock) -> Step {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.keep_listed(&input);
        self.progress.now = clock.now;
        let effect = match (phase, input) {
            (Phase::Reading, Input::Read(rec)) => self.decide(rec, clock),
            (Phase::Adopting(rec), Input::Adopted(adopted)) => {
                if adopted && let Some(owner) = rec.request_id.clone() {
                    self.notes.push(Note::Adopted {
                        owner: owner.clone(),
                    });
                    self.rid = owner;
                }
                self.decide_on(rec, clock)
            }
            (Phase::Parking(read), Input::Applied(_)) => {
                self.notes.push(Note::Parked {
                    trigger_id: read.trigger_id,
                });
                self.settle(Disposition::Delete)
            }
            (Phase::Unblocking, Input::Applied(_)) => {
                self.notes.push(Note::Unblocked);
                self.settle(Disposition::Delete)
            }
            (Phase::Claiming { epoch, run, read }, Input::Applied(claimed)) => {
                self.claimed(epoch, run, &read, &claimed)
            }
            (Phase::Claiming { run, .. }, Input::Rejected(now)) => {
                if matches!(run, Run::Claim(_)) {
                    self.notes.push(Note::ClaimLost);
                }
                self.decide(now, clock)
            }
            (Phase::Parking(_) | Phase::Unblocking, Input::Rejected(now)) => {
                self.decide(now, clock)
            }
            (Phase::Running { epoch, .. }, Input::Invalidated(now)) => {
                self.notes.push(Note::RenewalRejected);
                self.rejected(epoch, now, clock)
            }
            (Phase::Running { epoch, attempt }, Input::Ran(result)) => {
                self.ran(epoch, attempt, result, clock)
            }
            (
                Phase::Storing {
                    epoch,
                    attempt,
                    output,
                },
                Input::Stored(value_ref),
            ) => self.stored(epoch, attempt, output, value_ref, clock),
            (Phase::Owning { epoch, write }, Input::Applied(_)) => self.owner_wrote(epoch, write),
            (Phase::Owning { epoch, .. }, Input::Rejected(now)) => self.rejected(epoch, now, clock),
            (
                Phase::Owning {
                    epoch,
                    write: OwnerWrite::Commit { .. },
                },
                Input::TooLarge(error),
            ) => self.fail(epoch, error),
            (Phase::Publishing(then), Input::Published) => self.published(then),
            (Phase::Listing(leaving), Input::Applied(_)) => self.left(leaving),
            (Phase::Listing(_), Input::Rejected(now)) => self.decide(now, clock),
            (Phase::Clearing(then), Input::Applied(_) | Input::Rejected(_)) => self.settle(then),
            (Phase::ServingStale(rec), Input::Published) => self.decide_on(rec, clock),
            (Phase::Refresh(step), input) => self.refresh_step(step, input, clock),
            (phase, input) => {
                panic!("handler: input {input:?} does not answer the effect of {phase:?}")
            }
        };
        Step {
            effect,
            notes: std::mem::take(&mut self.notes),
        }
    }

    pub(super) fn settle(&mut self, disposition: Disposition) -> Effect {
        self.phase = Phase::Done;
        Effect::Settle(disposition)
    }

    pub(super) fn publish(&mut self, answer: Answer, then: Disposition) -> Effect {
        let answer = self.with_answers(answer);
        self.phase = Phase::Publishing(then);
        Effect::Publish(answer)
    }

    pub(super) fn answer(&self, kind: EventKind, epoch: i64) -> Answer {
        Answer {
            kind,
            request_id: self.rid.clone(),
            epoch,
            value: None,
            error: None,
            failed_message_id: None,
            answers: crate::state::Listed::default(),
            value_ref: None,
            stale: None,
        }
    }

    /// Decides on a record as read (first, or after the state moved).
    pub(super) fn decide(&mut self, rec: Cache, clock: &Clock) -> Effect {
        if self.decisions >= self.policy.max_rehandles {
            self.notes.push(Note::KeptMoving {
                rehandles: self.policy.max_rehandles,
            });
            return self.settle(Disposition::RetryAfter(error_backoff(1)));
        }
        self.decisions += 1;
        // The owner of the item's run (or of its committed result) may have
        // joined this request in-process: its redelivery after its process
        // died. Going on as the owner continues the run (instead of leaving
        // it until the lease lapses, with the owner's message deleted) and
        // re-publishes a ready event lost between commit and publish with
        // its eventId (invariant 5).
        if let Subject::Request { .. } = self.subject
            && let Some(owner) = rec.request_id.as_deref()
            && owner != self.rid
            && matches!(rec.status(), Status::Processing | Status::Ready)
        {
            let owner = owner.to_owned();
            self.phase = Phase::Adopting(rec);
            return Effect::Adopt { owner };
        }
        self.decide_on(rec, clock)
    }

    fn decide_on(&mut self, rec: Cache, clock: &Clock) -> Effect {
        let decision = match &self.subject {
            Subject::Request { message_id, .. } => {
                let (policies, retry) = (&self.policy.policies, self.progress.retry);
                state::decide_with_policies(&rec, &self.rid, message_id, clock, policies, retry)
            }
            Subject::TriggerEnd { trigger_id, .. } => {
                state::decide_trigger_end(&rec, trigger_id, &self.rid, clock)
            }
        };
        if !self.counted_miss
            && matches!(self.subject, Subject::Request { .. })
            && !matches!(
                decision,
                Decision::Hit
                    | Decision::Republish(_)
                    | Decision::AnswerFailed
                    | Decision::Refresh { .. }
            )
        {
            self.notes.push(Note::Miss);
            self.counted_miss = true;
        }
        if let Some(stale) = self.serve_stale(&rec, &decision, clock) {
            return stale;
        }
        match decision {
            Decision::Hit => {
                self.notes.push(Note::Hit);
                let answer = Answer {
                    value: rec.value.clone(),
                    value_ref: rec.value_ref.clone(),
                    ..self.answer(EventKind::Hit, rec.epoch())
                };
                self.publish(answer, Disposition::Delete)
            }
            Decision::Republish(Outcome::Ready) => {
                // A redelivery after the commit whose event may have been
                // lost: the same event (same eventId).
                self.notes.push(Note::Republished {
                    epoch: rec.epoch(),
                    outcome: Outcome::Ready,
                });
                let answer = Answer {
                    value: rec.value.clone(),
                    value_ref: rec.value_ref.clone(),
                    ..self.answer(EventKind::Ready, rec.epoch())
                };
                self.publish(answer, Disposition::Delete)
            }
            Decision::Republish(Outcome::Failed) => {
                self.notes.push(Note::Republished {
                    epoch: rec.epoch(),
                    outcome: Outcome::Failed,
                });
                let error = rec
                    .error
                    .clone()
                    .unwrap_or_else(|| "processing failed".into());
                let answer = Answer {
                    error: Some(error.clone()),
                    failed_message_id: rec.failed_message_id.clone(),
                    ..self.answer(EventKind::Failed, rec.epoch())
                };
                self.publish(
                    answer,
                    Disposition::DeadLetter {
                        kind: "failed",
                        reason: error,
                    },
                )
            }
            Decision::Leave(reason) => {
                if let Some(effect) = self.leave_listed(&rec, reason) {
                    return effect;
                }
                self.notes.push(Note::Left {
                    reason,
                    owner: rec.request_id.clone(),
                    awaiting: rec.awaiting.clone(),
                    running: rec.trigger_id.clone(),
                });
                self.settle(Disposition::Delete)
            }
            Decision::Park { write } => {
                let write = self.park_listed(&rec, write);
                self.phase = Phase::Parking(rec);
                Effect::Write(write)
            }
            Decision::Unblock { write } => {
                self.phase = Phase::Unblocking;
                Effect::Write(write)
            }
            Decision::Process { write, epoch, run } => {
                self.phase = Phase::Claiming {
                    epoch,
                    run,
                    read: rec,
                };
                Effect::Write(write)
            }
            Decision::AnswerFailed => self.answer_failed(&rec),
            Decision::Refresh { write, epoch } => self.refresh(&rec, write, epoch),
        }
    }
}
