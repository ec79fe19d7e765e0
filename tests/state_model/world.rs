//! The simulated world of the property test: the store (one item's cache
//! state under DynamoDB's conditional-write semantics), the messages, three
//! workers, and the books the invariants are checked against.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use triggered_cache::handler::{Effect, Handler, Policy, Subject};
use triggered_cache::state::{self, Cache, Clock, Policies, Status};

pub(crate) const LEASE: i64 = 3_000;
pub(crate) const SKEW: i64 = 200;
pub(crate) const DEADLINE: i64 = 10_000;
pub(crate) const MAX_ATTEMPTS: u32 = 2;
pub(crate) const WORKERS: usize = 3;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Request,
    Trigger,
    Start(u8),
    End(u8),
    /// A scheduled trigger (`scheduled.rs`): its schedule id and when it
    /// is due.
    Scheduled {
        sid: String,
        at: i64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum MsgState {
    Pending,
    InFlight,
    Done,
}

#[derive(Clone, Debug)]
pub(crate) struct Msg {
    /// The SQS MessageId: the same across redeliveries.
    pub(crate) id: String,
    /// The request id: the MessageId, or a producer's own `requestId`
    /// shared by a retry (a redrive, a re-send) of the same request.
    pub(crate) rid: String,
    pub(crate) kind: Kind,
    pub(crate) sent: usize,
    pub(crate) state: MsgState,
}

/// A worker busy with a message: the real handler and its next effect.
#[derive(Debug)]
pub(crate) struct Busy {
    pub(crate) msg: usize,
    pub(crate) handler: Handler,
    pub(crate) effect: Effect,
    /// Requests for the same (key, set) coalesced with this one in-process
    /// (message, request id); a request leads them, a trigger end never.
    pub(crate) followers: Vec<(usize, String)>,
    /// How many followers had joined when the handler last read the item
    /// (or wrote it, or started its run): its decisions hold for them.
    pub(crate) read_by: usize,
    pub(crate) sealed: bool,
    /// The run this worker's processor is in (or whose outcome it is
    /// writing): request id and epoch.
    pub(crate) running: Option<(String, i64)>,
}

#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) kind: &'static str,
    pub(crate) epoch: i64,
    pub(crate) at: usize,
    /// The request ids it answers by id: its own, the coalesced ones and
    /// (answer_each_request) the listed ones; and how many more it answers
    /// by key and set only.
    pub(crate) names: Vec<String>,
    pub(crate) omitted: i64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
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
    /// A scheduled trigger due this many ms from now.
    Scheduled(i64),
    /// Deliver as [`Op::Deliver`]; a scheduled trigger not due is sent
    /// again and its worker crashes before deleting it (two copies).
    DeliverCrash(usize, usize),
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
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
        1 => (0i64..12_000).prop_map(Op::Scheduled),
        1 => (0usize..8, 0..WORKERS).prop_map(|(m, w)| Op::DeliverCrash(m, w)),
    ]
}

pub(crate) struct World {
    pub(crate) store: Cache,
    pub(crate) now: i64,
    pub(crate) step: usize,
    pub(crate) msgs: Vec<Msg>,
    pub(crate) workers: Vec<Option<Busy>>,
    pub(crate) events: Vec<Event>,
    /// Epochs that reached READY.
    pub(crate) ready_epochs: BTreeSet<i64>,
    pub(crate) takeovers: usize,
    pub(crate) adoptions: usize,
    /// Runs given up at `max_attempts`, and claims by a trigger end for
    /// its parked request: the paths the interleavings must reach.
    pub(crate) gave_up: usize,
    pub(crate) trigger_end_claims: usize,
    pub(crate) next_id: usize,
    /// `answer_each_request`'s bound, if on.
    pub(crate) answers: Option<usize>,
    /// How many times each schedule took effect (at most once).
    pub(crate) schedules: BTreeMap<String, usize>,
    /// How often each trigger_start message started its flow: at most once,
    /// however often it is redelivered.
    pub(crate) starts: BTreeMap<String, usize>,
    /// Parked requests a trigger sent back, scheduled copies sent again
    /// and copies that found their schedule applied: the paths the
    /// interleavings must reach.
    pub(crate) carried: usize,
    pub(crate) resent: usize,
    pub(crate) second_copies: usize,
    /// The objects of offloaded values (issue 14).
    pub(crate) objects: super::offload::Bucket,
    /// The set's cache policies and ttl (tests/state_model/policies.rs).
    pub(crate) policies: Policies,
    pub(crate) ttl: Option<i64>,
    pub(crate) policy_books: super::policies::Books,
}

pub(crate) fn policy(answers: Option<usize>) -> Policy {
    Policy {
        set: "s".into(),
        max_attempts: MAX_ATTEMPTS,
        backoff_base_ms: 500,
        backoff_cap_ms: 2_000,
        max_rehandles: 10,
        answer_each_request: answers,
        offload: true,
        policies: Default::default(),
    }
}

impl World {
    pub(crate) fn new(answers: Option<usize>) -> World {
        World {
            store: Cache::default(),
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
            next_id: 0,
            answers,
            schedules: BTreeMap::new(),
            starts: BTreeMap::new(),
            carried: 0,
            resent: 0,
            second_copies: 0,
            objects: Default::default(),
            policies: Policies::default(),
            ttl: None,
            policy_books: Default::default(),
        }
    }

    pub(crate) fn clock(&self) -> Clock {
        Clock {
            now: self.now,
            lease: LEASE,
            skew: SKEW,
            ttl: self.ttl,
        }
    }

    pub(crate) fn send(&mut self, kind: Kind) -> usize {
        self.next_id += 1;
        let id = format!("m{}", self.next_id);
        self.msgs.push(Msg {
            rid: id.clone(),
            id,
            kind,
            sent: self.step,
            state: MsgState::Pending,
        });
        self.msgs.len() - 1
    }

    pub(crate) fn emit(
        &mut self,
        kind: &'static str,
        epoch: i64,
        names: Vec<String>,
        omitted: i64,
    ) {
        self.events.push(Event {
            kind,
            epoch,
            at: self.step,
            names,
            omitted,
        });
    }

    /// A trigger or trigger_start message: read and write in one step, as
    /// its writes are unconditional (or hold while the flow runs). A start
    /// is recorded by its message id `id`, as the worker does, so its
    /// redelivery only re-publishes the reset.
    pub(crate) fn apply_trigger(&mut self, kind: &Kind, id: &str) {
        let before = self.store.clone();
        match kind {
            Kind::Trigger => {
                let mut w = state::decide_trigger(&self.store, &self.clock());
                self.carry_parked(&mut w);
                assert!(
                    self.store.apply(&w),
                    "a trigger decided on the current state holds"
                );
            }
            Kind::Start(t) => {
                if let Some(epoch) = state::applied_epoch(&self.store, id) {
                    self.emit("reset", epoch, vec![], 0);
                    return;
                }
                if let Some(w) =
                    state::decide_trigger_start(&self.store, &format!("t{t}"), self.now + DEADLINE)
                {
                    let w = state::scheduled(&self.store, id, w);
                    assert!(self.store.apply(&w));
                    let n = self.starts.entry(id.to_owned()).or_default();
                    *n += 1;
                    assert_eq!(*n, 1, "trigger_start {id} started its flow again");
                }
            }
            _ => unreachable!(),
        }
        self.after_trigger(&before);
    }

    /// A worker takes a message: a request or trigger end gets a handler
    /// (or joins the request in flight on that worker); triggers and
    /// starts are applied at once.
    pub(crate) fn deliver(&mut self, i: usize, w: usize, crash: bool) {
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
            Kind::Scheduled { .. } => {
                self.deliver_scheduled(msg, crash);
                return;
            }
            k @ (Kind::Trigger | Kind::Start(_)) => {
                self.apply_trigger(&k.clone(), &m.id);
                // A worker that dies after the write and before the delete
                // leaves a start to be redelivered, maybe after its flow
                // (and later ones) ended.
                let redelivered = crash && matches!(k, Kind::Start(_));
                self.msgs[msg].state = if redelivered {
                    MsgState::Pending
                } else {
                    MsgState::Done
                };
                return;
            }
        };
        let policy = Policy {
            policies: self.policies,
            ..policy(self.answers)
        };
        // A new message with an earlier request's id is an explicit retry
        // (a producer's retry, a redrive): `"retry": true`.
        let handler = Handler::new(policy, subject).retrying(m.rid != m.id);
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

    /// No run in progress is live any more.
    pub(crate) fn end_runs(&mut self) {
        for b in self.workers.iter_mut().flatten() {
            b.running = None;
        }
    }

    /// Ends a worker's handling: the message is deleted (answered, or
    /// dead-lettered) or comes back; so do its coalesced followers.
    pub(crate) fn finish(&mut self, w: usize, done: bool) {
        let busy = self.workers[w].take().expect("busy");
        let state = if done {
            MsgState::Done
        } else {
            MsgState::Pending
        };
        self.msgs[busy.msg].state = state.clone();
        for (i, (f, _)) in busy.followers.into_iter().enumerate() {
            if done && !busy.sealed && (self.answers.is_some() || i >= busy.read_by) {
                // Joined after the leader's last read, which its answer
                // (left to another run, or parked) was decided on: it is
                // handled again (coalesce.rs, FlightOutcome::Again). With
                // answer_each_request every follower of a leader that
                // listed only itself is handled again, to list itself.
                self.msgs[f].state = MsgState::Pending;
                continue;
            }
            self.msgs[f].state = state.clone();
        }
    }

    /// Invariant 2 after every step: READY holds a value of its own epoch.
    pub(crate) fn check(&self) {
        self.check_offload();
        if self.store.status() == Status::Ready && self.store.value_ref.is_none() {
            assert_eq!(
                self.store.value.as_ref().and_then(|v| v["epoch"].as_i64()),
                Some(self.store.epoch()),
                "READY with a value of another epoch: {:?}",
                self.store
            );
        }
    }
}
