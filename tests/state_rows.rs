//! One test per row of DESIGN §4: what `state::decide_*` and the write
//! functions do to a record, applied with DynamoDB's conditional-write
//! semantics (`Cache::apply`). The order of the steps around them is
//! checked by the property test in tests/state_model.rs.

use serde_json::json;
use triggered_cache::state::{
    self, Cache, ClaimReason, Clock, Decision, LeaveReason, Outcome, Rejected, Run, Status,
};

const LEASE: i64 = 3_000;
const SKEW: i64 = 200;

fn clock(now: i64) -> Clock {
    Clock {
        now,
        lease: LEASE,
        skew: SKEW,
        ttl: Some(60_000),
    }
}

fn rec(status: Status) -> Cache {
    Cache {
        status: Some(status),
        epoch: Some(4),
        ..Cache::default()
    }
}

/// Two claimants that read the same state: the first write wins, the
/// second is rejected.
fn exactly_one_claim_wins(r: &Cache, now: i64) {
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
    for r in [rec(Status::Stale), Cache::default(), rec(Status::Failed)] {
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
    let mut r = Cache::default();
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
    // A trigger resets the item before the redelivery (the run was retried
    // later): the end carries the parked request and claims as it would.
    assert!(s.apply(&state::trigger()));
    assert!(matches!(
        state::decide_trigger_end(&s, "f", "end", &clock(0)),
        Decision::Process {
            run: Run::Claim(ClaimReason::Stale),
            ..
        }
    ));
    // An end of another flow is still ignored.
    assert_eq!(
        state::decide_trigger_end(&s, "other", "end", &clock(0)),
        Decision::Leave(LeaveReason::StaleTriggerEnd)
    );
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
