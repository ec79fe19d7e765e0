//! The exact reason of every way a native message can be wrong, so that
//! reading messages with serde keeps each one as precise as it was.

use serde_json::json;

use super::*;

fn schema() -> Schema {
    Schema {
        partition_key: "pk".into(),
        sort_key: None,
        sets: ["summary".to_string()].into(),
    }
}

fn reason(body: serde_json::Value) -> String {
    schema().decode(&body.to_string()).unwrap_err().reason
}

#[test]
fn every_reason_names_the_field_and_what_was_expected() {
    let cases = [
        (
            json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": "summary", "extra": 1}),
            "unknown field `extra`; known fields are v, type, key, set, requestId, input, inputRef, retry, triggerId, dependency, at, delay",
        ),
        (
            json!({"type": "request", "key": {"pk": "a"}, "set": "summary"}),
            "field `v` is missing (the message version, 1)",
        ),
        (
            json!({"v": "1", "type": "request", "key": {"pk": "a"}, "set": "summary"}),
            r#"field `v` is a string \"1\", this worker understands version 1"#,
        ),
        (
            json!({"v": 2, "type": "boom"}),
            "field `v` is a number 2, this worker understands version 1",
        ),
        (
            json!({"v": 1, "key": {"pk": "a"}, "set": "summary"}),
            "field `type` is missing (request, trigger, trigger_start or trigger_end)",
        ),
        (
            json!({"v": 1, "type": 5, "key": {"pk": "a"}, "set": "summary"}),
            "field `type` is a number 5, expected a string",
        ),
        (
            json!({"v": 1, "type": "boom", "key": {"pk": "a"}, "set": "summary"}),
            "field `type` is `boom`; expected request, trigger, trigger_start or trigger_end",
        ),
        (
            json!({"v": 1, "type": "request", "set": "summary"}),
            r#"field `key` is missing; expected {"pk": ...}"#,
        ),
        (
            json!({"v": 1, "type": "request", "key": {"pk": "a"}}),
            "field `set` is missing",
        ),
        (
            json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": 1}),
            "field `set` is a number 1, expected a string",
        ),
        (
            json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": "summary", "requestId": null}),
            "field `requestId` is null null, expected a string",
        ),
        (
            json!({"v": 1, "type": "trigger", "key": {"pk": "a"}, "set": "summary", "requestId": "r"}),
            "field `requestId` does not belong in a `trigger` message",
        ),
        (
            json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": "summary", "dependency": "x"}),
            "field `dependency` does not belong in a `request` message",
        ),
        (
            json!({"v": 1, "type": "trigger", "dependency": "p", "key": {"pk": "a"}}),
            "field `key` does not belong in a dependency trigger (it names only `dependency`)",
        ),
        (
            json!({"v": 1, "type": "trigger", "dependency": ""}),
            "field `dependency` must be 1 to 128 characters",
        ),
        (
            json!({"v": 1, "type": "trigger_end", "key": {"pk": "a"}, "set": "summary"}),
            "field `triggerId` is missing (a `trigger_end` names its flow)",
        ),
        (
            json!({"v": 1, "type": "trigger_start", "key": {"pk": "a"}, "set": "summary", "triggerId": "a\u{7}"}),
            "field `triggerId` contains control characters",
        ),
        (
            json!({"v": 1, "type": "trigger", "key": {"pk": "a"}, "set": "other"}),
            "set `other` is not configured; configured sets are summary",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(reason(body.clone()), want, "{body}");
    }
}

#[test]
fn an_input_that_is_null_is_an_input() {
    let m = schema()
        .decode(r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"summary","input":null}"#)
        .unwrap();
    assert_eq!(
        m.command,
        Command::Request {
            set: "summary".into(),
            request_id: None,
            input: Some(serde_json::Value::Null),
            input_ref: None,
            retry: false,
        }
    );
}

#[test]
fn a_bad_schedule_is_dead_lettered_with_what_to_write() {
    let cases = [
        (
            json!({"v": 1, "type": "trigger", "key": {"pk": "a"}, "set": "summary", "at": 5}),
            r#"field `at` is a number 5, expected an RFC 3339 time in UTC, like "2026-12-24T00:00:00Z""#,
        ),
        (
            json!({"v": 1, "type": "trigger", "key": {"pk": "a"}, "set": "summary", "at": "2026-12-24T00:00:00Z", "delay": "1h"}),
            "fields `at` and `delay` exclude each other: give the time (`at`) or the wait (`delay`)",
        ),
        (
            json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": "summary", "delay": "1h"}),
            "field `delay` does not belong in a `request` message",
        ),
        (
            json!({"v": 1, "type": "trigger_end", "key": {"pk": "a"}, "set": "summary", "triggerId": "f", "delay": 60}),
            r#"field `delay` is a number 60, expected a duration like "90s", "15m" or "2h""#,
        ),
    ];
    for (body, want) in cases {
        assert_eq!(reason(body.clone()), want, "{body}");
    }
    let at = reason(
        json!({"v": 1, "type": "trigger_start", "key": {"pk": "a"}, "set": "summary", "triggerId": "f", "at": "midnight"}),
    );
    assert!(
        at.starts_with(r#"field `at` is a string \"midnight\": "#)
            && at.ends_with(r#"expected an RFC 3339 time in UTC, like "2026-12-24T00:00:00Z""#),
        "{at}"
    );
    let delay = reason(json!({"v": 1, "type": "trigger", "dependency": "p", "delay": "soon"}));
    assert!(
        delay.starts_with(r#"field `delay` is a string \"soon\": "#),
        "{delay}"
    );
}

#[test]
fn a_scheduled_trigger_decodes_with_its_schedule_and_without_it_in_the_body() {
    let body =
        r#"{"v":1,"type":"trigger","key":{"pk":"a"},"set":"summary","at":"2026-12-24T00:00:00Z"}"#;
    let env = schema()
        .decode_any(body, &crate::streams::Rules::default())
        .unwrap();
    let schedule = env.schedule.expect("scheduled");
    assert_eq!(schedule.due, Due::At(1_798_070_400_000));
    assert!(!schedule.body.contains_key("at"));
    // The copy sent again carries the absolute time and decodes the same.
    let copy = schema()
        .decode_any(
            &schedule.resend_body(schedule.at(0)),
            &crate::streams::Rules::default(),
        )
        .unwrap();
    assert_eq!(copy.decoded, env.decoded);
    assert_eq!(copy.schedule.unwrap().due, Due::At(1_798_070_400_000));
    let delayed = r#"{"v":1,"type":"trigger","key":{"pk":"a"},"set":"*","delay":"2h"}"#;
    let s = schema()
        .decode_any(delayed, &crate::streams::Rules::default())
        .unwrap()
        .schedule
        .unwrap();
    assert_eq!(s.at(1_000), 1_000 + 7_200_000);
}

#[test]
fn an_input_ref_names_a_bucket_and_a_key_and_excludes_input() {
    let m = schema()
        .decode(r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"summary","inputRef":{"bucket":"b","key":"in/1.json"}}"#)
        .unwrap();
    let Command::Request {
        input, input_ref, ..
    } = m.command
    else {
        panic!("a request");
    };
    assert_eq!(input, None);
    let r = input_ref.unwrap();
    assert_eq!((r.bucket.as_str(), r.key.as_str()), ("b", "in/1.json"));
    let shape = "field `inputRef` must be an object with exactly `bucket` and `key`, both non-empty strings: {\"bucket\": \"my-bucket\", \"key\": \"inputs/abc.json\"}";
    for bad in [
        json!("s3://b/k"),
        json!({"bucket": "b"}),
        json!({"bucket": "b", "key": ""}),
        json!({"bucket": "b", "key": "k", "size": 1}),
        json!({"bucket": 1, "key": "k"}),
    ] {
        let body = json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": "summary", "inputRef": bad});
        assert_eq!(reason(body), shape, "{bad}");
    }
    let both = json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": "summary", "input": 1, "inputRef": {"bucket": "b", "key": "k"}});
    assert_eq!(
        reason(both),
        "fields `input` and `inputRef` are both set; send one: `input` inline, or `inputRef` naming an S3 object that holds it"
    );
}

#[test]
fn retry_is_a_boolean_of_a_request_only() {
    let m = schema()
        .decode(r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"summary","retry":true}"#)
        .unwrap();
    assert!(matches!(m.command, Command::Request { retry: true, .. }));
    let wrong = reason(
        json!({"v": 1, "type": "request", "key": {"pk": "a"}, "set": "summary", "retry": "yes"}),
    );
    assert!(
        wrong.contains("`retry`") || wrong.contains("boolean"),
        "{wrong}"
    );
    assert_eq!(
        reason(
            json!({"v": 1, "type": "trigger", "key": {"pk": "a"}, "set": "summary", "retry": true})
        ),
        "field `retry` does not belong in a `trigger` message"
    );
}
