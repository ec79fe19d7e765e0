//! The worker pool: pollers, in-flight slots, one heartbeat per message
//! ([`crate::heartbeat`]) and shutdown.
//!
//! Pollers long-poll the queue but never ask for more messages than there
//! are free in-flight slots, so a received message always starts at once.
//! Each message is handled in its own task under a span naming its key,
//! set, request id and receive count; while it is in flight its visibility
//! is extended on every heartbeat, which also renews the lease of its
//! processing run. A panicking handler is caught: its
//! message goes back to the queue and the pool lives on.
//!
//! [`run`] takes its shutdown signal as a future (as mini-redis does), so
//! tests drive it directly. On shutdown it stops polling, lets in-flight
//! work finish for `worker.shutdown_grace`, then aborts what is left,
//! releases those leases and makes those messages visible again at once.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{Instrument, info, info_span, warn};

use crate::aws::error_message;
use crate::aws::queue::Queue;
use crate::aws::queue::Received;
use crate::handler::{Disposition, error_backoff};
use crate::health::Health;
use crate::heartbeat::{Beats, Heartbeat};
use crate::metrics::Metrics;

#[cfg(test)]
mod size_tests;
mod slots;
use crate::observe::PoolEvent;

/// Handles one message and says what to do with it; the message's
/// heartbeat renews the lease of a processing run it holds.
pub trait Handle: Send + Sync + 'static {
    fn handle(&self, msg: &Received, beat: &Heartbeat) -> impl Future<Output = Disposition> + Send;
}

/// What the pool needs: a handler of messages, the queue side, the parts
/// of the heartbeats, and its settings.
pub struct Pool<H> {
    pub handler: Arc<H>,
    pub queue: Queue,
    pub beats: Arc<Beats>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Counts each message from its receive until its handling decides,
    /// for the batchers on the answer's path ([`crate::batch::Answering`]).
    pub answering: crate::batch::Answering,
    pub settings: Settings,
}

/// The pool's settings (`worker.*` and `sqs.*`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub concurrency: u32,
    pub pollers: u32,
    pub receive_batch_size: u32,
    pub receive_linger: Duration,
    pub wait_time: Duration,
    pub visibility_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Messages in flight in this process, by SQS MessageId.
#[derive(Default)]
struct InFlight {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    receipt: String,
    abort: Option<AbortHandle>,
    /// The message's heartbeat: it knows the lease of a run in progress.
    beat: Arc<Heartbeat>,
}

/// Runs `pool` until `shutdown` completes, then drains (DESIGN §5,
/// invariant 6). Returns when every message is settled or released.
pub async fn serve<H: Handle>(
    pool: Arc<Pool<H>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(pool.settings.concurrency as usize));
    let inflight = Arc::new(InFlight::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut pollers = JoinSet::new();
    for n in 0..pool.settings.pollers {
        let poller = poll(
            pool.clone(),
            slots.clone(),
            inflight.clone(),
            stop_rx.clone(),
        );
        pollers.spawn(poller.instrument(info_span!("poller", n)));
    }
    info!(
        queue = pool.queue.url(),
        concurrency = pool.settings.concurrency,
        pollers = pool.settings.pollers,
        "worker pool started"
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            done = pollers.join_next() => match done {
                Some(Err(e)) if e.is_panic() => {
                    PoolEvent::PollerPanicked.emit(&pool.metrics);
                    pollers.spawn(poll(pool.clone(), slots.clone(), inflight.clone(), stop_rx.clone()));
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    pool.health.shut_down();
    info!("shutting down: polling stops, in-flight work may finish");
    let _ = stop_tx.send(true);
    // Pollers finish their receive in progress and return what it brought
    // (see `poll`); the grace period covers that and the in-flight work.
    let all = pool.settings.concurrency;
    let drain = async {
        while pollers.join_next().await.is_some() {}
        slots.acquire_many(all).await
    };
    let drained = tokio::time::timeout(pool.settings.shutdown_grace, drain).await;
    if drained.is_err() {
        let left: Vec<(String, Entry)> = inflight
            .entries
            .lock()
            .expect("in-flight lock")
            .drain()
            .collect();
        warn!(
            messages = left.len(),
            grace = %humantime::format_duration(pool.settings.shutdown_grace),
            "grace period over; returning unfinished messages to the queue"
        );
        for (_, entry) in &left {
            if let Some(abort) = &entry.abort {
                abort.abort();
            }
        }
        let leases = left
            .iter()
            .map(|(_, e)| e.beat.release(&pool.beats.table, &pool.metrics));
        futures::future::join_all(leases).await;
        let releases = left
            .iter()
            .map(|(_, e)| pool.queue.set_visibility(&e.receipt, Duration::ZERO));
        for r in futures::future::join_all(releases).await {
            if let Err(e) = r {
                warn!(error = %error_message(&e), "could not return a message to the queue; it comes back after its visibility timeout");
            }
        }
    }
    info!("worker pool stopped");
    Ok(())
}

async fn poll<H: Handle>(
    pool: Arc<Pool<H>>,
    slots: Arc<Semaphore>,
    inflight: Arc<InFlight>,
    mut stop: watch::Receiver<bool>,
) {
    let batch = pool.settings.receive_batch_size as usize;
    let mut failures = 0u32;
    pool.health.poller_started();
    let _alive = PollerAlive(pool.health.clone());
    loop {
        if *stop.borrow() {
            return;
        }
        let total = pool.settings.concurrency as usize;
        let linger = pool.settings.receive_linger;
        let Some(mut permits) = slots::take(&slots, total, batch, linger, &mut stop).await else {
            return;
        };
        let want = permits.num_permits() as i32;
        // A receive in progress is not cancelled on shutdown: SQS may
        // already have handed us messages, which would then stay invisible
        // for the whole visibility timeout. We let it finish and return
        // what it brought at once.
        let receive = pool.queue.receive(
            want,
            pool.settings.wait_time,
            pool.settings.visibility_timeout,
        );
        tokio::pin!(receive);
        let received = tokio::select! {
            r = &mut receive => r,
            _ = stop.changed() => {
                if let Ok(messages) = receive.await {
                    let releases = messages.iter().map(|m| pool.queue.set_visibility(&m.receipt, Duration::ZERO));
                    futures::future::join_all(releases).await;
                }
                return;
            }
        };
        let messages = match received {
            Ok(m) => {
                failures = 0;
                pool.answering.received(m.len(), want as usize);
                pool.health.answered(crate::health::Resource::Queue);
                m
            }
            Err(e) => {
                failures += 1;
                let delay = error_backoff(failures);
                PoolEvent::ReceiveFailed {
                    error: &e,
                    retry_in: delay,
                }
                .emit(&pool.metrics);
                drop(permits);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        PoolEvent::Received {
            messages: &messages,
            now: crate::clock::now_millis(),
        }
        .emit(&pool.metrics);
        // Every message of the receive is counted before any task starts:
        // on any runtime, none reaches a batcher while others are uncounted.
        let ways: Vec<_> = messages.iter().map(|_| pool.answering.enter()).collect();
        for (msg, way) in messages.into_iter().zip(ways) {
            let Some(permit) = permits.split(1) else {
                // Cannot happen (we asked for at most `want`); never lose
                // the message.
                let _ = pool
                    .queue
                    .set_visibility(&msg.receipt, Duration::ZERO)
                    .await;
                continue;
            };
            let id = msg.message_id.clone();
            let beat = Arc::new(Heartbeat::default());
            inflight.entries.lock().expect("in-flight lock").insert(
                id.clone(),
                Entry {
                    receipt: msg.receipt.clone(),
                    abort: None,
                    beat: beat.clone(),
                },
            );
            let task = tokio::spawn(handle_one(
                pool.clone(),
                inflight.clone(),
                msg,
                beat,
                permit,
                way,
            ));
            if let Some(entry) = inflight
                .entries
                .lock()
                .expect("in-flight lock")
                .get_mut(&id)
            {
                entry.abort = Some(task.abort_handle());
            }
        }
    }
}

async fn handle_one<H: Handle>(
    pool: Arc<Pool<H>>,
    inflight: Arc<InFlight>,
    msg: Received,
    beat: Arc<Heartbeat>,
    permit: tokio::sync::OwnedSemaphorePermit,
    way: crate::batch::OnTheWay,
) {
    let metrics = pool.metrics.clone();
    metrics.in_flight.inc();
    let span = info_span!(
        "message",
        otel.kind = "consumer",
        message_id = %msg.message_id,
        key = tracing::field::Empty,
        set = tracing::field::Empty,
        request_id = tracing::field::Empty,
        receive_count = msg.receive_count,
    );
    crate::telemetry::adopt_parent(&span, &msg.attributes);
    // The heartbeat beats beside the handling in this same task, not in a
    // task of its own: no second spawn and abort per message, and it ends
    // with the handling, however that ends.
    // Until the handling decides, the message is on its way to an answer.
    let outcome = AssertUnwindSafe(way.carry(async {
        tokio::select! {
            biased;
            disposition = pool.handler.handle(&msg, &beat) => disposition,
            never = beat.run(&pool.beats, &msg.receipt) => match never {},
        }
    }))
    .catch_unwind()
    .instrument(span.clone())
    .await;
    // A run that panicked still holds its lease: give it up now.
    beat.release(&pool.beats.table, &pool.metrics)
        .instrument(span.clone())
        .await;
    let disposition = outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        span.in_scope(|| PoolEvent::HandlerPanicked { panic: &what }.emit(&metrics));
        Disposition::RetryAfter(error_backoff(msg.receive_count))
    });
    settle(&pool, &msg, disposition).instrument(span).await;
    inflight
        .entries
        .lock()
        .expect("in-flight lock")
        .remove(&msg.message_id);
    metrics.in_flight.dec();
    drop(permit);
}

/// Counts a poller as alive until it ends, however it ends.
struct PollerAlive(Arc<crate::health::Health>);

impl Drop for PollerAlive {
    fn drop(&mut self) {
        self.0.poller_stopped();
    }
}

/// Applies a disposition to the queue. A failure leaves the message on the
/// queue: it comes back and is handled again, idempotently.
async fn settle<H: Handle>(pool: &Pool<H>, msg: &Received, disposition: Disposition) {
    let metrics = &pool.metrics;
    match disposition {
        Disposition::Delete => match pool.queue.delete(&msg.receipt).await {
            Ok(()) => PoolEvent::Deleted.emit(metrics),
            Err(e) => PoolEvent::DeleteFailed { error: &e }.emit(metrics),
        },
        Disposition::RetryAfter(delay) => {
            if let Err(e) = pool.queue.set_visibility(&msg.receipt, delay).await {
                PoolEvent::RetryDelayFailed { error: &e }.emit(metrics);
            }
        }
        Disposition::DeadLetter { kind, reason } => {
            match pool.queue.dead_letter(msg, kind, &reason).await {
                Ok(()) => PoolEvent::DeadLettered {
                    kind,
                    reason: &reason,
                }
                .emit(metrics),
                Err(e) => {
                    PoolEvent::DeadLetterFailed { error: &e }.emit(metrics);
                    let _ = pool
                        .queue
                        .set_visibility(&msg.receipt, error_backoff(msg.receive_count))
                        .await;
                }
            }
        }
    }
}
