#!/usr/bin/env python3
"""An example `command` processor: summarizes an order, taking a visible moment.

Reads the job as JSON on stdin:
  {"key": {...}, "set": "summary", "epoch": 1, "requestId": "...",
   "input": {...} or null, "record": {...the whole item...}}
and writes the answer on stdout:
  {"value": <any JSON>, "dependsOn": ["entity", ...]}
Exit 0 on success, 75 for a retryable failure, anything else for a permanent one.
Set SUMMARIZE_DELAY (seconds, default 1.5) to change how long it "works".
"""
import json
import os
import sys
import time

job = json.load(sys.stdin)
delay = float(os.environ.get("SUMMARIZE_DELAY", "1.5"))
time.sleep(delay)
record = job.get("record") or {}
plain = {k: v for k, v in record.items() if not k.startswith("triggeredCache_")}
value = {
    "summary": f"{json.dumps(job['key'])} has {len(plain)} plain attributes",
    "computedForEpoch": job["epoch"],
    "computedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "input": job.get("input"),
}
json.dump({"value": value}, sys.stdout)
