//! Batching of per-message SQS calls.
//!
//! Deletes and visibility changes arrive one message at a time from many
//! tasks; a [`Batcher`] gathers up to 10 of them (the SQS batch limit) for
//! at most a few milliseconds and sends them in one `*Batch` call, then
//! hands each caller its own entry's result. Flushes run concurrently, so
//! one slow call does not hold the next batch.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// The SQS limit of entries per batch call.
pub const MAX_BATCH: usize = 10;

type Reply<E> = oneshot::Sender<Result<(), E>>;

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
/// entry's result is `Result<(), E>`.
#[derive(Debug)]
pub struct Batcher<T, E> {
    tx: mpsc::Sender<(T, Reply<E>)>,
}

impl<T, E> Clone for Batcher<T, E> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<T: Send + 'static, E: From<Lost> + Send + 'static> Batcher<T, E> {
    /// Starts the batching task. `flush` gets up to [`MAX_BATCH`] entries
    /// and returns one result per entry, in order.
    pub fn spawn<F, Fut>(linger: Duration, flush: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<(), E>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<(T, Reply<E>)>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + linger;
                while batch.len() < MAX_BATCH {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(entry)) => batch.push(entry),
                        Ok(None) | Err(_) => break,
                    }
                }
                let (entries, replies): (Vec<T>, Vec<Reply<E>>) = batch.into_iter().unzip();
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
    pub async fn submit(&self, entry: T) -> Result<(), E> {
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
        let b = Batcher::spawn(Duration::from_millis(50), move |entries: Vec<u32>| {
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
        assert!(sizes.iter().all(|&n| n <= MAX_BATCH), "{sizes:?}");
        assert!(sizes.len() < 25, "no batching happened: {sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 25);
    }
}
