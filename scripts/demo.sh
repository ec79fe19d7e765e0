#!/usr/bin/env bash
# The main job, locally: starts the AWS emulator on 127.0.0.1, creates a
# queue + DLQ, a table, a topic and an `events` queue subscribed to it, runs
# the daemon with the example `command` processor
# (examples/processors/summarize.py, which takes a visible moment), sends
# requests, a trigger, a trigger flow and a bad message, and prints the
# completion events as they arrive. Stops everything it started on exit.
#
#   scripts/demo.sh              moto (default)
#   scripts/demo.sh ministack    the fast emulator
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
emulator="${1:-moto}"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building the daemon"
cargo build --locked --quiet
bin="$root/target/debug/triggered-cache"

say "starting the local AWS emulator ($emulator)"
endpoint="$(scripts/local-aws.sh start --emulator "$emulator" --free-port)"
port="${endpoint##*:}"
daemon=""
cleanup() {
    if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
        kill -TERM "$daemon" 2>/dev/null || true
        wait "$daemon" 2>/dev/null || true
    fi
    scripts/local-aws.sh stop --port "$port" >/dev/null 2>&1 || true
}
trap cleanup EXIT
echo "emulator at $endpoint"

say "creating queue, DLQ, table, topic and events queue"
scripts/local-aws.sh provision --endpoint "$endpoint" --name demo >/dev/null
# shellcheck disable=SC1091
source .local/demo.env
py="$root/.venv/bin/python"
ops_port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export TRIGGERED_CACHE_CONFIG="$root/config/default.toml"
export TRIGGERED_CACHE__HTTP__LISTEN="127.0.0.1:$ops_port"
export TRIGGERED_CACHE__LOG__FORMAT=pretty
export TRIGGERED_CACHE__SQS__WAIT_TIME=2s
export SUMMARIZE_DELAY="${SUMMARIZE_DELAY:-1.5}"

say "running the daemon (log: .local/demo-daemon.log)"
"$bin" run 2>"$root/.local/demo-daemon.log" &
daemon=$!
"$py" - "$ops_port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/readyz"
deadline = time.time() + 30
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            print("daemon ready:", r.read().decode().strip()); break
    except Exception as e:
        if time.time() > deadline:
            sys.exit(f"the daemon did not become ready: {e}")
        time.sleep(0.2)
PY

watch() { scripts/watch-events.py --count "$1" --timeout 30; }
send() { "$bin" send "$@" >/dev/null; }

say "5 requests for order#1 and 1 for order#2: cold caches, one processing run each (the others share it)"
send request order#1 --set summary --count 5
send request order#2 --set summary
watch 2

say "order#1 again: a hit, answered from the item at once"
send request order#1 --set summary
watch 1

say "a trigger for order#1 (reset), then a request: recomputed for epoch 1"
send trigger order#1 --set summary
watch 1
send request order#1 --set summary
watch 1

say "a trigger flow on order#2: requests during it are parked, one run when it ends"
send trigger-start order#2 --set summary --trigger-id import-7
watch 1
send request order#2 --set summary --count 3
sleep 2
echo "(nothing is processed while the flow runs)"
send trigger-end order#2 --set summary --trigger-id import-7
watch 1

say "a message that cannot be understood goes to the DLQ with its reason"
"$py" - <<'PY'
import os, boto3
sqs = boto3.client("sqs", endpoint_url=os.environ["TRIGGERED_CACHE__AWS__ENDPOINT_URL"], region_name="us-east-1")
sqs.send_message(QueueUrl=os.environ["TRIGGERED_CACHE__SQS__QUEUE_URL"],
                 MessageBody='{"v":1,"type":"request","key":{"pk":"order#3"},"set":"no-such-set"}')
PY
for _ in $(seq 50); do
    out="$("$bin" dlq list 2>/dev/null)"
    if [ "$out" != "the dead-letter queue is empty" ]; then break; fi
    sleep 0.2
done
echo "$out"

say "the cache state of order#1 and order#2"
"$bin" inspect order#1
"$bin" inspect order#2

say "metrics (excerpt of /metrics)"
"$py" - "$ops_port" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
for line in text.splitlines():
    if line.startswith(("triggered_cache_claims_won", "triggered_cache_hits", "triggered_cache_coalesced",
                        "triggered_cache_processing_runs", "triggered_cache_parked", "triggered_cache_dead_lettered",
                        "triggered_cache_events_published")):
        print(line)
PY

say "done: stopping the daemon (SIGTERM) and the emulator"
