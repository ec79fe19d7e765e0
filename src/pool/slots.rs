//! How many in-flight slots a poller takes for one receive.
//!
//! A receive asks SQS for as many messages as the poller holds slots, so a
//! message always starts at once. Taking only the slots free at that
//! moment made receives collapse to one message under load: slots come
//! back one at a time as runs end, and each freed slot became a receive of
//! one. So while work is in flight a poller waits up to a short linger for
//! a batch's worth; with nothing in flight no slot will come back, and it
//! receives at once with what it has.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Takes at least one slot, then up to `batch` of the `total`, waiting at
/// most `linger` for more while other work holds slots. `None` when the
/// pool stops meanwhile (the slots taken are given back).
pub(super) async fn take(
    slots: &Arc<Semaphore>,
    total: usize,
    batch: usize,
    linger: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Option<OwnedSemaphorePermit> {
    let batch = batch.clamp(1, total.max(1));
    let mut permits = tokio::select! {
        p = slots.clone().acquire_owned() => p.ok()?,
        _ = stop.changed() => return None,
    };
    grab_free(slots, &mut permits, batch);
    let deadline = tokio::time::Instant::now() + linger;
    while permits.num_permits() < batch && in_flight(slots, &permits, total) {
        tokio::select! {
            p = tokio::time::timeout_at(deadline, slots.clone().acquire_owned()) => match p {
                Ok(Ok(p)) => {
                    permits.merge(p);
                    grab_free(slots, &mut permits, batch);
                }
                _ => break,
            },
            _ = stop.changed() => return None,
        }
    }
    Some(permits)
}

/// Adds the slots free right now, up to `batch`.
fn grab_free(slots: &Arc<Semaphore>, permits: &mut OwnedSemaphorePermit, batch: usize) {
    while permits.num_permits() < batch {
        match slots.clone().try_acquire_owned() {
            Ok(p) => permits.merge(p),
            Err(_) => break,
        }
    }
}

/// Whether slots are held by others (work in flight, or another poller):
/// only then can waiting bring more.
fn in_flight(slots: &Semaphore, held: &OwnedSemaphorePermit, total: usize) -> bool {
    slots.available_permits() + held.num_permits() < total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop() -> (watch::Sender<bool>, watch::Receiver<bool>) {
        watch::channel(false)
    }

    #[tokio::test]
    async fn with_nothing_in_flight_it_takes_what_is_free_at_once() {
        let slots = Arc::new(Semaphore::new(4));
        let (_tx, mut rx) = stop();
        let p = take(&slots, 4, 10, Duration::from_secs(60), &mut rx).await;
        assert_eq!(p.unwrap().num_permits(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn while_work_is_in_flight_it_waits_for_a_batch() {
        let slots = Arc::new(Semaphore::new(20));
        let busy = slots.clone().acquire_many_owned(19).await.unwrap();
        let (_tx, mut rx) = stop();
        let freeing = tokio::spawn(async move {
            let mut busy = busy;
            // Runs end one at a time, a millisecond apart.
            for _ in 0..9 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(busy.split(1));
            }
            busy
        });
        let p = take(&slots, 20, 10, Duration::from_millis(50), &mut rx).await;
        assert_eq!(p.unwrap().num_permits(), 10, "a full batch, not one slot");
        drop(freeing.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_linger_it_receives_with_what_it_has() {
        let slots = Arc::new(Semaphore::new(20));
        let _busy = slots.clone().acquire_many_owned(17).await.unwrap();
        let (_tx, mut rx) = stop();
        let started = tokio::time::Instant::now();
        let p = take(&slots, 20, 10, Duration::from_millis(20), &mut rx).await;
        assert_eq!(p.unwrap().num_permits(), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(20));
    }

    #[tokio::test]
    async fn a_stop_while_it_waits_gives_the_slots_back() {
        let slots = Arc::new(Semaphore::new(20));
        let _busy = slots.clone().acquire_many_owned(15).await.unwrap();
        let (tx, mut rx) = stop();
        let waiting = {
            let slots = slots.clone();
            tokio::spawn(
                async move { take(&slots, 20, 10, Duration::from_secs(60), &mut rx).await },
            )
        };
        tokio::task::yield_now().await;
        tx.send(true).unwrap();
        assert!(waiting.await.unwrap().is_none());
        assert_eq!(slots.available_permits(), 5);
    }
}
