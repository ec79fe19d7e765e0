//! The AWS adapters' own calls on the emulator: the readiness pings and
//! queue gauges health.rs reads through them, the CLI's batch sends and the
//! dependency edges. Each failure names the call and the resource, typed,
//! not as a string: the SDK's error kind as its source, an item over 400 KB
//! as `TooLarge`; the worker counts it by its service.

mod common;

use aws_sdk_dynamodb::Error as DynamoDbError;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{Env, Recorder, Running, wait_until};
use serde_json::json;
use triggered_cache::aws::edges::Dependencies;
use triggered_cache::aws::error_message;
use triggered_cache::aws::queue::{Outgoing, Queue, Sender};
use triggered_cache::aws::table::{Table, TableError, Updated};
use triggered_cache::events::Publisher;
use triggered_cache::item::{Attrs, Key, KeyValue};

fn attrs() -> Attrs {
    Attrs {
        prefix: "tc".into(),
    }
}

fn adapters(env: &Env) -> (Queue, Table, Publisher) {
    let cfg = env.config(&["summary"]);
    let queue = Queue::new(env.sqs.clone(), env.queue_url.clone(), env.dlq_url.clone());
    let table = Table::new(env.ddb.clone(), &env.name, attrs());
    (queue, table, Publisher::new(env.sns.clone(), &cfg))
}

#[tokio::test]
async fn pings_answer_with_depths_and_the_redrive_policy() {
    let env = Env::new("adapters-ping").await;
    let (queue, table, topic) = adapters(&env);
    env.send(&json!({"n": 1})).await;
    env.send(&json!({"n": 2})).await;

    let status = queue.ping(true).await.expect("the request queue answers");
    assert_eq!(status.depth, Some(2));
    let policy = status.redrive_policy.expect("Env sets a redrive policy");
    assert!(policy.contains("maxReceiveCount"), "{policy}");
    assert_eq!(
        queue.ping(false).await.unwrap().redrive_policy,
        None,
        "asked only for the depth"
    );
    assert_eq!(queue.redrive_policy().await.unwrap(), Some(policy));
    assert_eq!(queue.dlq_depth().await.unwrap(), Some(0));
    table.ping().await.expect("the table answers");
    topic.ping().await.expect("the topic answers");
}

#[tokio::test]
async fn pings_of_missing_resources_fail_naming_the_call() {
    let env = Env::new("adapters-missing").await;
    let missing = common::unique("missing");
    let queue_url = format!("{}-nope", env.queue_url);
    let queue = Queue::new(env.sqs.clone(), queue_url.clone(), queue_url.clone());
    let e = queue.ping(true).await.expect_err("no such queue");
    assert_eq!(
        (e.op, e.queue.as_str()),
        ("GetQueueAttributes", queue_url.as_str())
    );
    assert!(
        matches!(e.kind(), Some(aws_sdk_sqs::Error::QueueDoesNotExist(_))),
        "{e:?}"
    );
    let message = error_message(&e);
    assert!(
        message.starts_with(&format!("SQS GetQueueAttributes on {queue_url} failed: ")),
        "{message}"
    );
    assert!(message.contains("QueueDoesNotExist"), "{message}");
    let e = queue.dlq_depth().await.expect_err("no such DLQ");
    assert_eq!(e.op, "GetQueueAttributes");

    let table = Table::new(env.ddb.clone(), &missing, attrs());
    match table.ping().await {
        Err(e @ TableError::Call { .. }) => {
            let message = error_message(&e);
            let TableError::Call { op, table, source } = e else {
                unreachable!()
            };
            assert_eq!((op, table.as_str()), ("DescribeTable", missing.as_str()));
            assert!(
                matches!(source, DynamoDbError::ResourceNotFoundException(_)),
                "{source:?}"
            );
            assert!(message.contains("ResourceNotFound"), "{message}");
        }
        other => panic!("expected a failed DescribeTable, got {other:?}"),
    }

    let mut cfg = env.config(&["summary"]);
    cfg.sns.topic_arn = format!("{}-nope", env.topic_arn);
    let e = Publisher::new(env.sns.clone(), &cfg)
        .ping()
        .await
        .expect_err("no such topic");
    assert_eq!(
        (e.op, e.topic.as_str()),
        ("GetTopicAttributes", cfg.sns.topic_arn.as_str())
    );
    assert!(e.to_string().starts_with("SNS GetTopicAttributes"), "{e}");
    assert!(
        matches!(e.source, aws_sdk_sns::Error::NotFoundException(_)),
        "{:?}",
        e.source
    );
    assert!(
        error_message(&e).contains("NotFound"),
        "{}",
        error_message(&e)
    );
}

#[tokio::test]
async fn a_batch_send_reports_each_message() {
    let env = Env::new("adapters-send").await;
    let sender = Sender::new(env.sqs.clone(), &env.queue_url);
    let msg = |body: &str| Outgoing {
        body: body.into(),
        attributes: None,
    };
    let sent = sender
        .send_batch(vec![msg("one"), msg("two")])
        .await
        .expect("the queue answers");
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter()
            .all(|r| r.as_ref().is_ok_and(|id| !id.is_empty())),
        "{sent:?}"
    );
    assert_eq!(env.queue_depth().await.0, 2);

    let e = Sender::new(env.sqs.clone(), &format!("{}-nope", env.queue_url))
        .send_batch(vec![msg("three")])
        .await
        .expect_err("no such queue");
    assert_eq!(e.op, "SendMessageBatch");
    assert!(
        matches!(e.kind(), Some(aws_sdk_sqs::Error::QueueDoesNotExist(_))),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_missing_dependency_table_fails_as_a_dynamodb_call() {
    let env = Env::new("adapters-edges").await;
    let missing = common::unique("missing-deps");
    let deps = Dependencies::new(env.ddb.clone(), missing.clone());
    let not_found = |e: &TableError, call: &str| match e {
        TableError::Call { op, table, source } => {
            assert_eq!((*op, table.as_str()), (call, missing.as_str()));
            assert!(
                matches!(source, DynamoDbError::ResourceNotFoundException(_)),
                "{source:?}"
            );
        }
        other => panic!("expected a failed {call}, got {other:?}"),
    };
    let e = deps.dependents("product#A").await.expect_err("no table");
    not_found(&e, "Query");
    let key = Key(vec![("pk".into(), KeyValue::S("item#1".into()))]);
    let entities = ["product#A".to_string()].into();
    let e = deps
        .add(&key, "summary", &entities)
        .await
        .expect_err("no table");
    not_found(&e, "BatchWriteItem");
}

/// An edge-table failure in the worker is a failed DynamoDB call: counted in
/// `aws_errors{service="dynamodb"}`, and the message comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_counts_a_failed_edge_query_as_a_dynamodb_error() {
    let env = Env::new("adapters-edges-count").await;
    let mut cfg = env.config(&["summary"]);
    cfg.dependencies.table = Some(common::unique("missing-deps"));
    let rec = Recorder::ok_after(std::time::Duration::ZERO);
    let w = Running::start(cfg, vec![("summary", std::sync::Arc::new(rec.clone()))]);
    let errors = |service: &str| {
        w.worker
            .metrics()
            .aws_errors
            .get_or_create(&triggered_cache::metrics::ServiceLabel {
                service: service.into(),
            })
            .get()
    };
    env.send(&json!({"v": 1, "type": "trigger", "dependency": "product#A"}))
        .await;
    wait_until(
        "the failed edge query to be counted",
        std::time::Duration::from_secs(60),
        || async { errors("dynamodb") >= 1 },
    )
    .await;
    assert_eq!(errors("sqs"), 0);
    assert_eq!(rec.count(), 0, "nothing was run");
    let (visible, in_flight) = env.queue_depth().await;
    assert_eq!(visible + in_flight, 1, "the trigger stays, to come back");
    w.stop();
}

#[tokio::test]
async fn an_item_over_400_kb_is_refused_as_too_large() {
    let env = Env::new("adapters-large").await;
    let table = Table::new(env.ddb.clone(), &env.name, attrs());
    let key = Key(vec![("pk".into(), KeyValue::S("big#1".into()))]);
    let blob = |n: usize| vec![("blob".to_owned(), Some(AttributeValue::S("x".repeat(n))))];
    match table.update_with(&key, &[], &blob(401 * 1024)).await {
        Err(TableError::TooLarge(message)) => {
            assert!(message.contains("size"), "DynamoDB's message: {message}")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Under the limit the same write holds.
    assert!(matches!(
        table.update_with(&key, &[], &blob(1000)).await,
        Ok(Updated::Applied(_))
    ));
}
