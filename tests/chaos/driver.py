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
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SETS = ["summary", "invoice", "status"]
MALFORMED = [
    "not json at all",
    '{"v":1,"type":"explode","key":{"pk":"k#000"},"set":"summary"}',
    '{"v":1,"type":"request","key":{"pk":"k#000"},"set":"no-such-set"}',
    '{"v":1,"type":"request","key":{"id":"k#000"},"set":"summary"}',
    '{"v":1,"type":"request","key":{"pk":"k#000"},"set":"summary","requestId":"bad\\u0007id"}',
    '{"v":1,"type":"request","key":{"pk":"k#000"},"set":"summary","surprise":true}',
    '{"v":2,"type":"request","key":{"pk":"k#000"},"set":"summary"}',
    "[" * 5000 + "]" * 5000,
]


def reexec_in_venv() -> None:
    try:
        import boto3  # noqa: F401
    except ImportError:
        venv_py = ROOT / ".venv" / "bin" / "python"
        if venv_py.exists() and Path(sys.executable).resolve() != venv_py.resolve():
            os.execv(str(venv_py), [str(venv_py), *sys.argv])
        sys.exit("driver.py: boto3 is missing; run scripts/local-aws.sh install")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def http_json(url: str, body: dict | None = None, timeout: float = 5.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"{}")


class JsonLines:
    """An append-only JSON-lines file."""

    def __init__(self, path: Path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, obj: dict) -> None:
        with self.lock:
            self.f.write(json.dumps(obj) + "\n")

    def close(self) -> None:
        self.f.close()


class Fleet:
    """The daemon processes: start, SIGKILL, restart, SIGTERM."""

    def __init__(self, args, env: dict[str, str], listeners: dict[str, int], out: Path):
        self.args = args
        self.env = env
        self.listeners = listeners
        self.out = out
        self.procs: dict[str, subprocess.Popen | None] = {}
        self.incarnation: dict[str, int] = {}
        self.addrs: dict[str, str] = {}
        self.logs: dict[str, Path] = {}
        self.exits: list[dict] = []

    def start(self, name: str) -> None:
        n = self.incarnation.get(name, 0) + 1
        self.incarnation[name] = n
        wid = f"{name}.{n}"
        env = dict(self.env)
        env.update(
            {
                "TRIGGERED_CACHE__AWS__ENDPOINT_URL": f"http://127.0.0.1:{self.listeners[name]}",
                "TRIGGERED_CACHE_CONFIG": str(HERE / "config.toml"),
                "CHAOS_WORKER": wid,
                "CHAOS_RUN_LOG": str(self.out / "runs.jsonl"),
                "CHAOS_WORK_MS": self.args.work_ms,
                "CHAOS_RETRYABLE_RATE": str(self.args.retryable_rate),
            }
        )
        path = self.out / "logs" / f"{wid}.log"
        self.logs[wid] = path
        with open(path, "wb") as f:
            self.procs[name] = subprocess.Popen(
                [self.args.binary, "run"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=f,
            )

    def wid(self, name: str) -> str:
        return f"{name}.{self.incarnation[name]}"

    def wait_started(self, name: str, timeout: float = 30) -> None:
        path = self.logs[self.wid(name)]
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            p = self.procs[name]
            if p is not None and p.poll() is not None:
                raise SystemExit(f"driver.py: {self.wid(name)} exited with {p.returncode}; see {path}")
            for line in path.read_text(errors="replace").splitlines():
                if '"worker pool started"' in line:
                    return
                if '"addr"' in line:
                    try:
                        self.addrs[name] = json.loads(line)["addr"]
                    except ValueError:
                        pass
            time.sleep(0.1)
        raise SystemExit(f"driver.py: {self.wid(name)} did not start within {timeout}s; see {path}")

    def kill(self, name: str) -> int:
        p = self.procs[name]
        assert p is not None
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        self.procs[name] = None
        self.addrs.pop(name, None)
        return p.pid

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p is not None and p.poll() is None]

    def metrics(self) -> dict[str, str]:
        out = {}
        for name, addr in self.addrs.items():
            try:
                with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
                    out[self.wid(name)] = r.read().decode()
            except OSError as e:
                out[self.wid(name)] = f"# unavailable: {e}"
        return out

    def stop_all(self, timeout: float = 20) -> None:
        for name, p in self.procs.items():
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        until = time.monotonic() + timeout
        for name, p in self.procs.items():
            if p is None:
                continue
            try:
                code = p.wait(timeout=max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                code = p.wait()
                code = f"killed after {timeout}s (SIGTERM did not stop it)"
            self.exits.append({"worker": self.wid(name), "exit": code})
            self.procs[name] = None


class Collector(threading.Thread):
    """Moves completion events from the events queue into events.jsonl."""

    def __init__(self, sqs, url: str, out: Path):
        super().__init__(daemon=True)
        self.sqs = sqs
        self.url = url
        self.sink = JsonLines(out / "events.jsonl")
        self.stopping = threading.Event()
        self.empty_polls = 0
        self.count = 0
        self.seen_rids: set[str] = set()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                out = self.sqs.receive_message(
                    QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
            except Exception as e:  # the emulator is local; keep going
                log(f"events receive failed: {e}")
                time.sleep(0.5)
                continue
            msgs = out.get("Messages", [])
            self.empty_polls = 0 if msgs else self.empty_polls + 1
            now = time.time()
            for m in msgs:
                try:
                    body = json.loads(m["Body"])
                except ValueError:
                    body = {"unparsable": m["Body"][:200]}
                body["_received"] = now
                self.sink.write(body)
                with self.lock:
                    self.count += 1
                    if body.get("event") in ("hit", "ready", "failed"):
                        if body.get("requestId"):
                            self.seen_rids.add(body["requestId"])
                        self.seen_rids.update(body.get("coalesced") or [])
            if msgs:
                self.sqs.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(msgs)
                    ],
                )

    def drain(self, timeout: float) -> None:
        """Returns once three polls in a row found nothing (or at timeout)."""
        until = time.monotonic() + timeout
        self.empty_polls = 0
        while self.empty_polls < 3 and time.monotonic() < until:
            time.sleep(0.2)
        self.stopping.set()
        self.join(timeout=5)
        self.sink.close()


class Driver:
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

    # --- sending ----------------------------------------------------------

    def pick_key(self) -> str:
        return self.rng.choice(self.hot) if self.rng.random() < 0.3 else self.rng.choice(self.keys)

    def send(self, msgs: list[dict]) -> None:
        """Sends [{kind, body, key?, set?, rid?}] in batches of 10; records them."""
        for i in range(0, len(msgs), 10):
            chunk = msgs[i : i + 10]
            entries = [
                {"Id": str(j), "MessageBody": m["body"] if isinstance(m["body"], str) else json.dumps(m["body"])}
                for j, m in enumerate(chunk)
            ]
            t = time.time()
            for attempt in range(5):
                try:
                    res = self.sqs.send_message_batch(QueueUrl=self.queue, Entries=entries)
                    break
                except Exception as e:
                    if attempt == 4:
                        raise
                    log(f"send failed ({e}); retrying")
                    time.sleep(0.5)
            if res.get("Failed"):
                raise SystemExit(f"driver.py: SendMessageBatch failed: {res['Failed']}")
            ids = {s["Id"]: s["MessageId"] for s in res["Successful"]}
            for j, m in enumerate(chunk):
                self.n += 1
                rec = {k: v for k, v in m.items() if k != "body"}
                rec.update({"n": self.n, "mid": ids[str(j)], "t": t})
                if m["kind"] in ("request", "probe", "poison") and not rec.get("rid"):
                    rec["rid"] = ids[str(j)]
                if m["kind"] == "malformed":
                    rec["body"] = m["body"][:200]
                self.sent.write(rec)

    def request(self, key: str, set_: str, kind: str = "request") -> dict:
        body = {"v": 1, "type": "request", "key": {"pk": key}, "set": set_}
        rid = None
        if kind == "probe":
            rid = f"probe-{key}-{set_}"
        elif self.rng.random() < 0.5:
            rid = f"r-{self.n + 1}-{self.rng.randrange(10**6)}"
        if rid:
            body["requestId"] = rid
        if self.rng.random() < 0.2:
            body["input"] = {"lang": self.rng.choice(["en", "de", "fr"]), "n": self.rng.randrange(100)}
        self.used.add((key, set_))
        return {"kind": kind, "body": body, "key": key, "set": set_, "rid": rid}

    def one_action(self) -> list[dict]:
        r = self.rng.random()
        key, set_ = self.pick_key(), self.rng.choice(SETS)
        if r < 0.60:
            return [self.request(key, set_)]
        if r < 0.66:  # a herd: several requests for one cold-ish cache at once
            return [self.request(key, set_) for _ in range(self.rng.randint(3, 8))]
        if r < 0.78:
            return [{"kind": "trigger", "key": key, "set": set_,
                     "body": {"v": 1, "type": "trigger", "key": {"pk": key}, "set": set_}}]
        if r < 0.81:
            return [{"kind": "trigger", "key": key, "set": "*",
                     "body": {"v": 1, "type": "trigger", "key": {"pk": key}, "set": "*"}}]
        if r < 0.85:
            entity = f"product#{self.rng.randrange(5)}"
            return [{"kind": "dependency", "entity": entity,
                     "body": {"v": 1, "type": "trigger", "dependency": entity}}]
        if r < 0.95 and (key, set_) not in self.flows:
            self.flow_seq += 1
            fid = f"flow-{self.flow_seq}"
            self.flows[(key, set_)] = {
                "id": fid,
                "end_at": time.monotonic() + self.rng.uniform(*self.args.flow_s),
                "started": time.monotonic(),
            }
            return [{"kind": "trigger_start", "key": key, "set": set_, "flow": fid,
                     "body": {"v": 1, "type": "trigger_start", "key": {"pk": key}, "set": set_,
                              "triggerId": fid}}]
        return [self.request(key, set_)]

    def flow_running(self, key: str, set_: str, fid: str) -> bool:
        item = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": key}}, ConsistentRead=True
        ).get("Item", {})
        p = f"triggeredCache_{set_}_"
        return (item.get(p + "status", {}).get("S") == "TRIGGERED"
                and item.get(p + "triggerId", {}).get("S") == fid)

    def end_flows(self, force: bool = False) -> list[dict]:
        """trigger_end for flows that are due, once their start has landed
        (a producer ends a flow it has started; SQS does not keep order)."""
        out = []
        now = time.monotonic()
        for (key, set_), f in list(self.flows.items()):
            if not force and now < f["end_at"]:
                continue
            landed = self.flow_running(key, set_, f["id"])
            if not landed and now - f["started"] < self.args.flow_wait_s:
                f["end_at"] = now + 0.5
                continue
            del self.flows[(key, set_)]
            out.append({"kind": "trigger_end", "key": key, "set": set_, "flow": f["id"],
                        "landed": landed,
                        "body": {"v": 1, "type": "trigger_end", "key": {"pk": key}, "set": set_,
                                 "triggerId": f["id"]}})
        return out

    # --- killing ----------------------------------------------------------

    def update_open_runs(self) -> None:
        path = self.out / "runs.jsonl"
        if not path.exists():
            return
        with open(path) as f:
            f.seek(self.runlog_pos)
            data = f.read()
        cut = data.rfind("\n") + 1
        self.runlog_pos += len(data[:cut].encode())
        for line in data[:cut].splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r["ev"] == "start":
                self.open_runs[r["run"]] = r
            else:
                self.open_runs.pop(r["run"], None)

    def choose_victim(self, alive: list[str]) -> tuple[str, str, list, list]:
        state = http_json(self.control + "/state")
        held = {w: [h for h in hs if h.get("event") == "ready"] for w, hs in state["held"].items()}
        self.update_open_runs()
        busy = {}
        for r in self.open_runs.values():
            busy.setdefault(r["worker"].split(".")[0], []).append(r)
        roll = self.rng.random()
        with_held = [w for w in alive if held.get(w)]
        with_runs = [w for w in alive if busy.get(w)]
        if with_held and roll < 0.45:
            w, why = self.rng.choice(with_held), "ready event held between commit and publish"
        elif with_runs and roll < 0.85:
            w, why = self.rng.choice(with_runs), "processing"
        else:
            w, why = self.rng.choice(alive), "random"
        return w, why, held.get(w, []), busy.get(w, [])

    def kill_one(self, fleet: Fleet) -> str | None:
        alive = fleet.alive()
        if not alive:
            return None
        w, why, held, runs = self.choose_victim(alive)
        wid = fleet.wid(w)
        t = time.time()
        pid = fleet.kill(w)
        rec = {"t": t, "worker": wid, "pid": pid, "why": why,
               "held_ready": held, "open_runs": [r["run"] for r in runs]}
        self.kills.write(rec)
        log(f"SIGKILL {wid} ({why}; {len(runs)} runs in progress, {len(held)} ready events held)")
        return w

    # --- waiting ----------------------------------------------------------

    def queue_depth(self) -> int:
        a = self.sqs.get_queue_attributes(
            QueueUrl=self.queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                            "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        return sum(int(v) for v in a.values())

    def wait_queue_empty(self, timeout: float) -> bool:
        until = time.monotonic() + timeout
        zeros = 0
        while time.monotonic() < until:
            zeros = zeros + 1 if self.queue_depth() == 0 else 0
            if zeros >= 3:
                return True
            time.sleep(1)
        return False

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

    def dump_dlq(self) -> None:
        sink = JsonLines(self.out / "dlq.jsonl")
        empty = 0
        while empty < 3:
            out = self.sqs.receive_message(
                QueueUrl=self.dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                MessageAttributeNames=["All"], AttributeNames=["All"], VisibilityTimeout=300,
            )
            msgs = out.get("Messages", [])
            empty = 0 if msgs else empty + 1
            for m in msgs:
                attrs = {k: v.get("StringValue") for k, v in (m.get("MessageAttributes") or {}).items()}
                sink.write({"mid": m["MessageId"], "body": m["Body"][:2000], "attributes": attrs,
                            "receiveCount": (m.get("Attributes") or {}).get("ApproximateReceiveCount")})
        sink.close()

    def dump_table(self) -> None:
        from boto3.dynamodb.types import TypeDeserializer

        des = TypeDeserializer()
        sink = JsonLines(self.out / "table.jsonl")
        kw: dict = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = self.ddb.scan(**kw)
            for item in page.get("Items", []):
                plain = {k: des.deserialize(v) for k, v in item.items()}
                sink.write(json.loads(json.dumps(plain, default=lambda d: float(d) if d % 1 else int(d))))
            if "LastEvaluatedKey" not in page:
                break
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        sink.close()


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
