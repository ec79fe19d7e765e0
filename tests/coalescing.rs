//! In-process coalescing (DESIGN §4, "Request coalescing inside one
//! process"), against the local AWS emulator: requests for one `(key, set)`
//! in flight together in one process share one read, one claim and one run,
//! and an owner whose redelivery arrives behind another request is still
//! answered by its own run and event.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Env, Recorder, Running};
use serde_json::{Value as Json, json};
use triggered_cache::clock::now_millis;
use triggered_cache::processor::Processor;

const T: Duration = Duration::from_secs(40);

fn p(r: &Recorder) -> Arc<dyn Processor> {
    Arc::new(r.clone())
}

fn count(evs: &[Json], kind: &str) -> usize {
    evs.iter().filter(|e| e["event"] == kind).count()
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
    // Each coalesced request is named once; a message redelivered under
    // heavy load (its visibility ran out before the run ended) coalesces
    // again and is counted again, so the metric may exceed the names by at
    // most the redeliveries.
    let names = ready["coalesced"].as_array().map(|a| a.len()).unwrap_or(0) as u64;
    let redeliveries = received - 100;
    assert!(
        names <= coalesced && coalesced <= names + redeliveries,
        "{names} coalesced names, metric {coalesced}, {redeliveries} redeliveries"
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
