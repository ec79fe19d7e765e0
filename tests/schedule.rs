//! Scheduled triggers (`"at"` / `"delay"`, DESIGN §9) against the local
//! AWS emulator: held back by the queue until due, then exactly one
//! takes effect. The crash between a re-send and the delete of the
//! original is in the property test (tests/state_model.rs); here its
//! outcome, two copies of one schedule in the queue, is sent directly.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::types::MessageAttributeValue;
use common::{Env, Recorder, Running};
use serde_json::{Value as Json, json};
use triggered_cache::aws::queue::SCHEDULE_ID_ATTR;
use triggered_cache::clock::now_millis;
use triggered_cache::message::rfc3339;
use triggered_cache::processor::Processor;

const T: Duration = Duration::from_secs(30);

fn trigger(pk: &str, when: (&str, Json)) -> Json {
    let mut body = json!({"v": 1, "type": "trigger", "key": {"pk": pk}, "set": "summary"});
    body[when.0] = when.1;
    body
}

/// The epoch millis of an event's `at`.
fn at_of(event: &Json) -> i64 {
    let at = humantime::parse_rfc3339(event["at"].as_str().unwrap()).unwrap();
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn resets(env: &Env) -> Vec<Json> {
    env.events_of("reset")
}

/// A worker on a fresh env, with a cached value for `pk` (epoch 0).
async fn ready(prefix: &str, pk: &str, max_delay: Duration) -> (Env, Running) {
    let env = Env::new(prefix).await;
    let mut cfg = env.config(&["summary"]);
    cfg.sqs.max_delay = max_delay;
    let rec: Arc<dyn Processor> = Arc::new(Recorder::ok_after(Duration::ZERO));
    let w = Running::start(cfg, vec![("summary", rec)]);
    env.send(&Env::request(pk, "summary")).await;
    env.wait_events("the ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    (env, w)
}

/// Waits for the one reset and checks that no second one follows while
/// the queue drains (delayed copies included).
async fn one_reset(env: &Env, not_before: i64) -> Json {
    let evs = env
        .wait_events("the scheduled reset", T, |e| {
            e.iter().any(|e| e["event"] == "reset")
        })
        .await;
    let reset = evs.iter().find(|e| e["event"] == "reset").unwrap().clone();
    assert!(
        at_of(&reset) >= not_before,
        "the reset took effect {} ms early",
        not_before - at_of(&reset)
    );
    env.wait_queue_empty(T).await;
    env.pull_events().await;
    assert_eq!(resets(env).len(), 1, "exactly one reset: {:?}", resets(env));
    assert_eq!(reset["epoch"], 1);
    reset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_at_a_time_resets_then_not_before_and_once() {
    let (env, w) = ready("sched-at", "order#1", Duration::from_secs(900)).await;
    let at = now_millis() + 3_000;
    env.send(&trigger("order#1", ("at", json!(rfc3339(at)))))
        .await;
    one_reset(&env, at).await;
    let r = env.cache("order#1", "summary").await;
    assert_eq!(r.epoch, Some(1));
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_with_a_delay_resets_after_it() {
    let (env, w) = ready("sched-delay", "order#2", Duration::from_secs(900)).await;
    let sent = now_millis();
    env.send(&trigger("order#2", ("delay", json!("2s")))).await;
    // SentTimestamp is the queue's clock, to the millisecond; allow its
    // rounding.
    one_reset(&env, sent + 2_000 - 50).await;
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_past_the_queues_maximum_is_sent_again_until_due() {
    // sqs.max_delay = 1s stands in for SQS's 15 minutes: a 3s delay is
    // held back three times.
    let (env, w) = ready("sched-long", "order#3", Duration::from_secs(1)).await;
    let sent = now_millis();
    env.send(&trigger("order#3", ("delay", json!("3s")))).await;
    one_reset(&env, sent + 3_000 - 50).await;
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_of_one_schedule_take_effect_once_with_one_event_id() {
    let (env, w) = ready("sched-copies", "order#4", Duration::from_secs(900)).await;
    // What a crash between the re-send and the delete leaves: two copies
    // with the same schedule id, due at the same time.
    let body = trigger("order#4", ("at", json!(rfc3339(now_millis() + 1_000))));
    let id = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("schedule-1")
        .build()
        .unwrap();
    for _ in 0..2 {
        env.sqs
            .send_message()
            .queue_url(&env.queue_url)
            .message_body(body.to_string())
            .message_attributes(SCHEDULE_ID_ATTR, id.clone())
            .send()
            .await
            .unwrap();
    }
    env.wait_events("a reset for each copy", T, |e| {
        e.iter().filter(|e| e["event"] == "reset").count() >= 2
    })
    .await;
    env.wait_queue_empty(T).await;
    let resets = resets(&env);
    assert!(
        resets.iter().all(|e| e["eventId"] == resets[0]["eventId"]),
        "the second copy re-publishes the same reset: {resets:?}"
    );
    let r = env.cache("order#4", "summary").await;
    assert_eq!(r.epoch, Some(1), "the schedule took effect once");
    w.stop();
}
