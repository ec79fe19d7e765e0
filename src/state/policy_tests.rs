//! One test per row of the cache policies (state/policy.rs).

use serde_json::json;

use super::*;
use crate::state::{self, LeaveReason};

const NOW: i64 = 1_000_000;

fn clock() -> Clock {
    Clock {
        now: NOW,
        lease: 30_000,
        skew: 1_000,
        ttl: Some(600_000),
    }
}

fn all(ms: i64) -> Policies {
    Policies {
        serve_stale: Some(ms),
        failure_ttl: Some(ms),
        refresh_after: Some(ms),
    }
}

/// READY at epoch 3 with a value committed `age` ms ago.
fn ready(age: i64) -> Cache {
    let mut rec = Cache::default();
    assert!(rec.apply(&Write {
        conds: vec![],
        ops: vec![
            Op::Set(Field::Status, Status::Processing.into()),
            Op::Set(Field::RequestId, Val::Str("r0".into())),
            Op::Set(Field::Epoch, Val::Num(3)),
        ],
    }));
    assert!(rec.apply(&state::commit("r0", 3, json!({"v": 3}), NOW - age)));
    rec
}

fn decide(rec: &Cache, policies: &Policies, retry: bool) -> Decision {
    decide_with_policies(rec, "r1", "m1", &clock(), policies, retry)
}

#[test]
fn a_commit_records_the_epoch_of_its_value() {
    assert_eq!(ready(0).value_epoch, Some(3));
}

#[test]
fn a_trigger_keeps_the_value_and_serve_stale_answers_it_marked() {
    let mut rec = ready(5_000);
    assert!(rec.apply(&state::trigger()));
    let decision = decide(&rec, &all(10_000), false);
    assert!(matches!(decision, Decision::Process { .. }), "{decision:?}");
    let (value, stale) = stale_value(&rec, &decision, &clock(), &all(10_000)).expect("stale");
    assert_eq!(value, json!({"v": 3}));
    assert_eq!(
        stale,
        Stale {
            value_epoch: 3,
            age_ms: 5_000
        }
    );
    assert_eq!(rec.epoch(), 4);
}

#[test]
fn serve_stale_is_off_by_default_and_bounded_by_its_max_age() {
    let mut rec = ready(20_000);
    assert!(rec.apply(&state::trigger()));
    let decision = decide(&rec, &Policies::default(), false);
    assert!(stale_value(&rec, &decision, &clock(), &Policies::default()).is_none());
    assert!(stale_value(&rec, &decision, &clock(), &all(10_000)).is_none());
    assert!(stale_value(&rec, &decision, &clock(), &all(20_000)).is_some());
}

#[test]
fn serve_stale_answers_during_a_flow_and_a_run_but_never_instead_of_a_hit() {
    let mut flow = ready(1_000);
    let start = state::decide_trigger_start(&flow, "f", NOW + 60_000).expect("start");
    assert!(flow.apply(&start));
    let parked = decide(&flow, &all(10_000), false);
    assert!(matches!(parked, Decision::Park { .. }));
    assert!(stale_value(&flow, &parked, &clock(), &all(10_000)).is_some());

    let mut running = ready(1_000);
    assert!(running.apply(&state::trigger()));
    let Decision::Process { write, .. } = decide(&running, &all(10_000), false) else {
        panic!("claim")
    };
    assert!(running.apply(&write));
    let left = decide_with_policies(&running, "r2", "m2", &clock(), &all(10_000), false);
    assert_eq!(left, Decision::Leave(LeaveReason::OwnedElsewhere));
    assert!(stale_value(&running, &left, &clock(), &all(10_000)).is_some());

    let hit = decide(&ready(1_000), &Policies::default(), false);
    assert_eq!(hit, Decision::Hit);
    assert!(stale_value(&ready(1_000), &hit, &clock(), &all(10_000)).is_none());
}

#[test]
fn ready_past_its_ttl_is_served_stale_while_it_is_recomputed() {
    let rec = ready(600_000);
    let decision = decide(&rec, &all(700_000), false);
    assert!(matches!(decision, Decision::Process { .. }));
    let (_, stale) = stale_value(&rec, &decision, &clock(), &all(700_000)).expect("stale");
    assert_eq!(stale.value_epoch, rec.epoch());
}

fn failed(ago: i64) -> Cache {
    let mut rec = ready(0);
    assert!(rec.apply(&state::trigger()));
    let Decision::Process { write, .. } = decide(&rec, &Policies::default(), false) else {
        panic!("claim")
    };
    assert!(rec.apply(&write));
    let mut fail = state::fail("r1", 4, "bad input", "m1");
    fail.ops.push(Op::Set(Field::FailedAt, Val::Num(NOW - ago)));
    assert!(rec.apply(&fail));
    rec
}

#[test]
fn failure_ttl_answers_a_recent_failure_from_the_item() {
    let rec = failed(5_000);
    let other = |p: &Policies, retry| decide_with_policies(&rec, "r2", "m2", &clock(), p, retry);
    assert_eq!(other(&all(10_000), false), Decision::AnswerFailed);
    // Off, expired, or asked to retry: claim as without the policy.
    for decision in [
        other(&Policies::default(), false),
        other(&all(5_000), false),
        other(&all(10_000), true),
    ] {
        assert!(
            matches!(
                decision,
                Decision::Process {
                    run: Run::Claim(ClaimReason::Failed),
                    ..
                }
            ),
            "{decision:?}"
        );
    }
    // The redelivery of the failed message still re-publishes.
    assert!(matches!(
        decide_with_policies(&rec, "r1", "m1", &clock(), &all(10_000), false),
        Decision::Republish(_)
    ));
}

#[test]
fn a_trigger_clears_a_cached_failure() {
    let mut rec = failed(0);
    assert!(rec.apply(&state::trigger()));
    assert!(matches!(
        decide(&rec, &all(10_000), false),
        Decision::Process { .. }
    ));
}

#[test]
fn a_hit_on_an_older_value_claims_one_refresh() {
    assert_eq!(decide(&ready(9_999), &all(10_000), false), Decision::Hit);
    let mut rec = ready(10_000);
    let Decision::Refresh { write, epoch } = decide(&rec, &all(10_000), false) else {
        panic!("refresh")
    };
    assert_eq!(epoch, 3);
    // Two replicas read the same hit: one claim holds.
    let other = claim_refresh(&rec, "r2", &clock());
    assert!(rec.apply(&write));
    assert!(!rec.apply(&other));
    assert_eq!(rec.status(), Status::Ready);
    assert_eq!(rec.refresh_owner.as_deref(), Some("r1"));
    // While its lease is live, other hits only hit; its redelivery claims.
    let r2 = decide_with_policies(&rec, "r2", "m2", &clock(), &all(10_000), false);
    assert_eq!(r2, Decision::Hit);
    assert!(matches!(
        decide(&rec, &all(10_000), false),
        Decision::Refresh { .. }
    ));
    // The commit: a new value, same epoch, still READY.
    assert!(rec.apply(&renew_refresh("r1", 3, &clock())));
    assert!(rec.apply(&commit_refresh("r1", 3, json!({"v": 33}), None, NOW)));
    assert_eq!(
        (rec.status(), rec.epoch(), rec.value.clone()),
        (Status::Ready, 3, Some(json!({"v": 33})))
    );
    assert_eq!(rec.refresh_owner, None);
    let fresh = decide_with_policies(&rec, "r3", "m3", &clock(), &all(10_000), false);
    assert_eq!(fresh, Decision::Hit);
    // The refresher's redelivery re-publishes its ready.
    assert!(matches!(
        decide(&rec, &all(10_000), false),
        Decision::Republish(_)
    ));
}

#[test]
fn a_trigger_during_a_refresh_wins() {
    let mut rec = ready(10_000);
    let Decision::Refresh { write, .. } = decide(&rec, &all(10_000), false) else {
        panic!("refresh")
    };
    assert!(rec.apply(&write));
    assert!(rec.apply(&state::trigger()));
    assert!(!rec.apply(&renew_refresh("r1", 3, &clock())));
    assert!(!rec.apply(&commit_refresh("r1", 3, json!({"v": 33}), None, NOW)));
    assert_eq!(rec.status(), Status::Stale);
    assert_eq!(rec.value, Some(json!({"v": 3})));
}

#[test]
fn a_failed_refresh_keeps_the_value_and_holds_its_lease() {
    let mut rec = ready(10_000);
    let Decision::Refresh { write, .. } = decide(&rec, &all(10_000), false) else {
        panic!("refresh")
    };
    assert!(rec.apply(&write));
    assert!(rec.apply(&hold_refresh("r1", 3, NOW + 60_000)));
    assert_eq!(rec.value, Some(json!({"v": 3})));
    let later = Clock {
        now: NOW + 30_000,
        ..clock()
    };
    let hit = decide_with_policies(&rec, "r2", "m2", &later, &all(10_000), false);
    assert_eq!(hit, Decision::Hit);
    let much_later = Clock {
        now: NOW + 62_000,
        ..clock()
    };
    let again = decide_with_policies(&rec, "r2", "m2", &much_later, &all(10_000), false);
    assert!(matches!(again, Decision::Refresh { .. }), "{again:?}");
}
