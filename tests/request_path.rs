//! The request path end to end against the local AWS emulator (DESIGN §4):
//! SQS long poll → DynamoDB read → claim → processing → fenced commit → SNS
//! completion event → delete.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Env, Recorder, Running};
use serde_json::json;
use triggered_cache::aws::table::Updated;
use triggered_cache::item::to_av;
use triggered_cache::processor::Processor;
use triggered_cache::state::{self, Clock, Decision, Rejected, Status};

const T: Duration = Duration::from_secs(30);

fn p(r: &Recorder) -> Arc<dyn Processor> {
    Arc::new(r.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_cache_is_a_hit_without_processing() {
    let env = Env::new("hit").await;
    env.ddb
        .put_item()
        .table_name(&env.name)
        .item("pk", to_av(&json!("order#1")))
        .item("triggeredCache_summary_status", to_av(&json!("READY")))
        .item("triggeredCache_summary_epoch", to_av(&json!(4)))
        .item("triggeredCache_summary_value", to_av(&json!({"total": 12})))
        .send()
        .await
        .unwrap();
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let rid = env.send(&Env::request("order#1", "summary")).await;
    let evs = env
        .wait_events("a hit event", T, |e| e.iter().any(|e| e["event"] == "hit"))
        .await;
    let hit = evs.iter().find(|e| e["event"] == "hit").unwrap();
    assert_eq!(hit["value"], json!({"total": 12}));
    assert_eq!(hit["epoch"], 4);
    assert_eq!(hit["requestId"], json!(rid));
    assert_eq!(hit["key"], json!({"pk": "order#1"}));
    assert_eq!(hit["record"]["pk"], "order#1");
    env.wait_queue_empty(T).await;
    assert_eq!(rec.count(), 0, "a hit never runs the processor");
    assert_eq!(w.metric("hits", "summary"), 1);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_runs_the_processor_once_and_publishes_ready_with_value_and_record() {
    let env = Env::new("miss").await;
    let rec = Recorder::ok_after(Duration::from_millis(100));
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let rid = env.send(&json!({"v":1,"type":"request","key":{"pk":"order#2"},"set":"summary","input":{"lang":"en"}})).await;
    let evs = env
        .wait_events("a ready event", T, |e| {
            e.iter().any(|e| e["event"] == "ready")
        })
        .await;
    let ready = evs.iter().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(ready["value"], json!({"epoch": 0, "n": 1}));
    assert_eq!(ready["requestId"], json!(rid));
    assert_eq!(ready["record"]["triggeredCache_summary_status"], "READY");
    assert!(ready["eventId"].as_str().is_some_and(|s| !s.is_empty()));
    env.wait_queue_empty(T).await;
    assert_eq!(rec.count(), 1);
    let job = rec.runs.lock().unwrap()[0].clone();
    assert_eq!(job.input, Some(json!({"lang": "en"})));
    assert_eq!(job.request_id, rid);
    let r = env.cache("order#2", "summary").await;
    assert_eq!(r.status, Some(Status::Ready));
    assert_eq!(r.value, Some(json!({"epoch": 0, "n": 1})));
    assert_eq!(w.metric("claims_won", "summary"), 1);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_across_three_workers_run_the_processor_once() {
    let env = Env::new("herd").await;
    let rec = Recorder::ok_after(Duration::from_millis(1500));
    let mut cfg = env.config(&["summary"]);
    cfg.worker.concurrency = 20;
    let workers: Vec<Running> = (0..3)
        .map(|_| Running::start(cfg.clone(), vec![("summary", p(&rec))]))
        .collect();
    let bodies = vec![Env::request("cold#1", "summary"); 50];
    env.send_many(&bodies).await;
    env.wait_events("a ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    env.wait_queue_empty(T).await;
    assert_eq!(
        rec.count(),
        1,
        "exactly one processing run for one cold key"
    );
    let won: u64 = workers
        .iter()
        .map(|w| w.metric("claims_won", "summary"))
        .sum();
    assert_eq!(won, 1);
    let r = env.cache("cold#1", "summary").await;
    assert_eq!(r.status, Some(Status::Ready));
    for w in workers {
        w.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_between_claim_and_commit_is_continued_by_the_redelivery() {
    let env = Env::new("crash").await;
    let mut cfg = env.config(&["summary"]);
    cfg.sqs.visibility_timeout = Duration::from_secs(2);
    // The first worker's processor never finishes: the worker dies mid-run.
    let stuck = Recorder::new(|_job, _n| async {
        std::future::pending::<()>().await;
        unreachable!()
    });
    let first = Running::start(cfg.clone(), vec![("summary", p(&stuck))]);
    let rid = env.send(&Env::request("order#3", "summary")).await;
    common::wait_until("the first run to start", T, || async { stuck.count() == 1 }).await;
    first.crash();
    let r = env.cache("order#3", "summary").await;
    assert_eq!(r.status, Some(Status::Processing));
    assert_eq!(r.request_id.as_deref(), Some(rid.as_str()));

    let good = Recorder::ok_after(Duration::ZERO);
    let second = Running::start(cfg, vec![("summary", p(&good))]);
    env.wait_events("a ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    env.wait_queue_empty(T).await;
    assert_eq!(good.count(), 1);
    assert_eq!(
        good.runs.lock().unwrap()[0].request_id,
        rid,
        "the redelivery continues the same request"
    );
    assert_eq!(
        second.metric("claims_won", "summary"),
        0,
        "continuing is not a new claim"
    );
    let r = env.cache("order#3", "summary").await;
    assert_eq!(r.status, Some(Status::Ready));
    assert_eq!(r.attempts, Some(2));
    env.pull_events().await;
    assert_eq!(env.events_of("ready").len(), 1, "exactly one ready event");
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_the_old_owners_late_commit_is_rejected() {
    let env = Env::new("takeover").await;
    let cfg = env.config(&["summary"]);
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(cfg.clone(), vec![("summary", p(&rec))]);
    let table = &w.worker.table();
    let key = Env::key("order#4");
    // A "ghost" owner claims with a short lease and then stalls (a paused
    // or partitioned process): it never renews.
    let clock = Clock {
        now: triggered_cache::clock::now_millis(),
        lease: 500,
        skew: 0,
        ttl: None,
    };
    let Decision::Process { write, epoch, .. } =
        state::decide_request(&Default::default(), "ghost", "ghost", &clock)
    else {
        panic!("a cold item is claimed");
    };
    assert!(matches!(
        table.update(&key, &[("summary", &write)]).await.unwrap(),
        Updated::Applied(_)
    ));
    // Wait for the ghost's lease plus the skew margin to pass.
    let lease_until = env.cache("order#4", "summary").await.lease_until.unwrap();
    let expired_at = lease_until + cfg.worker.clock_skew.as_millis() as i64 + 50;
    common::wait_until("the ghost's lease to lapse", T, || async {
        triggered_cache::clock::now_millis() > expired_at
    })
    .await;
    let rid = env.send(&Env::request("order#4", "summary")).await;
    env.wait_events("a ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    assert_eq!(w.metric("lease_takeovers", "summary"), 1);
    let r = env.cache("order#4", "summary").await;
    assert_eq!(r.request_id.as_deref(), Some(rid.as_str()));
    assert_eq!(r.status, Some(Status::Ready));
    // The ghost wakes up and tries to commit its result: rejected.
    let late = state::commit(
        "ghost",
        epoch,
        json!("stale ghost value"),
        triggered_cache::clock::now_millis(),
    );
    let Updated::Rejected(now) = table.update(&key, &[("summary", &late)]).await.unwrap() else {
        panic!("the old owner's commit must be rejected");
    };
    let now = table.attrs.cache(&now, "summary");
    assert_eq!(
        state::classify_rejection(&now, "ghost", epoch),
        Rejected::TakenOver
    );
    assert_ne!(
        env.cache("order#4", "summary").await.value,
        Some(json!("stale ghost value"))
    );
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_go_to_the_dlq_with_their_reason_and_touch_nothing() {
    let env = Env::new("bad").await;
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let cases = [
        ("not json", "not JSON"),
        (
            r#"{"v":1,"type":"explode","key":{"pk":"a"},"set":"summary"}"#,
            "field `type`",
        ),
        (
            r#"{"v":2,"type":"request","key":{"pk":"a"},"set":"summary"}"#,
            "version 1",
        ),
        (
            r#"{"v":1,"type":"request","set":"summary"}"#,
            "field `key` is missing",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":true},"set":"summary"}"#,
            "key attribute `pk`",
        ),
        (
            r#"{"v":1,"type":"request","key":{"id":"a"},"set":"summary"}"#,
            "not part of the table's key",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"nope"}"#,
            "set `nope` is not configured",
        ),
    ];
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    // Near SQS's 256 KiB message limit: a key far over DynamoDB's 2048
    // bytes, and garbage whose dead-lettered copy has room for only part of
    // its reason.
    let huge = format!(
        r#"{{"v":1,"type":"request","key":{{"pk":"{}"}},"set":"summary"}}"#,
        "x".repeat(250 * 1024)
    );
    // 105 bytes of room: the kind and source id attributes take 86, the
    // `error` attribute's name and type 11, which leaves 8 bytes of reason.
    let garbage = "y".repeat(256 * 1024 - 105);
    let long_id = format!(
        r#"{{"v":1,"type":"request","key":{{"pk":"a"}},"set":"summary","requestId":"{}"}}"#,
        "r".repeat(200)
    );
    let sns_garbage = serde_json::json!({
        "Type": "Notification",
        "MessageId": "0f1e2d3c-0000-4000-8000-000000000000",
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:producer",
        "Message": "{\"v\":1,\"type\":\"request\"",
    })
    .to_string();
    let more: Vec<(String, &str)> = vec![
        (deep, "not JSON"),
        (huge, "is too long: a string of 256000 bytes"),
        (garbage, "body is"),
        (long_id, "1 to 128"),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"summary","requestId":"a\u0007b"}"#
                .into(),
            "control characters",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"summary","extra":1}"#.into(),
            "unknown field `extra`",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a","sk":"b"},"set":"summary"}"#.into(),
            "not part of the table's key",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a"},"set":["summary"]}"#.into(),
            "field `set`",
        ),
        (sns_garbage, "not JSON"),
        ("null".into(), "not a JSON object"),
        ("\u{feff}{}".into(), "not JSON"),
    ];
    let cases: Vec<(String, &str)> = cases
        .iter()
        .map(|(b, r)| (b.to_string(), *r))
        .chain(more)
        .collect();
    for (body, _) in &cases {
        env.send_raw(body).await;
    }
    let dlq = env.wait_dlq(cases.len(), T).await;
    assert_eq!(
        dlq.len(),
        cases.len(),
        "each bad message is dead-lettered once"
    );
    for (body, reason) in &cases {
        let short = &body[..body.len().min(80)];
        let (_, attrs) = dlq
            .iter()
            .find(|(b, _)| b == body)
            .unwrap_or_else(|| panic!("{short} is not in the DLQ with its body intact"));
        assert!(
            attrs["error"].contains(reason),
            "{short}: {:?} does not say {reason:?}",
            attrs["error"]
        );
        assert_eq!(attrs["deadLetterKind"], "malformed", "{short}");
    }
    env.wait_queue_empty(T).await;
    assert_eq!(env.scan_count().await, 0, "a bad message touches no item");
    env.pull_events().await;
    assert!(
        env.events.lock().unwrap().is_empty(),
        "a bad message publishes nothing"
    );
    assert_eq!(rec.count(), 0);
    // The worker is unharmed: a good request is still answered.
    env.send(&Env::request("after#1", "summary")).await;
    env.wait_events("a ready event after the bad messages", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    w.stop();
}
