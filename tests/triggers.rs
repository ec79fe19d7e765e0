//! Triggers, trigger flows with the awaiting step, several sets per item,
//! TTL and in-process coalescing, against the local AWS emulator (DESIGN
//! §4 and the invariants of §5).

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
    let r = env.record("order#1", "summary").await;
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
    let r = env.record("order#2", "summary").await;
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
    let r = env.record("order#2", "summary").await;
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
    let r = env.record("order#3", "summary").await;
    assert_eq!(
        r.status,
        Some(Status::Triggered),
        "the old flow's end changes nothing"
    );
    assert_eq!(r.trigger_id.as_deref(), Some("new"));
    env.send(&flow("trigger_end", "order#3", "summary", "new"))
        .await;
    wait_until("the flow to end", T, || async {
        env.record("order#3", "summary").await.status == Some(Status::Stale)
    })
    .await;
    assert_eq!(rec.count(), 0, "nothing was parked, nothing runs");
    // The start of the flow that just ended comes again (its worker died
    // before deleting it): the flow must not restart and block the cache
    // until its deadline; a request then computes at once.
    env.send(&flow("trigger_start", "order#3", "summary", "new"))
        .await;
    env.wait_queue_empty(T).await;
    let r = env.record("order#3", "summary").await;
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
        .record("order#4", "summary")
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
    let summary = env.record("order#5", "summary").await;
    let invoice = env.record("order#5", "invoice").await;
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
    assert_eq!(env.record("order#5", "summary").await.epoch, Some(2));
    assert_eq!(env.record("order#5", "invoice").await.epoch, Some(1));
    assert_eq!(
        env.record("order#5", "invoice").await.status,
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
    let ready_at = env.record("order#6", "summary").await.ready_at.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_in_one_process_share_one_claim_and_one_run() {
    let env = Env::new("coalesce").await;
    let mut cfg = env.config(&["summary"]);
    cfg.worker.concurrency = 100;
    cfg.sqs.pollers = 2;
    let rec = Recorder::ok_after(Duration::from_secs(4));
    env.send_many(&vec![Env::request("hot#1", "summary"); 100])
        .await;
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    env.wait_events("a ready event", T, |e| count(e, "ready") == 1)
        .await;
    env.wait_queue_empty(T).await;
    assert_eq!(rec.count(), 1, "one processing run");
    assert_eq!(w.metric("claims_won", "summary"), 1, "one claim");
    assert_eq!(
        w.metric("claims_lost", "summary"),
        0,
        "no request of this process raced its own claim"
    );
    let coalesced = w.metric("coalesced", "summary");
    let hits = w.metric("hits", "summary");
    let received = w.worker.metrics().received.get();
    assert_eq!(
        coalesced + hits,
        received - 1,
        "every other request shared the run or hit its result"
    );
    assert!(received >= 100);
    assert!(coalesced > 0);
    let evs = env.events.lock().unwrap().clone();
    let ready = evs.iter().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(
        ready["coalesced"].as_array().map(|a| a.len()).unwrap_or(0) as u64,
        coalesced
    );
    w.stop();
}

/// Ten caches whose owner request `owner-N` died in `status` (READY: after
/// the commit, before the ready event went out; PROCESSING: mid-run, lease
/// still live). Its redelivery arrives in one batch right after another
/// request `other-N` for the same cache, so the two coalesce in one process,
/// mostly with the other one leading: found by the chaos run, where the
/// leader answered with a hit (READY: the ready event was never published)
/// or left the run to its owner and deleted the owner's message with its
/// own (PROCESSING: nothing answered until the lease lapsed and a later
/// request came).
async fn owner_redelivered_behind_another_request(status: &str) {
    use triggered_cache::config::EventKind;
    use triggered_cache::events::{CompletionEvent, event_id};
    use triggered_cache::item::to_av;
    let env = Env::new("owner-follower").await;
    let mut bodies = Vec::new();
    for i in 0..10 {
        let pk = format!("order#{i}");
        let mut put = env
            .ddb
            .put_item()
            .table_name(&env.name)
            .item("pk", to_av(&json!(pk)))
            .item("triggeredCache_summary_status", to_av(&json!(status)))
            .item("triggeredCache_summary_epoch", to_av(&json!(7)))
            .item("triggeredCache_summary_attempts", to_av(&json!(1)))
            .item(
                "triggeredCache_summary_requestId",
                to_av(&json!(format!("owner-{i}"))),
            );
        put = if status == "READY" {
            put.item(
                "triggeredCache_summary_readyAt",
                to_av(&json!(now_millis())),
            )
            .item("triggeredCache_summary_value", to_av(&json!({"n": i})))
        } else {
            put.item(
                "triggeredCache_summary_leaseUntil",
                to_av(&json!(now_millis() + 600_000)),
            )
        };
        put.send().await.unwrap();
        let mut other = Env::request(&pk, "summary");
        other["requestId"] = json!(format!("other-{i}"));
        let mut owner = Env::request(&pk, "summary");
        owner["requestId"] = json!(format!("owner-{i}"));
        bodies.push(other);
        bodies.push(owner);
    }
    env.send_many(&bodies).await;
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let want: Vec<String> = (0..10)
        .map(|i| {
            let key = Env::key(&format!("order#{i}"));
            let owner = format!("owner-{i}");
            event_id(&CompletionEvent {
                request_id: Some(&owner),
                ..CompletionEvent::new(EventKind::Ready, &key, "summary", 7)
            })
        })
        .collect();
    env.wait_events("every owner's ready event, with its own eventId", T, |e| {
        want.iter().all(|id| {
            e.iter()
                .any(|e| e["event"] == "ready" && e["eventId"] == id.as_str())
        })
    })
    .await;
    env.wait_queue_empty(T).await;
    env.pull_events().await;
    let answered = |rid: &str| {
        env.events_of("hit")
            .iter()
            .chain(env.events_of("ready").iter())
            .any(|e| {
                e["requestId"] == rid
                    || e["coalesced"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c == rid))
            })
    };
    for i in 0..10 {
        assert!(answered(&format!("other-{i}")), "other-{i} is answered");
    }
    if status == "READY" {
        assert_eq!(rec.count(), 0, "nothing is processed again");
    } else {
        let runs = rec.runs.lock().unwrap();
        assert_eq!(runs.len(), 10, "each owner's run is continued once");
        assert!(runs.iter().all(|j| j.request_id.starts_with("owner-")));
    }
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_died_between_commit_and_publish_gets_its_ready_event_even_as_a_follower() {
    owner_redelivered_behind_another_request("READY").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_died_mid_run_is_continued_even_as_a_follower() {
    owner_redelivered_behind_another_request("PROCESSING").await;
}
