#!/usr/bin/env python3
"""Checks of the deploy artifacts, for scripts/verify-deploy.sh.

Runs in the project venv .venv-deploy/ (PyYAML, botocore/boto3, cfn-lint,
cloudcoil-models-keda). Each subcommand prints what it checked and exits 1
with every problem it found. Paths are relative to the repository root,
which is where verify-deploy.sh runs this from.

  verify.py render TEMPLATE [--vars FILE.json]   ${NAME} placeholders -> stdout
  verify.py split-k8s RENDERED CORE_OUT           core kinds for kubernetes-validate
  verify.py k8s RENDERED                          Deployment/PSS/probes/PDB/... checks
  verify.py keda RENDERED [--queue-url U --region R]
  verify.py hpa RENDERED
  verify.py dockerfile                            pinned base images, contract
  verify.py iam-actions                           exactly the daemon's actions
  verify.py ecs                                   botocore input shapes + semantics
  verify.py cfn-static                            template properties
  verify.py cfn-emulator ENDPOINT OUT_DIR         create the stacks in moto, check
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

DEPLOY = Path("deploy")
IMAGE_CONFIG = DEPLOY / "docker" / "config.toml"
K8S_CONFIG = DEPLOY / "k8s" / "base" / "config.toml"
POLICY = DEPLOY / "iam" / "triggered-cache-policy.json"
OPERATOR_POLICY = DEPLOY / "iam" / "triggered-cache-operator-policy.json"
TEMPLATE = DEPLOY / "aws" / "triggered-cache.yaml"
ECS = DEPLOY / "ecs"

# The configuration keys the daemon requires, as environment variables.
REQUIRED_ENV = [
    "TRIGGERED_CACHE__AWS__REGION",
    "TRIGGERED_CACHE__SQS__QUEUE_URL",
    "TRIGGERED_CACHE__SQS__DLQ_URL",
    "TRIGGERED_CACHE__DYNAMODB__TABLE",
    "TRIGGERED_CACHE__SNS__TOPIC_ARN",
]

# Example values for the ${NAME} placeholders of deploy/iam and deploy/ecs.
EXAMPLE_VARS = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCOUNT_ID": "123456789012",
    "QUEUE_NAME": "triggered-cache-requests",
    "DLQ_NAME": "triggered-cache-dlq",
    "TABLE_NAME": "triggered-cache",
    "DEPENDENCY_TABLE_NAME": "triggered-cache-deps",
    "TOPIC_NAME": "triggered-cache-events",
    "KMS_KEY_ID": "1234abcd-12ab-34cd-56ef-1234567890ab",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/triggered-cache-requests",
    "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/triggered-cache-dlq",
    "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:triggered-cache-events",
    "TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/triggered-cache-DaemonRole-EXAMPLE",
    "EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/triggered-cache-ExecutionRole-EXAMPLE",
    "IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/triggered-cache:0.1.0",
    "LOG_GROUP": "/ecs/triggered-cache-requests",
    "PROCESSOR_URL": "http://summary.internal/process",
    "CLUSTER": "triggered-cache",
    "SUBNET_A": "subnet-0123456789abcdef0",
    "SUBNET_B": "subnet-0fedcba9876543210",
    "SECURITY_GROUP": "sg-0123456789abcdef0",
}

# Exactly what the daemon calls (the adapters in src/aws/: queue, table,
# topic, edges), by resource; `deps` is the optional
# dependency-tracking edge table. SQS batch APIs are authorized by the single
# actions. cmd_iam_actions also derives the set from the SDK calls in src/.
DAEMON_ACTIONS = {
    "queue": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
    "dlq": {"sqs:SendMessage", "sqs:GetQueueAttributes"},
    "table": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DescribeTable"},
    "deps": {"dynamodb:BatchWriteItem", "dynamodb:Query"},
    "topic": {"sns:Publish", "sns:GetTopicAttributes"},
    "key": {"kms:Decrypt", "kms:GenerateDataKey"},
}
# The SDK calls of the daemon's code and the IAM actions they need.
SDK_CALL_ACTIONS = {
    "receive_message": "sqs:ReceiveMessage",
    "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage",
    "change_message_visibility": "sqs:ChangeMessageVisibility",
    "change_message_visibility_batch": "sqs:ChangeMessageVisibility",
    "get_queue_attributes": "sqs:GetQueueAttributes",
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "describe_table": "dynamodb:DescribeTable",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "batch_get_item": "dynamodb:BatchGetItem",
    "transact_write_items": "dynamodb:TransactWriteItems",
    "transact_get_items": "dynamodb:TransactGetItems",
    "publish": "sns:Publish",
    "publish_batch": "sns:Publish",
    "get_topic_attributes": "sns:GetTopicAttributes",
}
# Operator-only code (the CLI), not the daemon's.
OPERATOR_SOURCES = {"admin.rs", "cli.rs"}
# The operators' CLI (src/admin.rs): send, inspect, reset (publishes a reset
# event), dlq list (receive, then make visible again), dlq redrive.
OPERATOR_ACTIONS = {
    "queue": {"sqs:SendMessage"},
    "dlq": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
    "table": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "topic": {"sns:Publish"},
    "key": {"kms:Decrypt", "kms:GenerateDataKey"},
}


class Problems:
    def __init__(self, what: str):
        self.what = what
        self.items: list[str] = []
        self.passed = 0

    def check(self, ok: bool, message: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.items.append(message)
        return ok

    def finish(self) -> int:
        for p in self.items:
            print(f"  FAIL {self.what}: {p}")
        print(f"  {self.what}: {self.passed} checks passed, {len(self.items)} failed")
        return 1 if self.items else 0


# --- helpers ---------------------------------------------------------------

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(text: str, values: dict[str, str]) -> str:
    missing = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise SystemExit(f"unknown placeholders: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_json(path: Path, values: dict[str, str] | None = None) -> dict:
    return json.loads(render(path.read_text(), values or EXAMPLE_VARS))


def load_docs(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict], kind: str, p: Problems) -> dict | None:
    found = by_kind(docs, kind)
    if p.check(len(found) == 1, f"expected exactly one {kind}, found {len(found)}"):
        return found[0]
    return None


def duration_seconds(text: str) -> float:
    """humantime-style durations as the daemon reads them: "30s", "1m 30s", "250ms"."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text)
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


def listen_port(cfg: dict) -> int:
    return int(cfg.get("http", {}).get("listen", "0.0.0.0:9090").rsplit(":", 1)[1])


def shutdown_grace(cfg: dict) -> float:
    return duration_seconds(cfg.get("worker", {}).get("shutdown_grace", "30s"))


# --- render ----------------------------------------------------------------


def cmd_render(args) -> int:
    values = dict(EXAMPLE_VARS)
    if args.vars:
        values.update(json.loads(Path(args.vars).read_text()))
    sys.stdout.write(render(Path(args.template).read_text(), values))
    return 0


# --- Kubernetes ------------------------------------------------------------

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


# --- IAM -------------------------------------------------------------------


def classify(resource: str) -> str:
    if resource.startswith("arn:aws:sqs:"):
        return "dlq" if resource.endswith(":" + EXAMPLE_VARS["DLQ_NAME"]) else "queue"
    if resource.startswith("arn:aws:dynamodb:"):
        if "/index/" in resource:
            return "index"
        return "deps" if resource.endswith("table/" + EXAMPLE_VARS["DEPENDENCY_TABLE_NAME"]) else "table"
    if resource.startswith("arn:aws:sns:"):
        return "topic"
    if resource.startswith("arn:aws:kms:"):
        return "key"
    return "other:" + resource


def actions_by_resource(doc: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for st in doc["Statement"]:
        if st.get("Effect") != "Allow":
            continue
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        for r in resources:
            out.setdefault(classify(r), set()).update(actions)
    return out


def daemon_sdk_actions() -> dict[str, list[str]]:
    """The IAM actions the daemon's SDK calls need, with where they are."""
    call = re.compile(r"\.(" + "|".join(sorted(SDK_CALL_ACTIONS, key=len, reverse=True)) + r")\(\)")
    found: dict[str, list[str]] = {}
    for path in sorted(Path("src").rglob("*.rs")):
        if path.name in OPERATOR_SOURCES or path.name.endswith("_tests.rs"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in call.finditer(line):
                found.setdefault(SDK_CALL_ACTIONS[m.group(1)], []).append(f"{path}:{n}")
    return found


def cmd_iam_actions(args) -> int:
    p = Problems("IAM policies")
    # The policy grants exactly the actions the daemon's code calls.
    called = daemon_sdk_actions()
    granted = set().union(*DAEMON_ACTIONS.values()) - {"kms:Decrypt", "kms:GenerateDataKey"}
    for action in sorted(set(called) - granted):
        p.check(False, f"src/ calls {action} ({', '.join(called[action])}) but the policy does not grant it")
    for action in sorted(granted - set(called)):
        p.check(False, f"the policy grants {action}, which no SDK call in src/ needs")
    for path, expected in ((POLICY, DAEMON_ACTIONS), (OPERATOR_POLICY, OPERATOR_ACTIONS)):
        doc = render_json(path)
        got = actions_by_resource(doc)
        for res in sorted(set(got) | set(expected)):
            extra = got.get(res, set()) - expected.get(res, set())
            missing = expected.get(res, set()) - got.get(res, set())
            p.check(not extra, f"{path.name}: {res}: more than the daemon calls: {sorted(extra)}")
            p.check(not missing, f"{path.name}: {res}: missing {sorted(missing)}")
        for st in doc["Statement"]:
            acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            p.check(not any("*" in a for a in acts), f"{path.name}: wildcard action in {st.get('Sid')}")
            p.check(all(r != "*" for r in res), f"{path.name}: Resource * in {st.get('Sid')}")
            p.check(bool(st.get("Sid")), f"{path.name}: a statement without a Sid")
            if any(a.startswith("kms:") for a in acts):
                p.check("kms:ViaService" in json.dumps(st.get("Condition", {})), f"{path.name}: KMS use is not limited to SQS and SNS (kms:ViaService)")
    return p.finish()


# --- ECS -------------------------------------------------------------------


def validate_shape(service: str, operation: str, params: dict, p: Problems, what: str) -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    p.check(not report.has_errors(), f"{what} is not valid {service} {operation} input:\n{report.generate_report()}")


def ecs_documents(values: dict[str, str] | None = None) -> dict[str, dict]:
    return {name: render_json(ECS / f"{name}.json", values) for name in ("task-definition", "service-definition", "scalable-target", "scaling-policy")}


def cmd_ecs(args) -> int:
    import botocore

    p = Problems(f"ECS (botocore {botocore.__version__})")
    docs = ecs_documents()
    validate_shape("ecs", "RegisterTaskDefinition", docs["task-definition"], p, "task-definition.json")
    validate_shape("ecs", "CreateService", docs["service-definition"], p, "service-definition.json")
    validate_shape("application-autoscaling", "RegisterScalableTarget", docs["scalable-target"], p, "scalable-target.json")
    validate_shape("application-autoscaling", "PutScalingPolicy", docs["scaling-policy"], p, "scaling-policy.json")
    if p.items:
        return p.finish()

    cfg = tomllib.loads(IMAGE_CONFIG.read_text())
    port = listen_port(cfg)
    grace = shutdown_grace(cfg)
    td = docs["task-definition"]
    p.check(bool(td.get("taskRoleArn")) and bool(td.get("executionRoleArn")), "taskRoleArn and executionRoleArn must be set")
    cds = td["containerDefinitions"]
    p.check(len(cds) == 1, "expected one container")
    c = cds[0]
    p.check(td["family"] == docs["service-definition"]["taskDefinition"], "the service does not run the task family")
    p.check(c.get("readonlyRootFilesystem") is True, "readonlyRootFilesystem is not true")
    p.check(c.get("user") == "65532:65532", "the container does not run as 65532:65532")
    p.check(c.get("linuxParameters", {}).get("capabilities", {}).get("drop") == ["ALL"], "capabilities do not drop ALL")
    p.check(not c.get("privileged"), "the container is privileged")
    stop = c.get("stopTimeout", 30)
    p.check(grace + 15 <= stop <= 120, f"stopTimeout {stop} is not between worker.shutdown_grace + 15s ({grace + 15:g}) and Fargate's 120")
    hc = c.get("healthCheck", {})
    p.check(hc.get("command", [None])[0] == "CMD", "the health check must be CMD (the image has no shell)")
    p.check(hc.get("command", [None, None, None])[1:3] == ["/usr/local/bin/triggered-cache", "healthcheck"], "the health check does not run /usr/local/bin/triggered-cache healthcheck")
    p.check(any(f":{port}/healthz" in a for a in hc.get("command", [])), f"the health check does not probe :{port}/healthz")
    p.check(any(pm.get("containerPort") == port for pm in c.get("portMappings", [])), f"no portMapping {port}")
    log = c.get("logConfiguration", {})
    p.check(log.get("logDriver") == "awslogs", "logs do not go to CloudWatch (awslogs)")
    for opt in ("awslogs-group", "awslogs-region", "awslogs-stream-prefix"):
        p.check(opt in log.get("options", {}), f"awslogs option {opt} is missing")
    env = {e["name"]: e["value"] for e in c.get("environment", [])}
    for key in REQUIRED_ENV:
        p.check(bool(env.get(key)), f"{key} is not in the environment")
    svc = docs["service-definition"]
    dc = svc.get("deploymentConfiguration", {})
    p.check(dc.get("minimumHealthyPercent", 0) >= 100, "deployments may stop tasks before their successors run")
    p.check(dc.get("deploymentCircuitBreaker", {}).get("rollback") is True, "no circuit-breaker rollback")
    p.check(svc["networkConfiguration"]["awsvpcConfiguration"].get("assignPublicIp") == "DISABLED", "tasks get public IPs")
    pol = docs["scaling-policy"]["TargetTrackingScalingPolicyConfiguration"]
    names = json.dumps(pol)
    p.check("ApproximateNumberOfMessagesVisible" in names and "ApproximateNumberOfMessagesNotVisible" in names, "the scaling metric does not count visible and in-flight messages")
    return p.finish()


# --- CloudFormation --------------------------------------------------------


def load_template() -> dict:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(TEMPLATE))


def cmd_cfn_static(args) -> int:
    p = Problems("CloudFormation template")
    t = load_template()
    res = t["Resources"]

    def typed(kind):
        return {k: v for k, v in res.items() if v["Type"] == kind}

    queues = typed("AWS::SQS::Queue")
    p.check(set(queues) == {"RequestQueue", "DeadLetterQueue"}, f"queues {sorted(queues)}")
    for name, q in queues.items():
        p.check("KmsMasterKeyId" in q["Properties"], f"{name} is not encrypted with the KMS key")
    rq = queues.get("RequestQueue", {}).get("Properties", {})
    rp = rq.get("RedrivePolicy", {})
    p.check("deadLetterTargetArn" in rp and "maxReceiveCount" in rp, "the request queue has no redrive policy")
    p.check("RedriveAllowPolicy" in queues.get("DeadLetterQueue", {}).get("Properties", {}), "the DLQ does not restrict its sources")
    table = typed("AWS::DynamoDB::Table").get("Table", {})
    tp = table.get("Properties", {})
    p.check(tp.get("BillingMode") == "PAY_PER_REQUEST", "the table is not on-demand")
    p.check(tp.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, "point-in-time recovery is off")
    p.check(table.get("DeletionPolicy") == "Retain", "the table is not retained on stack deletion")
    deps = typed("AWS::DynamoDB::Table").get("DependencyTable", {})
    dp = deps.get("Properties", {})
    p.check(deps.get("Condition") == "HasDependencyTable", "the dependency table is not optional (Condition HasDependencyTable)")
    p.check(dp.get("BillingMode") == "PAY_PER_REQUEST", "the dependency table is not on-demand")
    p.check(dp.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, "the dependency table has no point-in-time recovery")
    p.check([k["AttributeName"] for k in dp.get("KeySchema", [])] == ["entity", "dependent"], "the dependency table's keys are not entity/dependent")
    topic = typed("AWS::SNS::Topic").get("Topic", {}).get("Properties", {})
    p.check("KmsMasterKeyId" in topic, "the topic is not encrypted")
    key = typed("AWS::KMS::Key").get("EncryptionKey", {}).get("Properties", {})
    p.check(key.get("EnableKeyRotation") is True, "key rotation is off")
    outputs = set(t.get("Outputs", {}))
    for o in ("Region", "QueueUrl", "DeadLetterQueueUrl", "TableName", "TopicArn", "RoleArn", "KmsKeyArn"):
        p.check(o in outputs, f"output {o} is missing")
    names = {"QueueName", "DeadLetterQueueName", "TableName", "TopicName"}
    p.check(names <= set(t.get("Parameters", {})), f"name parameters missing: {sorted(names - set(t.get('Parameters', {})))}")
    return p.finish()


def stack_outputs(cfn, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def policy_document(iam, arn: str) -> dict:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return json.loads(doc) if isinstance(doc, str) else doc


def cmd_cfn_emulator(args) -> int:
    import boto3

    p = Problems("CloudFormation in the emulator")
    region = "us-east-1"
    kw = dict(endpoint_url=args.endpoint, region_name=region, aws_access_key_id="test", aws_secret_access_key="test")
    cfn, iam = boto3.client("cloudformation", **kw), boto3.client("iam", **kw)
    sqs, ddb, sns, kms = (boto3.client(s, **kw) for s in ("sqs", "dynamodb", "sns", "kms"))
    ecs, aas = boto3.client("ecs", **kw), boto3.client("application-autoscaling", **kw)
    body = TEMPLATE.read_text()
    oidc = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    keda = "arn:aws:iam::123456789012:role/keda-operator"
    stacks = {
        # EKS: defaults, IRSA for the service account, KEDA may assume the role.
        "verify-eks": {"EksOidcProviderArn": oidc, "KedaOperatorRoleArn": keda,
                       "DependencyTableName": "triggered-cache-deps"},
        # ECS: other names, a sort key, no operator policy.
        "verify-ecs": {
            "Platform": "ecs", "QueueName": "tc-ecs-requests", "DeadLetterQueueName": "tc-ecs-dlq",
            "TableName": "tc-ecs", "TopicName": "tc-ecs-events", "TableSortKey": "sk", "CreateOperatorPolicy": "false",
        },
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, params in stacks.items():
        cfn.create_stack(
            StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        )
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not p.check(stack["StackStatus"] == "CREATE_COMPLETE", f"{name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}"):
            continue
        o = stack_outputs(cfn, name)
        (out_dir / f"{name}.json").write_text(json.dumps(o, indent=2))
        qname = params.get("QueueName", "triggered-cache-requests")
        dname = params.get("DeadLetterQueueName", "triggered-cache-dlq")
        tname = params.get("TableName", "triggered-cache")
        topic_name = params.get("TopicName", "triggered-cache-events")
        expected = {"Region", "QueueUrl", "QueueArn", "DeadLetterQueueUrl", "DeadLetterQueueArn", "TableName", "TopicArn", "KmsKeyArn", "RoleArn", "DaemonPolicyArn"}
        if params.get("CreateOperatorPolicy", "true") == "true":
            expected.add("OperatorPolicyArn")
        if params.get("Platform") == "ecs":
            expected |= {"ExecutionRoleArn", "LogGroupName"}
        deps_name = params.get("DependencyTableName", "")
        if deps_name:
            expected |= {"DependencyTableName", "DependencyPolicyArn"}
        p.check(set(o) == expected, f"{name}: outputs {sorted(o)}, expected {sorted(expected)}")
        p.check(o.get("Region") == region, f"{name}: Region output {o.get('Region')}")
        p.check(o.get("QueueUrl", "").endswith("/" + qname), f"{name}: QueueUrl {o.get('QueueUrl')}")
        p.check(o.get("DeadLetterQueueUrl", "").endswith("/" + dname), f"{name}: DeadLetterQueueUrl {o.get('DeadLetterQueueUrl')}")
        p.check(o.get("TableName") == tname, f"{name}: TableName {o.get('TableName')}")
        p.check(o.get("TopicArn", "").endswith(":" + topic_name), f"{name}: TopicArn {o.get('TopicArn')}")

        # The queue: encrypted, redriving to the DLQ.
        qa = sqs.get_queue_attributes(QueueUrl=o["QueueUrl"], AttributeNames=["All"])["Attributes"]
        p.check(qa.get("KmsMasterKeyId") == o["KmsKeyArn"], f"{name}: the queue is not encrypted with the stack's key")
        redrive = json.loads(qa.get("RedrivePolicy", "{}"))
        p.check(redrive.get("deadLetterTargetArn") == o["DeadLetterQueueArn"], f"{name}: redrive target {redrive.get('deadLetterTargetArn')}")
        p.check(int(redrive.get("maxReceiveCount", 0)) == 10, f"{name}: maxReceiveCount {redrive.get('maxReceiveCount')}")
        p.check(qa.get("ReceiveMessageWaitTimeSeconds") == "20", f"{name}: the queue does not long-poll")
        da = sqs.get_queue_attributes(QueueUrl=o["DeadLetterQueueUrl"], AttributeNames=["All"])["Attributes"]
        p.check(da.get("KmsMasterKeyId") == o["KmsKeyArn"], f"{name}: the DLQ is not encrypted with the stack's key")
        p.check(da.get("MessageRetentionPeriod") == "1209600", f"{name}: the DLQ keeps messages {da.get('MessageRetentionPeriod')}s, not 14 days")
        # The key.
        # (moto 5.2.5 cannot DescribeKey a key whose policy came from a
        # template; the alias and the rotation status show the key.)
        key_id = o["KmsKeyArn"].rsplit("/", 1)[1]
        aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
        p.check(aliases.get(f"alias/{qname}") == key_id, f"{name}: alias/{qname} does not name the stack's key")
        p.check(kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"], f"{name}: key rotation is off")
        # The table.
        t = ddb.describe_table(TableName=o["TableName"])["Table"]
        p.check(t.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", f"{name}: the table is not on-demand")
        keys = {k["AttributeName"]: k["KeyType"] for k in t["KeySchema"]}
        want = {"pk": "HASH", "sk": "RANGE"} if params.get("TableSortKey") else {"pk": "HASH"}
        p.check(keys == want, f"{name}: key schema {keys}, expected {want}")
        # (moto 5.2.5 does not apply PointInTimeRecoverySpecification from a
        # template; cfn-static checks the property.)
        if deps_name:
            p.check(o.get("DependencyTableName") == deps_name, f"{name}: DependencyTableName {o.get('DependencyTableName')}")
            dt = ddb.describe_table(TableName=deps_name)["Table"]
            dkeys = {k["AttributeName"]: k["KeyType"] for k in dt["KeySchema"]}
            p.check(dkeys == {"entity": "HASH", "dependent": "RANGE"}, f"{name}: dependency table keys {dkeys}")
            p.check(dt.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", f"{name}: the dependency table is not on-demand")
        # The topic.
        ta = sns.get_topic_attributes(TopicArn=o["TopicArn"])["Attributes"]
        p.check(ta.get("KmsMasterKeyId") == o["KmsKeyArn"], f"{name}: the topic is not encrypted with the stack's key")

        # The role's policy is deploy/iam's, with this stack's values.
        values = {
            "AWS_REGION": region, "AWS_ACCOUNT_ID": o["QueueArn"].split(":")[4], "QUEUE_NAME": qname,
            "DLQ_NAME": dname, "TABLE_NAME": tname, "TOPIC_NAME": topic_name,
            "DEPENDENCY_TABLE_NAME": deps_name,
            "KMS_KEY_ID": o["KmsKeyArn"].rsplit("/", 1)[1],
        }
        role_name = o["RoleArn"].rsplit("/", 1)[1]
        attached = [a["PolicyArn"] for a in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]]
        want_attached = sorted([o["DaemonPolicyArn"]] + ([o["DependencyPolicyArn"]] if deps_name else []))
        p.check(sorted(attached) == want_attached, f"{name}: the role has policies {attached}")
        p.check(not iam.list_role_policies(RoleName=role_name)["PolicyNames"], f"{name}: the role has inline policies")
        daemon_doc = policy_document(iam, o["DaemonPolicyArn"])
        if deps_name:
            # The dependency statement lives in its own conditional policy.
            extra = policy_document(iam, o["DependencyPolicyArn"])["Statement"]
            daemon_doc = dict(daemon_doc, Statement=daemon_doc["Statement"][:3] + extra + daemon_doc["Statement"][3:])
        want_doc = render_json(POLICY, values)
        if not deps_name:
            # Without dependency tracking the stack leaves that statement out.
            want_doc["Statement"] = [st for st in want_doc["Statement"] if st.get("Sid") != "DependencyEdges"]
        p.check(daemon_doc == want_doc, f"{name}: the stack's daemon policy differs from {POLICY}:\n{json.dumps(daemon_doc, indent=1)}")
        if "OperatorPolicyArn" in o:
            op_doc = policy_document(iam, o["OperatorPolicyArn"])
            p.check(op_doc == render_json(OPERATOR_POLICY, values), f"{name}: the stack's operator policy differs from {OPERATOR_POLICY}")
        trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        principals = [json.dumps(s["Principal"], sort_keys=True) for s in trust["Statement"]]
        if params.get("Platform") == "ecs":
            p.check(principals == ['{"Service": "ecs-tasks.amazonaws.com"}'], f"{name}: trust {principals}")
            ex = iam.get_role(RoleName=o["ExecutionRoleArn"].rsplit("/", 1)[1])["Role"]
            p.check(ex["Arn"] == o["ExecutionRoleArn"], f"{name}: no execution role")
        else:
            p.check(principals == [json.dumps({"Federated": oidc}), json.dumps({"AWS": keda})], f"{name}: trust {principals}")
            cond = trust["Statement"][0].get("Condition", {}).get("StringEquals", {})
            issuer = oidc.split("oidc-provider/", 1)[1]
            p.check(cond.get(f"{issuer}:sub") == "system:serviceaccount:triggered-cache:triggered-cache", f"{name}: IRSA subject {cond}")
            p.check(cond.get(f"{issuer}:aud") == "sts.amazonaws.com", f"{name}: IRSA audience {cond}")

        if params.get("Platform") == "ecs":
            # The ECS documents, filled in with this stack's outputs (and a
            # VPC of the emulator's), register.
            ec2 = boto3.client("ec2", **kw)
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            subnets = [
                ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"]
                for i, az in ((1, "a"), (2, "b"))
            ]
            sg = ec2.create_security_group(GroupName="triggered-cache", Description="triggered-cache tasks", VpcId=vpc)["GroupId"]
            ev = {
                **EXAMPLE_VARS, "AWS_REGION": region, "QUEUE_URL": o["QueueUrl"], "DLQ_URL": o["DeadLetterQueueUrl"],
                "TABLE_NAME": o["TableName"], "TOPIC_ARN": o["TopicArn"], "TASK_ROLE_ARN": o["RoleArn"],
                "EXECUTION_ROLE_ARN": o["ExecutionRoleArn"], "LOG_GROUP": o["LogGroupName"], "QUEUE_NAME": qname,
                "SUBNET_A": subnets[0], "SUBNET_B": subnets[1], "SECURITY_GROUP": sg,
            }
            docs = ecs_documents(ev)
            (out_dir / "task-definition.json").write_text(json.dumps(docs["task-definition"], indent=2))
            ecs.create_cluster(clusterName=ev["CLUSTER"])
            td = ecs.register_task_definition(**docs["task-definition"])["taskDefinition"]
            c = td["containerDefinitions"][0]
            p.check(td["taskRoleArn"] == o["RoleArn"] and c["stopTimeout"] == 60, f"{name}: registered task definition {td['taskDefinitionArn']}")
            svc = ecs.create_service(**docs["service-definition"])["service"]
            p.check(svc["serviceName"] == "triggered-cache", f"{name}: service {svc.get('serviceName')}")
            aas.register_scalable_target(**docs["scalable-target"])
            aas.put_scaling_policy(**docs["scaling-policy"])
            pols = aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
            p.check(len(pols) == 1, f"{name}: scaling policies {len(pols)}")
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("render")
    s.add_argument("template")
    s.add_argument("--vars")
    s = sub.add_parser("split-k8s")
    s.add_argument("rendered")
    s.add_argument("core_out")
    s = sub.add_parser("k8s")
    s.add_argument("rendered")
    s = sub.add_parser("keda")
    s.add_argument("rendered")
    s.add_argument("--queue-url")
    s.add_argument("--region")
    s = sub.add_parser("hpa")
    s.add_argument("rendered")
    sub.add_parser("dockerfile")
    sub.add_parser("iam-actions")
    sub.add_parser("ecs")
    sub.add_parser("cfn-static")
    s = sub.add_parser("cfn-emulator")
    s.add_argument("endpoint")
    s.add_argument("out_dir")
    s = sub.add_parser("standin-runtime")
    s.add_argument("rootfs")
    s.add_argument("out")
    s = sub.add_parser("wait-http")
    s.add_argument("url")
    s.add_argument("--status", type=int, default=200)
    s.add_argument("--contains")
    s.add_argument("--timeout", type=float, default=30)
    s.add_argument("--show", type=int, default=300)
    s = sub.add_parser("image-inspect")
    s.add_argument("inspect_json")
    s = sub.add_parser("check-logs")
    s.add_argument("log")
    s = sub.add_parser("env-file")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--task-definition")
    g.add_argument("--overlay")
    s = sub.add_parser("k8s-config")
    s.add_argument("rendered")
    args = ap.parse_args()
    return globals()["cmd_" + args.cmd.replace("-", "_")](args)


if __name__ == "__main__":
    sys.exit(main())
