//! The real binary end to end: the daemon with a `command` processor,
//! stopped by SIGTERM, and a processor program that stops being runnable.
//! (Configuration errors and `config check`: tests/configuration.rs.)

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::Env;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_triggered-cache"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIGGERED_CACHE") {
            c.env_remove(k);
        }
    }
    c
}

/// `iam-actions` prints the code's list of IAM actions, without any
/// configuration (deploy/'s check reads it).
#[test]
fn iam_actions_prints_the_list_as_json_without_configuration() {
    let out = bin().arg("iam-actions").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), triggered_cache::aws::IAM_ACTIONS.len());
    let receive = list
        .iter()
        .find(|g| g["action"] == "sqs:ReceiveMessage" && g["caller"] == "daemon")
        .expect("the daemon receives");
    assert_eq!(receive["resource"], "queue");
    assert_eq!(receive["calls"], serde_json::json!(["receive_message"]));
    assert!(receive["why"].as_str().is_some_and(|w| !w.is_empty()));
}

#[test]
fn help_explains_the_commands() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "run",
        "send",
        "config",
        "healthcheck",
        "iam-actions",
        "TRIGGERED_CACHE__",
        "Exit codes",
    ] {
        assert!(
            text.contains(word),
            "--help does not mention {word}: {text}"
        );
    }
}

/// Environment for the daemon and the CLI to reach this test's resources.
fn daemon_env(env: &Env, cmd: &mut Command) {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("TRIGGERED_CACHE__AWS__REGION", "us-east-1")
        .env("TRIGGERED_CACHE__AWS__ENDPOINT_URL", common::endpoint())
        .env("TRIGGERED_CACHE__SQS__QUEUE_URL", &env.queue_url)
        .env("TRIGGERED_CACHE__SQS__DLQ_URL", &env.dlq_url)
        .env("TRIGGERED_CACHE__SQS__WAIT_TIME", "1s")
        .env("TRIGGERED_CACHE__DYNAMODB__TABLE", &env.name)
        .env("TRIGGERED_CACHE__SNS__TOPIC_ARN", &env.topic_arn)
        .env("TRIGGERED_CACHE__HTTP__LISTEN", "127.0.0.1:0")
        .env("TRIGGERED_CACHE__LOG__FORMAT", "json")
        .env("SUMMARIZE_DELAY", "0.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_answers_requests_with_the_command_processor_and_exits_0_on_sigterm() {
    let env = Env::new("binary").await;
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    let mut daemon = bin();
    daemon
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    daemon_env(&env, &mut daemon);
    let mut child = daemon.spawn().unwrap();

    let mut send = bin();
    send.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config")
        .arg(config)
        .args([
            "send", "request", "order#9", "--set", "summary", "--count", "3",
        ]);
    daemon_env(&env, &mut send);
    let out = send.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);

    let evs = env
        .wait_events("a ready event", Duration::from_secs(60), |e| {
            e.iter().any(|e| e["event"] == "ready")
        })
        .await;
    let ready = evs.iter().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(ready["value"]["computedForEpoch"], 0);
    env.wait_queue_empty(Duration::from_secs(30)).await;

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut logs = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("committed READY"), "{logs}");
    assert!(
        !logs.contains("\"test\""),
        "credentials never appear in logs"
    );
}

/// A processor program that stops being executable after the daemon started
/// (a redeploy gone wrong, `chmod -x`) fails its request at once: one
/// attempt, `FAILED`, a `failed` event and the request in the DLQ, not
/// `max_attempts` retries of `Permission denied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_cannot_be_started_fails_the_request_after_one_attempt() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("spawn").await;
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("processor.sh");
    std::fs::write(&program, "#!/bin/sh\necho '{\"value\": 1}'\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = common::bin(&env);
    cmd.env(
        "TRIGGERED_CACHE__SETS__SUMMARY__PROCESSOR__PROGRAM",
        &program,
    )
    .env("TRIGGERED_CACHE__SETS__SUMMARY__MAX_ATTEMPTS", "3")
    .env("TRIGGERED_CACHE__SETS__SUMMARY__BACKOFF_BASE", "100ms");
    let daemon = common::Daemon::spawn(cmd);

    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.send(&Env::request("order#1", "summary")).await;

    let evs = env
        .wait_events("a failed event", Duration::from_secs(60), |e| {
            e.iter().any(|e| e["event"] == "failed")
        })
        .await;
    let failed = evs.iter().find(|e| e["event"] == "failed").unwrap();
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("Permission denied") && !error.contains("gave up after"),
        "{error}"
    );
    let dead = env.wait_dlq(1, Duration::from_secs(30)).await;
    assert!(dead[0].1["error"].contains("Permission denied"), "{dead:?}");
    let record = env.cache("order#1", "summary").await;
    assert_eq!(record.status().as_str(), "FAILED");
    assert_eq!(record.attempts(), 1, "{}", daemon.log_text());
    assert!(
        !daemon.log_text().contains("retrying later"),
        "{}",
        daemon.log_text()
    );
}

/// `healthcheck` is the container's HEALTHCHECK (the image has no shell
/// and no curl): 0 when the daemon's /healthz answers 2xx, 1 otherwise,
/// and it needs no configuration (none is given here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_probes_a_running_daemon_without_configuration() {
    let env = Env::new("healthcheck").await;
    let daemon = common::Daemon::spawn(common::bin(&env));
    let probe = |url: String| {
        let out = bin()
            .env_remove("TRIGGERED_CACHE_CONFIG")
            .arg("healthcheck")
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = probe(format!("http://{}/healthz", daemon.addr));
    assert_eq!(code, Some(0), "a live daemon is healthy: {err}");
    let (code, err) = probe(format!("http://{}/no-such-page", daemon.addr));
    assert_eq!(code, Some(1), "a 404 is unhealthy");
    assert!(err.contains("answered 404"), "{err}");
    drop(daemon);
    // Nothing listens on a port the OS just handed out and took back.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, err) = probe(format!("http://{free}/healthz"));
    assert_eq!(code, Some(1), "no daemon, unhealthy");
    assert!(err.starts_with("healthcheck: http://"), "{err}");
}
