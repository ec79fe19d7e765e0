"""The IAM check fails when the policies and the code's list disagree.

Run: python -m unittest discover -s scripts/deploy -p 'test_*.py' (from the
repository root, in .venv-deploy; verify-deploy.sh's IAM step does).
"""

from __future__ import annotations

import copy
import unittest

from checks import iam
from checks.common import EXAMPLE_VARS, Problems

QUEUE = f"arn:aws:sqs:us-east-1:123456789012:{EXAMPLE_VARS['QUEUE_NAME']}"
TABLE = f"arn:aws:dynamodb:us-east-1:123456789012:table/{EXAMPLE_VARS['TABLE_NAME']}"
KEY = "arn:aws:kms:us-east-1:123456789012:key/k"

GRANTS = [
    {"action": "sqs:ReceiveMessage", "resource": "queue", "caller": "daemon", "calls": ["receive_message"], "why": "receive"},
    {"action": "dynamodb:UpdateItem", "resource": "table", "caller": "daemon", "calls": ["update_item"], "why": "write"},
]


def statement(sid: str, actions: list[str], resource: str, **extra) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource, **extra}


POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        statement("Queue", ["sqs:ReceiveMessage"], QUEUE),
        statement("Table", ["dynamodb:UpdateItem"], TABLE),
        statement("Key", ["kms:Decrypt", "kms:GenerateDataKey"], KEY,
                  Condition={"StringEquals": {"kms:ViaService": ["sqs.us-east-1.amazonaws.com"]}}),
    ],
}


def problems(grants: list[dict], policy: dict) -> list[str]:
    p = Problems("test")
    iam.check(grants, {"daemon": ("policy.json", policy)}, p)
    return p.items


class IamCheck(unittest.TestCase):
    def test_a_policy_that_grants_what_the_code_calls_passes(self):
        self.assertEqual(problems(GRANTS, POLICY), [])

    def test_an_action_the_code_calls_but_the_policy_lacks_fails(self):
        more = GRANTS + [{"action": "dynamodb:GetItem", "resource": "table", "caller": "daemon", "calls": ["get_item"], "why": "the read"}]
        found = problems(more, POLICY)
        self.assertEqual(len(found), 1, found)
        self.assertIn("missing dynamodb:GetItem", found[0])
        self.assertIn("the read", found[0])

    def test_an_action_the_policy_grants_but_the_code_does_not_call_fails(self):
        policy = copy.deepcopy(POLICY)
        policy["Statement"][1]["Action"].append("dynamodb:DeleteItem")
        found = problems(GRANTS, policy)
        self.assertEqual(len(found), 1, found)
        self.assertIn("dynamodb:DeleteItem", found[0])

    def test_an_action_on_the_wrong_resource_fails(self):
        policy = copy.deepcopy(POLICY)
        policy["Statement"][0]["Action"] = []
        policy["Statement"][1]["Action"].append("sqs:ReceiveMessage")
        self.assertEqual(len(problems(GRANTS, policy)), 2)

    def test_a_caller_without_a_policy_fails(self):
        ops = GRANTS + [{"action": "sqs:SendMessage", "resource": "queue", "caller": "operator", "calls": [], "why": "send"}]
        self.assertTrue(any("without a policy" in x for x in problems(ops, POLICY)))


if __name__ == "__main__":
    unittest.main()
