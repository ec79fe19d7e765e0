//! Every request answered by its own id (`answer_each_request`, DESIGN
//! §9) and no request lost behind an expired flow (invariant 3), against
//! the local AWS emulator.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Env, Recorder, Running, wait_until};
use serde_json::{Value as Json, json};
use triggered_cache::clock::now_millis;
use triggered_cache::config::Config;
use triggered_cache::processor::Processor;
use triggered_cache::state::Status;

const T: Duration = Duration::from_secs(60);

/// Every request id an answering event names: its own, the coalesced
/// ones and the listed ones.
fn named(events: &[Json]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for e in events.iter().filter(|e| e["event"] != "reset") {
        ids.extend(e["requestId"].as_str().map(str::to_owned));
        for field in ["coalesced", "answers"] {
            for id in e[field].as_array().into_iter().flatten() {
                ids.extend(id.as_str().map(str::to_owned));
            }
        }
    }
    ids
}

fn answering(env: &Env) -> Config {
    let mut cfg = env.config(&["summary"]);
    cfg.sets.get_mut("summary").unwrap().answer_each_request = true;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_across_three_workers_each_find_their_own_id() {
    let env = Env::new("answers-50").await;
    let rec = Recorder::ok_after(Duration::from_millis(1_500));
    let workers: Vec<Running> = (0..3)
        .map(|_| {
            let p: Arc<dyn Processor> = Arc::new(rec.clone());
            Running::start(answering(&env), vec![("summary", p)])
        })
        .collect();
    let bodies: Vec<Json> = (0..50)
        .map(|i| {
            json!({"v": 1, "type": "request", "key": {"pk": "order#50"}, "set": "summary",
                   "requestId": format!("req-{i}")})
        })
        .collect();
    env.send_many(&bodies).await;
    let want: BTreeSet<String> = (0..50).map(|i| format!("req-{i}")).collect();
    let evs = env
        .wait_events("an event naming each of the 50 requests", T, |e| {
            named(e).is_superset(&want)
        })
        .await;
    env.wait_queue_empty(T).await;
    assert!(
        evs.iter().all(|e| e["answersOmitted"].is_null()),
        "50 ids fit the bound"
    );
    assert!(
        evs.iter().any(|e| e["answers"].is_array()),
        "some requests were answered through the list on the item"
    );
    let r = env.cache("order#50", "summary").await;
    assert_eq!(r.status, Some(Status::Ready));
    assert_eq!(
        r.answers, None,
        "the list is cleared once an event carried it"
    );
    for w in workers {
        w.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_parked_behind_an_expired_flow_is_answered_after_a_plain_trigger() {
    let env = Env::new("answers-expired").await;
    let mut cfg = env.config(&["summary"]);
    cfg.sets.get_mut("summary").unwrap().trigger_timeout = Duration::from_secs(2);
    let skew = cfg.worker.clock_skew.as_millis() as i64;
    let rec = Recorder::ok_after(Duration::ZERO);
    let p: Arc<dyn Processor> = Arc::new(rec.clone());
    let w = Running::start(cfg, vec![("summary", p)]);
    env.send(
        &json!({"v": 1, "type": "trigger_start", "key": {"pk": "order#7"},
                      "set": "summary", "triggerId": "never-ends"}),
    )
    .await;
    env.wait_events("the flow's reset", T, |e| {
        e.iter().any(|e| e["event"] == "reset")
    })
    .await;
    env.send(&json!({"v": 1, "type": "request", "key": {"pk": "order#7"},
                      "set": "summary", "requestId": "parked-1"}))
        .await;
    wait_until("the request to park", T, || async {
        env.cache("order#7", "summary").await.awaiting.as_deref() == Some("parked-1")
    })
    .await;
    let deadline = env
        .cache("order#7", "summary")
        .await
        .trigger_deadline
        .unwrap();
    // The flow never ends; its deadline passes.
    wait_until("the flow's deadline to pass", T, || async {
        now_millis() > deadline + skew
    })
    .await;
    assert_eq!(rec.count(), 0);
    env.send(&json!({"v": 1, "type": "trigger", "key": {"pk": "order#7"}, "set": "summary"}))
        .await;
    let evs = env
        .wait_events("the parked request's ready event", T, |e| {
            e.iter()
                .any(|e| e["event"] == "ready" && e["requestId"] == "parked-1")
        })
        .await;
    let ready = evs.iter().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(ready["epoch"], 2, "computed after the trigger's reset");
    env.wait_queue_empty(T).await;
    assert_eq!(rec.count(), 1);
    w.stop();
}
