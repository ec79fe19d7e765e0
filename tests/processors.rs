//! The built-in processors (DESIGN §6): `command` runs a program without a
//! shell, `http` POSTs to a configured URL. No AWS here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json as AxumJson;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value as Json, json};
use triggered_cache::processor::command::CommandProcessor;
use triggered_cache::processor::http::{HttpProcessor, client};
use triggered_cache::processor::{Job, ProcessError, Processor};

fn job(input: Json) -> Job {
    Job {
        key: json!({"pk": "order#1"}),
        set: "summary".into(),
        epoch: 3,
        request_id: "req-1".into(),
        input: Some(input),
        record: json!({"pk": "order#1", "total": 12}),
    }
}

fn fixture() -> CommandProcessor {
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor.py");
    let env = BTreeMap::from([("TC_TEST_SECRET".to_string(), "s3cret".to_string())]);
    CommandProcessor::new(program, vec![], env).unwrap()
}

#[tokio::test]
async fn command_success_reads_the_job_on_stdin_and_the_answer_on_stdout() {
    let out = fixture()
        .process(&job(json!({"mode": "ok"})))
        .await
        .unwrap();
    assert_eq!(out.value["echo"]["epoch"], 3);
    assert_eq!(out.value["echo"]["requestId"], "req-1");
    assert_eq!(out.value["echo"]["record"]["total"], 12);
    assert_eq!(out.depends_on, vec!["product#A".to_string()]);
}

#[tokio::test]
async fn command_exit_75_is_retryable_with_stderr_in_the_error() {
    let err = fixture()
        .process(&job(json!({"mode": "tempfail"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProcessError::Retryable(m) if m.contains("upstream is busy") && m.contains("75")),
        "{err:?}"
    );
}

#[tokio::test]
async fn command_other_exit_codes_are_permanent() {
    let err = fixture()
        .process(&job(json!({"mode": "fail"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProcessError::Permanent(m) if m.contains("no such order") && m.contains("exited with 3")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_bad_answer_is_permanent_and_says_what_was_expected() {
    for mode in ["garbage", "novalue"] {
        let err = fixture()
            .process(&job(json!({"mode": mode})))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProcessError::Permanent(m) if m.contains("value")),
            "{mode}: {err:?}"
        );
    }
}

#[tokio::test]
async fn command_gets_its_configured_environment() {
    let out = fixture()
        .process(&job(json!({"mode": "env", "name": "TC_TEST_SECRET"})))
        .await
        .unwrap();
    assert_eq!(out.value, json!("s3cret"));
}

#[tokio::test]
async fn json_on_stderr_reads_as_json_in_the_error() {
    let err = fixture()
        .process(&job(json!({"mode": "jsonfail"})))
        .await
        .unwrap_err();
    let ProcessError::Permanent(m) = &err else {
        panic!("{err:?}")
    };
    assert!(
        m.contains(r#"{"error":"no such order","order":"o#1"}"#),
        "compact JSON, quotes as they are: {m}"
    );
    assert!(!m.contains('\\') && !m.contains('\n'), "{m}");
}

/// A program that stops being runnable after the start (removed, `chmod
/// -x`) fails every run the same way: permanent, not retried.
#[tokio::test]
async fn a_program_that_cannot_be_started_is_a_permanent_failure() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("processor.sh");
    std::fs::write(&program, "#!/bin/sh\necho '{\"value\": 1}'\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = CommandProcessor::new(program.clone(), vec![], BTreeMap::new()).unwrap();

    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = p.process(&job(json!(null))).await.unwrap_err();
    assert!(
        matches!(&err, ProcessError::Permanent(m) if m.contains("Permission denied") && m.contains("processor.sh")),
        "{err:?}"
    );

    std::fs::remove_file(&program).unwrap();
    let err = p.process(&job(json!(null))).await.unwrap_err();
    assert!(
        matches!(&err, ProcessError::Permanent(m) if m.contains("No such file")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_missing_program_is_refused_at_start() {
    let err = CommandProcessor::new("/nonexistent/processor".into(), vec![], BTreeMap::new())
        .unwrap_err();
    assert!(err.to_string().contains("was not found"), "{err}");
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let p = fixture();
    let j = job(json!({"mode": "sleep", "pidfile": pidfile}));
    let r = tokio::time::timeout(Duration::from_millis(1500), p.process(&j)).await;
    assert!(r.is_err(), "the program sleeps past the timeout");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let gone = std::fs::read_to_string(proc_dir.join("stat"))
            .map(|s| s.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true);
        if gone {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} is still running after the timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn server(
    statuses: Vec<u16>,
) -> (
    String,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Vec<(Json, Option<String>)>>>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, s) = (calls.clone(), seen.clone());
    let app = Router::new().route(
        "/process",
        post(move |headers: axum::http::HeaderMap, AxumJson(body): AxumJson<Json>| {
            let c = c.clone();
            let s = s.clone();
            let statuses = statuses.clone();
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst);
                let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
                s.lock().unwrap().push((body.clone(), auth));
                let status = StatusCode::from_u16(*statuses.get(n).unwrap_or(&200)).unwrap();
                if status.is_success() {
                    (status, AxumJson(json!({"value": {"epoch": body["epoch"]}, "dependsOn": ["customer#7"]})))
                } else {
                    (status, AxumJson(json!({"error": "nope"})))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/process"), calls, seen)
}

fn http(url: &str) -> HttpProcessor {
    let headers = BTreeMap::from([("authorization".to_string(), "Bearer t0ken".to_string())]);
    HttpProcessor::new(client().unwrap(), url, &headers).unwrap()
}

#[tokio::test]
async fn http_success_posts_the_job_with_the_configured_headers() {
    let (url, _, seen) = server(vec![200]).await;
    let out = http(&url).process(&job(json!({"x": 1}))).await.unwrap();
    assert_eq!(out.value, json!({"epoch": 3}));
    assert_eq!(out.depends_on, vec!["customer#7".to_string()]);
    let (body, auth) = seen.lock().unwrap()[0].clone();
    assert_eq!(body["key"], json!({"pk": "order#1"}));
    assert_eq!(body["set"], "summary");
    assert_eq!(body["requestId"], "req-1");
    assert_eq!(body["input"], json!({"x": 1}));
    assert_eq!(body["record"]["total"], 12);
    assert_eq!(auth.as_deref(), Some("Bearer t0ken"));
}

#[tokio::test]
async fn http_5xx_and_429_are_retryable_and_other_4xx_permanent() {
    let (url, _, _) = server(vec![503, 429, 404, 400]).await;
    let p = http(&url);
    let j = job(json!(null));
    assert!(matches!(p.process(&j).await, Err(ProcessError::Retryable(m)) if m.contains("503")));
    assert!(matches!(p.process(&j).await, Err(ProcessError::Retryable(m)) if m.contains("429")));
    assert!(matches!(p.process(&j).await, Err(ProcessError::Permanent(m)) if m.contains("404")));
    assert!(matches!(p.process(&j).await, Err(ProcessError::Permanent(m)) if m.contains("400")));
}

#[tokio::test]
async fn a_json_error_answer_reads_as_json_in_the_error() {
    let (url, _, _) = server(vec![422]).await;
    let err = http(&url).process(&job(json!(null))).await.unwrap_err();
    let ProcessError::Permanent(m) = &err else {
        panic!("{err:?}")
    };
    assert!(
        m.ends_with(r#"answered 422 Unprocessable Entity: {"error":"nope"}"#),
        "the body as JSON, not \\\"-escaped: {m}"
    );
}

#[tokio::test]
async fn an_unreachable_http_processor_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = http(&format!("http://{addr}/process"))
        .process(&job(json!(null)))
        .await
        .unwrap_err();
    assert!(matches!(err, ProcessError::Retryable(_)), "{err:?}");
}

#[tokio::test]
async fn the_http_processor_never_prints_its_headers() {
    let p = http("http://127.0.0.1:1/x");
    assert!(!format!("{p:?}").contains("t0ken"));
}

#[tokio::test]
async fn command_never_passes_message_content_through_a_shell_or_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("pwned");
    let m = mark.display();
    let hostile = format!("x$(touch {m}); touch {m} && `touch {m}` | touch {m} #'\"");
    let mut j = job(json!({"mode": "argv", "also": hostile}));
    j.key = json!({"pk": hostile});
    let out = fixture().process(&j).await.unwrap();
    assert_eq!(
        out.value["argv"],
        json!([]),
        "only the configured arguments, none from the message"
    );
    assert_eq!(
        out.value["key"]["pk"], hostile,
        "the key arrives verbatim on stdin"
    );
    assert!(!mark.exists(), "no shell interpreted the message");
}

#[tokio::test]
async fn http_calls_only_the_configured_url_and_never_follows_a_redirect() {
    let elsewhere = Arc::new(AtomicUsize::new(0));
    let hits = elsewhere.clone();
    let other = Router::new().route(
        "/steal",
        post(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                AxumJson(json!({"value": "stolen"}))
            }
        }),
    );
    let other_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let steal = format!("http://{}/steal", other_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(other_listener, other).await.unwrap() });
    let to = steal.clone();
    let app = Router::new().route(
        "/process",
        post(move || {
            let to = to.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)], "") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/process", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // The message asks for another URL: it is data, not a target.
    let err = http(&url)
        .process(&job(json!({"url": steal, "callback": steal})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProcessError::Permanent(m) if m.contains("307") && m.contains("not followed") && m.contains("/steal")),
        "{err:?}"
    );
    assert_eq!(
        elsewhere.load(Ordering::SeqCst),
        0,
        "nothing was sent elsewhere"
    );
}
