"""The AWS side of the fault proxy (tests/chaos/faultproxy.py): which
service and operation a request is (and, for an SNS Publish or PublishBatch,
the events it carries), and an injected error in that service's own protocol, so that the
SDK treats it as the real service's throttling or internal error.
Standard library only.
"""

from __future__ import annotations

import json
import random
import re
import urllib.parse

from proxy_http import dechunk

def event_info(message: str) -> dict:
    """What the checker needs of a completion event's body."""
    try:
        msg = json.loads(message or "{}")
        return {k: msg.get(k) for k in ("event", "eventId", "key", "set", "epoch", "requestId")}
    except ValueError:
        return {}


def classify(headers: dict[str, str], body: bytes) -> tuple[str, str, list[dict] | None]:
    """(service, operation, the events a publish carries) of a request."""
    target = headers.get("x-amz-target", "")
    if target.startswith("DynamoDB_"):
        return "dynamodb", target.split(".", 1)[-1], None
    if target.startswith("AmazonSQS."):
        return "sqs", target.split(".", 1)[-1], None
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        form = {}
    action = (form.get("Action") or [""])[0]
    if action:
        service = "sns" if form.get("TopicArn") or action in ("Publish", "PublishBatch", "GetTopicAttributes") else "query"
        events = None
        if action == "Publish":
            events = [event_info((form.get("Message") or ["{}"])[0])]
        elif action == "PublishBatch":
            entry = re.compile(r"^PublishBatchRequestEntries\.member\.(\d+)\.Message$")
            found = sorted(
                (int(m.group(1)), v[0]) for k, v in form.items() if (m := entry.match(k))
            )
            events = [event_info(message) for _, message in found]
        return service, action, events
    return "other", "?", None


def error_response(service: str, kind: str, rng: random.Random) -> bytes:
    if kind == "throttle":
        status = 400
        if service == "dynamodb":
            code = rng.choice(["ThrottlingException", "ProvisionedThroughputExceededException"])
        elif service == "sqs":
            code = "ThrottlingException"
        else:
            code = "Throttling"
        message = "Rate exceeded (injected by faultproxy)"
    else:
        status = 500
        code = "InternalServerError" if service == "dynamodb" else "InternalError"
        message = "We encountered an internal error (injected by faultproxy)"
    reason = "Bad Request" if status == 400 else "Internal Server Error"
    extra = ""
    if service == "dynamodb":
        ns = "com.amazonaws.dynamodb.v20120810#"
        body = json.dumps({"__type": ns + code, "message": message}).encode()
        ctype = "application/x-amz-json-1.0"
    elif service == "sqs":
        body = json.dumps({"__type": "com.amazonaws.sqs#" + code, "message": message}).encode()
        ctype = "application/x-amz-json-1.0"
        sender = "Sender" if status == 400 else "Receiver"
        extra = f"x-amzn-query-error: {code};{sender}\r\n"
    else:
        sender = "Sender" if status == 400 else "Receiver"
        body = (
            '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
            f"<Error><Type>{sender}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        ).encode()
        ctype = "text/xml"
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n"
        f"{extra}"
        "\r\n"
    )
    return head.encode() + body
