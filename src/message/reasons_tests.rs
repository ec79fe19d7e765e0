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
            "unknown field `extra`; known fields are v, type, key, set, requestId, input, retry, triggerId, dependency",
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
            retry: false,
        }
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
