//! `dlq redrive`: moves the messages that were in the dead-letter queue
//! when it started back to the request queue, then stops and says what it
//! moved.
//!
//! Why it stops although a running daemon keeps dead-lettering: a message
//! that fails again (a malformed one always does) comes back to the DLQ as
//! a new message with a new MessageId. The daemon's copy carries the
//! `sourceMessageId` it had on the request queue, and a message SQS moved
//! itself (redrive policy) keeps that MessageId; the redrive remembers the
//! MessageId each send returned, so it recognises both and leaves them
//! there. It also stops
//! - after as many messages as the DLQ held at the start
//!   (`ApproximateNumberOfMessages`), and at `--limit`;
//! - after two receives that brought nothing it had not seen.
//!
//! Messages it receives but does not move (skipped, came back, over the
//! limit) stay hidden while it runs, so that it does not receive them
//! again, and are made visible again at once when it stops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use aws_sdk_sqs::types::MessageAttributeValue;

use super::dlq::{DeadLetter, Dlq};
use crate::aws::Clients;
use crate::aws::queue::{
    ATTR_SOURCE_ID, DEAD_LETTER_ATTRS, MAX_MESSAGE_BYTES, Outgoing, Sender, attr_size,
};
use crate::config::Config;

/// How long a redrive hides the messages it received: a redrive that dies
/// leaves them hidden at most this long.
const HIDE_SECS: i32 = 120;

/// What a redrive may move.
#[derive(Clone, Copy, Debug)]
pub struct Redrive {
    /// At most this many messages.
    pub limit: usize,
    /// Leave `malformed` messages in the DLQ: sent back, they would only be
    /// dead-lettered again.
    pub skip_malformed: bool,
}

/// What a redrive did.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub queue_url: String,
    /// `ApproximateNumberOfMessages` of the DLQ at the start.
    pub at_start: u64,
    /// Messages moved, by dead-letter kind (`-` for none).
    pub moved: BTreeMap<String, usize>,
    /// `malformed` messages left in the DLQ (`--skip-malformed`).
    pub skipped_malformed: usize,
    /// Moved messages that were dead-lettered again during the redrive
    /// and left there.
    pub came_back: usize,
    /// Set when the redrive stopped at `--limit`.
    pub stopped_at_limit: Option<usize>,
}

impl Report {
    pub fn moved_total(&self) -> usize {
        self.moved.values().sum()
    }

    /// Messages of the start that are dealt with: moved or skipped.
    fn handled(&self) -> usize {
        self.moved_total() + self.skipped_malformed
    }
}

fn messages(n: usize) -> String {
    format!("{n} message{}", if n == 1 { "" } else { "s" })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at_start == 0 && self.moved.is_empty() {
            return write!(f, "the dead-letter queue is empty; nothing to move");
        }
        write!(f, "moved {}", messages(self.moved_total()))?;
        if !self.moved.is_empty() {
            let kinds: Vec<String> = self
                .moved
                .iter()
                .map(|(kind, n)| match kind.as_str() {
                    "-" => format!("{n} without deadLetterKind"),
                    kind => format!("{n} {kind}"),
                })
                .collect();
            write!(f, " ({})", kinds.join(", "))?;
        }
        write!(f, " to {}", self.queue_url)?;
        if self.skipped_malformed > 0 {
            let n = self.skipped_malformed;
            write!(
                f,
                "\nskipped {n} malformed message{}: left in the dead-letter queue (sent back, a malformed message is only dead-lettered again)",
                if n == 1 { "" } else { "s" }
            )?;
        }
        if self.came_back > 0 {
            write!(
                f,
                "\n{} came back to the dead-letter queue during the redrive (dead-lettered again) and {} left there",
                messages(self.came_back),
                if self.came_back == 1 { "was" } else { "were" }
            )?;
        }
        if let Some(limit) = self.stopped_at_limit {
            write!(
                f,
                "\nstopped at --limit {limit}; the dead-letter queue held about {} at the start",
                messages(self.at_start as usize)
            )?;
        }
        Ok(())
    }
}

/// What to do with a received message.
#[derive(Debug, PartialEq)]
enum Verdict {
    Move,
    Skip,
    /// A message this redrive moved, dead-lettered again.
    CameBack,
    /// Received before in this redrive (its hiding ran out).
    Again,
}

/// The redrive's memory: the DLQ messages it received and the MessageIds
/// its sends got on the request queue.
#[derive(Debug, Default)]
struct Ledger {
    seen: HashSet<String>,
    sent: HashSet<String>,
}

impl Ledger {
    fn verdict(&mut self, m: &DeadLetter, skip_malformed: bool) -> Verdict {
        if !self.seen.insert(m.message_id.clone()) {
            return Verdict::Again;
        }
        let source = m.attr(ATTR_SOURCE_ID);
        if self.sent.contains(&m.message_id) || source.is_some_and(|s| self.sent.contains(s)) {
            return Verdict::CameBack;
        }
        if skip_malformed && m.kind() == Some("malformed") {
            return Verdict::Skip;
        }
        Verdict::Move
    }
}

/// `dlq redrive`: see the module documentation. Messages are deleted from
/// the DLQ only after they were sent to the request queue.
pub async fn dlq_redrive(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    opts: Redrive,
) -> anyhow::Result<Report> {
    let clients = Clients::new(sdk);
    let dlq = clients.dlq(&cfg.sqs.dlq_url);
    let at_start = dlq.depth().await?;
    let mut run = Run {
        queue_url: cfg.sqs.queue_url.clone(),
        opts,
        ledger: Ledger::default(),
        held: HashMap::new(),
        report: Report {
            queue_url: cfg.sqs.queue_url.clone(),
            at_start,
            ..Report::default()
        },
        bar: super::progress(at_start.min(opts.limit as u64), "re-driving"),
        dlq,
        queue: clients.sender(&cfg.sqs.queue_url),
    };
    let result = run.sweep().await;
    run.bar.finish_and_clear();
    let stuck = run.dlq.release(run.held.into_values().collect()).await;
    if stuck > 0 {
        eprintln!(
            "warning: {stuck} message(s) left in the dead-letter queue stay hidden for up to {HIDE_SECS}s before they are visible again"
        );
    }
    match result {
        Ok(()) => Ok(run.report),
        Err(e) => Err(e.context(format!("redrive stopped; so far: {}", run.report))),
    }
}

struct Run {
    dlq: Dlq,
    /// The request queue.
    queue: Sender,
    queue_url: String,
    opts: Redrive,
    ledger: Ledger,
    /// Received messages not moved, by MessageId: their latest receipt.
    held: HashMap<String, String>,
    report: Report,
    bar: indicatif::ProgressBar,
}

impl Run {
    async fn sweep(&mut self) -> anyhow::Result<()> {
        let at_start = self.report.at_start as usize;
        let mut idle = 0;
        while idle < 2 && self.report.handled() < at_start {
            let moved = self.report.moved_total();
            if moved >= self.opts.limit {
                self.report.stopped_at_limit = Some(self.opts.limit);
                break;
            }
            let want = (at_start - self.report.handled()).min(self.opts.limit - moved);
            let got = self.dlq.receive(want, HIDE_SECS).await?;
            idle += 1;
            let mut batch = Vec::new();
            for m in got {
                let room = self.report.handled() + batch.len() < at_start;
                match self.ledger.verdict(&m, self.opts.skip_malformed) {
                    Verdict::Move if room && moved + batch.len() < self.opts.limit => {
                        idle = 0;
                        batch.push(m);
                        continue;
                    }
                    Verdict::Skip if room => {
                        idle = 0;
                        self.report.skipped_malformed += 1;
                        self.bar.inc(1);
                    }
                    Verdict::CameBack => self.report.came_back += 1,
                    _ => {}
                }
                self.held.insert(m.message_id, m.receipt);
            }
            self.send(batch).await?;
        }
        Ok(())
    }

    /// Sends messages to the request queue without the reason attributes,
    /// in batches within SQS's size limit, and deletes from the DLQ those
    /// that were sent.
    async fn send(&mut self, batch: Vec<DeadLetter>) -> anyhow::Result<()> {
        for chunk in by_size(batch) {
            let msgs = chunk
                .iter()
                .map(|m| Outgoing {
                    body: as_retry(&m.body),
                    attributes: carried(m),
                })
                .collect();
            let results = match self.queue.send_batch(msgs).await {
                Ok(results) => results,
                Err(e) => {
                    self.hold(&chunk);
                    return Err(e.into());
                }
            };
            let mut receipts = Vec::new();
            let mut failed = Vec::new();
            let mut first_failure = None;
            for (m, result) in chunk.iter().zip(results) {
                match result {
                    Ok(message_id) => {
                        self.ledger.sent.insert(message_id);
                        receipts.push(m.receipt.clone());
                        *self
                            .report
                            .moved
                            .entry(m.kind().unwrap_or("-").to_owned())
                            .or_insert(0) += 1;
                        self.bar.inc(1);
                    }
                    Err(why) => {
                        first_failure.get_or_insert(why);
                        failed.push(m.clone());
                    }
                }
            }
            self.hold(&failed);
            self.dlq.delete(&receipts).await.map_err(|e| {
                anyhow::Error::from(e).context("sent to the request queue but not deleted from the dead-letter queue: a later redrive would send them again")
            })?;
            if let Some(why) = first_failure {
                anyhow::bail!(
                    "sending {} to {}: {why}",
                    messages(failed.len()),
                    self.queue_url,
                );
            }
        }
        Ok(())
    }

    fn hold(&mut self, msgs: &[DeadLetter]) {
        for m in msgs {
            self.held.insert(m.message_id.clone(), m.receipt.clone());
        }
    }
}

/// A redriven request is an explicit retry: `"retry": true` makes it run
/// again even while its set caches the failure (`failure_ttl`). Any other
/// body (a trigger, a malformed or wrapped one) goes back as it was.
fn as_retry(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut obj))
            if obj.get("type").and_then(|t| t.as_str()) == Some("request") =>
        {
            obj.insert("retry".into(), serde_json::Value::Bool(true));
            serde_json::Value::Object(obj).to_string()
        }
        _ => body.to_owned(),
    }
}

/// The message's own attributes, without the reason the daemon added.
fn carried(m: &DeadLetter) -> Option<HashMap<String, MessageAttributeValue>> {
    let attrs: HashMap<String, MessageAttributeValue> = m
        .attributes
        .iter()
        .filter(|(k, _)| !DEAD_LETTER_ATTRS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!attrs.is_empty()).then_some(attrs)
}

/// Batches of at most 10 messages whose sizes add up to at most SQS's
/// limit on a batch (that of one message).
fn by_size(msgs: Vec<DeadLetter>) -> Vec<Vec<DeadLetter>> {
    let size = |m: &DeadLetter| {
        as_retry(&m.body).len()
            + carried(m)
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| attr_size(k, v))
                .sum::<usize>()
    };
    let mut out: Vec<Vec<DeadLetter>> = Vec::new();
    let mut total = 0;
    for m in msgs {
        let s = size(&m);
        match out.last_mut() {
            Some(last) if last.len() < 10 && total + s <= MAX_MESSAGE_BYTES => {
                total += s;
                last.push(m);
            }
            _ => {
                total = s;
                out.push(vec![m]);
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "redrive_tests.rs"]
mod tests;
