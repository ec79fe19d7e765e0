//! A cache set (`[sets.NAME]`) and its processor.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The processor of a cache set: what computes its value.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProcessorConfig {
    /// Runs `program` with `args` (no shell), the job as JSON on stdin, the
    /// answer as JSON on stdout. Exit 0 = success, 75 = retryable, other =
    /// permanent.
    Command {
        /// A path, or a name looked up in PATH; checked at start.
        program: PathBuf,
        /// A list: from the environment, comma-separated (an argument that
        /// contains a comma needs the TOML file).
        #[serde(default, deserialize_with = "super::list::deserialize")]
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
    /// Every request answered by its own id: a request that leaves its
    /// answer to another request's run or to a trigger flow is listed on
    /// the item, and the `ready` or `failed` event lists it (`answers`).
    /// Costs one conditional write per such request.
    #[serde(default)]
    pub answer_each_request: bool,
    /// `"zstd"`: store the value compressed (a binary attribute) when that
    /// is smaller; unset = as native DynamoDB values.
    #[serde(default)]
    pub compress: Option<super::Compression>,
    /// A value (after compression) larger than this goes to S3 (`[s3]`)
    /// and the item keeps a pointer; unset = `s3.offload_over`.
    #[serde(default)]
    pub offload_over: Option<super::Size>,
    /// Stale-while-revalidate: a request that finds the cache invalid while
    /// the item still holds an earlier value no older than this is answered
    /// at once with a `hit` marked `"stale": true`, then as usual; unset =
    /// off.
    #[serde(default, with = "humantime_serde")]
    pub serve_stale: Option<Duration>,
    /// Negative caching: for this long after `FAILED`, requests are
    /// answered with the recorded failure instead of a new run (a trigger,
    /// `"retry": true` or `dlq redrive` bypass it); unset = off.
    #[serde(default, with = "humantime_serde")]
    pub failure_ttl: Option<Duration>,
    /// Refresh ahead (needs `ttl`, shorter than it): a hit on a value older
    /// than this answers from the cache and starts one background refresh;
    /// unset = off.
    #[serde(default, with = "humantime_serde")]
    pub refresh_after: Option<Duration>,
}

impl SetConfig {
    /// The set's cache policies, as the handler decides with them.
    pub fn policies(&self) -> crate::state::Policies {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as i64);
        crate::state::Policies {
            serve_stale: ms(self.serve_stale),
            failure_ttl: ms(self.failure_ttl),
            refresh_after: ms(self.refresh_after),
        }
    }

    /// What is wrong with the set's cache policies: (key under the set,
    /// problem). `Config::validate` names the full key.
    pub fn policy_problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = vec![];
        for (field, value) in [
            ("serve_stale", self.serve_stale),
            ("failure_ttl", self.failure_ttl),
            ("refresh_after", self.refresh_after),
        ] {
            if value.is_some_and(|d| d.is_zero()) {
                problems.push((field, "must be more than 0s (leave it out for off)".into()));
            }
        }
        match (self.refresh_after, self.ttl) {
            (Some(_), None) => problems.push((
                "refresh_after",
                "needs a ttl: set sets.<name>.ttl longer than refresh_after, or leave refresh_after out".into(),
            )),
            (Some(after), Some(ttl)) if after >= ttl => problems.push((
                "refresh_after",
                format!(
                    "is {}, must be shorter than the ttl ({}): a value is refreshed before it expires",
                    humantime::format_duration(after),
                    humantime::format_duration(ttl)
                ),
            )),
            _ => {}
        }
        problems
    }
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
