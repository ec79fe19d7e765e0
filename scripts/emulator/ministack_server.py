"""ministack's server, optionally with long polls that answer as SQS's do.

A waiting `ReceiveMessage` long poll in SQS returns as soon as a message
arrives. ministack checks a waiting long poll every 100 ms instead, so a
message sent to an idle queue waits up to 100 ms before the poll that is
already waiting for it returns (measured: 105 ms at the median). That is
harmless for throughput and call counts, but it dominates any latency
measured through a queue, and more so for a consumer whose receives wait
longer between messages: it made a daemon that batches look 30% slower at
the 99th percentile than one that does not, where on a prompt queue the
difference is the batching's own few milliseconds.

With MINISTACK_LONG_POLL_TICK_MS set (scripts/local-aws.sh start
--long-poll-tick MS), a waiting long poll is checked every MS milliseconds
instead (the emulator spends a little more CPU polling). Unset, this is
ministack unchanged. scripts/local-aws.sh always starts ministack through
this wrapper.
"""

import asyncio
import os
import sys
import types

import ministack.services.sqs as sqs
from ministack.app import main

_TICK_MS = os.environ.get("MINISTACK_LONG_POLL_TICK_MS", "")

if _TICK_MS:
    _tick = float(_TICK_MS) / 1000
    _sleep = asyncio.sleep

    async def _prompt_sleep(delay, result=None):
        # ministack's receive sleeps min(0.1, time left) between checks;
        # nothing else in its SQS module sleeps.
        return await _sleep(min(delay, _tick), result)

    sqs.asyncio = types.SimpleNamespace(**{**vars(asyncio), "sleep": _prompt_sleep})

if __name__ == "__main__":
    sys.exit(main())
