use super::*;
use crate::aws::queue::{ATTR_ERROR, ATTR_KIND, ATTR_KIND_BEFORE};

fn attr(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .unwrap()
}

/// A DLQ message as the daemon writes it (or, without `kind`, as SQS's
/// redrive policy moves it).
fn dead(id: &str, kind: Option<&str>, source: Option<&str>, body: &str) -> DeadLetter {
    let mut attributes = HashMap::new();
    if let Some(k) = kind {
        attributes.insert(ATTR_KIND.to_owned(), attr(k));
        attributes.insert(ATTR_ERROR.to_owned(), attr("why"));
    }
    if let Some(s) = source {
        attributes.insert(ATTR_SOURCE_ID.to_owned(), attr(s));
    }
    attributes.insert("traceparent".to_owned(), attr("00-abc"));
    DeadLetter {
        message_id: id.into(),
        receipt: format!("r-{id}"),
        body: body.into(),
        attributes,
    }
}

#[test]
fn a_moved_message_that_is_dead_lettered_again_is_recognised() {
    let mut l = Ledger::default();
    let failed = dead("d1", Some("failed"), Some("q1"), "{}");
    assert_eq!(l.verdict(&failed, false), Verdict::Move);
    // Its send to the request queue got MessageId q9; the daemon
    // dead-letters that copy as a new DLQ message with sourceMessageId q9.
    l.sent.insert("q9".into());
    assert_eq!(
        l.verdict(&dead("d2", Some("failed"), Some("q9"), "{}"), false),
        Verdict::CameBack
    );
    // SQS's redrive policy moves a message keeping its MessageId.
    l.sent.insert("q10".into());
    assert_eq!(
        l.verdict(&dead("q10", None, None, "{}"), false),
        Verdict::CameBack
    );
    // Received again after its hiding ran out.
    assert_eq!(l.verdict(&failed, false), Verdict::Again);
    // A message of the start that this redrive did not send is moved.
    assert_eq!(
        l.verdict(&dead("d3", Some("failed"), Some("q2"), "{}"), false),
        Verdict::Move
    );
}

#[test]
fn skip_malformed_skips_only_malformed_messages() {
    let mut l = Ledger::default();
    let bad = dead("d1", Some("malformed"), Some("q1"), "nope");
    assert_eq!(l.verdict(&bad, true), Verdict::Skip);
    assert_eq!(
        l.verdict(&dead("d2", Some("failed"), Some("q2"), "{}"), true),
        Verdict::Move
    );
    assert_eq!(
        l.verdict(&dead("d3", None, None, "{}"), true),
        Verdict::Move
    );
    let mut l = Ledger::default();
    assert_eq!(l.verdict(&bad, false), Verdict::Move);
}

#[test]
fn the_report_says_what_moved_by_kind_and_what_stayed() {
    let mut r = Report {
        queue_url: "https://sqs/requests".into(),
        at_start: 3,
        ..Report::default()
    };
    r.moved.insert("failed".into(), 1);
    r.moved.insert("malformed".into(), 1);
    assert_eq!(
        r.to_string(),
        "moved 2 messages (1 failed, 1 malformed) to https://sqs/requests"
    );
    r.moved.remove("malformed");
    r.moved.insert("-".into(), 2);
    r.skipped_malformed = 1;
    r.came_back = 1;
    r.stopped_at_limit = Some(3);
    let text = r.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "moved 3 messages (2 without deadLetterKind, 1 failed) to https://sqs/requests"
    );
    assert!(lines[1].starts_with("skipped 1 malformed message: left in the dead-letter queue"));
    assert!(lines[2].starts_with("1 message came back to the dead-letter queue"));
    assert_eq!(
        lines[3],
        "stopped at --limit 3; the dead-letter queue held about 3 messages at the start"
    );
    assert_eq!(
        Report::default().to_string(),
        "the dead-letter queue is empty; nothing to move"
    );
}

#[test]
fn batches_hold_ten_messages_and_stay_within_the_size_limit() {
    let small: Vec<DeadLetter> = (0..25)
        .map(|i| dead(&format!("d{i}"), Some("failed"), Some("q"), "{}"))
        .collect();
    let sizes: Vec<usize> = by_size(small).iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let big = "x".repeat(100 * 1024);
    let large: Vec<DeadLetter> = (0..5)
        .map(|i| dead(&format!("d{i}"), Some("failed"), Some("q"), &big))
        .collect();
    let sizes: Vec<usize> = by_size(large).iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
}

#[test]
fn the_reason_attributes_are_not_sent_back() {
    let m = dead("d1", Some("failed"), Some("q1"), "{}");
    let attrs = carried(&m).unwrap();
    assert_eq!(attrs.keys().collect::<Vec<_>>(), ["traceparent"]);
    assert_eq!(
        carried(&dead("d2", None, None, "{}")).map(|a| a.len()),
        Some(1)
    );
}

#[test]
fn a_message_of_an_earlier_release_is_read_and_stripped_by_its_old_kind_attribute() {
    let mut attributes = HashMap::new();
    attributes.insert(ATTR_KIND_BEFORE.to_owned(), attr("malformed"));
    attributes.insert(ATTR_ERROR.to_owned(), attr("why"));
    attributes.insert(ATTR_SOURCE_ID.to_owned(), attr("q1"));
    attributes.insert("traceparent".to_owned(), attr("00-abc"));
    let old = DeadLetter {
        message_id: "d1".into(),
        receipt: "r-d1".into(),
        body: "nope".into(),
        attributes,
    };
    assert_eq!(old.kind(), Some("malformed"), "read under errorKind");
    assert_eq!(
        Ledger::default().verdict(&old, true),
        Verdict::Skip,
        "--skip-malformed knows it"
    );
    let kept = carried(&old).expect("its own attribute");
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        vec!["traceparent"],
        "the old reason is not sent back"
    );
}

#[test]
fn a_redriven_request_is_an_explicit_retry_and_other_bodies_stay_as_they_were() {
    let request = r#"{"v":1,"type":"request","key":{"pk":"a"},"set":"s"}"#;
    let sent: serde_json::Value = serde_json::from_str(&as_retry(request)).unwrap();
    assert_eq!(sent["retry"], serde_json::json!(true));
    assert_eq!(sent["key"], serde_json::json!({"pk": "a"}));
    for body in [
        r#"{"v":1,"type":"trigger","key":{"pk":"a"},"set":"s"}"#,
        "not json",
        r#"{"Type":"Notification","Message":"{}"}"#,
    ] {
        assert_eq!(as_retry(body), body);
    }
}
