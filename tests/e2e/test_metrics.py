"""`/metrics` of real deployments: the names dashboards and alerts use, promtool-clean, and
counts that add up, including across the processes of `garrison serve --workers N`."""

import asyncio
import concurrent.futures
import json
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import PROJECT, GarrisonProcess
from tests.support.topology import (
    Deployment,
    pgvector_available,
    postgres_database,
    without_semantic_index,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

FAMILIES = [
    "http_requests_total",
    "http_request_duration_seconds",
    "langgraph_workflow_executions_total",
    "langgraph_workflow_duration_seconds",
    "langgraph_active_workflows",
    "langgraph_active_sessions",
    "langgraph_llm_api_calls_total",
    "garrison_queue_depth",
    "garrison_queue_oldest_pending_age_seconds",
    "garrison_worker_slots",
    "garrison_worker_slots_busy",
    "garrison_lease_expirations_total",
    "garrison_reaper_recoveries_total",
    "garrison_storage_up",
    "garrison_broker_up",
]


def scrape_text(url: str) -> str:
    response = httpx.get(f"{url}/metrics", timeout=10.0)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def scrape_all(processes: Iterable[GarrisonProcess]) -> list[Samples]:
    return [parse(scrape_text(p.url)) for p in processes]


def summed(scrapes: list[Samples], name: str, **labels: str) -> float:
    return sum(total(s, name, **labels) for s in scrapes)


def runners(server: Deployment) -> list[GarrisonProcess]:
    """The processes that execute runs: worker processes, else the API processes."""
    return server.workers or server.api


def promtool_check(text: str) -> None:
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


async def test_metrics_name_every_family_and_pass_promtool(
    server: Deployment, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "hi"})
    for process in [*server.api, *server.workers]:
        text = scrape_text(process.url)
        promtool_check(text)
        families = {family.name for family in text_string_to_metric_families(text)}
        names = {n for n, _ in parse(text)}
        for name in FAMILIES:
            # Families without samples yet still print their HELP and TYPE.
            assert name in names or name.removesuffix("_total") in families, name
        samples = parse(text)
        assert total(samples, "garrison_storage_up") == 1
        assert total(samples, "garrison_broker_up") == 1
        if server.database_url is not None:
            assert total(samples, "garrison_db_pool_connections", state="max") >= 1
            assert total(samples, "garrison_redis_pool_connections", state="max") >= 2
        else:
            assert ("garrison_db_pool_connections", frozenset()) not in samples


async def test_http_requests_are_labelled_by_route_template(
    server: Deployment, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    route = {"route": "/threads/{thread_id}", "method": "GET", "status": "200"}
    before = summed(scrape_all(server.api), "http_requests_total", **route)
    for _ in range(3):
        await client.threads.get(thread["thread_id"])
    async with httpx.AsyncClient(base_url=server.url) as raw:
        assert (await raw.get("/no/such/path")).status_code == 404
    after = scrape_all(server.api)
    assert summed(after, "http_requests_total", **route) == before + 3
    assert summed(after, "http_requests_total", route="unmatched", status="404") >= 1
    assert (
        summed(
            after, "http_request_duration_seconds_count", route="/threads/{thread_id}", method="GET"
        )
        >= 3
    )
    # Raw paths never become labels.
    assert not any(
        thread["thread_id"] in dict(labels).get("route", "") for s in after for _, labels in s
    )


async def test_runs_are_counted_by_graph_and_final_status(
    server: Deployment, client: LangGraphClient
) -> None:
    ok = {"workflow_type": "echo", "status": "success"}
    failed = {"workflow_type": "failing", "status": "error"}
    before = scrape_all(runners(server))
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "x"})
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "y"})
    await client.runs.wait(thread["thread_id"], "failing", input={}, raise_error=False)
    after = scrape_all(runners(server))
    executions = "langgraph_workflow_executions_total"
    assert summed(after, executions, **ok) == summed(before, executions, **ok) + 2
    assert summed(after, executions, **failed) == summed(before, executions, **failed) + 1
    durations = "langgraph_workflow_duration_seconds_count"
    assert summed(after, durations, workflow_type="echo") == (
        summed(before, durations, workflow_type="echo") + 2
    )
    assert summed(after, "langgraph_active_workflows") == 0
    assert summed(after, "garrison_worker_slots_busy") == 0
    assert summed(after, "garrison_worker_slots") == 8 * len(runners(server))


async def test_open_streams_and_running_runs_are_gauged(
    server: Deployment, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    stream = client.runs.stream(
        thread["thread_id"], "steps", input={"delay": 0.7}, stream_mode="updates"
    )
    seen = False
    async for part in stream:
        if part.event == "updates" and not seen:
            seen = True
            api, workers = scrape_all(server.api), scrape_all(runners(server))
            assert summed(api, "langgraph_active_sessions") >= 1
            assert summed(workers, "langgraph_active_workflows", workflow_type="steps") == 1
            assert summed(workers, "garrison_worker_slots_busy") == 1
    assert seen
    await asyncio.sleep(0.2)  # the stream's end is recorded once its response closes
    assert summed(scrape_all(server.api), "langgraph_active_sessions") == 0


async def test_queue_depth_and_age_count_waiting_runs(
    server: Deployment, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    running = await client.runs.create(thread["thread_id"], "steps", input={"delay": 1.0})
    # Queued behind the running run of its thread: pending, eligible, and waiting.
    queued = await client.runs.create(
        thread["thread_id"], "echo", input={}, multitask_strategy="enqueue"
    )
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        samples = parse(scrape_text(server.url))
        depth = total(samples, "garrison_queue_depth")
        age = total(samples, "garrison_queue_oldest_pending_age_seconds")
        if depth >= 1 and age > 0:
            break
        assert asyncio.get_running_loop().time() < deadline, (depth, age)
        await asyncio.sleep(0.25)
    await client.runs.join(thread["thread_id"], running["run_id"])
    await client.runs.join(thread["thread_id"], queued["run_id"])
    deadline = asyncio.get_running_loop().time() + 10
    while total(parse(scrape_text(server.url)), "garrison_queue_depth") != 0:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.25)


def _per_process_requests(metrics_dir: Path, route: str) -> dict[int, float]:
    """http_requests_total{route} per process, read from each process's own file."""
    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == "http_requests_total" and labels.get("route") == route:
                counts[pid] = counts.get(pid, 0.0) + value
    return counts


def test_workers_processes_merge_their_metrics(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"  # where the server makes its metrics directory
    scratch.mkdir()
    with postgres_database() as database_url:
        env = {
            "DATABASE_URL": database_url,
            "TMPDIR": str(scratch),
            "GARRISON_WORKER_CONCURRENCY": "4",
        }
        config = PROJECT if pgvector_available() else without_semantic_index(PROJECT, tmp_path)
        process = GarrisonProcess(tmp_path, config=config, env=env, args=("--workers", "2")).start()
        try:
            (metrics_dir,) = scratch.glob("garrison-metrics-*")

            def create_thread(_: int) -> int:
                # A connection per request, so the kernel spreads them over both processes.
                with httpx.Client(base_url=process.url, timeout=10.0) as fresh:
                    return fresh.post("/threads", json={}).status_code

            sent = 0
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                while True:
                    assert all(code == 200 for code in pool.map(create_thread, range(40)))
                    sent += 40
                    per_process = _per_process_requests(metrics_dir, "/threads")
                    if (len(per_process) == 2 and all(per_process.values())) or sent >= 800:
                        break
            assert len(per_process) == 2, per_process  # both processes served some
            # A request is counted as its response ends, which can be just after the client
            # has it: give the last counts a moment to land.
            deadline = time.monotonic() + 5.0
            while sum(per_process.values()) < sent and time.monotonic() < deadline:
                time.sleep(0.05)
                per_process = _per_process_requests(metrics_dir, "/threads")
            assert sum(per_process.values()) == sent
            text = scrape_text(process.url)
            promtool_check(text)
            samples = parse(text)
            assert total(samples, "http_requests_total", route="/threads", method="POST") == sent
            assert total(samples, "garrison_worker_slots") == 8  # livesum: 2 processes x 4
            assert total(samples, "garrison_db_pool_connections", state="max") == 40  # 2 x 20
            assert total(samples, "garrison_storage_up") == 1
        finally:
            assert process.stop() == 0
        assert not metrics_dir.exists()  # removed with the server


async def test_a_lost_worker_shows_as_a_lease_expiration_and_a_recovery(tmp_path: Path) -> None:
    with postgres_database() as database_url:
        env = {
            "DATABASE_URL": database_url,
            "GARRISON_WORKER_LEASE_SECONDS": "2",
            "GARRISON_WORKER_HEARTBEAT_SECONDS": "0.5",
            "GARRISON_WORKER_REAPER_SECONDS": "0.5",
            "GARRISON_WORKER_POLL_SECONDS": "0.5",
        }
        config = PROJECT if pgvector_available() else without_semantic_index(PROJECT, tmp_path)
        first = GarrisonProcess(tmp_path, config=config, env=env).start()
        second: GarrisonProcess | None = None
        try:
            sdk = get_client(url=first.url, api_key=None)
            thread = await sdk.threads.create()
            run = await sdk.runs.create(thread["thread_id"], "steps", input={"delay": 1.0})
            await sdk.http.client.aclose()
            deadline = time.monotonic() + 10
            while total(parse(scrape_text(first.url)), "langgraph_active_workflows") < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            first.kill()  # the run's worker is gone; its lease will expire
            second = GarrisonProcess(tmp_path, config=config, env=env).start()
            sdk = get_client(url=second.url, api_key=None)
            await sdk.runs.join(thread["thread_id"], run["run_id"])
            assert (await sdk.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"
            await sdk.http.client.aclose()
            samples = parse(scrape_text(second.url))
            assert total(samples, "garrison_lease_expirations_total") == 1
            assert total(samples, "garrison_reaper_recoveries_total") == 1
            assert total(samples, "langgraph_workflow_executions_total", workflow_type="steps") == 1
        finally:
            first.kill()
            if second is not None:
                second.stop()
