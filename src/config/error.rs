//! Configuration errors: each names the key and how to set it.

use std::fmt;

use super::ENV_PREFIX;

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
    pub(super) fn one(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            issues: vec![ConfigIssue {
                key: key.into(),
                problem: problem.into(),
            }],
        }
    }
}

pub(super) fn from_config_error(err: config::ConfigError) -> ConfigError {
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
