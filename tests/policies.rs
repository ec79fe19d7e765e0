//! `serve_stale` and `failure_ttl` against the local AWS emulator (DESIGN
//! §9), as a requester sees them on the topic: a stale `hit` at once and
//! the `ready` after it (also during a trigger flow, and not past the max
//! age); a `failed` answered from the item with no run, a run after
//! `failure_ttl`, a trigger clearing it and `"retry": true` bypassing it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Env, Recorder, Running};
use serde_json::{Value as Json, json};
use triggered_cache::config::{Config, SetConfig};
use triggered_cache::metrics::Metrics;
use triggered_cache::processor::{Output, ProcessError, Processor};
use triggered_cache::state::Status;

const T: Duration = Duration::from_secs(30);

fn trigger(pk: &str) -> Json {
    json!({"v": 1, "type": "trigger", "key": {"pk": pk}, "set": "summary"})
}

fn flow(kind: &str, pk: &str, id: &str) -> Json {
    json!({"v": 1, "type": kind, "key": {"pk": pk}, "set": "summary", "triggerId": id})
}

fn request(pk: &str, extra: Json) -> Json {
    let mut body = Env::request(pk, "summary");
    if let (Json::Object(b), Json::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

/// Events of `kind` answering request `rid`.
fn answers(env: &Env, kind: &str, rid: &str) -> Vec<Json> {
    env.events_of(kind)
        .into_iter()
        .filter(|e| e["requestId"] == rid)
        .collect()
}

async fn wait_answer(env: &Env, kind: &str, rid: &str) -> Json {
    env.wait_events(&format!("a {kind} for {rid}"), T, |evs| {
        evs.iter()
            .any(|e| e["event"] == kind && e["requestId"] == rid)
    })
    .await;
    answers(env, kind, rid).remove(0)
}

fn config(env: &Env, set: impl Fn(&mut SetConfig)) -> Config {
    let mut cfg = env.config(&["summary"]);
    set(cfg.sets.get_mut("summary").unwrap());
    cfg.validate().expect("valid");
    cfg
}

fn p(r: &Recorder) -> Arc<dyn Processor> {
    Arc::new(r.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_trigger_a_stale_hit_answers_at_once_then_ready() {
    let env = Env::new("stale").await;
    let cfg = config(&env, |s| s.serve_stale = Some(Duration::from_secs(600)));
    let rec = Recorder::ok_after(Duration::from_millis(300));
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    let first = env.send(&Env::request("order#1", "summary")).await;
    wait_answer(&env, "ready", &first).await;
    env.send(&trigger("order#1")).await;
    env.wait_events("the reset", T, |e| e.iter().any(|e| e["event"] == "reset"))
        .await;
    let rid = env.send(&Env::request("order#1", "summary")).await;
    let hit = wait_answer(&env, "hit", &rid).await;
    assert_eq!(hit["stale"], json!(true));
    assert_eq!(hit["valueEpoch"], json!(0));
    assert_eq!(hit["epoch"], json!(1));
    assert_eq!(hit["value"], json!({"epoch": 0, "n": 1}));
    assert!(hit["ageMs"].as_i64().unwrap() >= 0);
    let ready = wait_answer(&env, "ready", &rid).await;
    assert_eq!(ready["value"], json!({"epoch": 1, "n": 2}));
    assert_eq!(ready.get("stale"), None);
    let r = env.cache("order#1", "summary").await;
    assert_eq!((r.status(), r.value_epoch), (Status::Ready, Some(1)));
    let stale_answers = &w.worker.metrics().policies.stale_answers;
    assert_eq!(Metrics::count(stale_answers, "summary"), 1);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_trigger_flow_a_stale_hit_answers_and_the_ready_follows_its_end() {
    let env = Env::new("staleflow").await;
    let cfg = config(&env, |s| s.serve_stale = Some(Duration::from_secs(600)));
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    let first = env.send(&Env::request("order#2", "summary")).await;
    wait_answer(&env, "ready", &first).await;
    env.send(&flow("trigger_start", "order#2", "f1")).await;
    env.wait_events("the reset", T, |e| e.iter().any(|e| e["event"] == "reset"))
        .await;
    let rid = env.send(&Env::request("order#2", "summary")).await;
    let hit = wait_answer(&env, "hit", &rid).await;
    assert_eq!(
        (hit["stale"].clone(), hit["valueEpoch"].clone()),
        (json!(true), json!(0))
    );
    // Parked behind the flow: no run until it ends.
    common::wait_until("the request parked", T, || async {
        env.cache("order#2", "summary").await.awaiting.as_deref() == Some(rid.as_str())
    })
    .await;
    assert_eq!(rec.count(), 1);
    env.send(&flow("trigger_end", "order#2", "f1")).await;
    env.wait_events("the ready after the flow", T, |evs| {
        evs.iter().any(|e| e["event"] == "ready" && e["epoch"] == 1)
    })
    .await;
    assert_eq!(rec.count(), 2);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_older_than_serve_stale_is_not_answered() {
    let env = Env::new("staleold").await;
    let cfg = config(&env, |s| s.serve_stale = Some(Duration::from_secs(600)));
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    let first = env.send(&Env::request("order#3", "summary")).await;
    wait_answer(&env, "ready", &first).await;
    env.backdate("order#3", "summary", "readyAt", Duration::from_secs(3600))
        .await;
    env.send(&trigger("order#3")).await;
    env.wait_events("the reset", T, |e| e.iter().any(|e| e["event"] == "reset"))
        .await;
    let rid = env.send(&Env::request("order#3", "summary")).await;
    wait_answer(&env, "ready", &rid).await;
    assert!(
        answers(&env, "hit", &rid).is_empty(),
        "{:?}",
        env.events_of("hit")
    );
    w.stop();
}

/// Fails (permanently) when the request's input says so.
fn failing_when_asked() -> Recorder {
    Recorder::new(|job, n| async move {
        if job.input.as_ref().is_some_and(|i| i["fail"] == true) {
            Err(ProcessError::Permanent(format!("bad input (run {n})")))
        } else {
            Ok(Output {
                value: json!({"epoch": job.epoch, "n": n}),
                depends_on: vec![],
            })
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recent_failure_is_answered_from_the_item_and_retry_bypasses_it() {
    let env = Env::new("negcache").await;
    let cfg = config(&env, |s| s.failure_ttl = Some(Duration::from_secs(600)));
    let rec = failing_when_asked();
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    let first = env
        .send(&request("order#4", json!({"input": {"fail": true}})))
        .await;
    wait_answer(&env, "failed", &first).await;
    let rid = env.send(&Env::request("order#4", "summary")).await;
    let cached = wait_answer(&env, "failed", &rid).await;
    assert_eq!(cached["error"], json!("bad input (run 1)"));
    assert_eq!(rec.count(), 1, "no run while the failure is cached");
    let retry = env.send(&request("order#4", json!({"retry": true}))).await;
    let ready = wait_answer(&env, "ready", &retry).await;
    assert_eq!(ready["value"]["n"], json!(2));
    assert_eq!(rec.count(), 2);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_failure_ends_after_failure_ttl_and_a_trigger_clears_it() {
    let env = Env::new("negclear").await;
    let cfg = config(&env, |s| s.failure_ttl = Some(Duration::from_secs(600)));
    let rec = failing_when_asked();
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    let fail = json!({"input": {"fail": true}});
    let first = env.send(&request("order#5", fail.clone())).await;
    wait_answer(&env, "failed", &first).await;
    env.backdate("order#5", "summary", "failedAt", Duration::from_secs(601))
        .await;
    let later = env.send(&Env::request("order#5", "summary")).await;
    wait_answer(&env, "ready", &later).await;
    assert_eq!(rec.count(), 2, "a run once failure_ttl has passed");

    env.send(&trigger("order#5")).await;
    let resets =
        |n: usize| move |e: &[Json]| e.iter().filter(|e| e["event"] == "reset").count() == n;
    env.wait_events("the first reset", T, resets(1)).await;
    let again = env.send(&request("order#5", fail)).await;
    wait_answer(&env, "failed", &again).await;
    assert_eq!(rec.count(), 3);
    env.send(&trigger("order#5")).await;
    env.wait_events("the second reset", T, resets(2)).await;
    let after_trigger = env.send(&Env::request("order#5", "summary")).await;
    wait_answer(&env, "ready", &after_trigger).await;
    assert_eq!(rec.count(), 4, "a trigger clears the cached failure");
    w.stop();
}
