//! Traces: a message's span is a child of the producer's trace (W3C
//! `traceparent` in the SQS message attributes), the DynamoDB calls, the
//! processor and the SNS publish are its children, and the completion event
//! carries the trace on. Checked with an in-process OTLP receiver, and
//! without any export (the context is carried either way).

mod common;

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use common::{Daemon, Env, bin};
use fake_opentelemetry_collector::FakeCollectorServer;

const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

/// The producer's W3C trace context.
fn producer_traceparent() -> String {
    format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01")
}

/// Sends a request for `pk` carrying the producer's trace context.
async fn send_traced(env: &Env, pk: &str) {
    env.sqs
        .send_message()
        .queue_url(&env.queue_url)
        .message_body(Env::request(pk, "summary").to_string())
        .message_attributes(
            "traceparent",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(producer_traceparent())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_span_continues_the_producers_trace_with_child_spans() {
    let env = Env::new("otel").await;
    let mut collector = FakeCollectorServer::start().await.unwrap();
    let mut cmd = bin(&env);
    cmd.env(
        "TRIGGERED_CACHE__TELEMETRY__OTLP_ENDPOINT",
        collector.endpoint(),
    );
    let mut d = Daemon::spawn(cmd);
    send_traced(&env, "order#t").await;
    let evs = env
        .wait_events("a ready event", Duration::from_secs(30), |e| {
            e.iter().any(|e| e["event"] == "ready")
        })
        .await;
    assert_eq!(evs.len(), 1);
    d.signal("TERM");
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)).await,
        Some(0),
        "{}",
        d.log_text()
    );

    let spans = collector.exported_spans(5, Duration::from_secs(20)).await;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let message = spans
        .iter()
        .find(|s| s.name == "message")
        .unwrap_or_else(|| panic!("no message span in {names:?}"));
    assert_eq!(
        message.trace_id, PRODUCER_TRACE,
        "the producer's trace continues"
    );
    assert_eq!(
        message.parent_span_id, PRODUCER_SPAN,
        "the producer's span is the parent"
    );
    for child in [
        "dynamodb.GetItem",
        "dynamodb.UpdateItem",
        "processor",
        "sns.Publish",
    ] {
        let s = spans
            .iter()
            .find(|s| s.name == child)
            .unwrap_or_else(|| panic!("no {child} span in {names:?}"));
        assert_eq!(s.trace_id, PRODUCER_TRACE, "{child} is in the trace");
        assert_eq!(
            s.parent_span_id, message.span_id,
            "{child} is a child of the message span"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_events_carry_the_trace_context() {
    let env = Env::new("otel-ev").await;
    let collector = FakeCollectorServer::start().await.unwrap();
    let mut cmd = bin(&env);
    cmd.env(
        "TRIGGERED_CACHE__TELEMETRY__OTLP_ENDPOINT",
        collector.endpoint(),
    );
    let mut d = Daemon::spawn(cmd);
    send_traced(&env, "order#u").await;
    let attrs = first_event_attributes(&env).await;
    assert_eq!(attrs["event"].string_value.as_deref(), Some("ready"));
    assert_eq!(attrs["set"].string_value.as_deref(), Some("summary"));
    let traceparent = attrs
        .get("traceparent")
        .and_then(|a| a.string_value.clone());
    let traceparent = traceparent.expect("the event carries a traceparent attribute");
    assert!(traceparent.contains(PRODUCER_TRACE), "{traceparent}");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(30)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_can_be_exported_over_http_protobuf() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};
    let env = Env::new("otel-http").await;
    let got: Arc<Mutex<Vec<(String, String, Bytes)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let ct = headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                sink.lock()
                    .unwrap()
                    .push((uri.path().to_string(), ct, body));
                ""
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut cmd = bin(&env);
    cmd.env(
        "TRIGGERED_CACHE__TELEMETRY__OTLP_ENDPOINT",
        format!("http://{addr}"),
    )
    .env("TRIGGERED_CACHE__TELEMETRY__OTLP_PROTOCOL", "http");
    let mut d = Daemon::spawn(cmd);
    env.send(&Env::request("order#h", "summary")).await;
    env.wait_events("a ready event", Duration::from_secs(30), |e| {
        e.iter().any(|e| e["event"] == "ready")
    })
    .await;
    d.signal("TERM");
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)).await,
        Some(0),
        "{}",
        d.log_text()
    );
    let got = got.lock().unwrap();
    let (path, ct, body) = got.first().expect("the exporter posted spans");
    assert_eq!(path, "/v1/traces");
    assert_eq!(ct, "application/x-protobuf");
    let needle = b"dynamodb.UpdateItem";
    assert!(
        body.windows(needle.len()).any(|w| w == needle),
        "the batch holds our spans"
    );
}

/// The message attributes of the first completion event to arrive (raw
/// delivery keeps them).
async fn first_event_attributes(
    env: &Env,
) -> std::collections::HashMap<String, MessageAttributeValue> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(std::time::Instant::now() < deadline, "no event arrived");
        let out = env
            .sqs
            .receive_message()
            .queue_url(&env.events_url)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = out.messages.unwrap_or_default().into_iter().next() {
            return m.message_attributes.unwrap_or_default();
        }
    }
}

/// An `http` processor that records the `traceparent` header of each call
/// and answers a value; returns its URL and what it saw.
async fn tracing_http_processor() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let sink = sink.clone();
        async move {
            let tp = headers
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            sink.lock().unwrap().push(tp);
            axum::Json(serde_json::json!({"value": {"ok": true}}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/process"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_export_the_producers_trace_context_reaches_events_and_the_http_processor() {
    let env = Env::new("otel-off").await;
    let (url, seen) = tracing_http_processor().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[sets.summary]\nprocessor = {{ kind = \"http\", url = \"{url}\" }}\n"),
    )
    .unwrap();
    // No telemetry.otlp_endpoint: nothing is exported.
    let mut cmd = bin(&env);
    cmd.env("TRIGGERED_CACHE_CONFIG", &config);
    let mut d = Daemon::spawn(cmd);
    let producer = producer_traceparent();
    send_traced(&env, "order#off").await;
    let attrs = first_event_attributes(&env).await;
    assert_eq!(attrs["event"].string_value.as_deref(), Some("ready"));
    d.signal("TERM");
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)).await,
        Some(0),
        "{}",
        d.log_text()
    );
    // Nothing of this daemon's is recorded, so the producer's context goes
    // on unchanged: downstream spans become children of the producer's.
    assert_eq!(
        attrs
            .get("traceparent")
            .and_then(|a| a.string_value.as_deref()),
        Some(producer.as_str()),
        "the event carries the producer's trace context"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![producer],
        "the http processor got the producer's trace context"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_context_flows_whatever_the_log_level() {
    let env = Env::new("otel-quiet").await;
    let mut cmd = bin(&env);
    // Quiet logs (the endpoints' address is still logged for the harness).
    cmd.env(
        "TRIGGERED_CACHE__LOG__LEVEL",
        "warn,triggered_cache::daemon=info",
    );
    let mut d = Daemon::spawn(cmd);
    let producer = producer_traceparent();
    send_traced(&env, "order#q").await;
    let attrs = first_event_attributes(&env).await;
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(30)).await, Some(0));
    assert!(
        !d.log_text().contains("committed READY"),
        "info lines are filtered out: {}",
        d.log_text()
    );
    assert_eq!(
        attrs
            .get("traceparent")
            .and_then(|a| a.string_value.as_deref()),
        Some(producer.as_str()),
        "the event carries the producer's trace context"
    );
}
