//! Processors: what computes a cache set's value (DESIGN §6).
//!
//! The worker hands a processor a [`Job`] and gets an [`Output`] or a
//! [`ProcessError`] that says whether trying again can help. Two processors
//! come built in, [`command::CommandProcessor`] and [`http::HttpProcessor`];
//! programs that embed the crate implement [`Processor`] themselves and
//! register it with `Worker::with_processor`.

pub mod command;
pub mod http;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::config::{Config, ProcessorConfig};

/// What a processor is asked to compute. Serialized as the JSON that the
/// `command` processor reads on stdin and the `http` processor POSTs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Job {
    /// The item's key attributes, e.g. `{"pk": "order#123"}`.
    pub key: Json,
    /// The cache set.
    pub set: String,
    /// The data generation this run computes for.
    pub epoch: i64,
    /// The request that owns this run.
    #[serde(rename = "requestId")]
    pub request_id: String,
    /// The request's `input`, if it had one.
    pub input: Option<Json>,
    /// The whole item as plain JSON, as read before the run.
    pub record: Json,
}

/// A processor's answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Output {
    /// The value to cache: any JSON.
    pub value: Json,
    /// Entities this value depends on.
    #[serde(rename = "dependsOn", default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// Why a processing attempt failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// Trying again later may succeed (timeouts, 5xx, 429, exit 75).
    #[error("{0}")]
    Retryable(String),
    /// Trying again will not help (4xx, a bad answer, other exit codes).
    #[error("{0}")]
    Permanent(String),
}

impl ProcessError {
    pub fn kind(&self) -> &'static str {
        match self {
            ProcessError::Retryable(_) => "retryable",
            ProcessError::Permanent(_) => "permanent",
        }
    }
}

/// Computes the value of a cache set. Implement this to embed the worker in
/// your own program.
#[async_trait]
pub trait Processor: Send + Sync {
    async fn process(&self, job: &Job) -> Result<Output, ProcessError>;
}

/// Parses a processor's answer `{"value": ..., "dependsOn": [...]}`.
pub fn parse_answer(bytes: &[u8]) -> Result<Output, ProcessError> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| {
        ProcessError::Permanent(format!(
            "the answer is not JSON ({e}); expected {{\"value\": ...}}: {}",
            excerpt(bytes, 200)
        ))
    })?;
    match json {
        Json::Object(ref map) if map.contains_key("value") => serde_json::from_value(json)
            .map_err(|e| ProcessError::Permanent(format!("the answer is malformed: {e}"))),
        _ => Err(ProcessError::Permanent(
            "the answer has no `value`; expected {\"value\": ..., \"dependsOn\": [...]}".into(),
        )),
    }
}

/// A processor's output for an error message (an error answer's body, a
/// program's stderr): JSON is compacted to one line and stays JSON, so that
/// it reads as JSON wherever the message goes (logs, the `failed` event's
/// `error`, the DLQ reason) instead of as `\"`-escaped text; other text is
/// trimmed, with control characters (newlines too) escaped. At most `max`
/// characters, then `…`.
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let one_line = match serde_json::from_str::<Json>(text) {
        Ok(json) => json.to_string(),
        Err(_) => {
            let mut out = String::with_capacity(text.len());
            for c in text.chars() {
                if c.is_control() {
                    out.extend(c.escape_default());
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Builds the processors named in the configuration. `Embedded` sets are
/// left out: the embedding program registers them.
pub fn from_config(cfg: &Config) -> anyhow::Result<HashMap<String, Arc<dyn Processor>>> {
    let mut out: HashMap<String, Arc<dyn Processor>> = HashMap::new();
    let http_client = http::client()?;
    for (name, set) in &cfg.sets {
        let p: Arc<dyn Processor> = match &set.processor {
            ProcessorConfig::Command { program, args, env } => Arc::new(
                command::CommandProcessor::new(program.clone(), args.clone(), env.clone())?,
            ),
            ProcessorConfig::Http { url, headers } => {
                Arc::new(http::HttpProcessor::new(http_client.clone(), url, headers)?)
            }
            ProcessorConfig::Embedded => continue,
        };
        out.insert(name.clone(), p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn json_output_stays_json_on_one_line() {
        let pretty = b"{\n  \"error\": \"no such order\",\n  \"id\": \"o#1\"\n}\n";
        assert_eq!(
            excerpt(pretty, 500),
            r#"{"error":"no such order","id":"o#1"}"#
        );
    }

    #[test]
    fn other_text_keeps_its_quotes_and_escapes_control_characters() {
        assert_eq!(
            excerpt(b"  bad \"input\"\n\tat line 2\x1b[0m ", 500),
            r#"bad "input"\n\tat line 2\u{1b}[0m"#
        );
    }

    #[test]
    fn long_output_is_cut_at_a_character() {
        assert_eq!(excerpt("ééé".as_bytes(), 2), "éé…");
        assert_eq!(excerpt(b"abc", 3), "abc");
    }
}
