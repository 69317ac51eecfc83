"""S6: every resource limit, hit on real server processes.

Covered elsewhere, on the shared e2e server: `recursion_limit` above
`worker.max_recursion_limit` is 422 (tests/e2e/test_runs.py), and a run past
`worker.run_timeout_seconds` ends `timeout` with "Run exceeded 1 s" and frees its worker
slot (tests/e2e/test_server_options.py).

Authentication is off (auth mode `none`): every request here is the same caller (the
anonymous principal, or without one the client IP 127.0.0.1), so one bucket.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.server import PROJECT, GarrisonProcess
from tests.support.topology import (
    REDIS_URL,
    postgres_database,
    redis_prefix,
    without_semantic_index,
)

pytestmark = pytest.mark.e2e

BODY_LIMIT = 4096


def _start(
    directory: Path, env: dict[str, str], *args: str, config: Path = PROJECT
) -> GarrisonProcess:
    return GarrisonProcess(directory, config=config, env=env, args=args).start()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarrisonProcess]:
    """1 request per second per caller, bursts of 3."""
    env = {"GARRISON_LIMIT_REQUESTS_PER_SECOND": "1", "GARRISON_LIMIT_BURST": "3"}
    process = _start(tmp_path_factory.mktemp("rate"), env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarrisonProcess]:
    env = {
        "GARRISON_MAX_BODY_BYTES": str(BODY_LIMIT),
        "GARRISON_LIMIT_MAX_QUEUED_RUNS_PER_TENANT": "2",
        "GARRISON_LIMIT_MAX_STREAMS_PER_KEY": "2",
        "GARRISON_STREAM_HEARTBEAT_SECONDS": "0.2",
    }
    process = _start(tmp_path_factory.mktemp("caps"), env)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def in_flight_capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarrisonProcess]:
    env = {"GARRISON_LIMIT_MAX_CONCURRENT_RUNS_PER_TENANT": "2"}
    process = _start(tmp_path_factory.mktemp("in-flight"), env)
    yield process
    process.stop()


@pytest.fixture
async def http(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    server: GarrisonProcess = request.getfixturevalue(request.param)
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        yield client


def _on(server: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("http", [server], indirect=True)


async def _thread(http: httpx.AsyncClient) -> str:
    response = await http.post("/threads", json={})
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])


# Rate limit -------------------------------------------------------------------------------
@_on("limited")
async def test_past_the_burst_requests_get_429_with_retry_after_then_recover(
    http: httpx.AsyncClient,
) -> None:
    path = f"/threads/{uuid.uuid4()}"  # a 404 costs a token like any other request
    statuses = [(await http.get(path)).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    refused = await http.get(path)
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Rate limit exceeded; retry in 1 s"}
    assert refused.headers["retry-after"] == "1"
    # Probes and metrics stay reachable for a limited caller.
    for public in ("/ok", "/ready", "/metrics"):
        assert (await http.get(public)).status_code == 200, public
    await asyncio.sleep(int(refused.headers["retry-after"]))
    assert (await http.get(path)).status_code == 404


async def test_two_api_processes_share_one_bucket_through_redis(tmp_path: Path) -> None:
    with postgres_database() as database_url, redis_prefix() as prefix:
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "GARRISON_REDIS_KEY_PREFIX": prefix,
            # One token per 10 s: nothing refills while the test runs.
            "GARRISON_LIMIT_REQUESTS_PER_SECOND": "0.1",
            "GARRISON_LIMIT_BURST": "4",
        }
        # Semantic search (pgvector) is beside the point here.
        config = without_semantic_index(PROJECT, tmp_path)
        processes = [
            GarrisonProcess(tmp_path / str(i), config=config, env=env, args=("--no-worker",))
            for i in range(2)
        ]
        try:
            await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))
            async with AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(httpx.AsyncClient(base_url=p.url))
                    for p in processes
                ]
                statuses = [
                    (await clients[i % 2].get(f"/threads/{uuid.uuid4()}")).status_code
                    for i in range(8)
                ]
            # Four tokens in all, not four per process; both processes then refuse.
            assert statuses == [404] * 4 + [429] * 4
            # One bucket for the one caller, under the deployment's key prefix.
            assert len(redis.Redis.from_url(REDIS_URL).keys(f"{prefix}:ratelimit:*")) == 1
        finally:
            for process in processes:
                process.stop()


# Body size --------------------------------------------------------------------------------
@_on("capped")
async def test_a_body_declared_too_large_is_refused_with_413(http: httpx.AsyncClient) -> None:
    body = b'{"metadata": {"x": "' + b"x" * BODY_LIMIT + b'"}}'
    response = await http.post("/threads", content=body)
    assert response.status_code == 413
    assert response.json() == {"detail": f"Request body too large (limit {BODY_LIMIT} bytes)"}


@_on("capped")
async def test_a_chunked_body_is_cut_off_at_the_limit_with_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"metadata": {"x": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}}'

    response = await http.post(
        "/threads", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": f"Request body too large (limit {BODY_LIMIT} bytes)"}


# Runs per tenant --------------------------------------------------------------------------
@_on("capped")
async def test_the_tenants_queued_run_cap_refuses_more_with_429(http: httpx.AsyncClient) -> None:
    delayed = {"assistant_id": "echo", "input": {"value": "later"}, "after_seconds": 600}
    for _ in range(2):
        created = await http.post(f"/threads/{await _thread(http)}/runs", json=delayed)
        assert created.status_code == 200, created.text
    thread = await _thread(http)
    refused = await http.post(f"/threads/{thread}/runs", json=delayed)
    assert refused.status_code == 429
    assert "queued runs" in refused.json()["detail"] and refused.headers["retry-after"] == "1"
    assert (await http.get(f"/threads/{thread}/runs")).json() == []  # nothing was created
    cancelled = await http.post("/runs/cancel", json={"status": "pending"})
    assert cancelled.status_code in (200, 204), cancelled.text
    again = await http.post(f"/threads/{thread}/runs", json=delayed)
    assert again.status_code == 200, again.text
    await http.post("/runs/cancel", json={"status": "pending"})


@_on("in_flight_capped")
async def test_the_tenants_in_flight_run_cap_refuses_more_until_runs_finish(
    http: httpx.AsyncClient,
) -> None:
    slow = {"assistant_id": "steps", "input": {"delay": 0.5}}
    threads = [await _thread(http) for _ in range(3)]
    runs = []
    for thread in threads[:2]:
        created = await http.post(f"/threads/{thread}/runs", json=slow)
        assert created.status_code == 200, created.text
        runs.append((thread, created.json()["run_id"]))
    refused = await http.post(f"/threads/{threads[2]}/runs", json=slow)
    assert refused.status_code == 429 and "in flight" in refused.json()["detail"]
    for thread, run_id in runs:
        joined = await http.get(f"/threads/{thread}/runs/{run_id}/join")
        assert joined.status_code == 200
    accepted = await http.post(f"/threads/{threads[2]}/runs/wait", json=slow)
    assert accepted.status_code == 200, accepted.text


# Streams ----------------------------------------------------------------------------------
@_on("capped")
async def test_open_streams_per_caller_are_capped(http: httpx.AsyncClient) -> None:
    threads = [await _thread(http) for _ in range(3)]
    async with AsyncExitStack() as stack:
        for thread in threads[:2]:
            opened = await stack.enter_async_context(
                http.stream("GET", f"/threads/{thread}/stream")
            )
            assert opened.status_code == 200
        refused = await http.get(f"/threads/{threads[2]}/stream")
        assert refused.status_code == 429 and "streams" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "1"
        # A run may not be created through a stream either: refused before it exists.
        body = {"assistant_id": "echo", "input": {"value": "x"}}
        assert (await http.post("/runs/stream", json=body)).status_code == 429
        assert (await http.get(f"/threads/{threads[2]}")).status_code == 200
    # The closed streams freed their slots (the server notices the disconnect).
    deadline = time.monotonic() + 5
    while True:
        async with http.stream("GET", f"/threads/{threads[2]}/stream") as reopened:
            if reopened.status_code == 200 or time.monotonic() > deadline:
                assert reopened.status_code == 200
                break
        await asyncio.sleep(0.1)
