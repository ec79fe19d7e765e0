//! The label values known in advance, whose series exist from the start
//! at 0: dashboards and alerts then read 0, not "no data".

use prometheus_client::metrics::family::{Family, MetricConstructor};

use super::{EventLabel, KindLabel, Metrics, QueueLabel, ServiceLabel, SetKindLabel};
use crate::config::Config;
use crate::events::EventKind;
use crate::processor::ProcessError;

/// The kinds of dead-letter (the `kind` of
/// [`crate::worker::Disposition::DeadLetter`]).
pub const DEAD_LETTER_KINDS: [&str; 2] = ["malformed", "failed"];
/// The AWS services whose failed calls are counted.
pub const AWS_SERVICES: [&str; 4] = ["sqs", "dynamodb", "sns", "s3"];
/// The queues whose depth is reported: the request queue and the DLQ.
pub const QUEUES: [&str; 2] = ["requests", "dlq"];

/// Creates the series of `labels` (at 0) so that it is listed before it
/// first counts.
fn at_zero<S, M, C>(family: &Family<S, M, C>, labels: &S)
where
    S: Clone + std::hash::Hash + Eq,
    C: MetricConstructor<M>,
{
    let _series = family.get_or_create(labels);
}

impl Metrics {
    /// The metrics of a process with this configuration: every labelled
    /// series whose labels are known in advance exists at 0.
    pub fn new(cfg: &Config) -> Self {
        let m = Metrics::default();
        let failure_kinds = [
            ProcessError::Retryable(String::new()).kind(),
            ProcessError::Permanent(String::new()).kind(),
        ];
        for set in cfg.sets.keys() {
            let label = Self::set(set);
            for family in [
                &m.hits,
                &m.misses,
                &m.claims_won,
                &m.claims_lost,
                &m.coalesced,
                &m.lease_takeovers,
                &m.trigger_deadline_expiries,
                &m.resets,
                &m.parked,
                &m.processing_runs,
                &m.stale_results,
                &m.dependency_resets,
            ] {
                at_zero(family, &label);
            }
            at_zero(&m.processing_seconds, &label);
            for kind in failure_kinds {
                at_zero(
                    &m.processing_failures,
                    &SetKindLabel {
                        set: set.clone(),
                        kind: kind.into(),
                    },
                );
            }
            for event in cfg.sns.events.iter().copied().map(EventKind::as_str) {
                at_zero(
                    &m.events_published,
                    &EventLabel {
                        event: event.into(),
                        set: set.clone(),
                    },
                );
            }
            m.runs.know(set);
            m.policies.know(set);
            at_zero(&m.oldest_run_seconds, &label);
        }
        for kind in DEAD_LETTER_KINDS {
            at_zero(&m.dead_lettered, &KindLabel { kind: kind.into() });
        }
        for service in AWS_SERVICES {
            at_zero(
                &m.aws_errors,
                &ServiceLabel {
                    service: service.into(),
                },
            );
        }
        for labels in crate::aws::requests::daemon_operations() {
            at_zero(&m.aws_requests, &labels);
        }
        for queue in QUEUES {
            at_zero(
                &m.queue_messages,
                &QueueLabel {
                    queue: queue.into(),
                },
            );
        }
        m
    }
}
