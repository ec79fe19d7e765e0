//! The cache policies in the property test: the same random interleavings
//! (triggers, flows, crashes, clock jumps) with `serve_stale`,
//! `failure_ttl` and `refresh_after` switched on at random (with a ttl),
//! and their invariants checked after every step beside those of DESIGN §5:
//! - a stale answer is always marked stale, and an unmarked `hit` or
//!   `ready` carries a value of the epoch it names;
//! - a stale answer is no older than `serve_stale`;
//! - a cached `failed` is answered only within `failure_ttl`, and never to
//!   an explicit retry;
//! - a refresh keeps the cache `READY` at its epoch, takes over another
//!   request's refresh only after that one's lease lapsed, and a trigger
//!   during a refresh wins (READY always holds a value of its own epoch).

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use triggered_cache::handler::{Answer, Input, Note};
use triggered_cache::state::{self, Cache, Cond, Field, Policies, Status, Val, Write};

use super::world::*;

/// What the policies did, for the test that they were reached.
#[derive(Debug, Default)]
pub(crate) struct Books {
    pub(crate) stale_answers: usize,
    pub(crate) failures_cached: usize,
    pub(crate) refreshes_committed: usize,
    pub(crate) refreshes_lost: usize,
    /// Epochs whose READY expired (ttl) and were claimed again: a second
    /// run of the same epoch is the point there.
    pub(crate) reclaimed: std::collections::BTreeSet<i64>,
}

fn policies() -> impl Strategy<Value = (Policies, Option<i64>)> {
    (
        prop::option::of(1_000i64..20_000),
        prop::option::of(1_000i64..10_000),
        prop::option::of(1_000i64..8_000),
    )
        .prop_map(|(serve_stale, failure_ttl, refresh_after)| {
            let ttl = refresh_after.map(|r| r + 6_000);
            let policies = Policies {
                serve_stale,
                failure_ttl,
                refresh_after,
            };
            (policies, ttl)
        })
}

fn run(policies: Policies, ttl: Option<i64>, ops: Vec<Op>) -> World {
    let mut world = World::new(None);
    world.policies = policies;
    world.ttl = ttl;
    for op in ops {
        world.run_op(op);
    }
    world.drain();
    world.check_schedules(true);
    world
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_with_cache_policies(
        (policies, ttl) in policies(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let world = run(policies, ttl, ops);
        // Invariant 3, as without the policies (a parked request behind
        // an expired flow too: a trigger carries it on).
        for m in &world.msgs {
            if m.kind != Kind::Request {
                continue;
            }
            let answered = world.events.iter().any(|e| e.kind != "reset" && e.at >= m.sent);
            prop_assert!(answered, "request {} (sent at {}) unanswered; events {:?}", m.rid, m.sent, world.events);
        }
        prop_assert!(world.events.iter().filter(|e| e.kind == "ready").all(|e| world.ready_epochs.contains(&e.epoch)));
    }
}

/// The interleavings reach what each policy is about.
#[test]
fn the_random_interleavings_reach_every_policy() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let all = Policies {
        serve_stale: Some(15_000),
        failure_ttl: Some(6_000),
        refresh_after: Some(3_000),
    };
    let mut books = Books::default();
    for _ in 0..200 {
        let ops = prop::collection::vec(op(), 1..150)
            .new_tree(&mut runner)
            .expect("ops")
            .current();
        let b = run(all, Some(9_000), ops).policy_books;
        books.stale_answers += b.stale_answers;
        books.failures_cached += b.failures_cached;
        books.refreshes_committed += b.refreshes_committed;
        books.refreshes_lost += b.refreshes_lost;
    }
    assert!(books.stale_answers > 0, "no stale answer");
    assert!(books.failures_cached > 0, "no cached failure answered");
    assert!(books.refreshes_committed > 0, "no refresh committed");
    assert!(books.refreshes_lost > 0, "no refresh lost to a trigger");
}

impl World {
    /// A completion event about to go out.
    pub(crate) fn check_answer(&mut self, answer: &Answer) {
        // An offloaded value is read back from its object, as the executor
        // does before it publishes.
        let value = answer.value.clone().or_else(|| {
            let key = answer.value_ref.as_ref()?["key"].as_str()?;
            self.objects.get(key).cloned()
        });
        let Some(value_epoch) = value.as_ref().and_then(|v| v["epoch"].as_i64()) else {
            return;
        };
        match answer.stale {
            None => assert_eq!(
                value_epoch, answer.epoch,
                "a value of another epoch answered without \"stale\": {answer:?}"
            ),
            Some(stale) => {
                let max_age = self
                    .policies
                    .serve_stale
                    .expect("a stale answer without serve_stale");
                assert_eq!(stale.value_epoch, value_epoch, "{answer:?}");
                assert!(stale.value_epoch <= answer.epoch, "{answer:?}");
                assert!(
                    stale.age_ms <= max_age,
                    "older than serve_stale: {answer:?}"
                );
                self.policy_books.stale_answers += 1;
            }
        }
    }

    /// What a worker's handler noted (right after the effect it answers,
    /// with the clock it decided with).
    pub(crate) fn policy_note(&mut self, w: usize, note: &Note) {
        match note {
            Note::FailureCached { failed_at, .. } => {
                let ttl = self.policies.failure_ttl.expect("failure_ttl is off");
                let at = failed_at.expect("a cached failure records when");
                assert!(self.now < at + ttl, "a failure answered past failure_ttl");
                let msg = &self.msgs[self.workers[w].as_ref().expect("busy").msg];
                assert_eq!(msg.rid, msg.id, "an explicit retry answered from the cache");
                self.policy_books.failures_cached += 1;
            }
            Note::RefreshLost { .. } => self.policy_books.refreshes_lost += 1,
            _ => {}
        }
    }

    /// A write that held, with the record before it.
    pub(crate) fn check_policy_write(
        &mut self,
        _w: usize,
        before: &Cache,
        write: &Write,
        commit: bool,
    ) {
        let after = &self.store;
        if let (Some(old), Some(new)) = (&before.refresh_owner, &after.refresh_owner)
            && old != new
        {
            let lapsed = before.refresh_lease.is_none_or(|l| self.now > l + SKEW);
            assert!(lapsed, "a refresh taken over from a live lease: {before:?}");
        }
        let refresh = write
            .conds
            .contains(&Cond::Eq(Field::Status, Val::from(Status::Ready)));
        if commit && refresh {
            assert_eq!(before.status(), Status::Ready);
            assert_eq!(after.status(), Status::Ready, "a refresh left READY");
            assert_eq!(before.epoch(), after.epoch(), "a refresh moved the epoch");
            self.policy_books.refreshes_committed += 1;
        }
        if before.status() == Status::Ready
            && after.status() == Status::Processing
            && before.epoch() == after.epoch()
        {
            self.policy_books.reclaimed.insert(after.epoch());
        }
    }

    /// A refresh run starts on worker `w`, right after its claim held.
    pub(crate) fn refresh_started(&mut self, _w: usize, rid: &str, epoch: i64) {
        assert!(
            self.policies.refresh_after.is_some(),
            "a refresh without refresh_after"
        );
        assert_eq!(self.store.status(), Status::Ready);
        assert_eq!(self.store.epoch(), epoch);
        assert_eq!(self.store.refresh_owner.as_deref(), Some(rid));
    }

    /// The heartbeat renews a refresh's lease, if its worker refreshes.
    pub(crate) fn renew_refresh(&mut self, w: usize) {
        if let Some(Busy {
            effect: triggered_cache::handler::Effect::Refresh { rid, epoch, .. },
            ..
        }) = &self.workers[w]
            && !self
                .store
                .apply(&state::renew_refresh(rid, *epoch, &self.clock()))
        {
            self.feed(w, Input::Invalidated(self.store.clone()));
        }
    }
}
