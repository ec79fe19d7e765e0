"""What every check shares: the deploy paths, the example values of the
${NAME} placeholders, the problem list each subcommand reports with, and
readers of rendered manifests and of the daemon's configuration."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

DEPLOY = Path("deploy")
IMAGE_CONFIG = DEPLOY / "docker" / "config.toml"
K8S_CONFIG = DEPLOY / "k8s" / "base" / "config.toml"
POLICY = DEPLOY / "iam" / "triggered-cache-policy.json"
OPERATOR_POLICY = DEPLOY / "iam" / "triggered-cache-operator-policy.json"
TEMPLATE = DEPLOY / "aws" / "triggered-cache.yaml"
ECS = DEPLOY / "ecs"

# The configuration keys the daemon requires, as environment variables.
REQUIRED_ENV = [
    "TRIGGERED_CACHE__AWS__REGION",
    "TRIGGERED_CACHE__SQS__QUEUE_URL",
    "TRIGGERED_CACHE__SQS__DLQ_URL",
    "TRIGGERED_CACHE__DYNAMODB__TABLE",
    "TRIGGERED_CACHE__SNS__TOPIC_ARN",
]

# Example values for the ${NAME} placeholders of deploy/iam and deploy/ecs.
EXAMPLE_VARS = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCOUNT_ID": "123456789012",
    "QUEUE_NAME": "triggered-cache-requests",
    "DLQ_NAME": "triggered-cache-dlq",
    "TABLE_NAME": "triggered-cache",
    "DEPENDENCY_TABLE_NAME": "triggered-cache-deps",
    "TOPIC_NAME": "triggered-cache-events",
    "KMS_KEY_ID": "1234abcd-12ab-34cd-56ef-1234567890ab",
    "S3_BUCKET": "triggered-cache-values",
    "S3_PREFIX": "triggered-cache/",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/triggered-cache-requests",
    "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/triggered-cache-dlq",
    "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:triggered-cache-events",
    "TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/triggered-cache-DaemonRole-EXAMPLE",
    "EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/triggered-cache-ExecutionRole-EXAMPLE",
    "IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/triggered-cache:0.1.0",
    "LOG_GROUP": "/ecs/triggered-cache-requests",
    "PROCESSOR_URL": "http://summary.internal/process",
    "CLUSTER": "triggered-cache",
    "SUBNET_A": "subnet-0123456789abcdef0",
    "SUBNET_B": "subnet-0fedcba9876543210",
    "SECURITY_GROUP": "sg-0123456789abcdef0",
}


class Problems:
    def __init__(self, what: str):
        self.what = what
        self.items: list[str] = []
        self.passed = 0

    def check(self, ok: bool, message: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.items.append(message)
        return ok

    def finish(self) -> int:
        for p in self.items:
            print(f"  FAIL {self.what}: {p}")
        print(f"  {self.what}: {self.passed} checks passed, {len(self.items)} failed")
        return 1 if self.items else 0


# --- helpers ---------------------------------------------------------------

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(text: str, values: dict[str, str]) -> str:
    missing = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise SystemExit(f"unknown placeholders: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_json(path: Path, values: dict[str, str] | None = None) -> dict:
    return json.loads(render(path.read_text(), values or EXAMPLE_VARS))


def load_docs(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict], kind: str, p: Problems) -> dict | None:
    found = by_kind(docs, kind)
    if p.check(len(found) == 1, f"expected exactly one {kind}, found {len(found)}"):
        return found[0]
    return None


def duration_seconds(text: str) -> float:
    """humantime-style durations as the daemon reads them: "30s", "1m 30s", "250ms"."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text)
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


def listen_port(cfg: dict) -> int:
    return int(cfg.get("http", {}).get("listen", "0.0.0.0:9090").rsplit(":", 1)[1])


def shutdown_grace(cfg: dict) -> float:
    return duration_seconds(cfg.get("worker", {}).get("shutdown_grace", "30s"))


def cmd_render(args) -> int:
    values = dict(EXAMPLE_VARS)
    if args.vars:
        values.update(json.loads(Path(args.vars).read_text()))
    sys.stdout.write(render(Path(args.template).read_text(), values))
    return 0
