//! Triggers, trigger flows with the awaiting step, several sets per item
//! and TTL, against the local AWS emulator (DESIGN §4 and the invariants of
//! §5). In-process coalescing is in tests/coalescing.rs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Env, Recorder, Running, wait_until};
use serde_json::{Value as Json, json};
use triggered_cache::clock::now_millis;
use triggered_cache::processor::{Output, Processor};
use triggered_cache::state::Status;

const T: Duration = Duration::from_secs(40);

fn p(r: &Recorder) -> Arc<dyn Processor> {
    Arc::new(r.clone())
}

fn trigger(pk: &str, set: &str) -> Json {
    json!({"v": 1, "type": "trigger", "key": {"pk": pk}, "set": set})
}

fn flow(kind: &str, pk: &str, set: &str, id: &str) -> Json {
    json!({"v": 1, "type": kind, "key": {"pk": pk}, "set": set, "triggerId": id})
}

fn count(evs: &[Json], kind: &str) -> usize {
    evs.iter().filter(|e| e["event"] == kind).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_during_processing_never_lets_the_stale_result_become_ready() {
    let env = Env::new("trig-run").await;
    let release = Arc::new(AtomicBool::new(false));
    let gate = release.clone();
    // The first run waits until the test has triggered; every run answers
    // the epoch it computed for.
    let rec = Recorder::new(move |job, n| {
        let gate = gate.clone();
        async move {
            if n == 1 {
                while !gate.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Ok(Output {
                value: json!({"computedForEpoch": job.epoch}),
                depends_on: vec![],
            })
        }
    });
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let rid = env.send(&Env::request("order#1", "summary")).await;
    wait_until("the first run to start", T, || async { rec.count() == 1 }).await;
    env.send(&trigger("order#1", "summary")).await;
    env.wait_events("the reset event", T, |e| count(e, "reset") == 1)
        .await;
    release.store(true, Ordering::SeqCst);
    let evs = env
        .wait_events("a ready event", T, |e| count(e, "ready") >= 1)
        .await;
    env.wait_queue_empty(T).await;
    let r = env.cache("order#1", "summary").await;
    assert_eq!(r.status, Some(Status::Ready));
    assert_eq!(r.epoch, Some(1));
    assert_eq!(
        r.value,
        Some(json!({"computedForEpoch": 1})),
        "the READY value is of the current epoch"
    );
    let ready: Vec<&Json> = evs.iter().filter(|e| e["event"] == "ready").collect();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["epoch"], 1);
    assert_eq!(
        ready[0]["requestId"],
        json!(rid),
        "the request is still answered"
    );
    assert_eq!(rec.count(), 2);
    assert_eq!(rec.runs.lock().unwrap()[1].epoch, 1);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_a_trigger_flow_wait_and_are_answered_by_one_run_after_it_ends() {
    let env = Env::new("flow").await;
    let rec = Recorder::ok_after(Duration::from_millis(200));
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    env.send(&flow("trigger_start", "order#2", "summary", "flow-42"))
        .await;
    env.wait_events("the reset event", T, |e| count(e, "reset") == 1)
        .await;
    let rids = env
        .send_many(&vec![Env::request("order#2", "summary"); 20])
        .await;
    env.wait_queue_empty(T).await;
    assert_eq!(rec.count(), 0, "no processing while the flow runs");
    let r = env.cache("order#2", "summary").await;
    assert_eq!(r.status, Some(Status::Triggered));
    let parked = r
        .awaiting
        .expect("a request is parked as the awaiting step");
    assert!(rids.contains(&parked));
    env.send(&flow("trigger_end", "order#2", "summary", "flow-42"))
        .await;
    env.wait_events("a ready event", T, |e| count(e, "ready") == 1)
        .await;
    env.wait_queue_empty(T).await;
    assert_eq!(rec.count(), 1, "exactly one run after the flow ends");
    env.pull_events().await;
    assert_eq!(env.events_of("ready").len(), 1);
    assert_eq!(env.events_of("hit").len(), 0);
    let r = env.cache("order#2", "summary").await;
    assert_eq!(r.status, Some(Status::Ready));
    assert_eq!(r.awaiting, None);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_trigger_end_of_an_older_flow_is_ignored() {
    let env = Env::new("stale-end").await;
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    env.send(&flow("trigger_start", "order#3", "summary", "old"))
        .await;
    env.wait_events("reset 1", T, |e| count(e, "reset") == 1)
        .await;
    env.send(&flow("trigger_start", "order#3", "summary", "new"))
        .await;
    env.wait_events("reset 2", T, |e| count(e, "reset") == 2)
        .await;
    env.send(&flow("trigger_end", "order#3", "summary", "old"))
        .await;
    env.wait_queue_empty(T).await;
    let r = env.cache("order#3", "summary").await;
    assert_eq!(
        r.status,
        Some(Status::Triggered),
        "the old flow's end changes nothing"
    );
    assert_eq!(r.trigger_id.as_deref(), Some("new"));
    env.send(&flow("trigger_end", "order#3", "summary", "new"))
        .await;
    wait_until("the flow to end", T, || async {
        env.cache("order#3", "summary").await.status == Some(Status::Stale)
    })
    .await;
    assert_eq!(rec.count(), 0, "nothing was parked, nothing runs");
    // The start of the flow that just ended comes again (its worker died
    // before deleting it): the flow must not restart and block the cache
    // until its deadline; a request then computes at once.
    env.send(&flow("trigger_start", "order#3", "summary", "new"))
        .await;
    env.wait_queue_empty(T).await;
    let r = env.cache("order#3", "summary").await;
    assert_eq!(r.status, Some(Status::Stale), "the ended flow stays ended");
    assert_eq!(r.ended_trigger_id.as_deref(), Some("new"));
    env.send(&Env::request("order#3", "summary")).await;
    env.wait_events("a ready event", T, |e| count(e, "ready") == 1)
        .await;
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_flow_that_never_ends_stops_blocking_at_its_deadline() {
    let env = Env::new("deadline").await;
    let mut cfg = env.config(&["summary"]);
    cfg.sets.get_mut("summary").unwrap().trigger_timeout = Duration::from_secs(1);
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(cfg.clone(), vec![("summary", p(&rec))]);
    env.send(&flow("trigger_start", "order#4", "summary", "forgotten"))
        .await;
    env.wait_events("the reset event", T, |e| count(e, "reset") == 1)
        .await;
    let deadline = env
        .cache("order#4", "summary")
        .await
        .trigger_deadline
        .unwrap();
    let passed = deadline + cfg.worker.clock_skew.as_millis() as i64 + 50;
    wait_until("the flow's deadline to pass", T, || async {
        now_millis() > passed
    })
    .await;
    env.send(&Env::request("order#4", "summary")).await;
    env.wait_events("a ready event", T, |e| count(e, "ready") == 1)
        .await;
    assert_eq!(rec.count(), 1);
    assert_eq!(w.metric("trigger_deadline_expiries", "summary"), 1);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sets_on_one_item_are_independent_and_star_resets_both() {
    let env = Env::new("sets").await;
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(
        env.config(&["summary", "invoice"]),
        vec![("summary", p(&rec)), ("invoice", p(&rec))],
    );
    env.send(&Env::request("order#5", "summary")).await;
    env.send(&Env::request("order#5", "invoice")).await;
    env.wait_events("two ready events", T, |e| count(e, "ready") == 2)
        .await;
    env.send(&trigger("order#5", "summary")).await;
    env.wait_events("the reset of summary", T, |e| count(e, "reset") == 1)
        .await;
    let summary = env.cache("order#5", "summary").await;
    let invoice = env.cache("order#5", "invoice").await;
    assert_eq!(summary.status, Some(Status::Stale));
    assert_eq!(summary.epoch, Some(1));
    assert_eq!(
        invoice.status,
        Some(Status::Ready),
        "a trigger of one set leaves the other READY"
    );
    assert_eq!(invoice.epoch, Some(0));
    env.send(&Env::request("order#5", "invoice")).await;
    env.wait_events("a hit on invoice", T, |e| count(e, "hit") == 1)
        .await;
    assert_eq!(rec.count(), 2);

    env.send(&trigger("order#5", "*")).await;
    let evs = env
        .wait_events("resets of both sets", T, |e| count(e, "reset") == 3)
        .await;
    let sets: Vec<&str> = evs
        .iter()
        .filter(|e| e["event"] == "reset")
        .skip(1)
        .map(|e| e["set"].as_str().unwrap())
        .collect();
    assert!(
        sets.contains(&"summary") && sets.contains(&"invoice"),
        "{sets:?}"
    );
    assert_eq!(env.cache("order#5", "summary").await.epoch, Some(2));
    assert_eq!(env.cache("order#5", "invoice").await.epoch, Some(1));
    assert_eq!(
        env.cache("order#5", "invoice").await.status,
        Some(Status::Stale)
    );
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_older_than_the_ttl_is_reprocessed_by_the_next_request() {
    let env = Env::new("ttl").await;
    let mut cfg = env.config(&["summary"]);
    cfg.sets.get_mut("summary").unwrap().ttl = Some(Duration::from_secs(2));
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    env.send(&Env::request("order#6", "summary")).await;
    env.wait_events("the first ready", T, |e| count(e, "ready") == 1)
        .await;
    env.send(&Env::request("order#6", "summary")).await;
    env.wait_events("a hit within the ttl", T, |e| count(e, "hit") == 1)
        .await;
    let ready_at = env.cache("order#6", "summary").await.ready_at.unwrap();
    wait_until("the ttl to pass", T, || async {
        now_millis() > ready_at + 2000
    })
    .await;
    env.send(&Env::request("order#6", "summary")).await;
    env.wait_events("a second ready", T, |e| count(e, "ready") == 2)
        .await;
    assert_eq!(rec.count(), 2);
    w.stop();
}
