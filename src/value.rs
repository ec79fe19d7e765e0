//! How a cached value is stored: inline in its item (as a native DynamoDB
//! value, or zstd-compressed as a binary attribute), or offloaded to S3
//! behind a small pointer, the `valueRef`.
//!
//! Why here and not in the state machine: the state machine decides *that*
//! a value is committed, fenced by owner and epoch; how its bytes are laid
//! out is the table adapter's (compression) and the executor's (the upload
//! before the commit) business. Everything that reads a value back
//! ([`decode`], [`crate::item::Attrs::cache`]) sees the same JSON whichever
//! way it was stored, so processors, events, `inspect` and `show` never
//! know.
//!
//! An offloaded object holds the value's JSON text, uncompressed, so that
//! a consumer holding a `valueRef` (or a presigned URL) reads plain JSON
//! and checks it against `sha256`. Its key is derived from what the value
//! is about, `{prefix}{table}/{key hash}/{set}/{epoch}/{request id hash}`:
//! a run writes its own key only, a redelivery of the same run overwrites
//! the same object, and the objects of one cache set share a prefix that
//! the cleanup after a commit lists.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::item::{Key, av_size, to_av, to_json};

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// zstd's level: its default, a good ratio at hundreds of MB/s.
const LEVEL: i32 = 3;
/// The most a stored compressed value may expand to (a corrupt or hostile
/// attribute must not exhaust memory).
const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// The attribute a value is stored as: compressed when `compress` is on
/// and that makes it smaller, else the native form.
pub fn encode(value: &Json, compress: bool) -> AttributeValue {
    let native = to_av(value);
    if !compress {
        return native;
    }
    let text = serde_json::to_vec(value).expect("JSON values serialize");
    match zstd::bulk::compress(&text, LEVEL) {
        Ok(z) if z.len() < av_size(&native) => AttributeValue::B(z.into()),
        _ => native,
    }
}

/// The value a stored attribute holds: a compressed one decompressed,
/// anything else as [`to_json`] reads it.
pub fn decode(av: &AttributeValue) -> Json {
    if let AttributeValue::B(b) = av
        && b.as_ref().starts_with(&ZSTD_MAGIC)
        && let Ok(text) = zstd::bulk::decompress(b.as_ref(), MAX_DECOMPRESSED)
        && let Ok(json) = serde_json::from_slice(&text)
    {
        return json;
    }
    to_json(av)
}

/// An object in S3: a `valueRef` (with `size` and `sha256`) or an
/// `inputRef` (bucket and key only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl ObjectRef {
    /// The pointer to `body` stored under `bucket`/`key`.
    pub fn to(bucket: &str, key: &str, body: &[u8]) -> ObjectRef {
        ObjectRef {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: Some(body.len() as u64),
            sha256: Some(sha256_hex(body)),
        }
    }

    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).expect("a reference serializes")
    }

    /// Reads a stored pointer; `None` for anything else.
    pub fn from_json(json: &Json) -> Option<ObjectRef> {
        serde_json::from_value(json.clone()).ok()
    }

    /// Whether `body` is what this pointer says (size and digest).
    pub fn matches(&self, body: &[u8]) -> bool {
        self.size.is_none_or(|s| s == body.len() as u64)
            && self.sha256.as_deref().is_none_or(|d| d == sha256_hex(body))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The prefix of every object of one cache set of one item.
pub fn set_prefix(prefix: &str, table: &str, key: &Key, set: &str) -> String {
    let key_hash = &sha256_hex(key.to_string().as_bytes())[..32];
    format!("{prefix}{table}/{key_hash}/{set}/")
}

/// The key of the object of the run of `rid` at `epoch`.
pub fn object_key(
    prefix: &str,
    table: &str,
    key: &Key,
    set: &str,
    epoch: i64,
    rid: &str,
) -> String {
    let rid_hash = &sha256_hex(rid.as_bytes())[..32];
    format!(
        "{}{epoch}/{rid_hash}.json",
        set_prefix(prefix, table, key, set)
    )
}

/// The epoch an object key of [`object_key`]'s form was written for.
pub fn epoch_of(set_prefix: &str, object_key: &str) -> Option<i64> {
    object_key
        .strip_prefix(set_prefix)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::KeyValue;
    use serde_json::json;

    #[test]
    fn compression_is_used_only_when_it_is_smaller_and_round_trips() {
        let big = json!({"rows": (0..2000).map(|i| json!({"id": i, "name": "same text"})).collect::<Vec<_>>()});
        let av = encode(&big, true);
        assert!(matches!(av, AttributeValue::B(_)), "compressible: binary");
        assert!(av_size(&av) * 5 < av_size(&to_av(&big)));
        assert_eq!(decode(&av), big);
        let small = json!({"x": 1});
        assert_eq!(encode(&small, true), to_av(&small), "not smaller: native");
        assert_eq!(encode(&big, false), to_av(&big), "off: native");
        // A binary attribute that is not ours reads as before (base64).
        let other = AttributeValue::B(b"hi".to_vec().into());
        assert_eq!(decode(&other), json!("aGk="));
    }

    #[test]
    fn object_keys_name_the_set_epoch_and_run_and_pointers_check_bytes() {
        let key = Key(vec![("pk".into(), KeyValue::S("a/b".into()))]);
        let k = object_key("tc/", "t", &key, "pdf", 7, "r/1");
        let p = set_prefix("tc/", "t", &key, "pdf");
        assert!(k.starts_with(&p) && k.ends_with(".json"), "{k}");
        assert_eq!(epoch_of(&p, &k), Some(7));
        assert_ne!(k, object_key("tc/", "t", &key, "pdf", 7, "r/2"));
        let r = ObjectRef::to("b", &k, b"{}");
        assert!(r.matches(b"{}") && !r.matches(b"[]"));
        assert_eq!(ObjectRef::from_json(&r.to_json()), Some(r));
        assert_eq!(ObjectRef::from_json(&json!({"x": 1})), None);
    }
}
