"""The PostgreSQL checkpointer: LangGraph's conformance suite, and what Garrison adds to the
official saver (run deletion with its orphaned writes and blobs, thread copies)."""

import asyncio
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import WRITES_IDX_MAP, BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import Capability

from garrison.storage.postgres import PostgresStorage
from tests.contract.conftest import PostgresDatabases, open_postgres

ERROR = "__error__"  # LangGraph's channel for a task's error (its constant is private)


@pytest.mark.parametrize("capability", [c.value for c in Capability])
async def test_postgres_checkpointer_conforms(
    postgres_databases: PostgresDatabases, postgres_template: str, capability: str
) -> None:
    @checkpointer_test(name="GarrisonPostgresSaver")
    async def postgres_saver() -> AsyncGenerator[BaseCheckpointSaver[str], None]:
        # A fresh database per capability suite, as the conformance runner expects.
        name = await asyncio.to_thread(postgres_databases.create, postgres_template)
        storage = await open_postgres(postgres_databases.url_for(name))
        try:
            yield storage.checkpointer
        finally:
            await storage.close()
            await asyncio.to_thread(postgres_databases.drop, name)

    report = await validate(postgres_saver, capabilities={capability})
    result = report.results[capability]
    assert result.detected, f"{capability} is not implemented"
    assert result.tests_passed > 0 and result.passed, result.failures


@pytest.fixture
async def postgres(postgres_url: str) -> AsyncIterator[PostgresStorage]:
    storage = await open_postgres(postgres_url)
    yield storage
    await storage.close()


async def put(
    storage: PostgresStorage,
    thread_id: str,
    run_id: str,
    values: dict[str, Any],
    parent: RunnableConfig | None = None,
) -> RunnableConfig:
    """A checkpoint whose channel values are non-primitive (stored as blobs), as a run
    leaves them."""
    saver = storage.checkpointer
    previous = await saver.aget_tuple(parent) if parent else None
    checkpoint = previous.checkpoint if previous else empty_checkpoint()
    checkpoint = {**checkpoint, "id": str(uuid.uuid4())}
    current = checkpoint["channel_versions"]
    versions: dict[str, str | int | float] = {
        channel: saver.get_next_version(cast(str | None, current.get(channel)), None)
        for channel in values
    }
    checkpoint["channel_values"] = {**checkpoint["channel_values"], **values}
    checkpoint["channel_versions"] = {**checkpoint["channel_versions"], **versions}
    config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    if parent:
        config["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
    return await saver.aput(config, checkpoint, {"run_id": run_id, "source": "loop"}, versions)


async def count(storage: PostgresStorage, table: str, thread_id: str) -> int:
    queries = {
        "checkpoints": "SELECT count(*) AS n FROM checkpoints WHERE thread_id = %s",
        "checkpoint_blobs": "SELECT count(*) AS n FROM checkpoint_blobs WHERE thread_id = %s",
        "checkpoint_writes": "SELECT count(*) AS n FROM checkpoint_writes WHERE thread_id = %s",
    }
    row = await storage.db.fetch_one(queries[table], (thread_id,))
    assert row is not None
    return int(row["n"])


async def test_deleting_a_runs_checkpoints_frees_its_writes_and_blobs(
    postgres: PostgresStorage,
) -> None:
    thread_id = str(uuid.uuid4())
    kept_run, gone_run = str(uuid.uuid4()), str(uuid.uuid4())
    first = await put(postgres, thread_id, kept_run, {"messages": ["hi"], "notes": ["a"]})
    second = await put(postgres, thread_id, gone_run, {"messages": ["hi", "there"]}, first)
    await postgres.checkpointer.aput_writes(second, [("messages", ["later"])], "task-1")
    await postgres.checkpointer.aput_writes(first, [("notes", ["b"])], "task-0")
    assert await count(postgres, "checkpoint_blobs", thread_id) == 3

    await postgres.checkpointer.adelete_for_runs([gone_run])

    latest = await postgres.checkpointer.aget_tuple(
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    )
    assert latest is not None and latest.metadata["run_id"] == kept_run
    # The kept checkpoint still reads every value it referenced, and its own writes.
    assert latest.checkpoint["channel_values"] == {"messages": ["hi"], "notes": ["a"]}
    assert [w[1:] for w in latest.pending_writes or []] == [("notes", ["b"])]
    # Only the deleted checkpoint's own blob (messages v2) and write went.
    assert await count(postgres, "checkpoints", thread_id) == 1
    assert await count(postgres, "checkpoint_blobs", thread_id) == 2
    assert await count(postgres, "checkpoint_writes", thread_id) == 1


async def test_deleting_runs_uses_the_run_index(postgres: PostgresStorage) -> None:
    async with postgres.db.connection() as conn:
        await conn.execute("SET enable_seqscan = off")  # a tiny table: force the choice
        plan = await (
            await conn.execute(
                "EXPLAIN SELECT 1 FROM checkpoints WHERE metadata ->> 'run_id' = ANY(%s)",
                (["r"],),
            )
        ).fetchall()
        await conn.execute("RESET enable_seqscan")
    assert "checkpoints_by_run" in " ".join(str(row) for row in plan)


async def test_copy_thread_copies_blobs_and_writes(postgres: PostgresStorage) -> None:
    source, target = str(uuid.uuid4()), str(uuid.uuid4())
    run_id = str(uuid.uuid4())
    first = await put(postgres, source, run_id, {"messages": ["hi"]})
    await postgres.checkpointer.aput_writes(first, [("messages", ["more"])], "task-1")

    await postgres.checkpointer.acopy_thread(source, target)
    await postgres.checkpointer.acopy_thread(source, target)  # again: nothing doubles

    copied = await postgres.checkpointer.aget_tuple(
        {"configurable": {"thread_id": target, "checkpoint_ns": ""}}
    )
    assert copied is not None and copied.checkpoint["channel_values"] == {"messages": ["hi"]}
    assert [w[1:] for w in copied.pending_writes or []] == [("messages", ["more"])]
    for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        assert await count(postgres, table, target) == await count(postgres, table, source)


async def test_writes_serialize_on_the_event_loop_thread(postgres: PostgresStorage) -> None:
    """No hand-off to a thread per write: the stock saver's costs more CPU than it saves."""
    saver = postgres.checkpointer
    serializing_threads: set[int] = set()
    dumps_typed = saver.serde.dumps_typed

    def recording_dumps(value: Any) -> tuple[str, bytes]:
        serializing_threads.add(threading.get_ident())
        return dumps_typed(value)

    saver.serde = cast(
        Any, SimpleNamespace(dumps_typed=recording_dumps, loads_typed=saver.serde.loads_typed)
    )
    thread_id = str(uuid.uuid4())
    first = await put(postgres, thread_id, str(uuid.uuid4()), {"messages": ["hi"]})
    await saver.aput_writes(first, [("messages", ["more"])], "task-1")

    assert serializing_threads == {threading.get_ident()}
    stored = await saver.aget_tuple(first)  # and what was written reads back
    assert stored is not None and stored.checkpoint["channel_values"] == {"messages": ["hi"]}
    assert [w[1:] for w in stored.pending_writes or []] == [("messages", ["more"])]


async def test_pending_writes_follow_the_stock_savers_conflict_rules(
    postgres: PostgresStorage,
) -> None:
    saver = postgres.checkpointer
    assert ERROR in WRITES_IDX_MAP  # a special channel, written at a fixed index
    first = await put(postgres, str(uuid.uuid4()), str(uuid.uuid4()), {"messages": ["hi"]})
    await saver.aput_writes(first, [("messages", ["a"]), ("notes", ["n"])], "task-1")
    await saver.aput_writes(first, [("messages", ["b"])], "task-1")  # kept as first written
    await saver.aput_writes(first, [(ERROR, "x"), (ERROR, "y")], "task-2")  # the last wins
    await saver.aput_writes(first, [(ERROR, "z")], "task-3")
    await saver.aput_writes(first, [(ERROR, "z2")], "task-3")  # and replaces an earlier one

    stored = await saver.aget_tuple(first)
    assert stored is not None
    assert sorted((w[0], w[1], w[2]) for w in stored.pending_writes or []) == [
        ("task-1", "messages", ["a"]),
        ("task-1", "notes", ["n"]),
        ("task-2", ERROR, "y"),
        ("task-3", ERROR, "z2"),
    ]
