//! The metrics of the cache policies (`serve_stale`, `failure_ttl`,
//! `refresh_after`), counted only in `observe/notes.rs`, where each
//! policy's note is also logged.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{BySet, SetLabel};

/// How a background refresh went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabel {
    pub set: String,
    /// `started`, `committed`, `failed`, `lost` (a trigger won, or another
    /// replica refreshes).
    pub outcome: String,
}

/// The outcomes of a refresh, known in advance.
pub const REFRESH_OUTCOMES: [&str; 4] = ["started", "committed", "failed", "lost"];

/// Ages of values answered stale: seconds to a day.
fn stale_age_histogram() -> Histogram {
    Histogram::new([
        1.0, 10.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
    ])
}

pub struct PolicyMetrics {
    pub stale_answers: BySet,
    pub stale_answer_age_seconds: Family<SetLabel, Histogram>,
    pub failures_cached: BySet,
    pub refreshes: Family<RefreshLabel, Counter>,
}

impl Default for PolicyMetrics {
    fn default() -> Self {
        PolicyMetrics {
            stale_answers: BySet::default(),
            stale_answer_age_seconds: Family::new_with_constructor(stale_age_histogram),
            failures_cached: BySet::default(),
            refreshes: Family::default(),
        }
    }
}

impl PolicyMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "stale_answers",
            "Requests answered at once with a stale value (serve_stale)",
            self.stale_answers.clone(),
        );
        registry.register(
            "stale_answer_age_seconds",
            "Age of the values answered stale (serve_stale)",
            self.stale_answer_age_seconds.clone(),
        );
        registry.register(
            "failures_cached",
            "Requests answered with a recent failure instead of a run (failure_ttl)",
            self.failures_cached.clone(),
        );
        registry.register(
            "refreshes",
            "Background refreshes by outcome (refresh_after)",
            self.refreshes.clone(),
        );
    }

    /// Counts a refresh of `set` that ended (or started) with `outcome`.
    pub fn refresh(&self, set: &str, outcome: &str) {
        self.refreshes
            .get_or_create(&RefreshLabel {
                set: set.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Creates the series of `set` at 0.
    pub(super) fn know(&self, set: &str) {
        let label = SetLabel {
            set: set.to_owned(),
        };
        let _ = self.stale_answers.get_or_create(&label);
        let _ = self.failures_cached.get_or_create(&label);
        for outcome in REFRESH_OUTCOMES {
            let _ = self.refreshes.get_or_create(&RefreshLabel {
                set: set.to_owned(),
                outcome: outcome.to_owned(),
            });
        }
    }
}
