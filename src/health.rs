//! Liveness and readiness.
//!
//! Liveness: the pool's pollers are running. Readiness: the queue, the
//! table and the topic each answered within the last
//! [`Health::FRESH_MS`], and the process is not shutting down. Readiness is
//! a latch that shutdown flips first, before draining, so that no new work
//! is routed to a replica that is leaving.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tracing::warn;

use crate::queue::now_millis;
use crate::worker::Worker;

/// The AWS dependencies readiness checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    Queue,
    Table,
    Topic,
}

impl Dependency {
    const ALL: [Dependency; 3] = [Dependency::Queue, Dependency::Table, Dependency::Topic];

    fn name(self) -> &'static str {
        match self {
            Dependency::Queue => "queue",
            Dependency::Table => "table",
            Dependency::Topic => "topic",
        }
    }
}

#[derive(Default)]
pub struct Health {
    shutting_down: AtomicBool,
    pollers_alive: AtomicUsize,
    last_ok: [AtomicI64; 3],
    last_error: Mutex<[Option<String>; 3]>,
}

impl Health {
    /// How recently a dependency must have answered.
    pub const FRESH_MS: i64 = 60_000;
    /// How often the prober asks.
    pub const PROBE_EVERY: Duration = Duration::from_secs(10);

    /// Flips readiness to false for good.
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub fn poller_started(&self) {
        self.pollers_alive.fetch_add(1, Ordering::SeqCst);
    }

    pub fn poller_stopped(&self) {
        self.pollers_alive.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn pollers_alive(&self) -> usize {
        self.pollers_alive.load(Ordering::SeqCst)
    }

    /// Records that `dep` answered (any successful call counts).
    pub fn answered(&self, dep: Dependency) {
        self.last_ok[dep as usize].store(now_millis(), Ordering::SeqCst);
        self.last_error.lock().expect("health lock")[dep as usize] = None;
    }

    pub fn failed(&self, dep: Dependency, error: String) {
        self.last_error.lock().expect("health lock")[dep as usize] = Some(error);
    }

    /// Readiness and why, as JSON for `/readyz`.
    pub fn readiness(&self) -> (bool, Json) {
        if self.is_shutting_down() {
            return (false, json!({"ready": false, "reason": "shutting down"}));
        }
        let now = now_millis();
        let errors = self.last_error.lock().expect("health lock").clone();
        let mut ready = true;
        let mut deps = serde_json::Map::new();
        for dep in Dependency::ALL {
            let last = self.last_ok[dep as usize].load(Ordering::SeqCst);
            let fresh = last > 0 && now - last <= Self::FRESH_MS;
            ready &= fresh;
            let status = if fresh {
                json!("ok")
            } else {
                json!(
                    errors[dep as usize]
                        .clone()
                        .unwrap_or_else(|| "no answer yet".into())
                )
            };
            deps.insert(dep.name().into(), status);
        }
        (ready, json!({"ready": ready, "dependencies": deps}))
    }
}

/// Asks the queue, the table and the topic whether they answer, now and
/// every [`Health::PROBE_EVERY`]. Cheap calls: `GetQueueAttributes`,
/// `DescribeTable`, `GetTopicAttributes`.
pub async fn probe(worker: std::sync::Arc<Worker>) {
    let health = &worker.health;
    loop {
        let queue = worker
            .queue
            .client()
            .get_queue_attributes()
            .queue_url(worker.queue.url())
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::table::aws_error_message(&e));
        let table = worker
            .table
            .client()
            .describe_table()
            .table_name(worker.table.name())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::table::aws_error_message(&e));
        let topic = worker
            .events
            .client()
            .get_topic_attributes()
            .topic_arn(worker.events.topic_arn())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::table::aws_error_message(&e));
        for (dep, r) in [
            (Dependency::Queue, queue),
            (Dependency::Table, table),
            (Dependency::Topic, topic),
        ] {
            match r {
                Ok(()) => health.answered(dep),
                Err(e) => {
                    warn!(dependency = dep.name(), error = %e, "readiness probe failed");
                    health.failed(dep, e);
                }
            }
        }
        tokio::time::sleep(Health::PROBE_EVERY).await;
    }
}
