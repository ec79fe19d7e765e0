"""IAM: the policies in deploy/iam grant exactly the actions the code says
it needs, on the resources it needs them on.

The list is the code's own (`aws::IAM_ACTIONS` in src/aws/iam.rs, where a
Rust test ties it to the adapters' SDK calls), printed by
`triggered-cache iam-actions`: each entry has an action, a resource
(queue, dlq, table, deps, topic, objects, bucket) and a caller (daemon: the daemon's policy;
operator: the operators' policy). What the code cannot know is added here:
both policies may use the KMS key that encrypts the queues and the topic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from checks.common import EXAMPLE_VARS, OPERATOR_POLICY, POLICY, Problems, render_json

# The deploy's encryption (SSE-KMS on the queues and the topic): every
# caller that sends or receives needs the key.
KMS_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey"}
# Which policy grants which caller's actions.
POLICY_OF = {"daemon": POLICY, "operator": OPERATOR_POLICY}


def classify(resource: str) -> str:
    if resource.startswith("arn:aws:sqs:"):
        return "dlq" if resource.endswith(":" + EXAMPLE_VARS["DLQ_NAME"]) else "queue"
    if resource.startswith("arn:aws:dynamodb:"):
        if "/index/" in resource:
            return "index"
        return "deps" if resource.endswith("table/" + EXAMPLE_VARS["DEPENDENCY_TABLE_NAME"]) else "table"
    if resource.startswith("arn:aws:sns:"):
        return "topic"
    if resource.startswith("arn:aws:kms:"):
        return "key"
    if resource.startswith("arn:aws:s3:::"):
        # The bucket itself (listing), or its objects under the prefix.
        return "objects" if "/" in resource else "bucket"
    return "other:" + resource


def listed(doc: dict, key: str) -> list:
    value = doc[key]
    return value if isinstance(value, list) else [value]


def actions_by_resource(doc: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for st in doc["Statement"]:
        if st.get("Effect") != "Allow":
            continue
        for r in listed(st, "Resource"):
            out.setdefault(classify(r), set()).update(listed(st, "Action"))
    return out


def expected(grants: list[dict], caller: str) -> dict[str, set[str]]:
    """What `caller`'s policy must grant, by resource: the code's actions
    and the KMS key's."""
    out: dict[str, set[str]] = {}
    for g in grants:
        if g["caller"] == caller:
            out.setdefault(g["resource"], set()).add(g["action"])
    if out:
        out["key"] = set(KMS_ACTIONS)
    return out


def check_policy(name: str, doc: dict, want: dict[str, set[str]], grants: list[dict], p: Problems) -> None:
    got = actions_by_resource(doc)
    for res in sorted(set(got) | set(want)):
        extra = got.get(res, set()) - want.get(res, set())
        missing = want.get(res, set()) - got.get(res, set())
        p.check(not extra, f"{name}: {res}: grants {sorted(extra)}, which the code does not call (aws::IAM_ACTIONS)")
        for action in sorted(missing):
            why = "; ".join(g["why"] for g in grants if g["action"] == action and g["resource"] == res)
            p.check(False, f"{name}: {res}: missing {action}, which the code needs ({why or 'KMS encryption'})")
    for st in doc["Statement"]:
        acts, res = listed(st, "Action"), listed(st, "Resource")
        p.check(not any("*" in a for a in acts), f"{name}: wildcard action in {st.get('Sid')}")
        p.check(all(r != "*" for r in res), f"{name}: Resource * in {st.get('Sid')}")
        p.check(bool(st.get("Sid")), f"{name}: a statement without a Sid")
        if any(a.startswith("kms:") for a in acts):
            p.check("kms:ViaService" in json.dumps(st.get("Condition", {})), f"{name}: KMS use is not limited to SQS and SNS (kms:ViaService)")


def check(grants: list[dict], policies: dict[str, tuple[str, dict]], p: Problems) -> None:
    """`policies`: caller -> (name, rendered policy document)."""
    callers = {g["caller"] for g in grants}
    p.check(callers <= set(policies), f"the code names callers without a policy: {sorted(callers - set(policies))}")
    for caller, (name, doc) in sorted(policies.items()):
        check_policy(name, doc, expected(grants, caller), grants, p)


def cmd_iam_actions(args) -> int:
    p = Problems("IAM policies")
    text = sys.stdin.read() if args.actions == "-" else Path(args.actions).read_text()
    grants = json.loads(text)
    print(f"  the code's list: {len(grants)} grants ({args.actions})")
    policies = {caller: (path.name, render_json(path)) for caller, path in POLICY_OF.items()}
    check(grants, policies, p)
    return p.finish()
