//! Liveness and readiness.
//!
//! Liveness: the pool's pollers are running. Readiness: the queue, the
//! table and the topic each answered within the last
//! [`Health::FRESH_MS`], and the process is not shutting down. Readiness is
//! a latch that shutdown flips first, before draining, so that no new work
//! is routed to a replica that is leaving.
//!
//! The [`probe`] that asks them runs only when the operations endpoints are
//! served: readiness has no other reader, and the probe costs four API calls
//! every ten seconds (about 35,000 a day per replica).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tracing::{debug, warn};

use crate::aws::error_message;
use crate::aws::queue::Queue;
use crate::aws::table::Table;
use crate::clock::now_millis;
use crate::events::Publisher;
use crate::metrics::Metrics;
use crate::metrics::QueueLabel;

/// The AWS resources readiness checks (not to be confused with the
/// entities a cache depends on, [`crate::aws::edges`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Queue,
    Table,
    Topic,
}

impl Resource {
    const ALL: [Resource; 3] = [Resource::Queue, Resource::Table, Resource::Topic];

    fn name(self) -> &'static str {
        match self {
            Resource::Queue => "queue",
            Resource::Table => "table",
            Resource::Topic => "topic",
        }
    }
}

#[derive(Default)]
pub struct Health {
    shutting_down: AtomicBool,
    pollers_alive: AtomicUsize,
    pollers_ever: AtomicBool,
    last_ok: [AtomicI64; 3],
    last_error: Mutex<[Option<String>; 3]>,
}

impl Health {
    /// How recently a resource must have answered.
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
        self.pollers_ever.store(true, Ordering::SeqCst);
        self.pollers_alive.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether any poller has started yet (before that, the process is
    /// starting, not dead).
    pub fn pollers_started(&self) -> bool {
        self.pollers_ever.load(Ordering::SeqCst)
    }

    pub fn poller_stopped(&self) {
        self.pollers_alive.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn pollers_alive(&self) -> usize {
        self.pollers_alive.load(Ordering::SeqCst)
    }

    /// Records that `resource` answered (any successful call counts).
    pub fn answered(&self, resource: Resource) {
        self.last_ok[resource as usize].store(now_millis(), Ordering::SeqCst);
        self.last_error.lock().expect("health lock")[resource as usize] = None;
    }

    pub fn failed(&self, resource: Resource, error: String) {
        self.last_error.lock().expect("health lock")[resource as usize] = Some(error);
    }

    /// Readiness and why, as JSON for `/readyz`.
    pub fn readiness(&self) -> (bool, Json) {
        if self.is_shutting_down() {
            return (false, json!({"ready": false, "reason": "shutting down"}));
        }
        let now = now_millis();
        let errors = self.last_error.lock().expect("health lock").clone();
        let mut ready = true;
        let mut resources = serde_json::Map::new();
        for resource in Resource::ALL {
            let last = self.last_ok[resource as usize].load(Ordering::SeqCst);
            let fresh = last > 0 && now - last <= Self::FRESH_MS;
            ready &= fresh;
            let status = if fresh {
                json!("ok")
            } else {
                json!(
                    errors[resource as usize]
                        .clone()
                        .unwrap_or_else(|| "no answer yet".into())
                )
            };
            resources.insert(resource.name().into(), status);
        }
        (ready, json!({"ready": ready, "resources": resources}))
    }
}

/// Asks the queue, the table and the topic whether they answer, now and
/// every [`Health::PROBE_EVERY`], and refreshes the queue depths of
/// `/metrics`. Cheap calls: `GetQueueAttributes` (request queue and DLQ),
/// `DescribeTable`, `GetTopicAttributes`. Runs only when the operations
/// endpoints are served (`http.listen`): nothing else reads what it finds.
/// The first round also checks the redrive policy ([`redrive_warning`]).
pub async fn probe(prober: Prober) {
    let mut redrive_checked = false;
    loop {
        probe_once(&prober, &mut redrive_checked).await;
        tokio::time::sleep(Health::PROBE_EVERY).await;
    }
}

/// What the readiness probe needs: the adapters it asks, where it writes
/// what it finds, and the set whose `max_attempts` the queue's redrive
/// policy must exceed.
pub struct Prober {
    pub queue: Queue,
    pub table: Table,
    pub topic: Publisher,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// The set with the most `max_attempts`, and that number.
    pub most_attempts: Option<(String, u32)>,
}

/// The start-time redrive-policy check alone (one `GetQueueAttributes`),
/// for a daemon without operations endpoints, where no probe runs.
pub async fn check_redrive_policy(prober: Prober) {
    match prober.queue.redrive_policy().await {
        Ok(policy) => warn_about_redrive(&prober, policy.as_deref()),
        Err(e) => warn!(
            error = %error_message(&e),
            "could not read the request queue's redrive policy"
        ),
    }
}

fn warn_about_redrive(prober: &Prober, policy: Option<&str>) {
    if let Some((set, max_attempts)) = &prober.most_attempts
        && let Some(w) = redrive_warning(policy, *max_attempts, set)
    {
        warn!("{w}");
    }
}

async fn probe_once(prober: &Prober, redrive_checked: &mut bool) {
    let health = &prober.health;
    let set_depth = |queue: &str, depth: Option<i64>| {
        if let Some(n) = depth {
            prober
                .metrics
                .queue_messages
                .get_or_create(&QueueLabel {
                    queue: queue.into(),
                })
                .set(n);
        }
    };
    let queue = prober
        .queue
        .ping(!*redrive_checked)
        .await
        .map(|status| {
            if !*redrive_checked {
                *redrive_checked = true;
                warn_about_redrive(prober, status.redrive_policy.as_deref());
            }
            set_depth("requests", status.depth);
        })
        .map_err(|e| error_message(&e));
    let dlq = prober
        .queue
        .dlq_depth()
        .await
        .map(|depth| set_depth("dlq", depth))
        .map_err(|e| error_message(&e));
    let table = prober.table.ping().await.map_err(|e| error_message(&e));
    let topic = prober.topic.ping().await.map_err(|e| error_message(&e));
    let status = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    debug!(
        queue = status(&queue),
        dlq = status(&dlq),
        table = status(&table),
        topic = status(&topic),
        "readiness probe"
    );
    if let Err(e) = dlq {
        warn!(error = %e, "the DLQ's depth could not be read");
    }
    for (resource, r) in [
        (Resource::Queue, queue),
        (Resource::Table, table),
        (Resource::Topic, topic),
    ] {
        match r {
            Ok(()) => health.answered(resource),
            Err(e) => {
                warn!(resource = resource.name(), error = %e, "readiness probe failed");
                health.failed(resource, e);
            }
        }
    }
}

/// A warning when the request queue's redrive policy would let SQS move a
/// failing request to the DLQ before the daemon fails it: SQS moves it
/// without the `error`/`deadLetterKind` reason, and the cache stays
/// `PROCESSING` until its lease lapses.
pub fn redrive_warning(policy: Option<&str>, max_attempts: u32, set: &str) -> Option<String> {
    let count = policy
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|p| match &p["maxReceiveCount"] {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        })?;
    // Each attempt is one receive; a few more cover redeliveries that do
    // not start an attempt (shutdown, a busy worker, AWS errors).
    let needed = u64::from(max_attempts) + 2;
    (count < needed).then(|| {
        format!(
            "the request queue's redrive policy has maxReceiveCount {count}, but set {set} \
             allows max_attempts = {max_attempts}: SQS may move a failing request to the DLQ \
             without a reason before the daemon fails it; raise maxReceiveCount to at least \
             {needed} or lower max_attempts"
        )
    })
}

#[cfg(test)]
mod redrive_tests {
    use super::redrive_warning;

    #[test]
    fn warns_only_when_sqs_would_dead_letter_first() {
        let p = |n: &str| format!(r#"{{"deadLetterTargetArn":"arn:x","maxReceiveCount":{n}}}"#);
        let w = redrive_warning(Some(&p("5")), 10, "summary").expect("5 < 10 + 2");
        assert!(w.contains("maxReceiveCount 5") && w.contains("summary") && w.contains("12"));
        assert!(
            redrive_warning(Some(&p("\"4\"")), 3, "s").is_some(),
            "SQS may send it as a string"
        );
        assert_eq!(redrive_warning(Some(&p("5")), 3, "s"), None);
        assert_eq!(redrive_warning(Some(&p("10")), 3, "s"), None);
        assert_eq!(
            redrive_warning(None, 3, "s"),
            None,
            "no redrive policy: the daemon's DLQ only"
        );
        assert_eq!(redrive_warning(Some("not json"), 3, "s"), None);
    }
}
