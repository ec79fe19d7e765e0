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
    /// A `trigger_start` whose flow ended while it was being written.
    FlowEndedMeanwhile { trigger_id: &'a str },
    /// A cache of `set` was reset because an entity it depends on was
    /// triggered.
    DependentReset { set: &'a str },
    /// A dependency trigger for `entity` reset `caches` dependent caches.
    DependencyTriggered { entity: &'a str, caches: usize },
    /// Stream records that matched no `[[streams]]` rule were dropped.
    StreamRecordsUnmatched { records: usize },
    /// A processor reported `dependsOn` but dependency tracking is off.
    DependenciesNotTracked { entities: usize },
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
            TriggerEvent::FlowEndedMeanwhile { trigger_id } => info!(
                trigger_id,
                "trigger flow ended meanwhile (late or redelivered trigger_start); nothing to do"
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
        }
    }
}
