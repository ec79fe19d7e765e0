//! The company a batch on an answer's path can still expect.
//!
//! The answer's batched calls (the item's read, the completion event)
//! linger a few milliseconds for entries from other messages. Under load
//! that fills batches; for a lone message it is pure delay. The pool counts
//! each message from its receive until its handling decides, and a message
//! passes a [`Step`] when it submits to that step's batcher (through a task
//! local, so the adapters' signatures do not change), so a batcher can tell
//! when no message is left to join it and send at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A step of an answer's path whose calls are batched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The read of the item.
    Read = 0,
    /// The completion event.
    Event = 1,
}

/// The company a batch of each [`Step`] can still expect: how many
/// messages in this process are on their way to an answer and have yet to
/// reach the step, and whether the queue had more than the last receive
/// took. The pool counts a message from its receive until its handling has
/// decided, and the message passes a step when it submits to that step's
/// batcher. A batcher that knows this sends at once when no message is
/// left to reach it and the last receive emptied the queue, instead of
/// lingering for entries that cannot come: a lone message (a steady
/// trickle of requests) pays no linger, while under load (full receives)
/// batches fill as before, the next receive's messages included.
#[derive(Clone, Debug, Default)]
pub struct Answering(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    ahead: [AtomicUsize; 2],
    /// The last receive took as many messages as it asked for.
    full: AtomicBool,
}

impl Answering {
    /// Counts one message as on its way to every step, until the returned
    /// handle is dropped or passes them.
    pub fn enter(&self) -> OnTheWay {
        for c in self.0.ahead.iter() {
            c.fetch_add(1, Ordering::Relaxed);
        }
        OnTheWay {
            counts: self.0.clone(),
            passed: Default::default(),
        }
    }

    /// A receive took `got` messages of the `asked`: when it took all, the
    /// queue may hold more, soon received by this or another poller.
    pub fn received(&self, got: usize, asked: usize) {
        self.0.full.store(got >= asked, Ordering::Relaxed);
    }

    /// The messages yet to reach `step`.
    pub fn ahead(&self, step: Step) -> usize {
        self.0.ahead[step as usize].load(Ordering::Relaxed)
    }

    /// Whether an entry can still join a batch of `step`.
    pub fn expects(&self, step: Step) -> bool {
        self.ahead(step) > 0 || self.0.full.load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    static ON_THE_WAY: OnTheWay;
}

/// One message counted by [`Answering`]: the steps it has yet to reach.
#[derive(Debug)]
pub struct OnTheWay {
    counts: Arc<Counts>,
    passed: [AtomicBool; 2],
}

impl OnTheWay {
    /// Runs the message's handling with this as its task's own, so each
    /// batcher it submits to counts the step passed.
    pub async fn carry<F: Future>(self, handling: F) -> F::Output {
        ON_THE_WAY.scope(self, handling).await
    }

    fn pass_step(&self, step: Step) {
        if !self.passed[step as usize].swap(true, Ordering::Relaxed) {
            self.counts.ahead[step as usize].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for OnTheWay {
    fn drop(&mut self) {
        for (count, passed) in self.counts.ahead.iter().zip(&self.passed) {
            if !passed.load(Ordering::Relaxed) {
                count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// Counts `step` passed for the message whose handling this task runs, if
/// any (a submit outside a message's handling counts nothing).
pub(super) fn pass(step: Step) {
    let _ = ON_THE_WAY.try_with(|way| way.pass_step(step));
}

/// Counts every step passed for the message whose handling this task runs,
/// if any: it now waits on another message's answer (a coalesced request
/// waiting for its flight's leader), so no batch should wait for it; the
/// leader's read and event would otherwise linger for a message that waits
/// on them.
pub fn waiting_on_another() {
    let _ = ON_THE_WAY.try_with(|way| {
        for step in [Step::Read, Step::Event] {
            way.pass_step(step);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Batcher, Lost};
    use std::sync::Mutex;
    use std::time::Duration;

    type Seen = Arc<Mutex<Vec<(usize, Duration)>>>;

    /// A batcher of `step` with a 5 ms linger that records each batch's
    /// size and when it went.
    fn recorder(answering: &Answering, step: Step) -> (Batcher<u32, Lost>, Seen) {
        let started = tokio::time::Instant::now();
        let seen = Seen::default();
        let s = seen.clone();
        let b = Batcher::spawn_answering(
            10,
            Duration::from_millis(5),
            Some((answering.clone(), step)),
            move |entries: Vec<u32>| {
                s.lock().unwrap().push((entries.len(), started.elapsed()));
                async move { entries.iter().map(|_| Ok(())).collect() }
            },
        );
        (b, seen)
    }

    fn batches(seen: &Seen) -> Vec<(usize, Duration)> {
        seen.lock().unwrap().clone()
    }

    /// A counted message that runs `first` in its handling, then waits
    /// there, still on its way to an answer, until released.
    struct Held {
        release: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    /// Starts a [`Held`] message and returns once its `first` is done.
    async fn held_after(
        answering: &Answering,
        first: impl Future<Output = ()> + Send + 'static,
    ) -> Held {
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let (reached, ready) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(answering.enter().carry(async move {
            first.await;
            reached.send(()).unwrap();
            held.await.unwrap();
        }));
        ready.await.unwrap();
        Held { release, task }
    }

    impl Held {
        /// Lets the message's handling end, and waits until it has.
        async fn release(self) {
            self.release.send(()).unwrap();
            self.task.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_message_does_not_linger() {
        let answering = Answering::default();
        let (b, seen) = recorder(&answering, Step::Read);
        answering.enter().carry(b.submit(1)).await.unwrap();
        assert_eq!(batches(&seen), vec![(1, Duration::ZERO)]);
        assert_eq!(answering.ahead(Step::Read), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_messages_of_one_receive_go_together_at_once() {
        let answering = Answering::default();
        let (b, seen) = recorder(&answering, Step::Read);
        // Counted when received, before their tasks run.
        let ways: Vec<OnTheWay> = (0..4).map(|_| answering.enter()).collect();
        let tasks: Vec<_> = ways
            .into_iter()
            .zip(0u32..)
            .map(|(way, i)| {
                let b = b.clone();
                tokio::spawn(way.carry(async move { b.submit(i).await }))
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(batches(&seen), vec![(4, Duration::ZERO)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_lingers_while_a_message_has_yet_to_reach_its_step() {
        let answering = Answering::default();
        let (b, seen) = recorder(&answering, Step::Event);
        let behind = answering.enter();
        answering.enter().carry(b.submit(1)).await.unwrap();
        assert_eq!(batches(&seen), vec![(1, Duration::from_millis(5))]);
        // A message that ends without reaching the step is not waited for.
        drop(behind);
        answering.enter().carry(b.submit(2)).await.unwrap();
        // At once: 5 ms is when the first batch went.
        assert_eq!(batches(&seen)[1], (1, Duration::from_millis(5)));
        assert_eq!(answering.ahead(Step::Event), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_past_the_step_is_not_waited_for() {
        let answering = Answering::default();
        let (reads, seen) = recorder(&answering, Step::Read);
        // The first message reads, then waits on something else (its
        // event, a run) while still on its way to an answer.
        let first = {
            let reads = reads.clone();
            held_after(&answering, async move {
                reads.submit(1).await.unwrap();
            })
            .await
        };
        assert_eq!(answering.ahead(Step::Read), 0);
        assert_eq!(answering.ahead(Step::Event), 1);
        answering.enter().carry(reads.submit(2)).await.unwrap();
        assert_eq!(
            batches(&seen),
            vec![(1, Duration::ZERO), (1, Duration::ZERO)]
        );
        first.release().await;
        assert_eq!(answering.ahead(Step::Event), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_full_receive_a_batch_waits_for_the_next_receives() {
        let answering = Answering::default();
        let (b, seen) = recorder(&answering, Step::Read);
        // The queue had at least what was asked for: more may come at once.
        answering.received(10, 10);
        answering.enter().carry(b.submit(1)).await.unwrap();
        assert_eq!(batches(&seen), vec![(1, Duration::from_millis(5))]);
        // A receive that emptied the queue: nothing else is coming.
        answering.received(3, 10);
        answering.enter().carry(b.submit(2)).await.unwrap();
        assert_eq!(batches(&seen)[1], (1, Duration::from_millis(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_waiting_on_another_is_not_waited_for() {
        let answering = Answering::default();
        let (b, seen) = recorder(&answering, Step::Event);
        // A follower of the leader's flight: counted, then waiting on it.
        let follower = held_after(&answering, async { waiting_on_another() }).await;
        answering.enter().carry(b.submit(1)).await.unwrap();
        assert_eq!(batches(&seen), vec![(1, Duration::ZERO)]);
        follower.release().await;
        assert_eq!(answering.ahead(Step::Read), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_submit_outside_a_messages_handling_counts_nothing() {
        let answering = Answering::default();
        let (b, seen) = recorder(&answering, Step::Read);
        let _way = answering.enter();
        b.submit(1).await.unwrap();
        // The counted message has not read: the batch waited for it.
        assert_eq!(batches(&seen), vec![(1, Duration::from_millis(5))]);
        assert_eq!(answering.ahead(Step::Read), 1);
    }
}
