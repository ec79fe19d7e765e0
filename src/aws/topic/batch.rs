//! Batched publishing: the events of concurrent messages as one
//! `PublishBatch`.
//!
//! Why: every answered message publishes one event, and one `Publish` per
//! event was the largest share of the daemon's calls. Events that arrive
//! within a few milliseconds (up to 10, the SNS limit, and 256 KiB in all)
//! go out together; an event alone still goes out as `Publish`. SNS
//! accepts or refuses each entry on its own: an entry refused for a
//! passing reason (throttling, an internal error) is sent again with
//! backoff, and each caller gets its own entry's outcome, so a message is
//! deleted only after its own event was accepted.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ErrorMetadata, ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::publish_batch::PublishBatchError;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use crate::aws::OnHeap;
use crate::events::MAX_EVENT_BYTES;

/// SNS's limit of entries per `PublishBatch`.
pub const MAX_ENTRIES: usize = 10;
/// SNS's limit of one `PublishBatch`'s messages and attributes in all.
pub const MAX_BATCH_BYTES: usize = MAX_EVENT_BYTES;
/// How long an event waits for company.
pub const LINGER: Duration = Duration::from_millis(5);
/// Calls made for an entry SNS keeps refusing for a passing reason.
pub const TRIES: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// One event for the topic, with everything it carries.
#[derive(Clone, Debug)]
pub struct Entry {
    pub body: String,
    /// String message attributes: the event's, and the trace context of
    /// the caller (read where the caller publishes, not in the batch).
    pub attributes: Vec<(String, String)>,
    /// For a FIFO topic: the message group and the de-duplication id.
    pub fifo: Option<(String, String)>,
}

impl Entry {
    /// What SNS counts against the batch's 256 KiB: the body and each
    /// attribute's name, type and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + "String".len() + v.len())
                .sum::<usize>()
    }
}

/// How an entry fared.
#[derive(Debug)]
pub enum Outcome {
    Accepted,
    /// Refused: SNS's code and message, and whether sending it again can
    /// help (not the sender's fault).
    Refused {
        code: String,
        message: String,
        passing: bool,
    },
}

/// Splits `entries` (in order) into runs of at most [`MAX_ENTRIES`] whose
/// sizes add up to at most [`MAX_BATCH_BYTES`]; an entry over it alone is a
/// run of its own (SNS says why).
pub fn runs(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_ENTRIES || total + size > MAX_BATCH_BYTES) {
            out.push(start..i);
            (start, total) = (i, 0);
        }
        total += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Sends `entries` with `send` (one `PublishBatch`, an outcome per entry
/// in order), sending again those refused for a passing reason, with
/// backoff. One result per entry: `Ok` once accepted, else the last
/// refusal's code and message. A failed call fails every entry not yet
/// accepted.
pub async fn send_all<F, Fut, E>(entries: &[Entry], send: F) -> Vec<Result<(), Refusal<E>>>
where
    F: Fn(Vec<Entry>) -> Fut,
    Fut: Future<Output = Result<Vec<Outcome>, E>>,
{
    let mut results: Vec<Option<Result<(), Refusal<E>>>> = entries.iter().map(|_| None).collect();
    let mut pending: Vec<usize> = (0..entries.len()).collect();
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=TRIES {
        let outcomes = match send(pending.iter().map(|&i| entries[i].clone()).collect()).await {
            Ok(o) => o,
            Err(e) => {
                let mut e = Some(e);
                for &i in &pending {
                    results[i] = Some(Err(match e.take() {
                        Some(e) => Refusal::Call(e),
                        None => Refusal::CallShared,
                    }));
                }
                break;
            }
        };
        let mut outcomes = outcomes.into_iter();
        let mut again = Vec::new();
        for &i in &pending {
            match outcomes.next() {
                Some(Outcome::Accepted) => results[i] = Some(Ok(())),
                Some(Outcome::Refused {
                    code,
                    message,
                    passing,
                }) => {
                    if passing && attempt < TRIES {
                        again.push(i);
                    } else {
                        results[i] = Some(Err(Refusal::Entry { code, message }));
                    }
                }
                None if attempt < TRIES => again.push(i),
                None => {
                    results[i] = Some(Err(Refusal::Entry {
                        code: "NoResult".into(),
                        message: "SNS answered nothing for this entry".into(),
                    }))
                }
            }
        }
        pending = again;
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    results
        .into_iter()
        .map(|r| r.expect("every entry has a result"))
        .collect()
}

/// Why an entry was not accepted.
#[derive(Debug)]
pub enum Refusal<E> {
    /// The call failed (the first entry it carried gets the error itself).
    Call(E),
    /// The same failed call, for the other entries it carried.
    CallShared,
    /// SNS refused this entry.
    Entry { code: String, message: String },
}

/// One `PublishBatch` of `entries`, an outcome per entry in order.
pub async fn publish_batch(
    client: &Client,
    arn: &str,
    entries: Vec<Entry>,
) -> Result<Vec<Outcome>, aws_sdk_sns::Error> {
    let n = entries.len();
    let request: Vec<PublishBatchRequestEntry> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut b = PublishBatchRequestEntry::builder()
                .id(i.to_string())
                .message(e.body);
            for (k, v) in e.attributes {
                b = b.message_attributes(k, attribute(&v));
            }
            if let Some((group, dedup)) = e.fifo {
                b = b.message_group_id(group).message_deduplication_id(dedup);
            }
            b.build().expect("id and message are set")
        })
        .collect();
    let out = client
        .publish_batch()
        .topic_arn(arn)
        .set_publish_batch_request_entries(Some(request))
        .send()
        .on_heap()
        .await?;
    let mut outcomes: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
    for ok in out.successful.unwrap_or_default() {
        if let Some(slot) = ok
            .id
            .and_then(|id| id.parse::<usize>().ok())
            .and_then(|i| outcomes.get_mut(i))
        {
            *slot = Some(Outcome::Accepted);
        }
    }
    for f in out.failed.unwrap_or_default() {
        if let Some(slot) = f.id.parse::<usize>().ok().and_then(|i| outcomes.get_mut(i)) {
            *slot = Some(Outcome::Refused {
                passing: !f.sender_fault,
                code: f.code,
                message: f.message.unwrap_or_default(),
            });
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(Outcome::Refused {
                code: "NoResult".into(),
                message: "SNS answered nothing for this entry".into(),
                passing: true,
            })
        })
        .collect())
}

/// A string message attribute.
pub fn attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type and value are set")
}

/// An SDK error for a refusal that came as data (a refused entry, or the
/// same failed call for another entry): SNS's code and message, rendered
/// as any other SNS error.
pub fn as_sdk_error(code: Option<&str>, message: &str) -> aws_sdk_sns::Error {
    let mut meta = ErrorMetadata::builder().message(message);
    if let Some(code) = code {
        meta = meta.code(code);
    }
    SdkError::<PublishBatchError, ()>::service_error(PublishBatchError::generic(meta.build()), ())
        .into()
}

/// A copy of a failed call's error for another entry it carried.
pub fn copy_of(err: &aws_sdk_sns::Error) -> aws_sdk_sns::Error {
    as_sdk_error(err.code(), &crate::aws::error_message(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn entry(body: &str) -> Entry {
        Entry {
            body: body.into(),
            attributes: vec![("event".into(), "ready".into())],
            fifo: None,
        }
    }

    #[test]
    fn runs_keep_to_ten_entries_and_256_kib() {
        assert_eq!(runs(&[1; 25]), [0..10, 10..20, 20..25]);
        let big = 100 * 1024;
        assert_eq!(runs(&[big, big, big, 10]), [0..2, 2..4]);
        // An entry over the limit on its own is sent alone.
        assert_eq!(runs(&[10, 300 * 1024, 10]), [0..1, 1..2, 2..3]);
        assert!(runs(&[]).is_empty());
    }

    /// An entry refused for a passing reason is sent again (alone); one
    /// refused as the sender's fault is not; each gets its own outcome.
    #[tokio::test]
    async fn passing_refusals_are_sent_again_and_each_entry_gets_its_outcome() {
        let entries = [entry("a"), entry("b"), entry("bad")];
        let sent = Mutex::new(Vec::new());
        let results = send_all(&entries, |batch: Vec<Entry>| {
            let round = {
                let mut sent = sent.lock().unwrap();
                sent.push(batch.iter().map(|e| e.body.clone()).collect::<Vec<_>>());
                sent.len()
            };
            async move {
                Ok::<_, ()>(
                    batch
                        .iter()
                        .map(|e| match (e.body.as_str(), round) {
                            ("b", 1) => Outcome::Refused {
                                code: "Throttling".into(),
                                message: "slow down".into(),
                                passing: true,
                            },
                            ("bad", _) => Outcome::Refused {
                                code: "InvalidParameter".into(),
                                message: "no".into(),
                                passing: false,
                            },
                            _ => Outcome::Accepted,
                        })
                        .collect(),
                )
            }
        })
        .await;
        assert_eq!(
            *sent.lock().unwrap(),
            [vec!["a", "b", "bad"], vec!["b"]],
            "only the throttled entry is sent again"
        );
        assert!(results[0].is_ok());
        assert!(results[1].is_ok(), "accepted on the second call");
        assert!(
            matches!(&results[2], Err(Refusal::Entry { code, .. }) if code == "InvalidParameter"),
            "{:?}",
            results[2]
        );
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_entry_it_carried() {
        let entries = [entry("a"), entry("b")];
        let results = send_all(&entries, |_| async { Err::<Vec<Outcome>, _>("down") }).await;
        assert!(matches!(results[0], Err(Refusal::Call("down"))));
        assert!(matches!(results[1], Err(Refusal::CallShared)));
    }

    #[tokio::test]
    async fn an_entry_refused_every_time_fails_after_its_tries() {
        let calls = Mutex::new(0);
        let results = send_all(&[entry("a")], |batch: Vec<Entry>| {
            *calls.lock().unwrap() += 1;
            async move {
                Ok::<_, ()>(
                    batch
                        .iter()
                        .map(|_| Outcome::Refused {
                            code: "InternalError".into(),
                            message: "oops".into(),
                            passing: true,
                        })
                        .collect(),
                )
            }
        })
        .await;
        assert_eq!(*calls.lock().unwrap(), TRIES);
        assert!(matches!(&results[0], Err(Refusal::Entry { code, .. }) if code == "InternalError"));
    }

    #[test]
    fn a_refusal_reads_as_an_sns_error_with_its_code() {
        let e = as_sdk_error(Some("InvalidParameter"), "no group");
        assert_eq!(e.code(), Some("InvalidParameter"));
        let copy = copy_of(&e);
        assert_eq!(copy.code(), Some("InvalidParameter"));
        assert!(crate::aws::error_message(&copy).contains("no group"));
    }
}
