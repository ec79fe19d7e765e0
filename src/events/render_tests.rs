//! What an event looks like on the wire: every field, in the order of its
//! keys, and how one that does not fit is cut down.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value as Json, json};

use super::*;
use crate::item::KeyValue;

fn publisher(max_bytes: usize) -> Publisher {
    let cfg = crate::config::fixture::load("", &[]).unwrap();
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    Publisher {
        max_bytes,
        ..Publisher::new(crate::aws::Clients::new(&sdk).sns(), &cfg)
    }
}

fn item() -> Item {
    let s = |v: &str| AttributeValue::S(v.into());
    [
        ("pk", s("a")),
        ("other", s("x")),
        ("triggeredCache_invoice_status", s("READY")),
        (
            "triggeredCache_invoice_epoch",
            AttributeValue::N("3".into()),
        ),
        ("triggeredCache_invoice_value", s("not in the record")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The body as JSON without its time, after checking that the text is the
/// compact form with the keys in order.
fn parsed(text: &str) -> Json {
    let mut body: Json = serde_json::from_str(text).unwrap();
    assert_eq!(text, body.to_string(), "compact, keys in order");
    let at = body.as_object_mut().unwrap().remove("at").unwrap();
    humantime::parse_rfc3339(at.as_str().unwrap()).unwrap();
    body
}

#[tokio::test]
async fn an_event_carries_every_field_it_has() {
    let key = Key(vec![("pk".into(), KeyValue::S("a".into()))]);
    let item = item();
    let (value, value_ref) = (json!({"total": 1}), json!({"bucket": "b", "key": "k"}));
    let (coalesced, answers) = (vec!["r2".to_string()], vec!["r3".to_string()]);
    let ev = CompletionEvent {
        request_id: Some("r1"),
        item: Some(&item),
        value: Some(&value),
        coalesced: &coalesced,
        answers: &answers,
        answers_omitted: 2,
        value_ref: Some(&value_ref),
        value_url: Some("https://u"),
        stale: Some(Stale {
            value_epoch: 2,
            age_ms: 5,
        }),
        ..CompletionEvent::new(EventKind::Hit, &key, "invoice", 3)
    };
    let (id, text) = publisher(MAX_EVENT_BYTES).render(&ev);
    assert_eq!(id, event_id(&ev));
    assert_eq!(
        parsed(&text),
        json!({
            "ageMs": 5, "answers": ["r3"], "answersOmitted": 2, "coalesced": ["r2"],
            "epoch": 3, "error": null, "event": "hit", "eventId": id, "key": {"pk": "a"},
            "record": {"other": "x", "pk": "a", "triggeredCache_invoice_epoch": 3,
                       "triggeredCache_invoice_status": "READY"},
            "requestId": "r1", "set": "invoice", "stale": true, "value": {"total": 1},
            "valueEpoch": 2, "valueRef": {"bucket": "b", "key": "k"}, "valueUrl": "https://u",
        })
    );

    // A plain event: the optional fields are absent, the others null.
    let (id, text) = publisher(MAX_EVENT_BYTES).render(&CompletionEvent::new(
        EventKind::Reset,
        &key,
        "invoice",
        4,
    ));
    assert_eq!(
        parsed(&text),
        json!({"epoch": 4, "error": null, "event": "reset", "eventId": id, "key": {"pk": "a"},
               "record": null, "requestId": null, "set": "invoice", "value": null})
    );
}

#[tokio::test]
async fn an_event_that_does_not_fit_drops_the_value_then_the_record() {
    let key = Key(vec![("pk".into(), KeyValue::S("a".into()))]);
    let item = item();
    let big = json!("v".repeat(4000));
    let value_ref = json!({"bucket": "b", "key": "k"});
    let coalesced: Vec<String> = (0..150).map(|i| format!("r{i}")).collect();
    let offloaded = CompletionEvent {
        item: Some(&item),
        value: Some(&big),
        value_ref: Some(&value_ref),
        ..CompletionEvent::new(EventKind::Ready, &key, "invoice", 3)
    };
    // An offloaded value that does not fit: its pointer instead.
    let body = parsed(&publisher(ATTRIBUTE_ROOM + 1000).render(&offloaded).1);
    assert_eq!(body["value"], Json::Null);
    assert_eq!(body["valueRef"], value_ref);
    assert_eq!(body["record"]["pk"], "a");
    assert!(body.get("truncated").is_none());

    // A value that is not offloaded: cut down to the status.
    let inline = CompletionEvent {
        value_ref: None,
        coalesced: &coalesced,
        ..offloaded
    };
    let body = parsed(&publisher(ATTRIBUTE_ROOM + 1000).render(&inline).1);
    assert_eq!(body["value"], Json::Null);
    assert_eq!(body["record"], Json::Null);
    assert_eq!(body["status"], "READY");
    assert_eq!(body["truncated"], true);
    assert_eq!(body["coalesced"].as_array().unwrap().len(), 100);
}
