#!/usr/bin/env python3
"""The benchmark of triggered-cache (normally started by scripts/bench.sh,
which builds the binaries and starts the emulator; see its --help).

Every mode gets fresh resources (queue, DLQ, table, topic, events queue);
each process under test talks to the emulator through its own listener of
a counting proxy (tests/chaos/faultproxy.py, no faults), so the AWS calls
of the daemon and of the floor are counted the same way. The daemon's own
count, the metric triggered_cache_aws_requests_total, is used instead when
its /metrics has it; the report says which source each figure came from.

  hit    the keys are computed once first (not measured), then N requests
  miss   N requests over cold keys (each key computed once, on its first
         request; the rest are hits or coalesce with the run)
  herd   N requests for one cold key at once, 3 daemon replicas: 1 run
  soak   N hits at a wide window, RSS and the messages the daemon holds
         sampled: is RSS flat (outside a peak of messages held)?

Measured per mode, for the daemon and beside it the raw-SDK floor
(benches/floor.rs) and, with --baseline, another build of the daemon (an
earlier commit) run alternately with it, --rounds times each (A B B A...:
the emulator's speed drifts, so only alternating runs compare): AWS calls
per message by operation, CPU per message (utime+stime of the process,
delta over the measured run), context switches per message (all threads,
/proc/PID/task/*/status), peak RSS (VmHWM), messages/s, p50/p99
send->event latency, processing runs per key. Against the baseline the
report gives the ratios of the medians and, for CPU, the ratio within each
pair of neighbouring runs. Before the first hit/miss run, an unmeasured
daemon run (--warmup requests) warms the fresh emulator, which answers
its first calls slower.
--check asserts correctness only (every request answered, one run per key,
nothing dead-lettered) and exits 1 otherwise; it never asserts timings.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402
from load import Load, Proxy, Subject, log  # noqa: E402


class Bench:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(args.seed)
        self.proxy = Proxy(args.endpoint, ["d0", "d1", "d2", "floor"], self.out)
        self.results: list[dict] = []
        self.failures: list[str] = []

    def listener(self, wid: str) -> str:
        return f"http://127.0.0.1:{self.proxy.listeners[wid]}"

    def start(self, kind: str, env: dict, wid: str, out: Path, window: int,
              concurrency: int) -> Subject:
        a = self.args
        binary = {"daemon": a.binary, "baseline": a.baseline, "floor": a.floor}[kind]
        s = Subject(kind, binary, env, self.listener("floor" if kind == "floor" else wid), out,
                    wid, concurrency, max(1, -(-window // 10)), a.work_ms)
        s.wait_ready()
        return s

    def calls(self, subjects: list[Subject]) -> tuple[Counter, str]:
        """The calls so far: the daemons' metric if they have it, else the proxy."""
        if all(s.kind != "floor" for s in subjects):
            total: Counter = Counter()
            for s in subjects:
                c = load.metric_counts(s.metrics())
                if c is None:
                    break
                total += c
            else:
                return total, "metric"
        return self.proxy.counts(), "proxy"

    def measure(self, mode: str, kind: str, replicas: int, keys: list[str], warm: list[str],
                window: int, sample_rss: bool = False, concurrency: int = 0,
                record: bool = True, rate: float = 0) -> dict:
        a = self.args
        name = f"bench-{mode}-{kind}-{self.rng.getrandbits(24):06x}"
        out = self.out / f"{mode}-{kind}-{sum(r['mode'] == mode for r in self.results)}"
        out.mkdir(exist_ok=True)
        env = load.provision(a.endpoint, name)
        lo = Load(env, a.endpoint, out, collectors=max(2, min(8, window // 64)))
        concurrency = concurrency or max(a.concurrency, window)
        subjects = [self.start(kind, env, "floor" if kind == "floor" else f"d{i}", out, window,
                               concurrency) for i in range(replicas)]
        try:
            if warm:
                w = lo.run(warm, window=min(window, 20), timeout=a.timeout, tag=f"{mode}-warm")
                if w["answered"] < w["sent"]:
                    self.failures.append(f"{mode}/{kind}: warm-up answered {w['answered']} of {w['sent']}")
            proxy0, cpu0 = self.proxy.counts(), sum(load.cpu_seconds(s.pid) for s in subjects)
            ctx0 = sum(load.context_switches(s.pid) for s in subjects)
            calls0, source = self.calls(subjects)
            samples: list[tuple[float, int]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=self.sample, args=(subjects[0], samples, stop),
                                       daemon=True)
            if sample_rss:
                sampler.start()
            r = lo.run(keys, window=window, timeout=a.timeout + len(keys) / 20, tag=mode, rate=rate)
            stop.set()
            calls1, _ = self.calls(subjects)
            cpu1 = sum(load.cpu_seconds(s.pid) for s in subjects)
            ctx1 = sum(load.context_switches(s.pid) for s in subjects)
            proxy1 = self.proxy.counts()
            hwm = max(load.status_kib(s.pid, "VmHWM") for s in subjects)
            dlq = lo.dead_lettered()
        finally:
            for s in subjects:
                s.stop()
            lo.close()
        runs = load.runs_per_key(out / "runs.jsonl")
        n = r["answered"] or 1
        by_op = {op: c / n for op, c in sorted((calls1 - calls0).items()) if c > 0}
        res = dict(r, mode=mode, subject=kind, replicas=replicas,
                   window=f"{rate:g}/s" if rate else window, source=source,
                   calls_per_msg=by_op, calls_total_per_msg=sum(by_op.values()),
                   proxy_calls_per_msg=sum((proxy1 - proxy0).values()) / n,
                   cpu_us_per_msg=(cpu1 - cpu0) * 1e6 / n, peak_rss_mb=hwm / 1024,
                   ctx_switches_per_msg=(ctx1 - ctx0) / n,
                   msgs_per_s=r["answered"] / r["seconds"], keys=len(set(keys) | set(warm)),
                   runs=sum(runs.values()), max_runs_per_key=max(runs.values(), default=0),
                   dead_lettered=dlq)
        res["runs_per_key"] = res["runs"] / res["keys"]
        if not record:
            log(f"warm-up ({kind}, not measured): {r['answered']}/{r['sent']} answered in "
                f"{r['seconds']:.1f}s")
            return res
        if samples:
            res["rss_samples_mb"] = [(round(t, 1), round(k / 1024, 1)) for t, k, _ in samples]
            res["in_flight_samples"] = [(round(t, 1), m) for t, _, m in samples]
        self.results.append(res)
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))
        log(f"{mode}/{kind}: {r['answered']}/{r['sent']} answered in {r['seconds']:.1f}s, "
            f"{res['calls_total_per_msg']:.2f} calls/msg ({source}), "
            f"{res['cpu_us_per_msg']:.0f} us CPU/msg, "
            f"{res['ctx_switches_per_msg']:.2f} context switches/msg, {res['runs']} runs")
        return res

    def sample(self, subject, samples: list, stop: threading.Event) -> None:
        """Every 0.5 s: the subject's RSS, and how many messages it holds
        (its in-flight gauge; None without one)."""
        t0 = time.monotonic()
        while not stop.wait(0.5):
            try:
                rss = load.status_kib(subject.pid, "VmRSS")
            except OSError:
                return
            try:
                held = load.metric_value(subject.metrics(), "triggered_cache_in_flight")
            except OSError:
                held = None
            samples.append((time.monotonic() - t0, rss, held))

    def check(self, res: dict, herd: bool = False) -> None:
        tag = f"{res['mode']}/{res['subject']}"
        if res["answered"] < res["sent"]:
            self.failures.append(f"{tag}: {res['sent'] - res['answered']} of {res['sent']} requests "
                                 f"got no completion event (e.g. {res['unanswered'][:3]}); see events.jsonl "
                                 "and the daemon logs in the run directory")
        if res["max_runs_per_key"] != 1 or res["runs"] != res["keys"]:
            self.failures.append(f"{tag}: {res['runs']} processing runs for {res['keys']} keys "
                                 f"(at most {res['max_runs_per_key']} for one key); expected one per key")
        if res["dead_lettered"]:
            self.failures.append(f"{tag}: {res['dead_lettered']} messages dead-lettered")

    def run(self) -> int:
        a = self.args
        keys = [f"k#{i:04d}" for i in range(a.keys)]
        pair = ["daemon"] + (["baseline"] if a.baseline else [])
        subjects = [k for i in range(a.rounds) for k in (pair if i % 2 == 0 else pair[::-1])]
        subjects += ["floor"] if a.floor else []
        try:
            if a.warmup and any(m in ("hit", "miss") for m in a.modes):
                # A fresh emulator answers its first thousand or so calls
                # slower; without this the first run (always --binary's,
                # in A B B A order) meets it cold and its batches fill less.
                ks = [f"warmup-{self.rng.getrandbits(16):04x}-{k}" for k in keys]
                self.measure("warmup", "daemon", 1, [self.rng.choice(ks) for _ in range(a.warmup)],
                             ks, a.inflight, record=False)
            for mode in a.modes:
                if mode in ("hit", "miss"):
                    for kind in subjects:
                        tag = f"{mode}-{self.rng.getrandbits(16):04x}"
                        ks = [f"{tag}-{k}" for k in keys]
                        load_keys = [self.rng.choice(ks) for _ in range(a.requests)]
                        res = self.measure(mode, kind, 1, load_keys, ks if mode == "hit" else [],
                                           a.inflight, rate=a.rate)
                        if kind != "floor" and mode == "miss":
                            self.check(res)
                elif mode == "herd":
                    res = self.measure("herd", "daemon", 3, ["herd#0"] * a.herd, [], a.herd,
                                       concurrency=a.concurrency)
                    self.check(res)
                elif mode == "soak":
                    ks = [f"soak-{k}" for k in keys]
                    load_keys = [self.rng.choice(ks) for _ in range(a.soak)]
                    self.measure("soak", "daemon", 1, load_keys, ks, a.soak_inflight, sample_rss=True)
        finally:
            self.proxy.stop()
        report(self.results, a)
        for f in self.failures:
            print(f"bench: FAILED: {f}", file=sys.stderr)
        return 1 if self.failures else 0


def report(results: list[dict], a) -> None:
    p = print
    p(f"\ntriggered-cache benchmark: hit/miss {a.requests} requests over {a.keys} keys, herd "
      f"{a.herd}, soak {a.soak}; {a.work_ms:g} ms processor; window = requests in flight "
      "(or a steady rate); "
      "AWS calls counted by "
      + ", ".join(sorted({f"{r['subject']}: {r['source']}" for r in results})))
    head = f"{'mode':5} {'subject':8} {'window':>6} {'answered':>11} {'msgs/s':>7} {'calls/msg':>9} " \
           f"{'CPU us/msg':>10} {'ctxsw/msg':>9} {'RSS MB':>6} {'p50 ms':>7} {'p99 ms':>7} {'runs/key':>8}"
    p(head)
    for r in results:
        p(f"{r['mode']:5} {r['subject']:8} {r['window']:>6} {r['answered']:>5}/{r['sent']:<5} {r['msgs_per_s']:7.0f} "
          f"{r['calls_total_per_msg']:9.2f} {r['cpu_us_per_msg']:10.0f} {r['ctx_switches_per_msg']:9.2f} "
          f"{r['peak_rss_mb']:6.1f} "
          f"{r['p50_ms']:7.1f} {r['p99_ms']:7.1f} {r['runs_per_key']:8.2f}")
    for r in results:
        ops = "  ".join(f"{op} {v:.3f}" for op, v in r["calls_per_msg"].items())
        p(f"  {r['mode']}/{r['subject']} calls/msg by operation ({r['source']}): {ops}")
    def median(mode: str, subject: str, key: str) -> float:
        return statistics.median(r[key] for r in results
                                 if r["mode"] == mode and r["subject"] == subject)

    for mode in dict.fromkeys(r["mode"] for r in results if r["subject"] == "daemon"):
        for other in ("baseline", "floor"):
            n = sum(r["mode"] == mode and r["subject"] == other for r in results)
            if not n:
                continue

            def ratio(k: str) -> float:
                base = median(mode, other, k)
                return median(mode, "daemon", k) / base if base else float("nan")

            of = " (medians)" if n > 1 else ""
            p(f"  {mode} daemon/{other}{of}: calls/msg x{ratio('calls_total_per_msg'):.2f}, "
              f"CPU/msg x{ratio('cpu_us_per_msg'):.2f}, RSS x{ratio('peak_rss_mb'):.2f}, "
              f"msgs/s x{ratio('msgs_per_s'):.2f}, p99 x{ratio('p99_ms'):.2f}")
            if other == "baseline" and n > 1:
                cpu = paired(results, mode, "cpu_us_per_msg")
                p(f"  {mode} daemon/baseline CPU/msg by pair of neighbouring runs: "
                  + ", ".join(f"x{c:.2f}" for c in cpu)
                  + f"; median x{statistics.median(cpu):.2f}")
    for r in results:
        if r.get("rss_samples_mb"):
            soak_rss(r, p)


def soak_rss(r: dict, p) -> None:
    """Whether RSS stayed flat over the soak, from the 10% mark to the end.
    When it did not, also whether it rose only with the messages the daemon
    held: the allocator keeps the memory of a peak in flight (a backend
    that stalls for a moment lets hundreds of messages pile up in the
    daemon), which is a high-water mark, not growth per message: outside
    the highest peak (from the 10% mark to just before it, and from 2 s
    after it to the end) RSS is flat then."""
    s = [mb for _, mb in r["rss_samples_mb"]]
    base = s[max(0, len(s) // 10)]
    drift = (s[-1] - base) / base if base else 0
    p(f"  soak RSS MB: after 10% {base}, end {s[-1]}, max {max(s)}: "
      f"{'flat' if abs(drift) <= 0.10 else 'NOT flat'} ({drift:+.0%})")
    held = r.get("in_flight_samples", [])
    if len(held) != len(s) or any(m is None for _, m in held):
        return
    start = len(s) // 10
    usual = statistics.median(m for _, m in held)
    i, (t, peak) = max(enumerate(held[start:], start), key=lambda x: x[1][1])
    before, after = s[max(start, i - 1)], s[min(len(s) - 1, i + 4)]
    rest = (before - base + s[-1] - after) / base if base else 0
    p(f"  soak messages held by the daemon: median {usual:g}, at most {peak:g} (at {t:.0f}s); "
      f"RSS {before} before that peak, {after} 2 s after: outside the peak RSS "
      f"{'flat' if abs(rest) <= 0.10 else 'NOT flat'} ({rest:+.0%})")


def paired(results: list[dict], mode: str, key: str) -> list[float]:
    """daemon/baseline of `key` for each pair of runs made one after the other
    (A B, B A, ...): the emulator's speed drifts between pairs more than
    within one, so these ratios scatter less than the runs themselves."""
    runs = [r for r in results if r["mode"] == mode and r["subject"] in ("daemon", "baseline")]
    out = []
    for a, b in zip(runs[0::2], runs[1::2]):
        d, base = (a, b) if a["subject"] == "daemon" else (b, a)
        if d["subject"] == "daemon" and base["subject"] == "baseline" and base[key]:
            out.append(d[key] / base[key])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--binary", required=True, help="the triggered-cache binary")
    ap.add_argument("--floor", default="", help="the floor binary; empty: no floor")
    ap.add_argument("--baseline", default="",
                    help="another triggered-cache binary (an earlier commit) measured alternately "
                         "with --binary in hit and miss modes; empty: none")
    ap.add_argument("--rounds", type=int, default=1,
                    help="runs of the daemon (and of the baseline) per hit/miss mode, alternating")
    ap.add_argument("--out", required=True, help="run directory (logs, results.json)")
    ap.add_argument("--modes", type=lambda s: s.split(","), default=["hit", "miss", "herd"])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--keys", type=int, default=50)
    ap.add_argument("--inflight", type=int, default=20)
    ap.add_argument("--rate", type=float, default=0,
                    help="hit/miss: send at this steady rate (messages/s, an open load: latency "
                         "under a producer that does not wait for answers) instead of keeping "
                         "--inflight requests unanswered; 0: the closed window")
    ap.add_argument("--concurrency", type=int, default=32,
                    help="the daemon's worker.concurrency (at least the window)")
    ap.add_argument("--work-ms", type=float, default=20)
    ap.add_argument("--herd", type=int, default=1000)
    ap.add_argument("--soak", type=int, default=100_000)
    ap.add_argument("--soak-inflight", type=int, default=1024)
    ap.add_argument("--timeout", type=float, default=120, help="seconds a run may take beyond n/20")
    ap.add_argument("--warmup", type=int, default=500,
                    help="requests of an unmeasured daemon run before the hit/miss runs, so the "
                         "first measured run does not meet a cold emulator; 0: none")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    a = ap.parse_args()
    for m in a.modes:
        if m not in ("hit", "miss", "herd", "soak"):
            ap.error(f"--modes: unknown mode {m!r}; use hit, miss, herd, soak")
    return Bench(a).run()


if __name__ == "__main__":
    sys.exit(main())
