//! The local emulator: where it is, an SDK configuration for it, and
//! resource names that no other test (or earlier run) uses.

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The emulator endpoint, from the test command (scripts/test.sh).
pub fn endpoint() -> String {
    std::env::var("TC_TEST_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TC_TEST_ENDPOINT is not set: run the integration tests with scripts/test.sh, \
             which starts the local AWS emulator (or start one with scripts/local-aws.sh start \
             and export TC_TEST_ENDPOINT=http://127.0.0.1:PORT)"
        )
    })
}

pub async fn sdk() -> SdkConfig {
    // SAFETY-free: static test credentials for the emulator only.
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique name per test (and per run).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 100_000_000;
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}
