//! The cache state machine against a model of DynamoDB's conditional
//! single-item writes, with no AWS: `Record::apply` is the model (all or
//! nothing, only if the condition holds), and every handler step does what
//! `worker.rs` does with the same `state::decide_*` functions.
//!
//! Random interleavings of requests, redeliveries, triggers, trigger flows,
//! crashes and clock jumps across three simulated workers; after every step
//! the invariants of DESIGN §5 are checked, and at the end every request
//! must have been answered.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::json;
use triggered_cache::state::{
    self, ClaimReason, Clock, Decision, LeaveReason, Outcome, Record, Rejected, Run, Status, Write,
};

const LEASE: i64 = 3_000;
const SKEW: i64 = 200;
const DEADLINE: i64 = 10_000;
const MAX_ATTEMPTS: i64 = 3;
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

#[derive(Clone, Debug)]
enum Work {
    Idle,
    /// Decided on a read that may be stale by the time the write happens.
    Deciding {
        msg: usize,
        decision: Decision,
        /// The epoch as read: a hit or a re-published event is about it,
        /// whatever happened since (as in worker.rs).
        read_epoch: i64,
        abandons: usize,
    },
    Processing {
        msg: usize,
        rid: String,
        epoch: i64,
    },
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
    Heartbeat(usize),
    Commit(usize),
    Retryable(usize),
    Permanent(usize),
    Step(usize),
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
        2 => (0..WORKERS).prop_map(Op::Heartbeat),
        3 => (0..WORKERS).prop_map(Op::Commit),
        1 => (0..WORKERS).prop_map(Op::Retryable),
        1 => (0..WORKERS).prop_map(Op::Permanent),
        4 => (0..WORKERS).prop_map(Op::Step),
        1 => (0..WORKERS).prop_map(Op::Crash),
        2 => (0i64..5_000).prop_map(Op::Tick),
    ]
}

struct World {
    store: Record,
    now: i64,
    step: usize,
    msgs: Vec<Msg>,
    work: Vec<Work>,
    events: Vec<Event>,
    /// Epochs that reached READY.
    ready_epochs: BTreeSet<i64>,
    /// Live runs per epoch: request ids.
    live: BTreeMap<i64, BTreeSet<String>>,
    takeovers: usize,
    /// Requests waiting on a trigger flow (parked or behind the parked one).
    waiting_on_flow: BTreeSet<usize>,
    /// Requests whose flow was abandoned at its deadline (the known limit).
    abandoned: BTreeSet<usize>,
    /// How many flows were abandoned so far.
    abandons: usize,
    /// When flows were abandoned.
    abandoned_at: Vec<usize>,
    /// Requests that left their answer to another request's run (claim
    /// lost, owner elsewhere, parked).
    deferred: BTreeSet<usize>,
    next_id: usize,
}

impl World {
    fn new() -> World {
        World {
            store: Record::default(),
            now: 1_000_000,
            step: 0,
            msgs: vec![],
            work: vec![Work::Idle; WORKERS],
            events: vec![],
            ready_epochs: BTreeSet::new(),
            live: BTreeMap::new(),
            takeovers: 0,
            waiting_on_flow: BTreeSet::new(),
            abandoned: BTreeSet::new(),
            abandons: 0,
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

    fn decide(&self, msg: usize) -> Decision {
        let m = &self.msgs[msg];
        match &m.kind {
            Kind::Request => state::decide_request(&self.store, &m.rid, &m.id, &self.clock()),
            Kind::End(t) => {
                state::decide_trigger_end(&self.store, &format!("t{t}"), &m.rid, &self.clock())
            }
            _ => unreachable!("triggers are applied at once"),
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
            self.abandons += 1;
            self.abandoned_at.push(self.step);
        }
        if self.store.epoch() != before.epoch() {
            self.live.clear();
            self.emit("reset", self.store.epoch());
        }
    }

    fn finish(&mut self, w: usize, msg: usize, answered: bool) {
        self.work[w] = Work::Idle;
        self.msgs[msg].state = if answered {
            MsgState::Done
        } else {
            MsgState::Pending
        };
    }

    fn end_run(&mut self, rid: &str, epoch: i64) {
        if let Some(s) = self.live.get_mut(&epoch) {
            s.remove(rid);
        }
    }

    /// Performs a worker's pending decision (the write may be rejected).
    fn perform(&mut self, w: usize) {
        let Work::Deciding {
            msg,
            decision,
            read_epoch,
            abandons,
        } = self.work[w].clone()
        else {
            return;
        };
        let rid = self.msgs[msg].rid.clone();
        let apply = |store: &mut Record, write: &Write| store.apply(write);
        match decision {
            Decision::Hit => {
                self.emit("hit", read_epoch);
                self.finish(w, msg, true);
            }
            Decision::Republish(Outcome::Ready) => {
                self.emit("ready", read_epoch);
                self.finish(w, msg, true);
            }
            Decision::Republish(Outcome::Failed) => {
                self.emit("failed", read_epoch);
                self.finish(w, msg, true);
            }
            Decision::Leave(reason) => {
                self.deferred.insert(msg);
                if reason == LeaveReason::AlreadyParked {
                    if abandons != self.abandons {
                        // It read the flow before it was abandoned.
                        self.abandoned.insert(msg);
                    } else {
                        self.waiting_on_flow.insert(msg);
                    }
                }
                self.finish(w, msg, true);
            }
            Decision::Park { write } => {
                if apply(&mut self.store, &write) {
                    self.deferred.insert(msg);
                    self.waiting_on_flow.insert(msg);
                    self.finish(w, msg, true);
                } else {
                    self.redecide(w, msg);
                }
            }
            Decision::Unblock { write } => {
                if apply(&mut self.store, &write) {
                    self.finish(w, msg, true);
                } else {
                    self.redecide(w, msg);
                }
            }
            Decision::Process { write, epoch, run } => {
                let others: Vec<String> = self
                    .live
                    .get(&epoch)
                    .map(|s| s.iter().filter(|r| **r != rid).cloned().collect())
                    .unwrap_or_default();
                if !apply(&mut self.store, &write) {
                    self.redecide(w, msg);
                    return;
                }
                // Invariant 5: no second run for an epoch that reached READY.
                assert!(
                    !self.ready_epochs.contains(&epoch),
                    "a run started for epoch {epoch}, already READY"
                );
                // Invariant 1: one run per epoch, except after a takeover.
                if !others.is_empty() {
                    assert_eq!(
                        run,
                        Run::Claim(ClaimReason::LeaseExpired),
                        "second live run for epoch {epoch} besides {others:?}"
                    );
                    self.takeovers += 1;
                    // The displaced owner runs on as a zombie whose writes
                    // will all be rejected; it is no longer a live run.
                    self.live.remove(&epoch);
                }
                if self.store.attempts() > MAX_ATTEMPTS {
                    // The worker fails it before running (worker.rs).
                    let f = state::fail(&rid, epoch, "gave up", &self.msgs[msg].id);
                    assert!(apply(&mut self.store, &f));
                    self.emit("failed", epoch);
                    self.finish(w, msg, true);
                    return;
                }
                if let Kind::End(_) = self.msgs[msg].kind {
                    // As worker.rs: a claimed end carries the parked request.
                    self.msgs[msg].kind = Kind::Request;
                }
                self.live.entry(epoch).or_default().insert(rid.clone());
                self.work[w] = Work::Processing { msg, rid, epoch };
            }
        }
    }

    fn redecide(&mut self, w: usize, msg: usize) {
        let decision = self.decide(msg);
        let abandons = self.abandons;
        self.work[w] = Work::Deciding {
            msg,
            decision,
            read_epoch: self.store.epoch(),
            abandons,
        };
    }

    /// A write by the owner of a run was rejected.
    fn rejected(&mut self, w: usize, msg: usize, rid: &str, epoch: i64) {
        self.end_run(rid, epoch);
        match state::classify_rejection(&self.store, rid, epoch) {
            Rejected::TakenOver => {
                self.deferred.insert(msg);
                self.finish(w, msg, true)
            }
            Rejected::Rehandle => self.redecide(w, msg),
        }
    }

    fn run_op(&mut self, op: Op) {
        self.step += 1;
        if std::env::var_os("MODEL_TRACE").is_some() {
            eprintln!(
                "step {} {:?} work={:?}\n    store={:?}",
                self.step, op, self.work, self.store
            );
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
            Op::Deliver(i, w) => {
                let pending: Vec<usize> = (0..self.msgs.len())
                    .filter(|&i| self.msgs[i].state == MsgState::Pending)
                    .collect();
                if pending.is_empty() || !matches!(self.work[w], Work::Idle) {
                    return;
                }
                let msg = pending[i % pending.len()];
                self.msgs[msg].state = MsgState::InFlight;
                match self.msgs[msg].kind.clone() {
                    k @ (Kind::Trigger | Kind::Start(_)) => {
                        self.apply_trigger(&k);
                        self.msgs[msg].state = MsgState::Done;
                    }
                    _ => self.redecide(w, msg),
                }
            }
            Op::Step(w) => self.perform(w),
            Op::Heartbeat(w) => {
                if let Work::Processing { msg, rid, epoch } = self.work[w].clone()
                    && !self.store.apply(&state::renew(&rid, epoch, &self.clock()))
                {
                    self.rejected(w, msg, &rid, epoch);
                }
            }
            Op::Commit(w) => {
                if let Work::Processing { msg, rid, epoch } = self.work[w].clone() {
                    let commit = state::commit(&rid, epoch, json!({"epoch": epoch}), self.now);
                    if self.store.apply(&commit) {
                        self.end_run(&rid, epoch);
                        self.ready_epochs.insert(epoch);
                        self.emit("ready", epoch);
                        self.finish(w, msg, true);
                    } else {
                        self.rejected(w, msg, &rid, epoch);
                    }
                }
            }
            Op::Retryable(w) => {
                if let Work::Processing { msg, rid, epoch } = self.work[w].clone() {
                    let write = if self.store.attempts() >= MAX_ATTEMPTS {
                        state::fail(&rid, epoch, "gave up", &self.msgs[msg].id)
                    } else {
                        state::retry_later(&rid, epoch, "busy", self.now + 1_000 + LEASE)
                    };
                    if self.store.apply(&write) {
                        self.end_run(&rid, epoch);
                        let failed = self.store.status() == Status::Failed;
                        if failed {
                            self.emit("failed", epoch);
                        }
                        self.finish(w, msg, failed);
                    } else {
                        self.rejected(w, msg, &rid, epoch);
                    }
                }
            }
            Op::Permanent(w) => {
                if let Work::Processing { msg, rid, epoch } = self.work[w].clone() {
                    let fail = state::fail(&rid, epoch, "bad", &self.msgs[msg].id);
                    if self.store.apply(&fail) {
                        self.end_run(&rid, epoch);
                        self.emit("failed", epoch);
                        self.finish(w, msg, true);
                    } else {
                        self.rejected(w, msg, &rid, epoch);
                    }
                }
            }
            Op::Crash(w) => match self.work[w].clone() {
                Work::Idle => {}
                Work::Deciding { msg, .. } => self.finish(w, msg, false),
                Work::Processing { msg, rid, epoch } => {
                    self.end_run(&rid, epoch);
                    self.finish(w, msg, false);
                }
            },
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
                && self.work.iter().all(|w| matches!(w, Work::Idle))
            {
                return;
            }
            self.run_op(Op::Tick(LEASE + SKEW + 2_000));
            for w in 0..WORKERS {
                for _ in 0..20 {
                    match self.work[w] {
                        Work::Idle => break,
                        Work::Deciding { .. } => self.run_op(Op::Step(w)),
                        Work::Processing { .. } => self.run_op(Op::Commit(w)),
                    }
                }
                if matches!(self.work[w], Work::Idle) {
                    self.run_op(Op::Deliver(0, w));
                }
            }
        }
        panic!("the world did not settle: {:?} {:?}", self.store, self.work);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_under_random_interleavings(ops in prop::collection::vec(op(), 1..120)) {
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

fn clock(now: i64) -> Clock {
    Clock {
        now,
        lease: LEASE,
        skew: SKEW,
        ttl: Some(60_000),
    }
}

fn rec(status: Status) -> Record {
    Record {
        status: Some(status),
        epoch: Some(4),
        ..Record::default()
    }
}

/// Two claimants that read the same state: the first write wins, the
/// second is rejected.
fn exactly_one_claim_wins(r: &Record, now: i64) {
    let Decision::Process { write: a, .. } = state::decide_request(r, "a", "a", &clock(now)) else {
        panic!("a claims")
    };
    let Decision::Process { write: b, .. } = state::decide_request(r, "b", "b", &clock(now)) else {
        panic!("b claims")
    };
    let mut store = r.clone();
    assert!(store.apply(&a));
    assert!(!store.apply(&b), "the second claimant must lose");
    assert_eq!(store.request_id.as_deref(), Some("a"));
    assert_eq!(store.status(), Status::Processing);
}

#[test]
fn ready_is_a_hit() {
    let mut r = rec(Status::Ready);
    r.ready_at = Some(1_000);
    assert_eq!(
        state::decide_request(&r, "x", "x", &clock(2_000)),
        Decision::Hit
    );
}

#[test]
fn ready_past_its_ttl_is_claimed() {
    let mut r = rec(Status::Ready);
    r.ready_at = Some(1_000);
    assert!(matches!(
        state::decide_request(&r, "x", "x", &clock(61_000)),
        Decision::Process {
            run: Run::Claim(ClaimReason::TtlExpired),
            ..
        }
    ));
    exactly_one_claim_wins(&r, 61_000);
}

#[test]
fn stale_absent_and_failed_are_claimed_by_exactly_one() {
    for r in [rec(Status::Stale), Record::default(), rec(Status::Failed)] {
        assert!(matches!(
            state::decide_request(&r, "x", "x", &clock(0)),
            Decision::Process { .. }
        ));
        exactly_one_claim_wins(&r, 0);
    }
}

#[test]
fn a_redelivery_of_the_owner_continues_its_run() {
    let mut r = rec(Status::Processing);
    r.request_id = Some("x".into());
    r.lease_until = Some(10_000);
    r.attempts = Some(1);
    let Decision::Process { write, epoch, run } =
        state::decide_request(&r, "x", "x", &clock(5_000))
    else {
        panic!()
    };
    assert_eq!((epoch, run), (4, Run::Continue));
    let mut s = r.clone();
    assert!(s.apply(&write));
    assert_eq!(s.attempts, Some(2));
}

#[test]
fn a_live_owner_is_left_alone_and_an_expired_one_taken_over_after_the_skew() {
    let mut r = rec(Status::Processing);
    r.request_id = Some("owner".into());
    r.lease_until = Some(10_000);
    assert_eq!(
        state::decide_request(&r, "x", "x", &clock(10_000 + SKEW)),
        Decision::Leave(LeaveReason::OwnedElsewhere)
    );
    assert!(matches!(
        state::decide_request(&r, "x", "x", &clock(10_001 + SKEW)),
        Decision::Process {
            run: Run::Claim(ClaimReason::LeaseExpired),
            ..
        }
    ));
    exactly_one_claim_wins(&r, 10_001 + SKEW);
}

#[test]
fn a_request_during_a_flow_parks_once() {
    let mut r = rec(Status::Triggered);
    r.trigger_id = Some("f".into());
    r.trigger_deadline = Some(50_000);
    let Decision::Park { write } = state::decide_request(&r, "x", "x", &clock(0)) else {
        panic!()
    };
    let mut s = r.clone();
    assert!(s.apply(&write));
    assert_eq!(s.awaiting.as_deref(), Some("x"));
    assert_eq!(
        state::decide_request(&s, "y", "y", &clock(0)),
        Decision::Leave(LeaveReason::AlreadyParked)
    );
    // A second parker that read the unparked state loses.
    let Decision::Park { write: w2 } = state::decide_request(&r, "y", "y", &clock(0)) else {
        panic!()
    };
    assert!(!s.apply(&w2));
}

#[test]
fn a_flow_past_its_deadline_is_claimed() {
    let mut r = rec(Status::Triggered);
    r.trigger_id = Some("f".into());
    r.trigger_deadline = Some(50_000);
    assert!(matches!(
        state::decide_request(&r, "x", "x", &clock(50_001 + SKEW)),
        Decision::Process {
            run: Run::Claim(ClaimReason::TriggerDeadlinePassed),
            ..
        }
    ));
}

#[test]
fn ready_or_failed_with_the_own_request_id_republishes() {
    let mut r = rec(Status::Ready);
    r.request_id = Some("x".into());
    assert_eq!(
        state::decide_request(&r, "x", "x", &clock(0)),
        Decision::Republish(Outcome::Ready)
    );
    r.status = Some(Status::Failed);
    r.failed_message_id = Some("x".into());
    assert_eq!(
        state::decide_request(&r, "x", "x", &clock(0)),
        Decision::Republish(Outcome::Failed)
    );
}

/// DESIGN §4: `FAILED` → claim. Only a redelivery of the very message
/// whose run recorded the failure re-publishes it; a new message with the
/// same `requestId` (a redrive, a producer's retry) runs again.
#[test]
fn failed_is_retried_by_a_new_message_with_the_same_request_id() {
    let mut r = Record::default();
    let Decision::Process { write, epoch, .. } =
        state::decide_request(&r, "own-rid", "msg-1", &clock(0))
    else {
        panic!("the first message claims")
    };
    assert!(r.apply(&write));
    assert!(r.apply(&state::fail("own-rid", epoch, "bad input", "msg-1")));
    assert_eq!(r.status(), Status::Failed);
    // The worker died before dead-lettering msg-1: its redelivery is
    // dead-lettered again with the same failed event, without a run.
    assert_eq!(
        state::decide_request(&r, "own-rid", "msg-1", &clock(1)),
        Decision::Republish(Outcome::Failed)
    );
    // The redriven copy is a new SQS message with the same request id.
    let Decision::Process { write, run, .. } =
        state::decide_request(&r, "own-rid", "msg-2", &clock(2))
    else {
        panic!("a new message with the same request id claims")
    };
    assert_eq!(run, Run::Claim(ClaimReason::Failed));
    assert!(r.apply(&write));
    assert_eq!(r.status(), Status::Processing);
    assert_eq!(r.attempts(), 1, "a new attempt starts counting afresh");
    assert!(r.apply(&state::commit("own-rid", epoch, json!({"epoch": epoch}), 3)));
    assert_eq!(r.status(), Status::Ready);
}

#[test]
fn a_trigger_during_processing_makes_the_commit_fail_and_the_request_rehandle() {
    let mut s = rec(Status::Stale);
    let Decision::Process { write, epoch, .. } =
        state::decide_request(&s.clone(), "x", "x", &clock(0))
    else {
        panic!()
    };
    assert!(s.apply(&write));
    assert!(s.apply(&state::decide_trigger(&s.clone(), &clock(0))));
    assert!(!s.apply(&state::commit("x", epoch, json!(1), 0)));
    assert_eq!(
        state::classify_rejection(&s, "x", epoch),
        Rejected::Rehandle
    );
    assert!(!s.apply(&state::renew("x", epoch, &clock(0))));
}

#[test]
fn a_takeover_makes_the_old_owners_commit_fail_quietly() {
    let mut s = rec(Status::Stale);
    let Decision::Process { write, epoch, .. } =
        state::decide_request(&s.clone(), "old", "old", &clock(0))
    else {
        panic!()
    };
    assert!(s.apply(&write));
    let later = LEASE + SKEW + 1;
    let Decision::Process { write: take, .. } =
        state::decide_request(&s.clone(), "new", "new", &clock(later))
    else {
        panic!()
    };
    assert!(s.apply(&take));
    assert!(!s.apply(&state::commit("old", epoch, json!(1), later)));
    assert_eq!(
        state::classify_rejection(&s, "old", epoch),
        Rejected::TakenOver
    );
}

#[test]
fn trigger_end_claims_for_a_parked_request_or_unblocks_or_is_ignored() {
    let mut r = rec(Status::Triggered);
    r.trigger_id = Some("f".into());
    r.trigger_deadline = Some(50_000);
    let Decision::Unblock { write } = state::decide_trigger_end(&r, "f", "end", &clock(0)) else {
        panic!()
    };
    let mut s = r.clone();
    assert!(s.apply(&write));
    assert_eq!(s.status(), Status::Stale);
    assert_eq!(
        state::decide_trigger_end(&r, "other", "end", &clock(0)),
        Decision::Leave(LeaveReason::StaleTriggerEnd)
    );
    r.awaiting = Some("parked".into());
    let Decision::Process { write, run, .. } = state::decide_trigger_end(&r, "f", "end", &clock(0))
    else {
        panic!()
    };
    assert_eq!(run, Run::Claim(ClaimReason::TriggerEnded));
    let mut s = r.clone();
    assert!(s.apply(&write));
    assert_eq!(s.request_id.as_deref(), Some("end"));
    assert_eq!(s.awaiting, None);
    // Its redelivery continues the run.
    assert!(matches!(
        state::decide_trigger_end(&s, "f", "end", &clock(0)),
        Decision::Process {
            run: Run::Continue,
            ..
        }
    ));
}

#[test]
fn a_trigger_during_a_flow_keeps_the_flow_and_its_parked_request() {
    let mut r = rec(Status::Triggered);
    r.trigger_id = Some("f".into());
    r.trigger_deadline = Some(50_000);
    r.awaiting = Some("p".into());
    let mut s = r.clone();
    assert!(s.apply(&state::decide_trigger(&r, &clock(0))));
    assert_eq!(
        (s.status(), s.epoch(), s.awaiting.as_deref()),
        (Status::Triggered, 5, Some("p"))
    );
    assert_eq!(
        state::decide_trigger_start(&s, "f", 99),
        None,
        "a redelivered start changes nothing"
    );
}

#[test]
fn a_start_of_the_flow_that_ended_changes_nothing() {
    // The flow "f" ran and ended (nothing parked): STALE, endedTriggerId f.
    let mut r = rec(Status::Triggered);
    r.trigger_id = Some("f".into());
    r.trigger_deadline = Some(50_000);
    let Decision::Unblock { write } = state::decide_trigger_end(&r, "f", "end", &clock(0)) else {
        panic!()
    };
    let mut s = r.clone();
    assert!(s.apply(&write));
    assert_eq!(s.ended_trigger_id.as_deref(), Some("f"));
    // Its trigger_start comes back (the worker died before deleting it):
    // the flow must not start again and block the cache until its deadline.
    assert_eq!(state::decide_trigger_start(&s, "f", 99), None);
    // The same when the end lands between the start's read and its write.
    let start = state::decide_trigger_start(&r, "g", 99).expect("another flow starts");
    let mut ended = s.clone();
    let late = state::decide_trigger_start(&rec(Status::Stale), "f", 99).unwrap();
    assert!(!ended.apply(&late), "the late start's write is rejected");
    assert_eq!(ended, s);
    // A new flow starts as usual, and after a parked request claims at
    // the end the ended id is recorded too.
    assert!(s.apply(&start));
    assert_eq!(
        (s.status(), s.trigger_id.as_deref()),
        (Status::Triggered, Some("g"))
    );
    s.awaiting = Some("p".into());
    let Decision::Process { write, .. } = state::decide_trigger_end(&s, "g", "end2", &clock(0))
    else {
        panic!()
    };
    assert!(s.apply(&write));
    assert_eq!(s.ended_trigger_id.as_deref(), Some("g"));
    assert_eq!(state::decide_trigger_start(&s, "g", 99), None);
}

#[test]
fn backoff_doubles_and_is_capped() {
    assert_eq!(state::backoff(1, 1_000, 10_000), 1_000);
    assert_eq!(state::backoff(2, 1_000, 10_000), 2_000);
    assert_eq!(state::backoff(3, 1_000, 10_000), 4_000);
    assert_eq!(state::backoff(9, 1_000, 10_000), 10_000);
}
