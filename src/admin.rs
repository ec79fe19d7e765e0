//! The operators' commands: send messages, inspect and reset an item's
//! caches, list and re-drive the dead-letter queue.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value as Json, json};

use crate::config::{Config, EventKind};
use crate::events::{CompletionEvent, Publisher};
use crate::item::{Attrs, Key, KeyValue};
use crate::queue::{ATTR_ERROR, ATTR_ERROR_KIND, ATTR_SOURCE_ID, now_millis};
use crate::state::{self, Record};
use crate::table::{Table, Updated, aws_error_message};

/// The item's key from the command line: the partition key value and, for
/// tables with a sort key, the sort key value.
pub fn key(cfg: &Config, pk: &str, sk: Option<&str>) -> anyhow::Result<Key> {
    let mut parts = vec![(
        cfg.dynamodb.partition_key.clone(),
        KeyValue::S(pk.to_owned()),
    )];
    match (&cfg.dynamodb.sort_key, sk) {
        (Some(name), Some(v)) => parts.push((name.clone(), KeyValue::S(v.to_owned()))),
        (Some(name), None) => {
            anyhow::bail!("the table has a sort key ({name}): give it with --sort-key")
        }
        (None, Some(_)) => anyhow::bail!(
            "the table has no sort key (dynamodb.sort_key is not set); drop --sort-key"
        ),
        (None, None) => {}
    }
    Ok(Key(parts))
}

fn table(cfg: &Config, sdk: &aws_config::SdkConfig) -> Table {
    Table::new(
        aws_sdk_dynamodb::Client::new(sdk),
        cfg.dynamodb.table.clone(),
        Attrs {
            prefix: cfg.dynamodb.attribute_prefix.clone(),
        },
    )
}

fn sets(cfg: &Config, set: Option<&str>) -> anyhow::Result<Vec<String>> {
    match set {
        None | Some("*") => Ok(cfg.sets.keys().cloned().collect()),
        Some(s) if cfg.sets.contains_key(s) => Ok(vec![s.to_owned()]),
        Some(s) => anyhow::bail!(
            "set {s} is not configured; configured sets are {}",
            cfg.sets.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

fn ago(now: i64, at: Option<i64>) -> String {
    match at {
        Some(at) if at > 0 => format!(
            "{}",
            humantime::format_duration(Duration::from_secs(((now - at).max(0) / 1000) as u64))
        ),
        _ => "-".into(),
    }
}

fn left(now: i64, until: Option<i64>) -> String {
    match until {
        Some(u) if u > now => format!(
            "{}",
            humantime::format_duration(Duration::from_secs(((u - now) / 1000) as u64))
        ),
        Some(_) => "expired".into(),
        None => "-".into(),
    }
}

/// `inspect`: the cache state of the item's sets as a table (or JSON).
pub async fn inspect(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    key: &Key,
    set: Option<&str>,
    as_json: bool,
) -> anyhow::Result<()> {
    let table = table(cfg, sdk);
    let item = table.get(key).await?;
    let now = now_millis();
    let sets = sets(cfg, set)?;
    if as_json {
        let out: serde_json::Map<String, Json> = sets
            .iter()
            .map(|s| (s.clone(), record_json(&table.attrs.record(&item, s))))
            .collect();
        println!(
            "{}",
            json!({"key": key.to_json(), "exists": !item.is_empty(), "sets": out})
        );
        return Ok(());
    }
    if item.is_empty() {
        println!(
            "item {key} does not exist in table {} (every set reads as never processed)",
            cfg.dynamodb.table
        );
    }
    let header = [
        "SET",
        "STATUS",
        "EPOCH",
        "OWNER",
        "LEASE LEFT",
        "AWAITING",
        "READY AGE",
        "ATTEMPTS",
        "LAST ERROR",
    ];
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for s in &sets {
        let r = table.attrs.record(&item, s);
        let status = match (r.status, r.trigger_id.as_deref()) {
            (None, _) => "(never)".to_string(),
            (Some(state::Status::Triggered), Some(t)) => {
                format!(
                    "TRIGGERED by {t}, {} to deadline",
                    left(now, r.trigger_deadline)
                )
            }
            (Some(st), _) => st.as_str().to_string(),
        };
        rows.push(vec![
            s.clone(),
            status,
            r.epoch().to_string(),
            r.request_id.clone().unwrap_or_else(|| "-".into()),
            left(now, r.lease_until),
            r.awaiting.clone().unwrap_or_else(|| "-".into()),
            ago(now, r.ready_at),
            r.attempts
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            r.error
                .clone()
                .map(|e| crate::message::printable(&e))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    print_table(&rows);
    Ok(())
}

fn record_json(r: &Record) -> Json {
    json!({
        "status": r.status.map(|s| s.as_str()),
        "epoch": r.epoch,
        "requestId": r.request_id,
        "leaseUntil": r.lease_until,
        "triggerId": r.trigger_id,
        "triggerDeadline": r.trigger_deadline,
        "endedTriggerId": r.ended_trigger_id,
        "awaiting": r.awaiting,
        "readyAt": r.ready_at,
        "attempts": r.attempts,
        "error": r.error,
        "hasValue": r.value.is_some(),
    })
}

fn print_table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// `reset`: the same unconditional reset as a trigger message, written
/// directly, with its `reset` events.
pub async fn reset(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    key: &Key,
    set: &str,
) -> anyhow::Result<()> {
    let table = table(cfg, sdk);
    let events = Publisher::new(aws_sdk_sns::Client::new(sdk), cfg);
    let sets = sets(cfg, Some(set))?;
    let write = state::trigger();
    let writes: Vec<(&str, &state::Write)> = sets.iter().map(|s| (s.as_str(), &write)).collect();
    let Updated::Applied(item) = table.update(key, &writes).await? else {
        anyhow::bail!("the unconditional reset was rejected");
    };
    for s in &sets {
        let epoch = table.attrs.record(&item, s).epoch();
        let ev = CompletionEvent {
            item: Some(&item),
            ..CompletionEvent::new(EventKind::Reset, key, s, epoch)
        };
        events.publish(&ev).await?;
        println!("reset {key} set {s}: STALE at epoch {epoch}");
    }
    Ok(())
}

/// Sends message bodies to the request queue in batches of 10, with a
/// progress bar for bulk sends. Returns the MessageIds.
pub async fn send(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    bodies: &[Json],
) -> anyhow::Result<Vec<String>> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let bar = progress(bodies.len() as u64, "sending");
    let mut ids = Vec::with_capacity(bodies.len());
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, b)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(b.to_string())
                    .build()
                    .expect("id and body are set")
            })
            .collect::<Vec<_>>();
        let out = sqs
            .send_message_batch()
            .queue_url(&cfg.sqs.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "sending to {}: {}",
                    cfg.sqs.queue_url,
                    aws_error_message(&e)
                )
            })?;
        if let Some(f) = out.failed.first() {
            anyhow::bail!(
                "sending failed: {}: {}",
                f.code,
                f.message.clone().unwrap_or_default()
            );
        }
        bar.inc(out.successful.len() as u64);
        ids.extend(out.successful.into_iter().map(|s| s.message_id));
    }
    bar.finish_and_clear();
    Ok(ids)
}

fn progress(len: u64, what: &'static str) -> ProgressBar {
    if len < 20 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

/// One dead-lettered message.
#[derive(Debug)]
pub struct DeadLetter {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    pub attributes: HashMap<String, MessageAttributeValue>,
}

impl DeadLetter {
    fn attr(&self, name: &str) -> String {
        self.attributes
            .get(name)
            .and_then(|a| a.string_value.clone())
            .unwrap_or_else(|| "-".into())
    }
}

/// Receives up to `limit` distinct messages of the DLQ, hidden for
/// `hide` while we work on them.
async fn receive_dlq(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    limit: usize,
    hide: i32,
) -> anyhow::Result<Vec<DeadLetter>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut empty = 0;
    while out.len() < limit && empty < 2 {
        let resp = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(((limit - out.len()).min(10)) as i32)
            .visibility_timeout(hide)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("receiving from {url}: {}", aws_error_message(&e)))?;
        let msgs = resp.messages.unwrap_or_default();
        if msgs.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        for m in msgs {
            let (Some(id), Some(receipt)) = (m.message_id, m.receipt_handle) else {
                continue;
            };
            if seen.insert(id.clone()) {
                out.push(DeadLetter {
                    message_id: id,
                    receipt,
                    body: m.body.unwrap_or_default(),
                    attributes: m.message_attributes.unwrap_or_default(),
                });
            }
        }
    }
    Ok(out)
}

/// `dlq list`: the dead-lettered messages with their reasons. They stay in
/// the DLQ (visible again at once).
pub async fn dlq_list(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    limit: usize,
) -> anyhow::Result<()> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let msgs = receive_dlq(&sqs, &cfg.sqs.dlq_url, limit, 30).await?;
    let mut rows = vec![vec![
        "MESSAGE".to_string(),
        "KIND".into(),
        "REASON".into(),
        "BODY".into(),
    ]];
    for m in &msgs {
        rows.push(vec![
            m.attr(ATTR_SOURCE_ID),
            m.attr(ATTR_ERROR_KIND),
            crate::message::printable(&m.attr(ATTR_ERROR)),
            crate::message::printable(&m.body),
        ]);
    }
    for m in &msgs {
        let _ = sqs
            .change_message_visibility()
            .queue_url(&cfg.sqs.dlq_url)
            .receipt_handle(&m.receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
    if msgs.is_empty() {
        println!("the dead-letter queue is empty");
    } else {
        print_table(&rows);
        eprintln!("{} message(s)", msgs.len());
    }
    Ok(())
}

/// `dlq redrive`: moves dead-lettered messages back to the request queue
/// (without the reason attributes). Each is deleted from the DLQ only
/// after it was sent.
pub async fn dlq_redrive(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    limit: usize,
) -> anyhow::Result<usize> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let bar = progress(limit.min(1_000_000) as u64, "re-driving");
    let mut moved = 0;
    while moved < limit {
        let batch = receive_dlq(&sqs, &cfg.sqs.dlq_url, (limit - moved).min(10), 60).await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            let attributes: HashMap<String, MessageAttributeValue> = m
                .attributes
                .iter()
                .filter(|(k, _)| {
                    ![ATTR_ERROR, ATTR_ERROR_KIND, ATTR_SOURCE_ID].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            sqs.send_message()
                .queue_url(&cfg.sqs.queue_url)
                .message_body(&m.body)
                .set_message_attributes((!attributes.is_empty()).then_some(attributes))
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "sending to {}: {}",
                        cfg.sqs.queue_url,
                        aws_error_message(&e)
                    )
                })?;
            sqs.delete_message()
                .queue_url(&cfg.sqs.dlq_url)
                .receipt_handle(&m.receipt)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "deleting from {}: {}",
                        cfg.sqs.dlq_url,
                        aws_error_message(&e)
                    )
                })?;
            moved += 1;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(moved)
}
