//! Batching of per-message AWS calls.
//!
//! Calls arrive one message at a time from many tasks (SQS deletes and
//! visibility changes, DynamoDB reads, SNS events); a [`Batcher`] gathers up
//! to its maximum (the service's batch limit: 10 for SQS and SNS, 100 for
//! `BatchGetItem`) for at most a few milliseconds and sends them in one
//! batch call, then hands each caller its own entry's result. Flushes run
//! concurrently, so one slow call does not hold the next batch.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

type Reply<O, E> = oneshot::Sender<Result<O, E>>;

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
}

impl<T, E, O> Clone for Batcher<T, E, O> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<T: Send + 'static, E: From<Lost> + Send + 'static, O: Send + 'static> Batcher<T, E, O> {
    /// Starts the batching task. `flush` gets from 1 to `max` entries (what
    /// arrived within `linger` of the first) and returns one result per
    /// entry, in order.
    pub fn spawn<F, Fut>(max: usize, linger: Duration, flush: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<O, E>>> + Send + 'static,
    {
        let max = max.max(1);
        let (tx, mut rx) = mpsc::channel::<(T, Reply<O, E>)>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + linger;
                while batch.len() < max {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(entry)) => batch.push(entry),
                        Ok(None) | Err(_) => break,
                    }
                }
                let (entries, replies): (Vec<T>, Vec<Reply<O, E>>) = batch.into_iter().unzip();
                let fut = flush(entries);
                tokio::spawn(async move {
                    let results = fut.await;
                    let mut results = results.into_iter();
                    for reply in replies {
                        let r = results.next().unwrap_or_else(|| Err(Lost::NoResult.into()));
                        let _ = reply.send(r);
                    }
                });
            }
        });
        Batcher { tx }
    }

    /// Submits one entry and waits for its own result.
    pub async fn submit(&self, entry: T) -> Result<O, E> {
        let (tx, rx) = oneshot::channel();
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
