"""Lazy re-encryption on read (issue 4, target E3) on real SQLite and real PostgreSQL.

Rows are written under key k1, the storage is reopened with k2 active (k1 still present),
some rows are read through the storage API, and the raw tables are checked: the rows read
now carry k2, the rows not read still carry k1. The compare-and-set is raced by a writer
that lands between the read and the rewrite; the newer value must survive.

Checkpoints: a real graph run (stopped by an interrupt, so its latest checkpoint has a
pending write) under k1; `aget_tuple` under k2 re-seals that checkpoint's channel values,
pending writes and sealed metadata, and nothing of another thread's.
"""

import base64
import contextlib
import logging
import operator
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import orjson
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Interrupt, interrupt

from garrison.domain.attempts import AttemptToken, current_attempt
from garrison.domain.errors import LeaseLostError
from garrison.security import lazy_reseal
from garrison.security.checkpoint_cipher import SEALED_KEY, CheckpointCipher
from garrison.security.envelope import EnvelopeCipher, is_envelope, kid_of, kid_of_base64
from garrison.security.field_cipher import FieldCipher
from garrison.security.keyring import Keyring
from garrison.security.safe_serde import safe_serializer
from garrison.security.store_cipher import SEALED_FIELD
from tests.contract.conftest import (  # noqa: F401 - fixtures
    open_postgres,
    postgres_databases,
    postgres_template,
    postgres_url,
)
from tests.security.test_encryption_api_rows import SECRETS, TENANT, Planted, plant
from tests.security.test_encryption_at_rest import KEY_1, KEY_2, Site, Storage, encryption

# Each planted row and its sealed columns (assistant versions are not read by `get`).
ROWS = {
    "threads": ("thread_id", ("metadata", "config", "values", "interrupts", "error")),
    "runs": ("run_id", ("metadata", "kwargs", "error")),
    "crons": ("cron_id", ("metadata", "payload")),
    "assistants": ("assistant_id", ("metadata",)),
}
Write = Callable[[], Awaitable[int]]
Reseal = Callable[[str, Write], Awaitable[None]]


def row_kids(site: Site, table: str, row_id: str) -> Counter[str]:
    """Which key sealed each envelope of one API row."""
    key, columns = ROWS[table]
    quoted = ", ".join(f'"{c}"' for c in columns)
    kids: Counter[str] = Counter()
    for row in site.query(f"SELECT {quoted} FROM {table} WHERE {key} = ?", (row_id,)):
        for value in row:
            parsed = orjson.loads(value) if isinstance(value, str) else value
            kids.update(FieldCipher().kids(parsed))
    return kids


def planted_kids(site: Site, planted: Planted) -> dict[str, Counter[str]]:
    ids = {
        "threads": planted.thread_id,
        "runs": planted.run_id,
        "crons": planted.cron_id,
        "assistants": planted.assistant_id,
    }
    return {table: row_kids(site, table, row_id) for table, row_id in ids.items()}


def item_kid(site: Site, prefix: str, key: str) -> str | None:
    ((value,),) = site.query("SELECT value FROM store WHERE prefix = ? AND key = ?", (prefix, key))
    parsed = orjson.loads(value) if isinstance(value, str | bytes) else value
    return kid_of_base64(parsed[SEALED_FIELD])


async def read_all(storage: Storage, planted: Planted) -> None:
    thread = await storage.threads.get(TENANT, planted.thread_id)
    assert thread is not None and thread.values == {"answer": SECRETS["values"]}
    assert thread.metadata["user_email"] == SECRETS["email"]
    run = await storage.runs.get(TENANT, planted.run_id)
    assert run is not None and run.kwargs["input"]["text"] == SECRETS["kwargs"]
    cron = await storage.crons.get(TENANT, planted.cron_id)
    assert cron is not None and cron.metadata["patient_ssn"] == SECRETS["cron_ssn"]
    assistant = await storage.assistants.get(TENANT, planted.assistant_id)
    assert assistant is not None
    assert assistant.metadata["db_password"] == SECRETS["assistant_password"]


def race(monkeypatch: pytest.MonkeyPatch, writer: Callable[[], Awaitable[Any]]) -> list[str]:
    """Run `writer` (a concurrent update) once, between a read and its rewrite."""
    original: Reseal = lazy_reseal.reseal_quietly
    raced: list[str] = []

    async def racing(what: str, write: Write) -> None:
        if not raced:
            raced.append(what)
            await writer()
        await original(what, write)

    monkeypatch.setattr(lazy_reseal, "reseal_quietly", racing)
    return raced


# Unit ----------------------------------------------------------------------------------


def test_the_kid_is_read_from_the_header_alone() -> None:
    envelopes = EnvelopeCipher(Keyring([KEY_2, KEY_1]))
    old = EnvelopeCipher(Keyring([KEY_1]))
    big = base64.b64encode(old.seal(b"x" * 100_000, ("ctx",))).decode()
    assert kid_of_base64(big) == "k1" and kid_of_base64(big[:400]) == "k1"
    assert envelopes.is_stale_kid(kid_of_base64(big))
    assert not envelopes.is_stale_kid(
        kid_of_base64(base64.b64encode(envelopes.seal(b"", ("c",))).decode())
    )
    assert not envelopes.is_stale_kid(kid_of_base64("not base64 at all!"))
    assert not envelopes.is_stale_kid(kid_of_base64(base64.b64encode(b"plain text").decode()))


# API rows ------------------------------------------------------------------------------


async def test_reading_api_rows_reseals_them_under_the_active_key(site: Site) -> None:
    old = await site.open(encryption(KEY_1))
    read, unread = await plant(old), await plant(old)
    await site.close(old)
    assert all(kids and set(kids) == {"k1"} for kids in planted_kids(site, read).values())

    # Strict mode keeps working: every row is sealed, under either key.
    storage = await site.open(encryption(KEY_2, KEY_1, strict=True))
    await read_all(storage, read)
    await site.close(storage)

    for table, kids in planted_kids(site, read).items():
        assert set(kids) == {"k2"}, (table, kids)
    for table, kids in planted_kids(site, unread).items():
        assert set(kids) == {"k1"}, (table, kids)
    # The rewritten rows still open, with the old key gone.
    only_new = await site.open(encryption(KEY_2))
    await read_all(only_new, read)


async def test_current_rows_are_read_without_a_rewrite(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = await site.open(encryption(KEY_1))
    planted = await plant(storage)
    writes: list[str] = []

    async def record(what: str, write: Write) -> None:
        writes.append(what)

    monkeypatch.setattr(lazy_reseal, "reseal_quietly", record)
    await read_all(storage, planted)
    assert writes == []


async def test_a_concurrent_api_row_update_wins_over_the_rewrite(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await site.open(encryption(KEY_1))
    planted = await plant(old)
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    newer = {"user_email": "newer@example.com"}
    raced = race(
        monkeypatch, lambda: storage.threads.update(TENANT, planted.thread_id, newer, None)
    )

    thread = await storage.threads.get(TENANT, planted.thread_id)
    assert raced == ["threads row"]
    assert thread is not None and thread.metadata["user_email"] == SECRETS["email"]  # as read
    again = await storage.threads.get(TENANT, planted.thread_id)
    assert again is not None and again.metadata["user_email"] == "newer@example.com"
    # The lost compare-and-set wrote nothing; the next read (above) re-sealed the rest.
    assert set(row_kids(site, "threads", planted.thread_id)) == {"k2"}


async def test_a_failed_rewrite_never_fails_the_read(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old = await site.open(encryption(KEY_1))
    planted = await plant(old)
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    original: Reseal = lazy_reseal.reseal_quietly

    async def broken_write() -> int:
        raise RuntimeError("database went away")

    async def failing(what: str, write: Write) -> None:
        await original(what, broken_write)

    monkeypatch.setattr(lazy_reseal, "reseal_quietly", failing)
    with caplog.at_level(logging.WARNING, logger="garrison.security"):
        await read_all(storage, planted)
    assert "encryption.lazy_reseal_failed" in caplog.text
    assert set(row_kids(site, "threads", planted.thread_id)) == {"k1"}  # a later read retries


# Store ---------------------------------------------------------------------------------


async def test_reading_store_items_reseals_them_under_the_active_key(site: Site) -> None:
    old = await site.open(encryption(KEY_1))
    for key in ("read", "unread"):
        await old.store.aput((TENANT, "memories"), key, {"secret": f"CANARY-{key}"})
    await site.close(old)
    prefix = f"{TENANT}.memories"
    assert item_kid(site, prefix, "read") == item_kid(site, prefix, "unread") == "k1"

    storage = await site.open(encryption(KEY_2, KEY_1, strict=True))
    item = await storage.store.aget((TENANT, "memories"), "read")
    assert item is not None and item.value == {"secret": "CANARY-read"}
    await site.close(storage)

    assert item_kid(site, prefix, "read") == "k2"
    assert item_kid(site, prefix, "unread") == "k1"
    only_new = await site.open(encryption(KEY_2))
    item = await only_new.store.aget((TENANT, "memories"), "read")
    assert item is not None and item.value == {"secret": "CANARY-read"}


async def test_a_concurrent_store_put_wins_over_the_rewrite(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await site.open(encryption(KEY_1))
    await old.store.aput((TENANT, "memories"), "profile", {"v": "old"})
    await old.store.aput((TENANT, "memories"), "other", {"v": "other"})
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    # Another replica: the store's own batch loop is busy with the read being raced.
    replica = await site.open(encryption(KEY_2, KEY_1))
    raced = race(
        monkeypatch, lambda: replica.store.aput((TENANT, "memories"), "profile", {"v": "newer"})
    )

    item = await storage.store.aget((TENANT, "memories"), "profile")
    assert raced == ["store item"] and item is not None and item.value == {"v": "old"}
    again = await storage.store.aget((TENANT, "memories"), "profile")
    assert again is not None and again.value == {"v": "newer"}
    assert item_kid(site, f"{TENANT}.memories", "profile") == "k2"  # the replica's put
    # The rewrite is live here: an item read without a race is re-sealed.
    assert item_kid(site, f"{TENANT}.memories", "other") == "k1"
    await storage.store.aget((TENANT, "memories"), "other")
    assert item_kid(site, f"{TENANT}.memories", "other") == "k2"


# Checkpoints ---------------------------------------------------------------------------

SECRET = "CANARY-checkpoint-value-1a2b"
QUESTION = "CANARY-interrupt-question-3c4d"
EMAIL = "CANARY-checkpoint-email-5e6f"


class AskState(TypedDict, total=False):
    secret: str
    notes: Annotated[list[str], operator.add]
    answer: str


def _remember(state: AskState) -> AskState:
    return {"notes": ["remembered"]}


def _ask(state: AskState) -> AskState:
    return {"answer": interrupt({"question": QUESTION})}


def ask_graph(storage: Storage) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(AskState)
    graph.add_node("remember", _remember)
    graph.add_node("ask", _ask)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "ask")
    graph.add_edge("ask", END)
    return graph.compile(checkpointer=storage.checkpointer)


def latest(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


async def run_until_interrupt(storage: Storage, thread_id: str) -> None:
    """A run whose latest checkpoint has channel values, sealed metadata (the email) and a
    pending write (the interrupt)."""
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "run_id": f"run-{thread_id}"},
        "metadata": {"user_email": EMAIL},
    }
    await ask_graph(storage).ainvoke(
        {"secret": SECRET, "notes": ["first"]}, config, durability="sync"
    )


def latest_envelopes(site: Site, thread_id: str) -> dict[str, list[bytes]]:
    """The envelopes of a thread's latest checkpoint, straight from the tables: its channel
    values, pending writes and sealed metadata."""
    serde = safe_serializer()
    out: dict[str, list[bytes]] = {"values": [], "writes": [], "metadata": []}
    if site.kind == "sqlite":
        [(checkpoint_id, type_, blob, metadata)] = site.query(
            "SELECT checkpoint_id, type, checkpoint, metadata FROM checkpoints"
            " WHERE thread_id = ? ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id,),
        )
        out["values"] = list(serde.loads_typed((type_, blob))["channel_values"].values())
        writes = site.query(
            "SELECT type, value FROM writes WHERE thread_id = ? AND checkpoint_id = ?",
            (thread_id, checkpoint_id),
        )
    else:
        [(checkpoint_id, metadata)] = site.query(
            "SELECT checkpoint_id, metadata FROM checkpoints WHERE thread_id = ?"
            " ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id,),
        )
        blobs = site.query(
            "SELECT b.type, b.blob FROM checkpoints AS c"
            " CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v"
            " JOIN checkpoint_blobs AS b ON b.thread_id = c.thread_id"
            " AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = v.key AND b.version = v.value"
            " WHERE c.thread_id = ? AND c.checkpoint_id = ? AND b.type <> 'empty'",
            (thread_id, checkpoint_id),
        )
        out["values"] = [serde.loads_typed((t, bytes(b))) for t, b in blobs]
        writes = site.query(
            "SELECT type, blob FROM checkpoint_writes WHERE thread_id = ? AND checkpoint_id = ?",
            (thread_id, checkpoint_id),
        )
    out["writes"] = [serde.loads_typed((t, bytes(v))) for t, v in writes]
    parsed = orjson.loads(metadata) if isinstance(metadata, str | bytes) else metadata
    out["metadata"] = [base64.b64decode(parsed[SEALED_KEY])]
    return out


def latest_kids(site: Site, thread_id: str) -> dict[str, Counter[str]]:
    """Which key sealed each envelope of a thread's latest checkpoint ("plain": none)."""
    return {
        part: Counter(kid_of(v) if is_envelope(v) else "plain" for v in values)
        for part, values in latest_envelopes(site, thread_id).items()
    }


def sealed_by(kids: dict[str, Counter[str]], kid: str) -> bool:
    """Every part present (values, writes, metadata) and every envelope under `kid`."""
    return all(counts and set(counts) == {kid} for counts in kids.values())


def interrupt_values(read: CheckpointTuple | None) -> list[Any]:
    assert read is not None
    return [
        item.value
        for _task, channel, value in read.pending_writes or []
        if channel == "__interrupt__"
        for item in value
    ]


@contextlib.contextmanager
def attempt_of(run_id: str, attempt: int) -> Iterator[None]:
    token = current_attempt.set(AttemptToken(run_id, attempt))
    try:
        yield
    finally:
        current_attempt.reset(token)


def test_finding_a_stale_checkpoint_reads_headers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    serde = safe_serializer()
    old = CheckpointCipher(EnvelopeCipher(Keyring([KEY_1])), serde)
    new = CheckpointCipher(EnvelopeCipher(Keyring([KEY_2, KEY_1])), serde)

    def stored(cipher: CheckpointCipher) -> CheckpointTuple:
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"secret": SECRET}
        checkpoint["channel_versions"] = {"secret": "1"}
        config, sealed, metadata = cipher.seal_put(
            {"configurable": {"thread_id": "t", "checkpoint_ns": ""}},
            checkpoint,
            {"source": "loop", "step": 1, "user_email": EMAIL},  # type: ignore[typeddict-unknown-key]
        )
        config["configurable"]["checkpoint_id"] = sealed["id"]
        writes = cipher.seal_writes(config, [("notes", ["x"])], "task")
        return CheckpointTuple(config, sealed, metadata, None, [("task", *writes[0])])

    current, stale = stored(new), stored(old)

    def no_decryption(*args: Any) -> bytes:
        raise AssertionError("decrypted while looking for stale envelopes")

    monkeypatch.setattr(new.envelopes, "open", no_decryption)
    assert new.stale_parts(current) is None
    parts = new.stale_parts(stale)
    assert parts is not None and set(parts.values) == {"secret"}
    assert [w[:2] for w in parts.writes] == [("task", "notes")] and parts.metadata is not None


async def test_reading_a_checkpoint_reseals_it_under_the_active_key(site: Site) -> None:
    old = await site.open(encryption(KEY_1))
    await run_until_interrupt(old, "read")
    await run_until_interrupt(old, "unread")
    await site.close(old)
    assert sealed_by(latest_kids(site, "read"), "k1")

    storage = await site.open(encryption(KEY_2, KEY_1, strict=True))
    read = await storage.checkpointer.aget_tuple(latest("read"))
    assert read is not None and read.checkpoint["channel_values"]["secret"] == SECRET
    assert read.metadata["user_email"] == EMAIL  # type: ignore[typeddict-item]
    assert interrupt_values(read) == [{"question": QUESTION}]
    await site.close(storage)

    assert sealed_by(latest_kids(site, "read"), "k2"), latest_kids(site, "read")
    assert sealed_by(latest_kids(site, "unread"), "k1"), latest_kids(site, "unread")

    # The rewritten checkpoint opens with the old key gone, and the run resumes from it.
    only_new = await site.open(encryption(KEY_2))
    again = await only_new.checkpointer.aget_tuple(latest("read"))
    assert again is not None
    assert again.checkpoint["channel_values"] == read.checkpoint["channel_values"]
    assert again.metadata == read.metadata and again.pending_writes == read.pending_writes
    done = await ask_graph(only_new).ainvoke(Command(resume="yes"), latest("read"))
    assert done["answer"] == "yes" and done["secret"] == SECRET


async def test_current_checkpoints_are_read_without_a_rewrite(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await site.open(encryption(KEY_1))
    await run_until_interrupt(old, "old")
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    await run_until_interrupt(storage, "new")
    writes: list[str] = []

    async def record(what: str, write: Write) -> None:
        writes.append(what)

    monkeypatch.setattr(lazy_reseal, "reseal_quietly", record)
    assert await storage.checkpointer.aget_tuple(latest("new")) is not None
    assert await ask_graph(storage).aget_state(latest("new"))
    assert writes == []
    assert await storage.checkpointer.aget_tuple(latest("old")) is not None
    assert writes == ["checkpoint"]  # the control: a stale checkpoint is rewritten


async def test_a_concurrent_pending_write_wins_over_the_rewrite(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await site.open(encryption(KEY_1))
    await run_until_interrupt(old, "thread")
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    # A replica not yet moved to k2 replaces the interrupt (same task, same slot) in between.
    replica = await site.open(encryption(KEY_1, KEY_2))
    stored = await replica.checkpointer.aget_tuple(latest("thread"))
    assert stored is not None and stored.pending_writes
    task_id = stored.pending_writes[0][0]
    newer = [Interrupt(value={"question": "newer"}, id="newer")]
    raced = race(
        monkeypatch,
        lambda: replica.checkpointer.aput_writes(
            stored.config, [("__interrupt__", newer)], task_id
        ),
    )

    read = await storage.checkpointer.aget_tuple(latest("thread"))
    assert raced == ["checkpoint"] and interrupt_values(read) == [{"question": QUESTION}]
    kids = latest_kids(site, "thread")
    assert set(kids["writes"]) == {"k1"}  # the replica's write, left alone
    assert set(kids["values"]) == set(kids["metadata"]) == {"k2"}  # the rest was re-sealed
    again = await storage.checkpointer.aget_tuple(latest("thread"))
    assert interrupt_values(again) == [{"question": "newer"}]
    assert sealed_by(latest_kids(site, "thread"), "k2")  # the next read re-sealed it


async def test_a_concurrent_rotation_wins_over_the_rewrite(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old = await site.open(encryption(KEY_1))
    await run_until_interrupt(old, "thread")
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    replica = await site.open(encryption(KEY_2, KEY_1))
    rotated: list[dict[str, list[bytes]]] = []

    async def rotate() -> None:
        assert await replica.checkpointer.arewrap_threads(["thread"]) > 0
        rotated.append(latest_envelopes(site, "thread"))

    raced = race(monkeypatch, rotate)
    with caplog.at_level(logging.INFO, logger="garrison.security"):
        read = await storage.checkpointer.aget_tuple(latest("thread"))
    assert raced == ["checkpoint"] and interrupt_values(read) == [{"question": QUESTION}]
    # Every envelope is the rotation's: the stale copies read before it wrote nothing.
    assert latest_envelopes(site, "thread") == rotated[0]
    assert sealed_by(latest_kids(site, "thread"), "k2")
    assert "encryption.lazy_reseal_skipped" in caplog.text


async def test_a_failed_checkpoint_rewrite_never_fails_the_read(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old = await site.open(encryption(KEY_1))
    await run_until_interrupt(old, "thread")
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    original: Reseal = lazy_reseal.reseal_quietly

    async def broken_write() -> int:
        raise RuntimeError("database went away")

    async def failing(what: str, write: Write) -> None:
        await original(what, broken_write)

    monkeypatch.setattr(lazy_reseal, "reseal_quietly", failing)
    with caplog.at_level(logging.WARNING, logger="garrison.security"):
        state = await ask_graph(storage).aget_state(latest("thread"))
    assert state.values["secret"] == SECRET and state.interrupts
    assert "encryption.lazy_reseal_failed" in caplog.text
    assert sealed_by(latest_kids(site, "thread"), "k1")  # a later read retries


@pytest.fixture
async def postgres_site(postgres_url: str, tmp_path: Path) -> AsyncIterator[Site]:  # noqa: F811
    site = Site("postgres", tmp_path, postgres_url)
    yield site
    for storage in list(site.opened):
        await site.close(storage)


async def test_a_fenced_out_attempt_still_reseals_what_it_reads(postgres_site: Site) -> None:
    """The rewrite is not a checkpoint write: a worker whose lease is gone (its run was
    reclaimed or finished) still migrates what it reads, while its writes stay fenced."""
    old = await postgres_site.open(encryption(KEY_1))
    await run_until_interrupt(old, "thread")
    await postgres_site.close(old)
    storage = await postgres_site.open(encryption(KEY_2, KEY_1))

    with attempt_of("a-run-this-attempt-no-longer-owns", 1):
        read = await storage.checkpointer.aget_tuple(latest("thread"))
        assert read is not None and read.checkpoint["channel_values"]["secret"] == SECRET
        with pytest.raises(LeaseLostError):  # the fence is intact
            await storage.checkpointer.aput_writes(read.config, [("notes", ["late"])], "t")
    assert sealed_by(latest_kids(postgres_site, "thread"), "k2")
