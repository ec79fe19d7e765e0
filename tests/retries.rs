//! A run that fails, and a failed request tried again, against the local
//! AWS emulator (DESIGN §4). A retryable failure is retried after a
//! backoff; `max_attempts` (counted across crashes too) or a permanent
//! failure records `FAILED`, publishes `failed` and dead-letters the
//! request. `FAILED` → claim: a request that carries its own `requestId`
//! keeps it across a redrive or a producer's retry; only a redelivery of
//! the very message whose failure was recorded is dead-lettered again
//! without a second run.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Env, Recorder, Running, unique};
use serde_json::json;
use triggered_cache::config::EventKind;
use triggered_cache::events::{CompletionEvent, event_id};
use triggered_cache::item::to_av;
use triggered_cache::processor::{Output, ProcessError, Processor};
use triggered_cache::state::Status;

const T: Duration = Duration::from_secs(30);

fn p(r: &Recorder) -> Arc<dyn Processor> {
    Arc::new(r.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_is_retried_after_a_backoff_then_succeeds() {
    let env = Env::new("retry").await;
    let rec = Recorder::new(|job, n| async move {
        if n == 1 {
            Err(ProcessError::Retryable("upstream busy".into()))
        } else {
            Ok(Output {
                value: json!({"epoch": job.epoch, "n": n}),
                depends_on: vec![],
            })
        }
    });
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let rid = env.send(&Env::request("order#5", "summary")).await;
    let evs = env
        .wait_events("a ready event", T, |e| {
            e.iter().any(|e| e["event"] == "ready")
        })
        .await;
    let ready = evs.iter().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(ready["value"]["n"], 2);
    assert_eq!(ready["requestId"], json!(rid));
    assert_eq!(rec.count(), 2);
    let r = env.cache("order#5", "summary").await;
    assert_eq!(r.attempts, Some(2));
    assert_eq!(r.error, None);
    assert!(env.events_of("failed").is_empty());
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_attempts_marks_failed_publishes_failed_and_dead_letters_the_request() {
    let env = Env::new("maxatt").await;
    let mut cfg = env.config(&["summary"]);
    cfg.sets.get_mut("summary").unwrap().max_attempts = 2;
    let rec =
        Recorder::new(|_job, _n| async { Err(ProcessError::Retryable("upstream down".into())) });
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    let rid = env.send(&Env::request("order#6", "summary")).await;
    let evs = env
        .wait_events("a failed event", T, |e| {
            e.iter().any(|e| e["event"] == "failed")
        })
        .await;
    let failed = evs.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(failed["requestId"], json!(rid));
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("gave up after 2 attempts"),
        "{failed}"
    );
    let dlq = env.wait_dlq(1, T).await;
    assert!(
        dlq[0].1["error"].contains("upstream down"),
        "{:?}",
        dlq[0].1
    );
    assert_eq!(dlq[0].1["deadLetterKind"], "failed");
    assert_eq!(dlq[0].1["sourceMessageId"], rid);
    env.wait_queue_empty(T).await;
    assert_eq!(rec.count(), 2);
    let r = env.cache("order#6", "summary").await;
    assert_eq!(r.status, Some(Status::Failed));
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_fails_at_once() {
    let env = Env::new("perm").await;
    let rec =
        Recorder::new(|_job, _n| async { Err(ProcessError::Permanent("order not found".into())) });
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    env.send(&Env::request("order#7", "summary")).await;
    env.wait_events("a failed event", T, |e| {
        e.iter().any(|e| e["event"] == "failed")
    })
    .await;
    let dlq = env.wait_dlq(1, T).await;
    assert_eq!(dlq[0].1["error"], "order not found");
    assert_eq!(rec.count(), 1);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_too_large_for_the_item_fails_with_a_clear_error() {
    let env = Env::new("large").await;
    let rec = Recorder::new(|_job, _n| async {
        Ok(Output {
            value: json!({"blob": "x".repeat(500 * 1024)}),
            depends_on: vec![],
        })
    });
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    env.send(&Env::request("order#8", "summary")).await;
    let evs = env
        .wait_events("a failed event", T, |e| {
            e.iter().any(|e| e["event"] == "failed")
        })
        .await;
    let failed = evs.iter().find(|e| e["event"] == "failed").unwrap();
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("400 KB"), "{error}");
    let r = env.cache("order#8", "summary").await;
    assert_eq!(r.status, Some(Status::Failed));
    assert!(r.error.unwrap().contains("400 KB"));
    env.wait_dlq(1, T).await;
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_every_attempt_crashes_its_worker_fails_after_max_attempts() {
    let env = Env::new("poison").await;
    let mut cfg = env.config(&["summary"]);
    cfg.sqs.visibility_timeout = Duration::from_secs(2);
    cfg.sets.get_mut("summary").unwrap().max_attempts = 2;
    let stuck = || {
        Recorder::new(|_job, _n| async {
            std::future::pending::<()>().await;
            unreachable!()
        })
    };
    let rid = env.send(&Env::request("order#p", "summary")).await;
    for attempt in 1..=2 {
        let p1 = stuck();
        let w = Running::start(cfg.clone(), vec![("summary", p(&p1))]);
        common::wait_until("the attempt to start", T, || async { p1.count() == 1 }).await;
        w.crash();
        assert_eq!(
            env.cache("order#p", "summary").await.attempts,
            Some(attempt)
        );
    }
    let never = stuck();
    let w = Running::start(cfg, vec![("summary", p(&never))]);
    let evs = env
        .wait_events("a failed event", T, |e| {
            e.iter().any(|e| e["event"] == "failed")
        })
        .await;
    let failed = evs.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(failed["requestId"], json!(rid));
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("gave up after 2 attempts"),
        "{failed}"
    );
    assert_eq!(never.count(), 0, "a third attempt never starts");
    env.wait_dlq(1, T).await;
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_with_its_own_request_id_runs_again_when_sent_again() {
    let env = Env::new("retry-own-rid").await;
    let fixed = Arc::new(AtomicBool::new(false));
    let rec = Recorder::new({
        let fixed = fixed.clone();
        move |job, _n| {
            let fixed = fixed.load(Ordering::SeqCst);
            async move {
                if fixed {
                    Ok(Output {
                        value: json!({"epoch": job.epoch, "fixed": true}),
                        depends_on: vec![],
                    })
                } else {
                    Err(ProcessError::Permanent("the processor is broken".into()))
                }
            }
        }
    });
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let rid = unique("own-rid");
    let mut body = Env::request("order#1", "summary");
    body["requestId"] = json!(rid);
    env.send(&body).await;
    let dlq = env.wait_dlq(1, T).await;
    assert_eq!(dlq[0].1["deadLetterKind"], "failed");
    assert_eq!(
        env.cache("order#1", "summary").await.status,
        Some(Status::Failed)
    );
    assert_eq!(rec.count(), 1);

    // The processor is fixed; the dead-lettered body is sent again, as
    // `dlq redrive` or the producer would: a new SQS message, same
    // requestId. It claims and runs, instead of repeating the failure.
    fixed.store(true, Ordering::SeqCst);
    env.send_raw(&dlq[0].0).await;
    let evs = env
        .wait_events("the ready event of the retried request", T, |e| {
            e.iter().any(|e| e["event"] == "ready")
        })
        .await;
    let ready = evs.iter().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(ready["requestId"], json!(rid));
    assert_eq!(ready["value"]["fixed"], json!(true));
    assert_eq!(rec.count(), 2, "one run per attempt");
    let failed: Vec<_> = evs.iter().filter(|e| e["event"] == "failed").collect();
    assert_eq!(
        failed.len(),
        1,
        "the failure is not announced again: {evs:#?}"
    );
    assert_eq!(
        env.cache("order#1", "summary").await.status,
        Some(Status::Ready)
    );
    env.wait_queue_empty(T).await;
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_repeated_by_a_new_message_is_a_new_event() {
    let env = Env::new("retry-fails-again").await;
    let rec =
        Recorder::new(|_job, _n| async { Err(ProcessError::Permanent("still broken".into())) });
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let mut body = Env::request("order#2", "summary");
    body["requestId"] = json!(unique("own-rid"));
    env.send(&body).await;
    env.wait_dlq(1, T).await;
    env.send(&body).await;
    let evs = env
        .wait_events("two failed events", T, |e| {
            e.iter().filter(|e| e["event"] == "failed").count() == 2
        })
        .await;
    let ids: Vec<_> = evs
        .iter()
        .filter(|e| e["event"] == "failed")
        .map(|e| e["eventId"].clone())
        .collect();
    assert_ne!(
        ids[0], ids[1],
        "a second failure must not share the first one's eventId (FIFO topics would drop it)"
    );
    env.wait_dlq(1, T).await;
    assert_eq!(rec.count(), 2);
    w.stop();
}

/// The worker recorded `FAILED` and died before dead-lettering its message:
/// the redelivery of that message (same MessageId) re-publishes the same
/// `failed` event and is dead-lettered, without running again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redelivery_of_the_failed_message_is_dead_lettered_without_a_second_run() {
    let env = Env::new("retry-redelivery").await;
    let rid = unique("own-rid");
    let mut body = Env::request("order#3", "summary");
    body["requestId"] = json!(rid);
    let message_id = env.send(&body).await;
    env.ddb
        .put_item()
        .table_name(&env.name)
        .item("pk", to_av(&json!("order#3")))
        .item("triggeredCache_summary_status", to_av(&json!("FAILED")))
        .item("triggeredCache_summary_epoch", to_av(&json!(2)))
        .item("triggeredCache_summary_attempts", to_av(&json!(1)))
        .item("triggeredCache_summary_requestId", to_av(&json!(rid)))
        .item(
            "triggeredCache_summary_failedMessageId",
            to_av(&json!(message_id)),
        )
        .item(
            "triggeredCache_summary_error",
            to_av(&json!("the recorded failure")),
        )
        .send()
        .await
        .unwrap();
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let dlq = env.wait_dlq(1, T).await;
    assert_eq!(dlq[0].1["sourceMessageId"], message_id);
    assert_eq!(dlq[0].1["error"], "the recorded failure");
    let evs = env
        .wait_events("the failed event again", T, |e| {
            e.iter().any(|e| e["event"] == "failed")
        })
        .await;
    let failed = evs.iter().find(|e| e["event"] == "failed").unwrap();
    let key = Env::key("order#3");
    let same = event_id(&CompletionEvent {
        request_id: Some(&rid),
        failed_message_id: Some(&message_id),
        ..CompletionEvent::new(EventKind::Failed, &key, "summary", 2)
    });
    assert_eq!(
        failed["eventId"],
        json!(same),
        "the same event, re-published"
    );
    env.wait_queue_empty(T).await;
    assert_eq!(rec.count(), 0, "no second run for the redelivery");
    w.stop();
}
