//! Triggers: `trigger`, `trigger_start`, dependency triggers and stream
//! records (DESIGN §4), and the dependency bookkeeping of a commit.

use std::collections::BTreeSet;

use super::{Disposition, Worker, error_backoff};
use crate::aws::table::Updated;
use crate::clock::now_millis;
use crate::config::EventKind;
use crate::events::CompletionEvent;
use crate::item::{Item, Key, to_av};
use crate::message::{Command, SetSelector};
use crate::observe::TriggerEvent;
use crate::state;
use crate::streams::StreamTriggers;

impl Worker {
    /// Writes the edges of entities this run newly depends on (before the
    /// commit) and returns the commit's extra attribute plus the edges to
    /// remove after it (see [`crate::aws::edges`]).
    pub(super) async fn track_dependencies(
        &self,
        key: &Key,
        set: &str,
        claimed: &Item,
        attr: &str,
        reported: &[String],
    ) -> anyhow::Result<(
        Vec<(String, Option<aws_sdk_dynamodb::types::AttributeValue>)>,
        BTreeSet<String>,
    )> {
        let Some(deps) = &self.dependencies else {
            if !reported.is_empty() {
                TriggerEvent::DependenciesNotTracked {
                    entities: reported.len(),
                }
                .emit(&self.metrics);
            }
            return Ok((vec![], BTreeSet::new()));
        };
        let old = crate::aws::edges::recorded(claimed, attr);
        let new: BTreeSet<String> = reported.iter().cloned().collect();
        let added: BTreeSet<String> = new.difference(&old).cloned().collect();
        if !added.is_empty() {
            deps.add(key, set, &added).await?;
        }
        let stale = old.difference(&new).cloned().collect();
        let value = (!new.is_empty()).then(|| to_av(&serde_json::json!(new)));
        Ok((vec![(attr.to_owned(), value)], stale))
    }

    /// Stream records: the triggers their rules map them to.
    pub(super) async fn stream(&self, triggers: StreamTriggers) -> anyhow::Result<Disposition> {
        if triggers.unmatched > 0 {
            TriggerEvent::StreamRecordsUnmatched {
                records: triggers.unmatched,
            }
            .emit(&self.metrics);
        }
        for m in triggers.messages {
            if let Command::Trigger { sets } = m.command
                && let Disposition::RetryAfter(d) = self.trigger(&m.key, sets, None).await?
            {
                return Ok(Disposition::RetryAfter(d));
            }
        }
        for entity in triggers.dependencies {
            if let Disposition::RetryAfter(d) = self.trigger_dependency(&entity, None).await? {
                return Ok(Disposition::RetryAfter(d));
            }
        }
        Ok(Disposition::Delete)
    }

    /// Resets every cache that depends on `entity`, 16 at a time (as
    /// `schedule`, if it is a scheduled trigger's).
    pub(super) async fn trigger_dependency(
        &self,
        entity: &str,
        schedule: Option<&str>,
    ) -> anyhow::Result<Disposition> {
        use futures::StreamExt;
        let Some(deps) = &self.dependencies else {
            return Ok(Disposition::DeadLetter {
                kind: "malformed",
                reason: format!(
                    "dependency trigger for {entity}, but dependencies.table is not configured"
                ),
            });
        };
        let dependents = deps.dependents(entity).await?;
        let names = self.cfg.key_names();
        let results: Vec<anyhow::Result<Disposition>> = futures::stream::iter(dependents)
            .filter(|d| std::future::ready(self.cfg.sets.contains_key(&d.set)))
            .map(|d| {
                // Key attributes in the table's order (the edge stores a map).
                let mut key = d.key.clone();
                key.0
                    .sort_by_key(|(n, _)| names.iter().position(|x| x == n).unwrap_or(usize::MAX));
                async move {
                    let r = self
                        .trigger(&key, SetSelector::One(d.set.clone()), schedule)
                        .await;
                    if r.is_ok() {
                        TriggerEvent::DependentReset { set: &d.set }.emit(&self.metrics);
                    }
                    r
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let n = results.len();
        for r in results {
            if let Disposition::RetryAfter(d) = r? {
                return Ok(Disposition::RetryAfter(d));
            }
        }
        TriggerEvent::DependencyTriggered { entity, caches: n }.emit(&self.metrics);
        Ok(Disposition::Delete)
    }

    /// `trigger`: reset one or every set of the item in one write (as
    /// `schedule`, if it is a scheduled trigger's: once). A request parked
    /// behind an expired flow is sent back to the queue first.
    pub(super) async fn trigger(
        &self,
        key: &Key,
        sets: SetSelector,
        schedule: Option<&str>,
    ) -> anyhow::Result<Disposition> {
        let names: Vec<String> = match sets {
            SetSelector::One(s) => vec![s],
            SetSelector::All => self.cfg.sets.keys().cloned().collect(),
        };
        let mut item = self.table.get(key).await?;
        for _ in 0..self.cfg.worker.max_rehandles {
            let planned = self.plan_trigger(&item, &names, schedule);
            for (set, epoch) in &planned.applied {
                self.republish_reset(key, set, *epoch, schedule, &item)
                    .await?;
            }
            if planned.writes.is_empty() {
                return Ok(Disposition::Delete);
            }
            self.carry_parked(key, &planned.parked).await?;
            let refs: Vec<(&str, &state::Write)> = planned
                .writes
                .iter()
                .map(|(s, w)| (s.as_str(), w))
                .collect();
            match self.table.update(key, &refs).await? {
                Updated::Applied(new) => {
                    for (set, _) in &planned.writes {
                        let rec = self.table.attrs.cache(&new, set);
                        TriggerEvent::Reset {
                            set,
                            epoch: rec.epoch(),
                            status: rec.status().as_str(),
                        }
                        .emit(&self.metrics);
                        self.publish_reset(key, set, rec.epoch(), &new).await?;
                    }
                    return Ok(Disposition::Delete);
                }
                Updated::Rejected(now) => item = now,
            }
        }
        Ok(Disposition::RetryAfter(error_backoff(1)))
    }

    /// A second copy of a scheduled trigger, or a redelivered
    /// `trigger_start`: its `reset` event again (the same epoch, so the
    /// same eventId), in case the first copy's worker died before
    /// publishing it.
    async fn republish_reset(
        &self,
        key: &Key,
        set: &str,
        epoch: i64,
        schedule: Option<&str>,
        item: &Item,
    ) -> anyhow::Result<()> {
        TriggerEvent::ScheduleAlreadyApplied {
            set,
            schedule_id: schedule.unwrap_or_default(),
            epoch,
        }
        .emit(&self.metrics);
        self.publish_reset(key, set, epoch, item).await
    }

    /// The `reset` event of a trigger that moved `set` of `key` to `epoch`,
    /// with the item as written.
    async fn publish_reset(
        &self,
        key: &Key,
        set: &str,
        epoch: i64,
        item: &Item,
    ) -> anyhow::Result<()> {
        self.publish_event(CompletionEvent {
            item: Some(item),
            ..CompletionEvent::new(EventKind::Reset, key, set, epoch)
        })
        .await
    }

    /// `trigger_start`: reset and hold reprocessing until the flow ends,
    /// once: the start is recorded as `once` (its schedule's id, or its
    /// message's), like a scheduled trigger, so that a redelivery after the
    /// flow and later ones ended re-publishes the reset and starts nothing.
    pub(super) async fn trigger_start(
        &self,
        key: &Key,
        set: &str,
        trigger_id: &str,
        once: &str,
    ) -> anyhow::Result<Disposition> {
        let set_cfg = &self.cfg.sets[set];
        let mut item = self.table.get(key).await?;
        for _ in 0..self.cfg.worker.max_rehandles {
            let rec = self.table.attrs.cache(&item, set);
            if let Some(epoch) = state::applied_epoch(&rec, once) {
                self.republish_reset(key, set, epoch, Some(once), &item)
                    .await?;
                return Ok(Disposition::Delete);
            }
            let deadline = now_millis() + set_cfg.trigger_timeout.as_millis() as i64;
            let Some(write) = state::decide_trigger_start(&rec, trigger_id, deadline) else {
                TriggerEvent::FlowAlreadyStarted { trigger_id }.emit(&self.metrics);
                return Ok(Disposition::Delete);
            };
            let write = state::scheduled(&rec, once, write);
            match self.table.update(key, &[(set, &write)]).await? {
                Updated::Applied(new) => {
                    let rec = self.table.attrs.cache(&new, set);
                    TriggerEvent::FlowStarted {
                        set,
                        trigger_id,
                        epoch: rec.epoch(),
                    }
                    .emit(&self.metrics);
                    self.publish_reset(key, set, rec.epoch(), &new).await?;
                    return Ok(Disposition::Delete);
                }
                // Another trigger took effect, or the flow ended, since
                // the read: decide again on the item as it is now.
                Updated::Rejected(now) => item = now,
            }
        }
        Ok(Disposition::RetryAfter(error_backoff(1)))
    }
}
