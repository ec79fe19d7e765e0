#!/usr/bin/env python3
"""The chaos run's `command` processor: does some "work" and logs every run.

Reads the job ({key, set, epoch, requestId, input, record}) on stdin, works
for a random while (CHAOS_WORK_MS="min,max", default "100,800"), and answers
{"value": {...}, "dependsOn": [...]}. The value names the run that computed
it, so the checker can tell which run's result was committed.

Every run appends two JSON lines to $CHAOS_RUN_LOG (one write each, O_APPEND,
so concurrent runs of several workers never interleave within a line):
  {"ev": "start", "run", "key", "set", "epoch", "rid", "worker", "attempts",
   "gen", "refresh", "t"}
  {"ev": "end",   "run", ..., "outcome", "t"}
where gen is null for a run that computes its epoch's first value, and for
a recompute of a committed epoch (a refresh, or a claim after the ttl) the
readyAt of the value it replaces; refresh is true for a background refresh.
The outcome is one of
  ok          answered a value
  permanent   failed for good on purpose (keys starting with "poison#")
  retryable   failed with exit 75 on purpose (CHAOS_RETRYABLE_RATE)
  cancelled   the daemon killed this processor (timeout, or the run was
              invalidated and stopped early)
  orphaned    the daemon itself died (SIGKILL) while this run was in progress

How the end of a run is seen even when the processor is killed: the process
the daemon starts (A) forks the worker (B) and waits for it. B does the work
and watches, every 20 ms, that A is still its parent (else A was killed:
`cancelled`) and that A's parent is still the daemon (else the daemon died:
`orphaned`), and logs the end either way before it exits. Standard library
only; Linux (/proc).
"""

import json
import os
import random
import sys
import time

job = json.load(sys.stdin)
LOG = os.environ.get("CHAOS_RUN_LOG", "")
WORKER = os.environ.get("CHAOS_WORKER", "?")
DAEMON = os.getppid()
lo, hi = (int(x) for x in os.environ.get("CHAOS_WORK_MS", "100,800").split(","))
RETRYABLE_RATE = float(os.environ.get("CHAOS_RETRYABLE_RATE", "0"))

key = job.get("key") or {}
pk = str(key.get("pk", ""))
prefix = f"triggeredCache_{job.get('set')}_"
record = job.get("record") or {}
# A recompute: the item already holds a committed value of this very epoch
# (a background refresh, `refresh_after`, finds it READY; a claim after the
# ttl keeps the epoch). Its runs form a generation of their own, named by
# the readyAt of the value they replace (tests/chaos/checker_runs.py).
recompute = record.get(prefix + "valueEpoch") == job.get("epoch") and job.get("epoch") is not None
base = {
    "run": f"{WORKER}.{os.getpid()}.{time.time_ns() % 10**12}",  # A's pid
    "key": pk,
    "set": job.get("set"),
    "epoch": job.get("epoch"),
    "rid": job.get("requestId"),
    "worker": WORKER,
    "attempts": record.get(prefix + "attempts"),
    "gen": record.get(prefix + "readyAt") if recompute else None,
    "refresh": record.get(prefix + "status") == "READY",
}


def log(ev: str, **extra) -> None:
    if not LOG:
        return
    line = json.dumps(dict(base, ev=ev, t=time.time(), **extra)) + "\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # pid (comm) state ppid ...; comm may contain spaces.
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


A_PID = os.getpid()
child = os.fork()
if child:
    # A: wait for B and pass on its exit code.
    _, status = os.waitpid(child, 0)
    os._exit(os.waitstatus_to_exitcode(status))

# B: the work. It logs the start itself (A may be killed at any moment,
# even before this line) and compares its parent with A's pid taken before
# the fork, so a kill of A is seen however early it came.
me_parent = A_PID
log("start")
deadline = time.monotonic() + random.uniform(lo, hi) / 1000.0
while time.monotonic() < deadline:
    time.sleep(0.02)
    if os.getppid() != me_parent:
        log("end", outcome="cancelled")
        os._exit(0)
    if parent_of(me_parent) != DAEMON:
        log("end", outcome="orphaned")
        os._exit(0)

if pk.startswith("poison#"):
    log("end", outcome="permanent")
    sys.stderr.write("poisoned on purpose by the chaos driver\n")
    sys.stderr.flush()
    os._exit(1)
if RETRYABLE_RATE and random.random() < RETRYABLE_RATE:
    log("end", outcome="retryable")
    sys.stderr.write("transient failure on purpose (CHAOS_RETRYABLE_RATE)\n")
    sys.stderr.flush()
    os._exit(75)

value = {
    "key": pk,
    "set": job.get("set"),
    "epoch": job.get("epoch"),
    "requestId": job.get("requestId"),
    "run": base["run"],
    "worker": WORKER,
}
answer = {"value": value}
if job.get("set") == "summary":
    # A dependency, so that dependency triggers reset real caches.
    answer["dependsOn"] = [f"product#{sum(map(ord, pk)) % 5}"]
log("end", outcome="ok")
sys.stdout.write(json.dumps(answer))
sys.stdout.flush()
os._exit(0)
