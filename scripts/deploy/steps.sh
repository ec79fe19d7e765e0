# shellcheck shell=bash
# Sourced by scripts/verify-deploy.sh: the bookkeeping of its steps (each one
# in a subshell; pass/fail counts, step times) and the small helpers every
# other part uses (helper, obs, log, free_port).

# --- bookkeeping --------------------------------------------------------------

PASSED=0
FAILED=0
FAILED_STEPS=()
TIMES=()
T0=$SECONDS

# step NAME FUNCTION: runs FUNCTION in a subshell that stops at its first
# failing command, records pass/fail and the duration.
step() {
    local name="$1" fn="$2" t=$SECONDS rc
    printf '\n==> %s\n' "$name"
    set +e
    (
        set -euo pipefail
        "$fn"
    )
    rc=$?
    set -e
    local dt=$((SECONDS - t))
    if [[ "$rc" == 0 ]]; then
        PASSED=$((PASSED + 1))
        printf '    ok (%ss)\n' "$dt"
        TIMES+=("$(printf '%5ss  ok    %s' "$dt" "$name")")
    else
        FAILED=$((FAILED + 1))
        FAILED_STEPS+=("$name")
        printf '    FAILED (%ss)\n' "$dt"
        TIMES+=("$(printf '%5ss  FAIL  %s' "$dt" "$name")")
    fi
}

skip() {
    printf '\n==> %s\n    skipped: %s\n' "$1" "$2"
    TIMES+=("$(printf '%5s   skip  %s' - "$1")")
}

helper() { "$PY" "$HELPER" "$@"; }
obs() { "$PY" "$OBS_HELPER" "$@"; }
log() { printf '    %s\n' "$*"; }

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
