//! The sections of the configuration other than the cache sets: AWS, the
//! queues, the table, the topic, the worker pool, the operations port,
//! logging, trace export and dependency tracking.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DependenciesConfig {
    /// The table of dependency edges (partition key `entity` (S), sort key
    /// `dependent` (S)); unset = `dependsOn` answers are not tracked.
    #[serde(default)]
    pub table: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// The AWS region; when unset, the standard chain (AWS_REGION, profile).
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint override for every AWS service, for local emulators
    /// (`http://127.0.0.1:4566`). Unset in production.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqsConfig {
    /// The URL of the queue producers write requests and triggers to.
    #[serde(default)]
    pub queue_url: String,
    /// The URL of the dead-letter queue for messages that cannot be handled.
    #[serde(default)]
    pub dlq_url: String,
    /// Long-poll wait per receive (at most 20s).
    #[serde(default = "default_wait_time", with = "humantime_serde")]
    pub wait_time: Duration,
    /// Messages per receive (1 to 10); never more than free in-flight slots.
    #[serde(default = "default_batch_size")]
    pub receive_batch_size: u32,
    /// The visibility timeout given to received messages; extended on every
    /// heartbeat while a message is in flight.
    #[serde(default = "default_visibility_timeout", with = "humantime_serde")]
    pub visibility_timeout: Duration,
    /// Concurrent long-poll loops.
    #[serde(default = "default_pollers")]
    pub pollers: u32,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue_url: String::new(),
            dlq_url: String::new(),
            wait_time: default_wait_time(),
            receive_batch_size: default_batch_size(),
            visibility_timeout: default_visibility_timeout(),
            pollers: default_pollers(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The name of the user's table.
    #[serde(default)]
    pub table: String,
    /// The table's partition key attribute name.
    #[serde(default = "default_partition_key")]
    pub partition_key: String,
    /// The table's sort key attribute name, if it has one.
    #[serde(default)]
    pub sort_key: Option<String>,
    /// The prefix of the cache attributes: `{prefix}_{set}_status` and so on.
    #[serde(default = "default_prefix")]
    pub attribute_prefix: String,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            table: String::new(),
            partition_key: default_partition_key(),
            sort_key: None,
            attribute_prefix: default_prefix(),
        }
    }
}

/// The kinds of completion event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Hit,
    Ready,
    Failed,
    Reset,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Hit => "hit",
            EventKind::Ready => "ready",
            EventKind::Failed => "failed",
            EventKind::Reset => "reset",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    /// The ARN of the topic completion events are published to. A topic
    /// whose name ends in `.fifo` gets `MessageGroupId` = key and
    /// `MessageDeduplicationId` = eventId.
    #[serde(default)]
    pub topic_arn: String,
    /// Which events are published (a list: from the environment,
    /// comma-separated).
    #[serde(
        default = "default_events",
        deserialize_with = "super::list::deserialize"
    )]
    pub events: Vec<EventKind>,
    /// Which attributes of the item an event's `record` carries; unset = the
    /// whole item except the cached values (which travel as `value`). A
    /// list: from the environment, comma-separated.
    #[serde(default, deserialize_with = "super::list::optional")]
    pub record_attributes: Option<Vec<String>>,
}

impl Default for SnsConfig {
    fn default() -> Self {
        SnsConfig {
            topic_arn: String::new(),
            events: default_events(),
            record_attributes: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Messages handled at once by this process (in-flight slots).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// How often a processing owner renews its lease and in-flight messages
    /// get their visibility extended.
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How long a claim or renewal holds the item. At least 3 heartbeats.
    #[serde(default = "default_lease", with = "humantime_serde")]
    pub lease_duration: Duration,
    /// How long past an expired lease (or trigger deadline) a takeover
    /// waits, for clocks that disagree between hosts.
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// How long in-flight work may finish after SIGTERM before it is
    /// returned to the queue.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How often one message is handled again from the top after its state
    /// moved under it (lost claims, invalidated runs) before it is left for
    /// a later redelivery.
    #[serde(default = "default_max_rehandles")]
    pub max_rehandles: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: default_concurrency(),
            heartbeat_interval: default_heartbeat(),
            lease_duration: default_lease(),
            clock_skew: default_skew(),
            shutdown_grace: default_grace(),
            max_rehandles: default_max_rehandles(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the health, readiness and metrics endpoints; "" turns
    /// them off.
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, readable text when it is.
    #[default]
    Auto,
    Json,
    Pretty,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (production), `pretty` (local) or `auto`.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `triggered_cache=debug,info`;
    /// `RUST_LOG` wins when set.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::default(),
            level: default_level(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by convention).
    Http,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Where to export traces by OTLP, e.g. `http://otel-collector:4317`;
    /// unset = traces are not exported.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http` (HTTP/protobuf; `/v1/traces` is appended).
    #[serde(default)]
    pub otlp_protocol: OtlpProtocol,
    /// The `service.name` of exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::default(),
            service_name: default_service_name(),
        }
    }
}

fn default_service_name() -> String {
    "triggered-cache".into()
}

fn default_wait_time() -> Duration {
    Duration::from_secs(20)
}
fn default_batch_size() -> u32 {
    10
}
fn default_visibility_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_pollers() -> u32 {
    2
}
fn default_partition_key() -> String {
    "pk".into()
}
fn default_prefix() -> String {
    "triggeredCache".into()
}
fn default_events() -> Vec<EventKind> {
    vec![
        EventKind::Hit,
        EventKind::Ready,
        EventKind::Failed,
        EventKind::Reset,
    ]
}
fn default_concurrency() -> u32 {
    32
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(10)
}
fn default_lease() -> Duration {
    Duration::from_secs(60)
}
fn default_skew() -> Duration {
    Duration::from_secs(2)
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_max_rehandles() -> u32 {
    8
}
fn default_listen() -> String {
    "0.0.0.0:9090".into()
}
fn default_level() -> String {
    "info".into()
}
