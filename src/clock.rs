//! The one clock of leases, holds and timestamps: milliseconds since the
//! Unix epoch. Its own module because the worker, the pool, health, the CLI
//! and the adapters all read it, and none of them owns it.

use std::time::SystemTime;

/// Milliseconds since the Unix epoch, the clock of leases.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
