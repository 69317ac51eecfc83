"""E1 through the real server: a `garrison serve` process with encryption on, driven by the
official `langgraph_sdk` client, leaves no canary in the database (the raw SQLite files,
-wal included, or a `pg_dump` of the whole database) nor in the Redis stream logs kept for
replay; the same session without keys leaves every canary there (the scan works)."""

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from langgraph_sdk import get_client

from tests.support.topology import REDIS_URL, Deployment, deploy

KEY = base64.b64encode(os.urandom(32)).decode()
CANARIES = {
    "input": "CANARY-srv-input-1a2b",
    "input_list": "CANARY-srv-list-3c4d",
    "input_nested": "CANARY-srv-nested-5e6f",
    "config": "CANARY-srv-config-7a8b",
    "interrupt": "CANARY-srv-interrupt-9c0d",
    "email": "CANARY-srv-email-e1e2",
    "run_token": "CANARY-srv-token-f3f4",
    "cron": "CANARY-srv-cron-a5a6",
    "store": "CANARY-srv-store-b7b8",
}


def found(data: bytes) -> list[str]:
    return sorted(name for name, canary in CANARIES.items() if canary.encode() in data)


@pytest.fixture(params=["embedded", "postgres"])
def served_on(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def deployment_factory(tmp_path: Path, served_on: str) -> Iterator[Any]:
    def start(encrypted: bool) -> Any:
        env = {"GARRISON_ENCRYPTION_KEYS": f"k1:{KEY}"} if encrypted else {}
        data_dir = tmp_path / ("on" if encrypted else "off")
        data_dir.mkdir()
        return deploy(served_on, data_dir, env=env)

    yield start


async def drive(url: str) -> None:
    """Everything a client sends that carries canaries, and checks that what it gets back
    is plaintext (state, runs.get, join, stream, search)."""
    client = get_client(url=url)
    thread = await client.threads.create(metadata={"user_email": CANARIES["email"], "team": "blue"})
    thread_id = thread["thread_id"]
    run_input: dict[str, Any] = {
        "value": CANARIES["input"],
        "extra": [CANARIES["input_list"]],
        "deep": {"inner": {"x": CANARIES["input_nested"]}},
    }
    chunks = [
        chunk
        async for chunk in client.runs.stream(
            thread_id,
            "echo",
            input=run_input,
            config={"configurable": {"hint": CANARIES["config"]}},
            metadata={"session_token": CANARIES["run_token"]},
            stream_mode="values",
        )
    ]
    assert any(
        isinstance(c.data, dict) and c.data.get("value") == CANARIES["input"] for c in chunks
    )
    runs = await client.runs.list(thread_id)
    fetched = await client.runs.get(thread_id, runs[0]["run_id"])
    assert (fetched["metadata"] or {}).get("session_token") == CANARIES["run_token"]
    state = await client.threads.get_state(thread_id)
    assert cast(dict[str, Any], state)["values"]["value"] == CANARIES["input"]

    # A joined run, on a graph that interrupts with the canary in its question.
    approval = await client.threads.create()
    run = await client.runs.create(
        approval["thread_id"], "approval", input={"request": CANARIES["interrupt"]}
    )
    await client.runs.join(approval["thread_id"], run["run_id"])
    paused = await client.threads.get(approval["thread_id"])
    assert paused["status"] == "interrupted"
    assert CANARIES["interrupt"] in str(paused["interrupts"])

    await client.crons.create_for_thread(
        thread_id, "echo", schedule="0 0 1 1 *", input={"value": CANARIES["cron"]}
    )
    await client.store.put_item(["memories"], "profile", {"secret": CANARIES["store"]})

    hits = await client.threads.search(metadata={"team": "blue"})
    assert [t["thread_id"] for t in hits] == [thread_id]
    assert (hits[0]["metadata"] or {}).get("user_email") == CANARIES["email"]
    by_values = await client.threads.search(values={"value": CANARIES["input"]})
    assert [t["thread_id"] for t in by_values] == [thread_id]


def at_rest(deployment: Deployment, data_dir: Path) -> bytes:
    """The whole database and the deployment's Redis keys, as raw bytes."""
    if deployment.database_url is None:
        data = b"".join(p.read_bytes() for p in sorted(data_dir.glob("garrison.sqlite*")))
        assert data, "no SQLite files found"
        return data
    dump = subprocess.run(
        ["pg_dump", "--no-owner", deployment.database_url], capture_output=True, check=True
    ).stdout
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(f"{deployment.redis_prefix}:*"):
            if client.type(key) == b"stream":
                entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(key))
                dump += b"".join(v for _, fields in entries for v in fields.values())
    finally:
        client.close()
    return dump


async def session(factory: Any, tmp_path: Path, encrypted: bool) -> list[str]:
    with factory(encrypted) as deployment:
        await drive(deployment.url)
        # Read while the deployment is up (its database and Redis prefix go with it); the
        # SQLite -wal file is part of what is scanned.
        return found(at_rest(deployment, tmp_path / ("on" if encrypted else "off")))


async def test_a_served_session_leaves_no_canary_at_rest(
    deployment_factory: Any, tmp_path: Path
) -> None:
    assert await session(deployment_factory, tmp_path, encrypted=True) == []


async def test_without_keys_the_same_session_leaves_every_canary(
    deployment_factory: Any, tmp_path: Path, served_on: str
) -> None:
    leaked = await session(deployment_factory, tmp_path, encrypted=False)
    assert leaked == sorted(CANARIES)
