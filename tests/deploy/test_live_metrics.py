"""The rules, dashboard and HPA adapter use only metric names a real Garrison exports.

Starts `garrison serve --no-worker` and `garrison worker` on PostgreSQL + Redis, reads both
/metrics endpoints and checks every probe route the manifests use answers there."""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy import promql
from tests.deploy.conftest import ROOT
from tests.support.server import GarrisonProcess
from tests.support.topology import REDIS_URL, postgres_database, redis_prefix

# Exported by Prometheus itself, cAdvisor and kube-state-metrics, not by Garrison.
EXTERNAL = {
    "up",
    "container_memory_working_set_bytes",
    "container_cpu_usage_seconds_total",
    "kube_pod_container_resource_limits",
}
# The image's project: the bundled examples (no semantic store, so no pgvector needed).
CONFIG = ROOT / "examples" / "langgraph.json"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


def exported_names(exposition: str) -> set[str]:
    names = {
        line.split("{")[0].split(" ")[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        names |= {name} | {name + s for s in SUFFIXES.get(kind, ())}
    return names


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GarrisonProcess]]:
    with postgres_database() as database_url, redis_prefix() as prefix:
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "GARRISON_REDIS_KEY_PREFIX": prefix,
        }
        data: Path = tmp_path_factory.mktemp("metrics")
        api = GarrisonProcess(data / "api", config=CONFIG, env=env, args=("--no-worker",)).start(60)
        worker = GarrisonProcess(data / "worker", config=CONFIG, env=env, command="worker")
        try:
            worker.start(60)
            yield [api, worker]
        finally:
            worker.stop()
            api.stop()


def test_dashboard_and_rules_use_exported_metric_names(processes: list[GarrisonProcess]) -> None:
    httpx.get(f"{processes[0].url}/threads/00000000-0000-0000-0000-000000000000", timeout=5)
    exported = set().union(
        *(exported_names(httpx.get(f"{p.url}/metrics", timeout=5).text) for p in processes)
    )
    missing = promql.used_metric_names() - exported - EXTERNAL
    assert not missing, f"not exported by garrison serve/worker: {sorted(missing)}"


def test_probe_routes_answer(processes: list[GarrisonProcess]) -> None:
    for process in processes:
        for route in ("/health", "/ready", "/ok", "/metrics"):
            assert httpx.get(f"{process.url}{route}", timeout=5).status_code == 200, (
                process.command,
                route,
            )
