"""The image: the Dockerfile's contract, the local stand-in of the
distroless runtime image, the built image's metadata, and its run (HTTP
probes, log lines, the environment it is given)."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

from checks.common import IMAGE_CONFIG, Problems, load_docs
from checks.k8s import rendered_config

# --- Dockerfile ------------------------------------------------------------


def cmd_dockerfile(args) -> int:
    p = Problems("Dockerfile")
    text = Path("Dockerfile").read_text()
    args_ = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, re.M))
    p.check(set(args_) == {"BUILDER_IMAGE", "RUNTIME_IMAGE"}, f"image ARGs {sorted(args_)}")
    ref = re.compile(r"^[a-z0-9.-]+\.[a-z]{2,}(?::\d+)?/[a-z0-9._/-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")
    for name, value in args_.items():
        p.check(ref.fullmatch(value) is not None, f"{name}={value} is not fully qualified (registry/name:tag@sha256:digest)")
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    p.check(froms == ["${BUILDER_IMAGE}", "${RUNTIME_IMAGE}"], f"FROM lines {froms}")
    p.check("distroless" in args_.get("RUNTIME_IMAGE", ""), "the runtime image is not distroless")
    p.check(re.search(r"^USER 65532:65532$", text, re.M) is not None, "USER is not the numeric non-root 65532:65532")
    p.check(re.search(r"^EXPOSE 9090$", text, re.M) is not None, "EXPOSE 9090 is missing")
    p.check("ENV TRIGGERED_CACHE_CONFIG=/etc/triggered-cache/config.toml" in text, "the config path is not set")
    p.check("cargo build --release --locked" in text, "the build is not `cargo build --release --locked`")
    for label in ("title", "description", "licenses", "version", "revision", "base.name"):
        p.check(f"org.opencontainers.image.{label}=" in text, f"OCI label org.opencontainers.image.{label} is missing")
    p.check(tomllib.loads(IMAGE_CONFIG.read_text()).get("http", {}).get("listen", "").endswith(":9090"), "the image config does not listen on 9090")
    return p.finish()


# --- the image -------------------------------------------------------------

# What gcr.io/distroless/cc-debian12 holds (its Debian packages), for the
# local stand-in of the runtime base image: no shell, no package manager.
DISTROLESS_CC_PACKAGES = ["base-files", "netbase", "tzdata", "libc6", "libgcc-s1", "libstdc++6", "libssl3", "libgomp1", "ca-certificates"]


def resolve_in(root: Path, path: str) -> Path:
    """`path` (absolute, inside `root`) with the directory symlinks of the
    root filesystem resolved (merged /usr: /lib -> usr/lib)."""
    import os

    parts = [x for x in path.split("/") if x]
    cur = "/"
    for i, part in enumerate(parts):
        nxt = os.path.join(cur, part)
        host = root / nxt.lstrip("/")
        if i < len(parts) - 1 and host.is_symlink():
            target = os.readlink(host)
            nxt = os.path.normpath(target if target.startswith("/") else os.path.join(cur, target))
        cur = nxt
    return Path(cur)


def cmd_standin_runtime(args) -> int:
    """Copies the files of DISTROLESS_CC_PACKAGES from a debootstrap root into
    OUT, plus the users and directories distroless has."""
    import os
    import shutil

    root, out = Path(args.rootfs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # merged-/usr symlinks at the top (bin, lib, lib64, sbin)
    for top in root.iterdir():
        if top.is_symlink():
            dst = out / top.name
            if not dst.is_symlink():
                os.symlink(os.readlink(top), dst)
    info = root / "var/lib/dpkg/info"
    copied = 0
    found = 0
    for pkg in DISTROLESS_CC_PACKAGES:
        lists = list(info.glob(f"{pkg}.list")) + list(info.glob(f"{pkg}:*.list"))
        if not lists:
            print(f"  stand-in: package {pkg} is not in the root filesystem", file=sys.stderr)
            if pkg in ("libc6", "libgcc-s1", "ca-certificates", "base-files"):
                return 1
            continue
        found += 1
        for line in lists[0].read_text().splitlines():
            if not line or line == "/." or line.startswith("/usr/share/doc") or line.startswith("/usr/share/man"):
                continue
            src = root / line.lstrip("/")
            if src.is_dir() and not src.is_symlink():
                continue
            if not (src.exists() or src.is_symlink()):
                continue
            real = resolve_in(root, line)
            dst = out / str(real).lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists() or dst.is_symlink():
                continue
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
            copied += 1
    # The CA bundle is generated at install time (not in the package lists).
    certs = out / "etc/ssl/certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "etc/ssl/certs/ca-certificates.crt", certs / "ca-certificates.crt")
    (out / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
    )
    (out / "etc/group").write_text("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")
    for d, mode, uid in (("tmp", 0o1777, 0), ("root", 0o700, 0), ("home/nonroot", 0o700, 65532)):
        path = out / d
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
        os.chown(path, uid, uid)
    for shell in ("bin/sh", "bin/bash", "bin/dash", "usr/bin/sh"):
        if (out / shell).exists():
            print(f"  stand-in: {shell} must not be in the runtime image", file=sys.stderr)
            return 1
    print(f"  runtime stand-in: {copied} files from {found} packages, no shell")
    return 0


def cmd_wait_http(args) -> int:
    """Polls URL until it answers STATUS (or the time runs out); prints the body."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + args.timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(args.url, timeout=3) as r:
                status, body = r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode(errors="replace")
        except (OSError, urllib.error.URLError) as e:
            status, body = None, str(e)
        if status == args.status and (args.contains is None or args.contains in body):
            print(body.strip()[: args.show])
            return 0
        last = f"{status}: {body.strip()[:300]}"
        time.sleep(0.5)
    print(f"  {args.url} did not answer {args.status} within {args.timeout}s; last: {last}")
    return 1


def cmd_image_inspect(args) -> int:
    p = Problems("image metadata")
    data = json.loads(Path(args.inspect_json).read_text())[0]
    cfg = data.get("Config", {})
    p.check(cfg.get("User") == "65532:65532", f"User {cfg.get('User')!r}")
    p.check("9090/tcp" in (cfg.get("ExposedPorts") or {}), f"ExposedPorts {cfg.get('ExposedPorts')}")
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
    p.check(env.get("TRIGGERED_CACHE_CONFIG") == "/etc/triggered-cache/config.toml", "TRIGGERED_CACHE_CONFIG")
    p.check(cfg.get("Entrypoint") == ["/usr/local/bin/triggered-cache"], f"Entrypoint {cfg.get('Entrypoint')}")
    p.check(cfg.get("Cmd") == ["run"], f"Cmd {cfg.get('Cmd')}")
    p.check(cfg.get("StopSignal") == "SIGTERM", f"StopSignal {cfg.get('StopSignal')}")
    hc = cfg.get("Healthcheck") or data.get("Healthcheck") or {}
    p.check(hc.get("Test", [None])[0] == "CMD" and hc.get("Test", [])[1:3] == ["/usr/local/bin/triggered-cache", "healthcheck"], f"Healthcheck {hc}")
    labels = cfg.get("Labels") or {}
    for label in ("title", "description", "licenses", "version", "revision", "base.name"):
        p.check(bool(labels.get(f"org.opencontainers.image.{label}")), f"label org.opencontainers.image.{label}")
    size = data.get("Size", 0)
    print(f"  image size {size / 1e6:.1f} MB")
    p.check(size < 150e6, f"the image is {size / 1e6:.0f} MB, not small")
    return p.finish()


def cmd_check_logs(args) -> int:
    """The daemon's stderr in a container: JSON lines, a clean drain."""
    p = Problems("daemon logs")
    lines = [x for x in Path(args.log).read_text().splitlines() if x.strip()]
    p.check(bool(lines), "no log lines")
    bad = []
    msgs = []
    for x in lines:
        try:
            rec = json.loads(x)
            msgs.append(json.dumps(rec))
        except ValueError:
            bad.append(x)
    p.check(not bad, f"{len(bad)} lines are not JSON, e.g. {bad[:2]}")
    text = "\n".join(msgs)
    p.check("operations endpoints" in text, "no 'operations endpoints' line")
    p.check("signal received" in text, "no 'signal received' line (SIGTERM not handled?)")
    p.check('"level": "ERROR"' not in text and '"level":"ERROR"' not in text, "ERROR lines: " + "; ".join(m for m in msgs if "ERROR" in m)[:500])
    return p.finish()


def cmd_env_file(args) -> int:
    """KEY=VALUE lines for `podman run --env-file`: the environment of the
    rendered ECS task definition, or the env ConfigMap of a rendered overlay."""
    if args.task_definition:
        td = json.loads(Path(args.task_definition).read_text())
        env = {e["name"]: e["value"] for e in td["containerDefinitions"][0]["environment"]}
    else:
        _, env = rendered_config(load_docs(args.overlay), Problems("config"))
        env.pop("TRIGGERED_CACHE_CONFIG", None)
    for k, v in sorted(env.items()):
        print(f"{k}={v}")
    return 0
