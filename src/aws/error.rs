//! The adapters' errors, and the one rendering of an SDK error.
//!
//! Each error names the call and the resource in its own message and keeps
//! the SDK's error, by kind, as its `source`: a caller matches
//! `aws_sdk_sqs::Error::QueueDoesNotExist` or
//! `aws_sdk_dynamodb::Error::ResourceNotFoundException`, never a message.
//! The service's code and message, or the transport failure, are in the
//! chain, so the error is rendered with its causes by [`error_message`] (or
//! anyhow's `{:#}`), never by `to_string()` alone.

use std::error::Error;
use std::sync::Arc;

use aws_sdk_sqs::error::DisplayErrorContext;

use crate::batch::Lost;

/// A readable message for an error and each of its causes (the service's
/// code and message, or the transport failure), as the SDK's
/// [`DisplayErrorContext`] renders them.
pub fn error_message<E: Error>(err: &E) -> String {
    DisplayErrorContext(err).to_string()
}

/// The service whose call failed, for `aws_errors{service}`: an adapter's
/// error anywhere in the chain, by type.
pub fn failed_service(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|e| {
        if e.is::<TableError>() {
            Some("dynamodb")
        } else if e.is::<QueueError>() {
            Some("sqs")
        } else if e.is::<PublishError>() {
            Some("sns")
        } else if e.is::<ObjectError>() {
            Some("s3")
        } else {
            None
        }
    })
}

/// A DynamoDB call that failed (not a failed condition): on the user's
/// table or on the dependency table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The item would exceed DynamoDB's 400 KB limit (see
    /// [`is_item_too_large`]); DynamoDB's message.
    #[error("the item would exceed DynamoDB's 400 KB item size limit: {0}")]
    TooLarge(String),
    /// Any other failure. `source` is the SDK's error by kind, so that a
    /// caller matches e.g. `aws_sdk_dynamodb::Error::ResourceNotFoundException`
    /// rather than a message.
    #[error("DynamoDB {op} on table {table} failed")]
    Call {
        op: &'static str,
        table: String,
        #[source]
        source: aws_sdk_dynamodb::Error,
    },
    /// A batched call that failed for every caller it carried: the SDK's
    /// error by kind, shared by them.
    #[error("DynamoDB {op} on table {table} failed")]
    Shared {
        op: &'static str,
        table: String,
        #[source]
        source: Arc<aws_sdk_dynamodb::Error>,
    },
    /// A batched call's entry got no result (the daemon is stopping).
    #[error(transparent)]
    Lost(#[from] Lost),
    /// A batch call kept leaving items unprocessed (throttling) after its
    /// retries.
    #[error("DynamoDB {op} on table {table} left {left} item(s) unprocessed after retries")]
    Unprocessed {
        op: &'static str,
        table: String,
        left: usize,
    },
}

impl TableError {
    /// The SDK's error, by kind, if the call itself failed.
    pub fn kind(&self) -> Option<&aws_sdk_dynamodb::Error> {
        match self {
            TableError::Call { source, .. } => Some(source),
            TableError::Shared { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Whether a failed write was refused because the item would exceed 400 KB.
///
/// DynamoDB says so only as a `ValidationException` (the code it uses for
/// every malformed request) whose message reads "Item size has exceeded the
/// maximum allowed size" ("Item size to update has exceeded ..." for
/// `UpdateItem`); the SDK models no error kind for it. So the code is
/// checked first, and the message's wording only within it: this is the
/// one place that reads a message.
pub fn is_item_too_large(code: Option<&str>, message: Option<&str>) -> bool {
    code == Some("ValidationException")
        && message.is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            m.contains("item size") && m.contains("exceeded")
        })
}

/// An SQS call that failed, or that SQS refused for a message.
#[derive(Debug, thiserror::Error)]
#[error("SQS {op} on {queue} failed")]
pub struct QueueError {
    pub op: &'static str,
    pub queue: String,
    #[source]
    pub source: QueueFailure,
}

impl QueueError {
    /// The SDK's error, by kind, if the call itself failed.
    pub fn kind(&self) -> Option<&aws_sdk_sqs::Error> {
        match &self.source {
            QueueFailure::Call(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an SQS call did not do what was asked.
#[derive(Clone, Debug, thiserror::Error)]
pub enum QueueFailure {
    /// The call failed: the SDK's error by kind (shared by every message
    /// of a batched call).
    #[error(transparent)]
    Call(Arc<aws_sdk_sqs::Error>),
    /// The call went through, but SQS refused this message's entry.
    #[error("SQS refused the entry: {code}: {message}")]
    Entry { code: String, message: String },
    /// The call went through, but SQS refused some of its entries.
    #[error("{refused} message(s) refused, the first: {code}: {message}")]
    Entries {
        refused: usize,
        code: String,
        message: String,
    },
    /// A batched call's entry got no result (the daemon is stopping).
    #[error(transparent)]
    Lost(#[from] Lost),
}

impl QueueFailure {
    /// The failure of a whole call.
    pub fn call<E>(err: E) -> QueueFailure
    where
        aws_sdk_sqs::Error: From<E>,
    {
        QueueFailure::Call(Arc::new(err.into()))
    }
}

/// An SNS call that failed.
#[derive(Debug, thiserror::Error)]
#[error("SNS {op} to {topic} failed")]
pub struct PublishError {
    pub op: &'static str,
    pub topic: String,
    /// The SDK's error by kind (e.g. `aws_sdk_sns::Error::NotFoundException`).
    #[source]
    pub source: aws_sdk_sns::Error,
}

/// An S3 call on the configured bucket that failed, or that the adapter
/// refused to make (outside `s3.bucket`/`s3.prefix`).
#[derive(Debug, thiserror::Error)]
#[error("S3 {op} of s3://{bucket}/{key} failed")]
pub struct ObjectError {
    pub op: &'static str,
    pub bucket: String,
    pub key: String,
    #[source]
    pub source: ObjectFailure,
}

impl ObjectError {
    /// Whether the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(&self.source, ObjectFailure::Call(e)
            if matches!(**e, aws_sdk_s3::Error::NoSuchKey(_) | aws_sdk_s3::Error::NotFound(_)))
    }
}

/// Why an S3 call did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ObjectFailure {
    /// The call failed: the SDK's error by kind (boxed: it is large).
    #[error(transparent)]
    Call(Box<aws_sdk_s3::Error>),
    /// Not made: the key is outside the configured bucket and prefix.
    #[error("refused: {0}")]
    Refused(String),
    /// The call went through but its body could not be read, or the
    /// request could not be built.
    #[error("{0}")]
    Body(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::error::SdkError;
    use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;

    #[test]
    fn the_message_carries_the_cause() {
        let err: SdkError<GetQueueAttributesError, ()> =
            SdkError::construction_failure("the queue url is missing");
        let msg = error_message(&err);
        assert!(msg.starts_with("failed to construct request"), "{msg}");
        assert!(msg.contains(": the queue url is missing"), "{msg}");
    }

    #[test]
    fn an_adapter_error_says_the_call_then_the_cause_once() {
        let err: SdkError<GetQueueAttributesError, ()> =
            SdkError::construction_failure("the queue url is missing");
        let e = QueueError {
            op: "GetQueueAttributes",
            queue: "https://q".into(),
            source: QueueFailure::call(err),
        };
        let msg = error_message(&e);
        let chain = "SQS GetQueueAttributes on https://q failed: unhandled error: \
                     failed to construct request: the queue url is missing";
        assert!(msg.starts_with(&format!("{chain} (")), "{msg}");
        assert_eq!(format!("{:#}", anyhow::Error::from(e)), chain);
    }

    fn table_error() -> TableError {
        let err: SdkError<aws_sdk_dynamodb::operation::query::QueryError, ()> =
            SdkError::construction_failure("no table");
        TableError::Call {
            op: "Query",
            table: "edges".into(),
            source: err.into(),
        }
    }

    #[test]
    fn the_failed_service_is_found_by_type_through_context() {
        let e = anyhow::Error::from(table_error()).context("tracking dependencies");
        assert_eq!(failed_service(&e), Some("dynamodb"));
        let unprocessed = TableError::Unprocessed {
            op: "BatchWriteItem",
            table: "edges".into(),
            left: 3,
        };
        assert_eq!(failed_service(&unprocessed.into()), Some("dynamodb"));
        let queue = QueueError {
            op: "DeleteMessageBatch",
            queue: "q".into(),
            source: Lost::Stopped.into(),
        };
        assert_eq!(failed_service(&queue.into()), Some("sqs"));
        let err: SdkError<aws_sdk_sns::operation::publish::PublishError, ()> =
            SdkError::construction_failure("no topic");
        let publish = PublishError {
            op: "Publish",
            topic: "arn".into(),
            source: err.into(),
        };
        assert_eq!(failed_service(&publish.into()), Some("sns"));
        // Text that merely mentions a service is not a failed call.
        assert_eq!(
            failed_service(&anyhow::anyhow!("DynamoDB Query on table edges failed")),
            None
        );
    }

    #[test]
    fn too_large_is_a_validation_exception_about_the_item_size() {
        let put = "Item size has exceeded the maximum allowed size";
        let update = "Item size to update has exceeded the maximum allowed size";
        assert!(is_item_too_large(Some("ValidationException"), Some(put)));
        assert!(is_item_too_large(Some("ValidationException"), Some(update)));
        // Other validation errors, and the words under another code, are not.
        let other = "One or more parameter values were invalid: Missing the key pk";
        assert!(!is_item_too_large(Some("ValidationException"), Some(other)));
        assert!(!is_item_too_large(Some("InternalServerError"), Some(put)));
        assert!(!is_item_too_large(None, Some(put)));
        assert!(!is_item_too_large(Some("ValidationException"), None));
    }
}
