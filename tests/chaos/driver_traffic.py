"""What the chaos driver sends (tests/chaos/driver.py): the mix of requests,
herds, triggers, dependency triggers, trigger flows, poisoned requests and
malformed messages, and the record of every message in sent.jsonl.

A mixin of Driver: it uses the driver's rng, args, sqs and ddb clients, queue,
table, sent sink and its bookkeeping (n, keys, hot, flows, used).
"""

from __future__ import annotations

import json
import time

from driver_procs import log

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


class Traffic:
    """Sending: one action at a time, in SendMessageBatch calls of 10."""

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
