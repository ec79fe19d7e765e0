#!/usr/bin/env bash
# Manages a local AWS emulator (moto or ministack) for development and tests.
# Run `scripts/local-aws.sh --help` for the commands.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts"
VENV="$ROOT/.venv"
LOCAL="$ROOT/.local"
PY="$VENV/bin/python"

# Pinned versions. ministack pins botocore==1.43.106 exactly, so boto3 and
# botocore are pinned to that release for both emulators: moto and ministack
# then share the one virtualenv without a dependency conflict, whichever is
# installed first.
MOTO_VERSION="5.2.5"
MINISTACK_VERSION="1.5.33"
BOTO3_VERSION="1.43.106"
BOTOCORE_VERSION="1.43.106"

DEFAULT_PORT=4566
DEFAULT_EMULATOR=moto
DEFAULT_START_TIMEOUT=60

prog="scripts/local-aws.sh"

usage() {
    cat <<EOF
Usage: $prog COMMAND [OPTIONS]

Manages a local AWS emulator (SQS, SNS, DynamoDB) bound to 127.0.0.1 for
development and the integration tests. Everything lives in the repository:
the virtualenv in .venv/, logs, pid files and env files in .local/.

Commands:
  install [moto|ministack]
      Create .venv/ (python3 -m venv) and install the emulator, pinned:
      moto[server]==$MOTO_VERSION (default) or ministack==$MINISTACK_VERSION,
      plus boto3==$BOTO3_VERSION and botocore==$BOTOCORE_VERSION (the botocore
      ministack pins, so both emulators can share .venv/). Quick no-op when
      already installed.

  start [--emulator moto|ministack] [--port N | --free-port] [--timeout S]
        [--long-poll-tick MS]
      Install if needed, start the emulator in the background on
      127.0.0.1:PORT (default $DEFAULT_PORT), log to .local/emulator-PORT.log,
      record its pid in .local/emulator-PORT.pid, and wait (at most S
      seconds, default $DEFAULT_START_TIMEOUT) until it answers SQS requests.
      Reuses an emulator this script already started on that port. Fails if
      the port is taken by anything else. --free-port picks an unused port.
      Stdout gets exactly one line, the endpoint: http://127.0.0.1:PORT
      (progress messages go to stderr), so ENDPOINT=\$($prog start --free-port)
      works.
      --long-poll-tick MS (ministack only): check a waiting ReceiveMessage
      long poll every MS ms instead of ministack's 100, so it answers about
      as soon as a message arrives, as SQS does (for measuring latency; see
      scripts/emulator/ministack_server.py).

  stop [--port N]
      Stop the emulator recorded in .local/emulator-PORT.pid (default port
      $DEFAULT_PORT) and remove the pid file. Never touches any other process.
      Succeeds when nothing is recorded.

  status
      List the emulators recorded in .local/ and whether they are running.

  provision --endpoint URL --name NAME [--sort-key] [--max-receive-count N]
      Create (idempotently) on the emulator at URL: SQS queue NAME-requests
      with dead-letter queue NAME-dlq (maxReceiveCount N, default 10: keep it
      above every set's max_attempts; visibility timeout 30s), DynamoDB table NAME (partition key pk:S, plus sort key sk:S with
      --sort-key; on-demand), SNS topic NAME-events and SQS queue NAME-events
      subscribed to it with raw message delivery. Writes the daemon's
      environment to .local/NAME.env and prints it. NAME: 3 to 71 of
      letters, digits, '-', '_'.

  env --name NAME
      Print .local/NAME.env (use: source <($prog env --name NAME)).

Examples:
  $prog start
  $prog provision --endpoint http://127.0.0.1:4566 --name dev
  source .local/dev.env && cargo run -- run
  scripts/watch-events.py --endpoint "\$TRIGGERED_CACHE__AWS__ENDPOINT_URL" \\
      --queue-url "\$EVENTS_QUEUE_URL"
  $prog stop
EOF
}

log() { printf '%s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

# The commands, one file per concern under scripts/emulator/: install,
# the processes (start, stop, status), the resources (provision, env).
# shellcheck source=scripts/emulator/install.sh
source "$SCRIPTS/emulator/install.sh"
# shellcheck source=scripts/emulator/processes.sh
source "$SCRIPTS/emulator/processes.sh"
# shellcheck source=scripts/emulator/resources.sh
source "$SCRIPTS/emulator/resources.sh"

main() {
    [[ $# -gt 0 ]] || { usage >&2; exit 2; }
    local cmd="$1"
    shift
    case "$cmd" in
        install)
            case "${1:-}" in
                -h | --help) usage; exit 0 ;;
            esac
            [[ $# -le 1 ]] || die "install takes at most one argument (moto or ministack)"
            do_install "${1:-$DEFAULT_EMULATOR}"
            ;;
        start) do_start "$@" ;;
        stop) do_stop "$@" ;;
        status) do_status "$@" ;;
        provision) do_provision "$@" ;;
        env) do_env "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; die "unknown command '$cmd'" ;;
    esac
}

main "$@"
