#!/usr/bin/env bash
# Runs every test: formatting, lints, supply-chain checks (cargo deny), unit
# and property tests, the integration tests against a local AWS emulator that
# this script starts on a free 127.0.0.1 port (and stops again), and the
# short chaos and fault runs (real daemons, SIGKILLs, injected faults,
# checked against DESIGN §5; docs/RELIABILITY.md), and the short correctness
# form of the benchmark (scripts/bench.sh --check; docs/PERFORMANCE.md).
#
#   scripts/test.sh                 everything (what CI runs)
#   scripts/test.sh --test triggers only `cargo test` with these arguments
#                                   (after fmt and clippy)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

if [[ $# -eq 0 ]]; then
    step "cargo deny (licences, bans, sources, advisories)"
    scripts/deny.sh
fi

step "starting the local AWS emulator"
endpoint="$(scripts/local-aws.sh start --free-port)"
port="${endpoint##*:}"
trap 'scripts/local-aws.sh stop --port "$port" >/dev/null 2>&1 || true' EXIT
echo "emulator at $endpoint" >&2

step "cargo test"
TC_TEST_ENDPOINT="$endpoint" cargo test --locked "$@"

if [[ $# -eq 0 ]]; then
    step "short chaos and fault runs (scripts/chaos.sh --short)"
    scripts/chaos.sh --short
    step "benchmark, correctness form (scripts/bench.sh --check)"
    scripts/bench.sh --check
fi
