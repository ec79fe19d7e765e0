//! The order of the steps, one path at a time. The property test in
//! tests/state_model.rs drives the same handler through random
//! interleavings against a model of conditional writes.

use serde_json::json;

use super::*;
use crate::state::{Cache, ClaimReason, Status};

const NOW: i64 = 1_000_000;

fn clock() -> Clock {
    Clock {
        now: NOW,
        lease: 3_000,
        skew: 200,
        ttl: None,
    }
}

fn policy(max_attempts: u32) -> Policy {
    Policy {
        set: "s".into(),
        max_attempts,
        backoff_base_ms: 1_000,
        backoff_cap_ms: 8_000,
        max_rehandles: 3,
        answer_each_request: None,
        offload: false,
        policies: Default::default(),
    }
}

fn request(rid: &str) -> Subject {
    Subject::Request {
        rid: rid.into(),
        message_id: format!("msg-{rid}"),
        input: Some(json!({"x": 1})),
    }
}

/// What DynamoDB (or SNS) answers to `effect` on `store`, a write applied
/// as a conditional write would be.
pub(super) fn outcome(store: &mut Cache, effect: &Effect) -> Input {
    match effect {
        Effect::Read => Input::Read(store.clone()),
        Effect::Write(w) | Effect::Commit { write: w, .. } => {
            if store.apply(w) {
                Input::Applied(store.clone())
            } else {
                Input::Rejected(store.clone())
            }
        }
        Effect::Publish(_) => Input::Published,
        other => panic!("outcome: {other:?}"),
    }
}

/// Feeds the outcome of `effect` on `store` to the handler.
fn apply(h: &mut Handler, store: &mut Cache, effect: &Effect) -> Step {
    let input = outcome(store, effect);
    h.next(input, &clock())
}

#[test]
fn a_miss_claims_runs_commits_publishes_ready_and_deletes() {
    let mut store = Cache::default();
    let mut h = Handler::new(policy(3), request("r1"));
    let claim = apply(&mut h, &mut store, &Effect::Read);
    assert_eq!(claim.notes, vec![Note::Miss]);
    let run = apply(&mut h, &mut store, &claim.effect);
    assert!(matches!(
        run.notes[0],
        Note::ClaimWon {
            reason: ClaimReason::Stale,
            ..
        }
    ));
    assert_eq!(
        run.effect,
        Effect::Run {
            rid: "r1".into(),
            epoch: 0,
            attempt: 1,
            input: Some(json!({"x": 1}))
        }
    );
    let output = Output {
        value: json!(42),
        depends_on: vec![],
    };
    let commit = h.next(Input::Ran(Ok(output)), &clock());
    let publish = apply(&mut h, &mut store, &commit.effect);
    assert_eq!(store.status(), Status::Ready);
    let Effect::Publish(answer) = &publish.effect else {
        panic!("{publish:?}")
    };
    assert_eq!(
        (answer.kind, answer.value.clone()),
        (EventKind::Ready, Some(json!(42)))
    );
    let settle = apply(&mut h, &mut store, &publish.effect);
    assert_eq!(settle.effect, Effect::Settle(Disposition::Delete));
}

#[test]
fn a_retryable_failure_holds_the_lease_and_retries_after_the_backoff() {
    let mut store = Cache::default();
    let mut h = Handler::new(policy(3), request("r1"));
    let claim = apply(&mut h, &mut store, &Effect::Read);
    apply(&mut h, &mut store, &claim.effect);
    let retry = h.next(
        Input::Ran(Err(ProcessError::Retryable("503".into()))),
        &clock(),
    );
    let settle = apply(&mut h, &mut store, &retry.effect);
    assert_eq!(
        settle.effect,
        Effect::Settle(Disposition::RetryAfter(Duration::from_secs(1)))
    );
    assert_eq!(store.lease_until, Some(NOW + 1_000 + 3_000));
    assert_eq!(store.error.as_deref(), Some("503"));
}

#[test]
fn the_last_attempt_fails_and_dead_letters_with_the_failed_event() {
    let mut store = Cache::default();
    let mut h = Handler::new(policy(1), request("r1"));
    let claim = apply(&mut h, &mut store, &Effect::Read);
    apply(&mut h, &mut store, &claim.effect);
    let fail = h.next(
        Input::Ran(Err(ProcessError::Retryable("503".into()))),
        &clock(),
    );
    let publish = apply(&mut h, &mut store, &fail.effect);
    assert_eq!(store.status(), Status::Failed);
    assert_eq!(store.failed_message_id.as_deref(), Some("msg-r1"));
    let Effect::Publish(answer) = &publish.effect else {
        panic!("{publish:?}")
    };
    assert_eq!(
        answer.error.as_deref(),
        Some("gave up after 1 attempts (sets.s.max_attempts): 503")
    );
    let settle = apply(&mut h, &mut store, &publish.effect);
    assert!(matches!(
        settle.effect,
        Effect::Settle(Disposition::DeadLetter { kind: "failed", .. })
    ));
}

#[test]
fn a_redelivery_past_max_attempts_fails_without_running() {
    let mut store = Cache {
        status: Some(Status::Processing),
        epoch: Some(0),
        request_id: Some("r1".into()),
        attempts: Some(2),
        lease_until: Some(NOW - 10_000),
        ..Cache::default()
    };
    let mut h = Handler::new(policy(2), request("r1"));
    let cont = apply(&mut h, &mut store, &Effect::Read);
    let fail = apply(&mut h, &mut store, &cont.effect);
    assert_eq!(fail.notes, vec![Note::Continued { epoch: 0 }]);
    assert!(matches!(fail.effect, Effect::Write(_)), "{fail:?}");
    apply(&mut h, &mut store, &fail.effect);
    assert_eq!(store.status(), Status::Failed);
    assert!(
        store
            .error
            .as_deref()
            .unwrap()
            .starts_with("gave up after 2 attempts")
    );
}

#[test]
fn a_follower_that_owns_the_run_is_adopted() {
    let store = Cache {
        status: Some(Status::Processing),
        request_id: Some("owner".into()),
        lease_until: Some(NOW + 60_000),
        attempts: Some(1),
        ..Cache::default()
    };
    let mut h = Handler::new(policy(3), request("r1"));
    let adopt = h.next(Input::Read(store.clone()), &clock());
    assert_eq!(
        adopt.effect,
        Effect::Adopt {
            owner: "owner".into()
        }
    );
    let cont = h.next(Input::Adopted(true), &clock());
    assert_eq!(h.request_id(), "owner");
    assert!(matches!(cont.effect, Effect::Write(_)));
    // Not adopted: a live run owned elsewhere answers this request.
    let mut h = Handler::new(policy(3), request("r2"));
    h.next(Input::Read(store), &clock());
    let left = h.next(Input::Adopted(false), &clock());
    assert_eq!(left.effect, Effect::Settle(Disposition::Delete));
}

#[test]
fn a_trigger_end_that_claims_is_handled_again_as_its_parked_request() {
    let mut store = Cache {
        status: Some(Status::Triggered),
        epoch: Some(3),
        trigger_id: Some("t".into()),
        trigger_deadline: Some(NOW + 60_000),
        awaiting: Some("parked".into()),
        ..Cache::default()
    };
    let subject = Subject::TriggerEnd {
        trigger_id: "t".into(),
        message_id: "end".into(),
    };
    let mut h = Handler::new(policy(3), subject);
    let claim = apply(&mut h, &mut store, &Effect::Read);
    let run = apply(&mut h, &mut store, &claim.effect);
    assert!(matches!(run.effect, Effect::Run { epoch: 3, .. }));
    // A trigger during the run: the renewal is rejected; decided again as
    // a request, it finds STALE and claims (not "no flow: ignored").
    store.apply(&crate::state::trigger());
    let again = h.next(Input::Invalidated(store.clone()), &clock());
    assert!(again.notes.contains(&Note::Miss), "{again:?}");
    assert!(matches!(again.effect, Effect::Write(_)));
}

#[test]
fn a_state_that_keeps_moving_leaves_the_message_for_later() {
    let store = Cache::default();
    let mut h = Handler::new(policy(3), request("r1"));
    let mut step = h.next(Input::Read(store.clone()), &clock());
    for _ in 0..2 {
        step = h.next(Input::Rejected(store.clone()), &clock());
    }
    assert!(matches!(step.effect, Effect::Write(_)));
    let last = h.next(Input::Rejected(store), &clock());
    assert_eq!(
        last.effect,
        Effect::Settle(Disposition::RetryAfter(error_backoff(1)))
    );
    assert!(last.notes.contains(&Note::KeptMoving { rehandles: 3 }));
}
