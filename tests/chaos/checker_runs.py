"""The checks of the processing runs and the kills (tests/chaos/checker.py):
invariant 1 (one processor per key, set and epoch, unless a lapsed lease was
taken over) and invariant 5 (no run after its epoch's result was committed;
every ready event a kill caught between commit and publish is published
later with the same eventId, or superseded by a trigger).

An epoch whose value was committed may be computed again, legitimately: a
background refresh (`refresh_after`) or a claim after the ttl keeps the
epoch. The processor logs such a run with `gen`, the readyAt of the value it
replaces, so the runs are checked per generation (key, set, epoch, gen):
the first computation of an epoch is generation None. Within a generation
the invariants are the same; a refresh and a claim after the ttl have
leases of their own, so they may overlap each other (the claim fences the
refresh's commit) but not themselves.

A mixin of Check: it uses its logs, runlog, kills, events, proxy, meta,
figures and fail().
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from checker_runfiles import at_ms, pk_of, span_key


class RunChecks:
    """Invariants 1 and 5, from runs.jsonl, kills.jsonl and the daemons' logs."""

    def takeovers(self) -> set[tuple[str, str, str]]:
        """(key, set, new owner) of every logged takeover (of a run's lease
        or of a refresh's)."""
        out = set()
        for l in self.logs:
            if "takeover: " in str(l.get("message", "")):
                span = l.get("span") or {}
                out.add((span_key(l), span.get("set", ""), span.get("request_id", "")))
        return out

    def runs(self) -> list[dict]:
        by_id: dict[str, dict] = {}
        for r in self.runlog:
            cur = by_id.setdefault(r["run"], {"run": r["run"]})
            if r["ev"] == "start":
                cur.update({k: r.get(k) for k in ("key", "set", "epoch", "rid", "worker", "attempts", "gen", "refresh")})
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
            groups[(r["key"], r["set"], r["epoch"], r.get("gen"))].append(r)
        self.check_generations(committed, groups)
        sizes = Counter(len(g) for g in groups.values())
        why_more = Counter()
        overlaps_after_takeover = 0
        refresh_claim_overlaps = 0
        for gkey, g in groups.items():
            g.sort(key=lambda r: r["start"])
            committed_runs = committed.get(gkey[:3], set())
            for i, r in enumerate(g):
                if "end" not in r:
                    self.fail("1 one processor", {"run without an end record": r})
                if i == 0:
                    continue
                earlier = g[:i]
                for p in earlier:
                    kinds_apart = bool(p.get("refresh")) != bool(r.get("refresh"))
                    if p.get("end", math.inf) > r["start"] and kinds_apart:
                        refresh_claim_overlaps += 1
                    elif p.get("end", math.inf) > r["start"]:
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
        # Invariant 1 as a figure: the most runs of one (key, set, epoch,
        # generation) and kind in progress at the same moment (1 unless a
        # lease was taken over).
        max_at_once = 0
        by_kind = defaultdict(list)
        for gkey, g in groups.items():
            for r in g:
                by_kind[gkey + (bool(r.get("refresh")),)].append(r)
        for g in by_kind.values():
            edges = sorted(
                [(r["start"], 1) for r in g] + [(r.get("end", math.inf), -1) for r in g],
                key=lambda e: (e[0], e[1]),
            )
            now = 0
            for _, d in edges:
                now += d
                max_at_once = max(max_at_once, now)
        recomputes = [r for r in runs if r.get("gen") is not None]
        self.figures["processing runs"] = {
            "total": len(runs),
            "by outcome": dict(outcomes),
            "recomputes of a committed epoch": {
                "background refreshes (refresh_after)": sum(1 for r in recomputes if r.get("refresh")),
                "claims after the ttl": sum(1 for r in recomputes if not r.get("refresh")),
            },
            "(key, set, epoch, generation) groups": len(groups),
            "groups by number of runs": dict(sorted(sizes.items())),
            "max runs in one group": max(sizes) if sizes else 0,
            "max runs of one group in progress at once (1 unless after a takeover)": max_at_once,
            "further runs, and what came before them": dict(why_more.most_common()),
            "overlapping runs after a takeover": overlaps_after_takeover,
            "a refresh overlapping a claim after the ttl (the claim fences it)": refresh_claim_overlaps,
        }

    def check_generations(self, committed: dict[tuple, set], groups: dict[tuple, list]) -> None:
        """Invariant 2 per generation: of the committed values of one epoch,
        at most one per generation (the first computation, then one per
        refresh or claim after the ttl, each replacing the one before)."""
        gen_of = {r["run"]: gkey for gkey, g in groups.items() for r in g}
        for ekey, runs in committed.items():
            per_gen = Counter(gen_of.get(run, ekey + (None,)) for run in runs)
            for gkey, n in per_gen.items():
                if n > 1:
                    self.fail("2 no stale data", {
                        "two different READY values for one generation of an epoch":
                        [gkey, sorted(r for r in runs if gen_of.get(r, ekey + (None,)) == gkey)],
                    })

    def check_kills(self) -> None:
        why = Counter(k["why"] for k in self.kills)
        with_runs = sum(1 for k in self.kills if k.get("open_runs"))
        abandoned = [
            a for a in self.proxy.get("abandoned", []) if a.get("event") == "ready"
        ]
        event_ids = {e.get("eventId") for e in self.events}
        # The start of every recompute of a committed epoch, by run.
        recomputes = {r["run"]: r["start"] for r in self.runs() if r.get("gen") is not None}
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
            # Or the value was recomputed in the same epoch before the
            # redelivery (a refresh, or a claim after the ttl): the
            # redelivery answers with the newer value, and re-publishing
            # the replaced one would announce a value no longer cached.
            later_value = [
                e for e in self.events
                if pk_of(e.get("key")) == key and e.get("set") == set_
                and e.get("event") in ("hit", "ready") and e.get("epoch") == epoch
                and at_ms(e.get("at")) >= a.get("held_at", 0) * 1000
                and recomputes.get((e.get("value") or {}).get("run"), -1) >= a.get("held_at", 0)
            ]
            if later or later_value:
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
            "of those, superseded before the redelivery (a trigger, or a recompute of the epoch)": len(superseded),
            "worker processes started": sum((self.meta.get("incarnations") or {}).values()),
        }
