"""The chaos driver's processes and streams (tests/chaos/driver.py).

Fleet starts, SIGKILLs, restarts and finally SIGTERMs the daemons, each
behind its own listener of the fault proxy; Collector moves the completion
events from the events queue into events.jsonl while the run goes on.
Standard library only, so that the driver can import this before it has
re-executed itself in the virtualenv that has boto3.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


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
