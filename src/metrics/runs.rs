//! Processing runs in progress in this process, for the
//! `oldest_run_seconds{set}` gauge: a run is noted when it starts and
//! forgotten when its [`RunInProgress`] is dropped, however it ends
//! (finished, cancelled at shutdown, or unwound by a panic), so a run that
//! hangs shows as a growing age at the next scrape.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Start of each run in progress, by run number.
    started: HashMap<u64, (String, Instant)>,
    /// Every set the gauge reports (configured, or seen running).
    sets: BTreeSet<String>,
}

/// The processing runs in progress.
#[derive(Default)]
pub struct Runs {
    next: AtomicU64,
    state: Arc<Mutex<State>>,
}

/// A run in progress; dropping it ends the run.
pub struct RunInProgress {
    id: u64,
    state: Arc<Mutex<State>>,
}

impl Drop for RunInProgress {
    fn drop(&mut self) {
        self.state
            .lock()
            .expect("runs lock")
            .started
            .remove(&self.id);
    }
}

impl Runs {
    /// Reports `set` even while it has no run (at 0).
    pub fn know(&self, set: &str) {
        self.state
            .lock()
            .expect("runs lock")
            .sets
            .insert(set.to_owned());
    }

    /// Notes a run of `set` starting now.
    pub fn start(&self, set: &str) -> RunInProgress {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock().expect("runs lock");
        state.sets.insert(set.to_owned());
        state.started.insert(id, (set.to_owned(), Instant::now()));
        RunInProgress {
            id,
            state: self.state.clone(),
        }
    }

    /// The age of the oldest run in progress of every known set (zero for
    /// a set with none).
    pub fn oldest(&self, now: Instant) -> Vec<(String, Duration)> {
        let state = self.state.lock().expect("runs lock");
        let mut oldest: HashMap<&str, Duration> = state
            .sets
            .iter()
            .map(|s| (s.as_str(), Duration::ZERO))
            .collect();
        for (set, started) in state.started.values() {
            let age = now.saturating_duration_since(*started);
            let entry = oldest.entry(set.as_str()).or_default();
            *entry = (*entry).max(age);
        }
        let mut out: Vec<(String, Duration)> = oldest
            .into_iter()
            .map(|(s, age)| (s.to_owned(), age))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_run_per_set_and_zero_when_none_runs() {
        let runs = Runs::default();
        runs.know("a");
        runs.know("b");
        let t0 = Instant::now();
        let first = runs.start("a");
        let second = runs.start("a");
        let later = t0 + Duration::from_secs(30);
        let ages = runs.oldest(later);
        assert_eq!(ages.len(), 2, "{ages:?}");
        assert!(ages[0].0 == "a" && ages[0].1 >= Duration::from_secs(29));
        assert_eq!(ages[1], ("b".to_owned(), Duration::ZERO));
        drop(first);
        let after_first = runs.oldest(later)[0].1;
        assert!(
            after_first <= ages[0].1,
            "the younger run is the oldest now"
        );
        drop(second);
        assert_eq!(
            runs.oldest(later),
            vec![
                ("a".to_owned(), Duration::ZERO),
                ("b".to_owned(), Duration::ZERO)
            ],
            "a set with no run in progress reports zero"
        );
    }

    #[test]
    fn a_run_dropped_by_a_panic_ends_too() {
        let runs = Arc::new(Runs::default());
        let r = runs.clone();
        let _ = std::panic::catch_unwind(move || {
            let _run = r.start("a");
            panic!("the processor blew up");
        });
        assert_eq!(
            runs.oldest(Instant::now()),
            vec![("a".to_owned(), Duration::ZERO)]
        );
    }
}
