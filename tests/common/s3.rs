//! A test's own S3 bucket on the emulator (issue 14: offloaded values and
//! `inputRef`s), and what a test reads back from it.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Env;
use super::emulator::unique;

/// A fresh bucket and the client that reaches it (path-style, as the
/// daemon addresses the emulator).
pub struct Bucket {
    pub client: aws_sdk_s3::Client,
    pub name: String,
}

impl Env {
    /// Creates a bucket of this test's own.
    pub async fn bucket(&self) -> Bucket {
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(true)
                .build(),
        );
        let name = unique("tc-values").to_lowercase();
        client.create_bucket().bucket(&name).send().await.unwrap();
        Bucket { client, name }
    }
}

impl Bucket {
    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }

    /// The object's bytes, or `None` if it does not exist.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.unwrap().into_bytes().to_vec())
    }

    /// The keys under `prefix`.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        keys.sort();
        keys
    }

    /// Waits until the keys under `prefix` are exactly `want`.
    pub async fn wait_keys(&self, prefix: &str, want: &[String], deadline: Duration) {
        let until = std::time::Instant::now() + deadline;
        loop {
            let got = self.keys(prefix).await;
            if got == want {
                return;
            }
            assert!(
                std::time::Instant::now() < until,
                "timed out waiting for the objects under {prefix} to be {want:?}; they are {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
