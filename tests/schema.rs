//! The published JSON Schema of messages (`schema/message.schema.json`)
//! agrees with the README's examples, the messages the tests and the CLI
//! send, and the worker's own decoder.

use std::collections::BTreeSet;

use serde_json::{Value as Json, json};
use triggered_cache::message::Schema;

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/message.schema.json"
    ))
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap())
        .expect("the schema is a valid JSON Schema")
}

fn decoder() -> Schema {
    Schema {
        partition_key: "pk".into(),
        sort_key: Some("sk".into()),
        sets: BTreeSet::from(["summary".to_string(), "invoice".to_string()]),
    }
}

/// The JSON lines of the README's "Messages" section.
fn readme_examples() -> Vec<Json> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Messages")
        .nth(1)
        .expect("README has a Messages section");
    let block = section
        .split("```json")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("README example {l} is not JSON: {e}"))
        })
        .collect()
}

#[test]
fn every_readme_example_is_valid_and_decodes() {
    let v = validator();
    let examples = readme_examples();
    assert!(examples.len() >= 6, "{examples:?}");
    for ex in examples {
        let errors: Vec<String> = v.iter_errors(&ex).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{ex} is invalid: {errors:?}");
        // The README's keys are either pk or pk+sk.
        let mut ex = ex;
        if ex["key"].get("sk").is_none() {
            ex["key"]["sk"] = json!("s");
        }
        if ex.get("dependency").is_some() {
            ex.as_object_mut().unwrap().remove("key");
        }
        decoder()
            .decode_any(&ex.to_string(), &Default::default())
            .unwrap_or_else(|e| panic!("{ex} does not decode: {e}"));
    }
}

#[test]
fn the_messages_tests_and_the_cli_send_are_valid() {
    let v = validator();
    let sent = [
        json!({"v": 1, "type": "request", "key": {"pk": "order#1"}, "set": "summary"}),
        json!({"v": 1, "type": "request", "key": {"pk": "order#2"}, "set": "summary", "input": {"lang": "en"}}),
        json!({"v": 1, "type": "request", "key": {"pk": "order#1"}, "set": "summary", "requestId": "r-1", "input": {"a": 1}}),
        json!({"v": 1, "type": "trigger", "key": {"pk": "order#1"}, "set": "summary"}),
        json!({"v": 1, "type": "trigger", "key": {"pk": "order#1"}, "set": "*"}),
        json!({"v": 1, "type": "trigger_start", "key": {"pk": "order#2"}, "set": "summary", "triggerId": "flow-42"}),
        json!({"v": 1, "type": "trigger_end", "key": {"pk": "order#2"}, "set": "summary", "triggerId": "flow-42"}),
        json!({"v": 1, "type": "request", "key": {"pk": "account#9", "sk": 12}, "set": "invoice"}),
        json!({"v": 1, "type": "trigger", "dependency": "product#A"}),
        json!({"v": 1, "type": "trigger", "key": {"pk": "order#1"}, "set": "summary", "at": "2026-12-24T00:00:00Z"}),
        json!({"v": 1, "type": "trigger_end", "key": {"pk": "order#2"}, "set": "summary", "triggerId": "flow-42", "delay": "2h"}),
        json!({"v": 1, "type": "trigger", "dependency": "product#A", "delay": "15m"}),
    ];
    for m in sent {
        assert!(v.is_valid(&m), "{m}");
    }
}

#[test]
fn the_schema_and_the_decoder_agree_on_bad_messages() {
    let v = validator();
    let k = json!({"pk": "a", "sk": "b"});
    let bad = [
        json!({"v": 2, "type": "request", "key": k, "set": "summary"}),
        json!({"v": "1", "type": "request", "key": k, "set": "summary"}),
        json!({"v": 1, "type": "explode", "key": k, "set": "summary"}),
        json!({"v": 1, "type": "request", "set": "summary"}),
        json!({"v": 1, "type": "request", "key": "a", "set": "summary"}),
        json!({"v": 1, "type": "request", "key": {"pk": true, "sk": "b"}, "set": "summary"}),
        json!({"v": 1, "type": "request", "key": {"pk": "", "sk": "b"}, "set": "summary"}),
        json!({"v": 1, "type": "request", "key": k, "set": "summary", "extra": 1}),
        json!({"v": 1, "type": "request", "key": k, "set": "*"}),
        json!({"v": 1, "type": "request", "key": k, "set": "summary", "requestId": "x".repeat(129)}),
        json!({"v": 1, "type": "request", "key": k, "set": "summary", "requestId": "a\u{7}b"}),
        json!({"v": 1, "type": "trigger", "key": k, "set": "summary", "requestId": "r"}),
        json!({"v": 1, "type": "trigger_start", "key": k, "set": "summary"}),
        json!({"v": 1, "type": "trigger_end", "key": k, "set": "summary", "triggerId": ""}),
        json!([1, 2]),
        json!({"v": 1, "type": "trigger", "dependency": "product#A", "key": k}),
        json!({"v": 1, "type": "request", "dependency": "product#A", "key": k, "set": "summary"}),
        json!({"v": 1, "type": "request", "key": k, "set": "summary", "delay": "1h"}),
        json!({"v": 1, "type": "trigger", "key": k, "set": "summary", "at": "2026-12-24T00:00:00Z", "delay": "1h"}),
        json!({"v": 1, "type": "trigger", "key": k, "set": "summary", "at": 5}),
    ];
    for m in bad {
        assert!(!v.is_valid(&m), "the schema accepts {m}");
        assert!(
            decoder().decode(&m.to_string()).is_err(),
            "the decoder accepts {m}"
        );
    }
}
