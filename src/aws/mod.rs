//! The AWS adapters: the only code that calls the AWS SDK (the CLI's
//! dead-letter commands aside, in `admin::dlq`).
//!
//! Why one place: the rest of the crate (the state machine, the worker,
//! health, the CLI) speaks in the adapters' terms — a received message, an
//! item, a conditional write, a ping — and never holds an SDK client, so
//! each AWS call has one home, one span and one error type that names the
//! call and the resource. `scripts/deploy/verify.py` derives the IAM
//! actions from the SDK calls found here.
//!
//! - [`queue`]: SQS, the request queue and its DLQ, and batch sends.
//! - [`table`]: DynamoDB, the user's table (reads, conditional writes).
//! - [`edges`]: DynamoDB, the dependency table's edges.
//! - [`topic`]: SNS, publishing rendered completion events.
//!
//! SDK errors are rendered once, by [`error_message`], so that a failed
//! call reads the same in logs, `/readyz`, dead-letter reasons and CLI
//! errors, whichever service it was.

pub mod edges;
pub mod queue;
pub mod table;
pub mod topic;

use std::error::Error;

use aws_sdk_sqs::error::DisplayErrorContext;

/// A readable message for an SDK error: the error and each of its causes
/// (the service's code and message, or the transport failure), as the
/// SDK's [`DisplayErrorContext`] renders them.
pub fn error_message<E: Error>(err: &E) -> String {
    DisplayErrorContext(err).to_string()
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::error::SdkError;
    use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;

    #[test]
    fn the_message_carries_the_cause() {
        let err: SdkError<GetQueueAttributesError, ()> =
            SdkError::construction_failure("the queue url is missing");
        let msg = super::error_message(&err);
        assert!(msg.starts_with("failed to construct request"), "{msg}");
        assert!(msg.contains(": the queue url is missing"), "{msg}");
    }
}
