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
//! workers; scheduled triggers sent again (and their workers crashing
//! between the re-send and the delete), parked requests a trigger carries
//! on past an expired flow, and (a second property) every request answered
//! by its own id with `answer_each_request` and a small bound. After every
//! step the invariants of DESIGN §5 are checked, and at the end every
//! request must have been answered and every schedule taken effect once.

#[path = "state_model/offload.rs"]
mod offload;
#[path = "state_model/policies.rs"]
mod policies;
#[path = "state_model/scheduled.rs"]
mod scheduled;
#[path = "state_model/steps.rs"]
mod steps;
#[path = "state_model/world.rs"]
mod world;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use world::{Kind, World, op};

/// Runs `ops`, lets everything settle and checks the invariants that hold
/// at the end: every request answered (by its own id, with
/// `answer_each_request`), every schedule taken effect once.
fn settle(ops: Vec<world::Op>, answers: Option<usize>) -> World {
    let mut world = World::new(answers);
    for op in ops {
        world.run_op(op);
    }
    world.drain();
    world.check_schedules(true);
    // Invariant 3: every request is answered by an event after it was sent
    // (a parked request behind an expired flow too: a trigger carries it
    // on); by its own id when every request is to be answered by id, or
    // by an event that says how many it answers by key and set only.
    for m in &world.msgs {
        if m.kind != Kind::Request {
            continue;
        }
        let answered = world.events.iter().any(|e| {
            e.kind != "reset"
                && e.at >= m.sent
                && (answers.is_none() || e.names.contains(&m.rid) || e.omitted > 0)
        });
        assert!(
            answered,
            "request {} (sent at {}) unanswered; events {:?}",
            m.rid, m.sent, world.events
        );
    }
    assert!(
        world
            .events
            .iter()
            .filter(|e| e.kind == "ready")
            .all(|e| world.ready_epochs.contains(&e.epoch))
    );
    world
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_under_random_interleavings(ops in prop::collection::vec(op(), 1..150)) {
        settle(ops, None);
    }

    #[test]
    fn every_request_is_answered_by_its_id(ops in prop::collection::vec(op(), 1..150)) {
        settle(ops, Some(3));
    }
}

/// The interleavings reach what the property is about: takeovers, owner
/// adoption, `max_attempts`, trigger ends that carry a parked request,
/// triggers that carry one past an expired flow, scheduled triggers sent
/// again and their second copies, events that list requests by id and
/// events past the list's bound.
#[test]
fn the_random_interleavings_reach_every_path() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut takeovers, mut adoptions, mut gave_up, mut ended_claims) = (0, 0, 0, 0);
    let (mut carried, mut resent, mut second_copies, mut listed, mut omitted) = (0, 0, 0, 0, 0);
    for i in 0..300 {
        let ops = prop::collection::vec(op(), 1..150)
            .new_tree(&mut runner)
            .expect("ops")
            .current();
        let world = settle(ops, (i % 2 == 0).then_some(3));
        takeovers += world.takeovers;
        adoptions += world.adoptions;
        gave_up += world.gave_up;
        ended_claims += world.trigger_end_claims;
        carried += world.carried;
        resent += world.resent;
        second_copies += world.second_copies;
        listed += world.events.iter().filter(|e| e.names.len() > 1).count();
        omitted += world.events.iter().filter(|e| e.omitted > 0).count();
    }
    assert!(
        carried > 0,
        "no parked request carried past an expired flow"
    );
    assert!(resent > 0, "no scheduled trigger sent again");
    assert!(second_copies > 0, "no second copy of a schedule");
    assert!(listed > 0, "no event answered other requests by id");
    assert!(omitted > 0, "no event past the bound of its list");
    assert!(takeovers > 0, "no lease takeover");
    assert!(adoptions > 0, "no owner adoption");
    assert!(gave_up > 0, "max_attempts never reached");
    assert!(
        ended_claims > 0,
        "no trigger end claimed for its parked request"
    );
}
