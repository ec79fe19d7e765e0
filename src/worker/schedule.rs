//! Scheduled triggers and the parked requests a trigger carries on: the
//! I/O around the pure decisions of `state/schedule.rs` and
//! `state/parked.rs`.
//!
//! A message with `at` or `delay` that is not due yet is sent back to the
//! queue (the copy carries `at` and the schedule id) and the one in hand
//! is deleted; when due, it is handled as the trigger it is, with the
//! schedule id making its write happen once.

use std::time::Duration;

use super::Worker;
use crate::aws::queue::{Received, SCHEDULE_ID_ATTR};
use crate::clock::now_millis;
use crate::item::{Item, Key};
use crate::message::{Schedule, rfc3339};
use crate::observe::TriggerEvent;
use crate::state::{self, Write};

/// What a trigger writes to each set of one item, as decided on a read.
#[derive(Debug, Default)]
pub(super) struct Planned {
    /// The writes, by set.
    pub writes: Vec<(String, Write)>,
    /// Sets where this schedule took effect already, with the epoch it
    /// moved them to.
    pub applied: Vec<(String, i64)>,
    /// Requests parked behind an expired flow that the writes clear: sent
    /// back to the queue first (set, request id).
    pub parked: Vec<(String, String)>,
}

/// The id of the schedule a message belongs to: the MessageId of its
/// first message, carried by every copy.
pub(super) fn schedule_id(msg: &Received) -> String {
    msg.attributes
        .get(SCHEDULE_ID_ATTR)
        .and_then(|a| a.string_value())
        .unwrap_or(&msg.message_id)
        .to_owned()
}

impl Worker {
    /// A scheduled message that is not due yet is sent back to the queue,
    /// held back for the time left (at most `sqs.max_delay`): returns
    /// `true` once it is (the message in hand is then deleted). A crash
    /// between the two leaves two copies, of which only one takes effect
    /// (`state/schedule.rs`).
    pub(super) async fn hold_until_due(
        &self,
        msg: &Received,
        schedule: &Schedule,
    ) -> anyhow::Result<bool> {
        let sent_at = msg.sent_at.unwrap_or_else(now_millis);
        let at = schedule.at(sent_at);
        let Some(delay) = state::resend_delay(at, now_millis(), self.cfg.sqs.max_delay) else {
            return Ok(false);
        };
        let id = schedule_id(msg);
        self.queue
            .resend(schedule.resend_body(at), delay, Some(&id))
            .await?;
        TriggerEvent::ScheduleHeld {
            schedule_id: &id,
            at: &rfc3339(at),
            delay_secs: delay.as_secs_f64().ceil() as u64,
        }
        .emit(&self.metrics);
        Ok(true)
    }

    /// What a `trigger` writes to `sets` of the item as read, as schedule
    /// `schedule` if it is one.
    pub(super) fn plan_trigger(
        &self,
        item: &Item,
        sets: &[String],
        schedule: Option<&str>,
    ) -> Planned {
        let mut planned = Planned::default();
        for set in sets {
            let rec = self.table.attrs.cache(item, set);
            let mut write = state::decide_trigger(&rec, &self.clock(&self.cfg.sets[set]));
            if let Some(id) = schedule {
                if let Some(epoch) = state::applied_epoch(&rec, id) {
                    planned.applied.push((set.clone(), epoch));
                    continue;
                }
                write = state::scheduled(&rec, id, write);
            }
            if let Some(parked) = state::carry_parked(&rec, &mut write) {
                planned.parked.push((set.clone(), parked));
            }
            planned.writes.push((set.clone(), write));
        }
        planned
    }

    /// Sends the requests parked behind an expired flow back to the queue
    /// as requests of their own, before the trigger's write clears them.
    pub(super) async fn carry_parked(
        &self,
        key: &Key,
        parked: &[(String, String)],
    ) -> anyhow::Result<()> {
        for (set, rid) in parked {
            let body = serde_json::json!({
                "v": 1,
                "type": "request",
                "key": key.to_json(),
                "set": set,
                "requestId": rid,
            });
            self.queue
                .resend(body.to_string(), Duration::ZERO, None)
                .await?;
            TriggerEvent::ParkedCarried {
                set,
                request_id: rid,
            }
            .emit(&self.metrics);
        }
        Ok(())
    }
}
