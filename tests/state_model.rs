//! The real request path against a model of DynamoDB's conditional
//! single-item writes, with no AWS: each simulated worker runs the real
//! [`Handler`] (the order of the steps, `src/handler/`) and carries out its
//! effects on an in-memory record (`Record::apply`: all or nothing, only if
//! the condition holds), as `worker/execute.rs` does against DynamoDB.
//!
//! Random interleavings of requests, retries with shared request ids,
//! redeliveries, coalesced requests (and owner adoption), triggers, trigger
//! flows, processor answers (values, retryable and permanent failures, so
//! `max_attempts`), lease renewals, crashes and clock jumps across three
//! workers; after every step the invariants of DESIGN §5 are checked, and
//! at the end every request must have been answered.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::json;
use triggered_cache::config::EventKind;
use triggered_cache::handler::{Disposition, Effect, Handler, Input, Note, Policy, Subject};
use triggered_cache::processor::{Output, ProcessError};
use triggered_cache::state::{self, ClaimReason, Clock, LeaveReason, Record, Status};

const LEASE: i64 = 3_000;
const SKEW: i64 = 200;
const DEADLINE: i64 = 10_000;
const MAX_ATTEMPTS: u32 = 2;
const WORKERS: usize = 3;

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Request,
    Trigger,
    Start(u8),
    End(u8),
}

#[derive(Clone, Debug, PartialEq)]
enum MsgState {
    Pending,
    InFlight,
    Done,
}

#[derive(Clone, Debug)]
struct Msg {
    /// The SQS MessageId: the same across redeliveries.
    id: String,
    /// The request id: the MessageId, or a producer's own `requestId`
    /// shared by a retry (a redrive, a re-send) of the same request.
    rid: String,
    kind: Kind,
    sent: usize,
    state: MsgState,
}

/// A worker busy with a message: the real handler and its next effect.
#[derive(Debug)]
struct Busy {
    msg: usize,
    handler: Handler,
    effect: Effect,
    /// Requests for the same (key, set) coalesced with this one in-process
    /// (message, request id); a request leads them, a trigger end never.
    followers: Vec<(usize, String)>,
    /// How many followers had joined when the handler last read the item
    /// (or wrote it, or started its run): its decisions hold for them.
    read_by: usize,
    sealed: bool,
    /// The run this worker's processor is in (or whose outcome it is
    /// writing): request id and epoch.
    running: Option<(String, i64)>,
}

#[derive(Clone, Debug)]
struct Event {
    kind: &'static str,
    epoch: i64,
    at: usize,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Request,
    /// A new message with the request id of an earlier request (a
    /// producer's retry or a redrive from the DLQ).
    Retry(usize),
    Trigger,
    Start(u8),
    End(u8),
    Deliver(usize, usize),
    /// Carry out a worker's next effect (but a processor run).
    Step(usize),
    Heartbeat(usize),
    /// The processor answers with a value.
    Answer(usize),
    Retryable(usize),
    Permanent(usize),
    Crash(usize),
    Tick(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Request),
        1 => (0usize..8).prop_map(Op::Retry),
        1 => Just(Op::Trigger),
        1 => (0u8..2).prop_map(Op::Start),
        1 => (0u8..2).prop_map(Op::End),
        6 => (0usize..8, 0..WORKERS).prop_map(|(m, w)| Op::Deliver(m, w)),
        8 => (0..WORKERS).prop_map(Op::Step),
        2 => (0..WORKERS).prop_map(Op::Heartbeat),
        3 => (0..WORKERS).prop_map(Op::Answer),
        2 => (0..WORKERS).prop_map(Op::Retryable),
        1 => (0..WORKERS).prop_map(Op::Permanent),
        1 => (0..WORKERS).prop_map(Op::Crash),
        2 => (0i64..5_000).prop_map(Op::Tick),
    ]
}

struct World {
    store: Record,
    now: i64,
    step: usize,
    msgs: Vec<Msg>,
    workers: Vec<Option<Busy>>,
    events: Vec<Event>,
    /// Epochs that reached READY.
    ready_epochs: BTreeSet<i64>,
    takeovers: usize,
    adoptions: usize,
    /// Runs given up at `max_attempts`, and claims by a trigger end for
    /// its parked request: the paths the interleavings must reach.
    gave_up: usize,
    trigger_end_claims: usize,
    /// Requests waiting on a trigger flow (parked or behind the parked one).
    waiting_on_flow: BTreeSet<usize>,
    /// Requests whose flow was abandoned at its deadline (the known limit).
    abandoned: BTreeSet<usize>,
    /// When flows were abandoned.
    abandoned_at: Vec<usize>,
    /// Requests that left their answer to another request's run (owner
    /// elsewhere, parked, taken over).
    deferred: BTreeSet<usize>,
    next_id: usize,
}

fn policy() -> Policy {
    Policy {
        set: "s".into(),
        max_attempts: MAX_ATTEMPTS,
        backoff_base_ms: 500,
        backoff_cap_ms: 2_000,
        max_rehandles: 10,
    }
}

impl World {
    fn new() -> World {
        World {
            store: Record::default(),
            now: 1_000_000,
            step: 0,
            msgs: vec![],
            workers: (0..WORKERS).map(|_| None).collect(),
            events: vec![],
            ready_epochs: BTreeSet::new(),
            takeovers: 0,
            adoptions: 0,
            gave_up: 0,
            trigger_end_claims: 0,
            waiting_on_flow: BTreeSet::new(),
            abandoned: BTreeSet::new(),
            abandoned_at: vec![],
            deferred: BTreeSet::new(),
            next_id: 0,
        }
    }

    fn clock(&self) -> Clock {
        Clock {
            now: self.now,
            lease: LEASE,
            skew: SKEW,
            ttl: None,
        }
    }

    fn send(&mut self, kind: Kind) {
        self.next_id += 1;
        let id = format!("m{}", self.next_id);
        self.msgs.push(Msg {
            rid: id.clone(),
            id,
            kind,
            sent: self.step,
            state: MsgState::Pending,
        });
    }

    fn emit(&mut self, kind: &'static str, epoch: i64) {
        self.events.push(Event {
            kind,
            epoch,
            at: self.step,
        });
        if kind != "reset" {
            self.waiting_on_flow.clear();
        }
    }

    /// A trigger or trigger_start message: read and write in one step, as
    /// its writes are unconditional (or hold while the flow runs).
    fn apply_trigger(&mut self, kind: &Kind) {
        let before = self.store.clone();
        match kind {
            Kind::Trigger => {
                let w = state::decide_trigger(&self.store, &self.clock());
                assert!(
                    self.store.apply(&w),
                    "a trigger decided on the current state holds"
                );
            }
            Kind::Start(t) => {
                if let Some(w) =
                    state::decide_trigger_start(&self.store, &format!("t{t}"), self.now + DEADLINE)
                {
                    assert!(self.store.apply(&w));
                }
            }
            _ => unreachable!(),
        }
        if before.awaiting.is_some() && self.store.awaiting.is_none() {
            // A plain reset of a flow past its deadline drops the parked
            // request: the known limit (DESIGN, RELIABILITY).
            self.abandoned
                .extend(std::mem::take(&mut self.waiting_on_flow));
            self.abandoned_at.push(self.step);
        }
        if self.store.epoch() != before.epoch() {
            // Runs of the old epoch are invalidated (invariant 2).
            self.end_runs();
            self.emit("reset", self.store.epoch());
        }
    }

    /// A worker takes a message: a request or trigger end gets a handler
    /// (or joins the request in flight on that worker); triggers and
    /// starts are applied at once.
    fn deliver(&mut self, i: usize, w: usize) {
        let pending: Vec<usize> = (0..self.msgs.len())
            .filter(|&i| self.msgs[i].state == MsgState::Pending)
            .collect();
        if pending.is_empty() {
            return;
        }
        let msg = pending[i % pending.len()];
        let m = self.msgs[msg].clone();
        if let Some(busy) = self.workers[w].as_mut() {
            let leads = self.msgs[busy.msg].kind == Kind::Request;
            if m.kind == Kind::Request && leads && !busy.sealed {
                busy.followers.push((msg, m.rid.clone()));
                self.msgs[msg].state = MsgState::InFlight;
            }
            return;
        }
        self.msgs[msg].state = MsgState::InFlight;
        let subject = match &m.kind {
            Kind::Request => Subject::Request {
                rid: m.rid.clone(),
                message_id: m.id.clone(),
                input: None,
            },
            Kind::End(t) => Subject::TriggerEnd {
                trigger_id: format!("t{t}"),
                message_id: m.id.clone(),
            },
            k @ (Kind::Trigger | Kind::Start(_)) => {
                self.apply_trigger(&k.clone());
                self.msgs[msg].state = MsgState::Done;
                return;
            }
        };
        let handler = Handler::new(policy(), subject);
        let effect = handler.start();
        self.workers[w] = Some(Busy {
            msg,
            handler,
            effect,
            followers: vec![],
            read_by: 0,
            sealed: false,
            running: None,
        });
    }

    /// Feeds a worker's handler the outcome of its effect, and keeps the
    /// model's books from what the handler observed.
    fn feed(&mut self, w: usize, input: Input) {
        let clock = self.clock();
        let busy = self.workers[w].as_mut().expect("busy");
        // Followers share what defers the leader's answer when it
        // finishes (`finish`).
        let msgs = [busy.msg];
        let step = busy.handler.next(input, &clock);
        for note in &step.notes {
            match note {
                Note::Left { reason, .. } => {
                    self.deferred.extend(&msgs);
                    if *reason == LeaveReason::AlreadyParked {
                        self.waiting_on_flow.extend(&msgs);
                    }
                }
                Note::Parked { .. } => {
                    self.deferred.extend(&msgs);
                    self.waiting_on_flow.extend(&msgs);
                }
                Note::TakenOver { .. } => {
                    self.deferred.extend(&msgs);
                }
                Note::Adopted { .. } => self.adoptions += 1,
                Note::Failed { error, .. } if error.starts_with("gave up") => self.gave_up += 1,
                Note::ClaimWon {
                    reason: ClaimReason::TriggerEnded,
                    ..
                } => self.trigger_end_claims += 1,
                _ => {}
            }
        }
        if let Effect::Run { rid, epoch, .. } = &step.effect {
            self.run_started(w, rid.clone(), *epoch, &step.notes);
            let busy = self.workers[w].as_mut().expect("busy");
            busy.read_by = busy.followers.len();
        }
        self.workers[w].as_mut().expect("busy").effect = step.effect;
    }

    /// Invariants 1 and 5 when a processing run starts.
    fn run_started(&mut self, w: usize, rid: String, epoch: i64, notes: &[Note]) {
        assert!(
            !self.ready_epochs.contains(&epoch),
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

    /// No run in progress is live any more.
    fn end_runs(&mut self) {
        for b in self.workers.iter_mut().flatten() {
            b.running = None;
        }
    }

    /// Ends a worker's handling: the message is deleted (answered, or
    /// dead-lettered) or comes back; so do its coalesced followers.
    fn finish(&mut self, w: usize, done: bool) {
        let busy = self.workers[w].take().expect("busy");
        let state = if done {
            MsgState::Done
        } else {
            MsgState::Pending
        };
        self.msgs[busy.msg].state = state.clone();
        let leader = busy.msg;
        for (i, (f, _)) in busy.followers.into_iter().enumerate() {
            if done && !busy.sealed && i >= busy.read_by {
                // Joined after the leader's last read, which its answer
                // (left to another run, or parked) was decided on: it is
                // handled again (coalesce.rs, FlightOutcome::Again).
                self.msgs[f].state = MsgState::Pending;
                continue;
            }
            self.msgs[f].state = state.clone();
            // A follower shares its leader's deferred answer.
            if done && self.abandoned.contains(&leader) {
                self.abandoned.insert(f);
            }
            if done && self.deferred.contains(&leader) {
                self.deferred.insert(f);
            }
            if done && self.waiting_on_flow.contains(&leader) {
                self.waiting_on_flow.insert(f);
            }
        }
    }

    /// Carries out a worker's next effect, as `worker/execute.rs` does.
    fn perform(&mut self, w: usize) {
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
            Effect::Run { .. } => return,
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
                if self.store.apply(&write) {
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
                busy.sealed = true;
                let kind = match answer.kind {
                    EventKind::Hit => "hit",
                    EventKind::Ready => "ready",
                    EventKind::Failed => "failed",
                    EventKind::Reset => "reset",
                };
                self.emit(kind, answer.epoch);
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
    fn answer(&mut self, w: usize, result: impl FnOnce(i64) -> Result<Output, ProcessError>) {
        if let Some(Busy {
            effect: Effect::Run { epoch, .. },
            ..
        }) = &self.workers[w]
        {
            let input = Input::Ran(result(*epoch));
            self.feed(w, input);
        }
    }

    fn run_op(&mut self, op: Op) {
        self.step += 1;
        if std::env::var_os("MODEL_TRACE").is_some() {
            eprintln!("step {} {:?}\n    store={:?}", self.step, op, self.store);
        }
        match op {
            Op::Request => self.send(Kind::Request),
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
            Op::Trigger => self.send(Kind::Trigger),
            Op::Start(t) => self.send(Kind::Start(t)),
            Op::End(t) => self.send(Kind::End(t)),
            Op::Deliver(i, w) => self.deliver(i, w),
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
    }

    /// Invariant 2 after every step: READY holds a value of its own epoch.
    fn check(&self) {
        if self.store.status() == Status::Ready {
            assert_eq!(
                self.store.value.as_ref().and_then(|v| v["epoch"].as_i64()),
                Some(self.store.epoch()),
                "READY with a value of another epoch: {:?}",
                self.store
            );
        }
    }

    /// Lets everything finish: flows end, leases lapse, every message is
    /// delivered and every run completes.
    fn drain(&mut self) {
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
                            effect: Effect::Run { .. },
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_under_random_interleavings(ops in prop::collection::vec(op(), 1..150)) {
        let mut world = World::new();
        for op in ops {
            world.run_op(op);
        }
        world.drain();
        // Invariant 3: every request is answered by an event after it was
        // sent, except requests behind a flow abandoned at its deadline.
        for (i, m) in world.msgs.iter().enumerate() {
            if m.kind != Kind::Request || world.abandoned.contains(&i) {
                continue;
            }
            // The known limit: a request that left its answer to a run that
            // then parked behind a flow abandoned at its deadline.
            if world.deferred.contains(&i) && world.abandoned_at.iter().any(|&a| a >= m.sent) {
                continue;
            }
            let answered = world
                .events
                .iter()
                .any(|e| e.kind != "reset" && e.at >= m.sent);
            prop_assert!(answered, "request {} (sent at {}) unanswered; events {:?}", m.rid, m.sent, world.events);
        }
        prop_assert!(world.events.iter().filter(|e| e.kind == "ready").all(|e| world.ready_epochs.contains(&e.epoch)));
    }
}

/// The interleavings reach what the property is about: takeovers, owner
/// adoption, `max_attempts`, trigger ends that carry a parked request.
#[test]
fn the_random_interleavings_reach_every_path() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut takeovers, mut adoptions, mut gave_up, mut ended_claims) = (0, 0, 0, 0);
    for _ in 0..300 {
        let ops = prop::collection::vec(op(), 1..150)
            .new_tree(&mut runner)
            .expect("ops")
            .current();
        let mut world = World::new();
        for op in ops {
            world.run_op(op);
        }
        world.drain();
        takeovers += world.takeovers;
        adoptions += world.adoptions;
        gave_up += world.gave_up;
        ended_claims += world.trigger_end_claims;
    }
    assert!(takeovers > 0, "no lease takeover");
    assert!(adoptions > 0, "no owner adoption");
    assert!(gave_up > 0, "max_attempts never reached");
    assert!(
        ended_claims > 0,
        "no trigger end claimed for its parked request"
    );
}
