"""The parts of benches/driver.py: resources, the counting proxy, the
processes under test, /proc readings and the closed-loop load.

Standard library and boto3 (the project's .venv) only.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")
METRIC = "triggered_cache_aws_requests_total"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def http_post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"{}")


# --- /proc ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process itself (not of its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of all the process's
    threads: each is a sleep and a wake-up, which on a virtual machine costs
    much of the CPU an SDK call takes."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            with open(task / "status") as f:
                for line in f:
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
        except OSError:
            pass  # a thread that ended meanwhile
    return total


def status_kib(pid: int, key: str) -> int:
    """A line of /proc/PID/status in KiB, e.g. VmHWM (peak RSS) or VmRSS."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# --- resources ----------------------------------------------------------------


def provision(endpoint: str, name: str) -> dict[str, str]:
    """Fresh queue, DLQ, table, topic and events queue (scripts/provision.py)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import provision as prov  # noqa: PLC0415 (scripts/ is not a package)

    env = prov.provision(endpoint, name, False, 10)
    # A plain deployment: no dependency table (the processor declares none).
    env.pop("TRIGGERED_CACHE__DEPENDENCIES__TABLE", None)
    return env


class Proxy:
    """tests/chaos/faultproxy.py without faults: counts every call it
    forwards by service and operation, whoever makes it."""

    def __init__(self, endpoint: str, names: list[str], out: Path):
        ready = out / "proxy-ready.json"
        self.log = open(out / "proxy.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "chaos" / "faultproxy.py"), "--upstream", endpoint,
             "--listeners", ",".join(names), "--ready-file", str(ready)],
            stdout=self.log, stderr=self.log,
        )
        until = time.monotonic() + 20
        while not ready.exists():
            if time.monotonic() > until or self.proc.poll() is not None:
                raise SystemExit("bench: the counting proxy did not start; see proxy.log")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        self.control = f"http://127.0.0.1:{info['control']}"
        self.listeners = info["listeners"]

    def counts(self) -> Counter:
        return Counter(json.loads(http_get(self.control + "/state"))["requests"])

    def stop(self) -> None:
        try:
            http_post(self.control + "/quit", {})
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def metric_value(text: str, name: str) -> float | None:
    """The value of an unlabelled metric on a /metrics page, or None."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def metric_counts(text: str) -> Counter | None:
    """`service.operation` -> count from a /metrics page; None when the
    daemon does not count its AWS requests (before issue 13 point 4)."""
    out: Counter = Counter()
    found = False
    for line in text.splitlines():
        if not line.startswith(METRIC + "{"):
            continue
        found = True
        labels, value = line[len(METRIC) + 1:].rsplit("}", 1)
        kv = dict(p.split("=", 1) for p in labels.split(",") if "=" in p)
        kv = {k.strip(): v.strip().strip('"') for k, v in kv.items()}
        out[f"{kv.get('service', '?')}.{kv.get('operation', '?')}"] += int(float(value.split()[0]))
    return out if found else None


# --- the processes under test ---------------------------------------------------


class Subject:
    """One process under test: the daemon (or its baseline build) or the floor."""

    def __init__(self, kind: str, binary: str, env: dict[str, str], endpoint: str, out: Path,
                 wid: str, concurrency: int, pollers: int, work_ms: float):
        self.kind, self.wid = kind, wid
        self.run_log = out / "runs.jsonl"
        # The provisioned names, plus the caller's own settings of the
        # process (TRIGGERED_CACHE__*, TOKIO_*, PATH, ...): an A/B run can
        # set them in the environment of the driver.
        env = {**os.environ, **env}
        env.update({
            "TRIGGERED_CACHE__AWS__ENDPOINT_URL": endpoint,
            "BENCH_RUN_LOG": str(self.run_log),
            "BENCH_WORK_S": f"{work_ms / 1000:.3f}",
        })
        self.http = None
        if kind != "floor":
            self.http = f"127.0.0.1:{free_port()}"
            env.update({
                "TRIGGERED_CACHE_CONFIG": str(HERE / "config.toml"),
                "TRIGGERED_CACHE__WORKER__CONCURRENCY": str(concurrency),
                "TRIGGERED_CACHE__HTTP__LISTEN": self.http,
            })
            argv = [binary, "run"]
        else:
            env.update({"FLOOR_PROCESSOR": str(HERE / "processor.sh"), "FLOOR_POLLERS": str(pollers)})
            argv = [binary]
        self.logfile = open(out / f"{wid}.log", "wb")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.logfile, stderr=self.logfile)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 60) -> None:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: {self.wid} exited with {self.proc.returncode}; "
                                 f"see {self.logfile.name}")
            if self.http is None:
                return
            try:
                http_get(f"http://{self.http}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"bench: {self.wid} did not start within {timeout}s; see {self.logfile.name}")

    def metrics(self) -> str:
        return http_get(f"http://{self.http}/metrics") if self.http else ""

    def stop(self, timeout: float = 3) -> None:
        """SIGTERM, then SIGKILL after `timeout`: by now everything is
        measured, and a daemon's long poll would hold its drain for up to
        sqs.wait_time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()


def runs_per_key(path: Path) -> Counter:
    """Processing runs by key, from the processor's log (one line a run)."""
    runs: Counter = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                runs[json.loads(line)["key"]["pk"]] += 1
            except (ValueError, KeyError, TypeError):
                runs["?"] += 1
    return runs


# --- the load -------------------------------------------------------------------


class Load:
    """Sends requests and collects their completion events from the events
    queue (subscribed to the topic), keeping a window of them in flight."""

    def __init__(self, env: dict[str, str], endpoint: str, out: Path, collectors: int = 2):
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                        region_name="us-east-1")
        cfg = Config(retries={"max_attempts": 5, "mode": "standard"}, read_timeout=30,
                     max_pool_connections=32)
        self.sqs = session.client("sqs", endpoint_url=endpoint, config=cfg)
        self.queue = env["TRIGGERED_CACHE__SQS__QUEUE_URL"]
        self.dlq = env["TRIGGERED_CACHE__SQS__DLQ_URL"]
        self.events = env["EVENTS_QUEUE_URL"]
        self.cond = threading.Condition()
        self.sent: dict[str, float] = {}
        # Unanswered requests by key: rid -> wall-clock ms when sent.
        self.pending: dict[str, dict[str, int]] = {}
        self.latency: dict[str, float] = {}
        self.kinds: Counter = Counter()
        self.done = 0
        self.last_answer = 0.0
        self.stopping = threading.Event()
        self.sink = open(out / "events.jsonl", "a", buffering=1)
        self.threads = [threading.Thread(target=self.collect, daemon=True) for _ in range(collectors)]
        for t in self.threads:
            t.start()

    def collect(self) -> None:
        while not self.stopping.is_set():
            try:
                out = self.sqs.receive_message(QueueUrl=self.events, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1)
            except Exception as e:  # local emulator; keep going
                log(f"events receive failed: {e}")
                time.sleep(0.2)
                continue
            msgs = out.get("Messages", [])
            if not msgs:
                continue
            now = time.monotonic()
            with self.cond:
                for m in msgs:
                    try:
                        ev = json.loads(m["Body"])
                    except ValueError:
                        continue
                    self.kinds[ev.get("event")] += 1
                    self.sink.write(json.dumps({"t": now, "event": ev.get("event"),
                                                "key": ev.get("key"), "at": ev.get("at"),
                                                "requestId": ev.get("requestId"),
                                                "coalesced": ev.get("coalesced")}) + "\n")
                    pk = str((ev.get("key") or {}).get("pk", ""))
                    answers = [ev.get("requestId"), *(ev.get("coalesced") or [])]
                    if ev.get("event") in ("ready", "failed") and ev.get("at"):
                        # The losers of a claim, and requests that found the
                        # run in progress elsewhere, are answered by the
                        # run's event (README, DESIGN §5 invariant 3).
                        at = at_ms(ev["at"])
                        answers += [r for r, t in self.pending.get(pk, {}).items() if t <= at]
                    for rid in answers:
                        if rid in self.sent and rid not in self.latency:
                            self.latency[rid] = now - self.sent[rid]
                            self.pending.get(pk, {}).pop(rid, None)
                            self.done += 1
                            self.last_answer = now
                self.cond.notify_all()
            self.sqs.delete_message_batch(QueueUrl=self.events, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])

    def run(self, keys: list[str], window: int, timeout: float, tag: str,
            rate: float = 0) -> dict:
        """Sends one request per entry of `keys`, at most `window` unanswered
        at a time (in SendMessageBatch calls of up to 10 once as many slots
        are free), and waits for every answer or the timeout. With `rate`
        (messages/s) the load is open instead: one request every 1/rate s
        whatever is answered (the requests that fell due meanwhile, when the
        sender falls behind, go in one call of up to 10)."""
        n = len(keys)
        rids = [f"{tag}-{i}-{random.getrandbits(32):08x}" for i in range(n)]
        batch = max(1, min(10, window))
        with self.cond:
            done0 = self.done
        start = time.monotonic()
        until = start + timeout
        i = 0
        while i < n and time.monotonic() < until:
            if rate > 0:
                due = start + i / rate
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                late = int((time.monotonic() - due) * rate)
                chunk = list(range(i, min(n, i + 1 + min(9, late))))
            else:
                room = window - min(batch, n - i)
                with self.cond:
                    while i - (self.done - done0) > room and time.monotonic() < until:
                        self.cond.wait(0.5)
                chunk = list(range(i, min(n, i + batch)))
            self.send(chunk, keys, rids)
            i += len(chunk)
        with self.cond:
            while self.done - done0 < n and time.monotonic() < until:
                self.cond.wait(0.5)
            lat = sorted(self.latency[r] for r in rids if r in self.latency)
            last = self.last_answer
        return {
            "sent": n,
            "answered": len(lat),
            "seconds": max(1e-3, last - start),
            "p50_ms": pct(lat, 50) * 1000,
            "p99_ms": pct(lat, 99) * 1000,
            "unanswered": [r for r in rids if r not in self.latency][:20],
        }

    def send(self, chunk: list[int], keys: list[str], rids: list[str]) -> None:
        t, wall = time.monotonic(), int(time.time() * 1000)
        with self.cond:
            for j in chunk:
                self.sent[rids[j]] = t
                self.pending.setdefault(keys[j], {})[rids[j]] = wall
        entries = [{"Id": str(j), "MessageBody": json.dumps(
            {"v": 1, "type": "request", "key": {"pk": keys[j]}, "set": "summary",
             "requestId": rids[j]})} for j in chunk]
        res = self.sqs.send_message_batch(QueueUrl=self.queue, Entries=entries)
        if res.get("Failed"):
            raise SystemExit(f"bench: SendMessageBatch failed: {res['Failed']}")

    def dead_lettered(self) -> int:
        a = self.sqs.get_queue_attributes(QueueUrl=self.dlq, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(v) for v in a.values())

    def close(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=5)
        self.sink.close()


def at_ms(text: str) -> int:
    """An event's `at` (RFC 3339, UTC) in milliseconds since the epoch."""
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]
