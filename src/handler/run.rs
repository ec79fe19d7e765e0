//! The handler's processing run: the `max_attempts` gate, commit, retry
//! later or fail, and what a rejected write of the run's owner means.

use std::time::Duration;

use super::machine::{Handler, OwnerWrite, Phase};
use super::{Answer, Disposition, Effect, Note, Subject};
use crate::config::EventKind;
use crate::processor::{Output, ProcessError};
use crate::state::{self, Cache, Clock, Rejected, Run};

impl Handler {
    /// The claim (or the owner's continuation) holds: run the processor,
    /// unless earlier attempts used up `max_attempts`.
    pub(super) fn claimed(
        &mut self,
        epoch: i64,
        run: Run,
        read: &Cache,
        claimed: &Cache,
    ) -> Effect {
        self.notes.push(match run {
            Run::Claim(reason) => Note::ClaimWon {
                epoch,
                reason,
                previous_owner: read.request_id.clone(),
                lease_until: read.lease_until,
                trigger_id: read.trigger_id.clone(),
            },
            Run::Continue => Note::Continued { epoch },
        });
        // A trigger end that claimed now carries the parked request: if its
        // run is invalidated, it is handled again as that request, not as a
        // flow end (which would find no flow and drop the parked request).
        if let Subject::TriggerEnd { message_id, .. } = &self.subject {
            self.subject = Subject::Request {
                rid: message_id.clone(),
                message_id: message_id.clone(),
                input: None,
            };
        }
        let attempt = claimed.attempts().max(1);
        if attempt > i64::from(self.policy.max_attempts) {
            // Earlier attempts of this request died with their worker (the
            // redeliveries kept coming back): stop trying.
            let error = format!(
                "gave up after {} attempts (sets.{}.max_attempts); earlier attempts ended without an outcome (worker crashes or timeouts)",
                attempt - 1,
                self.policy.set
            );
            return self.fail(epoch, error);
        }
        let input = match &self.subject {
            Subject::Request { input, .. } => input.clone(),
            Subject::TriggerEnd { .. } => None,
        };
        self.phase = Phase::Running { epoch, attempt };
        Effect::Run {
            rid: self.rid.clone(),
            epoch,
            attempt,
            input,
        }
    }

    /// The processor answered: commit, retry later, or fail.
    pub(super) fn ran(
        &mut self,
        epoch: i64,
        attempt: i64,
        result: Result<Output, ProcessError>,
        clock: &Clock,
    ) -> Effect {
        match result {
            Ok(output) => self.store_or_commit(epoch, attempt, output, clock),
            Err(err) => {
                self.notes.push(Note::ProcessingFailed { kind: err.kind() });
                match err {
                    ProcessError::Retryable(error)
                        if attempt < i64::from(self.policy.max_attempts) =>
                    {
                        let delay_ms = state::backoff(
                            attempt,
                            self.policy.backoff_base_ms,
                            self.policy.backoff_cap_ms,
                        );
                        // Hold the lease past the backoff, so that other
                        // requests wait for this message's redelivery.
                        let hold = clock.now + delay_ms + clock.lease;
                        let write = state::retry_later(&self.rid, epoch, &error, hold);
                        self.phase = Phase::Owning {
                            epoch,
                            write: OwnerWrite::Retry {
                                attempt,
                                delay_ms,
                                error,
                            },
                        };
                        Effect::Write(write)
                    }
                    ProcessError::Retryable(error) => {
                        let error = format!(
                            "gave up after {attempt} attempts (sets.{}.max_attempts): {error}",
                            self.policy.set
                        );
                        self.fail(epoch, error)
                    }
                    ProcessError::Permanent(error) => self.fail(epoch, error),
                }
            }
        }
    }

    pub(super) fn fail(&mut self, epoch: i64, error: String) -> Effect {
        let mut write = state::fail(&self.rid, epoch, &error, self.message_id());
        // When it failed: `failure_ttl` answers with it until then + ttl.
        write.ops.push(state::Op::Set(
            state::Field::FailedAt,
            state::Val::Num(self.progress.now),
        ));
        self.phase = Phase::Owning {
            epoch,
            write: OwnerWrite::Fail(error),
        };
        Effect::Write(write)
    }

    /// A write of the run's owner held.
    pub(super) fn owner_wrote(&mut self, epoch: i64, write: OwnerWrite) -> Effect {
        match write {
            OwnerWrite::Retry {
                attempt,
                delay_ms,
                error,
            } => {
                self.notes.push(Note::RetryScheduled {
                    attempt,
                    max_attempts: self.policy.max_attempts,
                    delay_ms,
                    error,
                });
                self.settle(Disposition::RetryAfter(Duration::from_millis(
                    delay_ms.max(0) as u64,
                )))
            }
            OwnerWrite::Fail(error) => {
                self.notes.push(Note::Failed {
                    epoch,
                    error: error.clone(),
                });
                let answer = Answer {
                    error: Some(error.clone()),
                    failed_message_id: Some(self.message_id().to_owned()),
                    ..self.answer(EventKind::Failed, epoch)
                };
                self.publish(
                    answer,
                    Disposition::DeadLetter {
                        kind: "failed",
                        reason: error,
                    },
                )
            }
            OwnerWrite::Commit {
                attempt,
                value,
                value_ref,
            } => {
                self.notes.push(Note::Committed { epoch, attempt });
                let answer = Answer {
                    value: Some(value),
                    value_ref,
                    ..self.answer(EventKind::Ready, epoch)
                };
                self.publish(answer, Disposition::Delete)
            }
        }
    }

    /// A write of the run's owner was rejected: either the run was
    /// invalidated (decide again) or another request took over (discard
    /// quietly: its event answers).
    pub(super) fn rejected(&mut self, epoch: i64, now: Cache, clock: &Clock) -> Effect {
        match state::classify_rejection(&now, &self.rid, epoch) {
            Rejected::TakenOver => {
                self.notes.push(Note::TakenOver {
                    new_owner: now.request_id.clone(),
                });
                if self.policy.answer_each_request.is_some() {
                    // Listed as a request the new owner's run answers.
                    return self.decide(now, clock);
                }
                self.settle(Disposition::Delete)
            }
            Rejected::Rehandle => {
                if now.epoch() != epoch {
                    self.notes.push(Note::StaleResult {
                        epoch,
                        current_epoch: now.epoch(),
                    });
                }
                self.decide(now, clock)
            }
        }
    }
}
