#!/usr/bin/env python3
"""Provision triggered-cache's AWS resources on a local emulator.

Creates (idempotently, re-running is fine):
  SQS queue   NAME-requests   redrive to NAME-dlq after 5 receives, visibility 30s
  SQS queue   NAME-dlq
  DynamoDB    NAME            partition key pk (S), sort key sk (S) with --sort-key,
                              on-demand billing
  SNS topic   NAME-events
  SQS queue   NAME-events     subscribed to the topic with RawMessageDelivery=true,
                              with a queue policy letting the topic send

and writes `export` lines for the daemon to --env-file (and stdout).

Normally run through `scripts/local-aws.sh provision`, which uses the
project's .venv (boto3). Credentials are the emulator's static test ones.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

REGION = "us-east-1"
# Above every set's max_attempts, so that the daemon (with a reason) and not
# SQS (without one) dead-letters a request that keeps failing.
MAX_RECEIVE_COUNT = 10
VISIBILITY_TIMEOUT = 30
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{3,71}$")


def reexec_in_venv() -> None:
    """Runs again with the project's .venv python if boto3 is missing here."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        venv_py = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
        if venv_py.exists() and Path(sys.executable).resolve() != venv_py.resolve():
            os.execv(str(venv_py), [str(venv_py), *sys.argv])
        sys.exit(
            "provision.py: boto3 is not installed; run scripts/local-aws.sh install "
            "(or use scripts/local-aws.sh provision)"
        )


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def clients(endpoint: str):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name=REGION,
    )
    cfg = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3})
    return (
        session.client("sqs", endpoint_url=endpoint, config=cfg),
        session.client("dynamodb", endpoint_url=endpoint, config=cfg),
        session.client("sns", endpoint_url=endpoint, config=cfg),
    )


def ensure_queue(sqs, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    """Returns (url, arn) of queue NAME, created or brought to ATTRIBUTES."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        existed = True
    except sqs.exceptions.QueueDoesNotExist:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        existed = False
    except Exception as e:  # some emulators raise a generic error code
        if "NonExistentQueue" not in str(e) and "QueueDoesNotExist" not in str(e):
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        existed = False
    if existed and attributes:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    log(f"  sqs queue {name}: {'exists' if existed else 'created'}")
    return url, arn


def ensure_table(ddb, name: str, sort_key: bool, keys: tuple[str, str] = ("pk", "sk")) -> None:
    want = [(keys[0], "HASH")] + ([(keys[1], "RANGE")] if sort_key else [])
    try:
        desc = ddb.describe_table(TableName=name)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        desc = None
    if desc is None:
        ddb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in want],
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in want],
        )
        log(f"  dynamodb table {name}: created")
    else:
        have = [(k["AttributeName"], k["KeyType"]) for k in desc["KeySchema"]]
        if sorted(have) != sorted(want):
            raise SystemExit(
                f"provision.py: table {name} exists with key schema {have}, wanted {want} "
                f"({'with' if sort_key else 'without'} --sort-key); use another --name "
                f"or delete the table"
            )
        log(f"  dynamodb table {name}: exists")
    deadline = time.monotonic() + 60
    while True:
        status = ddb.describe_table(TableName=name)["Table"].get("TableStatus", "ACTIVE")
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"provision.py: table {name} still {status} after 60s")
        time.sleep(0.5)


def ensure_subscription(sns, topic_arn: str, queue_arn: str) -> str:
    subs = []
    token = None
    while True:
        kw = {"TopicArn": topic_arn, **({"NextToken": token} if token else {})}
        page = sns.list_subscriptions_by_topic(**kw)
        subs += page.get("Subscriptions", [])
        token = page.get("NextToken")
        if not token:
            break
    for s in subs:
        if s.get("Protocol") == "sqs" and s.get("Endpoint") == queue_arn:
            arn = s["SubscriptionArn"]
            attrs = sns.get_subscription_attributes(SubscriptionArn=arn).get("Attributes", {})
            if attrs.get("RawMessageDelivery", "false").lower() != "true":
                sns.set_subscription_attributes(
                    SubscriptionArn=arn,
                    AttributeName="RawMessageDelivery",
                    AttributeValue="true",
                )
            log("  sns subscription events queue -> topic: exists")
            return arn
    arn = sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    log("  sns subscription events queue -> topic: created (raw delivery)")
    return arn


def provision(endpoint: str, name: str, sort_key: bool, max_receive_count: int = MAX_RECEIVE_COUNT) -> dict[str, str]:
    sqs, ddb, sns = clients(endpoint)
    log(f"provisioning '{name}' on {endpoint}")

    # The table first: a key schema clash fails before anything is created.
    ensure_table(ddb, name, sort_key)
    # The dependency edges: entity -> dependent cache (see src/aws/edges.rs).
    ensure_table(ddb, f"{name}-deps", True, ("entity", "dependent"))

    dlq_url, dlq_arn = ensure_queue(sqs, f"{name}-dlq", {})
    redrive = json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
    )
    queue_url, _ = ensure_queue(
        sqs,
        f"{name}-requests",
        {"RedrivePolicy": redrive, "VisibilityTimeout": str(VISIBILITY_TIMEOUT)},
    )

    topic_arn = sns.create_topic(Name=f"{name}-events")["TopicArn"]
    log(f"  sns topic {name}-events: {topic_arn}")

    events_url, events_arn = ensure_queue(sqs, f"{name}-events", {})
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": events_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )
    sqs.set_queue_attributes(QueueUrl=events_url, Attributes={"Policy": policy})
    ensure_subscription(sns, topic_arn, events_arn)

    env = {
        "TRIGGERED_CACHE__AWS__ENDPOINT_URL": endpoint,
        "TRIGGERED_CACHE__AWS__REGION": REGION,
        "TRIGGERED_CACHE__SQS__QUEUE_URL": queue_url,
        "TRIGGERED_CACHE__SQS__DLQ_URL": dlq_url,
        "TRIGGERED_CACHE__DYNAMODB__TABLE": name,
        "TRIGGERED_CACHE__DYNAMODB__PARTITION_KEY": "pk",
        "TRIGGERED_CACHE__DEPENDENCIES__TABLE": f"{name}-deps",
    }
    if sort_key:
        env["TRIGGERED_CACHE__DYNAMODB__SORT_KEY"] = "sk"
    env.update(
        {
            "TRIGGERED_CACHE__SNS__TOPIC_ARN": topic_arn,
            "EVENTS_QUEUE_URL": events_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
        }
    )
    return env


def main() -> int:
    p = argparse.ArgumentParser(
        prog="scripts/provision.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--endpoint", required=True, metavar="URL",
                   help="the emulator, e.g. http://127.0.0.1:4566")
    p.add_argument("--name", required=True,
                   help="base name of the resources: 3 to 71 of letters, digits, '-', '_'")
    p.add_argument("--sort-key", action="store_true",
                   help="give the table a sort key sk (S) besides pk")
    p.add_argument("--max-receive-count", type=int, default=MAX_RECEIVE_COUNT, metavar="N",
                   help=f"the queue's redrive maxReceiveCount (default {MAX_RECEIVE_COUNT}); "
                   "keep it above every set's max_attempts")
    p.add_argument("--env-file", metavar="PATH",
                   help="also write the export lines to PATH (local-aws.sh uses .local/NAME.env)")
    args = p.parse_args()

    if not NAME_RE.match(args.name):
        p.error(f"--name {args.name!r}: use 3 to 71 of letters, digits, '-', '_'")
    if not re.match(r"^https?://", args.endpoint):
        p.error(f"--endpoint {args.endpoint!r} is not an http(s) URL")
    reexec_in_venv()

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        env = provision(args.endpoint.rstrip("/"), args.name, args.sort_key, args.max_receive_count)
    except (BotoCoreError, ClientError) as e:
        print(f"provision.py: {e}", file=sys.stderr)
        return 1

    text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    if args.env_file:
        path = Path(args.env_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        root = Path(__file__).resolve().parent.parent
        try:
            shown = path.resolve().relative_to(root)
        except ValueError:
            shown = path
        log(f"wrote {shown}")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
