//! `dlq list`: what is in the dead-letter queue, and why, without taking
//! it out. The queue's calls are in [`crate::aws::dlq`]; `dlq redrive` is
//! in [`super::redrive`].

use std::collections::HashSet;

use super::show;
use crate::aws::Clients;
use crate::aws::queue::{ATTR_ERROR, ATTR_SOURCE_ID};
use crate::config::Config;

pub use crate::aws::dlq::{DeadLetter, Dlq};

/// How long `dlq list` hides the messages it reads before releasing them.
const LIST_HIDE_SECS: i32 = 30;

/// `dlq list`: up to `limit` dead-lettered messages with their reasons.
/// They stay in the DLQ, visible again at once. Bodies and reasons that
/// are JSON are printed as JSON.
pub async fn dlq_list(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    limit: usize,
) -> anyhow::Result<()> {
    let dlq = Clients::new(sdk).dlq(&cfg.sqs.dlq_url);
    let mut seen = HashSet::new();
    let mut msgs = Vec::new();
    let mut receipts = Vec::new();
    // Stop after two receives that brought nothing new: the queue is
    // empty, or what we hid became visible again during a long listing.
    let mut idle = 0;
    let mut failure = None;
    while msgs.len() < limit && idle < 2 {
        let got = match dlq.receive(limit - msgs.len(), LIST_HIDE_SECS).await {
            Ok(got) => got,
            Err(e) => {
                failure = Some(anyhow::Error::from(e));
                break;
            }
        };
        idle += 1;
        for m in got {
            receipts.push(m.receipt.clone());
            if seen.insert(m.message_id.clone()) {
                idle = 0;
                msgs.push(m);
            }
        }
    }
    let stuck = dlq.release(receipts).await;
    if stuck > 0 {
        eprintln!(
            "warning: {stuck} listed message(s) stay hidden for up to {LIST_HIDE_SECS}s before they are visible again"
        );
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if msgs.is_empty() {
        println!("the dead-letter queue is empty");
        return Ok(());
    }
    for m in &msgs {
        println!("{}", entry(m));
    }
    eprintln!("{} message(s)", msgs.len());
    Ok(())
}

/// One message of `dlq list`: who it was, why it was dead-lettered, what
/// it said.
fn entry(m: &DeadLetter) -> String {
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    format!(
        "MessageId {}  sourceMessageId {}  deadLetterKind {}\n  error: {}\n  body:  {}\n",
        m.message_id,
        or_dash(m.attr(ATTR_SOURCE_ID)),
        or_dash(m.kind()),
        m.attr(ATTR_ERROR).map(show::readable).unwrap_or_else(|| {
            "- (none: moved by the queue's redrive policy, or too large to carry a reason)".into()
        }),
        show::readable(&m.body),
    )
}
