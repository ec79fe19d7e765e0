//! The executor of a [`Handler`]'s effects: DynamoDB reads and conditional
//! writes, the processor run under the message's heartbeat, the commit
//! with its dependency edges, the completion event. It decides nothing:
//! every outcome goes back to the handler as an [`Input`].

use std::time::Instant;

use tracing::{Instrument, warn};

use super::{FlightKey, Worker};
use crate::aws::table::{TableError, Updated};
use crate::coalesce::Leader;
use crate::events::CompletionEvent;
use crate::handler::{Answer, Disposition, Effect, Handler, Input};
use crate::heartbeat::{Heartbeat, Lease};
use crate::item::{Item, Key, MAX_ITEM_BYTES};
use crate::observe::{self, MessageEvent};
use crate::processor::{Job, Output, ProcessError};
use crate::state::{Field, Op, Write};
use aws_sdk_dynamodb::types::AttributeValue;

/// One message's handling: what the effects need.
pub(super) struct Execution<'a> {
    pub key: &'a Key,
    pub set: &'a str,
    pub leader: Option<&'a mut Leader<FlightKey>>,
    pub beat: &'a Heartbeat,
}

impl Worker {
    /// Carries out `handler`'s effects until it settles the message.
    pub(super) async fn execute(
        &self,
        mut handler: Handler,
        mut ex: Execution<'_>,
    ) -> anyhow::Result<Disposition> {
        let set_cfg = self
            .cfg
            .sets
            .get(ex.set)
            .expect("decoded sets are configured");
        // The item as last read or written: what a job and an event carry.
        let mut item = Item::default();
        let mut effect = handler.start();
        loop {
            if matches!(
                effect,
                Effect::Read
                    | Effect::Write(_)
                    | Effect::Commit { .. }
                    | Effect::Run { .. }
                    | Effect::Refresh { .. }
            ) && let Some(leader) = ex.leader.as_mut()
            {
                // What the handler decides next holds for the requests
                // that joined this flight so far (coalesce.rs).
                leader.reading();
            }
            let input = match effect {
                Effect::Settle(disposition) => return Ok(disposition),
                Effect::Read => {
                    item = self.table.get(ex.key).await?;
                    Input::Read(self.cache(&item, ex.set))
                }
                Effect::Adopt { owner } => {
                    let me = handler.request_id();
                    Input::Adopted(ex.leader.as_mut().is_some_and(|l| l.adopt(&owner, me)))
                }
                Effect::Write(write) => self.write(&ex, &write, &mut item).await?,
                Effect::Run {
                    rid,
                    epoch,
                    attempt,
                    input,
                } => {
                    let run = Run {
                        rid,
                        epoch,
                        attempt,
                        input,
                        refresh: false,
                    };
                    Box::pin(self.run(&ex, run, &mut item)).await?
                }
                Effect::Store { rid, epoch, value } => Input::Stored(
                    Box::pin(self.store_value(ex.key, ex.set, &rid, epoch, &value)).await?,
                ),
                // A background refresh (`refresh_after`): the same job,
                // under the renewals of the refresh lease.
                Effect::Refresh { rid, epoch, input } => {
                    let run = Run {
                        rid,
                        epoch,
                        attempt: 1,
                        input,
                        refresh: true,
                    };
                    Box::pin(self.run(&ex, run, &mut item)).await?
                }
                Effect::Commit { write, output } => {
                    Box::pin(self.commit(&ex, &write, &output, &mut item)).await?
                }
                Effect::Publish(answer) => {
                    self.publish(&mut ex, &answer, &item).await?;
                    Input::Published
                }
            };
            let step = handler.next(input, &self.clock(set_cfg));
            for note in &step.notes {
                observe::note(&self.metrics, ex.set, note);
            }
            effect = step.effect;
        }
    }

    fn cache(&self, item: &Item, set: &str) -> crate::state::Cache {
        self.table.attrs.cache(item, set)
    }

    async fn write(
        &self,
        ex: &Execution<'_>,
        write: &Write,
        item: &mut Item,
    ) -> anyhow::Result<Input> {
        let (updated, applied) = match self.table.update(ex.key, &[(ex.set, write)]).await? {
            Updated::Applied(new) => (new, true),
            Updated::Rejected(now) => (now, false),
        };
        *item = updated;
        let rec = self.cache(item, ex.set);
        Ok(if applied {
            Input::Applied(rec)
        } else {
            Input::Rejected(rec)
        })
    }

    /// The processor's job for `run` on the item as last read, run under
    /// its lease; the outcome as the handler's input.
    async fn run(&self, ex: &Execution<'_>, run: Run, item: &mut Item) -> anyhow::Result<Input> {
        let job = Job {
            key: ex.key.to_json(),
            set: ex.set.to_owned(),
            epoch: run.epoch,
            request_id: run.rid.clone(),
            input: run.input,
            record: self.table.attrs.item_json(item),
        };
        let lease = Lease {
            key: ex.key.clone(),
            set: ex.set.to_owned(),
            rid: run.rid,
            epoch: run.epoch,
            refresh: run.refresh,
        };
        Ok(
            match self.run_processor(ex, job, run.attempt, lease).await? {
                Ran::Answered(result) => Input::Ran(result),
                Ran::Invalidated(now) => {
                    *item = now;
                    Input::Invalidated(self.cache(item, ex.set))
                }
            },
        )
    }

    /// Runs the processor under the message's heartbeat, which renews the
    /// run's lease; a rejected renewal stops the run early.
    async fn run_processor(
        &self,
        ex: &Execution<'_>,
        job: Job,
        attempt: i64,
        lease: Lease,
    ) -> anyhow::Result<Ran> {
        let set = ex.set;
        let set_cfg = self.cfg.sets.get(set).expect("decoded sets are configured");
        let processor = self
            .processors
            .get(set)
            .ok_or_else(|| anyhow::anyhow!("set {set} has no processor"))?;
        MessageEvent::RunStarted { set }.emit(&self.metrics);
        let _in_progress = self.metrics.run_started(set);
        let invalidated = ex.beat.hold(lease);
        let started = Instant::now();
        let span = tracing::info_span!(
            "processor",
            otel.kind = "internal",
            set,
            epoch = job.epoch,
            attempt
        );
        let work = tokio::time::timeout(set_cfg.timeout, processor.process(&job)).instrument(span);
        let ran = tokio::select! {
            result = work => {
                ex.beat.clear();
                Ran::Answered(result.unwrap_or_else(|_| {
                    Err(ProcessError::Retryable(format!(
                        "processing timed out after {} (sets.{set}.timeout)",
                        humantime::format_duration(set_cfg.timeout)
                    )))
                }))
            }
            Ok(now) = invalidated => Ran::Invalidated(now),
        };
        MessageEvent::RunEnded {
            set,
            took: started.elapsed(),
        }
        .emit(&self.metrics);
        Ok(ran)
    }

    /// The fenced commit, with the dependency edges of the value written
    /// before it and those no longer reported removed after it.
    async fn commit(
        &self,
        ex: &Execution<'_>,
        write: &Write,
        output: &Output,
        item: &mut Item,
    ) -> anyhow::Result<Input> {
        let (key, set) = (ex.key, ex.set);
        let inline = write
            .ops
            .iter()
            .any(|op| matches!(op, Op::Set(Field::Value, _)));
        if inline
            && let Some(error) = too_large(
                set,
                item,
                &self.table.attrs.name(set, Field::Value),
                &crate::value::encode(&output.value, self.cfg.compresses(set)),
            )
        {
            return Ok(Input::TooLarge(error));
        }
        let previous = self.cache(item, set).value_ref;
        let deps_attr = format!("{}_{set}_dependsOn", self.table.attrs.prefix);
        let (extra, stale_edges) = self
            .track_dependencies(key, set, item, &deps_attr, &output.depends_on)
            .await?;
        match self.table.update_with(key, &[(set, write)], &extra).await {
            Ok(Updated::Applied(new)) => {
                if let (Some(deps), false) = (&self.dependencies, stale_edges.is_empty())
                    && let Err(e) = deps.remove(key, set, &stale_edges).await
                {
                    warn!(error = %crate::aws::error_message(&e), "could not remove dependency edges no longer reported; they cost extra resets only");
                }
                *item = new;
                let now = self.cache(item, set);
                self.clean_objects(key, set, &now, previous);
                Ok(Input::Applied(now))
            }
            Ok(Updated::Rejected(now)) => {
                *item = now;
                let now = self.cache(item, set);
                self.drop_object(write, &now).await;
                Ok(Input::Rejected(now))
            }
            Err(TableError::TooLarge(msg)) => Ok(Input::TooLarge(format!(
                "the value does not fit the item: {msg}"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes an answer, naming the requests coalesced with this one.
    async fn publish(
        &self,
        ex: &mut Execution<'_>,
        answer: &Answer,
        item: &Item,
    ) -> anyhow::Result<()> {
        // A stale answer (`serve_stale`) comes before the request's own
        // answer: it leaves the flight open and names no follower.
        let coalesced = match (&answer.stale, ex.leader.as_mut()) {
            (None, Some(leader)) => leader.seal(),
            _ => vec![],
        };
        // An offloaded value: read back only when the event has room for
        // it; a presigned URL when configured.
        let (fetched, url) = match &answer.value_ref {
            Some(r) => Box::pin(self.offloaded(r, answer)).await?,
            None => (None, None),
        };
        self.publish_event(CompletionEvent {
            request_id: Some(&answer.request_id),
            item: Some(item),
            value: answer.value.as_ref().or(fetched.as_ref()),
            value_ref: answer.value_ref.as_ref(),
            value_url: url.as_deref(),
            error: answer.error.as_deref(),
            coalesced: &coalesced,
            failed_message_id: answer.failed_message_id.as_deref(),
            answers: &answer.answers.ids,
            answers_omitted: answer.answers.omitted,
            stale: answer.stale,
            ..CompletionEvent::new(answer.kind, ex.key, ex.set, answer.epoch)
        })
        .await
    }

    /// What an event about an offloaded value carries: the value, read
    /// back when the event has room for it, and a presigned URL when
    /// configured. Kept apart (and boxed by its caller) so that the S3
    /// calls do not enlarge every message's future.
    async fn offloaded(
        &self,
        r: &serde_json::Value,
        answer: &Answer,
    ) -> anyhow::Result<(Option<serde_json::Value>, Option<String>)> {
        let mut fetched = None;
        if answer.value.is_none() {
            if answer.kind == crate::config::EventKind::Ready {
                self.tag_committed(r).await;
            }
            fetched = self.fetch_value(r).await?;
        }
        Ok((fetched, self.value_url(r).await))
    }
}

/// How a processor run ended.
/// A processing run or a background refresh to carry out.
struct Run {
    rid: String,
    epoch: i64,
    attempt: i64,
    input: Option<serde_json::Value>,
    refresh: bool,
}

enum Ran {
    Answered(Result<Output, ProcessError>),
    /// A lease renewal was rejected; the item as it is now.
    Invalidated(Item),
}

/// Why a value cannot be stored, if it cannot: the item with the new value
/// would pass DynamoDB's 400 KB limit.
fn too_large(set: &str, item: &Item, value_attr: &str, stored: &AttributeValue) -> Option<String> {
    let rest: usize = item
        .iter()
        .filter(|(k, _)| k.as_str() != value_attr)
        .map(|(k, v)| k.len() + crate::item::av_size(v))
        .sum();
    let value_size = value_attr.len() + crate::item::av_size(stored);
    // Room for the bookkeeping the commit adds (status, readyAt).
    let total = rest + value_size + 64;
    (total > MAX_ITEM_BYTES).then(|| {
        format!(
            "the value is {} KB and the item would be {} KB, over DynamoDB's 400 KB item size limit; return a smaller value, compress it (sets.{set}.compress = \"zstd\") or offload it to S3 (sets.{set}.offload_over with [s3] bucket)",
            value_size / 1024,
            total / 1024
        )
    })
}
