//! The daemon's metrics, in Prometheus text format at `/metrics`.
//!
//! One name per concept, the same words as the code and the logs: a
//! *claim* is won or lost, a *hit* answers from the cache, a *miss* starts
//! or joins a processing run, a *lease takeover* replaces an owner whose
//! lease lapsed, requests *coalesced* share a run in this process.
//!
//! Every counter and histogram exists from the start at 0, for each
//! configured set and each label value known in advance ([`Metrics::new`]),
//! so that dashboards and alerts see 0, not "no data". The gauges an
//! operator pages on (`ready`, `oldest_run_seconds`) are current at every
//! scrape.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod known;
pub mod policies;
mod runs;

pub use known::{AWS_SERVICES, DEAD_LETTER_KINDS, QUEUES};
pub use runs::RunInProgress;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SetLabel {
    pub set: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SetKindLabel {
    pub set: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    pub event: String,
    pub set: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

type BySet = Family<SetLabel, Counter>;
type Seconds = Gauge<f64, AtomicU64>;

/// Every metric of one worker process.
pub struct Metrics {
    registry: Registry,
    pub received: Counter,
    pub deleted: Counter,
    pub hits: BySet,
    pub misses: BySet,
    pub claims_won: BySet,
    pub claims_lost: BySet,
    pub coalesced: BySet,
    pub lease_takeovers: BySet,
    pub trigger_deadline_expiries: BySet,
    pub resets: BySet,
    pub parked: BySet,
    pub processing_runs: BySet,
    pub stale_results: BySet,
    pub processing_seconds: Family<SetLabel, Histogram>,
    pub processing_failures: Family<SetKindLabel, Counter>,
    pub dead_lettered: Family<KindLabel, Counter>,
    pub events_published: Family<EventLabel, Counter>,
    pub in_flight: Gauge,
    pub receive_batch_size: Histogram,
    pub aws_errors: Family<ServiceLabel, Counter>,
    /// Every AWS request attempt, by service and operation (counted by the
    /// SDK interceptor of `aws::Clients::counting`).
    pub aws_requests: crate::aws::requests::Requests,
    pub panics: Counter,
    pub stream_records_unmatched: Counter,
    pub dependency_resets: BySet,
    /// Age of each message when received (now - SQS `SentTimestamp`).
    pub message_age_seconds: Histogram,
    /// `ApproximateNumberOfMessages` by queue, from the readiness probe.
    pub queue_messages: Family<QueueLabel, Gauge>,
    /// 1 when `/readyz` would answer ready (set at each scrape).
    pub ready: Gauge,
    /// Age of the oldest processing run in progress (set at each scrape).
    pub oldest_run_seconds: Family<SetLabel, Seconds>,
    runs: runs::Runs,
    /// The cache policies' metrics (`metrics/policies.rs`).
    pub policies: policies::PolicyMetrics,
}

fn seconds_histogram() -> Histogram {
    Histogram::new([
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ])
}

/// Ages of messages waiting on the queue: up to a day.
fn age_histogram() -> Histogram {
    Histogram::new([
        0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
        86400.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("triggered_cache");
        let m = Metrics {
            received: Counter::default(),
            deleted: Counter::default(),
            hits: BySet::default(),
            misses: BySet::default(),
            claims_won: BySet::default(),
            claims_lost: BySet::default(),
            coalesced: BySet::default(),
            lease_takeovers: BySet::default(),
            trigger_deadline_expiries: BySet::default(),
            resets: BySet::default(),
            parked: BySet::default(),
            processing_runs: BySet::default(),
            stale_results: BySet::default(),
            processing_seconds: Family::new_with_constructor(seconds_histogram),
            processing_failures: Family::default(),
            dead_lettered: Family::default(),
            events_published: Family::default(),
            in_flight: Gauge::default(),
            receive_batch_size: Histogram::new([0.0, 1.0, 2.0, 5.0, 10.0]),
            aws_errors: Family::default(),
            aws_requests: Family::default(),
            panics: Counter::default(),
            stream_records_unmatched: Counter::default(),
            dependency_resets: BySet::default(),
            message_age_seconds: age_histogram(),
            queue_messages: Family::default(),
            ready: Gauge::default(),
            oldest_run_seconds: Family::default(),
            runs: runs::Runs::default(),
            policies: policies::PolicyMetrics::default(),
            registry: Registry::default(),
        };
        registry.register(
            "messages_received",
            "Messages received from the queue",
            m.received.clone(),
        );
        registry.register(
            "messages_deleted",
            "Messages deleted from the queue",
            m.deleted.clone(),
        );
        registry.register(
            "hits",
            "Requests answered from a valid cache",
            m.hits.clone(),
        );
        registry.register(
            "misses",
            "Requests that found the cache invalid",
            m.misses.clone(),
        );
        registry.register(
            "claims_won",
            "Claims that won the item for a processing run",
            m.claims_won.clone(),
        );
        registry.register(
            "claims_lost",
            "Claims whose condition failed because the state moved",
            m.claims_lost.clone(),
        );
        registry.register(
            "coalesced",
            "Requests that shared another request's run in this process",
            m.coalesced.clone(),
        );
        registry.register(
            "lease_takeovers",
            "Claims that replaced an owner whose lease had lapsed",
            m.lease_takeovers.clone(),
        );
        registry.register(
            "trigger_deadline_expiries",
            "Claims of a trigger flow that passed its deadline without ending",
            m.trigger_deadline_expiries.clone(),
        );
        registry.register(
            "resets",
            "Caches reset by triggers and trigger flows (the reset event)",
            m.resets.clone(),
        );
        registry.register(
            "parked",
            "Requests parked as the awaiting step of a trigger flow",
            m.parked.clone(),
        );
        registry.register(
            "processing_runs",
            "Processing attempts started",
            m.processing_runs.clone(),
        );
        registry.register(
            "stale_results",
            "Results discarded because the epoch moved during the run",
            m.stale_results.clone(),
        );
        registry.register(
            "processing_seconds",
            "Duration of processing attempts",
            m.processing_seconds.clone(),
        );
        registry.register(
            "processing_failures",
            "Processing attempts that failed, by kind",
            m.processing_failures.clone(),
        );
        registry.register(
            "dead_lettered",
            "Messages sent to the dead-letter queue, by kind",
            m.dead_lettered.clone(),
        );
        registry.register(
            "events_published",
            "Completion events published, by event",
            m.events_published.clone(),
        );
        registry.register(
            "in_flight",
            "Messages being handled now",
            m.in_flight.clone(),
        );
        registry.register(
            "receive_batch_size",
            "Messages per receive call",
            m.receive_batch_size.clone(),
        );
        registry.register(
            "aws_errors",
            "Failed AWS calls, by service",
            m.aws_errors.clone(),
        );
        registry.register(
            "aws_requests",
            "AWS request attempts (retries, probes included), by service and operation",
            m.aws_requests.clone(),
        );
        registry.register(
            "panics",
            "Handler panics caught (the message went back to the queue)",
            m.panics.clone(),
        );
        registry.register(
            "stream_records_unmatched",
            "DynamoDB Stream records that matched no [[streams]] rule (dropped)",
            m.stream_records_unmatched.clone(),
        );
        registry.register(
            "dependency_resets",
            "Caches reset because an entity they depend on was triggered",
            m.dependency_resets.clone(),
        );
        registry.register(
            "message_age_seconds",
            "Age of messages when received (since SQS SentTimestamp)",
            m.message_age_seconds.clone(),
        );
        registry.register(
            "queue_messages",
            "ApproximateNumberOfMessages of the request queue and the DLQ (readiness probe)",
            m.queue_messages.clone(),
        );
        registry.register(
            "ready",
            "1 when /readyz answers ready, else 0",
            m.ready.clone(),
        );
        registry.register(
            "oldest_run_seconds",
            "Age of the oldest processing run in progress in this process (0 when none)",
            m.oldest_run_seconds.clone(),
        );
        m.policies.register(&mut registry);
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Notes a processing run of `set` in progress until the returned
    /// value is dropped.
    pub fn run_started(&self, set: &str) -> RunInProgress {
        self.runs.start(set)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        for (set, age) in self.runs.oldest(Instant::now()) {
            self.oldest_run_seconds
                .get_or_create(&Self::set(&set))
                .set(age.as_secs_f64());
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    pub fn set(set: &str) -> SetLabel {
        SetLabel {
            set: set.to_owned(),
        }
    }

    /// Counts a failed call to an AWS service (`dynamodb`, `sqs`, `sns`).
    pub fn aws_error(&self, service: &str) {
        self.aws_errors
            .get_or_create(&ServiceLabel {
                service: service.to_owned(),
            })
            .inc();
    }

    /// Increments a per-set counter.
    pub fn inc(family: &BySet, set: &str) {
        family.get_or_create(&Self::set(set)).inc();
    }

    /// Reads a per-set counter (tests, CLI).
    pub fn count(family: &BySet, set: &str) -> u64 {
        family.get_or_create(&Self::set(set)).get()
    }
}

#[cfg(test)]
mod tests;
