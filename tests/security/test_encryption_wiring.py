"""The encryption settings reach the storage a real process opens: `garrison serve` with
`GARRISON_ENCRYPTION_KEYS` seals checkpoints, pending writes and store items, and
`garrison keys rotate-data` re-encrypts them under the new key."""

import asyncio
import base64
import sqlite3
from pathlib import Path

import pytest
import typer
from langgraph_sdk import get_client
from typer.testing import CliRunner

from garrison.security.rotation_cli import rotate_data
from tests.security.test_encryption_at_rest import (
    CANARIES,
    KEY_1,
    KEY_2,
    Site,
    encryption,
    found_canaries,
    kid_census,
    plant,
)
from tests.support.server import PROJECT, GarrisonProcess


def keys_env(*keys: tuple[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in keys)


def table_bytes(path: Path, tables: dict[str, tuple[str, ...]]) -> bytes:
    with sqlite3.connect(path) as conn:
        return b"".join(
            value if isinstance(value, bytes) else str(value).encode()
            for table, columns in tables.items()
            for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table}")
            for value in row
        )


async def test_a_served_run_leaves_no_plaintext_in_checkpoints_or_store(tmp_path: Path) -> None:
    server = GarrisonProcess(tmp_path, env={"GARRISON_ENCRYPTION_KEYS": keys_env(KEY_1)})
    server.start(timeout=60)
    try:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        result = await client.runs.wait(
            thread["thread_id"], "echo", input={"value": CANARIES["string"]}
        )
        assert result == {"value": CANARIES["string"], "count": 1}
        await client.store.put_item(["memories"], "profile", {"secret": CANARIES["store"]})
        item = await client.store.get_item(["memories"], "profile")
        assert item["value"] == {"secret": CANARIES["store"]}
        state = await client.threads.get_state(thread["thread_id"])
        assert state["values"] == {"value": CANARIES["string"], "count": 1}
    finally:
        assert server.stop() == 0
    stored = table_bytes(
        tmp_path / "garrison.sqlite",
        {
            "checkpoints": ("checkpoint", "metadata"),
            "writes": ("value",),
            "store": ("value",),
        },
    )
    assert stored and found_canaries(stored) == []


def test_rotate_data_command_moves_every_row_to_the_active_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = Site("sqlite", tmp_path, "")

    async def seed() -> None:
        storage = await site.open(encryption(KEY_1))
        await plant(storage, "thread-1")
        await site.close(storage)

    asyncio.run(seed())
    assert set(kid_census(site)) == {"k1"}

    app = typer.Typer()
    app.command()(rotate_data)
    monkeypatch.setenv("GARRISON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GARRISON_ENCRYPTION_KEYS", keys_env(KEY_2, KEY_1))
    monkeypatch.setenv("GARRISON_ENCRYPTION_STRICT", "true")  # rotation still reads plaintext
    result = CliRunner().invoke(app, ["--config", str(PROJECT), "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    assert "done: 1 threads" in result.output
    census = kid_census(site)
    assert census["k1"] == 0 and census["k2"] > 0

    monkeypatch.delenv("GARRISON_ENCRYPTION_KEYS")
    refused = CliRunner().invoke(app, ["--config", str(PROJECT)])
    assert refused.exit_code == 2 and "no encryption keys" in refused.output
