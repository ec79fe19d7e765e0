//! No request lost behind an expired flow (DESIGN §5, invariant 3).
//!
//! A request that parks as the awaiting step of a trigger flow has its
//! message deleted: the flow's end answers it (its claim runs for it). If
//! the flow never ends, a request after its deadline claims and its run
//! answers the parked one too (same key and set; with
//! `answer_each_request` it is listed by id). But a plain `trigger` on an
//! expired flow resets the cache and clears the awaiting step: no run
//! follows it unless another request comes.
//!
//! Of the ways to carry the parked request on, this one keeps everything
//! in the trigger's hands: the trigger that is about to clear the awaiting
//! step first sends the parked request back to the queue as a request of
//! its own (same request id, same key and set), and its reset holds only
//! if the awaiting step is still that request ([`carry_parked`]). The
//! order makes a crash safe: a crash after the send and before the reset
//! leaves the trigger's message to be redelivered, which sends the request
//! again (a second copy of a request is answered like any other: one run,
//! or a hit) and resets. A reset that finds another request parked meanwhile
//! is refused and decided again on the record as it is now. The request
//! that comes back is answered by its own id and by key and set, by a run
//! after the reset, so never with data older than the trigger. What it
//! loses is its `input` (the parked request's message is gone), as a
//! trigger end's claim for it already does.
//!
//! The alternative, keeping the parked message in the queue invisible
//! until the flow's deadline, would hold a message up to 12 hours (SQS's
//! visibility limit) against shorter `trigger_timeout`s only, and make the
//! deadline the only way out even when a trigger resets earlier.

use super::{Cond, Field, Op, Val, Write};
use crate::state::Cache;

/// If `write` (a trigger's, decided on `rec`) clears the awaiting step,
/// makes it hold only while that request is still the one parked and
/// returns its id: the caller sends it back to the queue as a request
/// before it performs the write.
pub fn carry_parked(rec: &Cache, write: &mut Write) -> Option<String> {
    let parked = rec.awaiting.clone()?;
    if !write.ops.contains(&Op::Remove(Field::Awaiting)) {
        return None;
    }
    write
        .conds
        .push(Cond::Eq(Field::Awaiting, Val::Str(parked.clone())));
    Some(parked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Clock, Status, decide_trigger};

    #[test]
    fn a_reset_of_an_expired_flow_carries_its_parked_request() {
        let clock = Clock {
            now: 100_000,
            lease: 1_000,
            skew: 0,
            ttl: None,
        };
        let mut rec = Cache {
            status: Some(Status::Triggered),
            trigger_id: Some("t".into()),
            trigger_deadline: Some(50_000),
            awaiting: Some("parked".into()),
            ..Cache::default()
        };
        let mut w = decide_trigger(&rec, &clock);
        assert_eq!(carry_parked(&rec, &mut w).as_deref(), Some("parked"));
        // Another request parked meanwhile: the reset is refused.
        let mut moved = rec.clone();
        moved.awaiting = Some("other".into());
        assert!(!moved.apply(&w));
        assert!(rec.apply(&w));
        assert_eq!(rec.awaiting, None);
        // A running flow keeps its parked request: nothing to carry.
        let mut running = Cache {
            trigger_deadline: Some(200_000),
            awaiting: Some("parked".into()),
            status: Some(Status::Triggered),
            trigger_id: Some("t".into()),
            ..Cache::default()
        };
        let mut w = decide_trigger(&running, &clock);
        assert_eq!(carry_parked(&running, &mut w), None);
        assert!(running.apply(&w));
        assert_eq!(running.awaiting.as_deref(), Some("parked"));
    }
}
