//! The real binary: configuration errors, `config check`, and the daemon
//! end to end with the example `command` processor, stopped by SIGTERM.

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

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const VALID: &str = r#"
[sqs]
queue_url = "http://127.0.0.1:1/q"
dlq_url = "http://127.0.0.1:1/dlq"
[dynamodb]
table = "t"
[sns]
topic_arn = "arn:aws:sns:us-east-1:000000000000:t"
[sets.summary]
processor = { kind = "http", url = "http://127.0.0.1:1/p", headers = { authorization = "Bearer hunter2" } }
"#;

#[test]
fn a_bad_configuration_exits_2_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &VALID.replace("table = \"t\"", "table = \"t\"\ntabel = \"typo\""),
    );
    let out = bin()
        .arg("--config")
        .arg(&path)
        .arg("config")
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tabel"), "{err}");

    let out = bin().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "run refuses it too");

    let path = write_config(
        &dir,
        &VALID.replace("queue_url = \"http://127.0.0.1:1/q\"", ""),
    );
    let out = bin()
        .arg("--config")
        .arg(&path)
        .arg("config")
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sqs.queue_url is missing"), "{err}");
    assert!(err.contains("TRIGGERED_CACHE__SQS__QUEUE_URL"), "{err}");

    let out = bin()
        .arg("--config")
        .arg(&path)
        .arg("config")
        .arg("check")
        .env("TRIGGERED_CACHE__SQS__QUEUE_URL", "http://127.0.0.1:1/q")
        .env("TRIGGERED_CACHE__WORKER__CONCURRENCY", "zero")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("concurrency"), "{err}");
}

/// Every kind of bad configuration: exit 2, and the message names the key
/// (and for a TOML syntax error, where it is).
#[test]
fn bad_configurations_exit_2_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // (what, config text, environment, what the error must mention)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "unknown key",
            VALID.replace(
                "[dynamodb]",
                "[dynamodb]
tabel = \"x\"",
            ),
            vec![],
            vec!["tabel"],
        ),
        (
            "unknown section",
            format!("{VALID}\n[wrker]\nconcurrency = 2\n"),
            vec![],
            vec!["wrker"],
        ),
        (
            "wrong type",
            format!("{VALID}\n[worker]\nconcurrency = \"many\"\n"),
            vec![],
            vec!["concurrency"],
        ),
        (
            "zero concurrency",
            format!("{VALID}\n[worker]\nconcurrency = 0\n"),
            vec![],
            vec!["worker.concurrency"],
        ),
        (
            "bad duration",
            format!("{VALID}\n[worker]\nlease_duration = \"soon\"\n"),
            vec![],
            vec!["lease_duration"],
        ),
        (
            "missing queue url",
            VALID.replace("queue_url = \"http://127.0.0.1:1/q\"", ""),
            vec![],
            vec!["sqs.queue_url", "TRIGGERED_CACHE__SQS__QUEUE_URL"],
        ),
        (
            "queue url that is not a URL",
            VALID.replace("http://127.0.0.1:1/q\"", "not a url\""),
            vec![],
            vec!["sqs.queue_url"],
        ),
        (
            "processor of an unknown kind",
            VALID.replace("kind = \"http\"", "kind = \"carrier-pigeon\""),
            vec![],
            vec!["sets.summary", "carrier-pigeon"],
        ),
        (
            "http processor without a url",
            VALID.replace("url = \"http://127.0.0.1:1/p\", ", ""),
            vec![],
            vec!["sets.summary"],
        ),
        (
            "no sets",
            VALID.split("[sets.summary]").next().unwrap().to_string(),
            vec![],
            vec!["sets"],
        ),
        (
            "bad environment override",
            VALID.to_string(),
            vec![("TRIGGERED_CACHE__WORKER__CONCURRENCY", "abc")],
            vec!["concurrency"],
        ),
        (
            "TOML syntax error",
            VALID.replace("table = \"t\"", "table = \"t"),
            vec![],
            vec!["line"],
        ),
    ];
    for (what, text, env, want) in cases {
        let path = write_config(&dir, &text);
        let mut cmd = bin();
        cmd.arg("--config").arg(&path).arg("config").arg("check");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: exit code; stderr: {err}"
        );
        for w in want {
            assert!(
                err.contains(w),
                "{what}: the error does not mention {w:?}: {err}"
            );
        }
        assert!(
            !err.contains("panicked"),
            "{what}: a clear error, not a panic: {err}"
        );
    }
}

#[test]
fn a_missing_config_file_exits_2() {
    let out = bin()
        .arg("--config")
        .arg("/nonexistent/tc.toml")
        .arg("config")
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, VALID);
    let out = bin()
        .arg("--config")
        .arg(&path)
        .arg("config")
        .arg("check")
        .env("TRIGGERED_CACHE__WORKER__CONCURRENCY", "7")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("concurrency = 7"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn help_explains_the_commands() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "send", "config", "TRIGGERED_CACHE__", "Exit codes"] {
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
