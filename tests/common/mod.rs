//! Shared harness of the integration tests: a fresh queue, DLQ, table,
//! topic and events queue per test on the local emulator, workers started
//! in their own runtimes (so a test can crash one), and waiting for
//! completion events with a deadline.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value as Json, json};
use triggered_cache::config::{Config, ProcessorConfig, SetConfig};
use triggered_cache::item::{Attrs, Item, Key, KeyValue};
use triggered_cache::processor::{Job, Output, ProcessError, Processor};
use triggered_cache::state::Record;
use triggered_cache::{Worker, daemon};

/// The emulator endpoint, from the test command (scripts/test.sh).
pub fn endpoint() -> String {
    std::env::var("TC_TEST_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TC_TEST_ENDPOINT is not set: run the integration tests with scripts/test.sh, \
             which starts the local AWS emulator (or start one with scripts/local-aws.sh start \
             and export TC_TEST_ENDPOINT=http://127.0.0.1:PORT)"
        )
    })
}

pub async fn sdk() -> SdkConfig {
    // SAFETY-free: static test credentials for the emulator only.
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique name per test (and per run).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 100_000_000;
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}

/// One test's AWS resources.
pub struct Env {
    pub sdk: SdkConfig,
    pub name: String,
    pub sqs: aws_sdk_sqs::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub events_url: String,
    pub topic_arn: String,
    pub events: Mutex<Vec<Json>>,
}

impl Env {
    /// Creates queue + DLQ (redrive after 5 receives), table (pk), topic
    /// and an events queue subscribed with raw delivery.
    pub async fn new(prefix: &str) -> Env {
        let sdk = sdk().await;
        let name = unique(prefix);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let sns = aws_sdk_sns::Client::new(&sdk);
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}).to_string();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{name}-requests"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        ddb.create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let topic_arn = sns
            .create_topic()
            .name(format!("{name}-events"))
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let events_url = sqs
            .create_queue()
            .queue_name(format!("{name}-events"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let events_arn = queue_arn(&sqs, &events_url).await;
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(events_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        Env {
            sdk,
            name,
            sqs,
            ddb,
            sns,
            queue_url,
            dlq_url,
            events_url,
            topic_arn,
            events: Mutex::new(Vec::new()),
        }
    }

    /// Creates a table with a string partition key (and sort key), and
    /// optionally a stream; returns the stream ARN if any.
    pub async fn create_table(
        &self,
        name: &str,
        pk: &str,
        sk: Option<&str>,
        stream: bool,
    ) -> Option<String> {
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let mut req = self
            .ddb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(pk))
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(pk)
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            );
        if let Some(sk) = sk {
            req = req.attribute_definitions(attr(sk)).key_schema(
                KeySchemaElement::builder()
                    .attribute_name(sk)
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            );
        }
        if stream {
            req = req.stream_specification(
                aws_sdk_dynamodb::types::StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                    .build()
                    .unwrap(),
            );
        }
        let out = req.send().await.unwrap();
        out.table_description.and_then(|t| t.latest_stream_arn)
    }

    /// A configuration for this env with short timings and the given sets
    /// (all `embedded`: the test registers the processors).
    pub fn config(&self, sets: &[&str]) -> Config {
        let mut cfg = Config::default();
        cfg.aws.region = Some("us-east-1".into());
        cfg.aws.endpoint_url = Some(endpoint());
        cfg.sqs.queue_url = self.queue_url.clone();
        cfg.sqs.dlq_url = self.dlq_url.clone();
        cfg.sqs.wait_time = Duration::from_secs(1);
        cfg.sqs.visibility_timeout = Duration::from_secs(4);
        cfg.sqs.pollers = 1;
        cfg.dynamodb.table = self.name.clone();
        cfg.sns.topic_arn = self.topic_arn.clone();
        cfg.worker.heartbeat_interval = Duration::from_millis(500);
        cfg.worker.lease_duration = Duration::from_secs(3);
        cfg.worker.clock_skew = Duration::from_millis(200);
        cfg.worker.shutdown_grace = Duration::from_secs(5);
        cfg.http.listen = String::new();
        cfg.sets = sets
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    SetConfig {
                        processor: ProcessorConfig::Embedded,
                        timeout: Duration::from_secs(20),
                        max_attempts: 3,
                        backoff_base: Duration::from_secs(1),
                        backoff_cap: Duration::from_secs(2),
                        ttl: None,
                        trigger_timeout: Duration::from_secs(60),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        cfg.validate().expect("the test configuration is valid");
        cfg
    }

    pub fn key(pk: &str) -> Key {
        Key(vec![("pk".into(), KeyValue::S(pk.into()))])
    }

    /// Sends one message body; returns its MessageId.
    pub async fn send(&self, body: &Json) -> String {
        self.send_raw(&body.to_string()).await
    }

    pub async fn send_raw(&self, body: &str) -> String {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap()
            .message_id
            .unwrap()
    }

    /// Sends many bodies with SendMessageBatch; returns their MessageIds.
    pub async fn send_many(&self, bodies: &[Json]) -> Vec<String> {
        let mut ids = Vec::new();
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b.to_string())
                        .build()
                        .unwrap()
                })
                .collect::<Vec<_>>();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .unwrap();
            assert!(out.failed.is_empty(), "{:?}", out.failed);
            ids.extend(out.successful.into_iter().map(|s| s.message_id));
        }
        ids
    }

    pub fn request(pk: &str, set: &str) -> Json {
        json!({"v": 1, "type": "request", "key": {"pk": pk}, "set": set})
    }

    /// Reads the item.
    pub async fn item(&self, pk: &str) -> Item {
        self.ddb
            .get_item()
            .table_name(&self.name)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default()
    }

    pub async fn record(&self, pk: &str, set: &str) -> Record {
        Attrs {
            prefix: "triggeredCache".into(),
        }
        .record(&self.item(pk).await, set)
    }

    /// Pulls what has arrived on the events queue into `self.events`.
    pub async fn pull_events(&self) {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.events_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let body: Json = serde_json::from_str(m.body.as_deref().unwrap_or("null")).unwrap();
            self.events.lock().unwrap().push(body);
            self.sqs
                .delete_message()
                .queue_url(&self.events_url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    /// Waits until `pred` holds for the events received so far.
    pub async fn wait_events(
        &self,
        what: &str,
        deadline: Duration,
        pred: impl Fn(&[Json]) -> bool,
    ) -> Vec<Json> {
        let until = Instant::now() + deadline;
        loop {
            {
                let evs = self.events.lock().unwrap();
                if pred(&evs) {
                    return evs.clone();
                }
            }
            if Instant::now() > until {
                panic!(
                    "timed out waiting for {what}; events so far: {:#?}",
                    self.events.lock().unwrap()
                );
            }
            self.pull_events().await;
        }
    }

    /// Events of a kind seen so far.
    pub fn events_of(&self, kind: &str) -> Vec<Json> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == kind)
            .cloned()
            .collect()
    }

    /// Waits until the DLQ holds `n` messages; returns (body, attributes).
    pub async fn wait_dlq(
        &self,
        n: usize,
        deadline: Duration,
    ) -> Vec<(String, BTreeMap<String, String>)> {
        let until = Instant::now() + deadline;
        let mut got = Vec::new();
        while got.len() < n {
            assert!(
                Instant::now() < until,
                "timed out waiting for {n} DLQ messages; got {got:#?}"
            );
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            for m in out.messages.unwrap_or_default() {
                let attrs = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                    .collect();
                got.push((m.body.unwrap_or_default(), attrs));
                self.sqs
                    .delete_message()
                    .queue_url(&self.dlq_url)
                    .receipt_handle(m.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        got
    }

    /// Visible plus in-flight messages of the request queue.
    pub async fn queue_depth(&self) -> (i64, i64) {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes.unwrap_or_default();
        let get = |k: QueueAttributeName| attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Visible messages of the DLQ (none is received).
    pub async fn dlq_depth(&self) -> i64 {
        self.sqs
            .get_queue_attributes()
            .queue_url(&self.dlq_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default()
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until the request queue is empty (every message deleted).
    pub async fn wait_queue_empty(&self, deadline: Duration) {
        wait_until("the request queue to be empty", deadline, || async {
            self.queue_depth().await == (0, 0)
        })
        .await;
    }

    pub async fn scan_count(&self) -> i32 {
        self.ddb
            .scan()
            .table_name(&self.name)
            .send()
            .await
            .unwrap()
            .count
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap()
}

/// Polls `cond` until it holds or the deadline passes.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    while !cond().await {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Behaviour = dyn Fn(Job, usize) -> Pin<Box<dyn Future<Output = Result<Output, ProcessError>> + Send>>
    + Send
    + Sync;

/// A test processor: records every run (set, epoch, request id) and does
/// what its behaviour says.
#[derive(Clone)]
pub struct Recorder {
    pub runs: Arc<Mutex<Vec<Job>>>,
    behaviour: Arc<Behaviour>,
}

impl Recorder {
    pub fn new<F, Fut>(f: F) -> Recorder
    where
        F: Fn(Job, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Output, ProcessError>> + Send + 'static,
    {
        Recorder {
            runs: Arc::default(),
            behaviour: Arc::new(move |job, n| Box::pin(f(job, n))),
        }
    }

    /// Answers `{"epoch": <epoch>, "n": <run number>}` after `delay`.
    pub fn ok_after(delay: Duration) -> Recorder {
        Recorder::new(move |job: Job, n| async move {
            tokio::time::sleep(delay).await;
            Ok(Output {
                value: json!({"epoch": job.epoch, "n": n}),
                depends_on: vec![],
            })
        })
    }

    pub fn count(&self) -> usize {
        self.runs.lock().unwrap().len()
    }
}

#[async_trait]
impl Processor for Recorder {
    async fn process(&self, job: &Job) -> Result<Output, ProcessError> {
        let n = {
            let mut runs = self.runs.lock().unwrap();
            runs.push(job.clone());
            runs.len()
        };
        (self.behaviour)(job.clone(), n).await
    }
}

/// A worker pool running in its own runtime on its own thread, so that a
/// test can stop it gracefully or crash it (drop everything at once).
pub struct Running {
    pub worker: Arc<Worker>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    crash: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn start(cfg: Config, processors: Vec<(&str, Arc<dyn Processor>)>) -> Running {
        let (worker_tx, worker_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
        let processors: Vec<(String, Arc<dyn Processor>)> = processors
            .into_iter()
            .map(|(s, p)| (s.to_string(), p))
            .collect();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let (crash_async_tx, crash_async_rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                if crash_rx.recv().is_ok() {
                    let _ = crash_async_tx.send(());
                }
            });
            rt.block_on(async move {
                let sdk = crate::common::sdk().await;
                let mut worker = daemon::worker(cfg.validated().unwrap(), &sdk).unwrap();
                for (set, p) in processors {
                    worker = worker.with_processor(&set, p);
                }
                worker.check().unwrap();
                let worker = Arc::new(worker);
                worker_tx.send(worker.clone()).unwrap();
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                tokio::select! {
                    r = triggered_cache::pool::run(worker, shutdown) => r.unwrap(),
                    _ = crash_async_rx => {}
                }
            });
            rt.shutdown_background();
        });
        let worker = worker_rx.recv().unwrap();
        Running {
            worker,
            stop: Some(stop_tx),
            crash: Some(crash_tx),
            thread: Some(thread),
        }
    }

    /// Graceful shutdown: returns when the pool has drained.
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// A crash: every task of this worker is dropped where it stands; no
    /// message is deleted or returned, no lease released.
    pub fn crash(mut self) {
        if let Some(c) = self.crash.take() {
            let _ = c.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn metric(&self, family: &str, set: &str) -> u64 {
        let m = &self.worker.metrics;
        let f = match family {
            "hits" => &m.hits,
            "misses" => &m.misses,
            "claims_won" => &m.claims_won,
            "claims_lost" => &m.claims_lost,
            "coalesced" => &m.coalesced,
            "lease_takeovers" => &m.lease_takeovers,
            "processing_runs" => &m.processing_runs,
            "stale_results" => &m.stale_results,
            "invalidations" => &m.invalidations,
            "parked" => &m.parked,
            "trigger_deadline_expiries" => &m.trigger_deadline_expiries,
            other => panic!("unknown metric {other}"),
        };
        triggered_cache::metrics::Metrics::count(f, set)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The real binary as a child process, with its stderr (JSON logs)
/// collected, and the address of its operations endpoints.
pub struct Daemon {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

/// A command for the binary with this env's resources configured.
pub fn bin(env: &Env) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_triggered-cache"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIGGERED_CACHE") {
            c.env_remove(k);
        }
    }
    c.env(
        "TRIGGERED_CACHE_CONFIG",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"),
    )
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test")
    .env("TRIGGERED_CACHE__AWS__REGION", "us-east-1")
    .env("TRIGGERED_CACHE__AWS__ENDPOINT_URL", endpoint())
    .env("TRIGGERED_CACHE__SQS__QUEUE_URL", &env.queue_url)
    .env("TRIGGERED_CACHE__SQS__DLQ_URL", &env.dlq_url)
    .env("TRIGGERED_CACHE__SQS__WAIT_TIME", "1s")
    .env("TRIGGERED_CACHE__DYNAMODB__TABLE", &env.name)
    .env("TRIGGERED_CACHE__SNS__TOPIC_ARN", &env.topic_arn)
    .env("TRIGGERED_CACHE__HTTP__LISTEN", "127.0.0.1:0")
    .env("TRIGGERED_CACHE__LOG__FORMAT", "json")
    .env("SUMMARIZE_DELAY", "0.2");
    c
}

impl Daemon {
    /// Starts `run` and waits until it logs the address of its endpoints.
    pub fn spawn(mut cmd: std::process::Command) -> Daemon {
        use std::io::BufRead;
        let mut child = cmd
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Json>(&line)
                    && let Some(addr) = v["addr"].as_str()
                {
                    let _ = addr_tx.send(addr.parse::<std::net::SocketAddr>().unwrap());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the daemon did not start; logs: {:#?}",
                    logs.lock().unwrap()
                )
            });
        Daemon { child, addr, logs }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                Instant::now() < until,
                "the daemon did not exit; logs: {:#?}",
                self.logs.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `run` without operations endpoints (`http.listen = ""`):
    /// returns once the process runs, with its logs collected; its `addr`
    /// is unspecified (do not `get`).
    pub fn spawn_without_endpoints(mut cmd: std::process::Command) -> Daemon {
        use std::io::BufRead;
        let mut child = cmd
            .env("TRIGGERED_CACHE__HTTP__LISTEN", "")
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child,
            addr: ([0, 0, 0, 0], 0).into(),
            logs,
        }
    }

    /// The JSON log lines whose message is `message`.
    pub fn log_lines(&self, message: &str) -> Vec<Json> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }
}
