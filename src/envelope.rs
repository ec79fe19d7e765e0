//! Every form a queue message body can take, told apart in one place: a
//! native message (`crate::message`), the same wrapped in an SNS
//! notification (SNS → SQS without raw delivery; its `MessageAttributes`
//! travel on, e.g. `traceparent`), or DynamoDB Stream records mapped by the
//! configured rules (`crate::streams`). Native decoding and the stream
//! rules each know only their own form; this module knows them all, so
//! neither imports the other.

use serde_json::{Map, Value as Json};

use crate::message::{BadMessage, MAX_BODY_BYTES, Message, Native, Schedule, Schema, bad};
use crate::streams::{Rules, StreamTriggers, is_stream};

/// Every form a queue message can take.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// A native message about one item.
    Message(Message),
    /// `{"v":1,"type":"trigger","dependency":"product#A"}`: reset every
    /// cache that depends on the entity.
    Dependency(String),
    /// DynamoDB Stream records, mapped by the configured rules.
    Stream(StreamTriggers),
}

/// A decoded body and the message attributes of the envelope it came in
/// (an SNS notification's `MessageAttributes`, e.g. `traceparent`).
#[derive(Debug, PartialEq)]
pub struct Envelope {
    pub decoded: Decoded,
    pub attributes: Vec<(String, String)>,
    /// A scheduled trigger's `at` or `delay` (`crate::message::Schedule`).
    pub schedule: Option<Schedule>,
}

impl Schema {
    /// Decodes a native message body (unwrapping an SNS notification).
    pub fn decode(&self, body: &str) -> Result<Message, BadMessage> {
        match self.decode_any(body, &Rules::default())?.decoded {
            Decoded::Message(m) => Ok(m),
            Decoded::Dependency(_) => Err(bad("a dependency trigger names no item")),
            Decoded::Stream(_) => Err(bad("a stream record is not a native message")),
        }
    }

    /// Decodes any body: a native message, an SNS notification wrapping
    /// one, or DynamoDB Stream records (mapped by `rules`).
    pub fn decode_any(&self, body: &str, rules: &Rules) -> Result<Envelope, BadMessage> {
        if body.len() > MAX_BODY_BYTES {
            return Err(bad(format!(
                "body is {} bytes, over the limit of {MAX_BODY_BYTES}",
                body.len()
            )));
        }
        let json: Json =
            serde_json::from_str(body).map_err(|e| bad(format!("body is not JSON: {e}")))?;
        if let Json::Object(obj) = &json
            && let Some(inner) = sns_message(obj)
        {
            let mut env = self.decode_any(inner, rules)?;
            env.attributes.extend(sns_attributes(obj));
            return Ok(env);
        }
        if is_stream(&json) {
            if rules.is_empty() {
                return Err(bad(
                    "a DynamoDB Stream record arrived but no [[streams]] rules are configured",
                ));
            }
            let triggers = rules.map(&json)?;
            return Ok(Envelope {
                decoded: Decoded::Stream(triggers),
                attributes: vec![],
                schedule: None,
            });
        }
        let Json::Object(obj) = json else {
            return Err(bad("body is not a JSON object"));
        };
        let (native, schedule) = self.decode_scheduled(&obj)?;
        let decoded = match native {
            Native::Message(m) => Decoded::Message(m),
            Native::Dependency(entity) => Decoded::Dependency(entity),
        };
        Ok(Envelope {
            decoded,
            attributes: vec![],
            schedule,
        })
    }
}

/// The inner message of an SNS notification envelope, if `obj` is one.
fn sns_message(obj: &Map<String, Json>) -> Option<&str> {
    if obj.get("Type").and_then(Json::as_str) == Some("Notification")
        && obj.contains_key("TopicArn")
    {
        obj.get("Message").and_then(Json::as_str)
    } else {
        None
    }
}

/// An SNS notification's message attributes as name/value pairs.
fn sns_attributes(obj: &Map<String, Json>) -> Vec<(String, String)> {
    obj.get("MessageAttributes")
        .and_then(Json::as_object)
        .map(|attrs| {
            attrs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.get("Value")?.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
