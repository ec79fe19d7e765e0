//! Handling one message: decode it, coalesce requests in-process, and
//! carry out what [`crate::handler`] (requests, trigger ends) or
//! `worker/triggers.rs` (trigger, trigger_start, dependency and stream
//! triggers) decide (DESIGN §4).
//!
//! [`Worker::handle`] returns a [`Disposition`] that tells the pool what to
//! do with the message; the pool owns the queue side (delete, retry later,
//! dead-letter, release). The order of the steps is in the pure handler;
//! `worker/execute.rs` only carries out its effects, and
//! [`crate::observe`] logs and counts what happened.
//! A handler never loses a message: every error path returns it to the
//! queue, and only an answered request (its event published) or a
//! dead-lettered one is deleted.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::aws::edges::Dependencies;
use crate::aws::queue::{Queue, Received};
use crate::aws::table::Table;
use crate::clock::now_millis;
use crate::coalesce::{Coalescer, FlightOutcome, Role};
use crate::config::{Config, SetConfig};
use crate::envelope::Decoded;
use crate::events::{CompletionEvent, Publisher};
pub use crate::handler::{Disposition, error_backoff};
use crate::handler::{Handler, Policy, Subject};
use crate::health::Health;
use crate::heartbeat::{Beats, Heartbeat};
use crate::item::Key;
use crate::message::{Command, Schema, SetSelector};
use crate::metrics::Metrics;
use crate::observe::MessageEvent;
use crate::pool::{Handle, Pool, Settings};
use crate::processor::Processor;
use crate::state::Clock;
use crate::streams::Rules;
use execute::Execution;

mod execute;
mod offload;
mod schedule;
mod triggers;

/// The most request ids an answering event lists (`answer_each_request`);
/// past it, it counts them in `answersOmitted`.
pub const MAX_ANSWERS: usize = 100;

fn set_cfg_answers(cfg: &Config, set: &str) -> bool {
    cfg.sets.get(set).is_some_and(|s| s.answer_each_request)
}

/// Requests in flight in this process are coalesced by (key, set).
type FlightKey = (Key, String);

/// Everything a handler needs, built once per process.
pub struct Worker {
    cfg: Arc<Config>,
    table: Table,
    queue: Queue,
    events: Publisher,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    processors: HashMap<String, Arc<dyn Processor>>,
    schema: Schema,
    rules: Rules,
    dependencies: Option<Dependencies>,
    flights: Coalescer<FlightKey>,
    /// `[s3]`: offloaded values and `inputRef`s (issue 14).
    bucket: Option<crate::aws::s3::Bucket>,
    /// Where the pool counts the messages on their way to an answer.
    answering: crate::batch::Answering,
}

impl Worker {
    /// Assembles a worker from its adapters and the metrics they count
    /// their requests in. Processors come from the configuration;
    /// `Embedded` sets need [`Worker::with_processor`].
    pub fn new(
        cfg: Arc<Config>,
        rules: Rules,
        table: Table,
        queue: Queue,
        events: Publisher,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let processors = crate::processor::from_config(&cfg)?;
        let schema = Schema {
            partition_key: cfg.dynamodb.partition_key.clone(),
            sort_key: cfg.dynamodb.sort_key.clone(),
            sets: cfg.sets.keys().cloned().collect::<BTreeSet<_>>(),
        };
        let metrics = Arc::new(metrics);
        Ok(Worker {
            rules,
            dependencies: None,
            cfg,
            table,
            queue,
            events,
            metrics,
            health: Arc::default(),
            processors,
            schema,
            flights: Coalescer::default(),
            bucket: None,
            answering: Default::default(),
        })
    }

    /// Registers the processor of a set (for programs that embed the
    /// crate); replaces a configured one.
    pub fn with_processor(mut self, set: &str, processor: Arc<dyn Processor>) -> Self {
        self.processors.insert(set.to_owned(), processor);
        self
    }

    /// Turns on dependency tracking with the edge table.
    pub fn with_dependencies(mut self, dependencies: Dependencies) -> Self {
        self.dependencies = Some(dependencies);
        self
    }

    /// The bucket of `[s3]`: values over `offload_over` go there, and
    /// `inputRef`s are read from it.
    pub fn with_bucket(mut self, bucket: crate::aws::s3::Bucket) -> Self {
        self.bucket = Some(bucket);
        self
    }

    /// The count of messages on their way to an answer that the table's
    /// reads and the events consult ([`crate::aws::Clients::answering`]):
    /// the pool counts into it, so a lone message's read and event go
    /// without lingering.
    pub fn with_answering(mut self, answering: crate::batch::Answering) -> Self {
        self.answering = answering;
        self
    }

    /// Fails if a configured set has no processor.
    pub fn check(&self) -> anyhow::Result<()> {
        for set in self.cfg.sets.keys() {
            if !self.processors.contains_key(set) {
                anyhow::bail!(
                    "set {set} has processor kind \"embedded\" but no processor was registered (Worker::with_processor)"
                );
            }
        }
        Ok(())
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn events(&self) -> &Publisher {
        &self.events
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The worker pool that runs this worker: its queue, heartbeats and
    /// settings (`worker.*`, `sqs.*`).
    pub fn pool(self: &Arc<Self>) -> Pool<Worker> {
        let (w, sqs) = (&self.cfg.worker, &self.cfg.sqs);
        Pool {
            handler: self.clone(),
            queue: self.queue.clone(),
            beats: Arc::new(Beats {
                queue: self.queue.clone(),
                table: self.table.clone(),
                metrics: self.metrics.clone(),
                period: w.heartbeat_interval,
                visibility: sqs.visibility_timeout,
                lease: w.lease_duration,
            }),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            answering: self.answering.clone(),
            settings: Settings {
                concurrency: w.concurrency,
                pollers: sqs.pollers,
                receive_batch_size: sqs.receive_batch_size,
                receive_linger: sqs.receive_linger,
                wait_time: sqs.wait_time,
                visibility_timeout: sqs.visibility_timeout,
                shutdown_grace: w.shutdown_grace,
            },
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// A handler for one message of `set`, with the set's settings.
    fn handler(&self, set: &str, subject: Subject) -> Handler {
        let set_cfg = self.cfg.sets.get(set).expect("decoded sets are configured");
        let policy = Policy {
            set: set.to_owned(),
            max_attempts: set_cfg.max_attempts,
            backoff_base_ms: set_cfg.backoff_base.as_millis() as i64,
            backoff_cap_ms: set_cfg.backoff_cap.as_millis() as i64,
            max_rehandles: self.cfg.worker.max_rehandles,
            answer_each_request: set_cfg_answers(&self.cfg, set).then_some(MAX_ANSWERS),
            offload: self.cfg.offload_over(set).is_some(),
            policies: set_cfg.policies(),
        };
        Handler::new(policy, subject)
    }

    fn clock(&self, set: &SetConfig) -> Clock {
        Clock {
            now: now_millis(),
            lease: self.cfg.worker.lease_duration.as_millis() as i64,
            skew: self.cfg.worker.clock_skew.as_millis() as i64,
            ttl: set.ttl.map(|t| t.as_millis() as i64),
        }
    }

    /// Handles one received message.
    pub async fn handle_message(&self, msg: &Received, beat: &Heartbeat) -> Disposition {
        let span = tracing::Span::current();
        let envelope = match self.schema.decode_any(&msg.body, &self.rules) {
            Ok(e) => e,
            Err(bad) => return self.malformed(bad),
        };
        if !envelope.attributes.is_empty() {
            crate::telemetry::adopt_parent_from(&span, &envelope.attributes);
        }
        // A scheduled trigger: held back until due, then handled once.
        let schedule = match &envelope.schedule {
            Some(schedule) => match Box::pin(self.hold_until_due(msg, schedule)).await {
                Ok(true) => return Disposition::Delete,
                Ok(false) => Some(schedule::schedule_id(msg)),
                Err(e) => return self.after_error(&e, msg),
            },
            None => None,
        };
        let schedule = schedule.as_deref();
        let decoded = match envelope.decoded {
            Decoded::Message(m) => m,
            Decoded::Dependency(entity) => {
                span.record("key", entity.as_str());
                return Box::pin(self.trigger_dependency(&entity, schedule))
                    .await
                    .unwrap_or_else(|e| self.after_error(&e, msg));
            }
            Decoded::Stream(triggers) => {
                return Box::pin(self.stream(triggers))
                    .await
                    .unwrap_or_else(|e| self.after_error(&e, msg));
            }
        };
        let key = decoded.key;
        span.record("key", tracing::field::display(&key));
        let result = match decoded.command {
            Command::Request {
                set,
                request_id,
                input,
                input_ref,
                retry,
            } => {
                let input = match input_ref {
                    None => input,
                    Some(r) => match Box::pin(self.fetch_input(&r)).await {
                        Ok(Ok(input)) => Some(input),
                        Ok(Err(bad)) => return self.malformed(bad),
                        Err(e) => return self.after_error(&e, msg),
                    },
                };
                let rid = request_id.unwrap_or_else(|| msg.message_id.clone());
                span.record("set", set.as_str());
                span.record("request_id", rid.as_str());
                let subject = Subject::Request {
                    rid: rid.clone(),
                    message_id: msg.message_id.clone(),
                    input,
                };
                return self.request(&key, &set, subject, retry, msg, beat).await;
            }
            Command::Trigger { sets } => {
                span.record(
                    "set",
                    match &sets {
                        SetSelector::One(s) => s.as_str(),
                        SetSelector::All => "*",
                    },
                );
                Box::pin(self.trigger(&key, sets, schedule)).await
            }
            Command::TriggerStart { set, trigger_id } => {
                span.record("set", set.as_str());
                // Recorded by its schedule's id, or by its own message's:
                // a redelivery is then recognised even after later flows
                // of the cache have ended.
                let once = schedule.unwrap_or(msg.message_id.as_str());
                Box::pin(self.trigger_start(&key, &set, &trigger_id, once)).await
            }
            Command::TriggerEnd { set, trigger_id } => {
                span.record("set", set.as_str());
                span.record("request_id", msg.message_id.as_str());
                let subject = Subject::TriggerEnd {
                    trigger_id,
                    message_id: msg.message_id.clone(),
                };
                let ex = Execution {
                    key: &key,
                    set: &set,
                    leader: None,
                    beat,
                };
                Box::pin(self.execute(self.handler(&set, subject), ex)).await
            }
        };
        result.unwrap_or_else(|e| self.after_error(&e, msg))
    }

    /// A bad message: dead-lettered with the reason.
    fn malformed(&self, bad: crate::message::BadMessage) -> Disposition {
        MessageEvent::Malformed {
            reason: &bad.reason,
        }
        .emit(&self.metrics);
        Disposition::DeadLetter {
            kind: "malformed",
            reason: bad.reason,
        }
    }

    fn after_error(&self, e: &anyhow::Error, msg: &Received) -> Disposition {
        let delay = error_backoff(msg.receive_count);
        MessageEvent::HandlingFailed {
            error: e,
            retry_in: delay,
        }
        .emit(&self.metrics);
        Disposition::RetryAfter(delay)
    }

    /// A request, coalesced with the others for the same (key, set) in
    /// this process.
    async fn request(
        &self,
        key: &Key,
        set: &str,
        subject: Subject,
        retry: bool,
        msg: &Received,
        beat: &Heartbeat,
    ) -> Disposition {
        let Subject::Request { rid, .. } = &subject else {
            unreachable!("only requests are coalesced")
        };
        let flight = (key.clone(), set.to_owned());
        let mut counted = false;
        let mut leader = loop {
            match self.flights.join(flight.clone(), rid.clone()) {
                Role::Leader(leader) => break leader,
                Role::Follower(outcome) => {
                    if !std::mem::replace(&mut counted, true) {
                        MessageEvent::Coalesced { set }.emit(&self.metrics);
                    }
                    // It reads and publishes nothing while it waits: the
                    // leader's batches must not linger for it.
                    crate::batch::waiting_on_another();
                    match outcome.await {
                        Ok(FlightOutcome::Answered) => return Disposition::Delete,
                        // Joined after the leader's last read: decide on a
                        // fresh one.
                        Ok(FlightOutcome::Again) => continue,
                        _ => return Disposition::RetryAfter(error_backoff(msg.receive_count)),
                    }
                }
            }
        };
        let ex = Execution {
            key,
            set,
            leader: Some(&mut leader),
            beat,
        };
        // Boxed: a follower waiting above holds only what it needs to wait.
        match Box::pin(self.execute(self.handler(set, subject).retrying(retry), ex)).await {
            Ok(d) => {
                // With answer_each_request, a leader that left its answer
                // to another run or parked listed only itself: the others
                // decide again, each listing itself.
                let listed_alone = set_cfg_answers(&self.cfg, set) && !leader.published();
                leader.finish(if listed_alone {
                    FlightOutcome::Again
                } else {
                    FlightOutcome::Answered
                });
                d
            }
            Err(e) => {
                leader.finish(FlightOutcome::Abandoned);
                self.after_error(&e, msg)
            }
        }
    }

    /// Publishes a completion event and observes it.
    pub(crate) async fn publish_event(&self, ev: CompletionEvent<'_>) -> anyhow::Result<()> {
        let (kind, set) = (ev.kind, ev.set);
        match self.events.publish(&ev).await {
            Ok(Some(event_id)) => {
                MessageEvent::Published {
                    kind,
                    set,
                    event_id: &event_id,
                }
                .emit(&self.metrics);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                MessageEvent::PublishFailed.emit(&self.metrics);
                Err(e.into())
            }
        }
    }
}

impl Handle for Worker {
    // The future itself, not an `async fn` awaiting it: that wrapper would
    // hold it twice over and double every in-flight message's task.
    fn handle(&self, msg: &Received, beat: &Heartbeat) -> impl Future<Output = Disposition> + Send {
        self.handle_message(msg, beat)
    }
}
