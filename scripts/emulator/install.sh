# shellcheck shell=bash
# Sourced by scripts/local-aws.sh: installing an emulator (moto or ministack)
# and boto3, pinned, into .venv/, with a stamp per emulator so that a second
# install is a quick no-op and concurrent installs wait for each other.
# It only defines functions; scripts/local-aws.sh sets ROOT, SCRIPTS, VENV,
# LOCAL, PY, the pinned versions and the defaults these use, and log and die.

requirements_for() {
    case "$1" in
        moto) echo "moto[server]==$MOTO_VERSION boto3==$BOTO3_VERSION botocore==$BOTOCORE_VERSION" ;;
        ministack) echo "ministack==$MINISTACK_VERSION boto3==$BOTO3_VERSION botocore==$BOTOCORE_VERSION" ;;
        *) die "unknown emulator '$1' (moto or ministack)" ;;
    esac
}

binary_for() {
    case "$1" in
        moto) echo "$VENV/bin/moto_server" ;;
        ministack) echo "$VENV/bin/ministack" ;;
        *) die "unknown emulator '$1' (moto or ministack)" ;;
    esac
}

check_emulator() {
    case "$1" in
        moto | ministack) ;;
        *) die "unknown emulator '$1' (moto or ministack)" ;;
    esac
}

installed() {
    local emulator="$1" stamp="$VENV/.local-aws-$1.stamp"
    [[ -x "$PY" && -x "$(binary_for "$emulator")" && -f "$stamp" ]] &&
        [[ "$(cat "$stamp")" == "$(requirements_for "$emulator")" ]]
}

do_install() {
    local emulator="$1"
    check_emulator "$emulator"
    if installed "$emulator"; then
        log "$emulator is installed in .venv/ ($(requirements_for "$emulator"))"
        return 0
    fi
    mkdir -p "$LOCAL"
    # Serialise concurrent installs (e.g. two test runs starting at once).
    exec 9>"$LOCAL/install.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if installed "$emulator"; then
        exec 9>&-
        log "$emulator is installed in .venv/"
        return 0
    fi
    local started=$SECONDS
    if [[ ! -x "$PY" ]]; then
        command -v python3 >/dev/null || die "python3 is needed to create .venv/"
        log "creating .venv/ ..."
        python3 -m venv "$VENV"
    fi
    local -a reqs
    read -r -a reqs <<<"$(requirements_for "$emulator")"
    log "installing ${reqs[*]} into .venv/ ..."
    "$PY" -m pip install --disable-pip-version-check --quiet "${reqs[@]}" >&2 ||
        die "pip install ${reqs[*]} failed"
    requirements_for "$emulator" >"$VENV/.local-aws-$emulator.stamp"
    exec 9>&-
    log "installed $emulator in $((SECONDS - started))s"
}

# boto3 for provision.py and the readiness check, whichever emulator is there.
ensure_boto3() {
    if [[ -x "$PY" ]] && "$PY" -c 'import boto3' 2>/dev/null; then
        return 0
    fi
    do_install "$DEFAULT_EMULATOR"
}
