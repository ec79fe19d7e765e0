# shellcheck shell=bash
# Sourced by scripts/local-aws.sh: the emulator processes (start, stop,
# status). Each one is recorded in .local/emulator-PORT.{pid,emulator,log},
# and only a recorded pid that is still the emulator this script started is
# ever signalled.
# It only defines functions; scripts/local-aws.sh sets ROOT, SCRIPTS, VENV,
# LOCAL, PY, the pinned versions and the defaults these use, and log and die.

pid_file() { echo "$LOCAL/emulator-$1.pid"; }
kind_file() { echo "$LOCAL/emulator-$1.emulator"; }
log_file() { echo "$LOCAL/emulator-$1.log"; }

# Prints the pid recorded for PORT if that process is alive and is the
# emulator binary from our .venv (guards against a recycled pid).
live_pid() {
    local port="$1" pf pid kind bin
    pf="$(pid_file "$port")"
    [[ -f "$pf" ]] || return 1
    pid="$(tr -dc '0-9' <"$pf")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    kind="$(cat "$(kind_file "$port")" 2>/dev/null || true)"
    [[ "$kind" == moto || "$kind" == ministack ]] || return 1
    # The process must still be the emulator this script started.
    case "$kind" in
        moto) bin="$SCRIPTS/emulator/moto_server.py" ;;
        *) bin="$SCRIPTS/emulator/ministack_server.py" ;;
    esac
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$bin" || return 1
    fi
    echo "$pid"
}

forget() {
    rm -f "$(pid_file "$1")" "$(kind_file "$1")"
}

port_free() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

free_port() {
    python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Waits until the emulator at $1 answers an SQS ListQueues, while pid $2
# lives, for at most $3 seconds.
wait_ready() {
    "$PY" - "$@" <<'EOF'
import os, sys, time
import boto3
from botocore.config import Config

endpoint, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sqs = boto3.client(
    "sqs", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id="test", aws_secret_access_key="test",
    config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
)
deadline = time.monotonic() + timeout
last = None
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        print(f"the emulator (pid {pid}) exited", file=sys.stderr)
        sys.exit(2)
    try:
        sqs.list_queues()
        sys.exit(0)
    except Exception as e:  # not listening yet, or still starting
        last = e
    time.sleep(0.2)
print(f"no answer from {endpoint} within {timeout:g}s (last error: {last})", file=sys.stderr)
sys.exit(1)
EOF
}

do_start() {
    local emulator="$DEFAULT_EMULATOR" port="" pick=0 timeout="$DEFAULT_START_TIMEOUT" tick=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --emulator) emulator="${2:?--emulator needs moto or ministack}"; shift 2 ;;
            --emulator=*) emulator="${1#*=}"; shift ;;
            --port) port="${2:?--port needs a number}"; shift 2 ;;
            --port=*) port="${1#*=}"; shift ;;
            --free-port) pick=1; shift ;;
            --timeout) timeout="${2:?--timeout needs seconds}"; shift 2 ;;
            --timeout=*) timeout="${1#*=}"; shift ;;
            --long-poll-tick) tick="${2:?--long-poll-tick needs milliseconds}"; shift 2 ;;
            --long-poll-tick=*) tick="${1#*=}"; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "start: unknown argument '$1' (see --help)" ;;
        esac
    done
    check_emulator "$emulator"
    [[ "$timeout" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds, not '$timeout'"
    if [[ -n "$tick" ]]; then
        [[ "$tick" =~ ^[0-9]+$ && "$tick" -ge 1 && "$tick" -le 100 ]] ||
            die "--long-poll-tick must be whole milliseconds from 1 to 100, not '$tick'"
        [[ "$emulator" == ministack ]] ||
            die "--long-poll-tick is for ministack (moto's long polls already answer at once)"
    fi
    if [[ $pick == 1 ]]; then
        [[ -z "$port" ]] || die "give --port or --free-port, not both"
        port="$(free_port)"
    fi
    port="${port:-$DEFAULT_PORT}"
    [[ "$port" =~ ^[0-9]+$ && "$port" -ge 1 && "$port" -le 65535 ]] || die "bad port '$port'"
    local endpoint="http://127.0.0.1:$port" pid

    mkdir -p "$LOCAL"
    # One start per port at a time; the emulator must not inherit this fd.
    exec 8>"$LOCAL/emulator-$port.lock"
    if command -v flock >/dev/null; then flock 8; fi
    if pid="$(live_pid "$port")"; then
        local kind
        kind="$(cat "$(kind_file "$port")")"
        [[ "$kind" == "$emulator" ]] ||
            die "port $port already runs $kind (pid $pid), started by this script; stop it first ($prog stop --port $port) or use another port"
        log "reusing $kind already running on $endpoint (pid $pid)"
        [[ -z "$tick" ]] || log "note: --long-poll-tick applies to an emulator this starts, not to one it reuses"
        ensure_boto3
        wait_ready "$endpoint" "$pid" "$timeout" || die "$kind on $endpoint (pid $pid) does not answer; see $(log_file "$port")"
        echo "$endpoint"
        return 0
    fi
    forget "$port"  # a stale record, if any

    do_install "$emulator"
    port_free "$port" ||
        die "port $port on 127.0.0.1 is in use by a process this script did not start; stop it, or pick another port with --port N or --free-port"

    local logf started=$SECONDS
    logf="$(log_file "$port")"
    : >"$logf"
    log "starting $emulator on $endpoint (log: .local/$(basename "$logf"))"
    # The emulator keeps running after this script exits; stdin closed.
    case "$emulator" in
        moto)
            # moto's own server behind a wrapper that makes DynamoDB's
            # single-item conditional writes atomic, as the real service's
            # are (see scripts/emulator/moto_server.py).
            nohup "$PY" "$SCRIPTS/emulator/moto_server.py" -H 127.0.0.1 -p "$port" \
                </dev/null >>"$logf" 2>&1 8>&- 9>&- &
            ;;
        ministack)
            # BIND_HOST covers only the HTTP gateway: ministack also opens an
            # IoT MQTT/mTLS listener on 0.0.0.0:8883 by default (and SFTP on
            # 0.0.0.0:2222 once a Transfer server exists), so turn those off.
            # STATE_DIR keeps its scratch files (default /tmp/ministack-state)
            # per port in .local/.
            mkdir -p "$LOCAL/ministack-state-$port"
            # Through scripts/emulator/ministack_server.py: ministack itself,
            # with long polls checked every --long-poll-tick ms if given.
            BIND_HOST=127.0.0.1 GATEWAY_PORT="$port" IOT_MTLS_ENABLED=0 SFTP_ENABLED=0 \
                STATE_DIR="$LOCAL/ministack-state-$port" PERSIST_STATE=0 \
                MINISTACK_LONG_POLL_TICK_MS="$tick" \
                nohup "$PY" "$SCRIPTS/emulator/ministack_server.py" </dev/null >>"$logf" 2>&1 8>&- 9>&- &
            ;;
    esac
    pid=$!
    echo "$pid" >"$(pid_file "$port")"
    echo "$emulator" >"$(kind_file "$port")"

    if ! wait_ready "$endpoint" "$pid" "$timeout"; then
        log "--- last lines of .local/$(basename "$logf") ---"
        tail -n 20 "$logf" >&2 || true
        stop_pid "$port" "$pid"
        die "$emulator did not come up on $endpoint"
    fi
    log "$emulator is up on $endpoint (pid $pid) after $((SECONDS - started))s"
    echo "$endpoint"
}

# Terminates our emulator PID (TERM, then KILL after 10s) and forgets it.
stop_pid() {
    local port="$1" pid="$2" i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 10s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    # Reap it if it is our own child (a failed start).
    wait "$pid" 2>/dev/null || true
    forget "$port"
}

do_stop() {
    local port="$DEFAULT_PORT"
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) port="${2:?--port needs a number}"; shift 2 ;;
            --port=*) port="${1#*=}"; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "stop: unknown argument '$1' (see --help)" ;;
        esac
    done
    [[ "$port" =~ ^[0-9]+$ ]] || die "bad port '$port'"
    local pid kind
    if [[ -d "$LOCAL" ]]; then
        exec 8>"$LOCAL/emulator-$port.lock"
        if command -v flock >/dev/null; then flock 8; fi
    fi
    if pid="$(live_pid "$port")"; then
        kind="$(cat "$(kind_file "$port")")"
        stop_pid "$port" "$pid"
        if kill -0 "$pid" 2>/dev/null; then
            die "$kind (pid $pid) on port $port is still running"
        fi
        log "stopped $kind on port $port (pid $pid)"
    elif [[ -f "$(pid_file "$port")" ]]; then
        forget "$port"
        log "no emulator running on port $port any more; removed its stale pid file"
    else
        log "no emulator recorded on port $port (nothing to stop)"
    fi
}

do_status() {
    local pf port pid any=0
    shopt -s nullglob
    for pf in "$LOCAL"/emulator-*.pid; do
        any=1
        port="${pf##*/emulator-}"
        port="${port%.pid}"
        if pid="$(live_pid "$port")"; then
            echo "$(cat "$(kind_file "$port")") http://127.0.0.1:$port pid $pid running"
        else
            echo "port $port: not running (stale pid file)"
        fi
    done
    [[ $any == 1 ]] || log "no emulator recorded in .local/"
}
