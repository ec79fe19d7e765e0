//! Configuration: one TOML file plus environment overrides.
//!
//! Every key can be set in the file or by an environment variable named
//! `TRIGGERED_CACHE__{SECTION}__{KEY}` (double underscores, because keys
//! themselves contain single ones), e.g. `TRIGGERED_CACHE__SQS__QUEUE_URL`
//! overrides `[sqs].queue_url`; list keys read a comma-separated string
//! there ([`list`]). Unknown keys are errors, durations read like `"30s"`
//! or `"1m 30s"`, and [`Config::validate`] names every key that is missing,
//! out of range or (for a `command` processor) names a program that cannot
//! run, together with how to set it. `config check` and `run` load through
//! the same [`Config::load`]; the binary exits 2 on any of these errors.
//!
//! Files: `sections.rs` (AWS, queues, table, topic, worker, HTTP, logs,
//! traces), `sets.rs` (cache sets and their processors), `values.rs` (large
//! values: `[s3]`, compression, sizes), `list.rs` (list
//! keys), `de.rs` (reading the merged sources, so that serde names what is
//! wrong and where), `validate.rs` (what serde cannot check), `error.rs`
//! (errors that name the key or the place in the file).

mod de;
mod error;
pub mod list;
mod sections;
mod sets;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where `sns.events` names them; they live with the events.
pub use crate::events::EventKind;
pub use error::{ConfigError, ConfigIssue, how_to_set};
pub use sections::*;
pub use sets::*;
pub use validate::Validated;
pub use values::{Compression, S3Config, Size};

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "TRIGGERED_CACHE";

/// The whole configuration of the daemon.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// AWS region and endpoint.
    pub aws: AwsConfig,
    /// The request queue and its dead-letter queue.
    pub sqs: SqsConfig,
    /// The user's table that holds the cached objects.
    pub dynamodb: TableConfig,
    /// The topic completion events go to.
    pub sns: SnsConfig,
    /// The worker pool, leases and heartbeats.
    pub worker: WorkerConfig,
    /// The operations HTTP port (health, readiness, metrics).
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
    /// Trace export (OpenTelemetry).
    pub telemetry: TelemetryConfig,
    /// The cache sets, by name: `[sets.summary]`.
    pub sets: BTreeMap<String, SetConfig>,
    /// Rules mapping DynamoDB Stream records to triggers: `[[streams]]`.
    pub streams: Vec<crate::streams::StreamRule>,
    /// Dependency tracking.
    pub dependencies: DependenciesConfig,
    /// Where large values are offloaded (issue 14).
    pub s3: S3Config,
}

impl Config {
    /// Loads `path` (if any) and the `TRIGGERED_CACHE__*` environment, then
    /// validates.
    pub fn load(path: Option<&Path>) -> Result<Validated, ConfigError> {
        Self::load_from(path, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Validated, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            let text = read_file(path)?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        // Every value from the environment stays a string (no
        // `try_parsing`): numbers and durations parse from strings on
        // demand, list keys split them (`list`), and an id that looks like
        // a number stays the string it is.
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .separator("__")
                .source(Some(env)),
        );
        let raw = builder.build().map_err(error::from_config_error)?;
        let tree: serde_json::Value = raw.try_deserialize().map_err(error::from_config_error)?;
        let cfg: Config = de::read(&tree).map_err(|issue| ConfigError {
            issues: vec![issue],
        })?;
        cfg.validated()
    }

    /// The cache table's key attribute names, partition key first.
    pub fn key_names(&self) -> Vec<String> {
        std::iter::once(self.dynamodb.partition_key.clone())
            .chain(self.dynamodb.sort_key.clone())
            .collect()
    }

    /// The size over which `set`'s values are offloaded to S3, if they are:
    /// its own `offload_over`, else `s3.offload_over`, and only with a
    /// bucket.
    pub fn offload_over(&self, set: &str) -> Option<u64> {
        if self.s3.bucket.is_empty() {
            return None;
        }
        self.sets
            .get(set)
            .and_then(|s| s.offload_over)
            .or(self.s3.offload_over)
            .map(Size::bytes)
    }

    /// Whether `set` compresses its values.
    pub fn compresses(&self, set: &str) -> bool {
        self.sets.get(set).is_some_and(|s| s.compress.is_some())
    }

    /// Whether the topic is FIFO (`.fifo`).
    pub fn fifo_topic(&self) -> bool {
        self.sns.topic_arn.ends_with(".fifo")
    }
}

/// The text of the configuration file, checked to be TOML so that a syntax
/// error names the file, line and column.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read: {e}")
        };
        ConfigError::file(format!(
            "the configuration file {} {why} (pass --config PATH or set TRIGGERED_CACHE_CONFIG)",
            path.display()
        ))
    })?;
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(ConfigError::syntax(path, &text, &e));
    }
    Ok(text)
}

/// Set names become part of attribute names and SNS message attributes.
pub fn valid_set_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "policy_tests.rs"]
mod policy_tests;
