//! The steps of a set's cache policies (`state/policy.rs` decides them):
//! - `serve_stale`: a stale `hit` is published before the normal path runs
//!   on the same read (claim and process, park, or leave it to the owner),
//!   whose `ready` answers the request again;
//! - `failure_ttl`: a recent failure is answered from the item;
//! - `refresh_after`: the `hit` is published first, then the background
//!   refresh is claimed, run under its own lease, committed (fenced: a
//!   trigger meanwhile wins) and announced with a `ready` of the new value;
//!   a refresh that fails keeps the current value and holds its lease a
//!   while. The requester was answered by the hit either way.

use serde_json::Value as Json;

use super::machine::{Handler, Phase};
use super::{Answer, Disposition, Effect, Input, Note, Subject};
use crate::config::EventKind;
use crate::processor::Output;
use crate::state::{self, Cache, Clock, Decision, Write};

/// What the policies keep per message.
#[derive(Clone, Debug, Default)]
pub(super) struct Progress {
    /// The request asked for a new run (`"retry": true`, a redrive).
    pub(super) retry: bool,
    /// A stale answer is out: at most one per message.
    pub(super) served_stale: bool,
    /// The clock of the latest step (when a failure is recorded).
    pub(super) now: i64,
}

/// Where a background refresh is.
#[derive(Clone, Debug)]
pub(super) enum Refresh {
    /// The hit goes out; then the refresh is claimed with `write`.
    Answering {
        write: Write,
        epoch: i64,
        took_over: Option<String>,
    },
    Claiming {
        epoch: i64,
        took_over: Option<String>,
    },
    Running {
        epoch: i64,
    },
    /// The new value is being stored where the set offloads large values
    /// (issue 14), before its commit.
    Storing {
        epoch: i64,
        output: Output,
    },
    Committing {
        epoch: i64,
        value: Json,
        value_ref: Option<Json>,
    },
    /// The refresh failed: its lease is held, then the message is done.
    Holding,
}

impl Handler {
    /// The request asks for a new run: a recent failure (`failure_ttl`)
    /// does not answer it.
    pub fn retrying(mut self, retry: bool) -> Handler {
        self.progress.retry = retry;
        self
    }

    /// `serve_stale`: answers at once with the value the item holds, marked
    /// stale, before `decision` (decided again on `rec` after the event is
    /// out) is carried out.
    pub(super) fn serve_stale(
        &mut self,
        rec: &Cache,
        decision: &Decision,
        clock: &Clock,
    ) -> Option<Effect> {
        if self.progress.served_stale || !matches!(self.subject, Subject::Request { .. }) {
            return None;
        }
        let (value, stale) = state::stale_value(rec, decision, clock, &self.policy.policies)?;
        self.progress.served_stale = true;
        self.notes.push(Note::ServedStale {
            value_epoch: stale.value_epoch,
            age_ms: stale.age_ms,
        });
        let offloaded = rec.value.is_none();
        let answer = Answer {
            value: (!offloaded).then_some(value),
            value_ref: rec.value_ref.clone().filter(|_| offloaded),
            stale: Some(stale),
            ..self.answer(EventKind::Hit, rec.epoch())
        };
        self.phase = Phase::ServingStale(rec.clone());
        Some(Effect::Publish(answer))
    }

    /// `failure_ttl`: the recorded failure answers; no run.
    pub(super) fn answer_failed(&mut self, rec: &Cache) -> Effect {
        let error = rec
            .error
            .clone()
            .unwrap_or_else(|| "processing failed".into());
        self.notes.push(Note::FailureCached {
            epoch: rec.epoch(),
            failed_at: rec.failed_at,
        });
        let answer = Answer {
            error: Some(error),
            // Its own event (and eventId), not the recorded failure's.
            failed_message_id: Some(self.message_id().to_owned()),
            ..self.answer(EventKind::Failed, rec.epoch())
        };
        self.publish(answer, Disposition::Delete)
    }

    /// `refresh_after`: the hit first, then the refresh's claim.
    pub(super) fn refresh(&mut self, rec: &Cache, write: Write, epoch: i64) -> Effect {
        self.notes.push(Note::Hit);
        let answer = Answer {
            value: rec.value.clone(),
            ..self.answer(EventKind::Hit, epoch)
        };
        // A refresh owner other than this request: its lease lapsed
        // (`refresh_due` claims nothing else).
        let took_over = rec.refresh_owner.clone().filter(|o| *o != self.rid);
        self.phase = Phase::Refresh(Refresh::Answering {
            write,
            epoch,
            took_over,
        });
        Effect::Publish(answer)
    }

    pub(super) fn refresh_step(&mut self, step: Refresh, input: Input, clock: &Clock) -> Effect {
        let rid = self.rid.clone();
        match (step, input) {
            (
                Refresh::Answering {
                    write,
                    epoch,
                    took_over,
                },
                Input::Published,
            ) => {
                self.phase = Phase::Refresh(Refresh::Claiming { epoch, took_over });
                Effect::Write(write)
            }
            (Refresh::Claiming { epoch, took_over }, Input::Applied(_)) => {
                self.notes.push(Note::RefreshStarted { epoch, took_over });
                self.phase = Phase::Refresh(Refresh::Running { epoch });
                let input = match &self.subject {
                    Subject::Request { input, .. } => input.clone(),
                    Subject::TriggerEnd { .. } => None,
                };
                Effect::Refresh { rid, epoch, input }
            }
            (Refresh::Running { epoch }, Input::Ran(Ok(output))) if self.policy.offload => {
                let value = output.value.clone();
                self.phase = Phase::Refresh(Refresh::Storing { epoch, output });
                Effect::Store { rid, epoch, value }
            }
            (Refresh::Running { epoch }, Input::Ran(Ok(output))) => {
                self.commit_refresh(epoch, output, None, clock)
            }
            (Refresh::Storing { epoch, output }, Input::Stored(value_ref)) => {
                self.commit_refresh(epoch, output, value_ref, clock)
            }
            (Refresh::Running { epoch }, Input::Ran(Err(err))) => {
                self.hold_refresh(epoch, err.to_string(), clock)
            }
            (Refresh::Committing { epoch, .. }, Input::TooLarge(error)) => {
                self.hold_refresh(epoch, error, clock)
            }
            (
                Refresh::Committing {
                    epoch,
                    value,
                    value_ref,
                },
                Input::Applied(_),
            ) => {
                self.notes.push(Note::Refreshed { epoch });
                let answer = Answer {
                    value: Some(value),
                    value_ref,
                    ..self.answer(EventKind::Ready, epoch)
                };
                self.publish(answer, Disposition::Delete)
            }
            // Another replica refreshes (or the value changed since the
            // read); a trigger moved the epoch during the refresh (its
            // renewal or its commit was rejected): the hit answered.
            (Refresh::Claiming { .. }, Input::Rejected(now))
            | (Refresh::Running { .. }, Input::Invalidated(now))
            | (Refresh::Committing { .. }, Input::Rejected(now)) => {
                self.notes.push(Note::RefreshLost {
                    epoch: now.epoch(),
                    status: now.status(),
                });
                self.settle(Disposition::Delete)
            }
            (Refresh::Holding, Input::Applied(_) | Input::Rejected(_)) => {
                self.settle(Disposition::Delete)
            }
            (step, input) => {
                panic!("handler: input {input:?} does not answer the refresh step {step:?}")
            }
        }
    }

    /// The refresh's fenced commit, of the value or of the pointer to where
    /// it was stored.
    fn commit_refresh(
        &mut self,
        epoch: i64,
        output: Output,
        value_ref: Option<Json>,
        clock: &Clock,
    ) -> Effect {
        let write = state::commit_refresh(
            &self.rid,
            epoch,
            output.value.clone(),
            value_ref.clone(),
            clock.now,
        );
        self.phase = Phase::Refresh(Refresh::Committing {
            epoch,
            value: output.value.clone(),
            value_ref,
        });
        Effect::Commit { write, output }
    }

    /// A refresh failed: keep the value, hold the refresh a lease long.
    fn hold_refresh(&mut self, epoch: i64, error: String, clock: &Clock) -> Effect {
        self.notes.push(Note::RefreshFailed { error });
        self.phase = Phase::Refresh(Refresh::Holding);
        Effect::Write(state::hold_refresh(
            &self.rid,
            epoch,
            clock.now + clock.lease,
        ))
    }
}
