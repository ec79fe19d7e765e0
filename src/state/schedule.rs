//! Scheduled triggers (`"at"` / `"delay"` on a trigger, DESIGN §9): when a
//! message takes effect, and how a second copy of it does nothing.
//!
//! The schedule is held by SQS (the delayer pattern: no table of
//! schedules, nothing polled). A trigger that is not due yet is sent again
//! with `DelaySeconds` = the time left, at most the queue's maximum
//! ([`resend_delay`]), and the message in hand is deleted; its copy comes
//! back when it is due, or is sent on again. The copy carries the absolute
//! time (`at`) and the schedule's id (the first message's MessageId), so
//! every copy of one schedule agrees on both.
//!
//! Exactly once in effect: a crash between the send of the copy and the
//! delete of the message in hand leaves two messages of one schedule in
//! the queue, both due at the same time. The trigger's write therefore
//! records the schedule's id on the item, with the epoch it moved the
//! cache to (`scheduled`, the last [`KEEP_SCHEDULED`] of them), and holds
//! only if that list is still as read ([`scheduled`]); a copy that finds
//! its id there changes nothing and re-publishes the same `reset` event
//! (same epoch, so the same `eventId`) in case the first copy's worker
//! died before publishing it ([`applied_epoch`]). A trigger end needs no
//! id: the flow it ends records itself as ended (`endedTriggerId`), and a
//! second copy is decided as a redelivery of that end.
//!
//! Every `trigger_start` is recorded the same way, by its schedule's id or
//! else its own MessageId: `endedTriggerId` remembers only the last flow
//! that ended, so a start redelivered after a newer flow had also ended
//! would otherwise start its flow again and block the cache until the
//! deadline (found by the chaos run).

use std::time::Duration;

use serde_json::Value as Json;

use super::{Cache, Cond, Field, Op, Val, Write};

/// How many schedule ids a cache set keeps: the copies of one schedule
/// come due together, so only the last few can still arrive.
pub const KEEP_SCHEDULED: usize = 16;

/// How long to hold a scheduled message again before it takes effect, or
/// `None` if it is due now (`at` and `now` in epoch millis).
pub fn resend_delay(at: i64, now: i64, max_delay: Duration) -> Option<Duration> {
    let left = at.checked_sub(now).filter(|&ms| ms > 0)?;
    Some(Duration::from_millis(left as u64).min(max_delay))
}

/// The epoch the schedule `id` moved this set to, if it took effect.
pub fn applied_epoch(rec: &Cache, id: &str) -> Option<i64> {
    rec.scheduled.as_deref()?.iter().rev().find_map(|entry| {
        let (sid, epoch) = entry.rsplit_once('@')?;
        (sid == id).then(|| epoch.parse().ok()).flatten()
    })
}

/// A trigger's `write`, decided on `rec`, made the effect of schedule
/// `id`: it records the id with the epoch it moves the cache to (every
/// trigger's write moves it by one) and holds only if no other schedule
/// took effect since `rec` was read.
pub fn scheduled(rec: &Cache, id: &str, mut write: Write) -> Write {
    let mut kept: Vec<String> = rec.scheduled.clone().unwrap_or_default();
    let skip = (kept.len() + 1).saturating_sub(KEEP_SCHEDULED);
    kept.drain(..skip);
    kept.push(format!("{id}@{}", rec.epoch() + 1));
    write.conds.push(match rec.get(Field::Scheduled) {
        Some(read) => Cond::Eq(Field::Scheduled, read),
        None => Cond::Absent(Field::Scheduled),
    });
    write.ops.push(Op::Set(
        Field::Scheduled,
        Val::Json(Json::Array(kept.into_iter().map(Json::String).collect())),
    ));
    write
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{
        Clock, Decision, Status, decide_trigger, decide_trigger_end, decide_trigger_start,
    };

    /// A clock at 0 with a 1 ms lease: what these decisions need of time.
    const CLOCK: Clock = Clock {
        now: 0,
        lease: 1,
        skew: 0,
        ttl: None,
    };

    #[test]
    fn a_message_not_due_is_held_at_most_the_maximum() {
        let max = Duration::from_secs(900);
        assert_eq!(resend_delay(1_000, 1_000, max), None);
        assert_eq!(resend_delay(1_000, 2_000, max), None);
        assert_eq!(
            resend_delay(4_000, 1_000, max),
            Some(Duration::from_secs(3))
        );
        assert_eq!(resend_delay(i64::MAX, 0, max), Some(max));
    }

    #[test]
    fn the_second_copy_of_a_schedule_changes_nothing() {
        let mut rec = Cache::default();
        let first = scheduled(&rec, "s1", decide_trigger(&rec, &CLOCK));
        // Both copies decided on the same read: one holds.
        let second = scheduled(&rec, "s1", decide_trigger(&rec, &CLOCK));
        assert!(rec.apply(&first));
        assert!(!rec.apply(&second));
        assert_eq!(applied_epoch(&rec, "s1"), Some(1));
        assert_eq!(rec.epoch(), 1);
        // The list stays bounded and keeps the latest.
        for i in 0..40 {
            let w = scheduled(&rec, &format!("x{i}"), decide_trigger(&rec, &CLOCK));
            assert!(rec.apply(&w));
        }
        assert_eq!(rec.scheduled.as_ref().unwrap().len(), KEEP_SCHEDULED);
        assert_eq!(applied_epoch(&rec, "x39"), Some(rec.epoch()));
        assert_eq!(applied_epoch(&rec, "s1"), None);
    }

    /// The chaos run's case: a worker died after starting flow A (message
    /// m1) and before deleting m1; flows A and B both ended before m1 came
    /// back. By its flow id alone m1 would start A again (only B is
    /// remembered as ended); by its message id it is known as applied.
    #[test]
    fn a_trigger_start_redelivered_after_later_flows_ended_is_known_by_its_message() {
        let mut rec = Cache::default();
        let flow = |rec: &mut Cache, id: &str, message: &str| {
            let start = decide_trigger_start(rec, id, 60_000).expect("a new flow starts");
            assert!(rec.apply(&scheduled(rec, message, start)));
            let Decision::Unblock { write } = decide_trigger_end(rec, id, "end", &CLOCK) else {
                panic!("the end of {id} unblocks")
            };
            assert!(rec.apply(&write));
        };
        flow(&mut rec, "A", "m1");
        flow(&mut rec, "B", "m2");
        assert_eq!(rec.status(), Status::Stale);
        assert!(decide_trigger_start(&rec, "A", 60_000).is_some());
        assert_eq!(applied_epoch(&rec, "m1"), Some(1));
    }
}
