//! The real binary's configuration: every kind of bad configuration exits
//! 2 naming the key, from `config check` and `run` alike (one validation
//! path); `config check` prints the effective configuration. No AWS here.

use std::process::{Command, Stdio};
use std::time::Duration;

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

/// Every kind of bad configuration: exit 2 from `config check` and from
/// `run` alike (one validation path), and the message names the key (and
/// for a TOML syntax error, where it is).
#[test]
fn bad_configurations_exit_2_and_name_the_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("processor.sh");
    std::fs::write(&not_executable, "#!/bin/sh\necho '{\"value\": 1}'\n").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let command = |program: &std::path::Path| {
        let processor = VALID.lines().find(|l| l.starts_with("processor")).unwrap();
        VALID.replace(
            processor,
            &format!(
                "processor = {{ kind = \"command\", program = {:?} }}",
                program.display().to_string()
            ),
        )
    };
    let program_key = "config key sets.summary.processor.program is";
    let program_env = "TRIGGERED_CACHE__SETS__SUMMARY__PROCESSOR__PROGRAM";
    let syntax_error_at = format!("{}:6:", dir.path().join("config.toml").display());
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
            "a call timeout as long as the lease",
            format!("{VALID}\n[aws]\ncall_timeout = \"1m\"\n"),
            vec![],
            vec!["aws.call_timeout", "worker.lease_duration"],
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
            vec![&syntax_error_at, "not valid TOML"],
        ),
        (
            "command processor whose program does not exist",
            command(&dir.path().join("missing.sh")),
            vec![],
            vec![program_key, "was not found", program_env],
        ),
        (
            "command processor whose program is not executable",
            command(&not_executable),
            vec![],
            vec![program_key, "chmod +x", program_env],
        ),
        (
            "command processor whose program is a directory",
            command(dir.path()),
            vec![],
            vec![program_key, "is a directory", program_env],
        ),
        (
            "embedded processor, which only a program linking the library can run",
            VALID.replace(
                &VALID[VALID.find("processor = ").unwrap()..VALID.trim_end().len()],
                "processor = { kind = \"embedded\" }",
            ),
            vec![],
            vec![
                "config key sets.summary.processor.kind",
                "\"command\" or \"http\"",
            ],
        ),
        (
            "no AWS region anywhere",
            VALID.to_string(),
            vec![("AWS_REGION", "")],
            vec!["config key aws.region", "AWS_REGION"],
        ),
        (
            "list from the environment with a bad item",
            VALID.to_string(),
            vec![("TRIGGERED_CACHE__SNS__EVENTS", "ready,sent")],
            vec!["config key sns.events", "sent"],
        ),
    ];
    for (what, text, env, want) in cases {
        let path = write_config(&dir, &text);
        let mut check = bin();
        check.arg("--config").arg(&path).arg("config").arg("check");
        let mut run = bin();
        run.arg("--config").arg(&path).arg("run");
        let mut errors = Vec::new();
        for cmd in [&mut check, &mut run] {
            no_aws_profile(cmd)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test");
            for (k, v) in &env {
                if v.is_empty() && k.starts_with("AWS_") {
                    cmd.env_remove(k);
                } else {
                    cmd.env(k, v);
                }
            }
            let (code, err) = exit_within(cmd, Duration::from_secs(30));
            assert_eq!(code, Some(2), "{what}: exit code of {cmd:?}; stderr: {err}");
            for w in &want {
                assert!(
                    err.contains(w),
                    "{what}: the error does not mention {w:?}: {err}"
                );
            }
            assert!(
                !err.contains("panicked"),
                "{what}: a clear error, not a panic: {err}"
            );
            errors.push(err);
        }
        assert_eq!(
            errors[0], errors[1],
            "{what}: `run` says what `config check` says"
        );
    }
}

/// No region or credentials from this machine's AWS profile or from an
/// instance metadata service: the test says what the process sees.
fn no_aws_profile(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

/// Runs `cmd` to its end, killing it past `deadline`; its exit code and
/// stderr.
fn exit_within(cmd: &mut Command, deadline: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + deadline;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} did not exit within {deadline:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
        .env("AWS_REGION", "us-east-1")
        .env("TRIGGERED_CACHE__WORKER__CONCURRENCY", "7")
        .env("TRIGGERED_CACHE__SNS__EVENTS", "ready, failed")
        .env("TRIGGERED_CACHE__SNS__RECORD_ATTRIBUTES", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("concurrency = 7"), "{text}");
    let effective: toml::Table = text.parse().unwrap();
    assert_eq!(
        effective["sns"]["events"],
        toml::Value::from(vec!["ready", "failed"]),
        "a comma-separated list from the environment: {text}"
    );
    assert_eq!(
        effective["sns"]["record_attributes"],
        toml::Value::Array(vec![]),
        "an empty string is an empty list: {text}"
    );
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
