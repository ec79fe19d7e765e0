"""What the chaos driver watches and collects (tests/chaos/driver.py): the
processor's run log and the proxy's held publishes (to choose whom to
SIGKILL), the request queue's depth (to know when it has drained), and at the
end the DLQ and the table, dumped for the checker.

A mixin of Driver: it uses the driver's rng, out, sqs and ddb clients,
queue, dlq, table, control URL, kills sink and open_runs.
"""

from __future__ import annotations

import json
import time

from driver_procs import Fleet, JsonLines, http_json, log


class Observe:
    """Kills, waiting for the queue, and the final dumps."""

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

    # --- collecting -------------------------------------------------------

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
