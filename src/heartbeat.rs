//! One heartbeat per message in flight.
//!
//! On every tick (`worker.heartbeat_interval`) it extends the message's
//! visibility, so that no other replica receives it meanwhile, and, while
//! the message's processing run holds a lease, renews the lease in the
//! same tick. A renewal that is rejected means the run was invalidated (a
//! trigger moved the epoch, or the lease was taken over): the run is told
//! at once and stops early.
//!
//! The heartbeat also remembers the lease of a run that never finished (a
//! panic, or an abort at shutdown), so that the pool releases it instead of
//! leaving the item blocked until the lease lapses.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::aws::queue::Queue;
use crate::aws::table::{Table, Updated};
use crate::item::{Item, Key};
use crate::metrics::Metrics;
use crate::observe::PoolEvent;
use crate::state::{self, Clock};

/// The lease a processing run holds: renewed by `rid` for `epoch`.
#[derive(Clone, Debug)]
pub struct Lease {
    pub key: Key,
    pub set: String,
    pub rid: String,
    pub epoch: i64,
    /// The lease of a background refresh (`refresh_after`): renewed and
    /// released by its own writes, the cache staying `READY`.
    pub refresh: bool,
}

struct Held {
    lease: Lease,
    /// Told the item as it is now when a renewal is rejected.
    invalidated: Option<oneshot::Sender<Item>>,
}

/// What the heartbeat of one message keeps alive.
#[derive(Default)]
pub struct Heartbeat {
    held: Mutex<Option<Held>>,
}

/// What a heartbeat needs to do its work: built once per pool and shared
/// by every message's heartbeat.
#[derive(Clone)]
pub struct Beats {
    pub queue: Queue,
    pub table: Table,
    pub metrics: Arc<Metrics>,
    pub period: Duration,
    pub visibility: Duration,
    pub lease: Duration,
}

impl Heartbeat {
    /// Renews `lease` on every tick until [`Heartbeat::clear`]; the
    /// receiver gets the item if a renewal is rejected.
    pub fn hold(&self, lease: Lease) -> oneshot::Receiver<Item> {
        let (tx, rx) = oneshot::channel();
        *self.held.lock().expect("heartbeat lock") = Some(Held {
            lease,
            invalidated: Some(tx),
        });
        rx
    }

    /// The run ended (its outcome is written, or it was invalidated).
    pub fn clear(&self) {
        self.held.lock().expect("heartbeat lock").take();
    }

    fn lease(&self) -> Option<Lease> {
        self.held
            .lock()
            .expect("heartbeat lock")
            .as_ref()
            .map(|h| h.lease.clone())
    }

    /// A renewal of `lease` was rejected: tell the run, once.
    fn invalidate(&self, lease: &Lease, now: Item) {
        let mut held = self.held.lock().expect("heartbeat lock");
        if let Some(h) = held.as_mut()
            && h.lease.rid == lease.rid
            && h.lease.epoch == lease.epoch
            && let Some(tx) = h.invalidated.take()
        {
            let _ = tx.send(now);
            *held = None;
        }
    }

    /// Beats until dropped (the pool drops it when the handling ends).
    pub async fn run(&self, beats: &Beats, receipt: &str) -> std::convert::Infallible {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + beats.period, beats.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let visible = beats.queue.set_visibility(receipt, beats.visibility);
            let renew = self.renew(beats);
            let (visible, ()) = tokio::join!(visible, renew);
            if let Err(error) = visible {
                PoolEvent::VisibilityExtendFailed { error: &error }.emit(&beats.metrics);
            }
        }
    }

    async fn renew(&self, beats: &Beats) {
        let Some(lease) = self.lease() else { return };
        let clock = Clock {
            now: crate::clock::now_millis(),
            lease: beats.lease.as_millis() as i64,
            skew: 0,
            ttl: None,
        };
        let write = if lease.refresh {
            state::renew_refresh(&lease.rid, lease.epoch, &clock)
        } else {
            state::renew(&lease.rid, lease.epoch, &clock)
        };
        match beats
            .table
            .update(&lease.key, &[(&lease.set, &write)])
            .await
        {
            Ok(Updated::Applied(_)) => {}
            // The run logs it (observe/notes.rs).
            Ok(Updated::Rejected(now)) => self.invalidate(&lease, now),
            Err(error) => PoolEvent::LeaseRenewalFailed { error: &error }.emit(&beats.metrics),
        }
    }

    /// Gives up the lease of a run that did not finish (aborted at
    /// shutdown, or panicked), so that another replica or the message's
    /// redelivery continues at once instead of waiting for it to lapse.
    pub async fn release(&self, table: &Table, metrics: &Metrics) {
        let Some(Lease {
            key,
            set,
            rid,
            epoch,
            refresh,
        }) = self.lease()
        else {
            return;
        };
        self.clear();
        let write = if refresh {
            state::release_refresh(&rid, epoch)
        } else {
            state::release(&rid, epoch)
        };
        match table.update(&key, &[(set.as_str(), &write)]).await {
            Ok(Updated::Applied(_)) => PoolEvent::LeaseReleased {
                key: &key,
                set: &set,
                rid: &rid,
            }
            .emit(metrics),
            Ok(Updated::Rejected(_)) => {}
            Err(error) => PoolEvent::LeaseReleaseFailed {
                key: &key,
                set: &set,
                error: &error,
            }
            .emit(metrics),
        }
    }
}
