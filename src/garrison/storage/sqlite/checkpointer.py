"""LangGraph's official SQLite checkpointer, run on the shared connection's thread.

The library's own `SqliteSaver` does the work (its SQL, its serialization); this class only
drives it: every operation runs as one synchronous unit on the connection's thread, under the
shared lock, in a single hop. (`AsyncSqliteSaver` instead holds its lock across two to five
event-loop round trips per operation; with HTTP traffic on the same loop each round trip
queues, and the shared lock became the server's bottleneck.) It also adds the thread
operations the server needs and the stock saver leaves unimplemented: copy, prune, and
deleting the checkpoints of given runs.

With a `CheckpointCipher`, state, pending writes and metadata are sealed before the stock
saver sees them and opened after it reads them (see `garrison.security.checkpoint_cipher`);
a thread copy re-seals the copied rows for their new thread. `aget_tuple` re-seals the
checkpoint it read when an older key sealed any of it (`garrison.security.lazy_reseal`).
"""

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver

from garrison.security.checkpoint_cipher import (
    CheckpointCipher,
    StaleCheckpoint,
    matches,
    split_filter,
)
from garrison.security.lazy_reseal import reseal_checkpoint
from garrison.security.safe_serde import safe_serializer
from garrison.storage.sqlite.database import SqliteDatabase
from garrison.storage.sqlite.rows import placeholders

# LangGraph copies `configurable.run_id` into every checkpoint's metadata (JSON text).
_RUN_OF_CHECKPOINT = "json_extract(CAST(metadata AS TEXT), '$.run_id')"


class GarrisonSqliteSaver(BaseCheckpointSaver[str]):
    def __init__(
        self,
        db: SqliteDatabase,
        *,
        serde: SerializerProtocol | None = None,
        cipher: CheckpointCipher | None = None,
    ) -> None:
        super().__init__(serde=serde or safe_serializer())
        self._db = db
        self.cipher = cipher
        # Only ever called on the connection's thread, through `db.read`.
        self._saver = SqliteSaver(db.sqlite_connection, serde=self.serde)
        self._loop = asyncio.get_running_loop()

    async def setup(self) -> None:
        await self._db.read(lambda _: self._saver.setup())

    # Async API: what graphs use. -------------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        stored = await self._db.read(lambda _: self._saver.get_tuple(config))
        if stored is None or self.cipher is None:
            return stored
        opened = self.cipher.open_tuple(stored)
        await reseal_checkpoint(self.cipher, stored, self._reseal)  # lazy re-encryption
        return opened

    async def _reseal(self, stale: StaleCheckpoint) -> int:
        cipher = cast(CheckpointCipher, self.cipher)  # only called when there is one
        changed: int = await self._db.transaction(_reseal_checkpoint, cipher, self.serde, stale)
        return changed

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        cipher = self.cipher
        if cipher is None:
            tuples = await self._db.read(
                lambda _: list(self._saver.list(config, filter=filter, before=before, limit=limit))
            )
            for item in tuples:
                yield item
            return
        # Sealed metadata keys can only be matched once decrypted, so the limit applies after.
        clear, sealed = split_filter(filter)
        listed = await self._db.read(
            lambda _: list(
                self._saver.list(
                    config, filter=clear, before=before, limit=None if sealed else limit
                )
            )
        )
        opened = (cipher.open_tuple(item) for item in listed)
        found = [item for item in opened if matches(item.metadata, sealed)]
        for item in found[:limit] if limit is not None else found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        if self.cipher is not None:
            config, checkpoint, metadata = self.cipher.seal_put(config, checkpoint, metadata)
        return await self._db.read(
            lambda _: self._saver.put(config, checkpoint, metadata, new_versions)
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if self.cipher is not None:
            writes = self.cipher.seal_writes(config, writes, task_id)
        await self._db.read(lambda _: self._saver.put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._db.read(lambda _: self._saver.delete_thread(thread_id))

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        if self.cipher is not None:
            # The stock fast path reads rows without this class; walk tuples instead.
            return await super().aget_delta_channel_history(config=config, channels=channels)
        return await self._db.read(
            lambda _: self._saver.get_delta_channel_history(config=config, channels=channels)
        )

    def get_next_version(self, current: str | None, channel: None) -> str:
        return self._saver.get_next_version(current, channel)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self._db.transaction(_delete_for_runs, list(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        cipher, serde = self.cipher, self.serde

        def copy(conn: sqlite3.Connection) -> None:
            _copy_thread(conn, source_thread_id, target_thread_id)
            if cipher is not None:  # sealed for the source thread: re-seal for the copy
                _rewrap_threads(conn, cipher, serde, [target_thread_id], source_thread_id)

        await self._db.transaction(copy)

    async def athread_ids(self, *, after: str | None, limit: int) -> list[str]:
        """Thread ids with checkpoints, in order, after `after` (rotation batches)."""
        rows = await self._db.read(
            lambda conn: conn.execute(
                "SELECT thread_id FROM (SELECT thread_id FROM checkpoints UNION"
                " SELECT thread_id FROM writes) WHERE thread_id > ? ORDER BY thread_id LIMIT ?",
                (after or "", limit),
            ).fetchall()
        )
        return [str(row[0]) for row in rows]

    async def arewrap_threads(self, thread_ids: Sequence[str]) -> int:
        """Re-encrypt these threads' rows under the active key (and seal plaintext rows);
        returns how many rows changed."""
        cipher, serde = self.cipher, self.serde
        if cipher is None or not thread_ids:
            return 0
        changed: int = await self._db.transaction(
            lambda conn: _rewrap_threads(conn, cipher, serde, list(thread_ids), None)
        )
        return changed

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if thread_ids:
            await self._db.transaction(_prune, list(thread_ids), strategy)

    # Sync API: for graph code on other threads (a sync node reading state). ------------
    def _on_loop(self, coroutine: Any) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coroutine.close()
            raise asyncio.InvalidStateError(
                "Synchronous checkpointer calls are only allowed from other threads; "
                "use the async API (`aget_state`, `ainvoke`) on the event loop."
            )
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        result: CheckpointTuple | None = self._on_loop(self.aget_tuple(config))
        return result

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        tuples: list[CheckpointTuple] = self._on_loop(
            _collect(self.alist(config, filter=filter, before=before, limit=limit))
        )
        return iter(tuples)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        saved: RunnableConfig = self._on_loop(self.aput(config, checkpoint, metadata, new_versions))
        return saved

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._on_loop(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._on_loop(self.adelete_thread(thread_id))


async def _collect(items: AsyncIterator[CheckpointTuple]) -> list[CheckpointTuple]:
    return [item async for item in items]


def _delete_orphan_writes(conn: sqlite3.Connection) -> None:
    conn.execute(
        "DELETE FROM writes WHERE NOT EXISTS (SELECT 1 FROM checkpoints AS c"
        " WHERE c.thread_id = writes.thread_id AND c.checkpoint_ns = writes.checkpoint_ns"
        " AND c.checkpoint_id = writes.checkpoint_id)"
    )


def _delete_for_runs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> None:
    cur = conn.execute(
        f"DELETE FROM checkpoints WHERE {_RUN_OF_CHECKPOINT} IN ({placeholders(len(run_ids))})",
        tuple(run_ids),
    )
    if cur.rowcount:
        _delete_orphan_writes(conn)


def _copy_thread(conn: sqlite3.Connection, source: str, target: str) -> None:
    conn.execute(
        "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
        " type, checkpoint, metadata) SELECT ?, checkpoint_ns, checkpoint_id,"
        " parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints WHERE thread_id = ?",
        (target, source),
    )
    conn.execute(
        "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx,"
        " channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, task_id, task_path, idx,"
        " channel, type, value FROM writes WHERE thread_id = ?",
        (target, source),
    )


def _rewrap_threads(
    conn: sqlite3.Connection,
    cipher: CheckpointCipher,
    serde: SerializerProtocol,
    thread_ids: Sequence[str],
    stored_thread: str | None,
) -> int:
    """Re-seal the rows of `thread_ids` under the active key. `stored_thread`: the thread
    the rows were sealed for, when they were copied from another one."""
    marks = placeholders(len(thread_ids))
    changed = 0
    checkpoints = conn.execute(
        "SELECT thread_id, checkpoint_ns, checkpoint_id, type, checkpoint, metadata"
        f" FROM checkpoints WHERE thread_id IN ({marks})",
        tuple(thread_ids),
    ).fetchall()
    for thread_id, ns, checkpoint_id, type_, blob, metadata_text in checkpoints:
        source = stored_thread or thread_id
        checkpoint = serde.loads_typed((type_, blob))
        values = cipher.rewrap_channel_values(
            checkpoint.get("channel_values") or {},
            checkpoint.get("channel_versions") or {},
            (source, ns),
            thread_id,
        )
        metadata = json.loads(metadata_text) if metadata_text is not None else {}
        new_metadata = cipher.rewrap_metadata(metadata, (source, ns, checkpoint_id), thread_id)
        if values is None and new_metadata is None:
            continue
        if values is not None:
            type_, blob = serde.dumps_typed({**checkpoint, "channel_values": values})
        if new_metadata is not None:
            metadata_text = json.dumps(new_metadata, ensure_ascii=False)
        conn.execute(
            "UPDATE checkpoints SET type = ?, checkpoint = ?, metadata = ?"
            " WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
            (type_, blob, metadata_text, thread_id, ns, checkpoint_id),
        )
        changed += 1
    writes = conn.execute(
        "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, value"
        f" FROM writes WHERE thread_id IN ({marks})",
        tuple(thread_ids),
    ).fetchall()
    for thread_id, ns, checkpoint_id, task_id, idx, channel, type_, value in writes:
        address = (stored_thread or thread_id, ns, checkpoint_id, task_id, channel)
        rewrapped = cipher.rewrap_write((type_, value), address, thread_id)
        if rewrapped is None:
            continue
        conn.execute(
            "UPDATE writes SET type = ?, value = ? WHERE thread_id = ? AND checkpoint_ns = ?"
            " AND checkpoint_id = ? AND task_id = ? AND idx = ?",
            (*rewrapped, thread_id, ns, checkpoint_id, task_id, idx),
        )
        changed += 1
    return changed


def _reseal_checkpoint(
    conn: sqlite3.Connection,
    cipher: CheckpointCipher,
    serde: SerializerProtocol,
    stale: StaleCheckpoint,
) -> int:
    """Lazy re-encryption of one checkpoint: each stale envelope is replaced only where the
    row still holds the bytes read (the compare-and-set); the select and the updates share
    one BEGIN IMMEDIATE transaction, so no writer lands in between."""
    key = (stale.thread_id, stale.ns, stale.checkpoint_id)
    changed = 0
    row = conn.execute(
        "SELECT type, checkpoint, metadata FROM checkpoints"
        " WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
        key,
    ).fetchone()
    if row is not None and (stale.values or stale.metadata is not None):
        checkpoint = serde.loads_typed((row[0], row[1]))
        metadata = json.loads(row[2]) if row[2] is not None else {}
        patched = cipher.patch_stale(stale, checkpoint.get("channel_values") or {}, metadata)
        if patched is not None:
            type_, blob = serde.dumps_typed({**checkpoint, "channel_values": patched[0]})
            changed += conn.execute(
                "UPDATE checkpoints SET type = ?, checkpoint = ?, metadata = ?"
                " WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
                (type_, blob, json.dumps(patched[1], ensure_ascii=False), *key),
            ).rowcount
    for task_id, channel, old in stale.writes:
        new = cipher.reseal_write(stale, task_id, channel, old)
        changed += conn.execute(
            "UPDATE writes SET type = ?, value = ? WHERE thread_id = ? AND checkpoint_ns = ?"
            " AND checkpoint_id = ? AND task_id = ? AND channel = ? AND type = ? AND value = ?",
            (*serde.dumps_typed(new), *key, task_id, channel, *serde.dumps_typed(old)),
        ).rowcount
    return changed


def _prune(conn: sqlite3.Connection, thread_ids: Sequence[str], strategy: str) -> None:
    marks = placeholders(len(thread_ids))
    if strategy == "delete":
        conn.execute(f"DELETE FROM checkpoints WHERE thread_id IN ({marks})", tuple(thread_ids))
        conn.execute(f"DELETE FROM writes WHERE thread_id IN ({marks})", tuple(thread_ids))
        return
    # keep_latest: the newest checkpoint of each namespace survives (ids sort by time).
    conn.execute(
        f"DELETE FROM checkpoints WHERE thread_id IN ({marks}) AND checkpoint_id < ("
        " SELECT MAX(k.checkpoint_id) FROM checkpoints AS k"
        " WHERE k.thread_id = checkpoints.thread_id"
        " AND k.checkpoint_ns = checkpoints.checkpoint_ns)",
        tuple(thread_ids),
    )
    conn.execute(
        f"UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id IN ({marks})",
        tuple(thread_ids),
    )
    _delete_orphan_writes(conn)
