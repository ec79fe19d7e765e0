//! The real request path against a model of DynamoDB's conditional
//! single-item writes, with no AWS: each simulated worker runs the real
//! [`Handler`] (the order of the steps, `src/handler/`) and carries out its
//! effects on an in-memory record (`Cache::apply`: all or nothing, only if
//! the condition holds), as `worker/execute.rs` does against DynamoDB.
//!
//! Random interleavings of requests, retries with shared request ids,
//! redeliveries, coalesced requests (and owner adoption), triggers, trigger
//! flows, processor answers (values, retryable and permanent failures, so
//! `max_attempts`), lease renewals, crashes and clock jumps across three
//! workers; after every step the invariants of DESIGN §5 are checked, and
//! at the end every request must have been answered.

#[path = "state_model/policies.rs"]
mod policies;
#[path = "state_model/steps.rs"]
mod steps;
#[path = "state_model/world.rs"]
mod world;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use world::{Kind, World, op};

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
