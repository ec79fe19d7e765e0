//! A minimal valid configuration with one set, `invoice`, for the tests of
//! the per-set keys (policy_tests.rs, values.rs) and of what a worker built
//! from it holds (pool/size_tests.rs).

use std::io::Write;

use super::Config;

const MINIMAL: &str = r#"
[sqs]
queue_url = "http://q"
dlq_url = "http://dlq"
[dynamodb]
table = "t"
[sns]
topic_arn = "arn:aws:sns:us-east-1:123456789012:t"
[sets.invoice]
processor = { kind = "http", url = "http://p/x" }
"#;

/// Loads the minimal file with `extra` appended (keys of `sets.invoice`
/// first, then any further sections) and the environment `env`; the error
/// as the daemon would print it.
pub fn load(extra: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    validated(extra, env).map(|v| v.into_parts().0)
}

/// [`load`], validated: what [`crate::daemon::worker`] takes.
pub fn validated(extra: &str, env: &[(&str, &str)]) -> Result<super::Validated, String> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(format!("{MINIMAL}{extra}").as_bytes()).unwrap();
    Config::load_from(
        Some(f.path()),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .map_err(|e| e.to_string())
}
