//! triggered-cache: a worker daemon that keeps event-invalidated caches in
//! DynamoDB items and recomputes each exactly once.
//!
//! Producers write small JSON messages to SQS; this crate's worker pool
//! long-polls them and, per message, answers from the cache kept in the
//! object's own DynamoDB item, or lets exactly one request across all
//! replicas claim the item with a conditional write, run the processing
//! flow, store the result and publish a completion event to SNS.
//!
//! Where to look:
//! - [`state`]: the cache state machine, pure: record as read + message →
//!   the next conditional write.
//! - [`aws`]: thin AWS adapters (queue, table, dependency edges, topic),
//!   the only code that calls the SDK; [`events`]: completion events as
//!   subscribers see them; [`clock`]: the lease clock.
//! - [`value`]: how a value is stored (inline, compressed, or in S3
//!   behind a `valueRef`).
//! - [`processor`]: what computes a value (`command`, `http`, or your own
//!   [`processor::Processor`]).
//! - [`worker`]: one message end to end; [`pool`]: pollers, heartbeats and
//!   shutdown; [`daemon`]: wiring; [`observe`]: each observable event's log
//!   line and metric, written together.
#![forbid(unsafe_code)]

pub mod admin;
pub mod aws;
pub mod batch;
pub mod cli;
pub mod clock;
pub mod coalesce;
pub mod config;
pub mod daemon;
pub mod envelope;
pub mod events;
pub mod handler;
pub mod health;
pub mod healthcheck;
pub mod heartbeat;
pub mod item;
pub mod message;
pub mod metrics;
pub mod observe;
pub mod ops;
pub mod pool;
pub mod processor;
pub mod state;
pub mod streams;
pub mod telemetry;
pub mod value;
pub mod worker;

pub use config::Config;
pub use processor::{Job, Output, ProcessError, Processor};
pub use worker::Worker;
