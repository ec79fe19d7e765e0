//! What the daemon's AWS requests cost, counted by the SDK interceptor in
//! `triggered_cache_aws_requests_total{service,operation}`, and the batched
//! forms that make them fewer: concurrent reads of one received batch go
//! out as one `BatchGetItem`, concurrent events as one `PublishBatch`, and
//! each caller still gets its own item and its own event.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Env, Recorder, Running};
use serde_json::json;
use triggered_cache::aws::requests;
use triggered_cache::item::to_av;
use triggered_cache::processor::Processor;

const T: Duration = Duration::from_secs(30);

fn p(r: &Recorder) -> Arc<dyn Processor> {
    Arc::new(r.clone())
}

fn calls(w: &Running, service: &str, operation: &str) -> u64 {
    requests::count(&w.worker.metrics().aws_requests, service, operation)
}

/// One message at a time: each miss is one read, a claim and a commit, one
/// event; each hit one read and one event. The counter says exactly that,
/// and `/metrics` shows it under its documented name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_aws_request_is_counted_by_service_and_operation() {
    let env = Env::new("requests").await;
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    let text = w.worker.metrics().render();
    assert!(
        text.contains(
            "triggered_cache_aws_requests_total{service=\"sns\",operation=\"Publish\"} 0"
        ),
        "the daemon's operations exist at 0:\n{text}"
    );
    const N: usize = 3;
    for round in 1..=2 {
        for i in 0..N {
            env.send(&Env::request(&format!("order#{i}"), "summary"))
                .await;
            let seen = (round - 1) * N + i + 1;
            env.wait_events("the request's event", T, |e| e.len() >= seen)
                .await;
        }
    }
    assert_eq!(env.events_of("ready").len(), N);
    assert_eq!(env.events_of("hit").len(), N);
    let n = N as u64;
    assert_eq!(
        calls(&w, "dynamodb", "GetItem"),
        2 * n,
        "one read per message"
    );
    assert_eq!(
        calls(&w, "dynamodb", "UpdateItem"),
        2 * n,
        "a claim and a commit per miss, nothing per hit"
    );
    assert_eq!(calls(&w, "sns", "Publish"), 2 * n, "one event per message");
    assert!(
        calls(&w, "sqs", "ReceiveMessage") >= 2 * n,
        "each message needed a receive"
    );
    assert_eq!(calls(&w, "dynamodb", "BatchGetItem"), 0);
    assert_eq!(calls(&w, "sns", "PublishBatch"), 0);
    let text = w.worker.metrics().render();
    let line = format!(
        "triggered_cache_aws_requests_total{{service=\"dynamodb\",operation=\"UpdateItem\"}} {}",
        2 * n
    );
    assert!(text.contains(&line), "{line} in:\n{text}");
    w.stop();
}

/// Puts `pk` with a valid cache of each of `sets`, whose value names the
/// key and the set.
async fn cached(env: &Env, pk: &str, sets: &[&str]) {
    let mut put = env
        .ddb
        .put_item()
        .table_name(&env.name)
        .item("pk", to_av(&json!(pk)));
    for set in sets {
        put = put
            .item(
                format!("triggeredCache_{set}_status"),
                to_av(&json!("READY")),
            )
            .item(format!("triggeredCache_{set}_epoch"), to_av(&json!(1)))
            .item(
                format!("triggeredCache_{set}_value"),
                to_av(&json!({"of": format!("{pk}/{set}")})),
            );
    }
    put.send().await.unwrap();
}

/// Ten hits received together are read and answered with fewer calls than
/// messages (`BatchGetItem`, `PublishBatch`), and each is answered with its
/// own item, in its own event, before its message is deleted: two sets of one
/// item are one key in the batch (DynamoDB refuses a key twice), handed to
/// both requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_go_out_together_and_each_gets_its_item() {
    let env = Env::new("batch-read").await;
    let mut bodies = Vec::new();
    for i in 0..8 {
        let pk = format!("order#{i}");
        let sets: &[&str] = if i < 2 {
            &["summary", "detail"]
        } else {
            &["summary"]
        };
        cached(&env, &pk, sets).await;
        for set in sets {
            bodies.push(Env::request(&pk, set));
        }
    }
    assert_eq!(bodies.len(), 10);
    env.send_many(&bodies).await;
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(
        env.config(&["summary", "detail"]),
        vec![("summary", p(&rec)), ("detail", p(&rec))],
    );
    let evs = env
        .wait_events("ten hit events", T, |e| e.len() >= 10)
        .await;
    for ev in &evs {
        assert_eq!(ev["event"], "hit", "{ev}");
        let of = format!(
            "{}/{}",
            ev["key"]["pk"].as_str().unwrap(),
            ev["set"].as_str().unwrap()
        );
        assert_eq!(
            ev["value"],
            json!({"of": of}),
            "each request gets its own item"
        );
    }
    assert_eq!(rec.count(), 0);
    let (single, batched) = (
        calls(&w, "dynamodb", "GetItem"),
        calls(&w, "dynamodb", "BatchGetItem"),
    );
    assert!(batched >= 1, "no BatchGetItem ({single} GetItem)");
    assert!(
        single + batched < 10,
        "{single} GetItem + {batched} BatchGetItem for 10 messages"
    );
    let (single, batched) = (
        calls(&w, "sns", "Publish"),
        calls(&w, "sns", "PublishBatch"),
    );
    assert!(batched >= 1, "no PublishBatch ({single} Publish)");
    assert!(
        single + batched < 10,
        "{single} Publish + {batched} PublishBatch for 10 events"
    );
    env.wait_queue_empty(T).await;
    w.stop();
}
