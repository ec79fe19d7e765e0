//! The kinds of completion event, a leaf that the configuration
//! (`sns.events`) names too, so that `config` does not import the
//! publisher.

use serde::{Deserialize, Serialize};

/// The kinds of completion event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Hit,
    Ready,
    Failed,
    Reset,
}

impl EventKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [EventKind; 4] = [
        EventKind::Hit,
        EventKind::Ready,
        EventKind::Failed,
        EventKind::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Hit => "hit",
            EventKind::Ready => "ready",
            EventKind::Failed => "failed",
            EventKind::Reset => "reset",
        }
    }
}
