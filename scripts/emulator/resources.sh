# shellcheck shell=bash
# Sourced by scripts/local-aws.sh: the resources on a running emulator
# (provision, through scripts/provision.py) and the env files it writes.
# It only defines functions; scripts/local-aws.sh sets ROOT, SCRIPTS, VENV,
# LOCAL, PY, the pinned versions and the defaults these use, and log and die.

do_provision() {
    local -a args=()
    local name=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --endpoint) args+=(--endpoint "${2:?--endpoint needs a URL}"); shift 2 ;;
            --endpoint=*) args+=(--endpoint "${1#*=}"); shift ;;
            --name) name="${2:?--name needs a name}"; shift 2 ;;
            --name=*) name="${1#*=}"; shift ;;
            --sort-key) args+=(--sort-key); shift ;;
            --max-receive-count) args+=(--max-receive-count "${2:?--max-receive-count needs a number}"); shift 2 ;;
            -h | --help) usage; exit 0 ;;
            *) die "provision: unknown argument '$1' (see --help)" ;;
        esac
    done
    [[ -n "$name" ]] || die "provision needs --name NAME"
    ensure_boto3
    mkdir -p "$LOCAL"
    "$PY" "$SCRIPTS/provision.py" "${args[@]}" --name "$name" --env-file "$LOCAL/$name.env"
}

do_env() {
    local name=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --name) name="${2:?--name needs a name}"; shift 2 ;;
            --name=*) name="${1#*=}"; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "env: unknown argument '$1' (see --help)" ;;
        esac
    done
    [[ -n "$name" ]] || die "env needs --name NAME"
    local f="$LOCAL/$name.env"
    [[ -f "$f" ]] || die ".local/$name.env does not exist; run: $prog provision --endpoint URL --name $name"
    cat "$f"
}
