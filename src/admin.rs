//! The operators' commands: send messages, inspect and reset an item's
//! caches, list and re-drive the dead-letter queue.

mod dlq;
mod redrive;
mod show;

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value as Json, json};

use crate::aws::Clients;
use crate::aws::queue::{MAX_BATCH, Outgoing};
use crate::aws::table::{Table, Updated};
use crate::clock::now_millis;
use crate::config::Config;
use crate::events::{CompletionEvent, EventKind, Publisher};
use crate::item::{Attrs, Key, KeyValue};
use crate::state::{self, Cache};

pub use dlq::{DeadLetter, dlq_list};
pub use redrive::{Redrive, Report as RedriveReport, dlq_redrive};

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

fn table(cfg: &Config, clients: &Clients) -> Table {
    clients.table(
        &cfg.dynamodb.table,
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
    with_value: bool,
) -> anyhow::Result<()> {
    let clients = Clients::new(sdk);
    let table = table(cfg, &clients);
    let item = table.get(key).await?;
    let now = now_millis();
    let sets = sets(cfg, set)?;
    if with_value {
        let mut out = serde_json::Map::new();
        for s in &sets {
            out.insert(
                s.clone(),
                value_of(cfg, &clients, &table.attrs.cache(&item, s)).await?,
            );
        }
        println!("{}", Json::Object(out));
        return Ok(());
    }
    if as_json {
        let out: serde_json::Map<String, Json> = sets
            .iter()
            .map(|s| (s.clone(), record_json(&table.attrs.cache(&item, s))))
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
        let r = table.attrs.cache(&item, s);
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
                .map(|e| show::readable_cut(&e, 80))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    print_table(&rows);
    Ok(())
}

/// A set's value as stored: inline (decompressed), or read from S3 when
/// offloaded (checked against its `valueRef`); `null` when there is none.
async fn value_of(cfg: &Config, clients: &Clients, r: &Cache) -> anyhow::Result<Json> {
    let Some(value_ref) = &r.value_ref else {
        return Ok(r.value.clone().unwrap_or(Json::Null));
    };
    let Some(obj) = crate::value::ObjectRef::from_json(value_ref) else {
        anyhow::bail!("the item's valueRef is not a pointer: {value_ref}");
    };
    if cfg.s3.bucket.is_empty() {
        anyhow::bail!(
            "the value is offloaded to s3://{}/{}; set [s3] bucket and prefix to read it",
            obj.bucket,
            obj.key
        );
    }
    let bucket = clients.bucket(&cfg.s3.bucket, &cfg.s3.prefix);
    if let Err(why) = bucket.check(&obj.bucket, &obj.key) {
        anyhow::bail!("the item's valueRef {why}");
    }
    let body = bucket.get(&obj.key).await?;
    if !obj.matches(&body) {
        anyhow::bail!(
            "s3://{}/{} does not match its valueRef (size or sha256)",
            obj.bucket,
            obj.key
        );
    }
    Ok(serde_json::from_slice(&body)?)
}

fn record_json(r: &Cache) -> Json {
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
        "failedMessageId": r.failed_message_id,
        "hasValue": r.value.is_some() || r.value_ref.is_some(),
        "valueRef": r.value_ref,
        "valueEpoch": r.value_epoch,
        "failedAt": r.failed_at,
        "refreshOwner": r.refresh_owner,
        "refreshLease": r.refresh_lease,
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

/// `reset`: the same reset as a trigger message, written directly, with
/// its `reset` events.
pub async fn reset(
    cfg: &Config,
    sdk: &aws_config::SdkConfig,
    key: &Key,
    set: &str,
) -> anyhow::Result<()> {
    let clients = Clients::new(sdk);
    let table = table(cfg, &clients);
    let events = Publisher::new(clients.sns(), cfg);
    let sets = sets(cfg, Some(set))?;
    // A request parked in a flow of this cache goes back to the queue
    // first (as a trigger does, state/parked.rs); the reset holds only if
    // it is still the one parked.
    let read = table.get(key).await?;
    let mut parked = vec![];
    let owned: Vec<(&str, state::Write)> = sets
        .iter()
        .map(|s| {
            let mut write = state::trigger();
            if let Some(rid) = state::carry_parked(&table.attrs.cache(&read, s), &mut write) {
                parked.push(serde_json::json!({"v": 1, "type": "request",
                    "key": key.to_json(), "set": s, "requestId": rid}));
            }
            (s.as_str(), write)
        })
        .collect();
    if !parked.is_empty() {
        send(cfg, sdk, &parked).await?;
        println!("sent {} parked request(s) back to the queue", parked.len());
    }
    let writes: Vec<(&str, &state::Write)> = owned.iter().map(|(s, w)| (*s, w)).collect();
    let Updated::Applied(item) = table.update(key, &writes).await? else {
        anyhow::bail!("another request parked while resetting {key}; run reset again");
    };
    for s in &sets {
        let epoch = table.attrs.cache(&item, s).epoch();
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
    let queue = Clients::new(sdk).sender(&cfg.sqs.queue_url);
    let bar = progress(bodies.len() as u64, "sending");
    let mut ids = Vec::with_capacity(bodies.len());
    for chunk in bodies.chunks(MAX_BATCH) {
        let msgs = chunk
            .iter()
            .map(|b| Outgoing {
                body: b.to_string(),
                attributes: None,
            })
            .collect();
        let sent = queue.send_batch(msgs).await?;
        let sent = sent
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("sending failed: {e}"))?;
        bar.inc(sent.len() as u64);
        ids.extend(sent);
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
