#!/usr/bin/env python3
"""Watch triggered-cache's completion events arrive on an SQS queue.

Long-polls the events queue (subscribed to the SNS topic, normally with raw
message delivery), prints each event as one line, and deletes it:

  12:00:01.234 ready   pk=order#1 set=summary epoch=1 req=r-1 value={"total":3}
  12:00:02.001 failed  pk=order#2 set=summary epoch=1 req=r-2 error="timeout after 10s"

Stops after --count events (exit 0) or when --timeout runs out (exit 1 if
--count was given and not reached, else 0). Without either, it watches until
interrupted. --endpoint and --queue-url default to $TRIGGERED_CACHE__AWS__ENDPOINT_URL
and $EVENTS_QUEUE_URL, which `source .local/NAME.env` sets.

Runs with the project's .venv python (boto3); started with another python,
it re-runs itself with .venv/bin/python.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def reexec_in_venv() -> None:
    try:
        import boto3  # noqa: F401
    except ImportError:
        venv_py = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
        if venv_py.exists() and Path(sys.executable).resolve() != venv_py.resolve():
            os.execv(str(venv_py), [str(venv_py), *sys.argv])
        sys.exit("watch-events.py: boto3 is not installed; run scripts/local-aws.sh install")


def short(value, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def key_text(key) -> str:
    if isinstance(key, dict):
        return " ".join(f"{k}={v}" for k, v in key.items())
    return f"key={short(key, 60)}"


def clock(at) -> str:
    # "2026-01-02T12:00:01.234Z" -> "12:00:01.234"
    if isinstance(at, str) and "T" in at:
        return at.split("T", 1)[1].rstrip("Z")[:12]
    return time.strftime("%H:%M:%S")


def render(body: str, width: int) -> str:
    """One readable line for a message body."""
    note = ""
    try:
        ev = json.loads(body)
    except ValueError:
        return f"{time.strftime('%H:%M:%S')} (not JSON) {short(body, width)}"
    # Without RawMessageDelivery the body is SNS's envelope: unwrap it.
    if isinstance(ev, dict) and ev.get("Type") == "Notification" and "Message" in ev:
        note = " [sns envelope: raw delivery is off]"
        try:
            ev = json.loads(ev["Message"])
        except ValueError:
            return f"{time.strftime('%H:%M:%S')} (not JSON){note} {short(ev['Message'], width)}"
    if not isinstance(ev, dict) or "event" not in ev:
        return f"{time.strftime('%H:%M:%S')} (not an event){note} {short(ev, width)}"

    parts = [
        clock(ev.get("at")),
        f"{str(ev.get('event')):<7}",
        key_text(ev.get("key")),
        f"set={ev.get('set')}",
        f"epoch={ev.get('epoch')}",
    ]
    if ev.get("requestId") is not None:
        parts.append(f"req={ev['requestId']}")
    if ev.get("error") is not None:
        parts.append(f"error={short(json.dumps(ev['error']), width)}")
    if ev.get("value") is not None:
        parts.append(f"value={short(json.dumps(ev['value'], separators=(',', ':')), width)}")
    if ev.get("status") is not None:
        parts.append(f"status={ev['status']}")
    if ev.get("coalesced"):
        parts.append(f"+{len(ev['coalesced'])} coalesced")
    if ev.get("truncated"):
        parts.append("(truncated)")
    return " ".join(parts) + note


def main() -> int:
    p = argparse.ArgumentParser(
        prog="scripts/watch-events.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--endpoint", metavar="URL",
                   default=os.environ.get("TRIGGERED_CACHE__AWS__ENDPOINT_URL"),
                   help="the emulator (default $TRIGGERED_CACHE__AWS__ENDPOINT_URL)")
    p.add_argument("--queue-url", metavar="URL", default=os.environ.get("EVENTS_QUEUE_URL"),
                   help="the events queue (default $EVENTS_QUEUE_URL)")
    p.add_argument("--count", type=int, metavar="N",
                   help="exit 0 after N events")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="give up after SECONDS (exit 1 if --count was not reached)")
    p.add_argument("--width", type=int, default=80, metavar="CHARS",
                   help="shorten values and errors to CHARS (default 80)")
    p.add_argument("--raw", action="store_true",
                   help="print each message body as it is instead of a summary line")
    p.add_argument("--no-delete", action="store_true",
                   help="leave the messages on the queue (they come back after the "
                        "visibility timeout)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"),
                   help="region (default $AWS_REGION or us-east-1)")
    args = p.parse_args()
    if not args.endpoint:
        p.error("--endpoint is required (or set TRIGGERED_CACHE__AWS__ENDPOINT_URL)")
    if not args.queue_url:
        p.error("--queue-url is required (or set EVENTS_QUEUE_URL)")
    if args.count is not None and args.count < 1:
        p.error("--count must be at least 1")
    if args.timeout is not None and args.timeout < 0:
        p.error("--timeout must not be negative")

    reexec_in_venv()
    import boto3
    from botocore.config import Config

    # Ctrl-C ends quietly.
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

    sqs = boto3.client(
        "sqs",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
    )
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    seen = 0
    while args.count is None or seen < args.count:
        wait = 20
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait = max(0, min(20, int(left)))
        want = 10 if args.count is None else min(10, args.count - seen)
        resp = sqs.receive_message(
            QueueUrl=args.queue_url,
            MaxNumberOfMessages=want,
            WaitTimeSeconds=wait,
        )
        msgs = resp.get("Messages", [])
        if not msgs and wait == 0 and deadline is not None:
            # Less than a second left: do not spin on short polls.
            time.sleep(max(0.0, min(0.2, deadline - time.monotonic())))
        for m in msgs:
            print(m["Body"] if args.raw else render(m["Body"], args.width), flush=True)
            if not args.no_delete:
                sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=m["ReceiptHandle"])
            seen += 1
    if args.count is not None and seen < args.count:
        print(f"watch-events.py: timed out after {args.timeout:g}s with {seen} of "
              f"{args.count} events", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
