//! Configuration: one TOML file plus environment overrides.
//!
//! Every key can be set in the file or by an environment variable named
//! `TRIGGERED_CACHE__{SECTION}__{KEY}` (double underscores, because keys
//! themselves contain single ones), e.g. `TRIGGERED_CACHE__SQS__QUEUE_URL`
//! overrides `[sqs].queue_url`. Unknown keys are errors, durations read like
//! `"30s"` or `"1m 30s"`, and [`Config::validate`] names every key that is
//! missing or out of range together with how to set it. The binary exits 2
//! on any of these errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "TRIGGERED_CACHE";

/// The whole configuration of the daemon.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// AWS region and endpoint.
    #[serde(default)]
    pub aws: AwsConfig,
    /// The request queue and its dead-letter queue.
    #[serde(default)]
    pub sqs: SqsConfig,
    /// The user's table that holds the cached objects.
    #[serde(default)]
    pub dynamodb: TableConfig,
    /// The topic completion events go to.
    #[serde(default)]
    pub sns: SnsConfig,
    /// The worker pool, leases and heartbeats.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// The operations HTTP port (health, readiness, metrics).
    #[serde(default)]
    pub http: HttpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Trace export (OpenTelemetry).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The cache sets, by name: `[sets.summary]`.
    #[serde(default)]
    pub sets: BTreeMap<String, SetConfig>,
    /// Rules mapping DynamoDB Stream records to triggers: `[[streams]]`.
    #[serde(default)]
    pub streams: Vec<crate::streams::StreamRule>,
    /// Dependency tracking.
    #[serde(default)]
    pub dependencies: DependenciesConfig,
}

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
    /// Which events are published.
    #[serde(default = "default_events")]
    pub events: Vec<EventKind>,
    /// Which attributes of the item an event's `record` carries; unset = the
    /// whole item except the cached values (which travel as `value`).
    #[serde(default)]
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

/// The processor of a cache set: what computes its value.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProcessorConfig {
    /// Runs `program` with `args` (no shell), the job as JSON on stdin, the
    /// answer as JSON on stdout. Exit 0 = success, 75 = retryable, other =
    /// permanent.
    Command {
        program: PathBuf,
        #[serde(default)]
        args: Vec<String>,
        /// Extra environment variables for the program.
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// POSTs the job as JSON to `url`. 2xx = success, 5xx/429/timeout =
    /// retryable, other 4xx = permanent.
    Http {
        url: String,
        /// Extra request headers (for example an `authorization` token; never
        /// logged).
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A processor registered in code by a program that embeds the crate
    /// (`Worker::with_processor`).
    Embedded,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// What computes the value.
    pub processor: ProcessorConfig,
    /// How long one processing attempt may take before it is cancelled
    /// (and counted as a retryable failure).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts (first run plus retries) before the cache becomes `FAILED`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first retry delay; doubles per attempt up to `backoff_cap`.
    #[serde(default = "default_backoff_base", with = "humantime_serde")]
    pub backoff_base: Duration,
    /// The longest retry delay.
    #[serde(default = "default_backoff_cap", with = "humantime_serde")]
    pub backoff_cap: Duration,
    /// `READY` older than this is recomputed by the next request; unset =
    /// valid until a trigger.
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
    /// A trigger flow that has not ended after this stops blocking requests.
    #[serde(default = "default_trigger_timeout", with = "humantime_serde")]
    pub trigger_timeout: Duration,
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
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_attempts() -> u32 {
    3
}
fn default_backoff_base() -> Duration {
    Duration::from_secs(1)
}
fn default_backoff_cap() -> Duration {
    Duration::from_secs(300)
}
fn default_trigger_timeout() -> Duration {
    Duration::from_secs(900)
}

/// A configuration problem, naming the key and how to set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The dotted key, e.g. `sqs.queue_url`.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problem.starts_with(UNKNOWN_KEY) {
            let (key, problem) = (&self.key, &self.problem);
            write!(
                f,
                "config key {key} {problem} (remove it or fix its spelling)"
            )
        } else {
            let (key, problem) = (&self.key, &self.problem);
            write!(f, "config key {key} {problem} ({})", how_to_set(key))
        }
    }
}

const UNKNOWN_KEY: &str = "is not a known key";

/// "set TRIGGERED_CACHE__SQS__QUEUE_URL or [sqs].queue_url".
pub fn how_to_set(key: &str) -> String {
    let env = format!(
        "{ENV_PREFIX}__{}",
        key.replace('.', "__").to_ascii_uppercase()
    );
    match key.rsplit_once('.') {
        Some((section, field)) => format!("set {env} or [{section}].{field} in the config file"),
        None => format!("set {env} or [{key}] in the config file"),
    }
}

/// Configuration that could not be loaded or is invalid; every problem is
/// listed.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            issues: vec![ConfigIssue {
                key: key.into(),
                problem: problem.into(),
            }],
        }
    }
}

impl Config {
    /// Loads `path` (if any) and the `TRIGGERED_CACHE__*` environment, then
    /// validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(path, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::one(
                    "file",
                    format!(
                        "names {}, which does not exist (pass --config PATH or set TRIGGERED_CACHE_CONFIG)",
                        path.display()
                    ),
                ));
            }
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("sns.events")
                .with_list_parse_key("sns.record_attributes")
                .source(Some(env)),
        );
        let raw = builder.build().map_err(from_config_error)?;
        let cfg: Config = raw.try_deserialize().map_err(from_config_error)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks everything serde cannot: required keys, ranges and the
    /// relations between timings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        let mut bad = |key: &str, problem: String| {
            issues.push(ConfigIssue {
                key: key.to_owned(),
                problem,
            })
        };
        for (key, value) in [
            ("sqs.queue_url", &self.sqs.queue_url),
            ("sqs.dlq_url", &self.sqs.dlq_url),
            ("dynamodb.table", &self.dynamodb.table),
            ("sns.topic_arn", &self.sns.topic_arn),
            ("dynamodb.partition_key", &self.dynamodb.partition_key),
            ("dynamodb.attribute_prefix", &self.dynamodb.attribute_prefix),
        ] {
            if value.trim().is_empty() {
                bad(key, "is missing".into());
            }
        }
        for (key, value, example) in [
            (
                "sqs.queue_url",
                &self.sqs.queue_url,
                "https://sqs.us-east-1.amazonaws.com/123456789012/requests",
            ),
            (
                "sqs.dlq_url",
                &self.sqs.dlq_url,
                "https://sqs.us-east-1.amazonaws.com/123456789012/requests-dlq",
            ),
        ] {
            let value = value.trim();
            if !value.is_empty() && reqwest::Url::parse(value).map_or(true, |u| !u.has_host()) {
                bad(
                    key,
                    format!("is {value:?}, not a queue URL; it looks like {example}"),
                );
            }
        }
        if let Some(ep) = self.aws.endpoint_url.as_deref().map(str::trim)
            && !ep.is_empty()
            && reqwest::Url::parse(ep).map_or(true, |u| !u.has_host())
        {
            bad(
                "aws.endpoint_url",
                format!("is {ep:?}, must be a URL such as http://127.0.0.1:4566"),
            );
        }
        let arn = self.sns.topic_arn.trim();
        let arn_shaped = arn.starts_with("arn:") && arn.split(':').count() == 6;
        if !arn.is_empty() && !arn_shaped {
            bad(
                "sns.topic_arn",
                format!(
                    "is {arn:?}, not a topic ARN; it looks like arn:aws:sns:us-east-1:123456789012:events"
                ),
            );
        }
        if self.sqs.queue_url == self.sqs.dlq_url && !self.sqs.queue_url.is_empty() {
            bad("sqs.dlq_url", "must differ from sqs.queue_url".into());
        }
        if !(1..=10).contains(&self.sqs.receive_batch_size) {
            bad(
                "sqs.receive_batch_size",
                format!("is {}, must be 1 to 10", self.sqs.receive_batch_size),
            );
        }
        if self.sqs.wait_time > Duration::from_secs(20) {
            bad("sqs.wait_time", "must be at most 20s".into());
        }
        if self.sqs.pollers == 0 {
            bad("sqs.pollers", "must be at least 1".into());
        }
        let w = &self.worker;
        if w.concurrency == 0 {
            bad("worker.concurrency", "must be at least 1".into());
        }
        if w.heartbeat_interval < Duration::from_millis(100) {
            bad("worker.heartbeat_interval", "must be at least 100ms".into());
        }
        if w.lease_duration < w.heartbeat_interval * 3 {
            bad(
                "worker.lease_duration",
                format!(
                    "is {}, must be at least 3 heartbeats (worker.heartbeat_interval is {}) so that a live owner never loses its lease",
                    humantime::format_duration(w.lease_duration),
                    humantime::format_duration(w.heartbeat_interval)
                ),
            );
        }
        let vis = self.sqs.visibility_timeout;
        if vis < Duration::from_secs(1) || vis > Duration::from_secs(12 * 3600) {
            bad("sqs.visibility_timeout", "must be 1s to 12h".into());
        } else if vis < w.heartbeat_interval * 2 {
            bad(
                "sqs.visibility_timeout",
                format!(
                    "is {}, must be at least 2 heartbeats (worker.heartbeat_interval is {}) so that an in-flight message never becomes visible",
                    humantime::format_duration(vis),
                    humantime::format_duration(w.heartbeat_interval)
                ),
            );
        }
        if w.max_rehandles == 0 {
            bad("worker.max_rehandles", "must be at least 1".into());
        }
        if !self.http.listen.is_empty() && self.http.listen.parse::<std::net::SocketAddr>().is_err()
        {
            bad(
                "http.listen",
                format!(
                    "is {:?}, must be an address like 0.0.0.0:9090 (or \"\" for off)",
                    self.http.listen
                ),
            );
        }
        if let Some(ep) = self
            .telemetry
            .otlp_endpoint
            .as_deref()
            .filter(|e| !e.is_empty())
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            bad(
                "telemetry.otlp_endpoint",
                format!(
                    "is {ep:?}, must be an http:// or https:// URL such as http://otel-collector:4317"
                ),
            );
        }
        if self.sets.is_empty() {
            bad(
                "sets",
                "has no cache set; add one such as [sets.summary] with a processor".into(),
            );
        }
        let prefix = &self.dynamodb.attribute_prefix;
        for (name, set) in &self.sets {
            let key = |field: &str| format!("sets.{name}.{field}");
            if !valid_set_name(name) {
                bad(
                    &format!("sets.{name}"),
                    "has an invalid name: use 1 to 64 letters, digits, '-' or '_'".into(),
                );
            }
            if self
                .sets
                .keys()
                .any(|other| other != name && other.starts_with(&format!("{name}_")))
            {
                bad(
                    &format!("sets.{name}"),
                    format!(
                        "is a prefix of another set name followed by '_', so their attributes ({prefix}_{name}_...) could collide"
                    ),
                );
            }
            if set.max_attempts == 0 {
                bad(&key("max_attempts"), "must be at least 1".into());
            }
            if set.timeout.is_zero() {
                bad(&key("timeout"), "must be more than 0s".into());
            }
            if set.backoff_base.is_zero() || set.backoff_base > set.backoff_cap {
                bad(
                    &key("backoff_base"),
                    "must be more than 0s and at most sets.*.backoff_cap".into(),
                );
            }
            if set.backoff_cap > Duration::from_secs(12 * 3600) {
                bad(
                    &key("backoff_cap"),
                    "must be at most 12h (the longest SQS visibility timeout)".into(),
                );
            }
            match &set.processor {
                ProcessorConfig::Command { program, .. } if program.as_os_str().is_empty() => {
                    bad(&key("processor.program"), "is missing".into())
                }
                ProcessorConfig::Http { url, .. } => match reqwest::Url::parse(url) {
                    Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                    _ => bad(
                        &key("processor.url"),
                        format!("is {url:?}, must be an http:// or https:// URL"),
                    ),
                },
                _ => {}
            }
        }
        if let Err(errors) = crate::streams::Rules::new(&self.streams, &self.key_names()) {
            for (i, e) in errors {
                issues.push(ConfigIssue {
                    key: format!("streams[{i}]"),
                    problem: e,
                });
            }
        }
        for (i, rule) in self.streams.iter().enumerate() {
            for set in &rule.sets {
                if set != "*" && !self.sets.contains_key(set) {
                    issues.push(ConfigIssue {
                        key: format!("streams[{i}].sets"),
                        problem: format!("names set {set}, which is not configured"),
                    });
                }
            }
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { issues })
        }
    }

    /// The cache table's key attribute names, partition key first.
    pub fn key_names(&self) -> Vec<String> {
        std::iter::once(self.dynamodb.partition_key.clone())
            .chain(self.dynamodb.sort_key.clone())
            .collect()
    }

    /// Whether the topic is FIFO (`.fifo`).
    pub fn fifo_topic(&self) -> bool {
        self.sns.topic_arn.ends_with(".fifo")
    }
}

/// Set names become part of attribute names and SNS message attributes.
pub fn valid_set_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn from_config_error(err: config::ConfigError) -> ConfigError {
    use config::ConfigError as E;
    match err {
        E::At {
            error,
            key: Some(key),
            ..
        } => {
            let msg = inner_message(&error);
            match unknown_field(&msg) {
                Some((field, expected)) => {
                    ConfigError::one(format!("{key}.{field}"), format!("{UNKNOWN_KEY}{expected}"))
                }
                None => ConfigError::one(key, format!("is invalid: {msg}")),
            }
        }
        E::At {
            error, key: None, ..
        } => from_config_error(*error),
        E::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => ConfigError::one(
            key,
            format!("has the wrong type: found {unexpected}, expected {expected}"),
        ),
        E::FileParse { uri, cause } => ConfigError::one(
            "file",
            format!("{} is not valid TOML: {cause}", uri.unwrap_or_default()),
        ),
        E::Message(msg) => message_issue(&msg),
        other => ConfigError::one("file", other.to_string()),
    }
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" into the
/// field and "; expected one of ...".
fn unknown_field(msg: &str) -> Option<(String, String)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (field, tail) = rest.split_once('`')?;
    let expected = tail.trim_start_matches(',').trim();
    let expected = if expected.is_empty() {
        String::new()
    } else {
        format!("; {expected}")
    };
    Some((field.to_owned(), expected))
}

fn inner_message(err: &config::ConfigError) -> String {
    match err {
        config::ConfigError::At { error, .. } => inner_message(error),
        other => other.to_string(),
    }
}

/// serde's messages name the field but not the section ("unknown field
/// `x`"); we say what we know.
fn message_issue(msg: &str) -> ConfigError {
    if let Some((field, expected)) = unknown_field(msg) {
        return ConfigError::one(field, format!("{UNKNOWN_KEY}{expected}"));
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return ConfigError::one(field, "is missing");
    }
    ConfigError::one("file", msg.to_owned())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
