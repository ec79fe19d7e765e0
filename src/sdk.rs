//! What the AWS adapters ([`crate::queue`], [`crate::table`],
//! [`crate::events`], [`crate::dependencies`], [`crate::admin::dlq`]) share:
//! how an SDK error reads. One function, so that a failed call reads the
//! same in logs, `/readyz`, dead-letter reasons and CLI errors, whichever
//! service it was.

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
