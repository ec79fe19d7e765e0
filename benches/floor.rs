//! The floor of `scripts/bench.sh`: the least a worker can do per message
//! with the AWS SDK for Rust, measured beside triggered-cache in the same
//! run on the same emulator, so that the daemon's figures read as ratios
//! against it rather than as absolute times of one machine.
//!
//! Per poller, in a loop: `ReceiveMessage` (10, long poll), then for every
//! message at once: one strongly consistent `GetItem`; on a miss, the same
//! processor the daemon runs and one `UpdateItem` storing its answer; one
//! `Publish` of the event; then one `DeleteMessageBatch` for the batch.
//! No leases, no coalescing, no retries of its own (the SDK's standard
//! retries only), no heartbeat: what triggered-cache adds on top is what it
//! costs to keep DESIGN §5's promises.
//!
//! Not a test: `harness = false`, built by `cargo bench --no-run` (which
//! `cargo test` does not do) and started by `benches/driver.py` with the
//! daemon's environment (queue, table, topic, endpoint). Stops on SIGTERM
//! or SIGINT after the batch in hand.

use std::process::Stdio;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// What the floor needs to know, from the daemon's environment variables.
struct Setup {
    queue_url: String,
    table: String,
    topic_arn: String,
    processor: String,
    pollers: usize,
    wait_seconds: i32,
}

/// The attribute the floor keeps its value in (not the daemon's).
const VALUE: &str = "floor_value";

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| {
        anyhow::anyhow!("floor: set {name} (benches/driver.py passes the daemon's environment)")
    })
}

impl Setup {
    fn from_env() -> anyhow::Result<Self> {
        let number = |name: &str, default: i64| -> anyhow::Result<i64> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("floor: {name}={v:?} is not a whole number")),
                Err(_) => Ok(default),
            }
        };
        Ok(Setup {
            queue_url: var("TRIGGERED_CACHE__SQS__QUEUE_URL")?,
            table: var("TRIGGERED_CACHE__DYNAMODB__TABLE")?,
            topic_arn: var("TRIGGERED_CACHE__SNS__TOPIC_ARN")?,
            processor: var("FLOOR_PROCESSOR")?,
            pollers: usize::try_from(number("FLOOR_POLLERS", 2)?.max(1))?,
            wait_seconds: i32::try_from(number("FLOOR_WAIT_SECONDS", 20)?.clamp(0, 20))?,
        })
    }
}

#[derive(Clone)]
struct Floor {
    sqs: aws_sdk_sqs::Client,
    ddb: aws_sdk_dynamodb::Client,
    sns: aws_sdk_sns::Client,
    setup: Arc<Setup>,
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` appends `--bench`; nothing else is expected.
    if let Some(arg) = std::env::args().skip(1).find(|a| a != "--bench") {
        anyhow::bail!("floor: unexpected argument {arg:?}; it is configured by the environment");
    }
    let setup = Arc::new(Setup::from_env()?);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(setup))
}

async fn run(setup: Arc<Setup>) -> anyhow::Result<()> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Ok(endpoint) = std::env::var("TRIGGERED_CACHE__AWS__ENDPOINT_URL") {
        loader = loader.endpoint_url(endpoint);
    }
    let sdk = loader.load().await;
    let floor = Floor {
        sqs: aws_sdk_sqs::Client::new(&sdk),
        ddb: aws_sdk_dynamodb::Client::new(&sdk),
        sns: aws_sdk_sns::Client::new(&sdk),
        setup: setup.clone(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let pollers: Vec<_> = (0..setup.pollers)
        .map(|_| tokio::spawn(floor.clone().poll(stop_rx.clone())))
        .collect();
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    stop_tx.send(true)?;
    for poller in pollers {
        poller.await?;
    }
    eprintln!("floor: stopped");
    Ok(())
}

impl Floor {
    async fn poll(self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.setup.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(self.setup.wait_seconds)
                .send();
            let messages = tokio::select! {
                _ = stop.changed() => return,
                out = receive => match out {
                    Ok(out) => out.messages.unwrap_or_default(),
                    Err(e) => {
                        eprintln!("floor: receive: {}", aws_sdk_sqs::error::DisplayErrorContext(&e));
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        continue;
                    }
                },
            };
            if messages.is_empty() {
                continue;
            }
            let handled = futures::future::join_all(messages.iter().map(|m| self.handle(m))).await;
            let entries: Vec<_> = messages
                .iter()
                .zip(handled)
                .enumerate()
                .filter_map(|(i, (m, ok))| {
                    ok.then(|| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .set_receipt_handle(m.receipt_handle.clone())
                            .build()
                            .ok()
                    })
                    .flatten()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            if let Err(e) = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.setup.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                eprintln!(
                    "floor: delete: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                );
            }
        }
    }

    /// One message: read, compute on a miss, publish. False if it failed
    /// (the message then comes back after its visibility timeout).
    async fn handle(&self, message: &Message) -> bool {
        match self.try_handle(message).await {
            Ok(()) => true,
            Err(e) => {
                eprintln!("floor: {e:#}");
                false
            }
        }
    }

    async fn try_handle(&self, message: &Message) -> anyhow::Result<()> {
        let body: Json = serde_json::from_str(message.body().unwrap_or_default())?;
        let pk = body["key"]["pk"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("request without key.pk"))?
            .to_owned();
        let set = body["set"].as_str().unwrap_or_default().to_owned();
        let request_id = body["requestId"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| message.message_id.clone())
            .unwrap_or_default();
        let item = self
            .ddb
            .get_item()
            .table_name(&self.setup.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .consistent_read(true)
            .send()
            .await?;
        let stored = item
            .item
            .as_ref()
            .and_then(|i| i.get(VALUE))
            .and_then(|v| v.as_s().ok())
            .and_then(|s| serde_json::from_str::<Json>(s).ok());
        let (event, value) = match stored {
            Some(value) => ("hit", value),
            None => {
                let job = json!({"key": {"pk": pk}, "set": set, "epoch": 0,
                                 "requestId": request_id, "input": null, "record": {}});
                let value = self.process(&job).await?;
                self.ddb
                    .update_item()
                    .table_name(&self.setup.table)
                    .key("pk", AttributeValue::S(pk.clone()))
                    .update_expression("SET #v = :v")
                    .expression_attribute_names("#v", VALUE)
                    .expression_attribute_values(":v", AttributeValue::S(value.to_string()))
                    .send()
                    .await?;
                ("ready", value)
            }
        };
        let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let event = json!({"v": 1, "event": event, "key": {"pk": pk}, "set": set, "at": at,
                           "requestId": request_id, "value": value});
        self.sns
            .publish()
            .topic_arn(&self.setup.topic_arn)
            .message(event.to_string())
            .send()
            .await?;
        Ok(())
    }

    /// Runs the processor as the daemon's `command` processor does: the job
    /// on stdin, `{"value": ...}` on stdout.
    async fn process(&self, job: &Json) -> anyhow::Result<Json> {
        let mut child = Command::new(&self.setup.processor)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(job.to_string().as_bytes()).await?;
        drop(stdin);
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut out)
            .await?;
        let status = child.wait().await?;
        anyhow::ensure!(status.success(), "processor exited with {status}");
        let answer: Json = serde_json::from_str(&out)?;
        Ok(answer["value"].clone())
    }
}
