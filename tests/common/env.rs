//! One test's AWS resources (queue, DLQ, table, topic, events queue), created
//! fresh under a unique name, and the worker configuration that points at
//! them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value as Json, json};
use triggered_cache::config::{Config, ProcessorConfig, SetConfig};

use super::emulator::{endpoint, sdk, unique};

/// One test's AWS resources.
pub struct Env {
    pub sdk: SdkConfig,
    pub name: String,
    pub sqs: aws_sdk_sqs::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub events_url: String,
    pub topic_arn: String,
    pub events: Mutex<Vec<Json>>,
}

impl Env {
    /// Creates queue + DLQ (redrive after 5 receives), table (pk), topic
    /// and an events queue subscribed with raw delivery.
    pub async fn new(prefix: &str) -> Env {
        let sdk = sdk().await;
        let name = unique(prefix);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let sns = aws_sdk_sns::Client::new(&sdk);
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}).to_string();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{name}-requests"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        ddb.create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let topic_arn = sns
            .create_topic()
            .name(format!("{name}-events"))
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let events_url = sqs
            .create_queue()
            .queue_name(format!("{name}-events"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let events_arn = queue_arn(&sqs, &events_url).await;
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(events_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        Env {
            sdk,
            name,
            sqs,
            ddb,
            sns,
            queue_url,
            dlq_url,
            events_url,
            topic_arn,
            events: Mutex::new(Vec::new()),
        }
    }

    /// Creates a table with a string partition key (and sort key), and
    /// optionally a stream; returns the stream ARN if any.
    pub async fn create_table(
        &self,
        name: &str,
        pk: &str,
        sk: Option<&str>,
        stream: bool,
    ) -> Option<String> {
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let mut req = self
            .ddb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(pk))
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(pk)
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            );
        if let Some(sk) = sk {
            req = req.attribute_definitions(attr(sk)).key_schema(
                KeySchemaElement::builder()
                    .attribute_name(sk)
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            );
        }
        if stream {
            req = req.stream_specification(
                aws_sdk_dynamodb::types::StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                    .build()
                    .unwrap(),
            );
        }
        let out = req.send().await.unwrap();
        out.table_description.and_then(|t| t.latest_stream_arn)
    }

    /// A configuration for this env with short timings and the given sets
    /// (all `embedded`: the test registers the processors).
    pub fn config(&self, sets: &[&str]) -> Config {
        let mut cfg = Config::default();
        cfg.aws.region = Some("us-east-1".into());
        cfg.aws.endpoint_url = Some(endpoint());
        cfg.sqs.queue_url = self.queue_url.clone();
        cfg.sqs.dlq_url = self.dlq_url.clone();
        cfg.sqs.wait_time = Duration::from_secs(1);
        cfg.sqs.visibility_timeout = Duration::from_secs(4);
        cfg.sqs.pollers = 1;
        cfg.dynamodb.table = self.name.clone();
        cfg.sns.topic_arn = self.topic_arn.clone();
        cfg.worker.heartbeat_interval = Duration::from_millis(500);
        cfg.worker.lease_duration = Duration::from_secs(3);
        cfg.aws.call_timeout = Duration::from_secs(2);
        cfg.worker.clock_skew = Duration::from_millis(200);
        cfg.worker.shutdown_grace = Duration::from_secs(5);
        cfg.http.listen = String::new();
        cfg.sets = sets
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    SetConfig {
                        processor: ProcessorConfig::Embedded,
                        timeout: Duration::from_secs(20),
                        max_attempts: 3,
                        backoff_base: Duration::from_secs(1),
                        backoff_cap: Duration::from_secs(2),
                        ttl: None,
                        trigger_timeout: Duration::from_secs(60),
                        answer_each_request: false,
                        compress: None,
                        offload_over: None,
                        serve_stale: None,
                        failure_ttl: None,
                        refresh_after: None,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        cfg.validate().expect("the test configuration is valid");
        cfg
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap()
}
