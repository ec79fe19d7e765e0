//! Large values (issue 14): the S3 bucket values are offloaded to
//! (`[s3]`), the per-set compression, and sizes written as text
//! (`offload_over = "300KB"`), parsed strictly.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// `[s3]`: where values larger than `offload_over` go, and where producers
/// may leave inputs too large for a message (`inputRef`). Unset bucket =
/// no offload.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The bucket; the daemon reads and writes nothing outside it.
    pub bucket: String,
    /// The key prefix inside the bucket, e.g. `triggered-cache/`; the
    /// daemon reads and writes only keys that start with it.
    pub prefix: String,
    /// The default threshold of every set: a value (after compression)
    /// larger than this is offloaded. Unset = only sets with their own.
    pub offload_over: Option<Size>,
    /// When set, an event that carries a `valueRef` carries a presigned GET
    /// URL valid this long too (at most 7 days).
    #[serde(with = "humantime_serde")]
    pub presign_expiry: Option<Duration>,
}

/// How a set's value is compressed in its item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd, stored as a binary attribute when that is smaller.
    Zstd,
}

/// A size in bytes, written as a whole number of bytes or as text with a
/// unit: `B`, `KB` (1000), `MB`, `KiB` (1024), `MiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub fn bytes(self) -> u64 {
        self.0
    }

    pub fn parse(text: &str) -> Result<Size, String> {
        let t = text.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        let unit = unit.trim_start();
        let factor = match unit {
            "" | "B" => 1,
            "KB" => 1000,
            "MB" => 1000 * 1000,
            "KiB" => 1024,
            "MiB" => 1024 * 1024,
            _ => 0,
        };
        match number.parse::<u64>() {
            Ok(n) if factor > 0 && n > 0 => n
                .checked_mul(factor)
                .map(Size)
                .ok_or_else(|| format!("{text:?} is too large")),
            _ => Err(format!(
                "{text:?} is not a size; write a whole number above 0 with a unit: B, KB, MB, KiB or MiB, e.g. \"300KB\""
            )),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"300KB\"")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Size, E> {
                Size::parse(&n.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                Size::parse(&n.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                Size::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl super::Config {
    /// What serde cannot check of the large-value keys: an offload needs a
    /// bucket, the prefix is a folder, the sizes and expiry are in range.
    pub(super) fn validate_values(&self, issues: &mut Vec<super::ConfigIssue>) {
        let mut bad =
            |key: &str, problem: String| issues.push(super::ConfigIssue::key(key, problem));
        let s3 = &self.s3;
        let mut offloads: Vec<String> = self
            .sets
            .iter()
            .filter(|(_, set)| set.offload_over.is_some())
            .map(|(name, _)| format!("sets.{name}.offload_over"))
            .collect();
        if s3.offload_over.is_some() {
            offloads.push("s3.offload_over".into());
        }
        if s3.bucket.trim().is_empty() {
            for key in &offloads {
                bad(key, "needs s3.bucket: set [s3] bucket (and prefix) to the bucket values are offloaded to".into());
            }
            if s3.presign_expiry.is_some() {
                bad("s3.presign_expiry", "needs s3.bucket".into());
            }
        } else {
            if !s3.prefix.is_empty() && !s3.prefix.ends_with('/') {
                bad(
                    "s3.prefix",
                    format!(
                        "is {:?}, must end with '/' (a folder), e.g. \"triggered-cache/\"",
                        s3.prefix
                    ),
                );
            }
            if s3.prefix.starts_with('/') {
                bad("s3.prefix", "must not start with '/'".into());
            }
        }
        if let Some(expiry) = s3.presign_expiry
            && (expiry < Duration::from_secs(1) || expiry > Duration::from_secs(7 * 24 * 3600))
        {
            bad(
                "s3.presign_expiry",
                "must be 1s to 7 days (S3's longest presigned URL)".into(),
            );
        }
        let max = self.sns.max_message_bytes;
        if !(1024..=1024 * 1024).contains(&max) {
            bad(
                "sns.max_message_bytes",
                format!(
                    "is {max}, must be 1024 to 1048576 (SNS's largest message, 1 MiB, with the topic's MaximumMessageSize raised)"
                ),
            );
        }
    }
}

/// SNS's default largest message; topics with `MaximumMessageSize` raised
/// (and SQS queues) accept up to 1 MiB.
pub fn default_max_message_bytes() -> u32 {
    256 * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::fixture::load;

    #[test]
    fn three_lines_offload_a_set_and_compression_is_per_set() {
        let cfg = load(
            "compress = \"zstd\"\n[s3]\nbucket = \"b\"\nprefix = \"tc/\"\noffload_over = \"300KB\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.offload_over("invoice"), Some(300_000));
        assert!(cfg.compresses("invoice"));
        assert_eq!(cfg.sns.max_message_bytes, 262_144);
        // From the environment, a set's own threshold wins.
        let cfg = load(
            "[s3]\nbucket = \"b\"\n",
            &[("TRIGGERED_CACHE__SETS__INVOICE__OFFLOAD_OVER", "1MiB")],
        )
        .unwrap();
        assert_eq!(cfg.offload_over("invoice"), Some(1 << 20));
        // No bucket, no offload.
        assert_eq!(load("", &[]).unwrap().offload_over("invoice"), None);
    }

    #[test]
    fn bad_values_name_the_full_key() {
        for (extra, env, key, says) in [
            (
                "offload_over = \"300kb\"\n",
                None,
                "sets.invoice.offload_over",
                "B, KB, MB, KiB or MiB",
            ),
            (
                "compress = \"gzip\"\n",
                None,
                "sets.invoice.compress",
                "zstd",
            ),
            (
                "offload_over = \"1MB\"\n",
                None,
                "sets.invoice.offload_over",
                "needs s3.bucket",
            ),
            (
                "[s3]\nbucket = \"b\"\nprefix = \"tc\"\n",
                None,
                "s3.prefix",
                "must end with '/'",
            ),
            (
                "",
                Some(("TRIGGERED_CACHE__SNS__MAX_MESSAGE_BYTES", "2000000")),
                "sns.max_message_bytes",
                "1048576",
            ),
            (
                "[s3]\nbucket = \"b\"\npresign_expiry = \"30d\"\n",
                None,
                "s3.presign_expiry",
                "7 days",
            ),
        ] {
            let env: Vec<(&str, &str)> = env.into_iter().collect();
            let e = load(extra, &env).unwrap_err();
            assert!(e.contains(key) && e.contains(says), "{extra:?}: {e}");
        }
    }

    #[test]
    fn sizes_parse_strictly() {
        assert_eq!(Size::parse("300KB"), Ok(Size(300_000)));
        assert_eq!(Size::parse("1 MiB"), Ok(Size(1 << 20)));
        assert_eq!(Size::parse("512"), Ok(Size(512)));
        assert_eq!(Size::parse("4KiB"), Ok(Size(4096)));
        for bad in ["", "0KB", "300kb", "1.5MB", "-1KB", "300 KBs", "KB", "1GB"] {
            let e = Size::parse(bad).unwrap_err();
            assert!(e.contains("B, KB, MB, KiB or MiB"), "{bad}: {e}");
        }
    }
}
