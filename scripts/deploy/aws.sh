# shellcheck shell=bash
# Sourced by scripts/verify-deploy.sh: the AWS checks. ECS input shapes, IAM
# (the actions the binary lists, parliament), cfn-lint, and the
# CloudFormation stacks created in a moto_server of its own, whose pid and
# port are kept in $WORK for the later steps and for cleanup.
# It only defines functions and settings; scripts/verify-deploy.sh sets ROOT,
# STATE, PY, WORK, WITH_IMAGE and the other settings these use, and runs each
# *_step function as one step (scripts/deploy/steps.sh).

ecs_step() {
    helper ecs
}

iam_step() {
    # The actions the code needs are its own list (src/aws/iam.rs), printed
    # by the binary; the policies must grant exactly those.
    debug_binary
    "$ROOT/target/debug/triggered-cache" iam-actions >"$WORK/iam-actions.json"
    helper iam-actions "$WORK/iam-actions.json"
    local tests
    tests="$(cd scripts/deploy && "$PY" -m unittest discover -s . -p 'test_*.py' 2>&1)" || { echo "$tests"; return 1; }
    log "the IAM check's own tests (scripts/deploy/checks/test_iam.py): $(tail -1 <<<"$tests")"
    local f out
    for f in deploy/iam/*.json; do
        out="$(helper render "$f" | "$STATE/bin/parliament" --include-community-auditors --minimum_severity INFO 2>&1)" || {
            echo "$out"; log "parliament: findings in $f"; return 1; }
        if [[ -n "$out" ]]; then
            echo "$out"; log "parliament: findings in $f"; return 1
        fi
        log "parliament: no findings in $f"
    done
}

cfn_lint_step() {
    "$STATE/bin/cfn-lint" deploy/aws/triggered-cache.yaml
    log "cfn-lint: no findings"
    helper cfn-static
}

# --- the emulator -------------------------------------------------------------

moto_port() { cat "$WORK/moto.port"; }

start_moto() {
    local port
    port="$(free_port)"
    "$STATE/bin/moto_server" -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
    echo $! >"$WORK/moto.pid"
    helper wait-http "http://127.0.0.1:$port/moto-api/" --timeout 30 --show 0 >/dev/null ||
        { tail -20 "$WORK/moto.log"; return 1; }
    echo "$port" >"$WORK/moto.port"
    log "moto_server $("$STATE/bin/pip" show moto 2>/dev/null | sed -n 's/^Version: //p') (pid $(cat "$WORK/moto.pid")) on 127.0.0.1:$port"
}

emulator_step() {
    helper cfn-emulator "http://127.0.0.1:$(moto_port)" "$WORK/stacks"
}
