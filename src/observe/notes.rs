//! The request path: each [`Note`] a handler gives is logged and counted
//! here. The message's span (pool.rs) already names its key, set and
//! request id.

use tracing::{debug, info, warn};

use crate::handler::Note;
use crate::metrics::{Metrics, SetKindLabel};
use crate::state::{ClaimReason, LeaveReason, Outcome};

/// Logs and counts what a handler observed for a message of `set`.
pub fn note(metrics: &Metrics, set: &str, note: &Note) {
    let count = |family| Metrics::inc(family, set);
    match note {
        Note::Miss => count(&metrics.misses),
        Note::Hit => count(&metrics.hits),
        Note::Republished {
            epoch,
            outcome: Outcome::Ready,
        } => info!(
            epoch,
            "redelivery after commit; re-publishing the ready event"
        ),
        Note::Republished {
            epoch,
            outcome: Outcome::Failed,
        } => info!(
            epoch,
            "redelivery after the failure was recorded; re-publishing the failed event"
        ),
        Note::Left {
            reason,
            owner,
            awaiting,
            running,
        } => match reason {
            LeaveReason::OwnedElsewhere => {
                debug!(owner = ?owner, "another request owns a live run; its event answers this one")
            }
            LeaveReason::AlreadyParked => {
                debug!(awaiting = ?awaiting, "a request is already parked for the trigger flow")
            }
            LeaveReason::StaleTriggerEnd => {
                info!(running = ?running, "trigger_end does not match the running flow; ignored")
            }
        },
        Note::Parked { trigger_id } => {
            count(&metrics.parked);
            info!(trigger_id = ?trigger_id, "parked as the awaiting step of the trigger flow");
        }
        Note::Unblocked => info!("trigger flow ended with nothing parked; the cache is STALE"),
        Note::Adopted { owner } => info!(
            owner,
            "the owner's redelivery joined this request; continuing as the owner"
        ),
        Note::ClaimLost => {
            count(&metrics.claims_lost);
            debug!("claim lost: the state moved since it was read");
        }
        Note::ClaimWon {
            epoch,
            reason,
            previous_owner,
            lease_until,
            trigger_id,
        } => {
            count(&metrics.claims_won);
            match reason {
                ClaimReason::LeaseExpired => {
                    count(&metrics.lease_takeovers);
                    warn!(previous_owner = ?previous_owner, lease_until = ?lease_until, "lease takeover: the owner's lease had lapsed");
                }
                ClaimReason::TriggerDeadlinePassed => {
                    count(&metrics.trigger_deadline_expiries);
                    warn!(trigger_id = ?trigger_id, "trigger flow passed its deadline without ending; processing anyway");
                }
                _ => {}
            }
            info!(epoch, ?reason, "claim won; processing");
        }
        Note::Continued { epoch } => info!(
            epoch,
            "redelivery of the owner's message; continuing the run"
        ),
        Note::RenewalRejected => {
            warn!("lease renewal rejected: the run was invalidated; stopping it early")
        }
        Note::ProcessingFailed { kind } => {
            metrics
                .processing_failures
                .get_or_create(&SetKindLabel {
                    set: set.into(),
                    kind: (*kind).into(),
                })
                .inc();
        }
        Note::RetryScheduled {
            attempt,
            max_attempts,
            delay_ms,
            error,
        } => warn!(
            attempt,
            max_attempts,
            retry_in_ms = delay_ms,
            error = %error,
            "processing failed (retryable); retrying later"
        ),
        Note::Failed { epoch, error } => {
            warn!(epoch, error = %error, "processing failed; the cache is FAILED")
        }
        Note::Committed { epoch, attempt } => info!(epoch, attempt, "committed READY"),
        Note::TakenOver { new_owner } => {
            warn!(new_owner = ?new_owner, "another request took over this run; discarding our result")
        }
        Note::StaleResult {
            epoch,
            current_epoch,
        } => {
            count(&metrics.stale_results);
            info!(
                epoch,
                current_epoch,
                "a trigger landed during the run; discarding the stale result and handling the request again"
            );
        }
        Note::KeptMoving { rehandles } => warn!(
            rehandles,
            "the state kept moving; leaving the message for later"
        ),
        Note::Offloaded { epoch } => {
            debug!(epoch, "the value is larger than offload_over; stored in S3")
        }
        Note::ServedStale {
            value_epoch,
            age_ms,
        } => {
            let policies = &metrics.policies;
            count(&policies.stale_answers);
            policies
                .stale_answer_age_seconds
                .get_or_create(&Metrics::set(set))
                .observe(*age_ms as f64 / 1000.0);
            debug!(
                value_epoch,
                age_ms, "answered stale (serve_stale); processing goes on"
            );
        }
        Note::FailureCached { epoch, failed_at } => {
            count(&metrics.policies.failures_cached);
            debug!(epoch, failed_at = ?failed_at, "answered with the recent failure (failure_ttl); no run");
        }
        Note::RefreshStarted { epoch, took_over } => {
            metrics.policies.refresh(set, "started");
            if let Some(previous_owner) = took_over {
                warn!(
                    previous_owner,
                    "refresh takeover: the refresher's lease had lapsed"
                );
            }
            info!(
                epoch,
                "value older than refresh_after; refreshing in the background"
            );
        }
        Note::Refreshed { epoch } => {
            metrics.policies.refresh(set, "committed");
            info!(epoch, "refresh committed a new value");
        }
        Note::RefreshFailed { error } => {
            metrics.policies.refresh(set, "failed");
            warn!(error = %error, "refresh failed; the current value stays until its ttl");
        }
        Note::RefreshLost { epoch, status } => {
            metrics.policies.refresh(set, "lost");
            info!(
                epoch,
                status = status.as_str(),
                "refresh given up: another replica refreshes, or a trigger won"
            );
        }
    }
}
