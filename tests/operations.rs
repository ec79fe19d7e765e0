//! Running it in production: the operations endpoints, metrics after known
//! traffic, readiness through shutdown, graceful shutdown with work in
//! flight (DESIGN §5 invariant 6, §8), and credentials kept out of logs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Daemon, Env, Recorder, Running, bin, wait_until};
use triggered_cache::processor::Processor;
use triggered_cache::state::Status;

const T: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_and_metrics_count_known_traffic() {
    let env = Env::new("ops").await;
    let mut d = Daemon::spawn(bin(&env));
    let (status, body) = d.get("/healthz").await;
    assert_eq!(status, 200, "alive while starting too: {body}");
    wait_until("readiness", T, || async { d.get("/readyz").await.0 == 200 }).await;
    wait_until("the pollers to run", T, || async {
        d.get("/healthz").await.1.contains("pollers")
    })
    .await;
    let ready = d.get("/readyz").await;
    let detail: serde_json::Value = serde_json::from_str(&ready.1).unwrap();
    assert_eq!(detail["resources"]["table"], "ok");
    assert_eq!(detail["resources"]["queue"], "ok");
    assert_eq!(detail["resources"]["topic"], "ok");

    env.send(&Env::request("order#1", "summary")).await;
    env.wait_events("a ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    env.send(&Env::request("order#1", "summary")).await;
    env.send_raw("garbage").await;
    env.wait_events("a hit event", T, |e| e.iter().any(|e| e["event"] == "hit"))
        .await;
    env.wait_dlq(1, T).await;
    env.wait_queue_empty(T).await;
    let (_, metrics) = d.get("/metrics").await;
    for line in [
        "triggered_cache_claims_won_total{set=\"summary\"} 1",
        "triggered_cache_hits_total{set=\"summary\"} 1",
        "triggered_cache_misses_total{set=\"summary\"} 1",
        "triggered_cache_processing_runs_total{set=\"summary\"} 1",
        "triggered_cache_events_published_total{event=\"ready\",set=\"summary\"} 1",
        "triggered_cache_events_published_total{event=\"hit\",set=\"summary\"} 1",
        "triggered_cache_dead_lettered_total{kind=\"malformed\"} 1",
        "triggered_cache_messages_received_total 3",
        "triggered_cache_in_flight 0",
    ] {
        assert!(
            metrics.contains(line),
            "/metrics lacks {line:?}:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("triggered_cache_processing_seconds_bucket"),
        "{metrics}"
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(T).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_slow_work_in_flight_exits_0_and_returns_the_work_at_once() {
    let env = Env::new("drain").await;
    let mut cmd = bin(&env);
    cmd.env("SUMMARIZE_DELAY", "60")
        .env("TRIGGERED_CACHE__WORKER__SHUTDOWN_GRACE", "2s")
        .env("TRIGGERED_CACHE__SQS__VISIBILITY_TIMEOUT", "120s");
    let mut d = Daemon::spawn(cmd);
    wait_until("readiness", T, || async { d.get("/readyz").await.0 == 200 }).await;
    let rid_a = env.send(&Env::request("slow#a", "summary")).await;
    let rid_b = env.send(&Env::request("slow#b", "summary")).await;
    wait_until("both runs to start", T, || async {
        env.cache("slow#a", "summary").await.status == Some(Status::Processing)
            && env.cache("slow#b", "summary").await.status == Some(Status::Processing)
    })
    .await;
    let started = std::time::Instant::now();
    d.signal("TERM");
    // Readiness goes false as soon as the signal is handled, while the pool
    // drains (for the 2s grace period).
    wait_until(
        "readiness to turn false",
        Duration::from_secs(2),
        || async {
            let (status, body) = d.get("/readyz").await;
            status == 503 && body.contains("shutting down")
        },
    )
    .await;
    let (_, metrics) = d.get("/metrics").await;
    assert!(
        metrics.contains("\ntriggered_cache_ready 0\n"),
        "the ready gauge follows: {metrics}"
    );
    assert_eq!(d.wait_exit(T).await, Some(0), "{}", d.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exit within the grace period (2s) plus a margin"
    );
    // The unfinished messages are visible again now, not after the 120s
    // visibility timeout, and the leases were released.
    let (visible, _) = env.queue_depth().await;
    assert_eq!(visible, 2, "both messages are back on the queue");
    assert_eq!(env.cache("slow#a", "summary").await.lease_until, Some(0));
    let fast = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(
        env.config(&["summary"]),
        vec![("summary", Arc::new(fast.clone()) as Arc<dyn Processor>)],
    );
    let evs = env
        .wait_events("both requests answered", Duration::from_secs(30), |e| {
            e.iter().filter(|e| e["event"] == "ready").count() == 2
        })
        .await;
    for rid in [&rid_a, &rid_b] {
        assert!(
            evs.iter().any(|e| e["requestId"] == rid.as_str()),
            "{rid} unanswered: {evs:#?}"
        );
    }
    assert_eq!(
        fast.count(),
        2,
        "the redeliveries continue the same requests"
    );
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_processor_secrets_never_appear_in_logs() {
    let env = Env::new("secrets").await;
    let mut cmd = bin(&env);
    let secret = "sEcReT-kEy-8c1f0e";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        r#"
[sets.summary]
processor = { kind = "http", url = "http://127.0.0.1:9/process", headers = { authorization = "Bearer tOkEn-77a2" } }
max_attempts = 1
"#,
    )
    .unwrap();
    cmd.env("AWS_SECRET_ACCESS_KEY", secret)
        .env("RUST_LOG", "debug")
        .env("TRIGGERED_CACHE_CONFIG", &config);
    let mut d = Daemon::spawn(cmd);
    env.send(&Env::request("order#s", "summary")).await;
    let evs = env
        .wait_events("a failed event", T, |e| {
            e.iter().any(|e| e["event"] == "failed")
        })
        .await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(T).await, Some(0));
    let logs = d.log_text();
    assert!(
        logs.contains("processing failed"),
        "the failure is logged: {logs}"
    );
    assert!(
        !logs.contains(secret),
        "the AWS secret key leaked into the logs"
    );
    assert!(
        !logs.contains("tOkEn-77a2"),
        "the processor's header leaked into the logs"
    );
    let events = serde_json::to_string(&evs).unwrap();
    assert!(
        !events.contains(secret) && !events.contains("tOkEn-77a2"),
        "a secret leaked into events"
    );
}

/// A configuration file with two sets (the other keys come from `bin`).
fn two_sets(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let config = dir.path().join("config.toml");
    let set = |name: &str| {
        format!(
            "[sets.{name}]\nprocessor = {{ kind = \"command\", program = \"examples/processors/summarize.py\" }}\n"
        )
    };
    std::fs::write(&config, set("summary") + &set("digest")).unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_daemon_lists_every_metric_at_0_for_each_set() {
    let env = Env::new("fresh-metrics").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin(&env);
    cmd.env("TRIGGERED_CACHE_CONFIG", two_sets(&dir));
    let mut d = Daemon::spawn(cmd);
    // Before any message.
    let (_, metrics) = d.get("/metrics").await;
    for set in ["summary", "digest"] {
        for family in [
            "hits",
            "misses",
            "claims_won",
            "claims_lost",
            "coalesced",
            "lease_takeovers",
            "trigger_deadline_expiries",
            "resets",
            "parked",
            "processing_runs",
            "stale_results",
            "dependency_resets",
        ] {
            let line = format!("triggered_cache_{family}_total{{set=\"{set}\"}} 0");
            assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
        }
        let mut lines = vec![
            format!("triggered_cache_processing_seconds_count{{set=\"{set}\"}} 0"),
            format!(
                "triggered_cache_processing_failures_total{{set=\"{set}\",kind=\"retryable\"}} 0"
            ),
            format!(
                "triggered_cache_processing_failures_total{{set=\"{set}\",kind=\"permanent\"}} 0"
            ),
            format!("triggered_cache_oldest_run_seconds{{set=\"{set}\"}} 0.0"),
        ];
        for event in ["hit", "ready", "failed", "reset"] {
            lines.push(format!(
                "triggered_cache_events_published_total{{event=\"{event}\",set=\"{set}\"}} 0"
            ));
        }
        for line in lines {
            assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
        }
    }
    for line in [
        "triggered_cache_dead_lettered_total{kind=\"malformed\"} 0",
        "triggered_cache_dead_lettered_total{kind=\"failed\"} 0",
        "triggered_cache_aws_errors_total{service=\"sqs\"} 0",
        "triggered_cache_aws_errors_total{service=\"dynamodb\"} 0",
        "triggered_cache_aws_errors_total{service=\"sns\"} 0",
        "triggered_cache_message_age_seconds_count 0",
        "triggered_cache_messages_received_total 0",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
    d.signal("TERM");
    assert_eq!(d.wait_exit(T).await, Some(0));
}

/// The value of a sample of `/metrics`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_gauges_follow_readiness_queues_message_ages_and_runs() {
    let env = Env::new("gauges").await;
    let mut cmd = bin(&env);
    cmd.env("SUMMARIZE_DELAY", "3");
    let mut d = Daemon::spawn(cmd);
    let scrape = |series: &'static str| {
        let d = &d;
        async move { sample(&d.get("/metrics").await.1, series) }
    };
    wait_until("ready = 1", T, || async {
        scrape("triggered_cache_ready").await == Some(1.0)
    })
    .await;
    assert_eq!(
        d.get("/readyz").await.0,
        200,
        "the gauge says what /readyz says"
    );

    // A run in progress ages; the gauge is 0 again once it ends.
    env.send(&Env::request("order#g", "summary")).await;
    wait_until("the run to show its age", T, || async {
        scrape("triggered_cache_oldest_run_seconds{set=\"summary\"}")
            .await
            .is_some_and(|age| age >= 1.0)
    })
    .await;
    env.wait_events("a ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    wait_until("no run in progress", T, || async {
        scrape("triggered_cache_oldest_run_seconds{set=\"summary\"}").await == Some(0.0)
    })
    .await;

    // The DLQ's depth comes with the next readiness probe (every 10s).
    env.send_raw("garbage").await;
    wait_until("the queue depths", Duration::from_secs(40), || async {
        let metrics = d.get("/metrics").await.1;
        sample(&metrics, "triggered_cache_queue_messages{queue=\"dlq\"}") == Some(1.0)
            && sample(
                &metrics,
                "triggered_cache_queue_messages{queue=\"requests\"}",
            ) == Some(0.0)
    })
    .await;
    let (_, metrics) = d.get("/metrics").await;
    assert_eq!(
        sample(&metrics, "triggered_cache_message_age_seconds_count"),
        Some(2.0),
        "each received message's age is observed: {metrics}"
    );
    d.signal("TERM");
    assert_eq!(d.wait_exit(T).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_endpoints_no_readiness_probe_runs_but_the_redrive_check_does() {
    let env = Env::new("no-probe").await;
    let mut cmd = bin(&env);
    // The test queue redrives after 5 receives; 4 attempts need 6.
    cmd.env("TRIGGERED_CACHE__SETS__SUMMARY__MAX_ATTEMPTS", "4")
        .env("RUST_LOG", "info,triggered_cache=debug");
    let mut d = Daemon::spawn_without_endpoints(cmd);
    // A probe starts with the daemon: by the time a request is answered,
    // its first round would have been logged.
    env.send(&Env::request("order#p", "summary")).await;
    env.wait_events("a ready event", T, |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(T).await, Some(0), "{}", d.log_text());
    wait_until("the last log line", T, || async {
        !d.log_lines("worker pool stopped").is_empty()
    })
    .await;
    assert!(
        !d.log_lines("completion event published").is_empty(),
        "debug logs are on: {}",
        d.log_text()
    );
    assert_eq!(
        d.log_lines("readiness probe").len(),
        0,
        "no probe without http.listen: {}",
        d.log_text()
    );
    let redrive = d
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("redrive policy has maxReceiveCount 5"))
        .count();
    assert_eq!(
        redrive,
        1,
        "the redrive check still runs, once: {}",
        d.log_text()
    );
}
