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
    /// Whether the key is not one the configuration has (the fix is to
    /// remove or respell it, not to set it).
    unknown: bool,
}

impl ConfigIssue {
    /// A problem with the value of `key`.
    pub fn key(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigIssue {
            key: Some(key.into()),
            problem: problem.into(),
            unknown: false,
        }
    }

    /// A key the configuration does not have; `known` are the keys its
    /// section has.
    pub fn unknown(key: impl Into<String>, known: &[&str]) -> Self {
        let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        let problem = match known.len() {
            0 => "is not a known key".to_owned(),
            _ => format!("is not a known key; expected one of {}", known.join(", ")),
        };
        ConfigIssue {
            unknown: true,
            ..ConfigIssue::key(key, problem)
        }
    }

    /// A problem with the configuration file as a whole.
    pub fn file(problem: impl Into<String>) -> Self {
        ConfigIssue {
            key: None,
            problem: problem.into(),
            unknown: false,
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problem = &self.problem;
        match &self.key {
            None => f.write_str(problem),
            Some(key) if self.unknown => write!(
                f,
                "config key {key} {problem} (remove it or fix its spelling)"
            ),
            Some(key) => write!(f, "config key {key} {problem} ({})", how_to_set(key)),
        }
    }
}

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

/// An error of the `config` crate while it reads and merges the sources
/// (reading the merged tree is `super::de`'s, which names the key).
pub(super) fn from_config_error(err: config::ConfigError) -> ConfigError {
    use config::ConfigError as E;
    match err {
        E::At {
            error,
            key: Some(key),
            ..
        } => ConfigError::one(key, format!("is invalid: {error}")),
        E::At {
            error, key: None, ..
        } => from_config_error(*error),
        E::FileParse { uri, cause } => ConfigError::file(format!(
            "{}: the configuration file is not valid TOML: {cause}",
            uri.unwrap_or_default()
        )),
        other => ConfigError::file(format!("the configuration cannot be read: {other}")),
    }
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
