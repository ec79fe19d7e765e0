//! The sections of the configuration other than the cache sets: AWS, the
//! queues, the table, the topic, the worker pool, the operations port,
//! logging, trace export and dependency tracking.
//!
//! Each section's built-in defaults are written once, in its `Default`
//! impl: `#[serde(default)]` on the struct fills every key the file and the
//! environment leave out from it. `config/default.toml` documents the same
//! values, and `default_toml_writes_the_built_in_defaults` keeps them equal.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::EventKind;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DependenciesConfig {
    /// The table of dependency edges (partition key `entity` (S), sort key
    /// `dependent` (S)); unset = `dependsOn` answers are not tracked.
    pub table: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    /// The AWS region; when unset, the standard chain (AWS_REGION, profile).
    pub region: Option<String>,
    /// An endpoint override for every AWS service, for local emulators
    /// (`http://127.0.0.1:4566`). Unset in production.
    pub endpoint_url: Option<String>,
    /// How long one attempt of an AWS call may take before it is abandoned
    /// and retried (a `ReceiveMessage` long poll gets `sqs.wait_time` on
    /// top). Without it, a connection that stops answering would hold a
    /// message, kept invisible by its heartbeat, for ever.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            region: None,
            endpoint_url: None,
            call_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqsConfig {
    /// The URL of the queue producers write requests and triggers to.
    pub queue_url: String,
    /// The URL of the dead-letter queue for messages that cannot be handled.
    pub dlq_url: String,
    /// Long-poll wait per receive (at most 20s).
    #[serde(with = "humantime_serde")]
    pub wait_time: Duration,
    /// Messages per receive (1 to 10); never more than free in-flight slots.
    pub receive_batch_size: u32,
    /// While work is in flight and fewer slots than a batch are free, how
    /// long a poller waits for more to free up before it receives, so that
    /// receives return full batches instead of one message per freed slot.
    #[serde(with = "humantime_serde")]
    pub receive_linger: Duration,
    /// The visibility timeout given to received messages; extended on every
    /// heartbeat while a message is in flight.
    #[serde(with = "humantime_serde")]
    pub visibility_timeout: Duration,
    /// Concurrent long-poll loops.
    pub pollers: u32,
    /// The longest a scheduled trigger that is not due yet is held back
    /// per re-send (SQS `DelaySeconds`, 1s to 15m): one further away is
    /// re-sent again each time it comes back, until it is due.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue_url: String::new(),
            dlq_url: String::new(),
            wait_time: Duration::from_secs(20),
            receive_batch_size: 10,
            receive_linger: Duration::from_millis(20),
            visibility_timeout: Duration::from_secs(60),
            pollers: 2,
            max_delay: Duration::from_secs(900),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableConfig {
    /// The name of the user's table.
    pub table: String,
    /// The table's partition key attribute name.
    pub partition_key: String,
    /// The table's sort key attribute name, if it has one.
    pub sort_key: Option<String>,
    /// The prefix of the cache attributes: `{prefix}_{set}_status` and so on.
    pub attribute_prefix: String,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            table: String::new(),
            partition_key: "pk".into(),
            sort_key: None,
            attribute_prefix: "triggeredCache".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnsConfig {
    /// The ARN of the topic completion events are published to. A topic
    /// whose name ends in `.fifo` gets `MessageGroupId` = key and
    /// `MessageDeduplicationId` = eventId.
    pub topic_arn: String,
    /// Which events are published (a list: from the environment,
    /// comma-separated).
    #[serde(deserialize_with = "super::list::deserialize")]
    pub events: Vec<EventKind>,
    /// Which attributes of the item an event's `record` carries; unset = the
    /// whole item except the cached values (which travel as `value`). A
    /// list: from the environment, comma-separated.
    #[serde(deserialize_with = "super::list::optional")]
    pub record_attributes: Option<Vec<String>>,
    /// The largest event published, in bytes: 262144 (SNS's default), up
    /// to 1048576 for a topic whose `MaximumMessageSize` allows it. A value
    /// that does not fit travels as its `valueRef` when it was offloaded.
    pub max_message_bytes: u32,
}

impl Default for SnsConfig {
    fn default() -> Self {
        SnsConfig {
            topic_arn: String::new(),
            events: EventKind::ALL.to_vec(),
            record_attributes: None,
            max_message_bytes: super::values::default_max_message_bytes(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Messages handled at once by this process (in-flight slots).
    pub concurrency: u32,
    /// How often a processing owner renews its lease and in-flight messages
    /// get their visibility extended.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How long a claim or renewal holds the item. At least 3 heartbeats.
    #[serde(with = "humantime_serde")]
    pub lease_duration: Duration,
    /// How long past an expired lease (or trigger deadline) a takeover
    /// waits, for clocks that disagree between hosts.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// How long in-flight work may finish after SIGTERM before it is
    /// returned to the queue.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How often one message is handled again from the top after its state
    /// moved under it (lost claims, invalidated runs) before it is left for
    /// a later redelivery.
    pub max_rehandles: u32,
    /// Threads of the async runtime: 1 runs everything on one thread,
    /// which costs the least CPU per message (no hand-offs between
    /// threads); more for a process whose own work outgrows a core; 0 is
    /// one per CPU core. `command` and `http` processors run outside the
    /// process either way. Read by the binary; a program that embeds the
    /// worker builds its own runtime.
    pub threads: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 32,
            heartbeat_interval: Duration::from_secs(10),
            lease_duration: Duration::from_secs(60),
            clock_skew: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            max_rehandles: 8,
            threads: 1,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the health, readiness and metrics endpoints; "" turns
    /// them off.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:9090".into(),
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
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (production), `pretty` (local) or `auto`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `triggered_cache=debug,info`;
    /// `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::default(),
            level: "info".into(),
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
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Where to export traces by OTLP, e.g. `http://otel-collector:4317`;
    /// unset = traces are not exported.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http` (HTTP/protobuf; `/v1/traces` is appended).
    pub otlp_protocol: OtlpProtocol,
    /// The `service.name` of exported spans.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::default(),
            service_name: "triggered-cache".into(),
        }
    }
}
