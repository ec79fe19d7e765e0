//! `send`'s `--at` / `--delay`: when a trigger takes effect (scheduled
//! triggers, `worker/schedule.rs`).

use clap::Args;
use serde_json::{Map, Value as Json, json};

/// When a trigger takes effect; by default at once.
#[derive(Debug, Args)]
pub struct When {
    /// Take effect at this time: RFC 3339 in UTC, e.g. 2026-12-24T00:00:00Z.
    #[arg(long, value_parser = parse_at, conflicts_with = "delay")]
    pub at: Option<String>,
    /// Take effect this long after it is sent, e.g. 90s, 15m, 2h.
    #[arg(long, value_parser = parse_delay)]
    pub delay: Option<String>,
}

impl When {
    /// The message's `at` or `delay` field.
    pub fn fields(&self) -> Map<String, Json> {
        let mut map = Map::new();
        if let Some(at) = &self.at {
            map.insert("at".into(), json!(at));
        }
        if let Some(delay) = &self.delay {
            map.insert("delay".into(), json!(delay));
        }
        map
    }
}

fn parse_at(s: &str) -> Result<String, String> {
    humantime::parse_rfc3339(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{e}; expected RFC 3339 in UTC, like 2026-12-24T00:00:00Z"))
}

fn parse_delay(s: &str) -> Result<String, String> {
    humantime::parse_duration(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{e}; expected a duration like 90s, 15m or 2h"))
}
