//! Configuration errors: each names the key (or the place in the file) and
//! how to fix it.

use std::fmt;
use std::path::Path;

use super::ENV_PREFIX;

/// A configuration problem, naming the key and how to set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The dotted key, e.g. `sqs.queue_url`; `None` when the problem is the
    /// configuration file itself (missing, unreadable, not TOML), in which
    /// case `problem` says where and what.
    pub key: Option<String>,
    pub problem: String,
}

impl ConfigIssue {
    /// A problem with the value of `key`.
    pub fn key(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigIssue {
            key: Some(key.into()),
            problem: problem.into(),
        }
    }

    /// A problem with the configuration file as a whole.
    pub fn file(problem: impl Into<String>) -> Self {
        ConfigIssue {
            key: None,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problem = &self.problem;
        match &self.key {
            None => f.write_str(problem),
            Some(key) if problem.starts_with(UNKNOWN_KEY) => write!(
                f,
                "config key {key} {problem} (remove it or fix its spelling)"
            ),
            Some(key) => write!(f, "config key {key} {problem} ({})", how_to_set(key)),
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
    /// One problem with the value of `key`.
    pub fn one(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            issues: vec![ConfigIssue::key(key, problem)],
        }
    }

    /// One problem with the configuration file as a whole.
    pub fn file(problem: impl Into<String>) -> Self {
        ConfigError {
            issues: vec![ConfigIssue::file(problem)],
        }
    }

    /// A TOML syntax error: the file, line and column from the parser's
    /// span, then its message.
    pub(super) fn syntax(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let place = match err.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("{}:{line}:{column}", path.display())
            }
            None => path.display().to_string(),
        };
        ConfigError::file(format!(
            "{place}: the configuration file is not valid TOML: {} (fix the syntax there)",
            err.message().trim_end()
        ))
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
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
        E::FileParse { uri, cause } => ConfigError::file(format!(
            "{}: the configuration file is not valid TOML: {cause}",
            uri.unwrap_or_default()
        )),
        E::Message(msg) => message_issue(&msg),
        other => ConfigError::file(format!("the configuration cannot be read: {other}")),
    }
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" into the
/// field and "; expected one of ...". (serde reports an unknown field only
/// as this text.)
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
    ConfigError::file(format!("the configuration is invalid: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn line_and_column_count_from_one_in_characters() {
        let text = "a = 1\nbé = \"x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        let quote = text.find('"').unwrap();
        assert_eq!(line_column(text, quote), (2, 6));
        assert_eq!(line_column(text, text.len() + 10), (3, 1));
    }
}
