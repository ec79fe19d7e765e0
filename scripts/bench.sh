#!/usr/bin/env bash
# The benchmark: what triggered-cache costs per message in AWS calls, CPU and
# memory, measured beside a raw AWS SDK for Rust loop (the floor,
# benches/floor.rs) in the same run on the same emulator. See
# docs/PERFORMANCE.md for what it measures and the last figures.
#
#   scripts/bench.sh                  hit, miss and herd modes (a few minutes)
#   scripts/bench.sh --soak           then 100k hits at 1024 in flight, RSS sampled
#   scripts/bench.sh --check          the short correctness form CI runs: a few
#                                     hundred messages, debug build, no floor;
#                                     exit 1 unless every request is answered,
#                                     every key is computed once, none is
#                                     dead-lettered (no timing is asserted)
#   scripts/bench.sh --modes hit      some modes only (hit, miss, herd, soak)
#   scripts/bench.sh --requests N --keys N --inflight N --work-ms MS --herd N
#                                     the load (defaults 2000, 50, 20, 20, 1000)
#   scripts/bench.sh --rate R         hit/miss: an open load, R requests/s sent
#                                     steadily whatever is answered, instead of
#                                     --inflight unanswered (latency at a rate)
#   scripts/bench.sh --long-poll-tick MS
#                                     ministack checks a waiting long poll every
#                                     MS ms, not every 100, so it answers about as
#                                     soon as a message arrives, as SQS does: use
#                                     2 for latency figures (see
#                                     scripts/emulator/ministack_server.py)
#   scripts/bench.sh --no-floor       the daemon only
#   scripts/bench.sh --baseline REV   also an earlier build of the daemon (a git
#                                     revision, built once into .local/bench/,
#                                     or a binary's path), run alternately with
#                                     this one in hit and miss modes; prints
#                                     daemon/baseline ratios
#   scripts/bench.sh --rounds N       N runs of each daemon per hit/miss mode,
#                                     in A B B A order; ratios of the medians,
#                                     and CPU ratios within each A B pair
#   scripts/bench.sh -- ARGS...       further arguments for benches/driver.py
#
# Builds the release daemon and the floor (cargo bench --no-run; ~20 min the
# first time on 2 cores), starts its own ministack (pinned, 127.0.0.1,
# free port), stops it afterwards, keeps logs and results.json in .local/bench/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

check=0
floor=1
baseline=""
modes="hit,miss,herd"
driver=()
extra=()
tick=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --check) check=1; shift ;;
        --soak) modes="$modes,soak"; shift ;;
        --no-floor) floor=0; shift ;;
        --baseline) baseline="${2:?--baseline needs a git revision or a binary}"; shift 2 ;;
        --rounds) driver+=("$1" "${2:?--rounds needs a number}"); shift 2 ;;
        --modes) modes="${2:?--modes needs a list such as hit,miss}"; shift 2 ;;
        --long-poll-tick) tick=(--long-poll-tick "${2:?--long-poll-tick needs milliseconds}"); shift 2 ;;
        --requests | --keys | --inflight | --work-ms | --herd | --rate)
            driver+=("$1" "${2:?$1 needs a number}"); shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h | --help) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf '\nbench.sh: %s\n' "$*" >&2; }

if [[ $check -eq 1 ]]; then
    # Correctness only: the debug binary CI has already built, no floor.
    floor=0
    binary=target/debug/triggered-cache
    modes="miss,herd"
    driver=(--requests 300 --keys 30 --inflight 20 --herd 200 --warmup 0 "${driver[@]}")
    if [[ ! -x "$binary" || -n "$(find src Cargo.toml Cargo.lock -newer "$binary" -print -quit)" ]]; then
        log "building the daemon (cargo build)"
        cargo build --quiet --bin triggered-cache
    fi
else
    binary=target/release/triggered-cache
    log "building the release daemon (cargo build --release)"
    cargo build --release --quiet --bin triggered-cache
fi

floor_bin=""
if [[ $floor -eq 1 ]]; then
    log "building the floor (cargo bench --no-run --bench floor)"
    floor_bin="$(cargo bench --quiet --no-run --bench floor --message-format=json \
        | .venv/bin/python -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "floor" and m.get("executable"):
        print(m["executable"])')"
    [[ -x "$floor_bin" ]] || { echo "bench.sh: the floor did not build" >&2; exit 1; }
fi

baseline_bin=""
if [[ -n "$baseline" && -x "$baseline" && -f "$baseline" ]]; then
    baseline_bin="$baseline"
elif [[ -n "$baseline" ]]; then
    rev="$(git rev-parse --verify --quiet "$baseline^{commit}")" \
        || { echo "bench.sh: --baseline '$baseline' is neither a binary nor a git revision" >&2; exit 2; }
    src=".local/bench/baseline-${rev:0:12}"
    if [[ ! -d "$src" ]]; then
        mkdir -p "$src.tmp"
        git archive "$rev" | tar -x -C "$src.tmp"
        mv "$src.tmp" "$src"
    fi
    if [[ ! -x "$src/triggered-cache" ]]; then
        log "building the baseline ${rev:0:12} (cargo build --release in $src)"
        (cd "$src" && CARGO_TARGET_DIR="$root/.local/bench/baseline-target" \
            cargo build --release --quiet --bin triggered-cache)
        cp .local/bench/baseline-target/release/triggered-cache "$src/triggered-cache"
    fi
    baseline_bin="$src/triggered-cache"
fi

endpoint="$(scripts/local-aws.sh start --emulator ministack --free-port "${tick[@]}")"
port="${endpoint##*:}"
trap 'scripts/local-aws.sh stop --port "$port" >/dev/null 2>&1 || true' EXIT
log "ministack at $endpoint"

out=".local/bench/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
log "modes $modes; logs and results.json in $out"
.venv/bin/python benches/driver.py --endpoint "$endpoint" --binary "$binary" \
    --floor "$floor_bin" --baseline "$baseline_bin" --out "$out" --modes "$modes" "${driver[@]}" "${extra[@]}"
