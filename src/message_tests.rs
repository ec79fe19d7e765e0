use super::*;
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
            input: Some(json!({"a": 1}))
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
