//! The S3 adapter: the configured bucket and prefix, where values too
//! large for their item are offloaded and where producers leave inputs too
//! large for a message (`inputRef`).
//!
//! Why a bucket *and* a prefix in the adapter itself: the daemon must never
//! read or write outside them (issue 14, DESIGN §9). Every call takes a key
//! and checks it against the prefix, and a reference that names another
//! bucket or a key outside the prefix is refused by [`Bucket::check`]
//! before any call is made, so the IAM policy (which grants exactly this
//! bucket and prefix) is a second fence, not the only one.
//!
//! Addressing is path-style when an endpoint is configured (the local
//! emulators serve buckets as paths), virtual-hosted against AWS.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use tracing::Instrument;

use crate::aws::OnHeap;

pub use super::error::{ObjectError, ObjectFailure};

/// The tag that says whether an item points to an object: written
/// [`UNCOMMITTED`] with the object, [`COMMITTED`] once its commit held. The
/// bucket's lifecycle rule (deploy/aws) expires uncommitted objects: the
/// backstop for objects whose commit lost while the cleanup did not run.
pub const STATE_TAG: &str = "triggered-cache";
pub const UNCOMMITTED: &str = "uncommitted";
pub const COMMITTED: &str = "committed";

/// The configured bucket, seen through its prefix.
#[derive(Clone, Debug)]
pub struct Bucket {
    client: Client,
    bucket: String,
    prefix: String,
}

impl Bucket {
    pub fn new(client: Client, bucket: &str, prefix: &str) -> Self {
        Bucket {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.bucket
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Why the daemon may not touch `bucket`/`key`, if it may not: another
    /// bucket, or a key outside the prefix.
    pub fn check(&self, bucket: &str, key: &str) -> Result<(), String> {
        if bucket != self.bucket {
            return Err(format!(
                "names bucket {bucket:?}; this worker reads and writes only s3.bucket {:?}",
                self.bucket
            ));
        }
        if !key.starts_with(&self.prefix) || key.split('/').any(|s| s == "..") {
            return Err(format!(
                "names key {key:?}, outside s3.prefix {:?}",
                self.prefix
            ));
        }
        Ok(())
    }

    fn error<E>(&self, op: &'static str, key: &str, err: E) -> ObjectError
    where
        aws_sdk_s3::Error: From<E>,
    {
        ObjectError {
            op,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            source: ObjectFailure::Call(Box::new(err.into())),
        }
    }

    fn inside(&self, op: &'static str, key: &str) -> Result<(), ObjectError> {
        self.check(&self.bucket, key).map_err(|why| ObjectError {
            op,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            source: ObjectFailure::Refused(why),
        })
    }

    /// Writes `body` under `key` (JSON), tagged [`UNCOMMITTED`]: until
    /// [`Bucket::mark_committed`], the bucket's lifecycle rule may expire it.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ObjectError> {
        self.inside("PutObject", key)?;
        let span = tracing::info_span!("s3.PutObject", otel.kind = "client", bucket = %self.bucket);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .tagging(format!("{STATE_TAG}={UNCOMMITTED}"))
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .on_heap()
            .instrument(span)
            .await
            .map(|_| ())
            .map_err(|e| self.error("PutObject", key, e))
    }

    /// Tags the object under `key` [`COMMITTED`]: an item points to it, and
    /// the lifecycle rule (which expires [`UNCOMMITTED`] objects) leaves it.
    pub async fn mark_committed(&self, key: &str) -> Result<(), ObjectError> {
        self.inside("PutObjectTagging", key)?;
        let tag = aws_sdk_s3::types::Tag::builder()
            .key(STATE_TAG)
            .value(COMMITTED)
            .build()
            .expect("a tag with key and value");
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(tag)
            .build()
            .expect("a tag set");
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .on_heap()
            .await
            .map(|_| ())
            .map_err(|e| self.error("PutObjectTagging", key, e))
    }

    /// Reads the object under `key` whole.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, ObjectError> {
        self.inside("GetObject", key)?;
        let span = tracing::info_span!("s3.GetObject", otel.kind = "client", bucket = %self.bucket);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .on_heap()
            .instrument(span)
            .await
            .map_err(|e| self.error("GetObject", key, e))?;
        let body = out.body.collect().await.map_err(|e| ObjectError {
            op: "GetObject",
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            source: ObjectFailure::Body(e.to_string()),
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// Deletes the object under `key` (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        self.inside("DeleteObject", key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .on_heap()
            .await
            .map(|_| ())
            .map_err(|e| self.error("DeleteObject", key, e))
    }

    /// The keys under `prefix` (which must be inside the configured one).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        self.inside("ListObjectsV2", prefix)?;
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .on_heap()
                .await
                .map_err(|e| self.error("ListObjectsV2", prefix, e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// A presigned GET URL of `key`, valid for `expiry` (signed locally: no
    /// call is made).
    pub async fn presign_get(&self, key: &str, expiry: Duration) -> Result<String, ObjectError> {
        self.inside("GetObject", key)?;
        let config = PresigningConfig::expires_in(expiry).map_err(|e| ObjectError {
            op: "GetObject",
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            source: ObjectFailure::Body(e.to_string()),
        })?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .on_heap()
            .await
            .map_err(|e| self.error("GetObject", key, e))?;
        Ok(req.uri().to_owned())
    }
}
