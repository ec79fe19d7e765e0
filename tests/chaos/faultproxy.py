#!/usr/bin/env python3
"""A fault-injecting HTTP proxy between triggered-cache and the AWS emulator.

Each daemon gets its own listener (so faults and pending calls can be told
apart per worker); every listener forwards HTTP/1.1 to one upstream (the
emulator) and, at configured rates, instead:

  throttle      answers a throttling error in the service's own protocol:
                DynamoDB ThrottlingException or
                ProvisionedThroughputExceededException, SQS ThrottlingException
                (JSON protocol), SNS Throttling (query protocol, XML)
  error500      answers HTTP 500 (InternalServerError / InternalError)
  slow          holds the request for slow_ms before forwarding it
  reset_before  resets the connection (TCP RST) before forwarding
  reset_after   forwards, then resets the connection instead of answering
                (the call took effect, its answer is lost)

and on demand an outage: for N seconds every connection is reset and every
new request refused, as if the emulator were down.

SNS Publish and PublishBatch calls can also be held (publish_delay_ms)
before they are forwarded, to widen the window between a commit and its
completion event; a held call whose client goes away (the worker was
killed) is never forwarded and is recorded as `abandoned`, with the events
it carried (one record per event).

Control API (JSON over HTTP on --control-port, 127.0.0.1 only):
  GET  /state        listeners, fault settings, counts, held publishes,
                     abandoned publishes
  POST /faults       replace the fault settings (JSON object, see FAULT_KEYS)
  POST /outage       {"seconds": S}: start an outage now
  POST /quit         stop the proxy

Usage:
  faultproxy.py --upstream http://127.0.0.1:4566 --listeners w0,w1,w2 \
      --ready-file PATH [--seed N] [--faults JSON]
The ready file receives {"control": port, "listeners": {name: port}} once
everything listens. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import urllib.parse
from collections import Counter

# The proxy's parts: HTTP/1.1 framing, and the AWS protocols (which call a
# request is, the services' own error answers).
from proxy_aws import classify, error_response
from proxy_http import Closed, Conn, parse_head

FAULT_KEYS = {
    "throttle": 0.0,
    "error500": 0.0,
    "slow": 0.0,
    "slow_ms": [300, 2000],
    "reset_before": 0.0,
    "reset_after": 0.0,
    # Fraction of SNS Publish calls held, and for how long.
    "publish_delay": 0.0,
    "publish_delay_ms": [200, 800],
}


class Proxy:
    """The listeners' connections, the faults, the outage and the record."""

    def __init__(self, upstream: str, seed: int):
        u = urllib.parse.urlsplit(upstream)
        self.up_host = u.hostname or "127.0.0.1"
        self.up_port = u.port or 80
        self.rng = random.Random(seed)
        self.faults = dict(FAULT_KEYS)
        self.outage_until = 0.0
        self.outages: list[dict] = []
        self.counts: Counter = Counter()
        self.requests: Counter = Counter()
        self.held: dict[str, dict[int, dict]] = {}
        self.abandoned: list[dict] = []
        self.listeners: dict[str, int] = {}
        self.active: set[Conn] = set()
        self.next_id = 0
        self.stop = asyncio.Event()

    def outage(self) -> bool:
        return time.time() < self.outage_until

    def start_outage(self, seconds: float) -> None:
        now = time.time()
        self.outage_until = max(self.outage_until, now + seconds)
        self.outages.append({"start": now, "seconds": seconds})
        for conn in list(self.active):
            conn.reset()
        self.counts["outage_reset_connections"] += len(self.active)

    def roll(self, name: str) -> bool:
        rate = float(self.faults.get(name) or 0.0)
        return rate > 0 and self.rng.random() < rate

    def span(self, name: str) -> float:
        lo, hi = self.faults.get(name) or [0, 0]
        return self.rng.uniform(float(lo), float(hi)) / 1000.0

    async def client(self, name: str, reader, writer) -> None:
        conn = Conn(reader, writer)
        if self.outage():
            self.counts["outage_refused"] += 1
            conn.reset()
            return
        self.active.add(conn)
        up: Conn | None = None
        try:
            while True:
                head = await conn.read_head()
                line, headers = parse_head(head)
                body = await conn.read_body(headers, until_close=False)
                service, op, publish = classify(headers, body)
                self.requests[f"{service}.{op}"] += 1
                if self.outage():
                    self.counts["outage_refused"] += 1
                    conn.reset()
                    return
                fault = None
                for kind in ("throttle", "error500", "reset_before", "reset_after"):
                    if self.roll(kind):
                        fault = kind
                        break
                if fault in ("throttle", "error500"):
                    self.counts[f"{fault}:{service}.{op}"] += 1
                    writer.write(error_response(service, fault, self.rng))
                    await writer.drain()
                    continue
                if fault == "reset_before":
                    self.counts[f"reset_before:{service}.{op}"] += 1
                    conn.reset()
                    return
                if self.roll("slow"):
                    self.counts[f"slow:{service}.{op}"] += 1
                    if not await self.hold(conn, self.span("slow_ms")):
                        return
                if publish and self.roll("publish_delay"):
                    self.counts["publish_held"] += 1
                    recs = {}
                    for event in publish:
                        self.next_id += 1
                        recs[self.next_id] = dict(event, worker=name, held_at=time.time())
                    self.held.setdefault(name, {}).update(recs)
                    try:
                        alive = await self.hold(conn, self.span("publish_delay_ms"))
                    finally:
                        for hid in recs:
                            self.held[name].pop(hid, None)
                    if not alive:
                        for rec in recs.values():
                            rec["abandoned_at"] = time.time()
                            self.abandoned.append(rec)
                        self.counts["publish_abandoned"] += 1
                        return
                if self.outage():
                    self.counts["outage_refused"] += 1
                    conn.reset()
                    return
                if up is None:
                    r, w = await asyncio.open_connection(self.up_host, self.up_port)
                    up = Conn(r, w)
                up.writer.write(head + body)
                await up.writer.drain()
                rhead = await up.read_head()
                rline, rheaders = parse_head(rhead)
                status = int(rline.split(" ")[1]) if " " in rline else 0
                no_body = status in (204, 304) or 100 <= status < 200
                rbody = b"" if no_body else await up.read_body(rheaders, until_close=True)
                if fault == "reset_after":
                    self.counts[f"reset_after:{service}.{op}"] += 1
                    conn.reset()
                    return
                writer.write(rhead + rbody)
                await writer.drain()
                if rheaders.get("connection", "").lower() == "close" or (
                    "content-length" not in rheaders
                    and rheaders.get("transfer-encoding", "").lower() != "chunked"
                    and not no_body
                ):
                    up.close()
                    up = None
        except (Closed, ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except Exception as e:  # never let one connection kill the proxy
            self.counts["proxy_internal_error"] += 1
            print(f"faultproxy: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        finally:
            self.active.discard(conn)
            conn.close()
            if up is not None:
                up.close()

    async def hold(self, conn: Conn, seconds: float) -> bool:
        """Waits `seconds`; False if the client went away meanwhile."""
        read = asyncio.ensure_future(conn.reader.read(65536))
        try:
            done, _ = await asyncio.wait({read}, timeout=seconds)
        finally:
            if not read.done():
                read.cancel()
        if read in done:
            try:
                data = read.result()
            except (ConnectionError, OSError):
                return False
            if not data:
                return False
            conn.buf += data
        return True

    async def control(self, reader, writer) -> None:
        conn = Conn(reader, writer)
        try:
            head = await conn.read_head()
            line, headers = parse_head(head)
            body = await conn.read_body(headers, until_close=False)
            method, path = line.split(" ")[:2]
            code, out = 200, {}
            if method == "GET" and path == "/state":
                out = self.state()
            elif method == "POST" and path == "/faults":
                new = json.loads(body or b"{}")
                unknown = set(new) - set(FAULT_KEYS)
                if unknown:
                    code, out = 400, {"error": f"unknown fault keys {sorted(unknown)}"}
                else:
                    self.faults = dict(FAULT_KEYS, **new)
                    out = {"faults": self.faults}
            elif method == "POST" and path == "/outage":
                seconds = float(json.loads(body or b"{}").get("seconds", 5))
                self.start_outage(seconds)
                out = {"outage_until": self.outage_until}
            elif method == "POST" and path == "/quit":
                self.stop.set()
                out = {"bye": True}
            else:
                code, out = 404, {"error": "not found"}
            data = json.dumps(out).encode()
            writer.write(
                f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
            )
            await writer.drain()
        except Exception as e:
            print(f"faultproxy control: {e}", file=sys.stderr, flush=True)
        finally:
            writer.close()

    def state(self) -> dict:
        return {
            "listeners": self.listeners,
            "faults": self.faults,
            "outage": self.outage(),
            "outages": self.outages,
            "counts": dict(self.counts),
            "requests": dict(self.requests),
            "held": {w: list(h.values()) for w, h in self.held.items() if h},
            "abandoned": self.abandoned,
        }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--listeners", required=True, help="comma-separated names, one port each")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults", default="{}", help="initial fault settings (JSON)")
    args = ap.parse_args()
    proxy = Proxy(args.upstream, args.seed)
    proxy.faults = dict(FAULT_KEYS, **json.loads(args.faults))
    servers = []
    for name in args.listeners.split(","):
        srv = await asyncio.start_server(
            lambda r, w, n=name: proxy.client(n, r, w), "127.0.0.1", 0, limit=2**20
        )
        proxy.listeners[name] = srv.sockets[0].getsockname()[1]
        servers.append(srv)
    ctl = await asyncio.start_server(proxy.control, "127.0.0.1", args.control_port)
    control_port = ctl.sockets[0].getsockname()[1]
    with open(args.ready_file + ".tmp", "w") as f:
        json.dump({"control": control_port, "listeners": proxy.listeners}, f)
    os.replace(args.ready_file + ".tmp", args.ready_file)
    await proxy.stop.wait()
    for s in servers + [ctl]:
        s.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
