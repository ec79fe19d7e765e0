//! What happens is observed once: every observable event is logged and
//! counted in one place, its `emit`, so that a log line and its metric
//! never drift apart (as Vector's `internal_events` do). The code that
//! acts says what happened; this module says how it shows.
//!
//! - [`note`]: the request path, the pure handler's [`crate::handler::Note`]s
//!   (the property test keeps its books from the same notes);
//! - [`PoolEvent`]: the queue side of the pool (received, deleted,
//!   dead-lettered, receive failures, panics) and the heartbeats
//!   (visibility, lease renewal and release);
//! - [`MessageEvent`]: one message outside the handler's steps (cannot be
//!   understood, handling failed, coalesced, a processing run, its
//!   completion event published);
//! - [`TriggerEvent`]: triggers, trigger flows, dependency and stream
//!   triggers.
//!
//! Every log line about a message is written inside its span (pool.rs),
//! which names its key, set, request id and receive count.

mod message;
mod notes;
mod pool;
mod trigger;

pub use message::MessageEvent;
pub use notes::note;
pub use pool::PoolEvent;
pub use trigger::TriggerEvent;
