//! Values of any size (issue 14) against the emulator's S3: offload to S3
//! behind a `valueRef`, compression in the item, a commit lost after its
//! upload, a SIGKILL between upload and commit, and `inputRef`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Bucket, Daemon, Env, Proxy, Recorder, Running, bin, sha256_hex, wait_until};
use serde_json::{Value as Json, json};
use triggered_cache::aws::requests;
use triggered_cache::config::{Compression, Config, Size};
use triggered_cache::item::{MAX_ITEM_BYTES, av_size, item_size};
use triggered_cache::processor::{Output, Processor};
use triggered_cache::state::Status;
use triggered_cache::value::{epoch_of, set_prefix};

const T: Duration = Duration::from_secs(30);
const PREFIX: &str = "tc/";

fn p(r: &Recorder) -> Arc<dyn Processor> {
    Arc::new(r.clone())
}

/// A processor that answers `value` every time.
fn answers(value: Json) -> Recorder {
    Recorder::new(move |_job, _n| {
        let value = value.clone();
        async move {
            Ok(Output {
                value,
                depends_on: vec![],
            })
        }
    })
}

/// This env's configuration with `[s3]` on `bucket` and every set
/// offloading values over `over`.
fn offloading(env: &Env, bucket: &Bucket, sets: &[&str], over: u64) -> Config {
    let mut cfg = env.config(sets);
    cfg.s3.bucket = bucket.name.clone();
    cfg.s3.prefix = PREFIX.into();
    cfg.s3.offload_over = Some(Size(over));
    cfg.validate().expect("valid");
    cfg
}

/// Triggers `(pk, set)` and waits until the trigger landed (the item is
/// no longer READY), so that a request sent next is a miss.
async fn trigger(env: &Env, pk: &str, set: &str) {
    env.send(&json!({"v": 1, "type": "trigger", "key": {"pk": pk}, "set": set}))
        .await;
    wait_until("the trigger lands", T, || async {
        env.cache(pk, set).await.status != Some(Status::Ready)
    })
    .await;
}

fn objects_of(env: &Env, pk: &str, set: &str) -> String {
    set_prefix(PREFIX, &env.name, &Env::key(pk), set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mb_value_is_offloaded_and_its_events_carry_a_value_ref() {
    let env = Env::new("offload").await;
    let bucket = env.bucket().await;
    let value = json!({"pdf": "x".repeat(5_000_000), "pages": 12});
    let bytes = serde_json::to_vec(&value).unwrap();
    let rec = answers(value.clone());
    let w = Running::start(
        offloading(&env, &bucket, &["pdf"], 300_000),
        vec![("pdf", p(&rec))],
    );
    env.send(&Env::request("invoice#1", "pdf")).await;
    let evs = env
        .wait_events("a ready event", T, |e| {
            e.iter().any(|e| e["event"] == "ready")
        })
        .await;
    let ready = evs.iter().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(ready["value"], Json::Null);
    assert_eq!(ready.get("truncated"), None, "{ready}");
    let value_ref = ready["valueRef"].clone();
    assert_eq!(value_ref["bucket"], json!(bucket.name));
    assert_eq!(value_ref["size"], json!(bytes.len()));
    assert_eq!(value_ref["sha256"], json!(sha256_hex(&bytes)));
    let key = value_ref["key"].as_str().unwrap();
    let stored = bucket.get(key).await.expect("the object exists");
    assert_eq!(sha256_hex(&stored), sha256_hex(&bytes), "the bytes match");
    // The item holds a pointer, not the value.
    let item = env.item("invoice#1").await;
    assert!(!item.contains_key("triggeredCache_pdf_value"), "{item:?}");
    assert!(av_size(&item["triggeredCache_pdf_valueRef"]) < 1024);
    assert!(item_size(&item) < 1024, "{} bytes", item_size(&item));
    let cache = env.cache("invoice#1", "pdf").await;
    assert_eq!(cache.status, Some(Status::Ready));
    assert_eq!(cache.value_ref, Some(value_ref.clone()));
    // A hit carries the same pointer, and reads nothing from S3 (the value
    // cannot fit an event).
    env.send(&Env::request("invoice#1", "pdf")).await;
    let evs = env
        .wait_events("a hit event", T, |e| e.iter().any(|e| e["event"] == "hit"))
        .await;
    let hit = evs.iter().find(|e| e["event"] == "hit").unwrap();
    assert_eq!(hit["valueRef"], value_ref);
    assert_eq!(hit["value"], Json::Null);
    let m = w.worker.metrics();
    assert_eq!(requests::count(&m.aws_requests, "s3", "GetObject"), 0);
    assert_eq!(requests::count(&m.aws_requests, "s3", "PutObject"), 1);
    assert_eq!(rec.count(), 1);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressible_1_mb_json_value_is_stored_compressed_in_its_item() {
    let env = Env::new("zstd").await;
    let mut cfg = env.config(&["report"]);
    cfg.sets.get_mut("report").unwrap().compress = Some(Compression::Zstd);
    let rows: Vec<Json> = (0..16_000)
        .map(|i| json!({"id": i, "status": "shipped", "note": "the same words again", "x": 0.25}))
        .collect();
    let value = json!({"rows": rows, "big": 18446744073709551615u64});
    let size = serde_json::to_vec(&value).unwrap().len();
    assert!(size > 1_000_000, "{size}");
    let rec = answers(value.clone());
    let w = Running::start(cfg, vec![("report", p(&rec))]);
    env.send(&Env::request("month#1", "report")).await;
    env.wait_events("a ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    let item = env.item("month#1").await;
    let stored = &item["triggeredCache_report_value"];
    assert!(stored.is_b(), "stored as a binary attribute");
    assert!(
        item_size(&item) < MAX_ITEM_BYTES / 4,
        "{}",
        item_size(&item)
    );
    assert_eq!(
        env.cache("month#1", "report").await.value,
        Some(value.clone())
    );
    // The next run's processor sees the value in the record as JSON.
    trigger(&env, "month#1", "report").await;
    env.send(&Env::request("month#1", "report")).await;
    wait_until("a second run", T, || async { rec.count() == 2 }).await;
    let record = rec.runs.lock().unwrap()[1].record.clone();
    assert_eq!(record["triggeredCache_report_value"], value);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_lost_to_a_trigger_never_points_to_its_object_and_the_next_commit_deletes_superseded_ones()
 {
    let env = Env::new("lost").await;
    let bucket = env.bucket().await;
    // The first run triggers the item itself and answers only once the
    // epoch moved: its upload happens, its commit loses.
    let (sqs, ddb, queue, table) = (
        env.sqs.clone(),
        env.ddb.clone(),
        env.queue_url.clone(),
        env.name.clone(),
    );
    let rec = Recorder::new(move |job, n| {
        let (sqs, ddb, queue, table) = (sqs.clone(), ddb.clone(), queue.clone(), table.clone());
        async move {
            if n == 1 {
                let trigger =
                    json!({"v": 1, "type": "trigger", "key": {"pk": "doc#1"}, "set": "pdf"});
                sqs.send_message()
                    .queue_url(&queue)
                    .message_body(trigger.to_string())
                    .send()
                    .await
                    .unwrap();
                wait_until("the trigger moves the epoch", T, || async {
                    let item = ddb
                        .get_item()
                        .table_name(&table)
                        .key(
                            "pk",
                            aws_sdk_dynamodb::types::AttributeValue::S("doc#1".into()),
                        )
                        .consistent_read(true)
                        .send()
                        .await
                        .unwrap()
                        .item
                        .unwrap_or_default();
                    item.get("triggeredCache_pdf_epoch")
                        .and_then(|e| e.as_n().ok())
                        .is_some_and(|e| e.parse::<i64>().unwrap() > job.epoch)
                })
                .await;
            }
            Ok(Output {
                value: json!({"epoch": job.epoch, "run": n, "pdf": "y".repeat(4000)}),
                depends_on: vec![],
            })
        }
    });
    let w = Running::start(
        offloading(&env, &bucket, &["pdf"], 1000),
        vec![("pdf", p(&rec))],
    );
    env.send(&Env::request("doc#1", "pdf")).await;
    let evs = env
        .wait_events("a ready event", T, |e| {
            e.iter().any(|e| e["event"] == "ready")
        })
        .await;
    let ready = evs.iter().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(rec.count(), 2, "the lost run and the one that committed");
    let cache = env.cache("doc#1", "pdf").await;
    assert_eq!(cache.status, Some(Status::Ready));
    let prefix = objects_of(&env, "doc#1", "pdf");
    let first = cache.value_ref.clone().unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // READY points to the object of its own epoch, not the lost one.
    assert_eq!(epoch_of(&prefix, &first), Some(cache.epoch()));
    assert_eq!(ready["valueRef"]["key"], json!(first));
    assert_eq!(
        ready["value"]["epoch"],
        json!(cache.epoch()),
        "it fits the event"
    );
    let m = w.worker.metrics();
    assert_eq!(requests::count(&m.aws_requests, "s3", "PutObject"), 2);
    // The lost run's object is gone; only the committed one is left.
    bucket
        .wait_keys(&prefix, std::slice::from_ref(&first), T)
        .await;
    // A later commit deletes the object it supersedes.
    trigger(&env, "doc#1", "pdf").await;
    env.send(&Env::request("doc#1", "pdf")).await;
    wait_until("a third run's commit", T, || async {
        let c = env.cache("doc#1", "pdf").await;
        c.status == Some(Status::Ready)
            && c.value_ref
                .as_ref()
                .is_some_and(|r| r["key"] != json!(first))
    })
    .await;
    let second = env.cache("doc#1", "pdf").await.value_ref.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    bucket.wait_keys(&prefix, &[second], T).await;
    w.stop();
}

/// The daemon as a process, offloading through `endpoint`, with short
/// timings so that a redelivery comes within seconds.
fn daemon(env: &Env, bucket: &Bucket, endpoint: &str) -> Daemon {
    let mut cmd = bin(env);
    cmd.env("TRIGGERED_CACHE__AWS__ENDPOINT_URL", endpoint)
        .env("TRIGGERED_CACHE__S3__BUCKET", &bucket.name)
        .env("TRIGGERED_CACHE__S3__PREFIX", PREFIX)
        .env("TRIGGERED_CACHE__S3__OFFLOAD_OVER", "1KB")
        .env("TRIGGERED_CACHE__SQS__VISIBILITY_TIMEOUT", "2s")
        .env("TRIGGERED_CACHE__WORKER__HEARTBEAT_INTERVAL", "500ms")
        .env("TRIGGERED_CACHE__WORKER__LEASE_DURATION", "2s")
        .env("TRIGGERED_CACHE__AWS__CALL_TIMEOUT", "1s")
        .env("SUMMARIZE_DELAY", "0");
    Daemon::spawn(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_upload_and_commit_is_finished_by_the_redelivery() {
    let env = Env::new("sigkill").await;
    let bucket = env.bucket().await;
    // The proxy holds the commit of a pointer (an UpdateItem that sets a
    // valueRef): the daemon has uploaded, and is killed right there.
    let proxy = Proxy::start(Arc::new(|headers: &axum::http::HeaderMap, body: &[u8]| {
        headers
            .get("x-amz-target")
            .is_some_and(|t| t.as_bytes().ends_with(b".UpdateItem"))
            && String::from_utf8_lossy(body).contains("sha256")
    }))
    .await;
    let first = daemon(&env, &bucket, &proxy.url);
    // summarize.py puts the input in its value: 5 KB, over offload_over.
    env.send(&json!({"v": 1, "type": "request", "key": {"pk": "order#9"}, "set": "summary", "input": {"notes": "z".repeat(5000)}}))
        .await;
    let held = proxy.held.clone();
    wait_until("the commit reaches the proxy", T, || async {
        held.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
    .await;
    let prefix = objects_of(&env, "order#9", "summary");
    let uploaded = bucket.keys(&prefix).await;
    assert_eq!(
        uploaded.len(),
        1,
        "uploaded before the commit: {uploaded:?}"
    );
    first.signal("KILL");
    drop(first);
    assert_eq!(
        env.cache("order#9", "summary").await.status,
        Some(Status::Processing)
    );
    // The redelivery finishes the run on another daemon.
    let second = daemon(&env, &bucket, &common::endpoint());
    env.wait_events("a ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    let cache = env.cache("order#9", "summary").await;
    assert_eq!(cache.status, Some(Status::Ready));
    let committed = cache.value_ref.unwrap()["key"].as_str().unwrap().to_owned();
    let keys = bucket.keys(&prefix).await;
    assert!(keys.contains(&committed), "{keys:?}");
    assert!(keys.len() <= 2, "at most one orphan: {keys:?}");
    // The next commit leaves only its own object.
    trigger(&env, "order#9", "summary").await;
    env.send(&json!({"v": 1, "type": "request", "key": {"pk": "order#9"}, "set": "summary", "input": {"notes": "w".repeat(5000)}}))
        .await;
    wait_until("the next commit", T, || async {
        let c = env.cache("order#9", "summary").await;
        c.status == Some(Status::Ready)
            && c.value_ref
                .as_ref()
                .is_some_and(|r| r["key"] != json!(committed))
    })
    .await;
    let last = env.cache("order#9", "summary").await.value_ref.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    bucket.wait_keys(&prefix, &[last], T).await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_ref_reaches_the_processor_and_one_outside_the_prefix_is_dead_lettered() {
    let env = Env::new("inputref").await;
    let bucket = env.bucket().await;
    let input =
        json!({"lines": (0..80_000).map(|i| format!("line {i} of the order")).collect::<Vec<_>>()});
    let bytes = serde_json::to_vec(&input).unwrap();
    assert!(bytes.len() > 2_000_000, "{}", bytes.len());
    bucket.put("tc/inputs/big.json", bytes.clone()).await;
    bucket.put("elsewhere/big.json", bytes.clone()).await;
    let rec = Recorder::ok_after(Duration::ZERO);
    let mut cfg = env.config(&["summary"]);
    cfg.s3.bucket = bucket.name.clone();
    cfg.s3.prefix = PREFIX.into();
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    let request = |pk: &str, b: &str, k: &str| json!({"v": 1, "type": "request", "key": {"pk": pk}, "set": "summary", "inputRef": {"bucket": b, "key": k}});
    env.send(&request("order#1", &bucket.name, "tc/inputs/big.json"))
        .await;
    env.wait_events("a ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    let got = rec.runs.lock().unwrap()[0].input.clone().unwrap();
    assert_eq!(
        sha256_hex(&serde_json::to_vec(&got).unwrap()),
        sha256_hex(&bytes)
    );
    assert_eq!(got, input);
    env.send(&request("order#2", "another-bucket", "tc/inputs/big.json"))
        .await;
    env.send(&request("order#3", &bucket.name, "elsewhere/big.json"))
        .await;
    let dead = env.wait_dlq(2, T).await;
    let reasons: Vec<&str> = dead.iter().map(|(_, a)| a["error"].as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("field `inputRef` names bucket \"another-bucket\"")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("outside s3.prefix \"tc/\"")),
        "{reasons:?}"
    );
    assert!(dead.iter().all(|(_, a)| a["deadLetterKind"] == "malformed"));
    assert_eq!(rec.count(), 1, "refused inputs never run");
    w.stop();
}
