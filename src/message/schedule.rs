//! `"at"` and `"delay"` on a trigger (`trigger`, `trigger_start`,
//! `trigger_end`, a dependency trigger): when it takes effect (DESIGN §9).
//! Read before the form of the message, which then never sees them, so
//! that the forms keep exactly their own fields; on a `request` they are
//! fields that do not belong.

use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::{BadMessage, bad, short};

/// When a scheduled trigger takes effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Due {
    /// At this time (epoch millis).
    At(i64),
    /// This long after the message was first sent.
    Delay(Duration),
}

/// A scheduled trigger: when it is due, and its body without `at` and
/// `delay` (what is sent again, with `at`, while it is not due).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub due: Due,
    pub body: Map<String, Json>,
}

impl Schedule {
    /// The time it is due, for a message first sent at `sent_at` (epoch
    /// millis).
    pub fn at(&self, sent_at: i64) -> i64 {
        match self.due {
            Due::At(at) => at,
            Due::Delay(d) => sent_at.saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
        }
    }

    /// The body of the copy that is sent again: the same message, due at
    /// `at` (absolute, so that every copy agrees).
    pub fn resend_body(&self, at: i64) -> String {
        let mut body = self.body.clone();
        body.insert("at".into(), Json::String(rfc3339(at)));
        Json::Object(body).to_string()
    }
}

/// An epoch-millis time as RFC 3339 in UTC.
pub fn rfc3339(at: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(at.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The schedule of a native message, if it has one; then the object
/// without it.
pub(super) fn take(obj: &Map<String, Json>) -> Result<Option<Schedule>, BadMessage> {
    let (at, delay) = (obj.get("at"), obj.get("delay"));
    let due = match (at, delay) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(bad(
                "fields `at` and `delay` exclude each other: give the time (`at`) or the wait (`delay`)",
            ));
        }
        (Some(at), None) => Due::At(parse_at(at)?),
        (None, Some(delay)) => Due::Delay(parse_delay(delay)?),
    };
    let mut body = obj.clone();
    body.remove("at");
    body.remove("delay");
    Ok(Some(Schedule { due, body }))
}

fn parse_at(at: &Json) -> Result<i64, BadMessage> {
    let expected = "an RFC 3339 time in UTC, like \"2026-12-24T00:00:00Z\"";
    let Json::String(text) = at else {
        return Err(bad(format!(
            "field `at` is {}, expected {expected}",
            short(at)
        )));
    };
    let t = humantime::parse_rfc3339(text).map_err(|e| {
        bad(format!(
            "field `at` is {}: {e}; expected {expected}",
            short(at)
        ))
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad(format!("field `at` is before 1970; expected {expected}")))?
        .as_millis();
    Ok(ms.min(i64::MAX as u128) as i64)
}

fn parse_delay(delay: &Json) -> Result<Duration, BadMessage> {
    let expected = "a duration like \"90s\", \"15m\" or \"2h\"";
    let Json::String(text) = delay else {
        return Err(bad(format!(
            "field `delay` is {}, expected {expected}",
            short(delay)
        )));
    };
    humantime::parse_duration(text).map_err(|e| {
        bad(format!(
            "field `delay` is {}: {e}; expected {expected}",
            short(delay)
        ))
    })
}
