//! The executor's part of large values (issue 14): the upload before a
//! commit, the cleanup of objects no item points to any more, the value an
//! event carries when it was offloaded, and a request's `inputRef`.
//!
//! Nothing here decides the state: the handler ordered the store before
//! the commit, and the commit's fence decides whether the object is ever
//! referenced. What is here is best effort where it may be (deleting
//! garbage) and an error that retries the message where it must not be (an
//! upload or a read that failed).

use serde_json::Value as Json;
use tracing::{debug, warn};

use super::Worker;
use crate::aws::error_message;
use crate::aws::s3::Bucket;
use crate::item::Key;
use crate::message::BadMessage;
use crate::state::{Cache, Field, Op, Val, Write};
use crate::value::{self, ObjectRef};

impl Worker {
    fn bucket(&self) -> anyhow::Result<&Bucket> {
        self.bucket
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("a value is offloaded but no s3.bucket is configured"))
    }

    /// Writes `value` to S3 when it is larger than the set's `offload_over`
    /// (after compression) and returns its pointer; `None` when it stays in
    /// the item.
    pub(super) async fn store_value(
        &self,
        key: &Key,
        set: &str,
        rid: &str,
        epoch: i64,
        value: &Json,
    ) -> anyhow::Result<Option<Json>> {
        let Some(over) = self.cfg.offload_over(set) else {
            return Ok(None);
        };
        let stored = value::encode(value, self.cfg.compresses(set));
        if (crate::item::av_size(&stored) as u64) <= over {
            return Ok(None);
        }
        let bucket = self.bucket()?;
        let body = serde_json::to_vec(value)?;
        let object = value::object_key(bucket.prefix(), self.table.name(), key, set, epoch, rid);
        bucket.put(&object, body.clone()).await?;
        debug!(object, bytes = body.len(), "value offloaded to S3");
        Ok(Some(ObjectRef::to(bucket.name(), &object, &body).to_json()))
    }

    /// After a commit at `now`'s epoch held: deletes the value it replaced
    /// (`previous`, the pointer the item held before) and the set's objects
    /// of earlier epochs that the item does not point to (lost commits, a
    /// crash between upload and commit). Objects of this epoch and later
    /// ones may belong to runs that can still commit (a claim keeps the
    /// epoch) and are left to their own runs or the lifecycle rule. Best
    /// effort, in the background.
    pub(super) fn clean_objects(&self, key: &Key, set: &str, now: &Cache, previous: Option<Json>) {
        let Some(bucket) = self.bucket.clone() else {
            return;
        };
        if self.cfg.offload_over(set).is_none() {
            return;
        }
        let epoch = now.epoch();
        let keep = now
            .value_ref
            .as_ref()
            .and_then(ObjectRef::from_json)
            .map(|r| r.key);
        let previous = previous
            .as_ref()
            .and_then(ObjectRef::from_json)
            .filter(|p| bucket.check(&p.bucket, &p.key).is_ok())
            .map(|p| p.key)
            .filter(|p| Some(p) != keep.as_ref());
        let prefix = value::set_prefix(bucket.prefix(), self.table.name(), key, set);
        tokio::spawn(async move {
            if let Some(keep) = &keep
                && let Err(e) = bucket.mark_committed(keep).await
            {
                warn!(error = %error_message(&e), "could not tag the committed object; a redelivery tags it, else the lifecycle rule may expire it");
            }
            let keys: Vec<String> = match bucket.list(&prefix).await {
                Ok(keys) => keys,
                Err(e) => {
                    warn!(error = %error_message(&e), "could not list the set's objects of earlier epochs; the next commit or the lifecycle rule removes them");
                    vec![]
                }
            };
            let older = keys
                .into_iter()
                .filter(|k| value::epoch_of(&prefix, k).is_some_and(|e| e < epoch));
            for object in previous.into_iter().chain(older) {
                if Some(&object) != keep.as_ref() {
                    match bucket.delete(&object).await {
                        Ok(()) => debug!(object, "superseded object deleted"),
                        Err(e) => {
                            warn!(error = %error_message(&e), "could not delete a superseded object; the lifecycle rule removes it")
                        }
                    }
                }
            }
        });
    }

    /// A commit of a pointer was rejected: the object it points to is
    /// garbage, unless the item points to it all the same (the same commit
    /// held before, and this is its retry). Best effort.
    pub(super) async fn drop_object(&self, write: &Write, now: &Cache) {
        let Some(bucket) = &self.bucket else { return };
        let Some(ours) = write.ops.iter().find_map(|op| match op {
            Op::Set(Field::ValueRef, Val::Json(j)) => ObjectRef::from_json(j),
            _ => None,
        }) else {
            return;
        };
        let current = now.value_ref.as_ref().and_then(ObjectRef::from_json);
        if current.is_some_and(|c| c.key == ours.key) {
            return;
        }
        if let Err(e) = bucket.delete(&ours.key).await {
            warn!(error = %error_message(&e), "could not delete the object of a lost commit; the next commit or the lifecycle rule removes it");
        }
    }

    /// A ready event re-published (a redelivery after the commit): the
    /// commit's tagging may not have happened (the process died), so the
    /// committed object is tagged again. Best effort.
    pub(super) async fn tag_committed(&self, value_ref: &Json) {
        let (Some(bucket), Some(r)) = (&self.bucket, ObjectRef::from_json(value_ref)) else {
            return;
        };
        if bucket.check(&r.bucket, &r.key).is_ok()
            && let Err(e) = bucket.mark_committed(&r.key).await
        {
            warn!(error = %error_message(&e), "could not tag the committed object");
        }
    }

    /// The offloaded value, read back for an event that has room for it;
    /// `None` when it does not fit (the event carries the pointer).
    pub(super) async fn fetch_value(&self, value_ref: &Json) -> anyhow::Result<Option<Json>> {
        let Some(r) = ObjectRef::from_json(value_ref) else {
            return Ok(None);
        };
        let room = self.events.max_value_bytes() as u64;
        if r.size.is_none_or(|s| s > room) {
            return Ok(None);
        }
        let bucket = self.bucket()?;
        if let Err(why) = bucket.check(&r.bucket, &r.key) {
            anyhow::bail!("the item's valueRef {why}");
        }
        let body = bucket.get(&r.key).await?;
        if !r.matches(&body) {
            anyhow::bail!(
                "the object s3://{}/{} does not match its valueRef (size or sha256)",
                r.bucket,
                r.key
            );
        }
        Ok(Some(serde_json::from_slice(&body)?))
    }

    /// A presigned GET URL of an offloaded value, when `s3.presign_expiry`
    /// is set.
    pub(super) async fn value_url(&self, value_ref: &Json) -> Option<String> {
        let (bucket, expiry) = (self.bucket.as_ref()?, self.cfg.s3.presign_expiry?);
        let r = ObjectRef::from_json(value_ref)?;
        bucket.check(&r.bucket, &r.key).ok()?;
        match bucket.presign_get(&r.key, expiry).await {
            Ok(url) => Some(url),
            Err(e) => {
                warn!(error = %error_message(&e), "could not presign the value's URL; the event carries the valueRef only");
                None
            }
        }
    }

    /// The content of a request's `inputRef`: refused (dead-lettered) when
    /// it names a place outside `s3.bucket`/`s3.prefix` or is not JSON; an
    /// S3 failure is an error (the message is retried).
    pub(super) async fn fetch_input(
        &self,
        input_ref: &ObjectRef,
    ) -> anyhow::Result<Result<Json, BadMessage>> {
        let Some(bucket) = &self.bucket else {
            return Ok(Err(crate::message::bad(
                "field `inputRef` needs an S3 bucket, and this worker has none (set [s3] bucket and prefix); send the input as `input`",
            )));
        };
        if let Err(why) = bucket.check(&input_ref.bucket, &input_ref.key) {
            return Ok(Err(crate::message::bad(format!("field `inputRef` {why}"))));
        }
        let body = match bucket.get(&input_ref.key).await {
            Ok(body) => body,
            Err(e) if e.is_not_found() => {
                return Ok(Err(crate::message::bad(format!(
                    "field `inputRef` names s3://{}/{}, which does not exist; write the object before sending the request",
                    input_ref.bucket, input_ref.key
                ))));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(serde_json::from_slice(&body).map_err(|e| {
            crate::message::bad(format!(
                "field `inputRef` names s3://{}/{}, which is not JSON ({e}); the object must hold the input as JSON",
                input_ref.bucket, input_ref.key
            ))
        }))
    }
}
