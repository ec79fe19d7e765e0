use super::*;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

const MINIMAL: &str = r#"
[sqs]
queue_url = "http://q"
dlq_url = "http://dlq"
[dynamodb]
table = "t"
[sns]
topic_arn = "arn:aws:sns:us-east-1:123456789012:t"
[sets.summary]
processor = { kind = "http", url = "http://p/x" }
"#;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let f = file(text);
    Config::load_from(
        Some(f.path()),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .map(|v| v.into_parts().0)
}

fn error(text: &str, env: &[(&str, &str)]) -> String {
    load(text, env).unwrap_err().to_string()
}

#[test]
fn a_minimal_file_loads_with_defaults() {
    let cfg = load(MINIMAL, &[]).unwrap();
    assert_eq!(cfg.sqs.wait_time, Duration::from_secs(20));
    assert_eq!(cfg.dynamodb.attribute_prefix, "triggeredCache");
    assert_eq!(cfg.worker.concurrency, 32);
    assert_eq!(cfg.sets["summary"].max_attempts, 3);
}

#[test]
fn environment_variables_override_the_file() {
    let cfg = load(
        MINIMAL,
        &[
            ("TRIGGERED_CACHE__SQS__QUEUE_URL", "http://other"),
            ("TRIGGERED_CACHE__WORKER__CONCURRENCY", "7"),
            ("TRIGGERED_CACHE__SETS__SUMMARY__TIMEOUT", "1m 30s"),
            ("TRIGGERED_CACHE__DYNAMODB__TABLE", "000123456789"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.sqs.queue_url, "http://other");
    assert_eq!(cfg.worker.concurrency, 7);
    assert_eq!(cfg.sets["summary"].timeout, Duration::from_secs(90));
    assert_eq!(
        cfg.dynamodb.table, "000123456789",
        "an id-like string stays a string"
    );
}

#[test]
fn every_problem_names_its_key_and_how_to_set_it() {
    let e = error(
        "[sets.summary]\nprocessor = { kind = \"http\", url = \"http://p\" }\n",
        &[],
    );
    for key in [
        "sqs.queue_url",
        "sqs.dlq_url",
        "dynamodb.table",
        "sns.topic_arn",
    ] {
        assert!(e.contains(&format!("config key {key} is missing")), "{e}");
    }
    assert!(
        e.contains("TRIGGERED_CACHE__SQS__QUEUE_URL") && e.contains("[sqs].queue_url"),
        "{e}"
    );
}

#[test]
fn bad_values_are_refused_with_the_key() {
    let cases: &[(&str, &str)] = &[
        ("[sqs]\nreceive_batch_size = 11", "sqs.receive_batch_size"),
        ("[sqs]\nwait_time = \"21s\"", "sqs.wait_time"),
        ("[sqs]\nreceive_linger = \"2s\"", "sqs.receive_linger"),
        (
            "[worker]\nheartbeat_interval = \"10s\"\nlease_duration = \"20s\"",
            "worker.lease_duration",
        ),
        (
            "[sqs]\nvisibility_timeout = \"5s\"",
            "sqs.visibility_timeout",
        ),
        (
            "[worker]\nlease_duration = \"soon\"",
            "worker.lease_duration",
        ),
        ("[worker]\nthreads = 2000", "worker.threads"),
        ("[sqs]\nqueue_urll = \"x\"", "sqs.queue_urll"),
        ("[nonsense]\nx = 1", "nonsense"),
        (
            "[sets.other]\nprocessor = { kind = \"ftp\" }",
            "sets.other.processor",
        ),
        (
            "[sets.other]\nprocessor = { kind = \"http\", url = \"file:///etc/passwd\" }",
            "sets.other.processor.url",
        ),
        (
            "[telemetry]\notlp_endpoint = \"collector:4317\"",
            "telemetry.otlp_endpoint",
        ),
    ];
    for (extra, key) in cases {
        // Merge the extra section into the minimal file (later tables win
        // only where the minimal one does not define them).
        let text = if extra.starts_with("[sqs]") {
            MINIMAL.replace("[sqs]\n", &format!("{}\n", extra))
        } else {
            format!("{MINIMAL}\n{extra}\n")
        };
        let e = error(&text, &[]);
        assert!(e.contains(&format!("config key {key}")), "{extra:?}: {e}");
    }
}

#[test]
fn invalid_toml_and_a_missing_file_are_reported() {
    assert!(error("[sqs\nqueue_url=1", &[]).contains("not valid TOML"));
    let e = Config::load_from(
        Some(std::path::Path::new("/nonexistent/x.toml")),
        std::iter::empty(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn no_sets_at_all_is_an_error() {
    let text = MINIMAL.split("[sets.summary]").next().unwrap();
    assert!(error(text, &[]).contains("config key sets has no cache set"));
}

#[test]
fn stream_rules_are_checked() {
    let text = format!(
        "{MINIMAL}\n[[streams]]\ntable = \"orders\"\nkey = {{ id = \"{{Keys.id}}\" }}\nsets = [\"nope\"]\n"
    );
    let e = error(&text, &[]);
    assert!(e.contains("config key streams[0]"), "{e}");
    assert!(e.contains("streams[0].sets"), "{e}");
}

/// MINIMAL with a command processor running `program`, with PATH = `path`
/// in its environment if given.
fn command_set(program: &str, path: Option<&Path>) -> String {
    let env = path.map_or_else(String::new, |p| {
        format!(", env = {{ PATH = {:?} }}", p.display().to_string())
    });
    MINIMAL.replace(
        "processor = { kind = \"http\", url = \"http://p/x\" }",
        &format!("processor = {{ kind = \"command\", program = {program:?}{env} }}"),
    )
}

#[test]
fn a_toml_syntax_error_names_the_file_line_and_column() {
    let text = MINIMAL.replace("table = \"t\"", "table = \"t");
    let f = file(&text);
    let e = Config::load_from(Some(f.path()), std::iter::empty())
        .unwrap_err()
        .to_string();
    let line = text.lines().position(|l| l == "table = \"t").unwrap() + 1;
    let place = format!("{}:{line}:", f.path().display());
    assert!(e.starts_with(&place), "{place}: {e}");
    assert!(e.contains("not valid TOML"), "{e}");
    assert!(!e.contains("config key"), "it is not about a key: {e}");
}

#[test]
fn every_kind_of_key_is_set_through_the_environment() {
    let text = command_set("sh", None);
    let cfg = load(
        &text,
        &[
            // scalars: a string that looks like a number stays a string
            ("TRIGGERED_CACHE__DYNAMODB__TABLE", "000123456789"),
            ("TRIGGERED_CACHE__WORKER__CONCURRENCY", "7"),
            ("TRIGGERED_CACHE__LOG__FORMAT", "json"),
            ("TRIGGERED_CACHE__DYNAMODB__SORT_KEY", "sk"),
            // durations, one of them optional
            ("TRIGGERED_CACHE__WORKER__LEASE_DURATION", "2m"),
            ("TRIGGERED_CACHE__SETS__SUMMARY__TTL", "1h 30m"),
            // lists, one of them optional
            ("TRIGGERED_CACHE__SNS__EVENTS", "ready, failed"),
            ("TRIGGERED_CACHE__SNS__RECORD_ATTRIBUTES", "pk,status,12"),
            // table entries of a set
            (
                "TRIGGERED_CACHE__SETS__SUMMARY__PROCESSOR__ARGS",
                "-c, exit 0",
            ),
            // (environment names are lower-cased: the key is `mode`)
            (
                "TRIGGERED_CACHE__SETS__SUMMARY__PROCESSOR__ENV__MODE",
                "fast",
            ),
            ("TRIGGERED_CACHE__SETS__SUMMARY__MAX_ATTEMPTS", "5"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.dynamodb.table, "000123456789");
    assert_eq!(cfg.worker.concurrency, 7);
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(cfg.dynamodb.sort_key.as_deref(), Some("sk"));
    assert_eq!(cfg.worker.lease_duration, Duration::from_secs(120));
    let set = &cfg.sets["summary"];
    assert_eq!(set.ttl, Some(Duration::from_secs(5400)));
    assert_eq!(set.max_attempts, 5);
    assert_eq!(cfg.sns.events, vec![EventKind::Ready, EventKind::Failed]);
    assert_eq!(
        cfg.sns.record_attributes,
        Some(vec!["pk".into(), "status".into(), "12".into()])
    );
    match &set.processor {
        ProcessorConfig::Command { program, args, env } => {
            assert_eq!(program, &PathBuf::from("sh"));
            assert_eq!(args, &["-c", "exit 0"]);
            assert_eq!(env.get("mode").map(String::as_str), Some("fast"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_empty_list_from_the_environment_is_empty_and_a_bad_item_names_the_key() {
    let cfg = load(MINIMAL, &[("TRIGGERED_CACHE__SNS__EVENTS", "")]).unwrap();
    assert!(cfg.sns.events.is_empty());
    let e = error(MINIMAL, &[("TRIGGERED_CACHE__SNS__EVENTS", "ready,sent")]);
    assert!(e.contains("config key sns.events"), "{e}");
    assert!(e.contains("sent") && e.contains("failed"), "{e}");
}

#[test]
fn a_command_processor_that_cannot_run_is_refused_with_its_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path();
    for (name, mode) in [("proc.sh", 0o644), ("ok.sh", 0o755)] {
        std::fs::write(bin.join(name), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let shown = |p: PathBuf| p.display().to_string();
    let cases = [
        (shown(bin.join("missing")), None, "was not found"),
        (shown(bin.join("proc.sh")), None, "chmod +x"),
        (shown(bin.to_owned()), None, "is a directory"),
        ("no-such-program-tc".into(), None, "not found on PATH"),
        // found on the processor's own PATH, but not executable
        ("proc.sh".into(), Some(bin), "chmod +x"),
    ];
    for (program, path, want) in cases {
        let e = error(&command_set(&program, path), &[]);
        for want in [
            "config key sets.summary.processor.program is",
            want,
            "TRIGGERED_CACHE__SETS__SUMMARY__PROCESSOR__PROGRAM",
        ] {
            assert!(e.contains(want), "{program}: no {want:?} in {e}");
        }
    }
    for (program, path) in [
        (shown(bin.join("ok.sh")), None),
        ("ok.sh".into(), Some(bin)),
    ] {
        let r = load(&command_set(&program, path), &[]);
        assert!(r.is_ok(), "{program}: {:?}", r.err());
    }
}

#[test]
fn an_invalid_http_header_is_refused_with_its_key_and_never_its_value() {
    let text = MINIMAL.replace(
        "url = \"http://p/x\"",
        "url = \"http://p/x\", headers = { authorization = \"Bearer s3cret\\n\" }",
    );
    let e = error(&text, &[]);
    assert!(
        e.contains("config key sets.summary.processor.headers.authorization"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
}

/// `config/default.toml` documents every default: the values it writes
/// must be the built-in ones, so that the file and the code cannot drift.
#[test]
fn default_toml_writes_the_built_in_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let documented: Config = toml::from_str(&text).expect("config/default.toml parses");
    let as_toml = |c: &Config| toml::Value::try_from(c).unwrap();
    let (file, built_in) = (as_toml(&documented), as_toml(&Config::default()));
    for section in [
        "aws",
        "sqs",
        "dynamodb",
        "sns",
        "worker",
        "http",
        "log",
        "telemetry",
        "dependencies",
        "s3",
    ] {
        assert_eq!(
            file.get(section),
            built_in.get(section),
            "[{section}] in config/default.toml differs from the built-in defaults"
        );
    }
    // The example set writes every set key's default too (its processor is
    // the example's own).
    let mut example = documented.sets["summary"].clone();
    let minimal = load(MINIMAL, &[]).unwrap().sets["summary"].clone();
    example.processor = minimal.processor.clone();
    assert_eq!(
        toml::Value::try_from(&example).unwrap(),
        toml::Value::try_from(&minimal).unwrap(),
        "[sets.summary] in config/default.toml differs from a set's built-in defaults"
    );
}

/// Validation compiles the stream rules once and hands them on: the worker
/// maps records with exactly what was checked.
#[test]
fn validation_hands_on_the_stream_rules_it_compiled() {
    let text = format!(
        "{MINIMAL}\n[[streams]]\ntable = \"orders\"\nkey = {{ pk = \"order#{{Keys.id}}\" }}\nsets = [\"summary\"]\n"
    );
    let f = file(&text);
    let checked = Config::load_from(Some(f.path()), std::iter::empty()).unwrap();
    let record = serde_json::json!({
        "eventName": "INSERT", "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/orders/stream/x",
        "dynamodb": {"Keys": {"id": {"S": "7"}}}
    });
    let triggers = checked.rules().map(&record).unwrap();
    assert_eq!(triggers.messages.len(), 1);
    assert_eq!(triggers.messages[0].key.to_string(), "pk=order#7");
    assert!(load(MINIMAL, &[]).unwrap().validate().unwrap().is_empty());
}

/// serde says what is wrong as data (the key, the keys it knows, what was
/// found and expected), and the reason is written from that, never from
/// serde's text.
#[test]
fn each_serde_problem_names_the_full_key() {
    type Case<'a> = (String, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            MINIMAL.replace("[sqs]\n", "[sqs]\nqueue_urll = \"x\"\n"),
            &[],
            "config key sqs.queue_urll is not a known key; expected one of `queue_url`, `dlq_url`, `wait_time`, `receive_batch_size`, `receive_linger`, `visibility_timeout`, `pollers`, `max_delay` (remove it or fix its spelling)",
        ),
        (
            format!("{MINIMAL}\n[[streams]]\ntable = \"orders\"\ntabel = \"x\"\n"),
            &[],
            "config key streams[0].tabel is not a known key; expected one of `table`, `events`, `key`, `sets`, `dependency`, `when_changed` (remove it or fix its spelling)",
        ),
        (
            MINIMAL.into(),
            &[("TRIGGERED_CACHE__WORKER__CONCURRENCY", "many")],
            "config key worker.concurrency has the wrong type: found string \"many\", expected u32 (set TRIGGERED_CACHE__WORKER__CONCURRENCY or [worker].concurrency in the config file)",
        ),
        (
            MINIMAL.replace("url = \"http://p/x\" ", ""),
            &[],
            "config key sets.summary.processor.url is missing",
        ),
        (
            MINIMAL.replace("\"http\"", "\"ftp\""),
            &[],
            "config key sets.summary.processor.kind is invalid: `ftp` is not one of command, http, embedded",
        ),
        (
            format!("{MINIMAL}\n[log]\nformat = \"xml\"\n"),
            &[],
            "config key log.format is invalid: `xml` is not one of auto, json, pretty",
        ),
    ];
    for (text, env, want) in cases {
        let e = error(text, env);
        assert!(e.starts_with(want), "{want}\n{e}");
    }
}
