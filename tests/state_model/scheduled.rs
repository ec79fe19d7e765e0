//! The model's scheduled triggers (`state/schedule.rs`) and the parked
//! requests a trigger carries on (`state/parked.rs`), as
//! `worker/schedule.rs` and `worker/triggers.rs` carry them out.

use triggered_cache::state::{self, Write};

use super::world::*;

impl World {
    /// A trigger about to clear the awaiting step of an expired flow first
    /// sends the parked request back to the queue (same request id).
    pub(crate) fn carry_parked(&mut self, write: &mut Write) {
        if let Some(rid) = state::carry_parked(&self.store, write) {
            let i = self.send(Kind::Request);
            self.msgs[i].rid = rid;
            self.carried += 1;
        }
    }

    /// What follows a trigger's write: runs of the old epoch are
    /// invalidated (invariant 2) and the reset is announced.
    pub(crate) fn after_trigger(&mut self, before: &state::Cache) {
        if self.store.epoch() != before.epoch() {
            self.end_runs();
            self.emit("reset", self.store.epoch(), vec![], 0);
        }
    }

    /// A scheduled trigger delivered: not due yet, it is sent again (and
    /// deleted, unless its worker crashes first: `crash`); due, it takes
    /// effect once per schedule, whatever the number of copies.
    pub(crate) fn deliver_scheduled(&mut self, msg: usize, crash: bool) {
        let Kind::Scheduled { sid, at } = self.msgs[msg].kind.clone() else {
            unreachable!("a scheduled trigger")
        };
        if self.now < at {
            let copy = self.send(Kind::Scheduled {
                sid: sid.clone(),
                at,
            });
            self.msgs[copy].rid = sid;
            self.resent += 1;
            self.msgs[msg].state = if crash {
                MsgState::Pending
            } else {
                MsgState::Done
            };
            return;
        }
        self.msgs[msg].state = MsgState::Done;
        if let Some(epoch) = state::applied_epoch(&self.store, &sid) {
            // A second copy: the same reset event again, nothing else.
            self.second_copies += 1;
            self.emit("reset", epoch, vec![], 0);
            return;
        }
        let before = self.store.clone();
        let write = state::decide_trigger(&self.store, &self.clock());
        let mut write = state::scheduled(&self.store, &sid, write);
        self.carry_parked(&mut write);
        assert!(
            self.store.apply(&write),
            "a scheduled trigger decided on the current state holds"
        );
        *self.schedules.entry(sid).or_default() += 1;
        self.after_trigger(&before);
    }

    /// Scheduled triggers take effect at most once (after every step) and,
    /// once everything settled, exactly once.
    pub(crate) fn check_schedules(&self, settled: bool) {
        for (sid, n) in &self.schedules {
            assert!(*n <= 1, "schedule {sid} took effect {n} times");
        }
        if settled {
            for m in &self.msgs {
                if let Kind::Scheduled { sid, .. } = &m.kind {
                    assert_eq!(self.schedules.get(sid), Some(&1), "schedule {sid}");
                }
            }
        }
    }
}
