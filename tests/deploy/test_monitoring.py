"""Prometheus rules, scrape config, Grafana dashboard and prometheus-adapter rule through
promtool and the strict dashboard schema."""

import filecmp
import json
import re
from pathlib import Path

import yaml

from tests.deploy import promql
from tests.deploy.conftest import CHART, DEPLOY, SHARED, check, docs_of, run, tool

MONITORING = DEPLOY / "monitoring"
DASHBOARD_SCHEMA = SHARED / "schemas" / "grafana" / "dashboard.jsonschema.json"


def rule_file(path: Path, exprs: list[str]) -> Path:
    """Wrap bare expressions as recording rules so promtool parses them."""
    group = {
        "name": "exprs",
        "rules": [{"record": f"check:{i}", "expr": e} for i, e in enumerate(exprs)],
    }
    path.write_text(yaml.safe_dump({"groups": [group]}))
    return path


def test_rules_check() -> None:
    check(tool("promtool"), "check", "rules", *map(str, promql.RULE_FILES))


def test_alert_unit_tests_pass() -> None:
    check(tool("promtool"), "test", "rules", str(MONITORING / "tests" / "alerts.test.yml"))


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load((MONITORING / "tests" / "alerts.test.yml").read_text())["tests"]
    firing, quiet = set(), set()
    for case in tests:
        for t in case.get("alert_rule_test", []):
            (firing if t["exp_alerts"] else quiet).add(t["alertname"])
    alerts = {r["alert"] for r in promql.rules() if "alert" in r}
    assert alerts == firing == quiet
    required = {"GarrisonApiDown", "GarrisonHigh5xxRatio", "GarrisonHighLatencyP95"}
    required |= {"GarrisonMemoryNearLimit", "GarrisonDatabaseDown", "GarrisonRedisDown"}
    required |= {"GarrisonQueueBacklogGrowing", "GarrisonOldestPendingRunTooOld"}
    required |= {"GarrisonReaperRecoveringRuns"}
    assert required <= alerts


def test_alert_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    for f in promql.RULE_FILES:
        text = f.read_text().replace(
            'ratio_rate5m{job="garrison-api"} > 0.05', 'ratio_rate5m{job="garrison-api"} > 0.5'
        )
        (tmp_path / "rules" / f.name).write_text(text)
    test = tmp_path / "tests" / "alerts.test.yml"
    test.write_text((MONITORING / "tests" / "alerts.test.yml").read_text())
    result = run(tool("promtool"), "test", "rules", str(test))
    assert result.returncode != 0 and "GarrisonHigh5xxRatio" in result.stdout + result.stderr


def test_every_alert_links_its_runbook_section() -> None:
    runbook = (DEPLOY.parent / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.strip("# ").lower()).replace(" ", "-")
        for h in runbook.splitlines()
        if h.startswith("#")
    }
    for rule in promql.rules():
        if "alert" in rule:
            anchor = rule["annotations"]["runbook_url"].split("#")[1]
            assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/operations.md"


def test_scrape_config(tmp_path: Path) -> None:
    shimmed = tmp_path / "prometheus.yml"
    script = str(DEPLOY / "tools" / "prom_config_for_promtool.py")
    check(tool("python"), script, str(MONITORING / "prometheus.yml"), str(shimmed))
    assert "kubernetes_sd_configs" in (MONITORING / "prometheus.yml").read_text()
    check(tool("promtool"), "check", "config", str(shimmed))
    jobs = {j["job_name"] for j in yaml.safe_load(shimmed.read_text())["scrape_configs"]}
    assert jobs == {"garrison-api", "garrison-worker"}


def test_chart_rules_are_the_monitoring_rules() -> None:
    for f in promql.RULE_FILES:
        assert filecmp.cmp(f, CHART / "files" / f.name, shallow=False), f"cp {f} {CHART / 'files'}"


def test_prometheus_rule_from_chart_passes_promtool(
    helm_renders: dict[str, str], tmp_path: Path
) -> None:
    rule = next(d for d in docs_of(helm_renders["servicemonitor"]) if d["kind"] == "PrometheusRule")
    extracted = tmp_path / "rule.yml"
    extracted.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    out = check(tool("promtool"), "check", "rules", str(extracted))
    assert f"{len(promql.rules())} rules found" in out


def test_dashboard_schema() -> None:
    check(
        tool("check-jsonschema"),
        "--schemafile",
        str(DASHBOARD_SCHEMA),
        *map(str, promql.DASHBOARDS),
    )


def test_dashboard_structure() -> None:
    for path in promql.DASHBOARDS:
        dashboard = json.loads(path.read_text())
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for p in dashboard["panels"]:
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            assert p["datasource"]["uid"] == "${datasource}"
        titles = " ".join(p["title"].lower() for p in dashboard["panels"])
        for topic in (
            "request rate",
            "error",
            "latency",
            "runs",
            "queue",
            "worker",
            "llm",
            "cpu",
            "memory",
        ):
            assert topic in titles


def test_dashboard_and_adapter_promql_parse(tmp_path: Path) -> None:
    exprs = [promql.grafana_to_promql(e) for e in promql.dashboard_exprs()] + promql.adapter_exprs()
    check(tool("promtool"), "check", "rules", str(rule_file(tmp_path / "q.yml", exprs)))
    broken = rule_file(tmp_path / "bad.yml", ["sum(rate(http_requests_total[5m])"])
    assert run(tool("promtool"), "check", "rules", str(broken)).returncode != 0


def test_adapter_serves_the_metric_the_worker_hpa_uses(helm_renders: dict[str, str]) -> None:
    values = yaml.safe_load(promql.ADAPTER.read_text())
    served = {r["name"]["as"] for r in values["rules"]["external"]}
    hpas = [d for d in docs_of(helm_renders["defaults"]) if d["kind"] == "HorizontalPodAutoscaler"]
    used = {
        m["external"]["metric"]["name"]
        for h in hpas
        for m in h["spec"]["metrics"]
        if m["type"] == "External"
    }
    assert used and used <= served


def test_metric_name_extraction() -> None:
    expr = 'sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / on(job) x:y and up'
    assert promql.metric_names(expr) == {"http_requests_total", "x:y", "up"}
