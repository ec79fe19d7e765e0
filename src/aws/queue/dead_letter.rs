//! What a dead-lettered copy carries within SQS's size limit: the reason
//! and the message's own attributes, next to a body of any size. Kept apart
//! from the calls because it is pure arithmetic on SQS's limits.

use std::collections::HashMap;

use aws_sdk_sqs::types::MessageAttributeValue;

use super::{ATTR_ERROR, ATTR_KIND, ATTR_SOURCE_ID};

/// SQS's limit on a message: body plus every attribute's name, data type
/// and value.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

fn string_attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .expect("data type is set")
}

/// What a message attribute counts towards SQS's size limit.
pub fn attr_size(name: &str, v: &MessageAttributeValue) -> usize {
    name.len()
        + v.data_type().len()
        + v.string_value().map_or(0, str::len)
        + v.binary_value().map_or(0, |b| b.as_ref().len())
}

/// The attributes of a dead-lettered copy, within SQS's size limit next to
/// a body of `body_len` bytes: `deadLetterKind` and `sourceMessageId` first, then
/// the reason (cut to fit, at most 4000 characters), then up to 7 of the
/// message's own attributes that still fit. Empty when not even the first
/// two fit.
pub fn dlq_attributes(
    body_len: usize,
    kind: &str,
    reason: &str,
    source_id: &str,
    carried: Vec<(String, MessageAttributeValue)>,
) -> HashMap<String, MessageAttributeValue> {
    let mut room = MAX_MESSAGE_BYTES.saturating_sub(body_len);
    let mut out = HashMap::new();
    for (name, value) in [(ATTR_KIND, kind), (ATTR_SOURCE_ID, source_id)] {
        let v = string_attr(value);
        let size = attr_size(name, &v);
        if size > room {
            return HashMap::new();
        }
        room -= size;
        out.insert(name.to_owned(), v);
    }
    let fixed = ATTR_ERROR.len() + "String".len();
    if room > fixed {
        let mut cut = String::new();
        for c in reason.chars().take(4000) {
            if fixed + cut.len() + c.len_utf8() > room {
                break;
            }
            cut.push(c);
        }
        if !cut.is_empty() {
            let v = string_attr(&cut);
            room -= attr_size(ATTR_ERROR, &v);
            out.insert(ATTR_ERROR.to_owned(), v);
        }
    }
    for (name, v) in carried.into_iter().take(7) {
        let size = attr_size(&name, &v);
        if size <= room {
            room -= size;
            out.insert(name, v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(body: usize, attrs: &HashMap<String, MessageAttributeValue>) -> usize {
        body + attrs.iter().map(|(k, v)| attr_size(k, v)).sum::<usize>()
    }

    #[test]
    fn the_reason_and_attributes_fit_next_to_any_body() {
        let reason = "x".repeat(5000);
        let carried = vec![("traceparent".to_string(), string_attr(&"t".repeat(55)))];
        // A small body: everything, the reason cut to 4000 characters.
        let a = dlq_attributes(100, "malformed", &reason, "mid-1", carried.clone());
        assert_eq!(a[ATTR_ERROR].string_value().unwrap().len(), 4000);
        assert!(a.contains_key("traceparent") && a.contains_key(ATTR_SOURCE_ID));
        // Bodies near the limit: whatever fits, never over it.
        for body in [250 * 1024, MAX_MESSAGE_BYTES - 200, MAX_MESSAGE_BYTES - 40] {
            let a = dlq_attributes(body, "malformed", &reason, "mid-1", carried.clone());
            assert!(
                total(body, &a) <= MAX_MESSAGE_BYTES,
                "{body}: {}",
                total(body, &a)
            );
            assert_eq!(
                a.contains_key(ATTR_KIND),
                body < MAX_MESSAGE_BYTES - 50,
                "{body}"
            );
        }
        let a = dlq_attributes(
            MAX_MESSAGE_BYTES - 200,
            "malformed",
            &reason,
            "mid-1",
            vec![],
        );
        assert!(
            !a[ATTR_ERROR].string_value().unwrap().is_empty(),
            "a cut reason"
        );
        // No room at all: no attributes (the body is kept whole).
        assert!(
            dlq_attributes(MAX_MESSAGE_BYTES, "malformed", &reason, "mid-1", vec![]).is_empty()
        );
    }
}
