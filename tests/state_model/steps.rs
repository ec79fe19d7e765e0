//! The workers' steps: each carries out its handler's next effect against
//! the store, as `worker/execute.rs` does against DynamoDB, and keeps the
//! books from the notes the handler returns.

use serde_json::json;
use triggered_cache::config::EventKind;
use triggered_cache::handler::{Disposition, Effect, Input, Note};
use triggered_cache::processor::{Output, ProcessError};
use triggered_cache::state::{self, ClaimReason, Status};

use super::world::*;

impl World {
    /// Feeds a worker's handler the outcome of its effect, and keeps the
    /// model's books from what the handler observed.
    pub(crate) fn feed(&mut self, w: usize, input: Input) {
        let clock = self.clock();
        let busy = self.workers[w].as_mut().expect("busy");
        let step = busy.handler.next(input, &clock);
        for note in &step.notes {
            self.policy_note(w, note);
            match note {
                Note::Adopted { .. } => self.adoptions += 1,
                Note::Failed { error, .. } if error.starts_with("gave up") => self.gave_up += 1,
                Note::ClaimWon {
                    reason: ClaimReason::TriggerEnded,
                    ..
                } => self.trigger_end_claims += 1,
                _ => {}
            }
        }
        if let Effect::Refresh { rid, epoch, .. } = &step.effect {
            self.refresh_started(w, rid, *epoch);
        }
        if let Effect::Run { rid, epoch, .. } = &step.effect {
            self.run_started(w, rid.clone(), *epoch, &step.notes);
            let busy = self.workers[w].as_mut().expect("busy");
            busy.read_by = busy.followers.len();
        }
        self.workers[w].as_mut().expect("busy").effect = step.effect;
    }

    /// Invariants 1 and 5 when a processing run starts.
    pub(crate) fn run_started(&mut self, w: usize, rid: String, epoch: i64, notes: &[Note]) {
        // (A READY past its ttl is recomputed in its epoch: `reclaimed`.)
        assert!(
            !self.ready_epochs.contains(&epoch) || self.policy_books.reclaimed.contains(&epoch),
            "a run started for epoch {epoch}, already READY"
        );
        let others: Vec<usize> = (0..WORKERS)
            .filter(|&o| o != w)
            .filter(|&o| {
                self.workers[o]
                    .as_ref()
                    .and_then(|b| b.running.as_ref())
                    .is_some_and(|(r, e)| *e == epoch && *r != rid)
            })
            .collect();
        if !others.is_empty() {
            let takeover = notes.iter().any(|n| {
                matches!(
                    n,
                    Note::ClaimWon {
                        reason: ClaimReason::LeaseExpired,
                        ..
                    }
                )
            });
            assert!(takeover, "second live run for epoch {epoch}: {notes:?}");
            self.takeovers += 1;
            // The displaced owners run on as zombies whose writes will all
            // be rejected; they are no longer live runs.
            for o in others {
                self.workers[o].as_mut().expect("busy").running = None;
            }
        }
        self.workers[w].as_mut().expect("busy").running = Some((rid, epoch));
    }

    /// Carries out a worker's next effect, as `worker/execute.rs` does.
    pub(crate) fn perform(&mut self, w: usize) {
        let Some(busy) = self.workers[w].as_mut() else {
            return;
        };
        if matches!(
            busy.effect,
            Effect::Read | Effect::Write(_) | Effect::Commit { .. }
        ) {
            busy.read_by = busy.followers.len();
        }
        let input = match busy.effect.clone() {
            Effect::Run { .. } | Effect::Refresh { .. } => return,
            Effect::Store { rid, epoch, value } => self.store_value(&rid, epoch, value),
            Effect::Read => Input::Read(self.store.clone()),
            Effect::Adopt { owner } => {
                let me = busy.handler.request_id().to_owned();
                let found = busy.followers.iter_mut().find(|(_, rid)| *rid == owner);
                let adopted = found.is_some();
                if let Some(entry) = found {
                    entry.1 = me;
                }
                Input::Adopted(adopted)
            }
            Effect::Write(write) | Effect::Commit { write, .. } => {
                let commit = matches!(busy.effect, Effect::Commit { .. });
                busy.running = None;
                let before = self.store.clone();
                if self.store.apply(&write) {
                    self.check_policy_write(w, &before, &write, commit);
                    if commit {
                        self.ready_epochs.insert(self.store.epoch());
                    }
                    if self.store.status() != Status::Processing {
                        // No run owns the item: any run still going (of
                        // this request on another worker, or one whose
                        // owner gave up at max_attempts) can only have its
                        // writes rejected; it is no longer live.
                        self.end_runs();
                    }
                    Input::Applied(self.store.clone())
                } else {
                    Input::Rejected(self.store.clone())
                }
            }
            Effect::Publish(answer) => {
                // A stale answer comes before the request's own; it
                // leaves the flight open (worker/execute.rs).
                busy.sealed |= answer.stale.is_none();
                let followers: Vec<String> =
                    busy.followers.iter().map(|(_, rid)| rid.clone()).collect();
                self.check_answer(&answer);
                let kind = match answer.kind {
                    EventKind::Hit => "hit",
                    EventKind::Ready => "ready",
                    EventKind::Failed => "failed",
                    EventKind::Reset => "reset",
                };
                // Its own request id, the coalesced ones, the listed ones.
                let mut names = vec![answer.request_id.clone()];
                names.extend(followers);
                names.extend(answer.answers.ids.iter().cloned());
                self.emit(kind, answer.epoch, names, answer.answers.omitted);
                Input::Published
            }
            Effect::Settle(disposition) => {
                let done = !matches!(disposition, Disposition::RetryAfter(_));
                self.finish(w, done);
                return;
            }
        };
        self.feed(w, input);
    }

    /// The processor of a worker's run answers (if it runs one).
    pub(crate) fn answer(
        &mut self,
        w: usize,
        result: impl FnOnce(i64) -> Result<Output, ProcessError>,
    ) {
        if let Some(Busy {
            effect: Effect::Run { epoch, .. } | Effect::Refresh { epoch, .. },
            ..
        }) = &self.workers[w]
        {
            let input = Input::Ran(result(*epoch));
            self.feed(w, input);
        }
    }

    pub(crate) fn run_op(&mut self, op: Op) {
        self.step += 1;
        if std::env::var_os("MODEL_TRACE").is_some() {
            eprintln!("step {} {:?}\n    store={:?}", self.step, op, self.store);
        }
        match op {
            Op::Request => {
                self.send(Kind::Request);
            }
            Op::Retry(i) => {
                let requests: Vec<usize> = (0..self.msgs.len())
                    .filter(|&i| self.msgs[i].kind == Kind::Request)
                    .collect();
                if let Some(&of) = requests.get(i % requests.len().max(1)) {
                    self.send(Kind::Request);
                    let rid = self.msgs[of].rid.clone();
                    self.msgs.last_mut().expect("just sent").rid = rid;
                }
            }
            Op::Trigger => {
                self.send(Kind::Trigger);
            }
            Op::Start(t) => {
                self.send(Kind::Start(t));
            }
            Op::End(t) => {
                self.send(Kind::End(t));
            }
            Op::Deliver(i, w) => self.deliver(i, w, false),
            Op::DeliverCrash(i, w) => self.deliver(i, w, true),
            Op::Scheduled(delay) => {
                let i = self.send(Kind::Trigger);
                let sid = self.msgs[i].id.clone();
                self.msgs[i].kind = Kind::Scheduled {
                    sid: sid.clone(),
                    at: self.now + delay,
                };
                self.msgs[i].rid = sid;
            }
            Op::Step(w) => self.perform(w),
            Op::Heartbeat(w) => {
                // The message's heartbeat renews its run's lease.
                if let Some(Busy {
                    effect: Effect::Run { rid, epoch, .. },
                    ..
                }) = &self.workers[w]
                    && !self.store.apply(&state::renew(rid, *epoch, &self.clock()))
                {
                    self.workers[w].as_mut().expect("busy").running = None;
                    self.feed(w, Input::Invalidated(self.store.clone()));
                }
                self.renew_refresh(w);
            }
            Op::Answer(w) => self.answer(w, |epoch| {
                Ok(Output {
                    value: json!({ "epoch": epoch }),
                    depends_on: vec![],
                })
            }),
            Op::Retryable(w) => self.answer(w, |_| Err(ProcessError::Retryable("busy".into()))),
            Op::Permanent(w) => self.answer(w, |_| Err(ProcessError::Permanent("bad".into()))),
            Op::Crash(w) => {
                if self.workers[w].is_some() {
                    self.finish(w, false);
                }
            }
            Op::Tick(ms) => self.now += ms,
        }
        self.check();
        self.check_schedules(false);
    }

    /// Lets everything finish: flows end, leases lapse, every message is
    /// delivered and every run completes.
    pub(crate) fn drain(&mut self) {
        for _ in 0..200 {
            if let (Status::Triggered, Some(t)) =
                (self.store.status(), self.store.trigger_id.clone())
            {
                let t: u8 = t[1..].parse().unwrap();
                if !self
                    .msgs
                    .iter()
                    .any(|m| m.kind == Kind::End(t) && m.state != MsgState::Done)
                {
                    self.send(Kind::End(t));
                }
            }
            if self.msgs.iter().all(|m| m.state == MsgState::Done)
                && self.workers.iter().all(Option::is_none)
            {
                return;
            }
            self.run_op(Op::Tick(LEASE + SKEW + 2_000));
            for w in 0..WORKERS {
                for _ in 0..40 {
                    match &self.workers[w] {
                        None => break,
                        Some(Busy {
                            effect: Effect::Run { .. } | Effect::Refresh { .. },
                            ..
                        }) => self.run_op(Op::Answer(w)),
                        Some(_) => self.run_op(Op::Step(w)),
                    }
                }
                if self.workers[w].is_none() {
                    self.run_op(Op::Deliver(0, w));
                }
            }
        }
        panic!(
            "the world did not settle: {:?} {:?}",
            self.store, self.workers
        );
    }
}
