//! Counting every AWS request the process makes, by service and operation.
//!
//! Why an interceptor: the bill is per request, and requests are made in
//! many places (the adapters' calls, their batch forms, the SDK's retries,
//! the readiness probes, the CLI). An SDK interceptor registered on every
//! client [`super::Clients`] builds sees each attempt just before it goes on
//! the wire, whoever made it, so the count cannot drift from the calls:
//! `triggered_cache_aws_requests_total{service,operation}` in `/metrics`.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::iam::{Caller, IAM_ACTIONS};

/// The labels of one counted operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    /// `sqs`, `dynamodb` or `sns`.
    pub service: String,
    /// The API operation, e.g. `GetItem`, `PublishBatch`.
    pub operation: String,
}

/// Request attempts by service and operation (a handle: clones count into
/// the same series).
pub type Requests = Family<RequestLabel, Counter>;

/// Reads the attempts of `operation` on `service` (tests, benchmarks).
pub fn count(requests: &Requests, service: &str, operation: &str) -> u64 {
    requests
        .get_or_create(&RequestLabel {
            service: service.to_owned(),
            operation: operation.to_owned(),
        })
        .get()
}

/// The interceptor that counts each attempt into its [`Requests`].
#[derive(Clone, Debug)]
pub struct CountRequests(pub Requests);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    /// Once per attempt (retries included), after signing, before sending.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            // The SDK names the service by its id ("DynamoDB", "SQS",
            // "SNS"); the label is lower case, as in `aws_errors{service}`.
            self.0
                .get_or_create(&RequestLabel {
                    service: meta.service().to_ascii_lowercase(),
                    operation: meta.name().to_owned(),
                })
                .inc();
        }
        Ok(())
    }
}

/// The `(service, operation)` of every call the daemon makes, from
/// [`IAM_ACTIONS`]: the series that exist at 0 from the start.
pub fn daemon_operations() -> Vec<RequestLabel> {
    let mut out: Vec<RequestLabel> = IAM_ACTIONS
        .iter()
        .filter(|g| g.caller == Caller::Daemon)
        .flat_map(|g| {
            let service = g.action.split(':').next().unwrap_or_default();
            g.calls.iter().map(move |call| RequestLabel {
                service: service.to_owned(),
                operation: pascal_case(call),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)));
    out.dedup();
    out
}

/// `receive_message` → `ReceiveMessage`: the SDK's method name as the
/// API's operation name.
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn operations_are_named_as_the_api_names_them() {
        assert_eq!(pascal_case("receive_message"), "ReceiveMessage");
        assert_eq!(pascal_case("get_item"), "GetItem");
        let ops = daemon_operations();
        let has = |s: &str, o: &str| ops.iter().any(|l| l.service == s && l.operation == o);
        assert!(has("sqs", "ReceiveMessage"), "{ops:?}");
        assert!(has("dynamodb", "UpdateItem"), "{ops:?}");
        assert!(has("sns", "Publish"), "{ops:?}");
        // Only the daemon's: `send` is the CLI's.
        assert!(!has("sqs", "SendMessageBatch"), "{ops:?}");
    }

    /// Every attempt is counted, the SDK's retries included: a table whose
    /// endpoint refuses connections is asked three times.
    #[tokio::test]
    async fn each_attempt_is_counted_retries_included() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "unit",
            ))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .load()
            .await;
        let requests = Requests::default();
        let clients = super::super::Clients::counting(&sdk, requests.clone());
        let table = clients.table(
            "t",
            crate::item::Attrs {
                prefix: "tc".into(),
            },
        );
        table.ping().await.expect_err("nothing listens there");
        assert_eq!(count(&requests, "dynamodb", "DescribeTable"), 3);
        assert_eq!(count(&requests, "dynamodb", "GetItem"), 0);
    }
}
