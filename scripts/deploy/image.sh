# shellcheck shell=bash
# Sourced by scripts/verify-deploy.sh: the container image. Stand-ins for the
# base images (no image registry is reachable in CI), podman build of the
# Dockerfile as it is, then the image's config check and a read-only run
# against the emulator's stacks, probes and podman stop.
# It only defines functions and settings; scripts/verify-deploy.sh sets ROOT,
# STATE, PY, WORK, WITH_IMAGE and the other settings these use, and runs each
# *_step function as one step (scripts/deploy/steps.sh).

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
