#!/usr/bin/env bash
# Chaos and fault runs: real daemons, real crashes, real faults, checked
# against the invariants of DESIGN §5. See docs/RELIABILITY.md.
#
#   scripts/chaos.sh                 full runs: chaos (120 s of sending) then
#                                    faults (120 s), about 10 minutes in all
#   scripts/chaos.sh --short         what CI runs: 30 s of each
#   scripts/chaos.sh --mode chaos    one of the two only
#   scripts/chaos.sh -- ARGS...      further arguments for tests/chaos/driver.py
#                                    (e.g. -- --seed 42 --workers 5)
#
# Starts its own ministack (pinned, 127.0.0.1, free port) and stops it
# afterwards, builds the debug binary if needed, and keeps every run's
# evidence in .local/chaos/<mode>-<time>/ (sent messages, events, processor
# run log, DLQ, table, daemon logs, proxy record, summary.json). Exit code 0
# when every invariant held in every run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration=120
modes=(chaos faults)
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --short) duration=30; shift ;;
        --duration) duration="$2"; shift 2 ;;
        --mode) modes=("$2"); shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "chaos.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf '\nchaos.sh: %s\n' "$*" >&2; }

if [[ ! -x target/debug/triggered-cache || -n "$(find src Cargo.toml Cargo.lock -newer target/debug/triggered-cache -print -quit)" ]]; then
    log "building the daemon (cargo build)"
    cargo build --quiet --bin triggered-cache
fi

endpoint="$(scripts/local-aws.sh start --emulator ministack --free-port)"
port="${endpoint##*:}"
trap 'scripts/local-aws.sh stop --port "$port" >/dev/null 2>&1 || true' EXIT
log "ministack at $endpoint"

status=0
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
for mode in "${modes[@]}"; do
    out=".local/chaos/$mode-$stamp"
    mkdir -p "$out"
    log "$mode run: ${duration}s of sending; evidence in $out"
    if ! .venv/bin/python tests/chaos/driver.py --endpoint "$endpoint" \
        --name "chaos-$mode-$stamp-$RANDOM" --out "$out" --mode "$mode" \
        --duration "$duration" "${extra[@]}"; then
        status=1
        log "$mode run FAILED (evidence in $out)"
    fi
done
exit "$status"
