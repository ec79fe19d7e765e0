//! What serde cannot check: required keys, ranges, the relations between
//! timings, and whether each processor can run at all. Validation compiles
//! the stream rules on the way and hands them on in [`Validated`], so that
//! the daemon is built from exactly what was checked.

use std::ops::Deref;
use std::time::Duration;

use super::{Config, ConfigError, ConfigIssue, ProcessorConfig, valid_set_name};
use crate::processor::{command, http};
use crate::streams::Rules;

/// A configuration that passed [`Config::validate`], with the stream rules
/// that validation compiled. It reads as the [`Config`] it holds.
#[derive(Clone, Debug)]
pub struct Validated {
    config: Config,
    rules: Rules,
}

impl Validated {
    /// The compiled `[[streams]]` rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The configuration and its compiled stream rules.
    pub fn into_parts(self) -> (Config, Rules) {
        (self.config, self.rules)
    }
}

impl Deref for Validated {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

impl Config {
    /// Checks everything serde cannot: required keys, ranges, the relations
    /// between timings, and that each processor can run (a `command`'s
    /// program is found and executable, an `http` one's URL and headers are
    /// well-formed). The one check of both `config check` and `run`;
    /// returns the stream rules it compiled.
    pub fn validate(&self) -> Result<Rules, ConfigError> {
        let mut issues = Vec::new();
        let mut bad = |key: &str, problem: String| issues.push(ConfigIssue::key(key, problem));
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
        if self.aws.call_timeout < Duration::from_secs(1)
            || self.aws.call_timeout >= self.worker.lease_duration
        {
            bad(
                "aws.call_timeout",
                format!(
                    "is {}, must be at least 1s and less than worker.lease_duration ({}), so that a \
                     lease renewal that hangs is retried before the lease runs out",
                    humantime::format_duration(self.aws.call_timeout),
                    humantime::format_duration(self.worker.lease_duration)
                ),
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
        if self.sqs.receive_linger > Duration::from_secs(1) {
            bad(
                "sqs.receive_linger",
                "must be at most 1s (it delays receives while work is in flight)".into(),
            );
        }
        if self.sqs.wait_time > Duration::from_secs(20) {
            bad("sqs.wait_time", "must be at most 20s".into());
        }
        if self.sqs.pollers == 0 {
            bad("sqs.pollers", "must be at least 1".into());
        }
        if !(Duration::from_secs(1)..=crate::aws::queue::MAX_DELAY).contains(&self.sqs.max_delay) {
            bad(
                "sqs.max_delay",
                "must be 1s to 15m (SQS's longest DelaySeconds)".into(),
            );
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
        if w.threads > 1024 {
            bad(
                "worker.threads",
                format!(
                    "is {}, must be at most 1024 (0 is one per CPU core)",
                    w.threads
                ),
            );
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
            for (field, problem) in set.policy_problems() {
                bad(&key(field), problem.replace("<name>", name));
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
                // Found and executable the way the spawn will look for it,
                // so that a program that cannot run stops the start (and
                // `config check`), not every request.
                ProcessorConfig::Command { program, env, .. } => {
                    if let Err(problem) = command::find_program(program, env) {
                        bad(&key("processor.program"), problem)
                    }
                }
                ProcessorConfig::Http { url, headers } => {
                    match reqwest::Url::parse(url) {
                        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                        _ => bad(
                            &key("processor.url"),
                            format!("is {url:?}, must be an http:// or https:// URL"),
                        ),
                    }
                    if let Err((name, problem)) = http::header_map(headers) {
                        bad(&key(&format!("processor.headers.{name}")), problem)
                    }
                }
                ProcessorConfig::Embedded => {}
            }
        }
        self.validate_values(&mut issues);
        let rules = Rules::new(&self.streams, &self.key_names())
            .map_err(|errors| {
                for (i, e) in errors {
                    issues.push(ConfigIssue::key(format!("streams[{i}]"), e));
                }
            })
            .ok();
        for (i, rule) in self.streams.iter().enumerate() {
            for set in &rule.sets {
                if set != "*" && !self.sets.contains_key(set) {
                    issues.push(ConfigIssue::key(
                        format!("streams[{i}].sets"),
                        format!("names set {set}, which is not configured"),
                    ));
                }
            }
        }
        match rules {
            Some(rules) if issues.is_empty() => Ok(rules),
            _ => Err(ConfigError { issues }),
        }
    }

    /// This configuration, validated ([`Config::validate`]).
    pub fn validated(self) -> Result<Validated, ConfigError> {
        let rules = self.validate()?;
        Ok(Validated {
            config: self,
            rules,
        })
    }
}
