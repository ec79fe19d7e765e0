#!/usr/bin/env python3
"""Checks of the monitoring artifacts, for scripts/verify-deploy.sh.

The alerting rules have one source, deploy/observability/triggered-cache.rules.yaml;
the PrometheusRule of deploy/k8s/components/monitoring carries the same groups
(`prometheusrule --write` regenerates it). Paths are relative to the
repository root. Each subcommand prints what it checked and exits 1 with
every problem it found.

  observability.py prometheusrule [--write]       the PrometheusRule is the rules file
  observability.py monitoring RENDERED RULES_OUT  PodMonitor + PrometheusRule of a render;
                                                  RULES_OUT: its spec, for promtool
  observability.py dashboard RULES_OUT            the Grafana dashboard's structure;
                                                  RULES_OUT: its queries as recording
                                                  rules, for promtool to parse
  observability.py metric-names SCRAPE            every metric the dashboard and the
                                                  rules use is in SCRAPE (a /metrics body)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from checks.common import Problems, by_kind, load_docs, one
from checks.k8s import strict_roundtrip

OBS = Path("deploy/observability")
RULES = OBS / "triggered-cache.rules.yaml"
DASHBOARD = OBS / "grafana-dashboard.json"
PROMETHEUS_RULE = Path("deploy/k8s/components/monitoring/prometheusrule.yaml")

PROMETHEUS_RULE_HEADER = f"""\
---
# GENERATED from {RULES} by
# `scripts/deploy/observability.py prometheusrule --write`: edit that file and
# regenerate this one (scripts/verify-deploy.sh fails when they differ).
# The alerting rules of triggered-cache for the Prometheus Operator; add the
# labels your Prometheus's ruleSelector asks for (deploy/README-deploy.md).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: triggered-cache
  labels:
    app.kubernetes.io/name: triggered-cache
    app.kubernetes.io/part-of: triggered-cache
spec:
"""

METRIC = re.compile(r"\btriggered_cache_[a-z0-9_]*[a-z0-9]\b")
# Grafana's variables, as a query would see them once they are filled in.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$job": ".*", "$set": ".*"}


def prometheus_rule_text() -> str:
    """The rules file's groups, indented under the PrometheusRule's spec."""
    text = RULES.read_text()
    start = text.index("\ngroups:") + 1
    body = "".join(("  " + line if line.strip() else line) for line in text[start:].splitlines(keepends=True))
    return PROMETHEUS_RULE_HEADER + body


def cmd_prometheusrule(args) -> int:
    want = prometheus_rule_text()
    if args.write:
        PROMETHEUS_RULE.write_text(want)
        print(f"  wrote {PROMETHEUS_RULE}")
        return 0
    p = Problems(str(PROMETHEUS_RULE))
    have = PROMETHEUS_RULE.read_text() if PROMETHEUS_RULE.exists() else ""
    p.check(have == want, f"differs from {RULES}: run scripts/deploy/observability.py prometheusrule --write")
    spec = (yaml.safe_load(have) or {}).get("spec") if have else None
    rules = yaml.safe_load(RULES.read_text())
    p.check(spec == rules, f"its spec does not carry the groups of {RULES}")
    names = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    print(f"  {len(rules['groups'])} groups, alerts: {', '.join(names)}")
    return p.finish()


def cmd_monitoring(args) -> int:
    from cloudcoil.models.prometheus_operator.v1 import PodMonitor, PrometheusRule

    p = Problems(f"monitoring {args.rendered}")
    docs = load_docs(args.rendered)
    rule = one(docs, "PrometheusRule", p)
    mon = one(docs, "PodMonitor", p)
    dep = by_kind(docs, "Deployment")[0]
    if rule is not None:
        strict_roundtrip(PrometheusRule, rule, p, "PrometheusRule")
        p.check(rule["metadata"].get("namespace") == dep["metadata"].get("namespace"), "PrometheusRule is not in the Deployment's namespace")
        p.check(rule["spec"] == yaml.safe_load(RULES.read_text()), f"the rendered PrometheusRule's spec is not {RULES}")
        Path(args.rules_out).write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    if mon is not None:
        strict_roundtrip(PodMonitor, mon, p, "PodMonitor")
        pod = dep["spec"]["template"]
        labels = pod["metadata"].get("labels", {})
        sel = mon["spec"].get("selector", {}).get("matchLabels", {})
        p.check(bool(sel) and all(labels.get(k) == v for k, v in sel.items()), f"PodMonitor selector {sel} does not select the Deployment's pods {labels}")
        ports = {pt.get("name"): pt for c in pod["spec"]["containers"] for pt in c.get("ports", [])}
        for ep in mon["spec"].get("podMetricsEndpoints", []):
            port = ep.get("port")
            p.check(port in ports, f"PodMonitor port {port!r} is not a named container port ({sorted(ports)})")
            p.check(ep.get("path", "/metrics") == "/metrics", f"PodMonitor path {ep.get('path')!r} is not /metrics")
        p.check(bool(mon["spec"].get("podMetricsEndpoints")), "PodMonitor has no podMetricsEndpoints")
    return p.finish()


def dashboard_targets(dash: dict) -> list[tuple[str, str, dict]]:
    """(a name for promtool, where it is for people, the target) of every query."""
    out = []
    for panel in dash.get("panels", []):
        for sub in [panel, *panel.get("panels", [])]:
            for t in sub.get("targets", []):
                pid, ref = sub.get("id"), t.get("refId")
                out.append((f"dashboard:panel_{pid}_{ref}", f"panel {pid} {sub.get('title')!r} query {ref}", t))
    return out


def fill_vars(expr: str) -> str:
    for k in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARS[k])
    return expr


def cmd_dashboard(args) -> int:
    p = Problems(str(DASHBOARD))
    try:
        dash = json.loads(DASHBOARD.read_text())
    except ValueError as e:
        p.check(False, f"is not JSON: {e}")
        return p.finish()
    p.check(bool(dash.get("uid")) and bool(dash.get("title")), "no uid or title")
    p.check(dash.get("id") is None, "carries an id (Grafana assigns one on import)")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    p.check(ds.get("type") == "datasource" and ds.get("query") == "prometheus", "no Prometheus data source variable `datasource`")
    set_var = variables.get("set", {})
    set_query = set_var.get("query", {})
    set_query = set_query.get("query", "") if isinstance(set_query, dict) else set_query
    p.check(re.fullmatch(r"label_values\(triggered_cache_\w+(\{[^}]*\})?, set\)", set_query or "") is not None,
            f"the variable `set` is not label_values(..., set) of a triggered_cache_ metric: {set_query!r}")
    ds_ref = {"type": "prometheus", "uid": "${datasource}"}
    ids, boxes, recording = set(), [], []
    for panel in dash.get("panels", []):
        pid = panel.get("id")
        p.check(pid not in ids, f"panel id {pid} is used twice")
        ids.add(pid)
        g = panel.get("gridPos", {})
        if p.check(all(isinstance(g.get(k), int) for k in "xywh") and g["x"] + g["w"] <= 24, f"panel {pid}: gridPos {g}"):
            for other, og in boxes:
                overlap = g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"] and g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"]
                p.check(not overlap, f"panels {other} and {pid} overlap")
            boxes.append((pid, g))
        if panel.get("type") != "row":
            p.check(panel.get("datasource") == ds_ref, f"panel {pid} does not use the data source variable")
            p.check(bool(panel.get("targets")), f"panel {pid} {panel.get('title')!r} has no query")
    for record, where, t in dashboard_targets(dash):
        expr = t.get("expr", "")
        p.check(t.get("datasource") == ds_ref, f"{where}: does not use the data source variable")
        p.check(bool(METRIC.search(expr)), f"{where}: names no triggered_cache_ metric: {expr!r}")
        leftover = re.findall(r"\$\w+", fill_vars(expr))
        p.check(not leftover, f"{where}: unknown variables {leftover}")
        recording.append({"record": record, "expr": fill_vars(expr)})
    Path(args.rules_out).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}, sort_keys=False))
    print(f"  {sum(1 for x in dash.get('panels', []) if x.get('type') != 'row')} panels, {len(recording)} queries, variables {sorted(variables)}")
    return p.finish()


def scrape_names(text: str) -> set[str]:
    """The names of the samples in a Prometheus text exposition."""
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def used_names() -> dict[str, set[str]]:
    """Every triggered_cache_ name in the dashboard's queries and variables
    and in the alert rules -> where it is used."""
    used: dict[str, set[str]] = {}
    dash = json.loads(DASHBOARD.read_text())
    queries = [t.get("expr", "") for _, _, t in dashboard_targets(dash)]
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        queries.append(q.get("query", "") if isinstance(q, dict) else str(q or ""))
    for q in queries:
        for name in METRIC.findall(q):
            used.setdefault(name, set()).add("dashboard")
    for g in yaml.safe_load(RULES.read_text())["groups"]:
        for r in g["rules"]:
            for name in METRIC.findall(r["expr"]):
                used.setdefault(name, set()).add("alert rules")
    return used


def cmd_metric_names(args) -> int:
    scraped = scrape_names(Path(args.scrape).read_text())
    used = used_names()
    p = Problems("metric names")
    p.check("triggered_cache_messages_received_total" in scraped, "the scrape has no triggered_cache_messages_received_total: is it the daemon's /metrics?")
    missing = sorted(n for n in used if n not in scraped)
    for n in sorted(used):
        p.check(n not in missing, f"{n} ({', '.join(sorted(used[n]))}) is not in /metrics")
    print(f"  {len(used)} names used by the dashboard and the alert rules, {len(scraped)} names in /metrics")
    print(f"  missing from /metrics: {' '.join(missing) if missing else 'none'}")
    return p.finish()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prometheusrule")
    s.add_argument("--write", action="store_true")
    s = sub.add_parser("monitoring")
    s.add_argument("rendered")
    s.add_argument("rules_out")
    s = sub.add_parser("dashboard")
    s.add_argument("rules_out")
    s = sub.add_parser("metric-names")
    s.add_argument("scrape")
    args = ap.parse_args()
    return globals()["cmd_" + args.cmd.replace("-", "_")](args)


if __name__ == "__main__":
    sys.exit(main())
