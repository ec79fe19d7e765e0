//! The IAM actions the adapters' calls need: one list, owned by the code.
//!
//! Why here: an IAM policy that lacks an action fails only in production,
//! at the first call that needs it. [`IAM_ACTIONS`] names, for every SDK
//! operation an adapter calls, the action, the resource it is granted on
//! and which program needs it (the daemon, or the operators' commands).
//! A test below reads the adapters' source and fails when they call an
//! operation that is not listed, or when a listed one is no longer called;
//! `triggered-cache iam-actions` prints the list as JSON, and
//! `scripts/deploy/verify.py iam-actions` fails when the policies in
//! `deploy/` grant other actions than these.

use serde::Serialize;

/// What an action is granted on (the names of `deploy/iam`'s resources).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// The request queue.
    Queue,
    /// The dead-letter queue.
    Dlq,
    /// The user's table.
    Table,
    /// The dependency table (`dependencies.table`, optional).
    Deps,
    /// The completion-event topic.
    Topic,
    /// The offload bucket's objects under `s3.prefix` (optional).
    Objects,
    /// The offload bucket itself, listed under `s3.prefix` only.
    Bucket,
}

/// Which program makes the call, and so which policy grants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Caller {
    /// `triggered-cache run` (`deploy/iam/triggered-cache-policy.json`).
    Daemon,
    /// The operators' commands: send, inspect, reset, dlq
    /// (`deploy/iam/triggered-cache-operator-policy.json`).
    Operator,
}

/// One IAM action on one resource for one caller.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Grant {
    /// e.g. `sqs:ReceiveMessage`.
    pub action: &'static str,
    pub resource: Resource,
    pub caller: Caller,
    /// The SDK operations that need it, as the client's method names
    /// (`receive_message`); the batch forms are authorised by the single
    /// action.
    pub calls: &'static [&'static str],
    /// What needs it.
    pub why: &'static str,
}

const fn grant(
    caller: Caller,
    resource: Resource,
    action: &'static str,
    calls: &'static [&'static str],
    why: &'static str,
) -> Grant {
    Grant {
        action,
        resource,
        caller,
        calls,
        why,
    }
}

use Caller::{Daemon, Operator};
use Resource::{Bucket, Deps, Dlq, Objects, Queue, Table, Topic};

/// Every IAM action the adapters' calls need.
pub const IAM_ACTIONS: &[Grant] = &[
    // The daemon.
    grant(
        Daemon,
        Queue,
        "sqs:ReceiveMessage",
        &["receive_message"],
        "queue::Queue::receive: long-polls for requests",
    ),
    grant(
        Daemon,
        Queue,
        "sqs:DeleteMessage",
        &["delete_message_batch"],
        "queue::Queue::delete: deletes a handled message (batched)",
    ),
    grant(
        Daemon,
        Queue,
        "sqs:ChangeMessageVisibility",
        &["change_message_visibility_batch"],
        "queue::Queue::set_visibility: heartbeats and retry backoff (batched)",
    ),
    grant(
        Daemon,
        Queue,
        "sqs:GetQueueAttributes",
        &["get_queue_attributes"],
        "queue::Queue::ping: readiness, queue depth, redrive policy",
    ),
    grant(
        Daemon,
        Queue,
        "sqs:SendMessage",
        &["send_message"],
        "queue::Queue::resend: a scheduled trigger not due yet, a parked request a trigger carries on",
    ),
    grant(
        Daemon,
        Dlq,
        "sqs:SendMessage",
        &["send_message"],
        "queue::Queue::dead_letter: a copy with the reason",
    ),
    grant(
        Daemon,
        Dlq,
        "sqs:GetQueueAttributes",
        &["get_queue_attributes"],
        "queue::Queue::dlq_depth: the DLQ depth gauge",
    ),
    grant(
        Daemon,
        Table,
        "dynamodb:GetItem",
        &["get_item"],
        "table::Table::get: the strongly consistent read, alone",
    ),
    grant(
        Daemon,
        Table,
        "dynamodb:BatchGetItem",
        &["batch_get_item"],
        "table::Table::get: the strongly consistent reads of concurrent messages, together",
    ),
    grant(
        Daemon,
        Table,
        "dynamodb:UpdateItem",
        &["update_item"],
        "table::Table::update: every state change, one conditional write",
    ),
    grant(
        Daemon,
        Table,
        "dynamodb:DescribeTable",
        &["describe_table"],
        "table::Table::ping: readiness",
    ),
    grant(
        Daemon,
        Deps,
        "dynamodb:BatchWriteItem",
        &["batch_write_item"],
        "edges::Dependencies::add/remove: dependency edges",
    ),
    grant(
        Daemon,
        Deps,
        "dynamodb:Query",
        &["query"],
        "edges::Dependencies::dependents: the caches an entity's trigger resets",
    ),
    grant(
        Daemon,
        Topic,
        "sns:Publish",
        &["publish", "publish_batch"],
        "topic::Topic::publish: completion events (concurrent ones batched)",
    ),
    grant(
        Daemon,
        Topic,
        "sns:GetTopicAttributes",
        &["get_topic_attributes"],
        "topic::Topic::ping: readiness",
    ),
    grant(
        Daemon,
        Objects,
        "s3:PutObject",
        &["put_object"],
        "s3::Bucket::put: a value over offload_over, before its commit",
    ),
    grant(
        Daemon,
        Objects,
        "s3:PutObjectTagging",
        &["put_object_tagging"],
        "s3::Bucket::put/mark_committed: the tag the orphan lifecycle rule reads",
    ),
    grant(
        Daemon,
        Objects,
        "s3:GetObject",
        &["get_object"],
        "s3::Bucket::get: an event that carries an offloaded value, an inputRef; presigned URLs",
    ),
    grant(
        Daemon,
        Objects,
        "s3:DeleteObject",
        &["delete_object"],
        "s3::Bucket::delete: objects of superseded epochs and lost commits",
    ),
    grant(
        Daemon,
        Bucket,
        "s3:ListBucket",
        &["list_objects_v2"],
        "s3::Bucket::list: the objects of one cache set after a commit (under s3.prefix only)",
    ),
    // The operators' commands.
    grant(
        Operator,
        Queue,
        "sqs:SendMessage",
        &["send_message_batch"],
        "queue::Sender::send_batch: `send`, and `dlq redrive` sending back",
    ),
    grant(
        Operator,
        Dlq,
        "sqs:ReceiveMessage",
        &["receive_message"],
        "dlq::Dlq::receive: `dlq list`, `dlq redrive`",
    ),
    grant(
        Operator,
        Dlq,
        "sqs:DeleteMessage",
        &["delete_message_batch"],
        "dlq::Dlq::delete: `dlq redrive`, after the send",
    ),
    grant(
        Operator,
        Dlq,
        "sqs:ChangeMessageVisibility",
        &["change_message_visibility_batch"],
        "dlq::Dlq::release: listed messages visible again at once",
    ),
    grant(
        Operator,
        Dlq,
        "sqs:GetQueueAttributes",
        &["get_queue_attributes"],
        "dlq::Dlq::depth: where `dlq redrive` stops",
    ),
    grant(
        Operator,
        Table,
        "dynamodb:GetItem",
        &["get_item"],
        "table::Table::get: `inspect`",
    ),
    grant(
        Operator,
        Table,
        "dynamodb:BatchGetItem",
        &["batch_get_item"],
        "table::Table::get: `inspect` (reads made together are batched)",
    ),
    grant(
        Operator,
        Table,
        "dynamodb:UpdateItem",
        &["update_item"],
        "table::Table::update: `reset`",
    ),
    grant(
        Operator,
        Topic,
        "sns:Publish",
        &["publish", "publish_batch"],
        "topic::Topic::publish: `reset` events",
    ),
    grant(
        Operator,
        Objects,
        "s3:GetObject",
        &["get_object"],
        "s3::Bucket::get: `inspect --fetch` of an offloaded value",
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The SDK operations called in `text`: a method call without
    /// arguments on a value whose name ends in `client` (`self.client`,
    /// `client`), across line breaks.
    fn calls(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("client") {
            rest = &rest[i + "client".len()..];
            let after = rest.trim_start();
            let Some(call) = after.strip_prefix('.') else {
                continue;
            };
            let name: String = call
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // `clone()` and `config()` are the client's own, not requests.
            if !name.is_empty()
                && call[name.len()..].starts_with("()")
                && !["clone", "config"].contains(&name.as_str())
            {
                found.push(name);
            }
        }
        found
    }

    fn called_in(dir: &str) -> BTreeSet<String> {
        let mut files = Vec::new();
        sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut files);
        files
            .iter()
            .flat_map(|f| calls(&std::fs::read_to_string(f).unwrap()))
            .collect()
    }

    #[test]
    fn the_scan_finds_calls_across_lines() {
        let text = "self.client\n  .get_item()\n.x(); client.clone(); let c = client\n.send_message_batch(); client.list_objects_v2()";
        assert_eq!(
            calls(text),
            ["get_item", "send_message_batch", "list_objects_v2"]
        );
    }

    #[test]
    fn every_sdk_call_of_the_adapters_has_its_iam_action() {
        let called = called_in("src/aws");
        let listed: BTreeSet<String> = IAM_ACTIONS
            .iter()
            .flat_map(|g| g.calls.iter().map(|c| c.to_string()))
            .collect();
        let missing: Vec<_> = called.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "src/aws calls {missing:?}: add each to aws::IAM_ACTIONS with its IAM action (and grant it in deploy/iam and deploy/aws)"
        );
        let stale: Vec<_> = listed.difference(&called).collect();
        assert!(
            stale.is_empty(),
            "aws::IAM_ACTIONS lists {stale:?}, which no adapter calls any more: remove them (and their grants)"
        );
    }

    #[test]
    fn no_sdk_call_outside_the_adapters() {
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let aws = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws");
        for f in files.iter().filter(|f| !f.starts_with(&aws)) {
            let text = std::fs::read_to_string(f).unwrap();
            let builds = ["sqs", "dynamodb", "sns", "s3"]
                .iter()
                .any(|s| text.contains(&format!("aws_sdk_{s}::Client::new(")));
            assert!(
                calls(&text).is_empty() && !builds,
                "{}: builds or calls an AWS SDK client; do it in an adapter under src/aws/",
                f.display()
            );
        }
    }

    #[test]
    fn each_action_is_listed_once_per_caller_and_resource() {
        let mut seen = BTreeSet::new();
        for g in IAM_ACTIONS {
            let id = format!("{:?} {:?} {}", g.caller, g.resource, g.action);
            assert!(seen.insert(id.clone()), "{id} twice");
            let service = g.action.split(':').next().unwrap();
            assert!(
                ["sqs", "dynamodb", "sns", "s3"].contains(&service),
                "{}",
                g.action
            );
        }
    }
}
