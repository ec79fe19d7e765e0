use super::*;
use crate::envelope::Decoded;
use proptest::prelude::*;
use serde_json::json;

fn schema() -> Schema {
    Schema {
        partition_key: "pk".into(),
        sort_key: None,
        sets: ["summary".to_string(), "invoice".to_string()].into(),
    }
}

fn reason(body: &str) -> String {
    schema().decode(body).unwrap_err().reason
}

#[test]
fn a_key_too_long_says_so_and_by_how_much() {
    let body = format!(
        r#"{{"v":1,"type":"request","key":{{"pk":"{}"}},"set":"summary"}}"#,
        "x".repeat(250_000)
    );
    assert_eq!(
        reason(&body),
        "key attribute `pk` is too long: a string of 250000 bytes, 247952 over DynamoDB's limit of 2048 bytes for a partition key"
    );
    let sorted = Schema {
        sort_key: Some("sk".into()),
        ..schema()
    };
    let body = format!(
        r#"{{"v":1,"type":"request","key":{{"pk":"a","sk":"{}"}},"set":"summary"}}"#,
        "y".repeat(1025)
    );
    assert_eq!(
        sorted.decode(&body).unwrap_err().reason,
        "key attribute `sk` is too long: a string of 1025 bytes, 1 over DynamoDB's limit of 1024 bytes for a sort key"
    );
    // At the limits, the keys are accepted.
    let body = format!(
        r#"{{"v":1,"type":"request","key":{{"pk":"{}","sk":"{}"}},"set":"summary"}}"#,
        "x".repeat(2048),
        "y".repeat(1024)
    );
    assert!(sorted.decode(&body).is_ok());
}

#[test]
fn every_native_form_decodes() {
    let s = schema();
    let m = s
        .decode(r#"{"v":1,"type":"request","key":{"pk":"order#1"},"set":"summary","requestId":"r-1","input":{"a":1}}"#)
        .unwrap();
    assert_eq!(m.key.to_string(), "pk=order#1");
    assert_eq!(
        m.command,
        Command::Request {
            set: "summary".into(),
            request_id: Some("r-1".into()),
            input: Some(json!({"a": 1})),
            input_ref: None,
            retry: false,
        }
    );
    let t = s
        .decode(r#"{"v":1,"type":"trigger","key":{"pk":7},"set":"*"}"#)
        .unwrap();
    assert_eq!(
        t.command,
        Command::Trigger {
            sets: SetSelector::All
        }
    );
    let st = s
        .decode(
            r#"{"v":1,"type":"trigger_start","key":{"pk":"a"},"set":"invoice","triggerId":"f"}"#,
        )
        .unwrap();
    assert!(matches!(st.command, Command::TriggerStart { .. }));
    let dep = s
        .decode_any(
            r#"{"v":1,"type":"trigger","dependency":"product#A"}"#,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(dep.decoded, Decoded::Dependency("product#A".into()));
}

#[test]
fn a_table_with_a_sort_key_needs_both_key_attributes() {
    let mut s = schema();
    s.sort_key = Some("sk".into());
    assert!(
        s.decode(r#"{"v":1,"type":"request","key":{"pk":"a","sk":"b"},"set":"summary"}"#)
            .is_ok()
    );
    let e = s
        .decode(r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"summary"}"#)
        .unwrap_err();
    assert!(e.reason.contains("`sk` is missing"), "{}", e.reason);
}

#[test]
fn an_sns_envelope_is_unwrapped_with_its_attributes() {
    let inner = r#"{"v":1,"type":"trigger","key":{"pk":"a"},"set":"summary"}"#;
    let body = json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": inner,
        "MessageAttributes": {"traceparent": {"Type": "String", "Value": "00-abc-def-01"}}});
    let env = schema()
        .decode_any(&body.to_string(), &Default::default())
        .unwrap();
    assert!(matches!(env.decoded, Decoded::Message(_)));
    assert_eq!(
        env.attributes,
        vec![("traceparent".to_string(), "00-abc-def-01".to_string())]
    );
}

#[test]
fn hostile_messages_are_refused_with_a_reason_that_names_the_problem() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = format!(
        r#"{{"v":1,"type":"request","key":{{"pk":"a"}},"set":"summary","input":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    let long_id = "r".repeat(129);
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "not JSON"),
        ("[1,2]".into(), "not a JSON object"),
        (
            r#"{"type":"request","key":{"pk":"a"},"set":"summary"}"#.into(),
            "`v` is missing",
        ),
        (
            r#"{"v":2,"type":"request","key":{"pk":"a"},"set":"summary"}"#.into(),
            "version 1",
        ),
        (
            r#"{"v":"1","type":"request","key":{"pk":"a"},"set":"summary"}"#.into(),
            "field `v`",
        ),
        (
            r#"{"v":1,"type":"boom","key":{"pk":"a"},"set":"summary"}"#.into(),
            "field `type`",
        ),
        (
            r#"{"v":1,"type":"request","set":"summary"}"#.into(),
            "`key` is missing",
        ),
        (
            r#"{"v":1,"type":"request","key":"a","set":"summary"}"#.into(),
            "expected an object",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a","x":1},"set":"summary"}"#.into(),
            "not part of the table's key",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":true},"set":"summary"}"#.into(),
            "key attribute `pk`",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":""},"set":"summary"}"#.into(),
            "non-empty",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"nope"}"#.into(),
            "not configured",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"*"}"#.into(),
            "not configured",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"summary","extra":1}"#.into(),
            "unknown field `extra`",
        ),
        (
            format!(
                r#"{{"v":1,"type":"request","key":{{"pk":"a"}},"set":"summary","requestId":"{long_id}"}}"#
            ),
            "1 to 128",
        ),
        (
            r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"summary","requestId":"a\u0007b"}"#
                .into(),
            "control characters",
        ),
        (
            r#"{"v":1,"type":"trigger","key":{"pk":"a"},"set":"summary","requestId":"r"}"#.into(),
            "does not belong",
        ),
        (
            r#"{"v":1,"type":"trigger_end","key":{"pk":"a"},"set":"summary"}"#.into(),
            "`triggerId` is missing",
        ),
        (deep, "not JSON"),
        (huge, "over the limit"),
    ];
    for (body, want) in cases {
        let r = reason(&body);
        assert!(
            r.contains(want),
            "{}: {r:?} does not say {want:?}",
            &body[..body.len().min(80)]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_never_panics_on_any_text(body in ".{0,300}") {
        let _ = schema().decode_any(&body, &Default::default());
    }

    #[test]
    fn decoding_never_panics_on_message_like_json(
        v in prop_oneof![Just(json!(1)), Just(json!(2)), Just(json!("1")), Just(json!(null))],
        kind in prop_oneof![Just("request"), Just("trigger"), Just("trigger_start"), Just("trigger_end"), Just("x")],
        key in prop_oneof![Just(json!({"pk": "a"})), Just(json!({"pk": 1})), Just(json!({})), Just(json!([1])), Just(json!({"pk": {"S": "a"}}))],
        set in prop_oneof![Just("summary"), Just("*"), Just(""), Just("nope")],
        rid in proptest::option::of(".{0,200}"),
    ) {
        let mut body = json!({"v": v, "type": kind, "key": key, "set": set});
        if let Some(rid) = rid {
            body["requestId"] = json!(rid);
        }
        let _ = schema().decode_any(&body.to_string(), &Default::default());
        let stream = json!({"Records": [{"eventName": kind, "eventSource": "aws:dynamodb", "dynamodb": {"Keys": key}}]});
        let _ = schema().decode_any(&stream.to_string(), &Default::default());
    }
}

/// Stream rules for the fuzzing below: a key template, `when_changed`, and a
/// dependency template, so that every mapping path is reachable.
fn fuzz_rules() -> crate::streams::Rules {
    let rules: Vec<crate::streams::StreamRule> = serde_json::from_value(json!([
        {"table": "orders", "key": {"pk": "order#{Keys.orderId}"}, "sets": ["summary"]},
        {"table": "orders", "events": ["MODIFY"], "key": {"pk": "o#{NewImage.id}"},
         "sets": ["*"], "when_changed": ["status"]},
        {"table": "products", "dependency": "product#{Image.sku}"}
    ]))
    .unwrap();
    crate::streams::Rules::new(&rules, &["pk".to_string()]).unwrap()
}

/// Any JSON value, nested a few levels, with the strings and numbers that
/// tend to break decoders.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(|s| json!(s)),
        prop_oneof![
            Just("S"),
            Just("N"),
            Just("M"),
            Just("orders"),
            Just("request"),
            Just("trigger"),
            Just("summary"),
            Just("*"),
            Just("{Keys.orderId}"),
            Just("\u{0}"),
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("S".to_string()),
                    Just("N".to_string()),
                    Just("M".to_string()),
                    Just("L".to_string()),
                    Just("orderId".to_string()),
                    Just("sku".to_string()),
                    Just("status".to_string()),
                    Just("pk".to_string()),
                    "[a-zA-Z]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A well-formed body of every form the daemon reads.
fn any_envelope(inner: serde_json::Value) -> impl Strategy<Value = serde_json::Value> {
    let request = json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": "summary"});
    let stream = |src: &str, name: &str, ddb: serde_json::Value| {
        json!({"eventName": name, "eventSource": "aws:dynamodb",
               "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:1:table/{src}/stream/x"),
               "dynamodb": ddb})
    };
    let i = inner;
    prop_oneof![
        // The native message with one field replaced by anything.
        prop_oneof![
            Just("v"),
            Just("type"),
            Just("key"),
            Just("set"),
            Just("requestId"),
            Just("input"),
            Just("triggerId"),
            Just("dependency")
        ]
        .prop_map({
            let (r, i) = (request.clone(), i.clone());
            move |f| {
                let mut m = r.clone();
                m[f] = i.clone();
                m
            }
        }),
        // An SNS notification carrying anything (as text or as JSON).
        Just(
            json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                    "Message": i.to_string(), "MessageAttributes": i.clone()})
        ),
        Just(json!({"Type": "Notification", "Message": i.clone()})),
        Just(
            json!({"Type": "Notification", "Message": json!({"Type": "Notification", "Message": request.to_string()}).to_string()})
        ),
        // DynamoDB Stream records, single and in {"Records": [...]}, with
        // keys and images that are anything.
        Just(stream(
            "orders",
            "MODIFY",
            json!({"Keys": i.clone(), "NewImage": i.clone(), "OldImage": i.clone()})
        )),
        Just(stream("products", "INSERT", i.clone())),
        Just(
            json!({"Records": [stream("orders", "INSERT", json!({"Keys": {"orderId": i.clone()}})), i.clone()]})
        ),
        Just(json!({"Records": i.clone()})),
        // A dependency trigger naming anything.
        Just(json!({"v": 1, "type": "trigger", "dependency": i.clone()})),
        Just(i.clone()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000)
    ))]

    /// Every envelope with anything inside decodes or is refused with a
    /// reason; nothing panics.
    #[test]
    fn every_envelope_with_anything_inside_never_panics(
        body in any_json().prop_flat_map(any_envelope)
    ) {
        let rules = fuzz_rules();
        match schema().decode_any(&body.to_string(), &rules) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.reason.is_empty(), "a refusal says why"),
        }
    }

    /// Valid bodies of every form, cut short or with bytes changed: refused
    /// with a reason or decoded, never a panic.
    #[test]
    fn mutated_valid_bodies_never_panic(
        which in 0usize..5,
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let bodies = [
            json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": "summary", "requestId": "r", "input": {"x": [1, 2]}}).to_string(),
            json!({"v": 1, "type": "trigger_end", "key": {"pk": "a"}, "set": "summary", "triggerId": "f"}).to_string(),
            json!({"Type": "Notification", "Message": json!({"v": 1, "type": "trigger", "key": {"pk": "a"}, "set": "*"}).to_string(),
                   "MessageAttributes": {"traceparent": {"Type": "String", "Value": "00-a-b-01"}}}).to_string(),
            json!({"Records": [{"eventName": "MODIFY", "eventSource": "aws:dynamodb",
                   "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/orders/stream/x",
                   "dynamodb": {"Keys": {"orderId": {"S": "7"}}, "NewImage": {"id": {"N": "7"}, "status": {"S": "paid"}},
                                "OldImage": {"id": {"N": "7"}, "status": {"S": "new"}}}}]}).to_string(),
            json!({"v": 1, "type": "trigger", "dependency": "product#A"}).to_string(),
        ];
        let mut bytes = bodies[which].clone().into_bytes();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let text = String::from_utf8_lossy(&bytes);
        let _ = schema().decode_any(&text, &fuzz_rules());
    }
}
