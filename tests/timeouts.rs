//! `aws.call_timeout`: a call to an endpoint that stops answering fails
//! after the timeout (and its retries) instead of holding a message for
//! ever, while a long poll longer than the timeout still waits its full
//! `sqs.wait_time`.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use triggered_cache::aws::Clients;
use triggered_cache::config::Config;
use triggered_cache::daemon;
use triggered_cache::item::Attrs;

async fn sdk(cfg: &Config) -> aws_config::SdkConfig {
    daemon::aws_loader(cfg)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

/// Accepts connections and reads from them, never answering: a network
/// that lost the other side without closing the connection.
async fn silent_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_call_that_gets_no_answer_fails_after_the_call_timeout() {
    let mut cfg = Config::default();
    cfg.aws.region = Some("us-east-1".into());
    cfg.aws.endpoint_url = Some(silent_endpoint().await);
    cfg.aws.call_timeout = Duration::from_secs(1);
    let table = Clients::new(&sdk(&cfg).await).table(
        "silent",
        Attrs {
            prefix: "tc".into(),
        },
    );

    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(30), table.ping())
        .await
        .expect("the call gave up by itself, well within 30s");
    let e = outcome.expect_err("nothing answered");
    let took = started.elapsed();
    // Three attempts of 1s each, with the standard retry's backoff between.
    assert!(took >= Duration::from_secs(1), "gave up after {took:?}");
    assert!(took < Duration::from_secs(15), "gave up after {took:?}");
    let message = triggered_cache::aws::error_message(&e);
    assert!(message.contains("DescribeTable"), "{message}");
}

#[tokio::test]
async fn a_long_poll_waits_its_full_wait_time_past_the_call_timeout() {
    let env = Env::new("timeouts-poll").await;
    let mut cfg = env.config(&["summary"]);
    cfg.aws.call_timeout = Duration::from_secs(1);
    let queue = Clients::new(&sdk(&cfg).await).queue(&env.queue_url, &env.dlq_url);

    let started = Instant::now();
    let got = queue
        .receive(10, Duration::from_secs(3), Duration::from_secs(30))
        .await
        .expect("an empty long poll is not a timeout");
    assert!(got.is_empty(), "the queue is empty: {got:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "returned after {:?}: the long poll was cut short",
        started.elapsed()
    );
}
