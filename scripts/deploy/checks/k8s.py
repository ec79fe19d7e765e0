"""Kubernetes: the rendered overlays (restricted Pod Security, probes,
shutdown, PodDisruptionBudget), the KEDA ScaledObject and the HPA, and the
ConfigMap's TOML for the image's run."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import yaml

from checks.common import (
    REQUIRED_ENV,
    Problems,
    by_kind,
    duration_seconds,
    listen_port,
    load_docs,
    one,
    shutdown_grace,
)

KEDA_KINDS = {"ScaledObject", "TriggerAuthentication", "ClusterTriggerAuthentication", "ScaledJob"}


def cmd_split_k8s(args) -> int:
    docs = load_docs(args.rendered)
    core = [d for d in docs if d.get("kind") not in KEDA_KINDS]
    Path(args.core_out).write_text(yaml.safe_dump_all(core, sort_keys=False))
    print(f"  {len(core)} core resources for kubernetes-validate, {len(docs) - len(core)} KEDA resources for the KEDA check")
    return 0


def rendered_config(docs: list[dict], p: Problems) -> tuple[dict, dict]:
    """The daemon's TOML (from the mounted ConfigMap) and its env ConfigMap."""
    dep = by_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    cms = {c["metadata"]["name"]: c for c in by_kind(docs, "ConfigMap")}
    toml_cfg: dict = {}
    env: dict = {}
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    for vol in pod.get("volumes", []):
        if "configMap" in vol:
            name = vol["configMap"]["name"]
            if p.check(name in cms, f"volume {vol['name']} names ConfigMap {name}, which the render lacks"):
                mount = mounts.get(vol["name"], {})
                p.check(mount.get("mountPath") == "/etc/triggered-cache", f"ConfigMap volume is mounted at {mount.get('mountPath')}, not /etc/triggered-cache")
                p.check(mount.get("readOnly") is True, "the config volume is not mounted readOnly")
                data = cms[name].get("data", {})
                if p.check("config.toml" in data, f"ConfigMap {name} has no config.toml"):
                    toml_cfg = tomllib.loads(data["config.toml"])
    for src in container.get("envFrom", []):
        ref = src.get("configMapRef", {}).get("name")
        if ref and p.check(ref in cms, f"envFrom names ConfigMap {ref}, which the render lacks"):
            env.update(cms[ref].get("data", {}))
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
    return toml_cfg, env


def cmd_k8s(args) -> int:
    p = Problems(f"kubernetes {args.rendered}")
    docs = load_docs(args.rendered)
    dep = one(docs, "Deployment", p)
    if dep is None:
        return p.finish()
    ns = dep["metadata"].get("namespace")
    p.check(bool(ns), "the Deployment has no namespace (the overlay sets one)")
    for d in docs:
        if d["kind"] != "Namespace":
            p.check(d["metadata"].get("namespace") == ns, f"{d['kind']}/{d['metadata']['name']} is not in namespace {ns}")
    nss = [d for d in by_kind(docs, "Namespace") if d["metadata"]["name"] == ns]
    if nss:
        labels = nss[0]["metadata"].get("labels", {})
        p.check(labels.get("pod-security.kubernetes.io/enforce") == "restricted", "the namespace does not enforce the restricted Pod Security Standard")

    spec = dep["spec"]
    pod = spec["template"]["spec"]
    p.check("replicas" not in spec, "the Deployment sets replicas (the autoscaler owns them)")
    p.check(spec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable") == 0, "rolling updates may take a pod away before its successor is ready")
    containers = pod.get("containers", [])
    p.check(len(containers) == 1, f"expected one container, found {len(containers)}")
    c = containers[0]
    cfg, env = rendered_config(docs, p)
    port = listen_port(cfg) if cfg else 9090

    # Restricted Pod Security Standard (and a little more).
    psc = pod.get("securityContext", {})
    csc = c.get("securityContext", {})
    p.check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "runAsNonRoot is not set")
    for name, sc in (("pod", psc), ("container", csc)):
        uid = sc.get("runAsUser")
        p.check(uid is None or uid != 0, f"{name} runAsUser is 0")
    p.check((csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost"), "no seccompProfile RuntimeDefault")
    p.check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    p.check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true")
    p.check(csc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities do not drop ALL")
    p.check(not csc.get("capabilities", {}).get("add"), "capabilities are added")
    p.check(csc.get("privileged") in (None, False), "the container is privileged")
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        p.check(not pod.get(forbidden), f"{forbidden} is set")
    p.check(all("hostPath" not in v for v in pod.get("volumes", [])), "a hostPath volume is used")
    p.check(all(not port_.get("hostPort") for port_ in c.get("ports", [])), "a hostPort is used")

    # Shutdown: the grace period covers the daemon's drain.
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    if cfg:
        grace = shutdown_grace(cfg)
        wait = duration_seconds(cfg.get("sqs", {}).get("wait_time", "20s"))
        p.check(tgps > grace, f"terminationGracePeriodSeconds {tgps} is not above worker.shutdown_grace {grace:g}s")
        p.check(tgps >= grace + 15, f"terminationGracePeriodSeconds {tgps} leaves less than 15s margin over worker.shutdown_grace {grace:g}s")
        p.check(tgps >= max(grace, wait) + 10, f"terminationGracePeriodSeconds {tgps} does not cover a long poll ({wait:g}s) either")
        p.check(cfg.get("log", {}).get("format") in ("json", "auto"), "log.format is not json/auto")
        sets = cfg.get("sets", {})
        p.check(bool(sets), "the TOML has no [sets.NAME]")
        for name, s in sets.items():
            kind = s.get("processor", {}).get("kind")
            p.check(kind in ("http", "embedded"), f"set {name}: processor kind {kind!r} needs a program the image does not have")

    # Probes on the daemon's endpoints and port.
    ports = {pp.get("name"): pp["containerPort"] for pp in c.get("ports", [])}
    p.check(port in ports.values(), f"no containerPort {port} (http.listen)")

    def probe_port(probe):
        value = probe.get("httpGet", {}).get("port")
        return ports.get(value, value)

    live, ready = c.get("livenessProbe", {}), c.get("readinessProbe", {})
    p.check(live.get("httpGet", {}).get("path") == "/healthz", "livenessProbe is not GET /healthz")
    p.check(ready.get("httpGet", {}).get("path") == "/readyz", "readinessProbe is not GET /readyz")
    p.check(probe_port(live) == port and probe_port(ready) == port, f"probes are not on port {port}")

    # Resources.
    res = c.get("resources", {})
    for kind_ in ("requests", "limits"):
        for r in ("cpu", "memory"):
            p.check(r in res.get(kind_, {}), f"resources.{kind_}.{r} is not set")

    # Prometheus scraping.
    ann = spec["template"]["metadata"].get("annotations", {})
    p.check(ann.get("prometheus.io/scrape") == "true", "no prometheus.io/scrape annotation")
    p.check(ann.get("prometheus.io/port") == str(port), f"prometheus.io/port is not {port}")
    p.check(ann.get("prometheus.io/path") == "/metrics", "prometheus.io/path is not /metrics")

    # Configuration: the required keys come from the environment.
    for key in REQUIRED_ENV:
        p.check(bool(env.get(key)), f"{key} is not set by the env ConfigMap")
    p.check(env.get("TRIGGERED_CACHE_CONFIG", "/etc/triggered-cache/config.toml") == "/etc/triggered-cache/config.toml", "TRIGGERED_CACHE_CONFIG points elsewhere")

    # Identity.
    sa_name = pod.get("serviceAccountName")
    sas = [s for s in by_kind(docs, "ServiceAccount") if s["metadata"]["name"] == sa_name]
    if p.check(len(sas) == 1, f"ServiceAccount {sa_name} is not in the render"):
        role = sas[0]["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn", "")
        p.check(re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", role) is not None, f"eks.amazonaws.com/role-arn {role!r} is not a role ARN")

    # PodDisruptionBudget and NetworkPolicy select the pods.
    pod_labels = spec["template"]["metadata"].get("labels", {})
    sel = spec["selector"]["matchLabels"]
    p.check(all(pod_labels.get(k) == v for k, v in sel.items()), "the Deployment's selector does not match its pod labels")
    pdb = one(docs, "PodDisruptionBudget", p)
    if pdb:
        m = pdb["spec"].get("selector", {}).get("matchLabels", {})
        p.check(bool(m) and all(pod_labels.get(k) == v for k, v in m.items()), "the PodDisruptionBudget does not select the pods")
        p.check("maxUnavailable" in pdb["spec"] or pdb["spec"].get("minAvailable") not in (None, 1), "the PodDisruptionBudget would block draining a single replica")
    netpol = one(docs, "NetworkPolicy", p)
    if netpol:
        m = netpol["spec"].get("podSelector", {}).get("matchLabels", {})
        p.check(bool(m) and all(pod_labels.get(k) == v for k, v in m.items()), "the NetworkPolicy does not select the pods")
        allowed = [pp.get("port") for rule in netpol["spec"].get("ingress", []) for pp in rule.get("ports", [])]
        p.check(allowed == [port], f"the NetworkPolicy admits ports {allowed}, expected [{port}]")

    # One autoscaler, on this Deployment.
    scalers = by_kind(docs, "ScaledObject") + by_kind(docs, "HorizontalPodAutoscaler")
    p.check(len(scalers) == 1, f"expected one autoscaler (ScaledObject or HPA), found {len(scalers)}")
    for s in scalers:
        ref = s["spec"]["scaleTargetRef"]
        p.check(ref.get("name") == dep["metadata"]["name"] and ref.get("kind", "Deployment") == "Deployment", f"{s['kind']} does not target the Deployment")
    return p.finish()


def strict_roundtrip(model_cls, doc: dict, p: Problems, what: str) -> None:
    """Validate with the CRD-derived model and report fields it does not know
    (pydantic drops them silently; the API server would prune them)."""
    import pydantic

    try:
        obj = model_cls.model_validate(doc)
    except pydantic.ValidationError as e:
        p.check(False, f"{what} does not match the CRD schema: {e}")
        return
    p.check(True, "")
    out = obj.model_dump(by_alias=True, exclude_none=True, mode="json")

    def walk(a, b, path):
        if isinstance(a, dict):
            if not isinstance(b, dict):
                p.check(False, f"{what}: {path} has the wrong type")
                return
            for k, v in a.items():
                if p.check(k in b, f"{what}: unknown field {path}.{k}"):
                    walk(v, b[k], f"{path}.{k}")
        elif isinstance(a, list):
            if p.check(isinstance(b, list) and len(a) == len(b), f"{what}: {path} changed shape"):
                for i, (x, y) in enumerate(zip(a, b)):
                    walk(x, y, f"{path}[{i}]")

    walk(doc, out, "")


AWS_SQS_METADATA = {
    "queueURL", "queueURLFromEnv", "queueLength", "activationQueueLength", "awsRegion", "awsEndpoint",
    "identityOwner", "scaleOnInFlight", "scaleOnDelayed",
}


def cmd_keda(args) -> int:
    from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

    p = Problems(f"KEDA {args.rendered}")
    docs = load_docs(args.rendered)
    so = one(docs, "ScaledObject", p)
    if so is None:
        return p.finish()
    strict_roundtrip(ScaledObject, so, p, "ScaledObject")
    auths = {a["metadata"]["name"]: a for a in by_kind(docs, "TriggerAuthentication")}
    for a in auths.values():
        strict_roundtrip(TriggerAuthentication, a, p, f"TriggerAuthentication/{a['metadata']['name']}")

    dep = by_kind(docs, "Deployment")[0]
    cfg, env = rendered_config(docs, Problems("config"))
    spec = so["spec"]
    ref = spec["scaleTargetRef"]
    p.check(ref.get("name") == dep["metadata"]["name"], "scaleTargetRef does not name the Deployment")
    p.check(ref.get("kind", "Deployment") == "Deployment" and ref.get("apiVersion", "apps/v1") == "apps/v1", "scaleTargetRef is not an apps/v1 Deployment")
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    p.check(1 <= lo <= hi, f"replica bounds {lo}..{hi}: keep at least one pod (no scale to zero) and min <= max")

    triggers = spec.get("triggers", [])
    p.check(len(triggers) == 1, f"expected one trigger, found {len(triggers)}")
    for t in triggers:
        p.check(t.get("type") == "aws-sqs-queue", f"trigger type {t.get('type')!r} is not aws-sqs-queue")
        md = t.get("metadata", {})
        p.check(all(isinstance(v, str) for v in md.values()), "trigger metadata values must all be strings")
        unknown = set(md) - AWS_SQS_METADATA
        p.check(not unknown, f"unknown aws-sqs-queue metadata: {sorted(unknown)}")
        url, region = md.get("queueURL", ""), md.get("awsRegion", "")
        m = re.fullmatch(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(\d{12})/([A-Za-z0-9_-]{1,80})", url)
        if p.check(m is not None, f"queueURL {url!r} is not an SQS queue URL"):
            p.check(m.group(1) == region, f"queueURL is in {m.group(1)} but awsRegion is {region!r}")
        p.check(url == env.get("TRIGGERED_CACHE__SQS__QUEUE_URL"), f"queueURL {url!r} is not the daemon's queue {env.get('TRIGGERED_CACHE__SQS__QUEUE_URL')!r}")
        p.check(region == env.get("TRIGGERED_CACHE__AWS__REGION"), f"awsRegion {region!r} is not the daemon's region {env.get('TRIGGERED_CACHE__AWS__REGION')!r}")
        if args.queue_url:
            p.check(url == args.queue_url, f"queueURL {url!r}, expected {args.queue_url!r} (replacement from the overlay)")
        if args.region:
            p.check(region == args.region, f"awsRegion {region!r}, expected {args.region!r} (replacement from the overlay)")
        p.check(md.get("scaleOnInFlight") == "true", "scaleOnInFlight is not \"true\": in-flight messages must count")
        ql = md.get("queueLength", "")
        if p.check(ql.isdigit() and int(ql) > 0, f"queueLength {ql!r} is not a positive integer"):
            conc = cfg.get("worker", {}).get("concurrency", 32)
            p.check(int(ql) == conc, f"queueLength {ql} differs from worker.concurrency {conc}")
        aql = md.get("activationQueueLength", "0")
        p.check(aql.isdigit(), f"activationQueueLength {aql!r} is not a non-negative integer")
        p.check("identityOwner" not in md, "identityOwner in trigger metadata is deprecated: use authenticationRef")
        auth_name = t.get("authenticationRef", {}).get("name")
        if p.check(auth_name in auths, f"authenticationRef {auth_name!r} names no TriggerAuthentication in the render"):
            pi = auths[auth_name]["spec"].get("podIdentity", {})
            p.check(pi.get("provider") == "aws", f"podIdentity.provider is {pi.get('provider')!r}, not aws")
            p.check(not (pi.get("roleArn") and pi.get("identityOwner")), "podIdentity.roleArn and identityOwner are mutually exclusive")
            p.check(pi.get("identityOwner", "keda") in ("keda", "workload"), f"podIdentity.identityOwner {pi.get('identityOwner')!r}")
    return p.finish()


def cmd_hpa(args) -> int:
    p = Problems(f"HPA {args.rendered}")
    docs = load_docs(args.rendered)
    hpa = one(docs, "HorizontalPodAutoscaler", p)
    if hpa is None:
        return p.finish()
    p.check(hpa["apiVersion"] == "autoscaling/v2", "the HPA is not autoscaling/v2")
    p.check(not by_kind(docs, "ScaledObject"), "a ScaledObject is rendered beside the HPA")
    _, env = rendered_config(docs, Problems("config"))
    metrics = hpa["spec"].get("metrics", [])
    p.check(len(metrics) == 1 and metrics[0].get("type") == "External", "the HPA does not scale on one External metric")
    if metrics:
        ext = metrics[0].get("external", {})
        queue = env.get("TRIGGERED_CACHE__SQS__QUEUE_URL", "").rsplit("/", 1)[-1]
        sel = ext.get("metric", {}).get("selector", {}).get("matchLabels", {})
        p.check(sel.get("queue_name") == queue, f"the metric selects queue {sel.get('queue_name')!r}, the daemon reads {queue!r}")
        p.check(ext.get("target", {}).get("type") == "AverageValue", "the target is not an AverageValue per pod")
    lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    p.check(1 <= lo <= hi, f"replica bounds {lo}..{hi}")
    return p.finish()



def cmd_k8s_config(args) -> int:
    """The daemon's TOML from a rendered overlay, to mount in the image."""
    cfg_cm = None
    for d in load_docs(args.rendered):
        if d.get("kind") == "ConfigMap" and "config.toml" in d.get("data", {}):
            cfg_cm = d["data"]["config.toml"]
    if cfg_cm is None:
        print("no ConfigMap with config.toml", file=sys.stderr)
        return 1
    sys.stdout.write(cfg_cm)
    return 0
