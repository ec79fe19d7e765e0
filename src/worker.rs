//! Handling one message: the request path, triggers and trigger flows
//! (DESIGN §4), on top of the pure decisions in [`crate::state`].
//!
//! [`Worker::handle`] reads, decides, writes and publishes, and returns a
//! [`Disposition`] that tells the pool what to do with the message; the
//! pool owns the queue side (delete, retry later, dead-letter, release).
//! A handler never loses a message: every error path returns it to the
//! queue, and only an answered request (its event published) or a
//! dead-lettered one is deleted.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tracing::{Instrument, debug, info, warn};

use crate::aws::edges::Dependencies;
use crate::aws::queue::{Queue, Received};
use crate::aws::table::{Table, TableError, Updated};
use crate::clock::now_millis;
use crate::coalesce::{Coalescer, FlightOutcome, Leader, Role};
use crate::config::{Config, EventKind, SetConfig};
use crate::envelope::Decoded;
use crate::events::{CompletionEvent, Publisher};
use crate::item::{Item, Key, MAX_ITEM_BYTES, item_to_json, to_av};
use crate::message::{Command, Schema, SetSelector};
use crate::metrics::Metrics;
use crate::processor::{Job, ProcessError, Processor};
use crate::state::{
    self, ClaimReason, Clock, Decision, Field, LeaveReason, Outcome, Rejected, Run,
};
use crate::streams::Rules;

mod triggers;

/// What the pool does with a message once its handler returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Answered (or nothing to do): delete it.
    Delete,
    /// Send it to the dead-letter queue with the reason, then delete it.
    DeadLetter { kind: &'static str, reason: String },
    /// Leave it on the queue; it comes back after this delay (retry with
    /// backoff, set through its visibility timeout).
    RetryAfter(Duration),
}

type FlightKey = (Key, String);

/// Processing runs by request id: (key, set, epoch).
type Runs = Arc<Mutex<HashMap<String, (Key, String, i64)>>>;

/// Everything a handler needs, built once per process.
pub struct Worker {
    pub cfg: Arc<Config>,
    pub table: Table,
    pub queue: Queue,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub health: Arc<crate::health::Health>,
    processors: HashMap<String, Arc<dyn Processor>>,
    schema: Schema,
    rules: Rules,
    dependencies: Option<Dependencies>,
    flights: Coalescer<FlightKey>,
    /// Processing runs that did not finish normally (cancelled at
    /// shutdown, or panicked): their leases are released at shutdown.
    unfinished: Runs,
}

/// Records a processing run until it finishes; a run that is dropped
/// unfinished stays recorded.
struct RunGuard {
    rid: String,
    runs: Runs,
    finished: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.finished {
            self.runs.lock().expect("runs lock").remove(&self.rid);
        }
    }
}

/// What a request or trigger end carries into the loop.
enum Subject {
    Request {
        rid: String,
        /// The SQS MessageId carrying it: with its own `requestId`, a new
        /// message (a redrive, a producer's retry) is told apart from a
        /// redelivery of the same one.
        message_id: String,
        input: Option<Json>,
    },
    /// A trigger end's request id is its MessageId.
    TriggerEnd { trigger_id: String, rid: String },
}

impl Subject {
    fn rid(&self) -> &str {
        match self {
            Subject::Request { rid, .. } | Subject::TriggerEnd { rid, .. } => rid,
        }
    }

    fn message_id(&self) -> &str {
        match self {
            Subject::Request { message_id, .. } => message_id,
            Subject::TriggerEnd { rid, .. } => rid,
        }
    }
}

/// Whose processing run: the request id that owns it, the SQS message
/// running it, and the epoch it computes.
#[derive(Clone, Copy)]
struct RunOf<'a> {
    rid: &'a str,
    message_id: &'a str,
    epoch: i64,
}

/// The end of a processing run.
enum Step {
    Done(Disposition),
    /// The state moved under the run: decide again on this item.
    Rehandle(Item),
}

impl Worker {
    /// Assembles a worker from its adapters. Processors come from the
    /// configuration; `Embedded` sets need [`Worker::with_processor`].
    pub fn new(
        cfg: Arc<Config>,
        rules: Rules,
        table: Table,
        queue: Queue,
        events: Publisher,
    ) -> anyhow::Result<Self> {
        let processors = crate::processor::from_config(&cfg)?;
        let schema = Schema {
            partition_key: cfg.dynamodb.partition_key.clone(),
            sort_key: cfg.dynamodb.sort_key.clone(),
            sets: cfg.sets.keys().cloned().collect::<BTreeSet<_>>(),
        };
        let metrics = Arc::new(Metrics::new(&cfg));
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
            unfinished: Arc::default(),
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

    /// Releases the leases of runs that were cancelled (shutdown) so that
    /// another replica continues at once instead of waiting for them to
    /// lapse.
    pub async fn release_runs(&self) {
        let runs: Vec<(String, (Key, String, i64))> =
            self.unfinished.lock().expect("runs lock").drain().collect();
        for (rid, (key, set, epoch)) in runs {
            let write = state::release(&rid, epoch);
            match self.table.update(&key, &[(set.as_str(), &write)]).await {
                Ok(Updated::Applied(_)) => info!(%key, set, request_id = rid, "lease released"),
                Ok(Updated::Rejected(_)) => {}
                Err(e) => {
                    warn!(%key, set, error = %e, "could not release a lease; it lapses by itself")
                }
            }
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
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
    pub async fn handle(&self, msg: &Received) -> Disposition {
        let span = tracing::Span::current();
        let envelope = match self.schema.decode_any(&msg.body, &self.rules) {
            Ok(e) => e,
            Err(bad) => {
                warn!(reason = %bad.reason, "message cannot be understood; dead-lettering it");
                return Disposition::DeadLetter {
                    kind: "malformed",
                    reason: bad.reason,
                };
            }
        };
        if !envelope.attributes.is_empty() {
            crate::telemetry::adopt_parent_from(&span, &envelope.attributes);
        }
        let decoded = match envelope.decoded {
            Decoded::Message(m) => m,
            Decoded::Dependency(entity) => {
                span.record("key", entity.as_str());
                return self
                    .trigger_dependency(&entity)
                    .await
                    .unwrap_or_else(|e| self.after_error(&e, msg));
            }
            Decoded::Stream(triggers) => {
                return self
                    .stream(triggers)
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
            } => {
                let rid = request_id.unwrap_or_else(|| msg.message_id.clone());
                span.record("set", set.as_str());
                span.record("request_id", rid.as_str());
                return self.request(&key, &set, rid, input, msg).await;
            }
            Command::Trigger { sets } => {
                span.record(
                    "set",
                    match &sets {
                        SetSelector::One(s) => s.as_str(),
                        SetSelector::All => "*",
                    },
                );
                self.trigger(&key, sets).await
            }
            Command::TriggerStart { set, trigger_id } => {
                span.record("set", set.as_str());
                self.trigger_start(&key, &set, &trigger_id).await
            }
            Command::TriggerEnd { set, trigger_id } => {
                span.record("set", set.as_str());
                span.record("request_id", msg.message_id.as_str());
                let subject = Subject::TriggerEnd {
                    trigger_id,
                    rid: msg.message_id.clone(),
                };
                self.run(&key, &set, subject, None).await
            }
        };
        result.unwrap_or_else(|e| self.after_error(&e, msg))
    }

    fn after_error(&self, e: &anyhow::Error, msg: &Received) -> Disposition {
        let service = if e.downcast_ref::<TableError>().is_some() {
            Some("dynamodb")
        } else if e.downcast_ref::<crate::aws::queue::QueueError>().is_some() {
            Some("sqs")
        } else {
            // SNS failures are counted where they happen.
            None
        };
        if let Some(service) = service {
            self.metrics
                .aws_errors
                .get_or_create(&crate::metrics::ServiceLabel {
                    service: service.into(),
                })
                .inc();
        }
        let delay = error_backoff(msg.receive_count);
        warn!(error = %format!("{e:#}"), retry_in = ?delay, "handling failed; the message will come back");
        Disposition::RetryAfter(delay)
    }

    /// A request, coalesced with the others for the same (key, set) in
    /// this process.
    async fn request(
        &self,
        key: &Key,
        set: &str,
        rid: String,
        input: Option<Json>,
        msg: &Received,
    ) -> Disposition {
        match self
            .flights
            .join((key.clone(), set.to_owned()), rid.clone())
        {
            Role::Follower(outcome) => {
                self.metrics
                    .coalesced
                    .get_or_create(&Metrics::set(set))
                    .inc();
                debug!("coalesced with a request in flight for the same key and set");
                match outcome.await {
                    Ok(FlightOutcome::Answered) => Disposition::Delete,
                    _ => Disposition::RetryAfter(error_backoff(msg.receive_count)),
                }
            }
            Role::Leader(mut leader) => {
                let subject = Subject::Request {
                    rid,
                    message_id: msg.message_id.clone(),
                    input,
                };
                match self.run(key, set, subject, Some(&mut leader)).await {
                    Ok(d) => {
                        leader.finish(FlightOutcome::Answered);
                        d
                    }
                    Err(e) => {
                        leader.finish(FlightOutcome::Abandoned);
                        self.after_error(&e, msg)
                    }
                }
            }
        }
    }

    /// Decides and writes until the message is settled (DESIGN §4).
    async fn run(
        &self,
        key: &Key,
        set: &str,
        mut subject: Subject,
        mut leader: Option<&mut Leader<FlightKey>>,
    ) -> anyhow::Result<Disposition> {
        let set_cfg = self.cfg.sets.get(set).expect("decoded sets are configured");
        let mut rid = subject.rid().to_owned();
        let labels = Metrics::set(set);
        let mut item = self.table.get(key).await?;
        let mut counted_miss = false;
        for _ in 0..self.cfg.worker.max_rehandles {
            let rec = self.table.attrs.record(&item, set);
            let clock = self.clock(set_cfg);
            // The owner of the item's run (or of its committed result) may
            // be a follower of this flight: its redelivery after its process
            // died. Go on as the owner, so that the run is continued (not
            // left until the lease lapses, with the owner's message deleted)
            // and a ready event lost between commit and publish is
            // re-published with its eventId (invariant 5).
            if let Subject::Request { rid: me, .. } = &mut subject
                && let Some(owner) = rec.request_id.as_deref()
                && owner != me
                && matches!(
                    rec.status(),
                    state::Status::Processing | state::Status::Ready
                )
                && leader.as_mut().is_some_and(|l| l.adopt(owner, me))
            {
                info!(
                    owner,
                    "the owner's redelivery joined this request; continuing as the owner"
                );
                *me = owner.to_owned();
                rid = owner.to_owned();
            }
            let decision = match &subject {
                Subject::Request { message_id, .. } => {
                    state::decide_request(&rec, &rid, message_id, &clock)
                }
                Subject::TriggerEnd { trigger_id, .. } => {
                    state::decide_trigger_end(&rec, trigger_id, &rid, &clock)
                }
            };
            if !counted_miss
                && matches!(subject, Subject::Request { .. })
                && !matches!(decision, Decision::Hit | Decision::Republish(_))
            {
                self.metrics.misses.get_or_create(&labels).inc();
                counted_miss = true;
            }
            match decision {
                Decision::Hit | Decision::Republish(Outcome::Ready) => {
                    // A hit, or a redelivery after the commit whose event
                    // may have been lost: the same event (same eventId).
                    let kind = if decision == Decision::Hit {
                        self.metrics.hits.get_or_create(&labels).inc();
                        EventKind::Hit
                    } else {
                        info!(
                            epoch = rec.epoch(),
                            "redelivery after commit; re-publishing the ready event"
                        );
                        EventKind::Ready
                    };
                    let coalesced = seal(&mut leader);
                    self.publish(CompletionEvent {
                        request_id: Some(&rid),
                        item: Some(&item),
                        value: rec.value.as_ref(),
                        coalesced: &coalesced,
                        ..CompletionEvent::new(kind, key, set, rec.epoch())
                    })
                    .await?;
                    return Ok(Disposition::Delete);
                }
                Decision::Republish(Outcome::Failed) => {
                    let error = rec
                        .error
                        .clone()
                        .unwrap_or_else(|| "processing failed".into());
                    let coalesced = seal(&mut leader);
                    self.publish(CompletionEvent {
                        request_id: Some(&rid),
                        item: Some(&item),
                        error: Some(&error),
                        coalesced: &coalesced,
                        failed_message_id: rec.failed_message_id.as_deref(),
                        ..CompletionEvent::new(EventKind::Failed, key, set, rec.epoch())
                    })
                    .await?;
                    return Ok(Disposition::DeadLetter {
                        kind: "failed",
                        reason: error,
                    });
                }
                Decision::Leave(reason) => {
                    match reason {
                        LeaveReason::OwnedElsewhere => {
                            debug!(owner = ?rec.request_id, "another request owns a live run; its event answers this one")
                        }
                        LeaveReason::AlreadyParked => {
                            debug!(awaiting = ?rec.awaiting, "a request is already parked for the trigger flow")
                        }
                        LeaveReason::StaleTriggerEnd => {
                            info!(running = ?rec.trigger_id, "trigger_end does not match the running flow; ignored")
                        }
                    }
                    return Ok(Disposition::Delete);
                }
                Decision::Park { write } => match self.table.update(key, &[(set, &write)]).await? {
                    Updated::Applied(_) => {
                        self.metrics.parked.get_or_create(&labels).inc();
                        info!(trigger_id = ?rec.trigger_id, "parked as the awaiting step of the trigger flow");
                        return Ok(Disposition::Delete);
                    }
                    Updated::Rejected(now) => item = now,
                },
                Decision::Unblock { write } => {
                    match self.table.update(key, &[(set, &write)]).await? {
                        Updated::Applied(_) => {
                            info!("trigger flow ended with nothing parked; the cache is STALE");
                            return Ok(Disposition::Delete);
                        }
                        Updated::Rejected(now) => item = now,
                    }
                }
                Decision::Process { write, epoch, run } => match self
                    .table
                    .update(key, &[(set, &write)])
                    .await?
                {
                    Updated::Rejected(now) => {
                        if matches!(run, Run::Claim(_)) {
                            self.metrics.claims_lost.get_or_create(&labels).inc();
                            debug!("claim lost: the state moved since it was read");
                        }
                        item = now;
                    }
                    Updated::Applied(claimed) => {
                        match run {
                            Run::Claim(reason) => {
                                self.metrics.claims_won.get_or_create(&labels).inc();
                                match reason {
                                    ClaimReason::LeaseExpired => {
                                        self.metrics.lease_takeovers.get_or_create(&labels).inc();
                                        warn!(previous_owner = ?rec.request_id, lease_until = ?rec.lease_until, "lease takeover: the owner's lease had lapsed");
                                    }
                                    ClaimReason::TriggerDeadlinePassed => {
                                        self.metrics
                                            .trigger_deadline_expiries
                                            .get_or_create(&labels)
                                            .inc();
                                        warn!(trigger_id = ?rec.trigger_id, "trigger flow passed its deadline without ending; processing anyway");
                                    }
                                    _ => {}
                                }
                                info!(epoch, ?reason, "claim won; processing");
                            }
                            Run::Continue => info!(
                                epoch,
                                "redelivery of the owner's message; continuing the run"
                            ),
                        }
                        let input = match &subject {
                            Subject::Request { input, .. } => input.clone(),
                            Subject::TriggerEnd { .. } => None,
                        };
                        // A trigger end that claimed now carries the parked
                        // request: if its run is invalidated, it is handled
                        // again as that request, not as a flow end (which
                        // would find no flow and drop the parked request).
                        if let Subject::TriggerEnd { rid, .. } = &subject {
                            subject = Subject::Request {
                                rid: rid.clone(),
                                message_id: rid.clone(),
                                input: None,
                            };
                        }
                        let run = RunOf {
                            rid: &rid,
                            message_id: subject.message_id(),
                            epoch,
                        };
                        match self
                            .process(key, set, run, &claimed, input, &mut leader)
                            .await?
                        {
                            Step::Done(d) => return Ok(d),
                            Step::Rehandle(now) => item = now,
                        }
                    }
                },
            }
        }
        let delay = error_backoff(1);
        warn!(
            rehandles = self.cfg.worker.max_rehandles,
            "the state kept moving; leaving the message for later"
        );
        Ok(Disposition::RetryAfter(delay))
    }

    /// The processing flow: run the processor under a lease heartbeat, then
    /// commit, retry later, or fail.
    async fn process(
        &self,
        key: &Key,
        set: &str,
        run: RunOf<'_>,
        claimed: &Item,
        input: Option<Json>,
        leader: &mut Option<&mut Leader<FlightKey>>,
    ) -> anyhow::Result<Step> {
        let RunOf { rid, epoch, .. } = run;
        let set_cfg = self.cfg.sets.get(set).expect("decoded sets are configured");
        let labels = Metrics::set(set);
        let attempt = self.table.attrs.record(claimed, set).attempts().max(1);
        let processor = self
            .processors
            .get(set)
            .ok_or_else(|| anyhow::anyhow!("set {set} has no processor"))?;
        let job = Job {
            key: key.to_json(),
            set: set.to_owned(),
            epoch,
            request_id: rid.to_owned(),
            input,
            record: item_to_json(claimed),
        };
        if attempt > i64::from(set_cfg.max_attempts) {
            // Earlier attempts of this request died with their worker (the
            // redeliveries kept coming back): stop trying.
            let error = format!(
                "gave up after {} attempts (sets.{set}.max_attempts); earlier attempts ended without an outcome (worker crashes or timeouts)",
                attempt - 1
            );
            return self.fail(key, set, run, &error, leader).await;
        }
        self.metrics.processing_runs.get_or_create(&labels).inc();
        let _in_progress = self.metrics.run_started(set);
        self.unfinished
            .lock()
            .expect("runs lock")
            .insert(rid.to_owned(), (key.clone(), set.to_owned(), epoch));
        let mut guard = RunGuard {
            rid: rid.to_owned(),
            runs: self.unfinished.clone(),
            finished: false,
        };
        let started = Instant::now();
        let result = {
            let span =
                tracing::info_span!("processor", otel.kind = "internal", set, epoch, attempt);
            let work =
                tokio::time::timeout(set_cfg.timeout, processor.process(&job)).instrument(span);
            tokio::pin!(work);
            let period = self.cfg.worker.heartbeat_interval;
            let mut heartbeat =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    r = &mut work => break r,
                    _ = heartbeat.tick() => {
                        let renew = state::renew(rid, epoch, &self.clock(set_cfg));
                        match self.table.update(key, &[(set, &renew)]).await {
                            Ok(Updated::Applied(_)) => {}
                            Ok(Updated::Rejected(now)) => {
                                guard.finished = true;
                                warn!("lease renewal rejected: the run was invalidated; stopping it early");
                                return Ok(self.rejected(set, rid, epoch, now));
                            }
                            Err(e) => {
                                self.metrics.aws_errors.get_or_create(&crate::metrics::ServiceLabel { service: "dynamodb".into() }).inc();
                                warn!(error = %e, "lease renewal failed; retrying on the next heartbeat");
                            }
                        }
                    }
                }
            }
        };
        guard.finished = true;
        drop(guard);
        self.metrics
            .processing_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        let result = result.unwrap_or_else(|_| {
            Err(ProcessError::Retryable(format!(
                "processing timed out after {} (sets.{set}.timeout)",
                humantime::format_duration(set_cfg.timeout)
            )))
        });
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                self.metrics
                    .processing_failures
                    .get_or_create(&crate::metrics::SetKindLabel {
                        set: set.into(),
                        kind: err.kind().into(),
                    })
                    .inc();
                return match err {
                    ProcessError::Retryable(e) if (attempt as u32) < set_cfg.max_attempts => {
                        self.retry_later(key, set, set_cfg, rid, epoch, attempt, &e)
                            .await
                    }
                    ProcessError::Retryable(e) => {
                        let error = format!(
                            "gave up after {attempt} attempts (sets.{set}.max_attempts): {e}"
                        );
                        self.fail(key, set, run, &error, leader).await
                    }
                    ProcessError::Permanent(e) => self.fail(key, set, run, &e, leader).await,
                };
            }
        };
        if let Some(error) = too_large(
            claimed,
            &self.table.attrs.name(set, Field::Value),
            &output.value,
        ) {
            return self.fail(key, set, run, &error, leader).await;
        }
        let deps_attr = format!("{}_{set}_dependsOn", self.table.attrs.prefix);
        let (extra, stale_edges) = self
            .track_dependencies(key, set, claimed, &deps_attr, &output.depends_on)
            .await?;
        let commit = state::commit(rid, epoch, output.value.clone(), now_millis());
        match self.table.update_with(key, &[(set, &commit)], &extra).await {
            Ok(Updated::Applied(new)) => {
                if let (Some(deps), false) = (&self.dependencies, stale_edges.is_empty())
                    && let Err(e) = deps.remove(key, set, &stale_edges).await
                {
                    warn!(error = %format!("{e:#}"), "could not remove dependency edges no longer reported; they cost extra resets only");
                }
                info!(
                    epoch,
                    attempt,
                    ms = started.elapsed().as_millis() as u64,
                    "committed READY"
                );
                let coalesced = seal(leader);
                self.publish(CompletionEvent {
                    request_id: Some(rid),
                    item: Some(&new),
                    value: Some(&output.value),
                    coalesced: &coalesced,
                    ..CompletionEvent::new(EventKind::Ready, key, set, epoch)
                })
                .await?;
                Ok(Step::Done(Disposition::Delete))
            }
            Ok(Updated::Rejected(now)) => Ok(self.rejected(set, rid, epoch, now)),
            Err(TableError::TooLarge(msg)) => {
                let error = format!("the value does not fit the item: {msg}");
                self.fail(key, set, run, &error, leader).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A write of the owner's was rejected: either the run was invalidated
    /// (handle again) or another request took over (discard quietly).
    fn rejected(&self, set: &str, rid: &str, epoch: i64, now: Item) -> Step {
        let rec = self.table.attrs.record(&now, set);
        match state::classify_rejection(&rec, rid, epoch) {
            Rejected::TakenOver => {
                warn!(new_owner = ?rec.request_id, "another request took over this run; discarding our result");
                Step::Done(Disposition::Delete)
            }
            Rejected::Rehandle => {
                if rec.epoch() != epoch {
                    self.metrics
                        .stale_results
                        .get_or_create(&Metrics::set(set))
                        .inc();
                    info!(
                        epoch,
                        current_epoch = rec.epoch(),
                        "a trigger landed during the run; discarding the stale result and handling the request again"
                    );
                }
                Step::Rehandle(now)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn retry_later(
        &self,
        key: &Key,
        set: &str,
        set_cfg: &SetConfig,
        rid: &str,
        epoch: i64,
        attempt: i64,
        error: &str,
    ) -> anyhow::Result<Step> {
        let delay_ms = state::backoff(
            attempt,
            set_cfg.backoff_base.as_millis() as i64,
            set_cfg.backoff_cap.as_millis() as i64,
        );
        let hold = now_millis() + delay_ms + self.cfg.worker.lease_duration.as_millis() as i64;
        let write = state::retry_later(rid, epoch, error, hold);
        match self.table.update(key, &[(set, &write)]).await? {
            Updated::Applied(_) => {
                warn!(
                    attempt,
                    max_attempts = set_cfg.max_attempts,
                    retry_in_ms = delay_ms,
                    error = %error,
                    "processing failed (retryable); retrying later"
                );
                Ok(Step::Done(Disposition::RetryAfter(Duration::from_millis(
                    delay_ms as u64,
                ))))
            }
            Updated::Rejected(now) => Ok(self.rejected(set, rid, epoch, now)),
        }
    }

    async fn fail(
        &self,
        key: &Key,
        set: &str,
        run: RunOf<'_>,
        error: &str,
        leader: &mut Option<&mut Leader<FlightKey>>,
    ) -> anyhow::Result<Step> {
        let RunOf {
            rid,
            message_id,
            epoch,
        } = run;
        let write = state::fail(rid, epoch, error, message_id);
        match self.table.update(key, &[(set, &write)]).await? {
            Updated::Applied(new) => {
                warn!(epoch, error = %error, "processing failed; the cache is FAILED");
                let coalesced = seal(leader);
                self.publish(CompletionEvent {
                    request_id: Some(rid),
                    item: Some(&new),
                    error: Some(error),
                    coalesced: &coalesced,
                    failed_message_id: Some(message_id),
                    ..CompletionEvent::new(EventKind::Failed, key, set, epoch)
                })
                .await?;
                Ok(Step::Done(Disposition::DeadLetter {
                    kind: "failed",
                    reason: error.to_owned(),
                }))
            }
            Updated::Rejected(now) => Ok(self.rejected(set, rid, epoch, now)),
        }
    }

    async fn publish(&self, ev: CompletionEvent<'_>) -> anyhow::Result<()> {
        let (kind, set) = (ev.kind, ev.set);
        match self.events.publish(&ev).await {
            Ok(Some(event_id)) => {
                self.metrics
                    .events_published
                    .get_or_create(&crate::metrics::EventLabel {
                        event: kind.as_str().into(),
                        set: set.into(),
                    })
                    .inc();
                debug!(
                    event = kind.as_str(),
                    event_id, "completion event published"
                );
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.metrics
                    .aws_errors
                    .get_or_create(&crate::metrics::ServiceLabel {
                        service: "sns".into(),
                    })
                    .inc();
                Err(e.into())
            }
        }
    }
}

fn seal(leader: &mut Option<&mut Leader<FlightKey>>) -> Vec<String> {
    leader.as_mut().map(|l| l.seal()).unwrap_or_default()
}

/// Why a value cannot be stored, if it cannot: the item with the new value
/// would pass DynamoDB's 400 KB limit.
fn too_large(item: &Item, value_attr: &str, value: &Json) -> Option<String> {
    let rest: usize = item
        .iter()
        .filter(|(k, _)| k.as_str() != value_attr)
        .map(|(k, v)| k.len() + crate::item::av_size(v))
        .sum();
    let value_size = value_attr.len() + crate::item::av_size(&to_av(value));
    // Room for the bookkeeping the commit adds (status, readyAt).
    let total = rest + value_size + 64;
    (total > MAX_ITEM_BYTES).then(|| {
        format!(
            "the value is {} KB and the item would be {} KB, over DynamoDB's 400 KB item size limit; return a smaller value (or store it elsewhere and cache a reference)",
            value_size / 1024,
            total / 1024
        )
    })
}

/// The delay before a message whose handling failed (AWS errors) comes
/// back: 1s, 2s, 4s ... 60s by receive count.
pub fn error_backoff(receive_count: u32) -> Duration {
    Duration::from_secs(1u64 << receive_count.clamp(1, 7).saturating_sub(1))
        .min(Duration::from_secs(60))
}
