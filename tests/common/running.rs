//! The worker pool in process, in a runtime of its own, so that a test can
//! stop it gracefully or crash it, and read its metrics.

use std::sync::Arc;

use triggered_cache::config::Config;
use triggered_cache::processor::Processor;
use triggered_cache::{Worker, daemon};

/// A worker pool running in its own runtime on its own thread, so that a
/// test can stop it gracefully or crash it (drop everything at once).
pub struct Running {
    pub worker: Arc<Worker>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    crash: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn start(cfg: Config, processors: Vec<(&str, Arc<dyn Processor>)>) -> Running {
        let (worker_tx, worker_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
        let processors: Vec<(String, Arc<dyn Processor>)> = processors
            .into_iter()
            .map(|(s, p)| (s.to_string(), p))
            .collect();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let (crash_async_tx, crash_async_rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                if crash_rx.recv().is_ok() {
                    let _ = crash_async_tx.send(());
                }
            });
            rt.block_on(async move {
                let sdk = super::emulator::sdk().await;
                let mut worker = daemon::worker(cfg.validated().unwrap(), &sdk).unwrap();
                for (set, p) in processors {
                    worker = worker.with_processor(&set, p);
                }
                worker.check().unwrap();
                let worker = Arc::new(worker);
                worker_tx.send(worker.clone()).unwrap();
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                tokio::select! {
                    r = triggered_cache::pool::serve(Arc::new(worker.pool()), shutdown) => r.unwrap(),
                    _ = crash_async_rx => {}
                }
            });
            rt.shutdown_background();
        });
        let worker = worker_rx.recv().unwrap();
        Running {
            worker,
            stop: Some(stop_tx),
            crash: Some(crash_tx),
            thread: Some(thread),
        }
    }

    /// Graceful shutdown: returns when the pool has drained.
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// A crash: every task of this worker is dropped where it stands; no
    /// message is deleted or returned, no lease released.
    pub fn crash(mut self) {
        if let Some(c) = self.crash.take() {
            let _ = c.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn metric(&self, family: &str, set: &str) -> u64 {
        let m = &self.worker.metrics();
        let f = match family {
            "hits" => &m.hits,
            "misses" => &m.misses,
            "claims_won" => &m.claims_won,
            "claims_lost" => &m.claims_lost,
            "coalesced" => &m.coalesced,
            "lease_takeovers" => &m.lease_takeovers,
            "processing_runs" => &m.processing_runs,
            "stale_results" => &m.stale_results,
            "resets" => &m.resets,
            "parked" => &m.parked,
            "trigger_deadline_expiries" => &m.trigger_deadline_expiries,
            other => panic!("unknown metric {other}"),
        };
        triggered_cache::metrics::Metrics::count(f, set)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
