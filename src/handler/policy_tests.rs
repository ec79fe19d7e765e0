//! The steps of the cache policies, one path at a time (handler/policy.rs).

use serde_json::json;

use super::*;
use crate::processor::Output;
use crate::state::{Cache, Policies, Status};

const NOW: i64 = 1_000_000;

fn clock() -> Clock {
    Clock {
        now: NOW,
        lease: 3_000,
        skew: 200,
        ttl: Some(100_000),
    }
}

fn policy(policies: Policies) -> Policy {
    Policy {
        set: "s".into(),
        max_attempts: 1,
        backoff_base_ms: 1_000,
        backoff_cap_ms: 8_000,
        max_rehandles: 3,
        answer_each_request: None,
        offload: false,
        policies,
    }
}

fn request(rid: &str) -> Subject {
    Subject::Request {
        rid: rid.into(),
        message_id: format!("msg-{rid}"),
        input: None,
    }
}

fn all() -> Policies {
    Policies {
        serve_stale: Some(50_000),
        failure_ttl: Some(50_000),
        refresh_after: Some(50_000),
    }
}

/// Feeds the outcome of `effect` against `store`, as DynamoDB would.
fn step(h: &mut Handler, store: &mut Cache, effect: &Effect) -> Step {
    let input = super::tests::outcome(store, effect);
    let mut next = h.next(input, &clock());
    if let Effect::Adopt { .. } = next.effect {
        // The item's owner is not among this flight's requests.
        let mut notes = next.notes;
        next = h.next(Input::Adopted(false), &clock());
        notes.append(&mut next.notes);
        next.notes = notes;
    }
    next
}

fn ran(h: &mut Handler, value: serde_json::Value) -> Step {
    h.next(
        Input::Ran(Ok(Output {
            value,
            depends_on: vec![],
        })),
        &clock(),
    )
}

/// A READY cache at epoch 1 whose value was committed `age` ms ago.
fn ready(age: i64) -> Cache {
    let mut store = Cache::default();
    let claim = crate::state::decide_request(&store, "r0", "m0", &clock());
    let crate::state::Decision::Process { write, .. } = claim else {
        panic!("claim")
    };
    assert!(store.apply(&write));
    assert!(store.apply(&crate::state::commit("r0", 0, json!({"v": 0}), NOW - age)));
    assert!(store.apply(&crate::state::trigger()));
    let claim = crate::state::decide_request(&store, "r0", "m0", &clock());
    let crate::state::Decision::Process { write, .. } = claim else {
        panic!("claim")
    };
    assert!(store.apply(&write));
    assert!(store.apply(&crate::state::commit("r0", 1, json!({"v": 1}), NOW - age)));
    store
}

#[test]
fn a_stale_hit_goes_out_first_then_the_normal_path_answers_ready() {
    let mut store = ready(10_000);
    assert!(store.apply(&crate::state::trigger()));
    let mut h = Handler::new(policy(all()), request("r1"));
    let first = step(&mut h, &mut store, &Effect::Read);
    let Effect::Publish(stale) = &first.effect else {
        panic!("{:?}", first.effect)
    };
    assert_eq!(stale.kind, EventKind::Hit);
    assert_eq!(stale.value, Some(json!({"v": 1})));
    assert_eq!(
        stale.stale,
        Some(Stale {
            value_epoch: 1,
            age_ms: 10_000
        })
    );
    assert!(first.notes.contains(&Note::Miss));
    let claim = step(&mut h, &mut store, &first.effect);
    assert!(matches!(claim.effect, Effect::Write(_)), "{claim:?}");
    let run = step(&mut h, &mut store, &claim.effect);
    assert!(matches!(run.effect, Effect::Run { epoch: 2, .. }));
    let commit = ran(&mut h, json!({"v": 2}));
    let ready = step(&mut h, &mut store, &commit.effect);
    let Effect::Publish(answer) = &ready.effect else {
        panic!("{ready:?}")
    };
    assert_eq!((answer.kind, answer.stale), (EventKind::Ready, None));
    assert_eq!(store.value_epoch, Some(2));
}

#[test]
fn without_serve_stale_or_past_its_age_there_is_no_stale_answer() {
    for (policies, age) in [(Policies::default(), 1_000), (all(), 60_000)] {
        let mut store = ready(age);
        assert!(store.apply(&crate::state::trigger()));
        let mut h = Handler::new(policy(policies), request("r1"));
        let first = step(&mut h, &mut store, &Effect::Read);
        assert!(matches!(first.effect, Effect::Write(_)), "{first:?}");
    }
}

#[test]
fn a_cached_failure_answers_failed_without_a_run_unless_retrying() {
    let mut store = ready(0);
    assert!(store.apply(&crate::state::trigger()));
    let mut h = Handler::new(policy(all()), request("r1"));
    let claim = step(&mut h, &mut store, &Effect::Read);
    let claim = step(&mut h, &mut store, &claim.effect); // the stale hit
    let run = step(&mut h, &mut store, &claim.effect);
    assert!(matches!(run.effect, Effect::Run { .. }));
    let fail = h.next(
        Input::Ran(Err(crate::processor::ProcessError::Permanent("bad".into()))),
        &clock(),
    );
    step(&mut h, &mut store, &fail.effect);
    assert_eq!(store.status(), Status::Failed);
    assert_eq!(store.failed_at, Some(NOW));

    let mut cached = Handler::new(policy(all()), request("r2"));
    let answer = step(&mut cached, &mut store, &Effect::Read);
    let Effect::Publish(failed) = &answer.effect else {
        panic!("{answer:?}")
    };
    assert_eq!(failed.kind, EventKind::Failed);
    assert_eq!(failed.error.as_deref(), Some("bad"));
    assert_eq!(failed.failed_message_id.as_deref(), Some("msg-r2"));
    let done = step(&mut cached, &mut store, &answer.effect);
    assert_eq!(done.effect, Effect::Settle(Disposition::Delete));

    let mut retry = Handler::new(policy(all()), request("r3")).retrying(true);
    let first = step(&mut retry, &mut store, &Effect::Read);
    // A stale answer first (the value survived), then the claim.
    let claim = step(&mut retry, &mut store, &first.effect);
    assert!(matches!(claim.effect, Effect::Write(_)), "{claim:?}");
    let run = step(&mut retry, &mut store, &claim.effect);
    assert!(matches!(run.effect, Effect::Run { .. }), "{run:?}");
}

#[test]
fn a_hit_past_refresh_after_answers_then_refreshes_in_the_background() {
    let mut store = ready(60_000);
    let mut h = Handler::new(policy(all()), request("r1"));
    let hit = step(&mut h, &mut store, &Effect::Read);
    let Effect::Publish(answer) = &hit.effect else {
        panic!("{hit:?}")
    };
    assert_eq!((answer.kind, answer.stale), (EventKind::Hit, None));
    assert!(!hit.notes.contains(&Note::Miss));
    let claim = step(&mut h, &mut store, &hit.effect);
    let refresh = step(&mut h, &mut store, &claim.effect);
    assert!(matches!(refresh.effect, Effect::Refresh { epoch: 1, .. }));
    assert_eq!(store.status(), Status::Ready);
    // Another request meanwhile only hits.
    let mut other = Handler::new(policy(all()), request("r2"));
    let hit2 = step(&mut other, &mut store, &Effect::Read);
    let done = step(&mut other, &mut store, &hit2.effect);
    assert_eq!(done.effect, Effect::Settle(Disposition::Delete));

    let commit = ran(&mut h, json!({"v": "fresh"}));
    let ready = step(&mut h, &mut store, &commit.effect);
    let Effect::Publish(answer) = &ready.effect else {
        panic!("{ready:?}")
    };
    assert_eq!((answer.kind, answer.epoch), (EventKind::Ready, 1));
    assert_eq!(
        (store.status(), store.epoch(), store.value.clone()),
        (Status::Ready, 1, Some(json!({"v": "fresh"})))
    );
}

#[test]
fn a_trigger_during_a_refresh_wins_and_the_refresh_publishes_nothing() {
    let mut store = ready(60_000);
    let mut h = Handler::new(policy(all()), request("r1"));
    let hit = step(&mut h, &mut store, &Effect::Read);
    let claim = step(&mut h, &mut store, &hit.effect);
    let _refresh = step(&mut h, &mut store, &claim.effect);
    assert!(store.apply(&crate::state::trigger()));
    let commit = ran(&mut h, json!({"v": "late"}));
    let lost = step(&mut h, &mut store, &commit.effect);
    assert_eq!(lost.effect, Effect::Settle(Disposition::Delete));
    assert!(
        lost.notes
            .iter()
            .any(|n| matches!(n, Note::RefreshLost { .. }))
    );
    assert_eq!(store.status(), Status::Stale);
    assert_eq!(store.value, Some(json!({"v": 1})));
}

#[test]
fn a_failed_refresh_keeps_the_value() {
    let mut store = ready(60_000);
    let mut h = Handler::new(policy(all()), request("r1"));
    let hit = step(&mut h, &mut store, &Effect::Read);
    let claim = step(&mut h, &mut store, &hit.effect);
    let _refresh = step(&mut h, &mut store, &claim.effect);
    let hold = h.next(
        Input::Ran(Err(crate::processor::ProcessError::Retryable(
            "busy".into(),
        ))),
        &clock(),
    );
    let done = step(&mut h, &mut store, &hold.effect);
    assert_eq!(done.effect, Effect::Settle(Disposition::Delete));
    assert_eq!(
        (store.status(), store.value.clone()),
        (Status::Ready, Some(json!({"v": 1})))
    );
    assert_eq!(store.refresh_lease, Some(NOW + 3_000));
}

#[test]
fn a_refresh_whose_refresher_lease_lapsed_is_taken_over_and_says_so() {
    let mut store = ready(60_000);
    // A refresher that died: its lease ended past the skew.
    store.refresh_owner = Some("r-dead".into());
    store.refresh_lease = Some(NOW - 1_000);
    let mut h = Handler::new(policy(all()), request("r1"));
    let hit = step(&mut h, &mut store, &Effect::Read);
    let claim = step(&mut h, &mut store, &hit.effect);
    let refresh = step(&mut h, &mut store, &claim.effect);
    assert!(matches!(refresh.effect, Effect::Refresh { epoch: 1, .. }));
    assert_eq!(store.refresh_owner.as_deref(), Some("r1"));
    assert!(refresh.notes.contains(&Note::RefreshStarted {
        epoch: 1,
        took_over: Some("r-dead".into()),
    }));

    // Its own redelivery claims again, and takes over nobody.
    let mut again = Handler::new(policy(all()), request("r1"));
    let hit = step(&mut again, &mut store, &Effect::Read);
    let claim = step(&mut again, &mut store, &hit.effect);
    let refresh = step(&mut again, &mut store, &claim.effect);
    assert!(refresh.notes.contains(&Note::RefreshStarted {
        epoch: 1,
        took_over: None,
    }));
}
