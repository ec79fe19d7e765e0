//! Batching of per-message AWS calls.
//!
//! Calls arrive one message at a time from many tasks (SQS deletes and
//! visibility changes, DynamoDB reads, SNS events); a [`Batcher`] gathers up
//! to its maximum (the service's batch limit: 10 for SQS and SNS, 100 for
//! `BatchGetItem`) for at most a few milliseconds and sends them in one
//! batch call, then hands each caller its own entry's result. Flushes run
//! concurrently, so one slow call does not hold the next batch.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

mod answering;
pub use answering::{Answering, OnTheWay, Step, waiting_on_another};

type Reply<O, E> = oneshot::Sender<Result<O, E>>;

/// How long a batch waits for more entries after its first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linger {
    /// Always this long: for calls on an answer's path (reads, events),
    /// where every millisecond is a requester's.
    Fixed(Duration),
    /// Half the batch call's recent latency, within `[min, max]`: for calls
    /// off the answer's path (deletes, visibility changes). On a slow
    /// backend, waiting a fraction of a call's own latency fills batches
    /// (fewer, cheaper calls); on a fast one the wait stays short.
    Adaptive { min: Duration, max: Duration },
}

impl From<Duration> for Linger {
    fn from(d: Duration) -> Self {
        Linger::Fixed(d)
    }
}

impl Linger {
    /// The wait, given the batch calls' latency so far (an average).
    pub fn wait(self, latency: Duration) -> Duration {
        match self {
            Linger::Fixed(d) => d,
            Linger::Adaptive { min, max } => (latency / 2).clamp(min, max.max(min)),
        }
    }
}

/// The batch calls' latency, as an exponentially weighted moving average
/// (1/8 per call) in microseconds.
#[derive(Debug, Default)]
struct Latency(AtomicU64);

impl Latency {
    fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }

    fn observe(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let old = self.0.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.0.store(new, Ordering::Relaxed);
    }
}

/// Why an entry got no result of its own from the batch call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    #[error("the batcher has stopped")]
    Stopped,
    #[error("the batch call was dropped")]
    Dropped,
    #[error("no result for this batch entry")]
    NoResult,
}

/// A handle to a background task that batches entries of type `T`; each
/// entry's result is `Result<O, E>`.
#[derive(Debug)]
pub struct Batcher<T, E, O = ()> {
    tx: mpsc::Sender<(T, Reply<O, E>)>,
    /// The answer's step this batcher is, if it knows the company.
    step: Option<Step>,
}

impl<T, E, O> Clone for Batcher<T, E, O> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
            step: self.step,
        }
    }
}

impl<T: Send + 'static, E: From<Lost> + Send + 'static, O: Send + 'static> Batcher<T, E, O> {
    /// Starts the batching task. `flush` gets from 1 to `max` entries (what
    /// arrived within the linger of the first) and returns one result per
    /// entry, in order.
    pub fn spawn<F, Fut>(max: usize, linger: impl Into<Linger>, flush: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<O, E>>> + Send + 'static,
    {
        Self::spawn_answering(max, linger, None, flush)
    }

    /// Like [`Batcher::spawn`], for the calls of an answer's `step`: with
    /// `answering`, a batch lingers only while messages on their way to an
    /// answer have yet to reach the step.
    pub fn spawn_answering<F, Fut>(
        max: usize,
        linger: impl Into<Linger>,
        answering: Option<(Answering, Step)>,
        flush: F,
    ) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<O, E>>> + Send + 'static,
    {
        let max = max.max(1);
        let linger = linger.into();
        let latency = Arc::new(Latency::default());
        let (tx, mut rx) = mpsc::channel::<(T, Reply<O, E>)>(1024);
        let step = answering.as_ref().map(|(_, step)| *step);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                // One timer for the whole linger, armed (first polled) only
                // when the entries already queued do not fill the batch and
                // more are on their way.
                let timer = tokio::time::sleep(linger.wait(latency.get()));
                tokio::pin!(timer);
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(entry) => {
                            batch.push(entry);
                            continue;
                        }
                        Err(TryRecvError::Disconnected) => break,
                        Err(TryRecvError::Empty) => {}
                    }
                    if answering
                        .as_ref()
                        .is_some_and(|(a, step)| !a.expects(*step))
                    {
                        break;
                    }
                    tokio::select! {
                        biased;
                        entry = rx.recv() => match entry {
                            Some(entry) => batch.push(entry),
                            None => break,
                        },
                        () = &mut timer => break,
                    }
                }
                let (entries, replies): (Vec<T>, Vec<Reply<O, E>>) = batch.into_iter().unzip();
                let fut = flush(entries);
                let latency = latency.clone();
                tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    let results = fut.await;
                    latency.observe(started.elapsed());
                    let mut results = results.into_iter();
                    for reply in replies {
                        let r = results.next().unwrap_or_else(|| Err(Lost::NoResult.into()));
                        let _ = reply.send(r);
                    }
                });
            }
        });
        Batcher { tx, step }
    }

    /// Submits one entry and waits for its own result.
    pub async fn submit(&self, entry: T) -> Result<O, E> {
        let (tx, rx) = oneshot::channel();
        if let Some(step) = self.step {
            // Passed before the entry is queued, so the batcher never sees
            // the entry while still counting its message as to come.
            answering::pass(step);
        }
        self.tx
            .send((entry, tx))
            .await
            .map_err(|_| E::from(Lost::Stopped))?;
        rx.await.map_err(|_| E::from(Lost::Dropped))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adaptive_linger_is_half_the_latency_within_its_bounds() {
        let l = Linger::Adaptive {
            min: Duration::from_millis(5),
            max: Duration::from_millis(50),
        };
        assert_eq!(l.wait(Duration::ZERO), Duration::from_millis(5));
        assert_eq!(l.wait(Duration::from_millis(40)), Duration::from_millis(20));
        assert_eq!(l.wait(Duration::from_secs(2)), Duration::from_millis(50));
        assert_eq!(
            Linger::from(Duration::from_millis(3)).wait(Duration::from_secs(1)),
            Duration::from_millis(3)
        );
        let avg = Latency::default();
        avg.observe(Duration::from_millis(80));
        assert_eq!(avg.get(), Duration::from_millis(80));
        for _ in 0..40 {
            avg.observe(Duration::from_millis(8));
        }
        assert!(avg.get() < Duration::from_millis(9), "{:?}", avg.get());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_backend_fills_batches_with_an_adaptive_linger() {
        // Entries arrive 4 ms apart; each batch call takes 60 ms.
        async fn calls(linger: Linger) -> usize {
            let calls = Arc::new(AtomicU64::new(0));
            let seen = calls.clone();
            let b = Batcher::spawn(10, linger, move |entries: Vec<u32>| {
                seen.fetch_add(1, Ordering::Relaxed);
                async move {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                    entries.iter().map(|_| Ok::<(), Lost>(())).collect()
                }
            });
            let mut waiting = Vec::new();
            for i in 0..100 {
                let b = b.clone();
                waiting.push(tokio::spawn(async move { b.submit(i).await }));
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            for w in waiting {
                w.await.unwrap().unwrap();
            }
            calls.load(Ordering::Relaxed) as usize
        }
        let fixed = calls(Linger::Fixed(Duration::from_millis(2))).await;
        let adaptive = calls(Linger::Adaptive {
            min: Duration::from_millis(2),
            max: Duration::from_millis(50),
        })
        .await;
        assert_eq!(fixed, 100, "a 2 ms linger never catches the next entry");
        // Until the first calls report their latency it waits the minimum.
        assert!(adaptive * 3 < fixed, "{adaptive} calls for 100 entries");
    }
    use std::sync::{Arc, Mutex};

    #[derive(Debug)]
    enum TestError {
        Odd(u32),
        Lost(Lost),
    }

    impl From<Lost> for TestError {
        fn from(l: Lost) -> Self {
            TestError::Lost(l)
        }
    }

    #[tokio::test]
    async fn entries_are_batched_and_results_routed() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let b = Batcher::spawn(10, Duration::from_millis(50), move |entries: Vec<u32>| {
            seen.lock().unwrap().push(entries.len());
            async move {
                entries
                    .into_iter()
                    .map(|e| {
                        if e % 2 == 0 {
                            Ok(())
                        } else {
                            Err(TestError::Odd(e))
                        }
                    })
                    .collect()
            }
        });
        let results = futures::future::join_all((0..25).map(|i| {
            let b = b.clone();
            async move { b.submit(i).await }
        }))
        .await;
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(()) => assert!(i % 2 == 0, "entry {i}"),
                Err(TestError::Odd(e)) => assert_eq!(*e as usize, i),
                Err(TestError::Lost(l)) => panic!("entry {i}: {l}"),
            }
        }
        let sizes = sizes.lock().unwrap().clone();
        assert!(sizes.iter().all(|&n| n <= 10), "{sizes:?}");
        assert!(sizes.len() < 25, "no batching happened: {sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 25);
    }

    /// Each batcher has its own maximum, and each caller gets its own
    /// entry's value back.
    #[tokio::test]
    async fn the_maximum_is_the_batchers_and_values_reach_their_callers() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let b: Batcher<u32, TestError, u32> =
            Batcher::spawn(100, Duration::from_millis(50), move |entries: Vec<u32>| {
                seen.lock().unwrap().push(entries.len());
                async move { entries.into_iter().map(|e| Ok(e * 2)).collect() }
            });
        let results = futures::future::join_all((0..150).map(|i| {
            let b = b.clone();
            async move { b.submit(i).await }
        }))
        .await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.ok(), Some(2 * i as u32), "entry {i}");
        }
        let sizes = sizes.lock().unwrap().clone();
        assert!(sizes.iter().all(|&n| n <= 100), "{sizes:?}");
        assert!(
            sizes.iter().any(|&n| n > 10),
            "more than 10 at once: {sizes:?}"
        );
    }
}
