//! Triggers from real change streams: DynamoDB Stream records delivered the
//! way EventBridge Pipes delivers them, SNS envelopes, and dependency
//! tracking, against the local AWS emulator.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use common::{Env, Recorder, Running, wait_until};
use serde_json::{Map, Value as Json, json};
use triggered_cache::processor::{Output, Processor};
use triggered_cache::state::Status;
use triggered_cache::streams::{StreamEvent, StreamRule};

const T: Duration = Duration::from_secs(60);

fn p(r: &Recorder) -> Arc<dyn Processor> {
    Arc::new(r.clone())
}

fn count(evs: &[Json], kind: &str) -> usize {
    evs.iter().filter(|e| e["event"] == kind).count()
}

/// DynamoDB JSON (`{"S": "x"}`) of a stream attribute value.
fn ddb_json(v: &StreamValue) -> Json {
    match v {
        StreamValue::S(s) => json!({"S": s}),
        StreamValue::N(n) => json!({"N": n}),
        StreamValue::Bool(b) => json!({"BOOL": b}),
        StreamValue::Null(_) => json!({"NULL": true}),
        StreamValue::Ss(s) => json!({"SS": s}),
        StreamValue::Ns(s) => json!({"NS": s}),
        StreamValue::L(l) => json!({"L": l.iter().map(ddb_json).collect::<Vec<_>>()}),
        StreamValue::M(m) => json!({"M": image(m)}),
        other => panic!("unexpected {other:?}"),
    }
}

fn image(m: &std::collections::HashMap<String, StreamValue>) -> Json {
    Json::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), ddb_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// Reads every record of the table's stream with the DynamoDB Streams API
/// and renders each as EventBridge Pipes delivers it to SQS.
async fn pipes_records(env: &Env, stream_arn: &str) -> Vec<Json> {
    let streams = aws_sdk_dynamodbstreams::Client::new(&env.sdk);
    let desc = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in desc.stream_description.unwrap().shards.unwrap_or_default() {
        let mut it = streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard.shard_id.unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(iterator) = it.take() {
            let page = streams
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .unwrap();
            let records = page.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            for r in records {
                let d = r.dynamodb.unwrap();
                let mut dynamodb = json!({
                    "Keys": image(&d.keys.unwrap_or_default()),
                    "SequenceNumber": d.sequence_number,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                });
                if let Some(n) = d.new_image {
                    dynamodb["NewImage"] = image(&n);
                }
                if let Some(o) = d.old_image {
                    dynamodb["OldImage"] = image(&o);
                }
                out.push(json!({
                    "eventID": r.event_id,
                    "eventName": r.event_name.unwrap().as_str(),
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": "us-east-1",
                    "dynamodb": dynamodb,
                    "eventSourceARN": stream_arn,
                }));
            }
            it = page.next_shard_iterator;
        }
    }
    out
}

fn order(id: &str, status: &str, total: i64) -> std::collections::HashMap<String, AttributeValue> {
    [
        ("orderId".to_string(), AttributeValue::S(id.into())),
        ("status".to_string(), AttributeValue::S(status.into())),
        ("total".to_string(), AttributeValue::N(total.to_string())),
    ]
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_records_reset_exactly_the_mapped_caches() {
    let env = Env::new("streams").await;
    let source = format!("{}-orders", env.name);
    let stream_arn = env
        .create_table(&source, "orderId", None, true)
        .await
        .expect("the table has a stream");
    let mut cfg = env.config(&["summary", "status-view"]);
    cfg.streams = vec![
        StreamRule {
            table: source.clone(),
            events: vec![
                StreamEvent::Insert,
                StreamEvent::Modify,
                StreamEvent::Remove,
            ],
            key: Some([("pk".to_string(), "order#{Keys.orderId}".to_string())].into()),
            sets: vec!["summary".into()],
            dependency: None,
            when_changed: vec![],
        },
        StreamRule {
            table: source.clone(),
            events: vec![StreamEvent::Modify],
            key: Some([("pk".to_string(), "order#{Keys.orderId}".to_string())].into()),
            sets: vec!["status-view".into()],
            dependency: None,
            when_changed: vec!["status".into()],
        },
    ];
    cfg.validate().unwrap();
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(cfg, vec![("summary", p(&rec)), ("status-view", p(&rec))]);
    for pk in ["order#1", "order#2"] {
        for set in ["summary", "status-view"] {
            env.send(&Env::request(pk, set)).await;
        }
    }
    env.wait_events("four ready events", T, |e| count(e, "ready") == 4)
        .await;

    // Change the source table: order 1's status changes, order 2 only its total.
    for item in [order("1", "paid", 10), order("2", "paid", 20)] {
        env.ddb
            .put_item()
            .table_name(&source)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    env.ddb
        .put_item()
        .table_name(&source)
        .set_item(Some(order("1", "shipped", 10)))
        .send()
        .await
        .unwrap();
    env.ddb
        .put_item()
        .table_name(&source)
        .set_item(Some(order("2", "paid", 25)))
        .send()
        .await
        .unwrap();
    let records = pipes_records(&env, &stream_arn).await;
    assert_eq!(records.len(), 4, "{records:#?}");

    // One record per message, and the last two as a batch.
    env.send(&records[0]).await;
    env.send(&records[1]).await;
    env.send(&json!({"Records": [records[2], records[3]]}))
        .await;
    // A record of a table no rule names is dropped, not dead-lettered.
    let mut unrelated = records[0].clone();
    unrelated["eventSourceARN"] =
        json!("arn:aws:dynamodb:us-east-1:123456789012:table/unrelated/stream/x");
    env.send(&unrelated).await;
    // A record without the attribute the rule needs is dead-lettered.
    let mut broken = records[0].clone();
    broken["dynamodb"]["Keys"] = json!({});
    broken["dynamodb"]["NewImage"] = json!({});
    env.send(&broken).await;

    let dlq = env.wait_dlq(1, T).await;
    assert!(dlq[0].1["error"].contains("Keys.orderId"), "{:?}", dlq[0].1);
    env.wait_queue_empty(T).await;
    let r = |pk: &'static str, set: &'static str| env.cache(pk, set);
    let s1 = r("order#1", "summary").await;
    let v1 = r("order#1", "status-view").await;
    let s2 = r("order#2", "summary").await;
    let v2 = r("order#2", "status-view").await;
    assert_eq!(
        (s1.status, s1.epoch),
        (Some(Status::Stale), Some(2)),
        "insert + modify reset summary twice"
    );
    assert_eq!(
        (v1.status, v1.epoch),
        (Some(Status::Stale), Some(1)),
        "the status change resets status-view"
    );
    assert_eq!((s2.status, s2.epoch), (Some(Status::Stale), Some(2)));
    assert_eq!(
        (v2.status, v2.epoch),
        (Some(Status::Ready), Some(0)),
        "a change of total leaves status-view READY"
    );
    assert_eq!(w.worker.metrics().stream_records_unmatched.get(), 1);

    // The next request reprocesses a reset cache.
    env.send(&Env::request("order#1", "status-view")).await;
    let evs = env
        .wait_events("a new ready", T, |e| count(e, "ready") == 5)
        .await;
    let last = evs.iter().rev().find(|e| e["event"] == "ready").unwrap();
    assert_eq!(last["epoch"], 1);
    assert_eq!(last["set"], "status-view");
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_wrapped_in_an_sns_notification_is_applied() {
    let env = Env::new("sns-env").await;
    let rec = Recorder::ok_after(Duration::ZERO);
    let w = Running::start(env.config(&["summary"]), vec![("summary", p(&rec))]);
    env.send(&Env::request("order#9", "summary")).await;
    env.wait_events("ready", T, |e| count(e, "ready") == 1)
        .await;
    // A domain topic delivering to the request queue without raw delivery.
    let topic = env
        .sns
        .create_topic()
        .name(format!("{}-domain", env.name))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_arn = env
        .sqs
        .get_queue_attributes()
        .queue_url(&env.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .unwrap();
    env.sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .unwrap();
    let attr = aws_sdk_sns::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .build()
        .unwrap();
    env.sns
        .publish()
        .topic_arn(&topic)
        .message(
            json!({"v": 1, "type": "trigger", "key": {"pk": "order#9"}, "set": "summary"})
                .to_string(),
        )
        .message_attributes("traceparent", attr)
        .send()
        .await
        .unwrap();
    env.wait_events("the reset", T, |e| count(e, "reset") == 1)
        .await;
    assert_eq!(
        env.cache("order#9", "summary").await.status,
        Some(Status::Stale)
    );
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_trigger_resets_exactly_its_dependents_and_dropped_edges_are_removed() {
    let env = Env::new("deps").await;
    let deps_table = format!("{}-deps", env.name);
    env.create_table(&deps_table, "entity", Some("dependent"), false)
        .await;
    let mut cfg = env.config(&["summary"]);
    cfg.dependencies.table = Some(deps_table.clone());
    cfg.worker.concurrency = 50;
    // item#0 stops depending on product#A once `dropped` is set.
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let rec = Recorder::new(move |job, _n| {
        let pk = job.key["pk"].as_str().unwrap().to_string();
        let dropped = flag.load(Ordering::SeqCst);
        async move {
            let deps = if pk == "other#1" {
                vec!["product#B".to_string()]
            } else if pk == "item#0" && dropped {
                vec![]
            } else {
                vec!["product#A".to_string(), "catalog#1".to_string()]
            };
            Ok(Output {
                value: json!({"epoch": job.epoch}),
                depends_on: deps,
            })
        }
    });
    let w = Running::start(cfg, vec![("summary", p(&rec))]);
    let mut bodies: Vec<Json> = (0..200)
        .map(|i| Env::request(&format!("item#{i}"), "summary"))
        .collect();
    bodies.push(Env::request("other#1", "summary"));
    env.send_many(&bodies).await;
    env.wait_events("201 ready events", T, |e| count(e, "ready") == 201)
        .await;

    let dependency = |entity: &str| json!({"v": 1, "type": "trigger", "dependency": entity});
    env.send(&dependency("product#A")).await;
    env.wait_events("200 resets", T, |e| count(e, "reset") == 200)
        .await;
    for i in [0, 57, 199] {
        let r = env.cache(&format!("item#{i}"), "summary").await;
        assert_eq!(
            (r.status, r.epoch),
            (Some(Status::Stale), Some(1)),
            "item#{i}"
        );
    }
    let other = env.cache("other#1", "summary").await;
    assert_eq!(
        other.status,
        Some(Status::Ready),
        "an unrelated item stays READY"
    );
    assert_eq!(
        w.worker
            .metrics()
            .dependency_resets
            .get_or_create(&triggered_cache::metrics::Metrics::set("summary"))
            .get(),
        200
    );

    // item#0 is recomputed and no longer depends on product#A: its edge goes.
    dropped.store(true, Ordering::SeqCst);
    env.send(&Env::request("item#0", "summary")).await;
    env.wait_events("item#0 ready again", T, |e| count(e, "ready") == 202)
        .await;
    wait_until("the dropped edge to be removed", T, || async {
        let out = env
            .ddb
            .query()
            .table_name(&deps_table)
            .key_condition_expression("entity = :e")
            .expression_attribute_values(":e", AttributeValue::S("product#A".into()))
            .send()
            .await
            .unwrap();
        out.count == 199
    })
    .await;
    env.send(&dependency("product#A")).await;
    env.wait_events("199 more resets", T, |e| count(e, "reset") == 399)
        .await;
    env.wait_queue_empty(T).await;
    let r0 = env.cache("item#0", "summary").await;
    assert_eq!(
        r0.status,
        Some(Status::Ready),
        "item#0 no longer depends on product#A"
    );
    let r1 = env.cache("item#1", "summary").await;
    assert_eq!(r1.epoch, Some(2));
    w.stop();
}
