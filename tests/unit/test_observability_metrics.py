"""Metrics pieces in process: route labels, the queue/health probe on real SQLite storage,
merging across processes, and tracing's zero cost when off."""

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from garrison.observability import exposition
from garrison.observability.http_metrics import HttpMetricsMiddleware
from garrison.observability.probes import HealthProbe
from garrison.storage.sqlite import SqliteStorage
from tests.contract.factories import TENANT, make_thread, new_run


def _value(text: bytes | str, name: str, **labels: str) -> float | None:
    body = text.decode() if isinstance(text, bytes) else text
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return None


async def test_requests_are_counted_by_route_template_method_and_status() -> None:
    async def item(request: Request) -> PlainTextResponse:
        status = 500 if request.path_params["item_id"] == "boom" else 200
        return PlainTextResponse("ok", status_code=status)

    app = HttpMetricsMiddleware(Starlette(routes=[Route("/items/{item_id}", item)]))
    route = {"route": "/items/{item_id}", "method": "GET"}
    before = exposition.render()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        await c.get("/items/a")
        await c.get("/items/b")
        await c.get("/items/boom")
        await c.get("/elsewhere")
    after = exposition.render()

    def delta(name: str, **labels: str) -> float:
        return (_value(after, name, **labels) or 0) - (_value(before, name, **labels) or 0)

    assert delta("http_requests_total", status="200", **route) == 2
    assert delta("http_requests_total", status="500", **route) == 1
    assert delta("http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("http_request_duration_seconds_count", **route) == 3
    assert _value(after, "http_requests_total", route="/items/a") is None


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    opened = await SqliteStorage.open(tmp_path / "garrison.sqlite")
    yield opened
    await opened.close()


async def test_the_probe_reads_the_queue_caches_it_and_reports_storage_down(
    storage: SqliteStorage,
) -> None:
    probe = HealthProbe(queue_stats=storage.runs.queue_stats, cache_seconds=60)
    assert list(probe.collect()) == []  # nothing read yet: nothing reported
    empty = await probe.refresh()
    assert (empty.storage_up, empty.depth, empty.oldest_age_seconds) == (True, 0, 0.0)
    thread = await make_thread(storage)
    await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    assert (await probe.refresh()).depth == 0  # cached
    fresh = HealthProbe(queue_stats=storage.runs.queue_stats, cache_seconds=0)
    reading = await fresh.refresh()
    assert reading.depth == 1 and reading.oldest_age_seconds is not None
    text = exposition.render([fresh])
    assert _value(text, "garrison_queue_depth") == 1
    assert _value(text, "garrison_storage_up") == 1 and _value(text, "garrison_broker_up") == 1

    await storage.close()
    down = await fresh.refresh()
    assert not down.storage_up and down.depth is None
    text = exposition.render([fresh])
    assert _value(text, "garrison_storage_up") == 0
    assert _value(text, "garrison_queue_depth") is None  # unknown, not a false zero


_CHILD = """
import sys
from garrison.observability.metrics import HTTP_REQUESTS, WORKER_SLOTS
HTTP_REQUESTS.labels("/x", "GET", "200").inc(int(sys.argv[1]))
WORKER_SLOTS.inc(4)
"""


def test_processes_sharing_a_directory_are_merged_and_dead_ones_leave_live_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pids = []
    for count in (3, 5):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(count)], env={**_base_env(), **env}
        )
        assert child.wait(30) == 0
        pids.append(child.pid)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = exposition.render()
    assert _value(text, "http_requests_total", route="/x") == 8
    assert _value(text, "garrison_worker_slots") == 8
    exposition.process_exited(pids[0])
    text = exposition.render()
    assert _value(text, "http_requests_total", route="/x") == 8  # counters outlive processes
    assert _value(text, "garrison_worker_slots") == 4  # live gauges do not


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}


_NO_TRACING = """
import asyncio, sys, tempfile
import httpx
from garrison.app import create_app
from garrison.config.project import load_project
from garrison.config.settings import Settings
from tests.support.server import PROJECT

async def main():
    project = load_project(PROJECT)
    overrides = {"storage": {"data_dir": tempfile.mkdtemp()}}
    settings = Settings.load(project.settings_values(), overrides)
    app = create_app(settings, project)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
            thread = (await client.post("/threads", json={})).json()
            body = {"assistant_id": "steps", "input": {}}
            path = f"/threads/{thread['thread_id']}/runs/wait"
            assert (await client.post(path, json=body)).status_code == 200
            run = (await client.get(f"/threads/{thread['thread_id']}/runs")).json()[0]
    assert "__traceparent__" not in run["kwargs"]["config"]["configurable"]
    names = [m.cls.__name__ for m in app.user_middleware]
    assert "TracingMiddleware" not in names, names
    # (langsmith imports the SDK's modules when installed; nothing of it runs for us.)
    ours = ("opentelemetry.exporter", "garrison.observability.tracing_")
    loaded = sorted(m for m in sys.modules if m.startswith(ours))
    assert not loaded, loaded

asyncio.run(main())
"""


def test_tracing_is_off_by_default_and_costs_nothing() -> None:
    env = {k: v for k, v in _base_env().items() if not k.startswith(("OTEL_", "GARRISON_OTEL"))}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _NO_TRACING], env=env, cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
