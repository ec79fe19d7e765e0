//! The events of triggers: `trigger`, `trigger_start`, dependency triggers
//! and stream records (DESIGN §4), and dependency tracking.

use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// Something a trigger did.
pub enum TriggerEvent<'a> {
    /// A `trigger` reset the cache of `set` (the `reset` event).
    Reset {
        set: &'a str,
        epoch: i64,
        status: &'a str,
    },
    /// A `trigger_start` reset the cache of `set` and holds reprocessing
    /// until its flow ends (the `reset` event).
    FlowStarted {
        set: &'a str,
        trigger_id: &'a str,
        epoch: i64,
    },
    /// A redelivered `trigger_start` whose flow runs or ended already.
    FlowAlreadyStarted { trigger_id: &'a str },
    /// A cache of `set` was reset because an entity it depends on was
    /// triggered.
    DependentReset { set: &'a str },
    /// A dependency trigger for `entity` reset `caches` dependent caches.
    DependencyTriggered { entity: &'a str, caches: usize },
    /// Stream records that matched no `[[streams]]` rule were dropped.
    StreamRecordsUnmatched { records: usize },
    /// A processor reported `dependsOn` but dependency tracking is off.
    DependenciesNotTracked { entities: usize },
    /// A scheduled trigger not due yet was sent back to the queue, held
    /// back for `delay_secs`; it is due at `at`.
    ScheduleHeld {
        schedule_id: &'a str,
        at: &'a str,
        delay_secs: u64,
    },
    /// A second copy of a scheduled trigger that took effect already (a
    /// crash between the re-send and the delete), or a redelivered
    /// `trigger_start` (`schedule_id` is then its MessageId): its `reset`
    /// event is published again (same epoch, same eventId), nothing else.
    ScheduleAlreadyApplied {
        set: &'a str,
        schedule_id: &'a str,
        epoch: i64,
    },
    /// A trigger about to clear the awaiting step of an expired flow sent
    /// the parked request back to the queue (`state/parked.rs`).
    ParkedCarried { set: &'a str, request_id: &'a str },
}

impl TriggerEvent<'_> {
    /// Logs the event and counts it.
    pub fn emit(&self, metrics: &Metrics) {
        match *self {
            TriggerEvent::Reset { set, epoch, status } => {
                Metrics::inc(&metrics.resets, set);
                info!(set, epoch, status, "cache reset by trigger");
            }
            TriggerEvent::FlowStarted {
                set,
                trigger_id,
                epoch,
            } => {
                Metrics::inc(&metrics.resets, set);
                info!(
                    trigger_id,
                    epoch, "trigger flow started; reprocessing held until it ends"
                );
            }
            TriggerEvent::FlowAlreadyStarted { trigger_id } => info!(
                trigger_id,
                "trigger flow already running or already ended (redelivered trigger_start); nothing to do"
            ),
            TriggerEvent::DependentReset { set } => Metrics::inc(&metrics.dependency_resets, set),
            TriggerEvent::DependencyTriggered { entity, caches } => info!(
                entity,
                caches, "dependency triggered; dependent caches reset"
            ),
            TriggerEvent::StreamRecordsUnmatched { records } => {
                metrics.stream_records_unmatched.inc_by(records as u64);
                debug!(records, "stream records matched no rule; dropped");
            }
            TriggerEvent::DependenciesNotTracked { entities } => warn!(
                entities,
                "the processor reported dependsOn but dependencies.table is not set; not tracked"
            ),
            TriggerEvent::ScheduleHeld {
                schedule_id,
                at,
                delay_secs,
            } => info!(
                schedule_id,
                at, delay_secs, "scheduled trigger not due yet; sent back to the queue"
            ),
            TriggerEvent::ScheduleAlreadyApplied {
                set,
                schedule_id,
                epoch,
            } => info!(
                set,
                schedule_id,
                epoch,
                "trigger took effect already (a redelivered trigger_start, or a second copy of a schedule); re-publishing its reset"
            ),
            TriggerEvent::ParkedCarried { set, request_id } => info!(
                set,
                parked_request_id = request_id,
                "the trigger resets an expired flow: its parked request is sent back to the queue"
            ),
        }
    }
}
