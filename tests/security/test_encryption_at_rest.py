"""Encryption at rest on real SQLite and real PostgreSQL (targets E1-E4).

Every test writes through the storage adapters Garrison ships (a real graph run on the
checkpointer, the long-term store) and then looks at what the database really holds: the
raw SQLite files (main, -wal, -shm) or a `pg_dump` of the test's own database.
"""

import base64
import operator
import os
import sqlite3
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

import orjson
import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from garrison.security.at_rest import AtRestEncryption
from garrison.security.checkpoint_cipher import SEALED_KEY
from garrison.security.envelope import (
    DecryptionError,
    EnvelopeCipher,
    PlaintextRefusedError,
    is_envelope,
    kid_of,
)
from garrison.security.keyring import Keyring
from garrison.security.rotation import rotate_data
from garrison.security.safe_serde import safe_serializer
from garrison.security.store_cipher import SEALED_FIELD
from garrison.storage.postgres import PostgresStorage
from garrison.storage.sqlite import SqliteStorage
from tests.contract.conftest import (  # noqa: F401 - fixtures
    open_postgres,
    postgres_databases,
    postgres_template,
    postgres_url,
)

Storage = SqliteStorage | PostgresStorage

KEY_1 = ("k1", os.urandom(32))
KEY_2 = ("k2", os.urandom(32))

CANARIES = {
    "string": "CANARY-string-7f3a",
    "list": "CANARY-list-91bd",
    "nested": "CANARY-nested-c55e",
    "node": "CANARY-node-output-0a1b",
    "metadata": "CANARY-email-d00d",
    "configurable": "CANARY-phone-beef",
    "store": "CANARY-store-4242",
}


class CanaryState(TypedDict, total=False):
    ssn: str
    notes: Annotated[list[str], operator.add]
    profile: dict[str, Any]


def _node(state: CanaryState) -> CanaryState:
    return {"notes": [CANARIES["node"]], "profile": {"deep": {"ids": [CANARIES["nested"]]}}}


def canary_graph(storage: Storage) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(CanaryState)
    graph.add_node("remember", _node)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", END)
    return graph.compile(checkpointer=storage.checkpointer, store=storage.store)


def thread_config(thread_id: str) -> RunnableConfig:
    return {
        "configurable": {"thread_id": thread_id, "user_phone": CANARIES["configurable"]},
        "metadata": {"user_email": CANARIES["metadata"], "run_id": f"run-{thread_id}"},
    }


async def plant(storage: Storage, thread_id: str, tenant: str = "tenant-a") -> dict[str, Any]:
    """Run the graph with canaries in its input, state and metadata; put a canary item."""
    graph = canary_graph(storage)
    result = await graph.ainvoke(
        {"ssn": CANARIES["string"], "notes": [CANARIES["list"]]},
        thread_config(thread_id),
        durability="sync",
    )
    await storage.store.aput((tenant, "memories"), "profile", {"secret": CANARIES["store"]})
    return dict(result)


def encryption(*keys: tuple[str, bytes], strict: bool = False) -> AtRestEncryption:
    return AtRestEncryption(EnvelopeCipher(Keyring(keys), strict=strict))


@dataclass
class Site:
    """A backend under test: where its bytes live and how to open it. `opened` lists the
    storages `open` returned, for the fixture to close."""

    kind: str
    path: Path
    url: str
    opened: list[Storage] = field(default_factory=list)

    async def open(self, encryption: AtRestEncryption | None = None) -> Storage:
        storage: Storage
        if self.kind == "sqlite":
            path = self.path / "garrison.sqlite"
            storage = await SqliteStorage.open(path, encryption=encryption)
        else:
            storage = await open_postgres(self.url, encryption=encryption)
        self.opened.append(storage)
        return storage

    async def close(self, storage: Storage) -> None:
        self.opened.remove(storage)
        await storage.close()

    def raw_bytes(self) -> bytes:
        """Everything at rest: the SQLite files, or the whole database as pg_dump prints it."""
        if self.kind == "sqlite":
            return b"".join(f.read_bytes() for f in sorted(self.path.glob("garrison.sqlite*")))
        return subprocess.run(
            ["pg_dump", "--no-owner", self.url], capture_output=True, check=True
        ).stdout

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path / "garrison.sqlite") as conn:
                return list(conn.execute(sql, params).fetchall())
        with psycopg.connect(self.url, autocommit=True) as conn:
            return list(conn.execute(sql.replace("?", "%s"), params).fetchall())

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path / "garrison.sqlite") as conn:
                conn.execute(sql, params)
            return
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), params)


def found_canaries(data: bytes) -> list[str]:
    # pg_dump prints bytea as hex: a plaintext blob would show its hex, not its text.
    return [
        name
        for name, canary in CANARIES.items()
        if canary.encode() in data or canary.encode().hex().encode() in data
    ]


def _sealed_kid(text: str | None) -> str:
    if text is None:
        return "none"
    envelope = base64.b64decode(text)
    return kid_of(envelope) if is_envelope(envelope) else "plain"


def _bytes_kid(value: Any) -> str:
    data = bytes(value) if isinstance(value, bytes | memoryview) else None
    return kid_of(data) if data is not None and is_envelope(data) else "plain"


def kid_census(site: Site) -> Counter[str]:
    """Which key sealed each stored value (channel values, writes, metadata, store items);
    "plain" counts values stored without an envelope."""
    serde = safe_serializer()
    kids: Counter[str] = Counter()
    if site.kind == "sqlite":
        for type_, blob, metadata in site.query(
            "SELECT type, checkpoint, metadata FROM checkpoints"
        ):
            checkpoint = serde.loads_typed((type_, blob))
            kids.update(_bytes_kid(v) for v in checkpoint["channel_values"].values())
            kids[_sealed_kid(orjson.loads(metadata).get(SEALED_KEY))] += 1
        for type_, value in site.query("SELECT type, value FROM writes"):
            kids[_bytes_kid(serde.loads_typed((type_, value)))] += 1
        for (value,) in site.query("SELECT value FROM store"):
            kids[_sealed_kid(orjson.loads(value).get(SEALED_FIELD))] += 1
    else:
        for type_, blob in site.query(
            "SELECT type, blob FROM checkpoint_blobs WHERE type <> 'empty'"
        ):
            kids[_bytes_kid(serde.loads_typed((type_, blob)))] += 1
        for checkpoint, metadata in site.query("SELECT checkpoint, metadata FROM checkpoints"):
            kids["plain"] += len(checkpoint.get("channel_values") or {})
            kids[_sealed_kid(metadata.get(SEALED_KEY))] += 1
        for type_, blob in site.query("SELECT type, blob FROM checkpoint_writes"):
            kids[_bytes_kid(serde.loads_typed((type_, blob)))] += 1
        for (value,) in site.query("SELECT value FROM store"):
            kids[_sealed_kid(value.get(SEALED_FIELD))] += 1
    kids.pop("none", None)  # checkpoints whose metadata holds nothing secret
    return +kids  # drops zero counts


async def read_everything(storage: Storage, thread_ids: list[str]) -> list[Any]:
    """Every checkpoint (values, metadata, pending writes) and store item, decrypted."""
    seen: list[Any] = []
    for thread_id in thread_ids:
        async for item in storage.checkpointer.alist({"configurable": {"thread_id": thread_id}}):
            seen.append((item.checkpoint["channel_values"], item.metadata, item.pending_writes))
    for tenant in ("tenant-a", "tenant-b"):
        seen.extend(item.value for item in await storage.store.asearch((tenant,)))
    return seen


# E1 ---------------------------------------------------------------------------------------


async def test_no_canary_reaches_the_database(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    result = await plant(storage, "thread-1")
    assert result["ssn"] == CANARIES["string"]

    # While open (the -wal file holds the newest pages) and after closing.
    assert found_canaries(site.raw_bytes()) == []
    state = await canary_graph(storage).aget_state(thread_config("thread-1"))
    assert state.values["profile"] == {"deep": {"ids": [CANARIES["nested"]]}}
    metadata = dict(state.metadata or {})
    assert metadata["user_email"] == CANARIES["metadata"]
    assert metadata["user_phone"] == CANARIES["configurable"]
    item = await storage.store.aget(("tenant-a", "memories"), "profile")
    assert item is not None and item.value == {"secret": CANARIES["store"]}
    await site.close(storage)
    assert found_canaries(site.raw_bytes()) == []


async def test_canaries_are_visible_without_encryption(site: Site) -> None:
    """The control: the same scan finds every canary when encryption is off."""
    storage = await site.open()
    await plant(storage, "thread-1")
    await site.close(storage)
    assert set(found_canaries(site.raw_bytes())) == set(CANARIES)


async def test_queried_metadata_stays_usable(site: Site) -> None:
    """History filters on sealed keys still match, and run deletion still finds the run."""
    storage = await site.open(encryption(KEY_1))
    await plant(storage, "thread-1")
    config: RunnableConfig = {"configurable": {"thread_id": "thread-1"}}
    checkpointer = storage.checkpointer
    by_email = [
        c async for c in checkpointer.alist(config, filter={"user_email": CANARIES["metadata"]})
    ]
    assert len(by_email) == 3
    assert [c async for c in checkpointer.alist(config, filter={"user_email": "x"})] == []
    limited = checkpointer.alist(
        config, filter={"user_email": CANARIES["metadata"], "source": "loop"}, limit=1
    )
    assert [c.metadata["step"] async for c in limited] == [1]
    await checkpointer.adelete_for_runs(["run-thread-1"])
    assert [c async for c in checkpointer.alist(config)] == []


async def test_a_copied_thread_is_sealed_for_its_new_id(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    await plant(storage, "source")
    await storage.checkpointer.acopy_thread("source", "copy")
    graph = canary_graph(storage)
    copied = await graph.aget_state({"configurable": {"thread_id": "copy"}})
    original = await graph.aget_state({"configurable": {"thread_id": "source"}})
    assert copied.values == original.values
    assert copied.metadata == original.metadata
    assert found_canaries(site.raw_bytes()) == []


# E4 ---------------------------------------------------------------------------------------


async def test_a_ciphertext_moved_to_another_thread_fails(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    await plant(storage, "thread-a")
    await plant(storage, "thread-b")
    table, column = ("writes", "value") if site.kind == "sqlite" else ("checkpoint_writes", "blob")
    # thread-b's pending writes get thread-a's ciphertexts (same checkpoint shape, channel).
    rows = site.query(
        f"SELECT checkpoint_id, task_id, idx, channel FROM {table} WHERE thread_id = 'thread-b'"
        " AND channel = 'notes'"
    )
    assert rows
    for checkpoint_id, task_id, idx, _channel in rows:
        site.execute(
            f"UPDATE {table} SET {column} = (SELECT {column} FROM {table} AS a"
            " WHERE a.thread_id = 'thread-a' AND a.channel = 'notes' LIMIT 1)"
            " WHERE thread_id = 'thread-b' AND checkpoint_id = ? AND task_id = ? AND idx = ?",
            (checkpoint_id, task_id, idx),
        )
    with pytest.raises(DecryptionError, match="failed authentication"):
        await read_everything(storage, ["thread-b"])
    assert await read_everything(storage, ["thread-a"])


async def test_a_channel_value_moved_to_another_field_fails(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    await plant(storage, "thread-a")
    if site.kind == "sqlite":
        # Swap two channels' envelopes inside the latest checkpoint.
        serde = safe_serializer()
        [(checkpoint_id, type_, blob)] = site.query(
            "SELECT checkpoint_id, type, checkpoint FROM checkpoints"
            " ORDER BY checkpoint_id DESC LIMIT 1"
        )
        checkpoint = serde.loads_typed((type_, blob))
        values = checkpoint["channel_values"]
        values["ssn"], values["notes"] = values["notes"], values["ssn"]
        site.execute(
            "UPDATE checkpoints SET checkpoint = ? WHERE checkpoint_id = ?",
            (serde.dumps_typed(checkpoint)[1], checkpoint_id),
        )
    else:
        site.execute(
            "UPDATE checkpoint_blobs SET blob = (SELECT blob FROM checkpoint_blobs"
            " WHERE channel = 'notes' ORDER BY version DESC LIMIT 1) WHERE channel = 'ssn'"
        )
    with pytest.raises(DecryptionError, match="failed authentication"):
        await canary_graph(storage).aget_state({"configurable": {"thread_id": "thread-a"}})


async def test_store_values_are_bound_to_tenant_and_key(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    await storage.store.aput(("tenant-a", "memories"), "profile", {"secret": CANARIES["store"]})
    await storage.store.aput(("tenant-b", "memories"), "profile", {"secret": "mine"})
    await storage.store.aput(("tenant-a", "memories"), "other", {"secret": "other"})
    prefix_a, prefix_b = "tenant-a.memories", "tenant-b.memories"
    stolen = "(SELECT value FROM store WHERE prefix = ? AND key = 'profile')"
    site.execute(
        f"UPDATE store SET value = {stolen} WHERE prefix = ? AND key = 'profile'",
        (prefix_a, prefix_b),
    )
    site.execute(
        f"UPDATE store SET value = {stolen} WHERE prefix = ? AND key = 'other'",
        (prefix_a, prefix_a),
    )
    with pytest.raises(DecryptionError, match="failed authentication"):
        await storage.store.aget(("tenant-b", "memories"), "profile")
    with pytest.raises(DecryptionError, match="failed authentication"):
        await storage.store.aget(("tenant-a", "memories"), "other")
    item = await storage.store.aget(("tenant-a", "memories"), "profile")
    assert item is not None and item.value == {"secret": CANARIES["store"]}


async def test_store_filters_match_decrypted_values(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    for n in range(5):
        await storage.store.aput(("tenant-a", "docs"), f"d{n}", {"n": n, "kind": n % 2})
    odd = await storage.store.asearch(("tenant-a",), filter={"kind": 1})
    assert sorted(item.value["n"] for item in odd) == [1, 3]
    # Offset and limit apply to the matching items, in the store's own order.
    second = await storage.store.asearch(("tenant-a",), filter={"kind": 1}, limit=1, offset=1)
    assert [item.value for item in second] == [odd[1].value]
    above = await storage.store.asearch(("tenant-a",), filter={"n": {"$gte": 3}})
    assert sorted(item.value["n"] for item in above) == [3, 4]


# E3 ---------------------------------------------------------------------------------------


async def test_rotation_leaves_no_row_under_the_old_key(site: Site) -> None:
    first = await site.open(encryption(KEY_1))
    await plant(first, "thread-1")
    await plant(first, "thread-2", tenant="tenant-b")
    before = await read_everything(first, ["thread-1", "thread-2"])
    await site.close(first)
    assert set(kid_census(site)) == {"k1"}

    # Key 2 goes first: new writes carry it, rows under key 1 still decrypt.
    both = await site.open(encryption(KEY_2, KEY_1))
    await plant(both, "thread-3", tenant="tenant-c")
    assert await read_everything(both, ["thread-1", "thread-2"]) == before
    assert set(kid_census(site)) == {"k1", "k2"}

    progress = await rotate_data(both.checkpointer, _store(both), batch_size=1)
    assert progress.threads == 3 and progress.checkpoint_rows > 0
    assert progress.store_items == 2  # thread-3's item was written under key 2 already
    census = kid_census(site)
    assert census["k1"] == 0 and census["plain"] == 0 and census["k2"] > 0
    again = await rotate_data(both.checkpointer, _store(both))
    assert (again.checkpoint_rows, again.store_items) == (0, 0)  # idempotent, resumable
    await site.close(both)

    # Key 1 removed: everything still reads, even in strict mode.
    only_new = await site.open(encryption(KEY_2, strict=True))
    assert await read_everything(only_new, ["thread-1", "thread-2"]) == before
    assert await canary_graph(only_new).aget_state({"configurable": {"thread_id": "thread-3"}})


async def test_a_removed_key_cannot_decrypt(site: Site) -> None:
    """The control for the rotation test: without rotation, dropping key 1 breaks reads."""
    first = await site.open(encryption(KEY_1))
    await plant(first, "thread-1")
    await site.close(first)
    only_new = await site.open(encryption(KEY_2))
    with pytest.raises(DecryptionError, match="'k1', which is not configured"):
        await read_everything(only_new, ["thread-1"])


# E2 ---------------------------------------------------------------------------------------


async def test_strict_mode_refuses_plaintext_until_migrated(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    plain = await site.open()
    await plant(plain, "thread-1")
    before = await read_everything(plain, ["thread-1"])
    await site.close(plain)

    strict = await site.open(encryption(KEY_1, strict=True))
    with pytest.raises(PlaintextRefusedError):
        await strict.checkpointer.aget_tuple({"configurable": {"thread_id": "thread-1"}})
    with pytest.raises(PlaintextRefusedError):
        await strict.store.aget(("tenant-a", "memories"), "profile")
    assert "encryption.plaintext_refused" in caplog.text

    # Not strict: plaintext rows still read (a smooth migration), and the rotation job
    # seals them; strict mode then reads everything.
    lenient = await site.open(encryption(KEY_1))
    assert await read_everything(lenient, ["thread-1"]) == before
    await rotate_data(lenient.checkpointer, _store(lenient))
    assert kid_census(site)["plain"] == 0
    assert await read_everything(strict, ["thread-1"]) == before
    if site.kind == "postgres":  # pg_dump shows live rows only; SQLite keeps freed pages
        assert found_canaries(site.raw_bytes()) == []


def _store(storage: Storage) -> Any:
    return storage.sqlite_store if isinstance(storage, SqliteStorage) else storage.postgres_store
