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
import math
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

PREFIX = "triggeredCache"
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


def load(path: Path) -> list[dict]:
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line cut short by a SIGKILL
    return out


def at_ms(text: str | None) -> int:
    if not text:
        return 0
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def pk_of(key) -> str:
    return str((key or {}).get("pk", ""))


def span_key(line: dict) -> str:
    k = (line.get("span") or {}).get("key", "")
    return k[3:] if k.startswith("pk=") else k


class Check:
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

    def takeovers(self) -> set[tuple[str, str, str]]:
        """(key, set, new owner) of every logged takeover."""
        out = set()
        for l in self.logs:
            if "lease takeover" in str(l.get("message", "")):
                span = l.get("span") or {}
                out.add((span_key(l), span.get("set", ""), span.get("request_id", "")))
        return out

    def runs(self) -> list[dict]:
        by_id: dict[str, dict] = {}
        for r in self.runlog:
            cur = by_id.setdefault(r["run"], {"run": r["run"]})
            if r["ev"] == "start":
                cur.update({k: r.get(k) for k in ("key", "set", "epoch", "rid", "worker", "attempts")})
                cur["start"] = r["t"]
            else:
                cur["end"] = r["t"]
                cur["outcome"] = r.get("outcome")
        return [r for r in by_id.values() if "start" in r]

    def check_runs(self, committed: dict[tuple, set]) -> None:
        runs = self.runs()
        takeovers = self.takeovers()
        outcomes = Counter(r.get("outcome", "no end recorded") for r in runs)
        groups: dict[tuple, list] = defaultdict(list)
        for r in runs:
            groups[(r["key"], r["set"], r["epoch"])].append(r)
        sizes = Counter(len(g) for g in groups.values())
        why_more = Counter()
        overlaps_after_takeover = 0
        for gkey, g in groups.items():
            g.sort(key=lambda r: r["start"])
            committed_runs = committed.get(gkey, set())
            for i, r in enumerate(g):
                if "end" not in r:
                    self.fail("1 one processor", {"run without an end record": r})
                if i == 0:
                    continue
                earlier = g[:i]
                for p in earlier:
                    if p.get("end", math.inf) > r["start"]:
                        if (r["key"], r["set"], r["rid"]) in takeovers and p["rid"] != r["rid"]:
                            overlaps_after_takeover += 1
                        else:
                            self.fail("1 one processor", {"overlapping runs": [p, r]})
                    if p["run"] in committed_runs and p.get("end", math.inf) <= r["start"]:
                        self.fail("5 idempotent retries", {"run after its epoch was committed": [p, r]})
                prev = max(earlier, key=lambda p: p.get("end", math.inf))
                same = "same request" if prev["rid"] == r["rid"] else "another request"
                if (r["key"], r["set"], r["rid"]) in takeovers and prev["rid"] != r["rid"]:
                    why = "a takeover of a lapsed lease"
                else:
                    why = {
                        "orphaned": "its worker was killed",
                        "cancelled": "the run was cancelled",
                        "retryable": "a retryable failure",
                        "permanent": "a permanent failure (FAILED, claimed again)",
                        "ok": "a result that was not committed",
                    }.get(prev.get("outcome"), "an overlap")
                why_more[f"after {why} ({same})"] += 1
        # Invariant 1 as a figure: the most runs of one (key, set, epoch)
        # in progress at the same moment (1 unless a lease was taken over).
        max_at_once = 0
        for g in groups.values():
            edges = sorted(
                [(r["start"], 1) for r in g] + [(r.get("end", math.inf), -1) for r in g],
                key=lambda e: (e[0], e[1]),
            )
            now = 0
            for _, d in edges:
                now += d
                max_at_once = max(max_at_once, now)
        self.figures["processing runs"] = {
            "total": len(runs),
            "by outcome": dict(outcomes),
            "(key, set, epoch) groups": len(groups),
            "groups by number of runs": dict(sorted(sizes.items())),
            "max runs in one group": max(sizes) if sizes else 0,
            "max runs of one group in progress at once (1 unless after a takeover)": max_at_once,
            "further runs, and what came before them": dict(why_more.most_common()),
            "overlapping runs after a takeover": overlaps_after_takeover,
        }

    def check_events(self) -> dict[tuple, set]:
        """Invariant 2 and duplicates; returns the committed runs per epoch."""
        ids = Counter(e.get("eventId") for e in self.events)
        kinds = Counter(e.get("event") for e in self.events)
        distinct_kinds = Counter()
        seen = set()
        for e in self.events:
            if e.get("eventId") not in seen:
                seen.add(e.get("eventId"))
                distinct_kinds[e.get("event")] += 1
        committed: dict[tuple, set] = defaultdict(set)
        stale_events = 0
        for e in self.events:
            kind = e.get("event")
            if kind not in ("ready", "hit"):
                continue
            key, set_, epoch = pk_of(e.get("key")), e.get("set"), e.get("epoch")
            value = e.get("value") or {}
            record = e.get("record") or {}
            rec_epoch = record.get(f"{PREFIX}_{set_}_epoch")
            if e.get("truncated"):
                continue
            bad = (
                value.get("epoch") != epoch
                or value.get("key") != key
                or value.get("set") != set_
                or (rec_epoch is not None and rec_epoch != epoch)
            )
            if bad:
                stale_events += 1
                self.fail("2 no stale data", {"event": e})
            if kind == "ready" and value.get("run"):
                committed[(key, set_, epoch)].add(value["run"])
        for gkey, runs in committed.items():
            if len(runs) > 1:
                self.fail("2 no stale data", {"two different READY values for one epoch": [gkey, sorted(runs)]})
        stale_table = 0
        stuck = []
        for item in self.table:
            for set_ in ("summary", "invoice", "status"):
                p = f"{PREFIX}_{set_}_"
                status = item.get(p + "status")
                if status == "READY":
                    value = item.get(p + "value") or {}
                    if value.get("epoch") != item.get(p + "epoch"):
                        stale_table += 1
                        self.fail("2 no stale data", {"item": item.get("pk"), "set": set_})
                    if value.get("run"):
                        committed[(item.get("pk"), set_, item.get(p + "epoch"))].add(value["run"])
                if status in ("PROCESSING", "TRIGGERED"):
                    stuck.append((item.get("pk"), set_, status))
        for s in stuck:
            self.fail("4 no stuck cache", {"left": s})
        self.figures["events"] = {
            "received": len(self.events),
            "by kind": dict(kinds),
            "distinct (by eventId)": len(seen),
            "duplicates (same eventId, de-duplicable)": len(self.events) - len(seen),
            "distinct by kind": dict(distinct_kinds),
        }
        self.figures["READY values of an old epoch"] = {"in events": stale_events, "in the table": stale_table}
        self.figures["caches left PROCESSING or TRIGGERED"] = len(stuck)
        self.figures["items in the table"] = len(self.table)
        return committed

    def check_requests(self, dlq_ids: set[str]) -> None:
        probe_ms = int(self.meta.get("probe_start", 0) * 1000)
        answers: dict[tuple, list[int]] = defaultdict(list)
        by_rid: dict[str, list[int]] = defaultdict(list)
        for e in self.events:
            if e.get("event") not in ("hit", "ready", "failed"):
                continue
            t = at_ms(e.get("at"))
            answers[(pk_of(e.get("key")), e.get("set"))].append(t)
            for rid in [e.get("requestId"), *(e.get("coalesced") or [])]:
                if rid:
                    by_rid[rid].append(t)
        for v in answers.values():
            v.sort()
        reqs = [s for s in self.sent if s["kind"] in ("request", "probe", "poison")]
        tally = Counter()
        for s in reqs:
            sent_ms = math.floor(s["t"] * 1000)
            own = [t for t in by_rid.get(s["rid"], []) if t >= sent_ms]
            later = [t for t in answers.get((s["key"], s["set"]), []) if t >= sent_ms]
            if own:
                tally["answered by an event naming it (requestId or coalesced)"] += 1
            elif later:
                tally["answered by a later event for its key and set"] += 1
            elif s["mid"] in dlq_ids:
                tally["dead-lettered"] += 1
            else:
                tally["unanswered"] += 1
                self.fail("3 no lost request", s)
            if s["kind"] != "probe" and probe_ms and (own or later):
                if min(own + later) >= probe_ms:
                    tally["answered only by the final probe"] += 1
        probes = [s for s in reqs if s["kind"] == "probe"]
        unanswered_probes = [
            s for s in probes
            if not any(t >= math.floor(s["t"] * 1000) for t in answers.get((s["key"], s["set"]), []))
        ]
        for s in unanswered_probes:
            self.fail("4 no stuck cache", {"probe unanswered": s})
        self.figures["requests"] = {
            "sent (requests, herds, poisoned, probes)": len(reqs),
            **{k: tally.get(k, 0) for k in (
                "answered by an event naming it (requestId or coalesced)",
                "answered by a later event for its key and set",
                "dead-lettered",
                "unanswered",
                "answered only by the final probe",
            )},
            "probes": len(probes),
            "probes unanswered": len(unanswered_probes),
        }

    def check_dlq(self) -> set[str]:
        ids = Counter()
        with_reason = 0
        reasons = Counter()
        for d in self.dlq:
            a = d.get("attributes") or {}
            src = a.get("sourceMessageId") or d["mid"]
            ids[src] += 1
            if a.get("error"):
                with_reason += 1
                reasons[a.get("deadLetterKind") or a.get("errorKind", "?")] += 1  # errorKind: its name before
            else:
                self.fail("3 no lost request", {"dead-lettered without a reason (SQS redrive)": d})
        expected = {s["mid"]: s for s in self.sent if s["kind"] in ("poison", "malformed")}
        unexpected = [i for i in ids if i not in expected]
        missing = [expected[i] for i in expected if i not in ids]
        for i in unexpected:
            sent = next((s for s in self.sent if s["mid"] == i), {"mid": i})
            self.fail("DLQ holds only what was poisoned on purpose", {"unexpected": sent})
        for s in missing:
            self.fail("DLQ holds only what was poisoned on purpose", {"missing": s})
        self.figures["DLQ"] = {
            "messages": len(self.dlq),
            "distinct source messages": len(ids),
            "expected (poisoned requests + malformed messages sent)": len(expected),
            "with a reason (error attribute)": with_reason,
            "by deadLetterKind": dict(reasons),
            "duplicates (same source message twice)": len(self.dlq) - len(ids),
            "unexpected": len(unexpected),
            "missing": len(missing),
        }
        return set(ids)

    def check_kills(self) -> None:
        why = Counter(k["why"] for k in self.kills)
        with_runs = sum(1 for k in self.kills if k.get("open_runs"))
        abandoned = [
            a for a in self.proxy.get("abandoned", []) if a.get("event") == "ready"
        ]
        event_ids = {e.get("eventId") for e in self.events}
        republished = [a for a in abandoned if a.get("eventId") in event_ids]
        superseded = []
        for a in abandoned:
            if a.get("eventId") in event_ids:
                continue
            # The owner's message came back after a trigger had moved the
            # epoch on: the redelivery handles the request in the new epoch
            # (claim, park, or leave it to the new owner) and a later event
            # answers it. The old epoch's value is no longer valid, so not
            # re-publishing it is right.
            key, set_, epoch = pk_of(a.get("key")), a.get("set"), a.get("epoch")
            later = [
                e for e in self.events
                if pk_of(e.get("key")) == key and e.get("set") == set_
                and e.get("event") in ("hit", "ready", "failed")
                and (e.get("epoch") or 0) > epoch
            ]
            if later:
                superseded.append(a)
            else:
                self.fail("5 idempotent retries", {"ready event lost after a kill between commit and publish": a})
        self.figures["kills"] = {
            "SIGKILLs": len(self.kills),
            "by target": dict(why),
            "kills with processing runs in progress": with_runs,
            "runs in progress at a kill": sum(len(k.get("open_runs", [])) for k in self.kills),
            "ready events caught between commit and publish (held, never sent)": len(abandoned),
            "of those, published later with the same eventId": len(republished),
            "of those, superseded by a trigger before the redelivery (answered in a later epoch)": len(superseded),
            "worker processes started": sum((self.meta.get("incarnations") or {}).values()),
        }

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
