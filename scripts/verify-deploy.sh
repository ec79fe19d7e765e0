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

# The steps, one file per concern, under scripts/deploy/ (with the Python
# helpers they call): bookkeeping, tools, linters, Kubernetes, AWS,
# monitoring, the image. Each only defines functions and settings; the order
# in which they run is below.
# shellcheck source=scripts/deploy/steps.sh
source "$ROOT/scripts/deploy/steps.sh"
# shellcheck source=scripts/deploy/tools.sh
source "$ROOT/scripts/deploy/tools.sh"
# shellcheck source=scripts/deploy/lint.sh
source "$ROOT/scripts/deploy/lint.sh"
# shellcheck source=scripts/deploy/k8s.sh
source "$ROOT/scripts/deploy/k8s.sh"
# shellcheck source=scripts/deploy/aws.sh
source "$ROOT/scripts/deploy/aws.sh"
# shellcheck source=scripts/deploy/observability.sh
source "$ROOT/scripts/deploy/observability.sh"
# shellcheck source=scripts/deploy/image.sh
source "$ROOT/scripts/deploy/image.sh"

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
