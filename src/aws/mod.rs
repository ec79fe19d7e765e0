//! The AWS adapters: the only code that builds AWS SDK clients and calls
//! them.
//!
//! Why one place: the rest of the crate (the state machine, the worker,
//! health, the CLI) speaks in the adapters' terms — a received message, an
//! item, a conditional write, a ping — and never calls an SDK client, so
//! each AWS call has one home, one span and one error type that names the
//! call and the resource. Every call an adapter makes is listed, with the
//! IAM action it needs, in [`iam::IAM_ACTIONS`] (a test fails on a call
//! missing there); `triggered-cache iam-actions` prints that list and
//! `scripts/deploy/verify.py` checks the IAM policies against it.
//!
//! - [`queue`]: SQS, the request queue and its DLQ, and batch sends.
//! - [`dlq`]: SQS, the dead-letter queue as the operators' commands see it.
//! - [`table`]: DynamoDB, the user's table (reads, conditional writes).
//! - [`edges`]: DynamoDB, the dependency table's edges.
//! - [`topic`]: SNS, publishing rendered completion events.
//! - [`s3`]: S3, the configured bucket and prefix: offloaded values and
//!   producers' `inputRef` objects.
//! - [`Clients`]: the SDK clients, built once from the AWS configuration,
//!   handed out only inside adapters; each counts its request attempts
//!   ([`requests`]).
//!
//! - [`error`]: the adapters' errors, which name the call and the resource
//!   and keep the SDK's error by kind as their source.
//!
//! SDK errors are rendered once, by [`error_message`], so that a failed
//! call reads the same in logs, `/readyz`, dead-letter reasons and CLI
//! errors, whichever service it was.

pub mod dlq;
pub mod edges;
pub mod error;
pub mod iam;
pub mod queue;
pub mod requests;
pub mod s3;
pub mod table;
pub mod topic;

/// A call's future kept on the heap while it runs: every AWS SDK call, and
/// the HTTP processor's request.
///
/// The SDK's futures are large (kilobytes each, its orchestrator inline),
/// and an `async fn` that awaits one inline is as large as the largest it
/// awaits: the per-message future that once reached every call site grew to
/// 34 KB, allocated and copied for each message even when the message made
/// none of those calls (a hit makes its calls through the batchers). Boxed,
/// a call costs one small allocation when it is made, and nothing otherwise.
pub(crate) trait OnHeap: Future + Sized {
    fn on_heap(self) -> std::pin::Pin<Box<Self>> {
        Box::pin(self)
    }
}

impl<F: Future> OnHeap for F {}

use crate::item::Attrs;

pub use error::{error_message, failed_service};
pub use iam::IAM_ACTIONS;

/// The SDK clients of one AWS configuration. Callers outside `aws/` get
/// adapters from it, never a client.
#[derive(Clone, Debug)]
pub struct Clients {
    sqs: aws_sdk_sqs::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    sns: aws_sdk_sns::Client,
    s3: aws_sdk_s3::Client,
    /// The messages on their way to an answer, counted by the pool, which
    /// the answer's batched reads and events consult before lingering.
    answering: crate::batch::Answering,
}

impl Clients {
    /// Clients that count their requests into a family of their own (the
    /// CLI's commands, which serve no `/metrics`).
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self::counting(sdk, requests::Requests::default())
    }

    /// Clients whose every request attempt (retries included) is counted
    /// in `requests` (the daemon's `aws_requests` metric).
    pub fn counting(sdk: &aws_config::SdkConfig, requests: requests::Requests) -> Self {
        let count = requests::CountRequests(requests);
        Clients {
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .interceptor(count.clone())
                    .build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .interceptor(count.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(sdk)
                    .interceptor(count.clone())
                    .build(),
            ),
            // Path-style against an endpoint of one's own (the emulators
            // serve buckets as paths), virtual-hosted against AWS.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(sdk.endpoint_url().is_some())
                    .interceptor(count)
                    .build(),
            ),
            answering: Default::default(),
        }
    }

    /// The request queue and its DLQ, as the daemon uses them. Must be
    /// called inside a tokio runtime (it starts the batchers).
    pub fn queue(&self, url: &str, dlq_url: &str) -> queue::Queue {
        queue::Queue::new(self.sqs.clone(), url.to_owned(), dlq_url.to_owned())
    }

    /// A queue the CLI sends to.
    pub fn sender(&self, url: &str) -> queue::Sender {
        queue::Sender::new(self.sqs.clone(), url)
    }

    /// The dead-letter queue, as the operators' commands use it.
    pub fn dlq(&self, url: &str) -> dlq::Dlq {
        dlq::Dlq::new(self.sqs.clone(), url)
    }

    /// The user's table.
    pub fn table(&self, name: &str, attrs: Attrs) -> table::Table {
        table::Table::answering(
            self.dynamodb.clone(),
            name,
            attrs,
            Some(self.answering.clone()),
        )
    }

    /// The count of messages on their way to an answer that this table's
    /// reads and [`Clients::publisher`]'s events consult: the pool that
    /// handles messages with them counts into it.
    pub fn answering(&self) -> crate::batch::Answering {
        self.answering.clone()
    }

    /// The completion events' publisher.
    pub fn publisher(&self, cfg: &crate::config::Config) -> crate::events::Publisher {
        crate::events::Publisher::answering(self.sns.clone(), cfg, Some(self.answering.clone()))
    }

    /// The dependency table.
    pub fn dependencies(&self, table: &str) -> edges::Dependencies {
        edges::Dependencies::new(self.dynamodb.clone(), table.to_owned())
    }

    /// The configured S3 bucket and prefix (`[s3]`).
    pub fn bucket(&self, bucket: &str, prefix: &str) -> s3::Bucket {
        s3::Bucket::new(self.s3.clone(), bucket, prefix)
    }

    /// The SNS client, for [`crate::events::Publisher::new`] (which wraps
    /// it in a [`topic::Topic`]).
    pub fn sns(&self) -> aws_sdk_sns::Client {
        self.sns.clone()
    }
}
