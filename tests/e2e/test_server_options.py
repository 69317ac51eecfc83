"""Server options that need their own process: run timeouts, thread TTLs, disabled routes."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.support.server import GarrisonProcess

GRAPHS = Path(__file__).resolve().parent / "project" / "graphs"


def _project(directory: Path, **extra: object) -> Path:
    config = {
        "dependencies": [str(GRAPHS)],
        "graphs": {
            "steps": str(GRAPHS / "steps.py") + ":graph",
            "echo": str(GRAPHS / "echo.py") + ":graph",
        },
        **extra,
    }
    path = directory / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def ttl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarrisonProcess]:
    directory = tmp_path_factory.mktemp("ttl")
    config = _project(
        directory,
        # Threads expire after 1.2 s by default; the sweeper looks every 0.3 s.
        checkpointer={
            "ttl": {"strategy": "delete", "default_ttl": 0.02, "sweep_interval_minutes": 0.005}
        },
        http={"disable_store": True, "disable_meta": True, "disable_assistants": True},
    )
    process = GarrisonProcess(directory / "data", config=config).start()
    yield process
    process.stop()


@pytest.fixture
async def ttl_client(ttl_server: GarrisonProcess) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=ttl_server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


async def _gone(client: LangGraphClient, thread_id: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            await client.threads.get(thread_id)
        except NotFoundError:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_default_ttl_deletes_expired_threads(ttl_client: LangGraphClient) -> None:
    thread = await ttl_client.threads.create()
    assert (await ttl_client.threads.get(thread["thread_id"], include=["ttl"]))["ttl"][
        "strategy"
    ] == "delete"
    await ttl_client.runs.wait(thread["thread_id"], "echo", input={"value": "x"})
    assert await _gone(ttl_client, thread["thread_id"], within=6)


async def test_keep_latest_prunes_history_and_keeps_the_thread(ttl_client: LangGraphClient) -> None:
    thread = await ttl_client.threads.create(ttl={"ttl": 0.02, "strategy": "keep_latest"})
    await ttl_client.runs.wait(thread["thread_id"], "steps", input={})
    assert len(await ttl_client.threads.get_history(thread["thread_id"], limit=20)) > 1
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        history = await ttl_client.threads.get_history(thread["thread_id"], limit=20)
        if len(history) == 1:
            break
        await asyncio.sleep(0.1)
    assert len(history) == 1
    assert history[0]["values"]["done"] == ["one", "two", "three"]  # the latest state survives
    kept = await ttl_client.threads.get(thread["thread_id"], include=["ttl"])
    assert kept["ttl"] is None  # swept once, not again and again


async def test_disabled_routes_are_not_served(ttl_server: GarrisonProcess) -> None:
    async with httpx.AsyncClient(base_url=ttl_server.url) as http:
        for path in ("/store/items?namespace=a&key=b", "/info", "/docs", "/openapi.json"):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.post("/assistants/search", json={})).status_code in (404, 405)
        assert (await http.get("/ok")).json() == {"ok": True}
        assert (
            await http.post("/runs/wait", json={"assistant_id": "echo", "input": {}})
        ).status_code == 200


@pytest.fixture(scope="module")
def timeout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarrisonProcess]:
    directory = tmp_path_factory.mktemp("timeout")
    process = GarrisonProcess(
        directory / "data",
        config=_project(directory),
        env={"GARRISON_WORKER_RUN_TIMEOUT_SECONDS": "1"},
    ).start()
    yield process
    process.stop()


async def test_runs_past_the_timeout_end_as_timeout(timeout_server: GarrisonProcess) -> None:
    client = get_client(url=timeout_server.url, api_key=None)
    try:
        thread = await client.threads.create()
        started = time.monotonic()
        output = await client.runs.wait(
            thread["thread_id"], "steps", input={"delay": 2.0}, raise_error=False
        )
        assert time.monotonic() - started < 4
        assert output["__error__"]["error"] == "TimeoutError"
        run = (await client.runs.list(thread["thread_id"]))[0]
        assert run["status"] == "timeout"
        assert (await client.threads.get(thread["thread_id"]))["status"] == "error"
        quick = await client.runs.wait(thread["thread_id"], "echo", input={"value": "ok"})
        assert quick == {"value": "ok", "count": 1}  # the worker slot was released
    finally:
        await client.http.client.aclose()
