//! Shared harness of the integration tests: a fresh queue, DLQ, table,
//! topic and events queue per test on the local emulator, workers started
//! in their own runtimes (so a test can crash one), and waiting for
//! completion events with a deadline.
//!
//! One file per concern; tests use the re-exports below (`common::Env`,
//! `common::Running`, ...), not the file an item lives in.
//! - `emulator.rs`: the endpoint, an SDK configuration, unique names;
//! - `env.rs`: one test's resources and the worker configuration for them;
//! - `send.rs`: request bodies and keys, sent to the request queue;
//! - `observe.rs`: the item, events, DLQ and queue depths, waited for with
//!   a deadline (`wait_until`);
//! - `processor.rs`: `Recorder`, a processor the test controls;
//! - `running.rs`: the worker pool in process (stop, crash, metrics);
//! - `process.rs`: the binary as a child process (`bin`, `Daemon`);
//! - `s3.rs`: a test's own bucket (offloaded values, `inputRef`s);
//! - `proxy.rs`: a pass-through proxy to the emulator that can hold
//!   requests, to stop a daemon at an exact step.
//! - `policy.rs`: backdating an item's cache timestamps (cache policies).
//!
//! Each test binary compiles this module and uses only part of it, hence
//! the allowances for what a binary leaves unused.
#![allow(dead_code, unused_imports)]

mod emulator;
mod env;
mod observe;
mod policy;
mod process;
mod processor;
mod proxy;
mod running;
mod s3;
mod send;

pub use emulator::{endpoint, sdk, unique};
pub use env::Env;
pub use observe::wait_until;
pub use process::{Daemon, bin};
pub use processor::Recorder;
pub use proxy::Proxy;
pub use running::Running;
pub use s3::{Bucket, sha256_hex};
