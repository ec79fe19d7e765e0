use std::collections::BTreeMap;

use super::*;
use serde_json::json;

fn record(event: &str, new_status: &str, old_status: &str) -> Json {
    json!({
        "eventID": "1", "eventName": event, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-23T00:00:00.000",
        "dynamodb": {
            "Keys": {"orderId": {"S": "17"}},
            "NewImage": {"orderId": {"S": "17"}, "status": {"S": new_status}, "total": {"N": "5"}},
            "OldImage": {"orderId": {"S": "17"}, "status": {"S": old_status}, "total": {"N": "4"}},
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

fn rules() -> Rules {
    let r: Vec<StreamRule> = toml::from_str::<BTreeMap<String, Vec<StreamRule>>>(
        r#"
        [[streams]]
        table = "orders"
        key = { pk = "order#{Keys.orderId}" }
        sets = ["summary"]
        [[streams]]
        table = "orders"
        events = ["MODIFY"]
        key = { pk = "order#{Keys.orderId}" }
        sets = ["status-view"]
        when_changed = ["status"]
        [[streams]]
        table = "products"
        dependency = "product#{Image.sku}"
        "#,
    )
    .unwrap()
    .remove("streams")
    .unwrap();
    Rules::new(&r, &["pk".to_string()]).unwrap()
}

fn sets(t: &StreamTriggers) -> Vec<String> {
    t.messages
        .iter()
        .map(|m| match &m.command {
            Command::Trigger {
                sets: SetSelector::One(s),
            } => format!("{}:{s}", m.key),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_status_change_resets_both_sets_and_another_change_only_summary() {
    let t = rules().map(&record("MODIFY", "shipped", "paid")).unwrap();
    assert_eq!(
        sets(&t),
        vec!["pk=order#17:summary", "pk=order#17:status-view"]
    );
    let t = rules().map(&record("MODIFY", "paid", "paid")).unwrap();
    assert_eq!(sets(&t), vec!["pk=order#17:summary"]);
}

#[test]
fn a_batch_maps_every_record_and_counts_the_unmatched() {
    let mut other = record("INSERT", "new", "new");
    other["eventSourceARN"] = json!("arn:aws:dynamodb:us-east-1:1:table/unrelated/stream/x");
    let body = json!({"Records": [record("INSERT", "new", "new"), other]});
    assert!(is_stream(&body));
    let t = rules().map(&body).unwrap();
    assert_eq!(sets(&t), vec!["pk=order#17:summary"]);
    assert_eq!(t.unmatched, 1);
}

#[test]
fn a_dependency_rule_names_the_entity() {
    let body = json!({"eventName": "REMOVE", "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/products/stream/x",
        "dynamodb": {"Keys": {"id": {"S": "9"}}, "OldImage": {"sku": {"S": "A-1"}}}});
    let t = rules().map(&body).unwrap();
    assert_eq!(t.dependencies, vec!["product#A-1".to_string()]);
}

#[test]
fn a_rule_naming_a_missing_attribute_is_an_error_with_the_reason() {
    let mut r = record("INSERT", "x", "x");
    r["dynamodb"]["Keys"] = json!({"other": {"S": "1"}});
    r["dynamodb"]["NewImage"] = json!({});
    r["dynamodb"]["OldImage"] = json!({});
    let err = rules().map(&r).unwrap_err();
    assert!(err.reason.contains("no Keys.orderId"), "{}", err.reason);
}

#[test]
fn bad_rules_are_refused() {
    assert!(Template::parse("x{Keys.a").is_err());
    assert!(Template::parse("{Foo.a}").is_err());
    let bad = StreamRule {
        table: "t".into(),
        events: StreamEvent::all(),
        key: Some(BTreeMap::from([(
            "id".to_string(),
            "{Keys.id}".to_string(),
        )])),
        sets: vec!["s".into()],
        dependency: None,
        when_changed: vec![],
    };
    let errs = Rules::new(&[bad], &["pk".to_string()]).unwrap_err();
    assert!(errs[0].1.contains("key attributes"), "{errs:?}");
}

#[test]
fn a_rule_names_exactly_one_target() {
    let rule = |key: bool, dependency: bool| StreamRule {
        table: "t".into(),
        events: StreamEvent::all(),
        key: key.then(|| BTreeMap::from([("pk".to_string(), "{Keys.id}".to_string())])),
        sets: vec!["s".into()],
        dependency: dependency.then(|| "product#{Keys.id}".to_string()),
        when_changed: vec![],
    };
    for (key, dependency) in [(true, true), (false, false)] {
        let errs = Rules::new(&[rule(key, dependency)], &["pk".to_string()]).unwrap_err();
        assert_eq!(
            errs,
            vec![(
                0,
                "needs exactly one of key (with sets) or dependency".to_string()
            )]
        );
    }
    for (key, dependency) in [(true, false), (false, true)] {
        assert!(Rules::new(&[rule(key, dependency)], &["pk".to_string()]).is_ok());
    }
    let no_sets = StreamRule {
        sets: vec![],
        ..rule(true, false)
    };
    let errs = Rules::new(&[rule(false, true), no_sets], &["pk".to_string()]).unwrap_err();
    assert_eq!(errs, vec![(1, "names a key but no sets".to_string())]);
}
