#!/usr/bin/env python3
"""Chaos and fault runs of triggered-cache: real daemons, real crashes.

Starts N processes of the real binary (each behind its own listener of the
fault proxy, tests/chaos/faultproxy.py) against one emulator, sends
requests, triggers, trigger flows and dependency triggers across many keys
and three sets, and meanwhile

  mode chaos   SIGKILLs random workers and restarts them: some while they
               process, some while a ready event is held between commit and
               publish (the proxy holds a share of SNS Publish calls);
  mode faults  injects throttling, 500s, slow calls and reset connections at
               configured rates, and a full outage of the emulator mid-run;
               then the faults stop.

Then it lets everything settle, sends one probe request per cache used,
collects the event stream (the events queue), the processor's run log, the
table, the DLQ, the daemons' logs and the proxy's record into the run
directory, and runs tests/chaos/checker.py on it, which checks invariants
1-5 of DESIGN §5 and prints the figures. Exit code: the checker's (0 = all
invariants hold).

Everything is bounded: the send phase by --duration, settling by
--settle-timeout, and the whole run by --deadline. Normally started by
scripts/chaos.sh, which also starts and stops the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

# The driver's parts, by concern (all standard library at import time; boto3
# is imported once reexec_in_venv has found it):
from driver_observe import Observe  # whom to kill, when drained, final dumps
from driver_procs import HERE, ROOT, Collector, Fleet, JsonLines, http_json, log
from driver_traffic import MALFORMED, SETS, Traffic  # what is sent


def reexec_in_venv() -> None:
    try:
        import boto3  # noqa: F401
    except ImportError:
        venv_py = ROOT / ".venv" / "bin" / "python"
        if venv_py.exists() and Path(sys.executable).resolve() != venv_py.resolve():
            os.execv(str(venv_py), [str(venv_py), *sys.argv])
        sys.exit("driver.py: boto3 is missing; run scripts/local-aws.sh install")


class Driver(Traffic, Observe):
    """One run: provision, proxy and fleet, send, settle, probe, collect, check."""

    def __init__(self, args):
        import boto3
        from botocore.config import Config

        self.args = args
        self.rng = random.Random(args.seed)
        self.out = Path(args.out)
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self.env = self.provision()
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        cfg = Config(retries={"max_attempts": 5, "mode": "standard"}, read_timeout=20)
        ep = args.endpoint
        self.sqs = session.client("sqs", endpoint_url=ep, config=cfg)
        self.ddb = session.client("dynamodb", endpoint_url=ep, config=cfg)
        self.queue = self.env["TRIGGERED_CACHE__SQS__QUEUE_URL"]
        self.dlq = self.env["TRIGGERED_CACHE__SQS__DLQ_URL"]
        self.table = self.env["TRIGGERED_CACHE__DYNAMODB__TABLE"]
        self.sent = JsonLines(self.out / "sent.jsonl")
        self.kills = JsonLines(self.out / "kills.jsonl")
        self.n = 0
        self.keys = [f"k#{i:03d}" for i in range(args.keys)]
        self.hot = self.keys[: max(1, args.keys // 10)]
        self.flows: dict[tuple[str, str], dict] = {}
        self.flow_seq = 0
        self.used: set[tuple[str, str]] = set()
        self.runlog_pos = 0
        self.open_runs: dict[str, dict] = {}
        self.meta: dict = {
            "mode": args.mode,
            "args": {k: v for k, v in vars(args).items() if k not in ("binary",)},
            "started": time.time(),
        }

    # --- setup ------------------------------------------------------------

    def provision(self) -> dict[str, str]:
        out = subprocess.run(
            # maxReceiveCount above the sets' max_attempts (10): requests that
            # keep failing are dead-lettered by the daemon, with a reason.
            [str(ROOT / "scripts" / "local-aws.sh"), "provision", "--endpoint", self.args.endpoint,
             "--name", self.args.name, "--max-receive-count", "20"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        if out.returncode != 0:
            raise SystemExit(f"driver.py: provisioning failed:\n{out.stderr}")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("TRIGGERED_CACHE") or k == "RUST_LOG":
                del env[k]
        for line in out.stdout.splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                env[k] = v.strip("'\"")
        return env

    def start_proxy(self) -> None:
        ready = self.out / "proxy-ready.json"
        names = ",".join(f"w{i}" for i in range(self.args.workers))
        self.proxy_log = open(self.out / "proxy.log", "wb")
        self.proxy = subprocess.Popen(
            [sys.executable, str(HERE / "faultproxy.py"), "--upstream", self.args.endpoint,
             "--listeners", names, "--ready-file", str(ready), "--seed", str(self.args.seed)],
            stdout=self.proxy_log, stderr=self.proxy_log,
        )
        until = time.monotonic() + 20
        while not ready.exists():
            if time.monotonic() > until or self.proxy.poll() is not None:
                raise SystemExit("driver.py: the fault proxy did not start; see proxy.log")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        self.control = f"http://127.0.0.1:{info['control']}"
        self.listeners = info["listeners"]

    def set_faults(self, faults: dict) -> None:
        http_json(self.control + "/faults", faults)
        self.meta.setdefault("fault_changes", []).append({"t": time.time(), "faults": faults})

    # --- the run ----------------------------------------------------------

    def run(self) -> int:
        self.proxy = None
        self.fleet = None
        try:
            return self.run_inner()
        finally:
            # Whatever happened, leave no process of ours behind.
            if self.fleet is not None:
                for p in self.fleet.procs.values():
                    if p is not None and p.poll() is None:
                        p.kill()
                        p.wait()
            if self.proxy is not None and self.proxy.poll() is None:
                self.proxy.kill()
                self.proxy.wait()

    def run_inner(self) -> int:
        a = self.args
        hard_deadline = time.monotonic() + a.deadline
        self.start_proxy()
        fleet = self.fleet = Fleet(a, self.env, self.listeners, self.out)
        if a.mode == "chaos":
            self.set_faults({"publish_delay": a.publish_delay, "publish_delay_ms": [300, 1200]})
        for i in range(a.workers):
            fleet.start(f"w{i}")
        for i in range(a.workers):
            fleet.wait_started(f"w{i}")
        collector = Collector(self.sqs, self.env["EVENTS_QUEUE_URL"], self.out)
        collector.start()
        log(f"{a.workers} workers up; {a.mode} run for {a.duration}s at ~{a.rate} messages/s "
            f"over {a.keys} keys x {len(SETS)} sets")

        t0 = time.monotonic()
        poison_at = sorted(self.rng.uniform(0.1, 0.8) * a.duration for _ in range(a.poison))
        malformed_at = sorted(self.rng.uniform(0.1, 0.9) * a.duration for _ in range(len(MALFORMED)))
        next_kill = t0 + self.rng.uniform(*a.kill_every) if a.kills else float("inf")
        restarts: dict[str, float] = {}
        outage_at = t0 + a.duration * 0.45 if a.mode == "faults" and a.outage > 0 else float("inf")
        if a.mode == "faults":
            self.set_faults(json.loads(a.faults))
        owed = 0.0
        poison_n = 0
        tick = 0.1
        while time.monotonic() - t0 < a.duration:
            now = time.monotonic()
            el = now - t0
            batch: list[dict] = []
            owed += a.rate * tick
            while owed >= 1:
                owed -= 1
                batch += self.one_action()
            while poison_at and el >= poison_at[0]:
                poison_at.pop(0)
                poison_n += 1
                batch.append(self.request(f"poison#{poison_n}", self.rng.choice(SETS), kind="poison"))
            while malformed_at and el >= malformed_at[0]:
                malformed_at.pop(0)
                batch.append({"kind": "malformed", "body": MALFORMED[len(MALFORMED) - len(malformed_at) - 1]})
            batch += self.end_flows()
            if batch:
                self.send(batch)
            if now >= next_kill:
                w = self.kill_one(fleet)
                if w:
                    restarts[w] = now + self.rng.uniform(*a.restart_after)
                next_kill = now + self.rng.uniform(*a.kill_every)
            for w, at in list(restarts.items()):
                if now >= at:
                    fleet.start(w)
                    del restarts[w]
            if now >= outage_at:
                log(f"OUTAGE: the emulator is unreachable for {a.outage}s")
                http_json(self.control + "/outage", {"seconds": a.outage})
                self.meta["outage"] = {"t": time.time(), "seconds": a.outage}
                outage_at = float("inf")
            time.sleep(max(0.0, tick - (time.monotonic() - now)))

        # Settle: no more kills or faults; every flow ends; the queue drains.
        self.meta["send_end"] = time.time()
        for w in list(restarts):
            fleet.start(w)
        if a.mode == "faults":
            self.set_faults({})
            log("faults off")
        for w in fleet.procs:
            if fleet.procs[w] is None:
                fleet.start(w)
        settle_until = min(hard_deadline, time.monotonic() + a.settle_timeout)
        while self.flows and time.monotonic() < settle_until:
            ends = self.end_flows(force=False)
            if ends:
                self.send(ends)
            time.sleep(0.2)
        if self.flows:
            self.send(self.end_flows(force=True))
        log("send phase over; waiting for the queue to drain")
        drained = self.wait_queue_empty(max(1.0, settle_until - time.monotonic()))
        self.meta["drained"] = drained

        # Probe: one request per cache used; every one must be answered.
        self.meta["probe_start"] = time.time()
        probes = [self.request(k, s, kind="probe") for (k, s) in sorted(self.used)
                  if not k.startswith("poison#")]
        self.send(probes)
        log(f"probing {len(probes)} caches")
        want = {p["rid"] for p in probes}
        until = min(hard_deadline, time.monotonic() + a.probe_timeout)
        while time.monotonic() < until:
            with collector.lock:
                missing = want - collector.seen_rids
            if not missing and self.queue_depth() == 0:
                break
            time.sleep(0.5)
        self.meta["probe_end"] = time.time()
        self.meta["drained_after_probe"] = self.wait_queue_empty(10)
        collector.drain(timeout=20)
        log(f"{collector.count} events collected")

        # Collect what the checker reads.
        self.meta["metrics"] = fleet.metrics()
        fleet.stop_all()
        self.meta["exits"] = fleet.exits
        self.meta["incarnations"] = fleet.incarnation
        try:
            state = http_json(self.control + "/state")
            (self.out / "proxy.json").write_text(json.dumps(state, indent=1))
            http_json(self.control + "/quit", {})
        except OSError as e:
            log(f"proxy state unavailable: {e}")
        try:
            self.proxy.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proxy.kill()
        self.dump_dlq()
        self.dump_table()
        self.meta["finished"] = time.time()
        (self.out / "meta.json").write_text(json.dumps(self.meta, indent=1))
        self.sent.close()
        self.kills.close()
        return subprocess.call([sys.executable, str(HERE / "checker.py"), str(self.out)])


def pair(text: str) -> tuple[float, float]:
    lo, hi = (float(x) for x in text.split(","))
    return lo, hi


def main() -> int:
    reexec_in_venv()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True, help="the emulator, e.g. http://127.0.0.1:4566")
    ap.add_argument("--name", required=True, help="resource name prefix (provisioned fresh)")
    ap.add_argument("--out", required=True, help="run directory for everything collected")
    ap.add_argument("--binary", default=str(ROOT / "target" / "debug" / "triggered-cache"))
    ap.add_argument("--mode", choices=["chaos", "faults"], default="chaos")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--duration", type=float, default=120, help="seconds of sending")
    ap.add_argument("--rate", type=float, default=12, help="actions per second")
    ap.add_argument("--keys", type=int, default=30)
    ap.add_argument("--poison", type=int, default=4, help="requests that fail for good on purpose")
    ap.add_argument("--kills", action=argparse.BooleanOptionalAction, default=None,
                    help="SIGKILL workers (default: on in chaos mode, off in faults mode)")
    ap.add_argument("--kill-every", type=pair, default=(2.0, 5.0), help="seconds between kills: min,max")
    ap.add_argument("--restart-after", type=pair, default=(0.3, 2.0), help="seconds: min,max")
    ap.add_argument("--publish-delay", type=float, default=0.5,
                    help="chaos mode: share of SNS Publish calls the proxy holds 0.3-1.2s")
    ap.add_argument("--faults", default=json.dumps({
        "throttle": 0.04, "error500": 0.03, "slow": 0.03, "slow_ms": [200, 1500],
        "reset_before": 0.02, "reset_after": 0.01, "publish_delay": 0.1, "publish_delay_ms": [100, 500],
    }), help="faults mode: the proxy's fault settings (JSON)")
    ap.add_argument("--outage", type=float, default=8.0, help="faults mode: seconds of full outage mid-run")
    ap.add_argument("--work-ms", default="100,800", help="processor run time: min,max milliseconds")
    ap.add_argument("--retryable-rate", type=float, default=0.03,
                    help="share of processor runs that fail with exit 75")
    ap.add_argument("--flow-s", type=pair, default=(0.5, 4.0), help="trigger flow length: min,max s")
    ap.add_argument("--flow-wait-s", type=float, default=15.0,
                    help="how long a flow's end waits for its start to land")
    ap.add_argument("--settle-timeout", type=float, default=120)
    ap.add_argument("--probe-timeout", type=float, default=60)
    ap.add_argument("--deadline", type=float, default=900, help="hard bound on the whole run, seconds")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    args = ap.parse_args()
    if args.kills is None:
        args.kills = args.mode == "chaos"
    if not Path(args.binary).exists():
        sys.exit(f"driver.py: {args.binary} not found; run cargo build")
    log(f"seed {args.seed}; run directory {args.out}")
    return Driver(args).run()


if __name__ == "__main__":
    sys.exit(main())
