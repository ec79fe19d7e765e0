#!/usr/bin/env python3
"""Checks a chaos or fault run against invariants 1-5 of DESIGN §5.

  checker.py RUN_DIR [--json]

Reads what tests/chaos/driver.py collected in RUN_DIR:
  sent.jsonl    every message sent (kind, key, set, request id, MessageId, time)
  events.jsonl  every completion event received on the subscribed events queue
  runs.jsonl    every processing run's start and end (tests/chaos/processor.py)
  kills.jsonl   every SIGKILL (worker, why, runs in progress, held ready events)
  dlq.jsonl     the dead-letter queue's messages with their attributes
  table.jsonl   the table at the end
  logs/*.log    the daemons' JSON logs, one file per process
  proxy.json    the fault proxy's record (faults injected, abandoned publishes)
  meta.json     the run's parameters and timings

and prints the figures, the invariant checks and examples of any violation.
Writes RUN_DIR/summary.json. Exit code 0 when every invariant holds.

The invariants as checked:
 1 one processor: for one (key, set, epoch), no two processing runs are in
   progress at once unless the later one took over a lapsed lease (logged);
   every further run of an epoch follows a run that ended without a
   committed result (crash, cancel, retryable or permanent failure).
 2 no stale data: every ready/hit event and every READY item carries a value
   computed for the epoch it is marked READY at.
 3 no lost request: every request is answered by a hit/ready/failed event
   for its (key, set) published after it was sent (its own, one that lists
   it in `coalesced`, or any later one: losers of a claim are answered by the
   winner), or is in the DLQ with a reason.
 4 no stuck cache: at the end nothing is PROCESSING or TRIGGERED, the queue
   is empty, and a probe request per cache is answered.
 5 idempotent retries: no run of an epoch starts after that epoch's result
   was committed; every ready event a kill caught between commit and publish
   is published later with the same eventId; duplicates are counted.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

# The checks, by what they read (the code that reads a run directory is in
# checker_runfiles.py):
from checker_outcomes import OutcomeChecks  # invariants 2, 3, 4; the DLQ
from checker_runfiles import load
from checker_runs import RunChecks  # invariants 1 and 5

LOG_PATHS = {
    "lease takeovers": "lease takeover: the owner's lease had lapsed",
    "stale results discarded (trigger during a run)": "a trigger landed during the run",
    "runs stopped early by a rejected lease renewal": "lease renewal rejected",
    "redeliveries continuing the owner's run": "redelivery of the owner's message; continuing the run",
    "ready events re-published after a commit": "redelivery after commit; re-publishing the ready event",
    "results discarded after a takeover": "another request took over this run",
    "requests parked behind a trigger flow": "parked as the awaiting step",
    "trigger flows past their deadline": "trigger flow passed its deadline",
    "messages dead-lettered by the daemon": "message dead-lettered",
    "handling failures (AWS errors), message retried": "handling failed; the message will come back",
    "receive failures": "receive failed",
    "lease renewal failures": "lease renewal failed",
    "messages left after max_rehandles": "the state kept moving",
    "handler panics": "handler panicked",
}


class Check(RunChecks, OutcomeChecks):
    """One run directory, its figures and the violations found."""

    def __init__(self, run: Path):
        self.run = run
        self.meta = json.loads((run / "meta.json").read_text()) if (run / "meta.json").exists() else {}
        self.sent = load(run / "sent.jsonl")
        self.events = load(run / "events.jsonl")
        self.runlog = load(run / "runs.jsonl")
        self.kills = load(run / "kills.jsonl")
        self.dlq = load(run / "dlq.jsonl")
        self.table = load(run / "table.jsonl")
        self.proxy = json.loads((run / "proxy.json").read_text()) if (run / "proxy.json").exists() else {}
        self.logs: list[dict] = []
        for p in sorted((run / "logs").glob("*.log")):
            for line in load(p):
                line["_worker"] = p.stem
                self.logs.append(line)
        self.figures: dict = {}
        self.violations: dict[str, list] = defaultdict(list)

    def fail(self, inv: str, example) -> None:
        self.violations[inv].append(example)

    # --- the pieces ---------------------------------------------------------

    def log_counts(self) -> dict:
        counts = {}
        for name, needle in LOG_PATHS.items():
            counts[name] = sum(1 for l in self.logs if needle in str(l.get("message", "")))
        counts["ERROR lines"] = sum(1 for l in self.logs if l.get("level") == "ERROR")
        return counts

    def summary(self) -> dict:
        dlq_ids = self.check_dlq()
        committed = self.check_events()
        self.check_runs(committed)
        self.check_requests(dlq_ids)
        self.check_kills()
        kinds = Counter(s["kind"] for s in self.sent)
        self.figures = {
            "mode": self.meta.get("mode"),
            "seed": (self.meta.get("args") or {}).get("seed"),
            "duration of sending (s)": (self.meta.get("args") or {}).get("duration"),
            "whole run (s)": round(self.meta.get("finished", 0) - self.meta.get("started", 0), 1),
            "messages sent": {"total": len(self.sent), **dict(kinds)},
            **self.figures,
        }
        self.figures["paths exercised (daemon logs)"] = self.log_counts()
        if self.proxy:
            counts = self.proxy.get("counts", {})
            by_kind = Counter()
            for k, v in counts.items():
                by_kind[k.split(":")[0]] += v
            self.figures["fault proxy"] = {
                "requests": sum(self.proxy.get("requests", {}).values()),
                "injected": dict(by_kind),
                "outages": [round(o["seconds"], 1) for o in self.proxy.get("outages", [])],
            }
        exits = self.meta.get("exits", [])
        bad_exits = [e for e in exits if e.get("exit") != 0]
        self.figures["exit codes at SIGTERM"] = {str(e["exit"]): sum(1 for x in exits if x["exit"] == e["exit"]) for e in exits}
        for e in bad_exits:
            self.fail("6 nothing lost on shutdown (exit 0)", e)
        if not self.meta.get("drained", True) or not self.meta.get("drained_after_probe", True):
            self.fail("4 no stuck cache", "the request queue did not drain within the settle timeout")
        if self.figures["paths exercised (daemon logs)"].get("handler panics"):
            self.fail("no panics", "a handler panicked (see the logs)")
        takeovers_metric = 0
        for text in (self.meta.get("metrics") or {}).values():
            for line in text.splitlines():
                if line.startswith("triggered_cache_lease_takeovers_total"):
                    takeovers_metric += int(float(line.rsplit(" ", 1)[1]))
        self.figures["lease takeovers (metric of the processes alive at the end)"] = takeovers_metric
        return {
            "figures": self.figures,
            "violations": {k: v[:10] for k, v in self.violations.items()},
            "violation counts": {k: len(v) for k, v in self.violations.items()},
            "ok": not self.violations,
        }


def render(fig: dict, indent: int = 0) -> list[str]:
    lines = []
    for k, v in fig.items():
        if isinstance(v, dict):
            lines.append(" " * indent + f"{k}:")
            lines += render(v, indent + 2)
        else:
            lines.append(" " * indent + f"{k}: {v}")
    return lines


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    run = Path(sys.argv[1])
    s = Check(run).summary()
    (run / "summary.json").write_text(json.dumps(s, indent=1, default=str))
    if "--json" in sys.argv:
        print(json.dumps(s, indent=1, default=str))
    else:
        print("\n".join(render(s["figures"])))
        print()
        invariants = [
            "1 one processor", "2 no stale data", "3 no lost request", "4 no stuck cache",
            "5 idempotent retries", "DLQ holds only what was poisoned on purpose",
            "6 nothing lost on shutdown (exit 0)", "no panics",
        ]
        for inv in invariants:
            n = s["violation counts"].get(inv, 0)
            print(f"{'PASS' if n == 0 else 'FAIL'}  {inv}" + (f": {n} violations" if n else ""))
        for inv, examples in s["violations"].items():
            print(f"\n{inv}: first examples")
            for ex in examples[:5]:
                print("  " + json.dumps(ex, default=str)[:600])
        print(f"\n{'ALL INVARIANTS HOLD' if s['ok'] else 'INVARIANTS VIOLATED'} (details: {run / 'summary.json'})")
    return 0 if s["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
