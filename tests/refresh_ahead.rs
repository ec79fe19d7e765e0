//! `refresh_after` against the local AWS emulator (DESIGN §9): a hit on an
//! older value answers from the cache and starts one background refresh,
//! exactly one across three workers, with no miss; a trigger during the
//! refresh wins (the refresh's commit is fenced) and the next request runs
//! for the new epoch.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Env, Recorder, Running, wait_until};
use serde_json::{Value as Json, json};
use triggered_cache::config::Config;
use triggered_cache::metrics::Metrics;
use triggered_cache::metrics::policies::RefreshLabel;
use triggered_cache::processor::{Output, Processor};
use triggered_cache::state::Status;

const T: Duration = Duration::from_secs(30);

fn config(env: &Env) -> Config {
    let mut cfg = env.config(&["summary"]);
    let set = cfg.sets.get_mut("summary").unwrap();
    set.ttl = Some(Duration::from_secs(3600));
    set.refresh_after = Some(Duration::from_secs(1800));
    cfg.validate().expect("valid");
    cfg
}

fn p(r: &Recorder) -> Arc<dyn Processor> {
    Arc::new(r.clone())
}

fn refreshes(w: &Running, outcome: &str) -> u64 {
    w.worker
        .metrics()
        .policies
        .refreshes
        .get_or_create(&RefreshLabel {
            set: "summary".into(),
            outcome: outcome.into(),
        })
        .get()
}

/// Whether event `e` answers request `rid` (itself, or coalesced with it).
fn names(e: &Json, rid: &str) -> bool {
    e["requestId"] == rid
        || e["coalesced"]
            .as_array()
            .is_some_and(|c| c.iter().any(|r| r == rid))
}

async fn first_ready(env: &Env, pk: &str) {
    let rid = env.send(&Env::request(pk, "summary")).await;
    env.wait_events("the first ready", T, |evs| {
        evs.iter()
            .any(|e| e["event"] == "ready" && e["requestId"] == rid)
    })
    .await;
    // The value is now older than refresh_after (and younger than the ttl).
    env.backdate(pk, "summary", "readyAt", Duration::from_secs(2400))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_value_is_refreshed_once_across_three_workers_with_no_miss() {
    let env = Env::new("refresh").await;
    let rec = Recorder::ok_after(Duration::from_millis(500));
    let workers: Vec<Running> = (0..3)
        .map(|_| Running::start(config(&env), vec![("summary", p(&rec))]))
        .collect();
    first_ready(&env, "order#1").await;
    let bodies: Vec<Json> = (0..9).map(|_| Env::request("order#1", "summary")).collect();
    let rids = env.send_many(&bodies).await;
    let evs = env
        .wait_events(
            "a hit for every request and the refresh's ready",
            T,
            |evs| {
                rids.iter()
                    .all(|rid| evs.iter().any(|e| e["event"] == "hit" && names(e, rid)))
                    && evs.iter().filter(|e| e["event"] == "ready").count() == 2
            },
        )
        .await;
    let ready = evs.iter().filter(|e| e["event"] == "ready").nth(1).unwrap();
    assert_eq!(
        ready["epoch"],
        json!(0),
        "a refresh does not move the epoch"
    );
    assert_eq!(ready["value"]["n"], json!(2));
    assert!(rids.iter().any(|r| names(ready, r)));
    assert_eq!(rec.count(), 2, "one refresh run across the workers");
    let misses: u64 = workers.iter().map(|w| w.metric("misses", "summary")).sum();
    assert_eq!(misses, 1, "only the very first request missed");
    let r = env.cache("order#1", "summary").await;
    assert_eq!(
        (r.status(), r.epoch(), r.refresh_owner),
        (Status::Ready, 0, None)
    );
    for w in workers {
        w.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_during_a_refresh_wins() {
    let env = Env::new("refreshtrig").await;
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let rec = Recorder::new(move |job, n| {
        let gate = gate.clone();
        async move {
            // The refresh (run 2) waits until the test has triggered.
            while n == 2 && !gate.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Output {
                value: json!({"epoch": job.epoch, "n": n}),
                depends_on: vec![],
            })
        }
    });
    let w = Running::start(config(&env), vec![("summary", p(&rec))]);
    first_ready(&env, "order#2").await;
    let rid = env.send(&Env::request("order#2", "summary")).await;
    env.wait_events("the hit", T, |evs| {
        evs.iter()
            .any(|e| e["event"] == "hit" && e["requestId"] == rid)
    })
    .await;
    wait_until("the refresh running", T, || async { rec.count() == 2 }).await;
    env.send(&json!({"v": 1, "type": "trigger", "key": {"pk": "order#2"}, "set": "summary"}))
        .await;
    env.wait_events("the reset", T, |e| e.iter().any(|e| e["event"] == "reset"))
        .await;
    open.store(true, Ordering::SeqCst);
    wait_until("the refresh given up", T, || async {
        refreshes(&w, "lost") == 1
    })
    .await;
    let r = env.cache("order#2", "summary").await;
    assert_eq!((r.status(), r.epoch()), (Status::Stale, 1));
    assert_eq!(
        r.value,
        Some(json!({"epoch": 0, "n": 1})),
        "the refresh's value was not stored"
    );
    assert_eq!(
        env.events_of("ready").len(),
        1,
        "the refresh published nothing"
    );
    let next = env.send(&Env::request("order#2", "summary")).await;
    let evs = env
        .wait_events("the ready of the new epoch", T, |evs| {
            evs.iter()
                .any(|e| e["event"] == "ready" && e["requestId"] == next)
        })
        .await;
    let ready = evs.iter().find(|e| e["requestId"] == next).unwrap();
    assert_eq!(ready["epoch"], json!(1));
    assert_eq!(Metrics::count(&w.worker.metrics().hits, "summary"), 1);
    w.stop();
}
