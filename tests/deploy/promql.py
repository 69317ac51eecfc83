"""The metric names PromQL expressions use, and the alert rules, dashboard and
prometheus-adapter rule they come from (read once from deploy/monitoring)."""

import json
import re
from pathlib import Path
from typing import Any

import yaml

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
DASHBOARDS = sorted((MONITORING / "grafana").glob("*.json"))
ADAPTER = MONITORING / "prometheus-adapter-values.yaml"
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS |= {"bool", "offset", "inf", "nan"}
IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def grafana_to_promql(expr: str) -> str:
    """Grafana's interval macros become 5m, other $variables a plain value."""
    expr = re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", "x", expr)


def adapter_to_promql(query: str, series: str) -> str:
    return query.replace("<<.Series>>", series).replace("<<.LabelMatchers>>", 'namespace="x"')


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in IDENT.finditer(expr):
        rest = expr[match.end() :].lstrip()
        word = match.group()
        if word.lower() not in KEYWORDS and not rest.startswith("("):
            names.add(word)
    return names


def rules() -> list[dict[str, Any]]:
    return [
        r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
    ]


def dashboard_exprs() -> list[str]:
    return [
        t["expr"]
        for d in DASHBOARDS
        for p in json.loads(d.read_text())["panels"]
        for t in p.get("targets", [])
    ]


def adapter_exprs() -> list[str]:
    values = yaml.safe_load(ADAPTER.read_text())
    return [
        adapter_to_promql(r["metricsQuery"], r["name"]["as"]) for r in values["rules"]["external"]
    ]


def used_metric_names() -> set[str]:
    """Raw metric names used by the rules, dashboards and adapter (recording rules resolved)."""
    recorded = {r["record"] for r in rules() if "record" in r}
    exprs = [r["expr"] for r in rules()] + dashboard_exprs() + adapter_exprs()
    names = set().union(*(metric_names(grafana_to_promql(e)) for e in exprs))
    for d in DASHBOARDS:
        for var in json.loads(d.read_text())["templating"]["list"]:
            names |= set(re.findall(r"label_values\((\w+)", str(var.get("query", ""))))
    return names - recorded
