# shellcheck shell=bash
# Sourced by scripts/verify-deploy.sh: the monitoring checks. Alert rules
# (promtool), the monitoring component, the Grafana dashboard's queries, and
# the metric names they use checked against a real /metrics (the image's run,
# or the debug binary's against the emulator). debug_binary is also the IAM
# step's (scripts/deploy/aws.sh).
# It only defines functions and settings; scripts/verify-deploy.sh sets ROOT,
# STATE, PY, WORK, WITH_IMAGE and the other settings these use, and runs each
# *_step function as one step (scripts/deploy/steps.sh).

# --- monitoring ---------------------------------------------------------------

OBS=deploy/observability

rules_step() {
    obs prometheusrule
    promtool check rules "$OBS/triggered-cache.rules.yaml" 2>&1 | sed 's/^/    /'
    promtool test rules "$OBS/triggered-cache.rules.test.yaml" 2>&1 | sed 's/^/    /'
}

monitoring_step() {
    # The component added to a copy of the example overlay, as an operator
    # adds it to theirs (deploy/README-deploy.md, "Monitoring").
    local copy="$WORK/k8s-monitoring"
    rm -rf "$copy" && mkdir -p "$copy" && cp -r deploy/k8s "$copy/"
    sed -i 's#^  - ../../components/keda$#&\n  - ../../components/monitoring#' "$copy/k8s/overlays/example/kustomization.yaml"
    "$STATE/bin/kubectl" kustomize "$copy/k8s/overlays/example" >"$WORK/k8s/example-monitoring.yaml"
    log "example + components/monitoring: $(grep '^kind:' "$WORK/k8s/example-monitoring.yaml" | cut -d' ' -f2 | tr '\n' ' ')"
    # kubernetes-validate has no schema for monitoring.coreos.com kinds (it
    # only warns): the PodMonitor and the PrometheusRule are checked against
    # the Prometheus Operator's CRD models instead, and the rules of the
    # rendered spec with promtool.
    obs monitoring "$WORK/k8s/example-monitoring.yaml" "$WORK/prometheusrule-spec.yaml"
    promtool check rules "$WORK/prometheusrule-spec.yaml" 2>&1 | sed 's/^/    /'
}

dashboard_step() {
    # Its queries, as recording rules, so that promtool parses every one.
    obs dashboard "$WORK/dashboard-queries.yaml"
    promtool check rules "$WORK/dashboard-queries.yaml" 2>&1 | sed 's/^/    /'
}

# The daemon's /metrics without the image: the debug binary the tests use
# (built as they build it, with the dev-dependencies' features: nothing to do
# after scripts/test.sh) with the image's config file and the ECS task
# definition's environment, against the emulator.
# Builds target/debug/triggered-cache if it is missing or stale.
debug_binary() {
    local bin="$ROOT/target/debug/triggered-cache"
    log "cargo test --no-run --test binary (builds target/debug/triggered-cache if it is missing or stale)"
    nice -n 10 cargo test --locked --quiet --no-run --test binary
    [[ -x "$bin" ]] || { log "no $bin"; return 1; }
}

scrape_debug_binary() {
    local bin="$ROOT/target/debug/triggered-cache" http_port k v
    debug_binary
    http_port="$(free_port)"
    helper env-file --task-definition "$WORK/stacks/task-definition.json" >"$WORK/binary.env"
    while IFS='=' read -r k v; do export "$k=$v"; done <"$WORK/binary.env"
    export TRIGGERED_CACHE_CONFIG="$ROOT/deploy/docker/config.toml"
    export TRIGGERED_CACHE__AWS__ENDPOINT_URL="http://127.0.0.1:$(moto_port)"
    export TRIGGERED_CACHE__HTTP__LISTEN="127.0.0.1:$http_port"
    export TRIGGERED_CACHE__SQS__WAIT_TIME=1s
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    "$bin" run 2>"$WORK/binary.log" &
    local pid=$!
    echo "$pid" >"$WORK/daemon.pid"
    local base="http://127.0.0.1:$http_port" rc=0 ready
    if ready="$(helper wait-http "$base/readyz" --contains '"ready":true' --timeout 30)"; then
        log "target/debug/triggered-cache run (pid $pid), GET /readyz: $ready"
        helper wait-http "$base/metrics" --contains triggered_cache_ --timeout 10 --show 10000000 >"$WORK/metrics.txt" || rc=1
    else
        echo "$ready"
        rc=1
    fi
    kill -TERM "$pid"
    wait "$pid" || rc=1
    rm -f "$WORK/daemon.pid"
    [[ "$rc" == 0 ]] || { tail -20 "$WORK/binary.log"; return 1; }
}

metric_names_step() {
    if [[ -s "$WORK/metrics.txt" ]]; then
        log "/metrics of the image's run"
    else
        scrape_debug_binary
    fi
    log "/metrics: $(grep -c '^triggered_cache_' "$WORK/metrics.txt") samples"
    obs metric-names "$WORK/metrics.txt"
}
