#!/usr/bin/env bash
# Verifies the deploy artifacts offline: Dockerfile, deploy/k8s, deploy/ecs,
# deploy/iam, deploy/aws and deploy/observability (alert rules, dashboard).
# Installs every tool it needs itself (apt: podman, runc, debootstrap,
# prometheus for promtool; PyPI, into .venv-deploy/: the rest), starts its
# own AWS emulator (moto) on a free 127.0.0.1 port and stops it again, and
# builds and runs the image with podman against local stand-ins of the base
# images (no image registry is reachable in CI). The metric names that the
# dashboard and the alert rules use are checked against a real /metrics:
# the image's, or with --no-image the debug binary's (built by cargo if
# needed), both run against the emulator.
#
#   scripts/verify-deploy.sh               everything (~10 min the first time)
#   scripts/verify-deploy.sh --no-image    the checks without the image build
#   scripts/verify-deploy.sh --keep        keep the scratch directory
#
# Cheap checks run first; a failing check does not stop the others. The last
# line is "verify-deploy: N passed, N failed"; the exit code is 1 if any
# failed. Everything it keeps between runs lives in .venv-deploy/ (git-ignored
# by the .gitignore it writes there) and in podman's image store (the
# stand-ins localhost/verify-deploy/*, the image localhost/triggered-cache:verify).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STATE="$ROOT/.venv-deploy"
PY="$STATE/bin/python"
HELPER="scripts/deploy/verify.py"
OBS_HELPER="scripts/deploy/observability.py"
REQUIREMENTS="scripts/deploy/requirements.txt"
APT_PACKAGES=(podman runc netavark debootstrap)   # for the image
APT_PACKAGES_ALWAYS=(prometheus)                  # promtool
DEBIAN_SUITE=bookworm            # the Debian of both base images (Dockerfile)
STANDIN_BUILDER_PACKAGES=gcc,libc6-dev,ca-certificates,netbase
IMAGE=localhost/triggered-cache:verify
STANDIN_VERSION=1                # bump to rebuild the stand-ins

WITH_IMAGE=1
KEEP=0
for arg in "$@"; do
    case "$arg" in
        --no-image) WITH_IMAGE=0 ;;
        --keep) KEEP=1 ;;
        -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "verify-deploy: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/verify-deploy.XXXXXX")"
CONTAINER="verify-deploy-$$"

# Steps run in subshells; what must outlive one (the emulator's pid and port,
# the container) is recorded in $WORK, and cleanup ends exactly those.
cleanup() {
    local rc=$?
    if [[ -f "$WORK/container.started" ]]; then
        podman rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
    fi
    if [[ -f "$WORK/daemon.pid" ]]; then
        kill "$(cat "$WORK/daemon.pid")" 2>/dev/null || true
    fi
    if [[ -f "$WORK/moto.pid" ]]; then
        local pid tries=50
        pid="$(cat "$WORK/moto.pid")"
        if kill "$pid" 2>/dev/null; then
            while ((tries-- > 0)) && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
    fi
    if [[ "$KEEP" == 1 ]]; then
        echo "verify-deploy: scratch directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# --- tools --------------------------------------------------------------------

install_apt() {
    local missing=() packages=("${APT_PACKAGES_ALWAYS[@]}")
    command -v promtool >/dev/null || missing+=(prometheus)
    if [[ "$WITH_IMAGE" == 1 ]]; then
        packages+=("${APT_PACKAGES[@]}")
        command -v podman >/dev/null || missing+=(podman)
        command -v runc >/dev/null || missing+=(runc)
        command -v debootstrap >/dev/null || missing+=(debootstrap)
        [[ -x /usr/lib/podman/netavark ]] || missing+=(netavark)
    fi
    if [[ ${#missing[@]} == 0 ]]; then
        log "apt: nothing to install"
        return 0
    fi
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    log "apt: installing ${missing[*]}"
    $sudo apt-get update -qq >"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log"; return 1; }
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" \
        >>"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log"; return 1; }
}

install_venv() {
    local stamp="$STATE/.requirements.sha256" want
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    if [[ -x "$PY" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "venv: .venv-deploy is up to date"
        return 0
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        { log "python3 is older than 3.11"; return 1; }
    rm -rf "${STATE:?}/bin" "${STATE:?}/lib" "${STATE:?}/include" "${STATE:?}/pyvenv.cfg"
    python3 -m venv "$STATE"
    printf '*\n' >"$STATE/.gitignore"
    log "venv: installing $(grep -cv '^\(#\|$\)' "$REQUIREMENTS") pinned packages"
    "$STATE/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" >"$WORK/pip.log" 2>&1 ||
        { tail -30 "$WORK/pip.log"; return 1; }
    echo "$want" >"$stamp"
}

tools() {
    install_apt
    install_venv
    local v="$STATE/bin"
    log "$("$v/hadolint" --version), $(promtool --version 2>&1 | head -1)"
    [[ "$WITH_IMAGE" == 0 ]] || log "$(podman --version)"
    log "yamllint $("$v/yamllint" --version | cut -d' ' -f2), cfn-lint $("$v/cfn-lint" --version | cut -d' ' -f2)," \
        "kubectl $("$v/kubectl" version --client 2>/dev/null | head -1 | cut -d' ' -f3)," \
        "kustomize $("$v/kubectl" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')," \
        "kubernetes-validate $("$v/kubernetes-validate" --version 2>&1 | tr -d '\n'), checkov $("$v/checkov" --version)"
}

# --- cheap checks ---------------------------------------------------------------

hadolint_step() {
    "$STATE/bin/hadolint" --config .hadolint.yaml Dockerfile
    helper dockerfile
}

yamllint_step() {
    "$STATE/bin/yamllint" --strict --config-file .yamllint deploy/ .yamllint .hadolint.yaml scripts/deploy/checkov.yaml
    log "yamllint: no findings"
}

OVERLAYS=(example example-hpa)

kustomize_step() {
    mkdir -p "$WORK/k8s"
    "$STATE/bin/kubectl" kustomize deploy/k8s/base >"$WORK/k8s/base.yaml"
    local o
    for o in "${OVERLAYS[@]}"; do
        "$STATE/bin/kubectl" kustomize "deploy/k8s/overlays/$o" >"$WORK/k8s/$o.yaml"
        log "$o: $(grep -c '^kind:' "$WORK/k8s/$o.yaml") resources: $(grep '^kind:' "$WORK/k8s/$o.yaml" | cut -d' ' -f2 | tr '\n' ' ')"
    done
}

k8s_validate_step() {
    local o k rc=0
    for o in base "${OVERLAYS[@]}"; do
        helper split-k8s "$WORK/k8s/$o.yaml" "$WORK/k8s/$o.core.yaml"
        for k in 1.30.0 1.37.0; do
            # A kind without a schema is only a warning to kubernetes-validate:
            # here it fails (the KEDA kinds were split off for their own check).
            "$STATE/bin/kubernetes-validate" --strict --quiet -k "$k" "$WORK/k8s/$o.core.yaml" >"$WORK/kv.out" 2>&1 || rc=1
            if [[ -s "$WORK/kv.out" ]]; then
                cat "$WORK/kv.out"
                rc=1
            fi
        done
        [[ "$rc" == 0 ]] && log "$o: valid against Kubernetes 1.30 and 1.37 (strict)"
    done
    return "$rc"
}

k8s_policy_step() {
    local o rc=0
    for o in "${OVERLAYS[@]}"; do
        helper k8s "$WORK/k8s/$o.yaml" || rc=1
    done
    helper hpa "$WORK/k8s/example-hpa.yaml" || rc=1
    return "$rc"
}

keda_step() {
    helper keda "$WORK/k8s/example.yaml"
    # The trigger follows the overlay's values (kustomize replacements): render
    # a copy of the tree whose overlay names another queue and region.
    local copy="$WORK/k8s-copy" url="https://sqs.eu-west-1.amazonaws.com/210987654321/other-requests"
    rm -rf "$copy" && mkdir -p "$copy" && cp -r deploy/k8s "$copy/"
    sed -i -e "s#TRIGGERED_CACHE__SQS__QUEUE_URL=.*#TRIGGERED_CACHE__SQS__QUEUE_URL=$url#" \
        -e 's#TRIGGERED_CACHE__AWS__REGION=.*#TRIGGERED_CACHE__AWS__REGION=eu-west-1#' \
        "$copy/k8s/overlays/example/kustomization.yaml"
    "$STATE/bin/kubectl" kustomize "$copy/k8s/overlays/example" >"$WORK/k8s/example-other.yaml"
    helper keda "$WORK/k8s/example-other.yaml" --queue-url "$url" --region eu-west-1
}

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

checkov_step() {
    mkdir -p "$WORK/checkov"
    cp "$WORK/k8s/example.yaml" "$WORK/k8s/example-hpa.yaml" "$WORK/checkov/"
    "$STATE/bin/checkov" --config-file scripts/deploy/checkov.yaml \
        -f Dockerfile -f deploy/aws/triggered-cache.yaml \
        -f "$WORK/checkov/example.yaml" -f "$WORK/checkov/example-hpa.yaml"
}

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

# --- the image ----------------------------------------------------------------

podman_conf() {
    # Debian's podman with runc, and limits a container may have here:
    # podman's defaults for open files and processes are above this machine's
    # hard limits (runc then fails with "error setting rlimit"). Processes:
    # podman itself runs with at most kernel.pid_max.
    local n u pid_max
    n="$(ulimit -Hn)"
    u="$(ulimit -Hu)"
    pid_max="$(cat /proc/sys/kernel/pid_max)"
    [[ "$n" == unlimited ]] && n=1048576
    [[ "$u" == unlimited || "$u" -gt "$pid_max" ]] && u="$pid_max"
    cat >"$STATE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$n:$n", "nproc=$u:$u"]

[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF="$STATE/containers.conf"
}

label_of() {
    podman image inspect --format "{{index .Labels \"verify-deploy.key\"}}" "$1" 2>/dev/null || true
}

debian_mirror() {
    # The Debian archive this machine's apt uses (the stand-ins come from the
    # same place as its packages).
    # shellcheck disable=SC2016 # $(REPO_URI) is apt's field, not the shell's
    apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
        grep -E '/debian/?$' | head -1
}

# Stand-ins for the Dockerfile's base images, built from a Debian root
# filesystem (debootstrap) and this machine's Rust toolchain:
#   builder: Debian 12 with gcc, libc6-dev, ca-certificates (as rust:*-slim-bookworm)
#            and the toolchain under /usr/local/rustup, cargo on PATH
#   runtime: the files of distroless/cc-debian12's packages, users root,
#            nobody, nonroot (65532), no shell
BUILDER_STANDIN=""
RUNTIME_STANDIN=localhost/verify-deploy/distroless-cc-debian12:nonroot
standins_step() {
    local rustc toolchain version
    rustc="$(rustup which rustc 2>/dev/null || command -v rustc)"
    toolchain="$(dirname "$(dirname "$(readlink -f "$rustc")")")"
    version="$("$toolchain/bin/rustc" --version | cut -d' ' -f2)"
    local pinned
    pinned="$(sed -n 's/^ARG BUILDER_IMAGE=.*rust:\([0-9.]*\)-.*/\1/p' Dockerfile)"
    if [[ "$version" != "$pinned" ]]; then
        log "note: this machine's Rust is $version, the Dockerfile pins $pinned: the builder stand-in carries $version"
    fi
    BUILDER_STANDIN="localhost/verify-deploy/rust:$version-slim-$DEBIAN_SUITE"

    local ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
    local key_builder key_runtime
    key_builder="$( { echo "$STANDIN_VERSION $DEBIAN_SUITE $STANDIN_BUILDER_PACKAGES"; "$toolchain/bin/rustc" -vV; sha256sum "$ca"; } | sha256sum | cut -c1-16)"
    key_runtime="$( { echo "$STANDIN_VERSION $DEBIAN_SUITE $STANDIN_BUILDER_PACKAGES"; sed -n '/^DISTROLESS_CC_PACKAGES/p' scripts/deploy/checks/image.py; } | sha256sum | cut -c1-16)"
    if [[ "$(label_of "$BUILDER_STANDIN")" == "$key_builder" && "$(label_of "$RUNTIME_STANDIN")" == "$key_runtime" ]]; then
        log "stand-ins are up to date: $BUILDER_STANDIN, $RUNTIME_STANDIN"
        echo "$BUILDER_STANDIN" >"$WORK/builder-standin"
        return 0
    fi

    local mirror rootfs="$WORK/rootfs"
    mirror="$(debian_mirror)"
    [[ -n "$mirror" ]] || { log "no Debian archive in this machine's apt sources"; return 1; }
    log "debootstrap $DEBIAN_SUITE (minbase + $STANDIN_BUILDER_PACKAGES)"
    debootstrap --variant=minbase --include="$STANDIN_BUILDER_PACKAGES" "$DEBIAN_SUITE" "$rootfs" "$mirror" \
        >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; return 1; }

    # runtime: only distroless/cc's packages out of that root
    helper standin-runtime "$rootfs" "$WORK/runtime-root"
    tar -C "$WORK/runtime-root" -cf - . | podman import --quiet \
        --change 'USER 65532' --change 'WORKDIR /home/nonroot' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change "LABEL verify-deploy.key=$key_runtime" \
        --change 'LABEL verify-deploy.stand-in-for=gcr.io/distroless/cc-debian12:nonroot' \
        - "$RUNTIME_STANDIN" >/dev/null
    log "imported $RUNTIME_STANDIN"

    # builder: the whole root, this machine's toolchain (without its docs),
    # and this machine's CA bundle, through which cargo reaches the crate
    # registry from inside the build here.
    local tc="$rootfs/usr/local/rustup/toolchains/$version-x86_64-unknown-linux-gnu" b
    mkdir -p "$tc" "$rootfs/usr/local/cargo/bin"
    tar -C "$toolchain" -cf - bin lib libexec etc 2>/dev/null | tar -C "$tc" -xf -
    for b in cargo rustc rustdoc; do
        ln -sf "../../rustup/toolchains/$version-x86_64-unknown-linux-gnu/bin/$b" "$rootfs/usr/local/cargo/bin/$b"
    done
    cp "$ca" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    tar -C "$rootfs" -cf - . | podman import --quiet \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup' --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL verify-deploy.key=$key_builder" \
        --change "LABEL verify-deploy.stand-in-for=docker.io/library/rust:$version-slim-$DEBIAN_SUITE" \
        - "$BUILDER_STANDIN" >/dev/null
    log "imported $BUILDER_STANDIN (rustc $version)"
    rm -rf "$rootfs" "$WORK/runtime-root"
    echo "$BUILDER_STANDIN" >"$WORK/builder-standin"
}

build_step() {
    local standin revision
    standin="$(cat "$WORK/builder-standin")"
    revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    log "podman build (the Dockerfile as it is; base images passed as --build-arg)"
    # host network: the build reaches the crate registry like this machine
    # does, and no container traffic leaves the loopback/host namespace.
    local rc=0
    nice -n 10 podman build --pull=never --network=host --format=docker \
        --build-arg "BUILDER_IMAGE=$standin" \
        --build-arg "RUNTIME_IMAGE=$RUNTIME_STANDIN" \
        --build-arg "REVISION=$revision" \
        --tag "$IMAGE" --file Dockerfile . >"$WORK/build.log" 2>&1 || rc=$?
    grep -E 'STEP [0-9]+/[0-9]+:' "$WORK/build.log" | cut -c1-110 | sed 's/^/    /' || true
    log "$(grep -c '^--> Using cache' "$WORK/build.log" || true) steps from podman's layer cache"
    grep -E 'Finished .release' "$WORK/build.log" | sed 's/^ */    cargo: /' || true
    if [[ "$rc" != 0 ]]; then
        tail -40 "$WORK/build.log"
        return "$rc"
    fi
    podman image inspect "$IMAGE" >"$WORK/image.json"
    helper image-inspect "$WORK/image.json"
}

# podman run options: the strictest that the daemon must live with.
RUN_OPTS=(--read-only --read-only-tmpfs=false --cap-drop=all --security-opt=no-new-privileges)
# One-shot runs: no health checks (podman would schedule them with systemd).
ONCE_OPTS=(--rm --no-healthcheck --network=none)

config_step() {
    local out
    out="$(podman run "${ONCE_OPTS[@]}" "${RUN_OPTS[@]}" "$IMAGE" --version)"
    log "$out"
    # The image's own configuration with the ECS task definition's environment.
    helper env-file --task-definition "$WORK/stacks/task-definition.json" >"$WORK/ecs.env"
    podman run "${ONCE_OPTS[@]}" "${RUN_OPTS[@]}" --env-file "$WORK/ecs.env" "$IMAGE" config check >"$WORK/check-ecs.txt" 2>&1 ||
        { cat "$WORK/check-ecs.txt"; return 1; }
    local url
    url="$(sed -n 's/^TRIGGERED_CACHE__SETS__SUMMARY__PROCESSOR__URL=//p' "$WORK/ecs.env")"
    grep -qF "url = \"$url\"" "$WORK/check-ecs.txt" ||
        { log "the processor URL from the environment ($url) did not reach the configuration"; return 1; }
    log "config check: image config + ECS task definition environment: ok (processor $url)"
    # The Kubernetes ConfigMap's TOML with the overlay's environment.
    helper k8s-config "$WORK/k8s/example.yaml" >"$WORK/k8s-config.toml"
    helper env-file --overlay "$WORK/k8s/example.yaml" >"$WORK/k8s.env"
    podman run "${ONCE_OPTS[@]}" "${RUN_OPTS[@]}" --env-file "$WORK/k8s.env" \
        -v "$WORK/k8s-config.toml:/etc/triggered-cache/config.toml:ro" "$IMAGE" config check >"$WORK/check-k8s.txt" 2>&1 ||
        { cat "$WORK/check-k8s.txt"; return 1; }
    log "config check: Kubernetes ConfigMap + overlay environment: ok"
    # Without the AWS values the daemon refuses to start, naming the keys.
    local rc=0
    podman run "${ONCE_OPTS[@]}" "${RUN_OPTS[@]}" "$IMAGE" run >"$WORK/check-empty.txt" 2>&1 || rc=$?
    if [[ "$rc" != 2 ]] || ! grep -q 'sqs.queue_url' "$WORK/check-empty.txt"; then
        cat "$WORK/check-empty.txt"
        log "expected exit code 2 naming sqs.queue_url without configuration, got $rc"
        return 1
    fi
    log "no configuration: exit code 2, names the missing keys"
}

run_step() {
    local http_port
    http_port="$(free_port)"
    # Run as ECS would (the task definition's environment), against the
    # emulator's resources from the ECS stack; host network so that all
    # traffic stays on 127.0.0.1.
    cp "$WORK/ecs.env" "$WORK/run.env"
    cat >>"$WORK/run.env" <<EOF
TRIGGERED_CACHE__AWS__ENDPOINT_URL=http://127.0.0.1:$(moto_port)
TRIGGERED_CACHE__HTTP__LISTEN=127.0.0.1:$http_port
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
EOF
    touch "$WORK/container.started"
    # The image's HEALTHCHECK, on this run's port. (Without systemd podman
    # cannot schedule it and says so on stderr; `podman healthcheck run`
    # below runs it.)
    podman run -d --name "$CONTAINER" "${RUN_OPTS[@]}" --network=host --env-file "$WORK/run.env" \
        --health-cmd "[\"/usr/local/bin/triggered-cache\", \"healthcheck\", \"http://127.0.0.1:$http_port/healthz\"]" \
        "$IMAGE" >"$WORK/run.out" 2>&1 || { cat "$WORK/run.out"; return 1; }
    log "podman run -d ${RUN_OPTS[*]} --network=host: container $CONTAINER"
    local base="http://127.0.0.1:$http_port"
    log "GET /healthz: $(helper wait-http "$base/healthz" --timeout 30)"
    log "GET /readyz: $(helper wait-http "$base/readyz" --contains '"ready":true' --timeout 30)"
    helper wait-http "$base/metrics" --contains triggered_cache_ --timeout 10 --show 10000000 >"$WORK/metrics.txt"
    log "GET /metrics: $(grep -c '^triggered_cache_' "$WORK/metrics.txt") samples"
    podman healthcheck run "$CONTAINER" >/dev/null
    log "HEALTHCHECK (triggered-cache healthcheck): healthy"
    local user
    user="$(podman top "$CONTAINER" huser user | tail -1 | awk '{print $1, $2}')"
    log "process user (host uid, container user): $user"
    [[ "${user%% *}" == 65532 ]] || { log "the daemon does not run as uid 65532"; return 1; }

    # podman stop: SIGTERM; readiness goes 503 at once, then a clean exit 0.
    local t=$SECONDS
    podman stop -t 60 "$CONTAINER" >/dev/null 2>"$WORK/stop.err" &
    local stopper=$!
    if helper wait-http "$base/readyz" --status 503 --timeout 10 --show 0 >/dev/null; then
        log "GET /readyz during shutdown: 503"
    else
        log "note: /readyz was not seen at 503 (the drain was quicker than the poll)"
    fi
    wait "$stopper"
    local code
    code="$(podman inspect --format '{{.State.ExitCode}}' "$CONTAINER")"
    log "podman stop: exit code $code after $((SECONDS - t))s"
    podman logs "$CONTAINER" >"$WORK/daemon.log" 2>&1
    helper check-logs "$WORK/daemon.log"
    [[ "$code" == 0 ]] || { tail -20 "$WORK/daemon.log"; return 1; }
}

# --- main ---------------------------------------------------------------------

echo "verify-deploy: $ROOT (scratch $WORK)"
step "tools (apt: ${APT_PACKAGES_ALWAYS[*]} ${APT_PACKAGES[*]}; PyPI: .venv-deploy)" tools
if [[ "$FAILED" != 0 ]]; then
    echo "verify-deploy: the tools could not be installed"
    echo "verify-deploy: $PASSED passed, $FAILED failed"
    exit 1
fi
step "hadolint + Dockerfile contract" hadolint_step
step "yamllint" yamllint_step
step "kustomize build (kubectl kustomize)" kustomize_step
if [[ -s "$WORK/k8s/example.yaml" ]]; then
    step "kubernetes-validate --strict" k8s_validate_step
    step "Kubernetes: restricted PSS, probes, shutdown, PDB, HPA" k8s_policy_step
    step "KEDA ScaledObject: schema and trigger" keda_step
    step "checkov" checkov_step
    step "monitoring component: PodMonitor, PrometheusRule" monitoring_step
else
    skip "Kubernetes checks" "nothing rendered"
fi
step "alert rules: promtool check + test, PrometheusRule in sync" rules_step
step "Grafana dashboard: structure, queries parse" dashboard_step
step "ECS: botocore input shapes" ecs_step
step "IAM: actions and parliament" iam_step
step "CloudFormation: cfn-lint" cfn_lint_step
step "AWS emulator (moto_server)" start_moto
if [[ -s "$WORK/moto.port" ]]; then
    step "CloudFormation stacks in the emulator" emulator_step
else
    skip "CloudFormation stacks in the emulator" "no emulator"
fi

if [[ "$WITH_IMAGE" == 1 ]]; then
    podman_conf
    step "base image stand-ins" standins_step
    if [[ -s "$WORK/builder-standin" ]]; then
        step "podman build" build_step
    else
        skip "podman build" "no stand-ins"
    fi
    if podman image exists "$IMAGE" && [[ -s "$WORK/image.json" ]]; then
        if [[ -s "$WORK/stacks/task-definition.json" ]]; then
            step "the image: config check" config_step
            step "the image: run read-only, probes, podman stop" run_step
        else
            skip "the image: run" "no emulator stacks"
        fi
    else
        skip "the image: run" "no image"
    fi
else
    skip "the image" "--no-image"
fi
if [[ -s "$WORK/metrics.txt" || -s "$WORK/stacks/task-definition.json" ]]; then
    step "dashboard and alert rules: metric names in /metrics" metric_names_step
else
    skip "dashboard and alert rules: metric names in /metrics" "no daemon to scrape (no emulator stacks)"
fi

printf '\nverify-deploy: step times\n'
printf '%s\n' "${TIMES[@]}"
printf '%5ss  total\n' "$((SECONDS - T0))"
if [[ "$FAILED" != 0 ]]; then
    printf 'verify-deploy: failed: %s\n' "${FAILED_STEPS[*]}"
fi
echo "verify-deploy: $PASSED passed, $FAILED failed"
[[ "$FAILED" == 0 ]]
