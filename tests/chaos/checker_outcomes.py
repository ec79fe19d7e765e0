"""The checks of what the daemons published and left behind
(tests/chaos/checker.py): invariant 2 (no stale data, in the events and in
the table), 3 (no lost request: every request answered or dead-lettered
with a reason), 4 (no stuck cache) and that the DLQ holds exactly what was
poisoned on purpose.

A mixin of Check: it uses its events, sent, table, dlq, meta, figures and
fail().
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from checker_runfiles import PREFIX, at_ms, pk_of


class OutcomeChecks:
    """Invariants 2, 3 and 4 and the DLQ, from the events, the table and the DLQ."""

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
        stale_answers = 0
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
            # serve_stale: a hit marked stale carries an earlier value; it
            # must say which epoch that value is (never an unmarked one).
            value_epoch = epoch
            if e.get("stale") is True:
                stale_answers += 1
                value_epoch = e.get("valueEpoch")
                if kind != "hit" or value_epoch is None or value_epoch > epoch:
                    stale_events += 1
                    self.fail("2 no stale data", {"stale answer": e})
            bad = (
                value.get("epoch") != value_epoch
                or value.get("key") != key
                or value.get("set") != set_
                or (rec_epoch is not None and rec_epoch != epoch)
            )
            if bad:
                stale_events += 1
                self.fail("2 no stale data", {"event": e})
            if kind == "ready" and value.get("run"):
                committed[(key, set_, epoch)].add(value["run"])
        # At most one committed value per generation of an epoch: checked
        # with the runs' log (checker_runs.py, check_generations).
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
        self.figures["stale answers, marked (serve_stale)"] = stale_answers
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
