"""Runs survive server restarts: graceful (SIGTERM drains) and crash (SIGKILL)."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.server import GarrisonProcess, free_port


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def port() -> int:
    return free_port()


def _server(data_dir: Path, port: int) -> GarrisonProcess:
    return GarrisonProcess(
        data_dir,
        port=port,
        env={
            "GARRISON_WORKER_SHUTDOWN_GRACE_SECONDS": "10",
            "GARRISON_STREAM_HEARTBEAT_SECONDS": "1",
        },
    )


@pytest.fixture
def first_server(data_dir: Path, port: int) -> Iterator[GarrisonProcess]:
    process = _server(data_dir, port).start()
    yield process
    process.kill()


@pytest.fixture
async def client(first_server: GarrisonProcess) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=first_server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


async def _wait_for_steps(log: Path, count: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= count:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"fewer than {count} steps ran")


async def test_sigterm_drains_and_the_run_finishes_after_restart(
    client: LangGraphClient, first_server: GarrisonProcess, side_effects: Path
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "steps", input={"delay": 0.8, "log_file": str(side_effects)}
    )
    await _wait_for_steps(side_effects, 1)
    stopped_at = time.monotonic()
    exit_code = await asyncio.to_thread(first_server.stop)
    assert exit_code == 0
    assert time.monotonic() - stopped_at < 10  # drained at a superstep boundary
    steps_before = side_effects.read_text().splitlines()

    restarted = _server(first_server.data_dir, first_server.port).start()
    try:
        output = await client.runs.join(thread["thread_id"], run["run_id"])
        assert output["done"] == ["one", "two", "three"]
        lines = side_effects.read_text().splitlines()
        # every completed step ran once: the drain stopped between supersteps
        assert [line.split()[1] for line in lines] == ["one", "two", "three"]
        assert lines[: len(steps_before)] == steps_before
        fetched = await client.runs.get(thread["thread_id"], run["run_id"])
        assert fetched["status"] == "success"
    finally:
        restarted.stop()


async def test_sigkill_mid_run_resumes_from_the_last_checkpoint(
    client: LangGraphClient, first_server: GarrisonProcess, side_effects: Path
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"],
        "steps",
        input={"delay": 0.6, "log_file": str(side_effects)},
        durability="sync",
    )
    await _wait_for_steps(side_effects, 2)
    # Step two logs before it returns; give its writes a moment to be checkpointed, so the
    # kill lands in step three's sleep (a kill between a side effect and its checkpoint
    # re-runs that step: tasks are at-least-once, completed supersteps exactly-once).
    await asyncio.sleep(0.25)
    first_server.kill()

    restarted = _server(first_server.data_dir, first_server.port).start()
    try:
        output = await client.runs.join(thread["thread_id"], run["run_id"])
        assert output["done"] == ["one", "two", "three"]
        steps = [line.split()[1] for line in side_effects.read_text().splitlines()]
        assert steps == ["one", "two", "three"]  # completed supersteps did not run again
    finally:
        restarted.stop()


async def test_a_stream_survives_a_restart(
    client: LangGraphClient, first_server: GarrisonProcess, side_effects: Path
) -> None:
    thread = await client.threads.create()
    seen: list[str] = []

    async def consume() -> None:
        async for part in client.runs.stream(
            thread["thread_id"],
            "steps",
            input={"delay": 0.8, "log_file": str(side_effects)},
            stream_mode="updates",
        ):
            seen.append(part.event)

    consumer = asyncio.create_task(consume())
    await _wait_for_steps(side_effects, 1)
    await asyncio.to_thread(first_server.stop)
    restarted = _server(first_server.data_dir, first_server.port).start()
    try:
        await asyncio.wait_for(consumer, 30)  # the SDK reconnects to the run's Location
        assert seen.count("updates") >= 2  # updates arrived after the restart too
        assert (await client.threads.get_state(thread["thread_id"]))["values"]["done"] == [
            "one",
            "two",
            "three",
        ]
    finally:
        restarted.stop()
