# shellcheck shell=bash
# Sourced by scripts/verify-deploy.sh: installs what the checks need, apt
# packages (promtool; podman and debootstrap for the image) and the pinned
# PyPI packages of scripts/deploy/requirements.txt in .venv-deploy/.
# It only defines functions and settings; scripts/verify-deploy.sh sets ROOT,
# STATE, PY, WORK, WITH_IMAGE and the other settings these use, and runs each
# *_step function as one step (scripts/deploy/steps.sh).

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
