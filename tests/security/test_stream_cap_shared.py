"""S6: the open-stream cap holds across API replicas that share PostgreSQL and Redis.

Two real `garrison serve --no-worker` processes, one caller (auth mode `none`: the same
anonymous principal on both), a cap of 2 open streams.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.server import PROJECT, GarrisonProcess
from tests.support.topology import (
    REDIS_URL,
    postgres_database,
    redis_prefix,
    without_semantic_index,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[list[httpx.AsyncClient]]:
    with postgres_database() as database_url, redis_prefix() as prefix:
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "GARRISON_REDIS_KEY_PREFIX": prefix,
            "GARRISON_LIMIT_MAX_STREAMS_PER_KEY": "2",
            # Frequent heartbeats: a server notices a closed stream within 0.2 s.
            "GARRISON_STREAM_HEARTBEAT_SECONDS": "0.2",
        }
        config = without_semantic_index(PROJECT, tmp_path)  # pgvector is beside the point
        processes = [
            GarrisonProcess(tmp_path / name, config=config, env=env, args=("--no-worker",))
            for name in ("a", "b")
        ]
        try:
            await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))
            async with AsyncExitStack() as stack:
                yield [
                    await stack.enter_async_context(httpx.AsyncClient(base_url=p.url, timeout=30))
                    for p in processes
                ]
        finally:
            for process in processes:
                process.stop()


async def _thread(http: httpx.AsyncClient) -> str:
    response = await http.post("/threads", json={})
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])


async def _refused_stream(http: httpx.AsyncClient, path: str) -> httpx.Response:
    """Fails at once, rather than waiting on an endless stream, when the stream opens."""
    async with http.stream("GET", path) as response:
        assert response.status_code == 429
        await response.aread()
        return response


async def test_streams_open_on_one_replica_count_on_the_other(
    replicas: list[httpx.AsyncClient],
) -> None:
    a, b = replicas
    threads = [await _thread(a) for _ in range(3)]
    async with AsyncExitStack() as both:
        first = await both.enter_async_context(a.stream("GET", f"/threads/{threads[0]}/stream"))
        assert first.status_code == 200
        async with a.stream("GET", f"/threads/{threads[1]}/stream") as second:
            assert second.status_code == 200
            refused = await _refused_stream(b, f"/threads/{threads[2]}/stream")
            assert refused.json() == {"detail": "Too many open streams (limit 2 per caller)"}
            assert refused.headers["retry-after"] == "1"
            # Nor may B create a run through a stream: refused before the run exists.
            body = {"assistant_id": "echo", "input": {"value": "x"}}
            assert (
                await b.post(f"/threads/{threads[2]}/runs/stream", json=body)
            ).status_code == 429
            assert (await b.get(f"/threads/{threads[2]}/runs")).json() == []
        # A noticed the closed stream and gave its slot back: B may open one now, and only one.
        deadline = time.monotonic() + 5
        while True:
            reopened = await both.enter_async_context(
                b.stream("GET", f"/threads/{threads[2]}/stream")
            )
            if reopened.status_code == 200:
                break
            await reopened.aclose()
            assert time.monotonic() < deadline, "the closed stream's slot was never freed"
            await asyncio.sleep(0.1)
        await _refused_stream(a, f"/threads/{threads[1]}/stream")
