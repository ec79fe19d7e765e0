//! The operators' CLI on the real binary against the emulator: send,
//! inspect, reset, dlq list and dlq redrive.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use common::{Env, Recorder, Running, bin, wait_until};
use serde_json::{Value as Json, json};
use triggered_cache::item::to_av;
use triggered_cache::state::Status;
use triggered_cache::{ProcessError, Processor};

const T: Duration = Duration::from_secs(30);

fn run(env: &Env, args: &[&str]) -> (String, String) {
    let out = bin(env).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    (stdout, stderr)
}

fn attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .unwrap()
}

async fn put_ready(env: &Env, pk: &str) {
    env.ddb
        .put_item()
        .table_name(&env.name)
        .item("pk", to_av(&json!(pk)))
        .item("triggeredCache_summary_status", to_av(&json!("READY")))
        .item("triggeredCache_summary_epoch", to_av(&json!(7)))
        .item("triggeredCache_summary_requestId", to_av(&json!("req-9")))
        .item(
            "triggeredCache_summary_readyAt",
            to_av(&json!(triggered_cache::clock::now_millis() - 5000)),
        )
        .item("triggeredCache_summary_attempts", to_av(&json!(1)))
        .item("triggeredCache_summary_value", to_av(&json!({"total": 1})))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_puts_each_kind_of_message_on_the_queue() {
    let env = Env::new("cli-send").await;
    let (out, _) = run(
        &env,
        &[
            "send",
            "request",
            "order#1",
            "--set",
            "summary",
            "--count",
            "25",
            "--input",
            "{\"a\":1}",
        ],
    );
    assert_eq!(out.lines().count(), 25);
    run(&env, &["send", "trigger", "order#1", "--set", "*"]);
    run(
        &env,
        &[
            "send",
            "trigger-start",
            "order#1",
            "--set",
            "summary",
            "--trigger-id",
            "f1",
        ],
    );
    run(
        &env,
        &[
            "send",
            "trigger-end",
            "order#1",
            "--set",
            "summary",
            "--trigger-id",
            "f1",
        ],
    );
    assert_eq!(env.queue_depth().await.0, 28);
    let mut kinds = std::collections::BTreeMap::new();
    while kinds.values().sum::<usize>() < 28 {
        let out = env
            .sqs
            .receive_message()
            .queue_url(&env.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let body: Json = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
            assert_eq!(body["key"], json!({"pk": "order#1"}));
            *kinds
                .entry(body["type"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
            if body["type"] == "request" {
                assert_eq!(body["input"], json!({"a": 1}));
            }
            env.sqs
                .delete_message()
                .queue_url(&env.queue_url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(kinds["request"], 25);
    assert_eq!(kinds["trigger"], 1);
    assert_eq!(kinds["trigger_start"], 1);
    assert_eq!(kinds["trigger_end"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_the_cache_state_and_reset_makes_it_stale() {
    let env = Env::new("cli-inspect").await;
    put_ready(&env, "order#2").await;
    let (out, _) = run(&env, &["inspect", "order#2"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("SET") && lines[0].contains("LEASE LEFT"),
        "{out}"
    );
    let row = lines.iter().find(|l| l.starts_with("summary")).unwrap();
    for cell in ["READY", "7", "req-9", "5s", "1"] {
        assert!(row.contains(cell), "{row:?} lacks {cell}");
    }
    let (out, _) = run(&env, &["inspect", "order#2", "--json"]);
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sets"]["summary"]["status"], "READY");
    assert_eq!(v["sets"]["summary"]["epoch"], 7);

    let (out, _) = run(&env, &["reset", "order#2", "--set", "summary"]);
    assert!(out.contains("epoch 8"), "{out}");
    let r = env.cache("order#2", "summary").await;
    assert_eq!(r.status, Some(Status::Stale));
    assert_eq!(r.epoch, Some(8));
    assert_eq!(r.request_id, None);
    let evs = env
        .wait_events("the reset event", T, |e| {
            e.iter().any(|e| e["event"] == "reset")
        })
        .await;
    assert_eq!(evs[0]["epoch"], 8);

    let (out, _) = run(&env, &["inspect", "nothing#here"]);
    assert!(out.contains("does not exist"), "{out}");
    let fail = bin(&env)
        .args(["inspect", "order#2", "--set", "nope"])
        .output()
        .unwrap();
    assert!(!fail.status.success());
    assert!(String::from_utf8_lossy(&fail.stderr).contains("not configured"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_shows_reasons_and_redrive_moves_messages_back() {
    let env = Env::new("cli-dlq").await;
    for i in 0..3 {
        // The last one as an earlier release dead-lettered it: its kind
        // under the attribute's old name, still read.
        let kind_attribute = if i == 2 {
            "errorKind"
        } else {
            "deadLetterKind"
        };
        env.sqs
            .send_message()
            .queue_url(&env.dlq_url)
            .message_body(format!("{{\"broken\": {i}}}"))
            .message_attributes("error", attr(&format!("reason number {i}")))
            .message_attributes(kind_attribute, attr("malformed"))
            .message_attributes("sourceMessageId", attr(&format!("m-{i}")))
            .message_attributes(
                "traceparent",
                attr("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            )
            .send()
            .await
            .unwrap();
    }
    let (out, _) = run(&env, &["dlq", "list"]);
    for i in 0..3 {
        assert!(out.contains(&format!("reason number {i}")), "{out}");
        assert!(out.contains(&format!("{{\"broken\":{i}}}")), "{out}");
        assert!(out.contains(&format!("m-{i}")), "{out}");
    }
    assert_eq!(out.matches("deadLetterKind malformed").count(), 3, "{out}");
    // Listing leaves them in the DLQ, visible.
    assert_eq!(env.dlq_depth().await, 3);

    let (out, _) = run(&env, &["dlq", "redrive", "--limit", "2"]);
    assert!(out.contains("moved 2 messages (2 malformed)"), "{out}");
    assert!(out.contains("stopped at --limit 2"), "{out}");
    let (out, _) = run(&env, &["dlq", "redrive"]);
    assert!(out.starts_with("moved 1 message (1 malformed)"), "{out}");
    assert_eq!(env.queue_depth().await.0, 3);
    let got = env
        .sqs
        .receive_message()
        .queue_url(&env.queue_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(!got.is_empty());
    for m in got {
        let attrs = m.message_attributes.unwrap_or_default();
        for reason in ["error", "deadLetterKind", "errorKind"] {
            assert!(
                !attrs.contains_key(reason),
                "the reason is stripped on redrive: {attrs:?}"
            );
        }
        assert!(
            attrs.contains_key("traceparent"),
            "other attributes are kept"
        );
    }
    let (out, _) = run(&env, &["dlq", "list"]);
    assert!(out.contains("empty"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_prints_json_bodies_and_reasons_as_json() {
    let env = Env::new("cli-dlq-json").await;
    let body =
        r#"{"v":1,"type":"request","key":{"pk":"order#9"},"set":"nope","input":{"note":"a b"}}"#;
    let pretty = "{\n  \"pretty\": [1, 2]\n}";
    let reason = r#"HTTP 500 from the processor: {"error":"boom"}"#;
    for (b, r) in [
        (body, reason),
        (pretty, r#"{"status":"bad"}"#),
        ("plain text", "a\nb"),
    ] {
        env.sqs
            .send_message()
            .queue_url(&env.dlq_url)
            .message_body(b)
            .message_attributes("error", attr(r))
            .message_attributes("deadLetterKind", attr("malformed"))
            .send()
            .await
            .unwrap();
    }
    let (out, _) = run(&env, &["dlq", "list"]);
    for shown in [
        body,
        reason,
        r#"{"pretty":[1,2]}"#,
        r#"{"status":"bad"}"#,
        "plain text",
        "a\\nb",
    ] {
        assert!(out.contains(shown), "{shown} is not in {out}");
    }
    assert!(!out.contains("\\\""), "no backslash-escaped quotes: {out}");
    assert_eq!(env.dlq_depth().await, 3, "listing leaves them visible");
}

/// A running daemon whose processor fails for good, and a DLQ it filled
/// with one malformed message and one failed request. Returns the
/// daemon and the MessageIds the two had on the request queue.
async fn daemon_with_two_dead_letters(env: &Env) -> (Running, String, String) {
    let failing =
        Recorder::new(|_job, _n| async { Err(ProcessError::Permanent("order not found".into())) });
    let p: Arc<dyn Processor> = Arc::new(failing);
    let w = Running::start(env.config(&["summary"]), vec![("summary", p)]);
    let malformed = env.send_raw("not json").await;
    let failed = env.send(&Env::request("order#3", "summary")).await;
    wait_until("both messages in the DLQ", T, || async {
        env.dlq_depth().await == 2
    })
    .await;
    (w, malformed, failed)
}

/// Runs the binary; fails the test if it does not end within `deadline`.
async fn run_within(env: &Env, args: &[&str], deadline: Duration) -> String {
    let mut cmd = tokio::process::Command::from(bin(env));
    cmd.args(args).kill_on_drop(true);
    let out = tokio::time::timeout(deadline, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} did not end within {deadline:?}"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The DLQ's messages once the daemon has settled everything: (body,
/// sourceMessageId).
async fn dlq_when_settled(env: &Env, n: usize) -> Vec<(String, String)> {
    env.wait_queue_empty(T).await;
    let got = env.wait_dlq(n, T).await;
    assert_eq!(got.len(), n, "{got:#?}");
    got.into_iter()
        .map(|(body, attrs)| (body, attrs["sourceMessageId"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_moves_what_was_in_the_dlq_once_and_stops_while_a_daemon_runs() {
    let env = Env::new("cli-redrive").await;
    let (w, malformed, failed) = daemon_with_two_dead_letters(&env).await;
    let out = run_within(&env, &["dlq", "redrive"], Duration::from_secs(15)).await;
    assert!(
        out.starts_with("moved 2 messages (1 failed, 1 malformed) to "),
        "{out}"
    );
    // Both went through the request queue once and were dead-lettered
    // again from there: new source MessageIds, and no third copy.
    let dlq = dlq_when_settled(&env, 2).await;
    assert!(dlq.iter().any(|(b, _)| b == "not json"), "{dlq:#?}");
    for (_, source) in &dlq {
        assert!(source != &malformed && source != &failed, "{dlq:#?}");
    }
    assert_eq!(env.dlq_depth().await, 0);
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_skip_malformed_leaves_malformed_messages_in_the_dlq() {
    let env = Env::new("cli-redrive-skip").await;
    let (w, malformed, failed) = daemon_with_two_dead_letters(&env).await;
    let out = run_within(
        &env,
        &["dlq", "redrive", "--skip-malformed"],
        Duration::from_secs(15),
    )
    .await;
    assert!(out.starts_with("moved 1 message (1 failed) to "), "{out}");
    assert!(out.contains("skipped 1 malformed message"), "{out}");
    // The malformed message is the original, visible again at once (long
    // before the redrive's hiding would end); the failed one went back.
    let dlq = dlq_when_settled(&env, 2).await;
    assert!(
        dlq.contains(&("not json".to_string(), malformed.clone())),
        "{dlq:#?}"
    );
    let (_, source) = dlq.iter().find(|(b, _)| b != "not json").unwrap();
    assert!(source != &failed && source != &malformed, "{dlq:#?}");
    w.stop();
}
