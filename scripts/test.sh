#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and property tests, and the
# integration tests against a local AWS emulator that this script starts on a
# free 127.0.0.1 port (and stops again).
#
#   scripts/test.sh                 everything
#   scripts/test.sh --test triggers extra arguments go to `cargo test`
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "starting the local AWS emulator"
endpoint="$(scripts/local-aws.sh start --free-port)"
port="${endpoint##*:}"
trap 'scripts/local-aws.sh stop --port "$port" >/dev/null 2>&1 || true' EXIT
echo "emulator at $endpoint" >&2

step "cargo test"
TC_TEST_ENDPOINT="$endpoint" cargo test --locked "$@"
