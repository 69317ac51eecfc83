"""LangGraph's official PostgreSQL checkpointer on Garrison's pool, with attempt fencing.

The library's `AsyncPostgresSaver` does most of the work (its reads, serialization,
pruning). This subclass changes how it reaches the database, writes checkpoints its own
way, and adds what the server needs beyond the stock saver: deleting the checkpoints of
given runs and copying a thread.

Checkpoints and pending writes (`aput`, `aput_writes`, a few per superstep of every run)
are one statement each (`checkpoint_writes`), with the attempt fence inside:
- Writes made on behalf of an attempt (`domain.attempts.current_attempt` is set by the
  worker) are fenced: the statement runs `garrison_hold_attempt`, which fails it when the
  attempt no longer owns its run, and the saver raises LeaseLostError. Its `FOR SHARE`
  holds the run's row until the statement commits, so a reaper or a new claim that
  changes the row waits for the write to land first, and once the row has changed, no
  write of the old attempt can commit. A worker that lost its lease can therefore never
  write a checkpoint that wins over the new owner's.
- Writes with no attempt (API-side state updates, forks) are not fenced.
- Values are serialized on the event loop. The stock saver hands every serialization to a
  thread (`asyncio.to_thread`), which holds the GIL all the same, so it buys no
  parallelism and its hand-off costs more CPU than serializing the small values of most
  steps. A very large state delays the loop's other tasks while it serializes.

Every other query goes through `_cursor`:
- Reads get a pooled autocommit connection and no lock. The stock saver holds one asyncio
  lock across every operation, which a single shared connection needs; with a pool each
  operation has a connection of its own, so the lock would only serialise the process.
- Writes (the methods wrapped in `_write()`: deletes, copies, re-encryption) run in one
  transaction, pipelined: BEGIN, the statements and COMMIT in one round trip, fenced with
  `HOLD_ATTEMPT` first when made on behalf of an attempt (a rollback from the graph).
Lazy re-encryption on read (`_reseal`) is not fenced: it stores the same data under the
active key, with a compare-and-set per row, not a new checkpoint. `aprune` is not fenced
either: only the API and the TTL sweeper prune, never a graph, and its keep_latest
transaction must start with SET TRANSACTION.

With a `CheckpointCipher`, state, pending writes and metadata are sealed before the stock
saver sees them and opened after it reads them (`garrison.security.checkpoint_cipher`):
every channel value, primitives included, becomes an envelope in `checkpoint_blobs`, so
the checkpoint JSONB keeps only versions and ids. A thread copy re-seals the copied rows
for their new thread. `aget_tuple` re-seals the checkpoint it read when an older key
sealed any of it (`garrison.security.lazy_reseal`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, cast

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

from garrison.domain.attempts import AttemptToken, current_attempt
from garrison.domain.errors import LeaseLostError
from garrison.security.checkpoint_cipher import (
    SEALED_KEY,
    CheckpointCipher,
    StaleCheckpoint,
    matches,
    split_filter,
)
from garrison.security.lazy_reseal import reseal_checkpoint
from garrison.security.safe_serde import safe_serializer
from garrison.storage.postgres import checkpoint_writes
from garrison.storage.postgres.database import Cursor, PostgresDatabase

# Share-locks the run's row until the commit, or fails the transaction with LEASE_LOST when
# the attempt no longer owns the run (migration 0005).
HOLD_ATTEMPT = "SELECT garrison_hold_attempt(%s, %s)"
LEASE_LOST = "GR001"

# LangGraph copies `configurable.run_id` into every checkpoint's metadata; migration 0002
# indexes it. A deleted checkpoint takes its pending writes along, and the blob versions it
# referenced come back so that those no remaining checkpoint uses can go too.
_DELETE_RUN_CHECKPOINTS = """
WITH deleted AS (
    DELETE FROM checkpoints WHERE metadata ->> 'run_id' = ANY(%s)
    RETURNING thread_id, checkpoint_ns, checkpoint_id,
              checkpoint -> 'channel_versions' AS versions
), writes AS (
    DELETE FROM checkpoint_writes AS w USING deleted AS d
    WHERE w.thread_id = d.thread_id AND w.checkpoint_ns = d.checkpoint_ns
      AND w.checkpoint_id = d.checkpoint_id
)
SELECT DISTINCT d.thread_id, d.checkpoint_ns, v.key AS channel, v.value AS version
FROM deleted AS d CROSS JOIN LATERAL jsonb_each_text(d.versions) AS v
"""
_FREED_KEYS = ("thread_id", "checkpoint_ns", "channel", "version")
# A separate statement: within the one above, `checkpoints` still shows the deleted rows.
_DELETE_FREED_BLOBS = """
DELETE FROM checkpoint_blobs AS b
USING unnest(%s::text[], %s::text[], %s::text[], %s::text[])
      AS f (thread_id, checkpoint_ns, channel, version)
WHERE b.thread_id = f.thread_id AND b.checkpoint_ns = f.checkpoint_ns
  AND b.channel = f.channel AND b.version = f.version
  AND NOT EXISTS (
      SELECT 1 FROM checkpoints AS c
      WHERE c.thread_id = f.thread_id AND c.checkpoint_ns = f.checkpoint_ns
        AND c.checkpoint -> 'channel_versions' ->> f.channel = f.version)
"""
_COPY_THREAD = (
    """
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
                         checkpoint, metadata)
SELECT %(target)s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,
       metadata
FROM checkpoints WHERE thread_id = %(source)s
ON CONFLICT DO NOTHING
""",
    """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT %(target)s, checkpoint_ns, channel, version, type, blob
FROM checkpoint_blobs WHERE thread_id = %(source)s
ON CONFLICT DO NOTHING
""",
    """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path,
                               idx, channel, type, blob)
SELECT %(target)s, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob
FROM checkpoint_writes WHERE thread_id = %(source)s
ON CONFLICT DO NOTHING
""",
)

# Set while one of the saver's write operations runs (see `_write`).
_writing: ContextVar[bool] = ContextVar("garrison_checkpoint_write", default=False)


@contextmanager
def _write() -> Iterator[None]:
    token = _writing.set(True)
    try:
        yield
    finally:
        _writing.reset(token)


@asynccontextmanager
async def _lease_errors(attempt: AttemptToken | None) -> AsyncIterator[None]:
    """A write the fence refused raises LeaseLostError."""
    try:
        yield
    except psycopg.Error as exc:
        if attempt is not None and exc.sqlstate == LEASE_LOST:
            raise LeaseLostError(
                f"Run {attempt.run_id} attempt {attempt.attempt} lost its lease;"
                " its checkpoint write was discarded"
            ) from exc
        raise


class GarrisonPostgresSaver(AsyncPostgresSaver):
    def __init__(
        self,
        db: PostgresDatabase,
        *,
        serde: SerializerProtocol | None = None,
        cipher: CheckpointCipher | None = None,
    ) -> None:
        super().__init__(db.pool, serde=serde or safe_serializer())
        self._db = db
        self.cipher = cipher

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[Cursor]:
        # `pipeline` is the official callers' hint; writes here are always pipelined, in
        # one transaction, and reads never are.
        if not _writing.get():
            async with (
                self._db.connection() as conn,
                conn.cursor(binary=True, row_factory=dict_row) as cur,
            ):
                yield cur
            return
        attempt = current_attempt.get()
        # BEGIN, the fence, the writes and COMMIT go out together: one round trip (a read
        # in between syncs early). A refused fence makes the server skip the rest.
        async with _lease_errors(attempt), self._db.pipelined_transaction() as conn:
            if attempt is not None:
                await conn.execute(HOLD_ATTEMPT, (attempt.run_id, attempt.attempt))
            async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                yield cur

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        if self.cipher is not None:
            config, checkpoint, metadata = self.cipher.seal_put(config, checkpoint, metadata)
        # Primitives stay inline in the checkpoint JSONB, everything else goes to blobs; a
        # delta snapshot leaves `True` inline to mark that its blob holds the values.
        inline: dict[str, Any] = {}
        blob_values: dict[str, Any] = {}
        for channel, value in checkpoint["channel_values"].items():
            if isinstance(value, _DeltaSnapshot):
                blob_values[channel], inline[channel] = value, True
            elif value is None or isinstance(value, str | int | float | bool):
                inline[channel] = value
            else:
                blob_values[channel] = value
        configurable = config["configurable"]
        thread_id, checkpoint_ns = configurable["thread_id"], configurable["checkpoint_ns"]
        versions = {k: v for k, v in new_versions.items() if k in blob_values}
        # The stock rows, less their (thread, namespace) prefix, which the statement adds.
        blobs = [
            row[2:] for row in self._dump_blobs(thread_id, checkpoint_ns, blob_values, versions)
        ]
        params = checkpoint_writes.checkpoint_params(
            current_attempt.get(),
            (thread_id, checkpoint_ns),
            checkpoint["id"],
            configurable.get("checkpoint_id"),
            {**checkpoint, "channel_values": inline},
            get_serializable_checkpoint_metadata(config, metadata),
            blobs,
        )
        await self._write_statement(checkpoint_writes.PUT_CHECKPOINT, params)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if self.cipher is not None:
            writes = self.cipher.seal_writes(config, writes, task_id)
        # Writes to special channels (errors, interrupts...) replace earlier ones at their
        # fixed index, the last of a batch winning; any other batch keeps what was first.
        replacing = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        configurable = config["configurable"]
        address = (
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
        )
        # The stock rows (their idx is the write's position, or a special channel's fixed
        # index), less the address and task columns, which the statement adds.
        rows: dict[int, tuple[int, str, str, bytes | None]] = {}
        for row in self._dump_writes(*address, task_id, task_path, writes):
            if replacing or row[5] not in rows:
                rows[row[5]] = row[5:]
        params = checkpoint_writes.writes_params(
            current_attempt.get(), address, (task_id, task_path), list(rows.values())
        )
        statement = (
            checkpoint_writes.PUT_WRITES_REPLACING
            if replacing
            else checkpoint_writes.PUT_WRITES_KEEPING_FIRST
        )
        await self._write_statement(statement, params)

    async def _write_statement(self, statement: str, params: Mapping[str, Any]) -> None:
        async with _lease_errors(current_attempt.get()):
            await self._db.execute(statement, params)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        stored = await super().aget_tuple(config)
        if stored is None or self.cipher is None:
            return stored
        opened = self.cipher.open_tuple(stored)
        await reseal_checkpoint(self.cipher, stored, self._reseal)  # lazy re-encryption
        return opened

    async def _reseal(self, stale: StaleCheckpoint) -> int:
        """Compare-and-sets on the envelopes read, one statement (transaction) each, so
        no two row locks are ever held together. Not through `_cursor`: never fenced."""
        cipher, dump = cast(CheckpointCipher, self.cipher), self.serde.dumps_typed
        address = (stale.thread_id, stale.ns)
        changed = 0
        params: tuple[Any, ...]
        for channel, (version, old) in stale.values.items():
            new = cipher.reseal_value(stale, channel)
            params = (*dump(new), *address, channel, version, *dump(old))
            changed += await self._db.execute(_RESEAL_BLOB, params)
        for task_id, channel, old in stale.writes:
            new = cipher.reseal_write(stale, task_id, channel, old)
            params = (*dump(new), *address, stale.checkpoint_id, task_id, channel, *dump(old))
            changed += await self._db.execute(_RESEAL_WRITE, params)
        if stale.metadata is not None:
            sealed = cipher.reseal_metadata(stale)
            params = (SEALED_KEY, sealed, *address, stale.checkpoint_id, SEALED_KEY, stale.metadata)
            changed += await self._db.execute(_RESEAL_METADATA, params)
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
            listed = super().alist(config, filter=filter, before=before, limit=limit)
            async with aclosing(cast(AsyncGenerator[CheckpointTuple], listed)) as items:
                async for item in items:
                    yield item
            return
        # Sealed metadata keys can only be matched once decrypted, so the limit applies after.
        clear, sealed = split_filter(filter)
        found = 0
        listed = super().alist(config, filter=clear, before=before, limit=None if sealed else limit)
        async with aclosing(cast(AsyncGenerator[CheckpointTuple], listed)) as items:
            async for item in items:
                opened = cipher.open_tuple(item)
                if not matches(opened.metadata, sealed):
                    continue
                yield opened
                found += 1
                if limit is not None and found >= limit:
                    return

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        if self.cipher is not None:
            # The stock fast path reads blobs directly; walk the opened tuples instead.
            return await super(AsyncPostgresSaver, self).aget_delta_channel_history(
                config=config, channels=channels
            )
        return await super().aget_delta_channel_history(config=config, channels=channels)

    async def adelete_thread(self, thread_id: str) -> None:
        with _write():
            await super().adelete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return
        with _write():
            async with self._cursor(pipeline=True) as cur:
                await cur.execute(_DELETE_RUN_CHECKPOINTS, (list(run_ids),))
                freed: list[DictRow] = await cur.fetchall()
                if freed:
                    await cur.execute(
                        _DELETE_FREED_BLOBS,
                        tuple([row[key] for row in freed] for key in _FREED_KEYS),
                    )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        with _write():
            async with self._cursor(pipeline=True) as cur:
                for statement in _COPY_THREAD:
                    await cur.execute(
                        statement, {"source": source_thread_id, "target": target_thread_id}
                    )
                if self.cipher is not None:  # sealed for the source thread: re-seal
                    await _rewrap_threads(
                        cur, self.cipher, self.serde, [target_thread_id], source_thread_id
                    )

    async def athread_ids(self, *, after: str | None, limit: int) -> list[str]:
        """Thread ids with checkpoints, in order, after `after` (rotation batches)."""
        async with self._cursor() as cur:
            await cur.execute(_THREAD_PAGE, (after or "", limit))
            return [str(row["thread_id"]) for row in await cur.fetchall()]

    async def arewrap_threads(self, thread_ids: Sequence[str]) -> int:
        """Re-encrypt these threads' rows under the active key (and seal plaintext rows);
        returns how many rows changed."""
        if self.cipher is None or not thread_ids:
            return 0
        with _write():
            async with self._cursor(pipeline=True) as cur:
                return await _rewrap_threads(cur, self.cipher, self.serde, thread_ids, None)


_THREAD_PAGE = """
SELECT thread_id FROM (
    SELECT thread_id FROM checkpoints UNION SELECT thread_id FROM checkpoint_blobs
    UNION SELECT thread_id FROM checkpoint_writes
) AS t WHERE thread_id > %s ORDER BY thread_id LIMIT %s
"""
_UPSERT_BLOB = """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (thread_id, checkpoint_ns, channel, version)
DO UPDATE SET type = EXCLUDED.type, blob = EXCLUDED.blob
"""

# Lazy re-encryption: each replaces the envelope read only if the row still holds it.
_RESEAL_BLOB = """
UPDATE checkpoint_blobs SET type = %s, blob = %s
WHERE thread_id = %s AND checkpoint_ns = %s AND channel = %s AND version = %s
  AND type = %s AND blob = %s
"""
_RESEAL_WRITE = """
UPDATE checkpoint_writes SET type = %s, blob = %s
WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = %s AND task_id = %s
  AND channel = %s AND type = %s AND blob = %s
"""
_RESEAL_METADATA = """
UPDATE checkpoints SET metadata = metadata || jsonb_build_object(%s::text, %s::text)
WHERE thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = %s AND metadata ->> %s = %s
"""


async def _rewrap_threads(
    cur: Cursor,
    cipher: CheckpointCipher,
    serde: SerializerProtocol,
    thread_ids: Sequence[str],
    stored_thread: str | None,
) -> int:
    """Re-seal the rows of `thread_ids` under the active key, moving plaintext primitives
    out of the checkpoint JSONB into sealed blobs. `stored_thread`: the thread the rows
    were sealed for, when they were copied from another one. The rows are locked until
    the commit, so a write racing the rotation is never overwritten by an older value."""
    changed = 0
    threads = list(thread_ids)
    blobs: set[tuple[str, str, str, str]] = set()
    await cur.execute(
        "SELECT thread_id, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs"
        " WHERE thread_id = ANY(%s) AND type <> 'empty' FOR UPDATE",
        (threads,),
    )
    for row in await cur.fetchall():
        thread_id, ns, channel, version = (
            row["thread_id"],
            row["checkpoint_ns"],
            row["channel"],
            row["version"],
        )
        blobs.add((thread_id, ns, channel, version))
        value = serde.loads_typed((row["type"], row["blob"]))
        sealed = cipher.rewrap_channel_values(
            {channel: value}, {channel: version}, (stored_thread or thread_id, ns), thread_id
        )
        if sealed is not None:
            await cur.execute(
                _UPSERT_BLOB, (thread_id, ns, channel, version, *serde.dumps_typed(sealed[channel]))
            )
            changed += 1
    await cur.execute(
        "SELECT thread_id, checkpoint_ns, checkpoint_id, checkpoint, metadata FROM checkpoints"
        " WHERE thread_id = ANY(%s) FOR UPDATE",
        (threads,),
    )
    for row in await cur.fetchall():
        thread_id, ns, checkpoint_id = row["thread_id"], row["checkpoint_ns"], row["checkpoint_id"]
        source = stored_thread or thread_id
        checkpoint = dict(row["checkpoint"])
        versions = checkpoint.get("channel_versions") or {}
        # An inline value with a blob at its version is the saver's delta-snapshot marker.
        inline: dict[str, Any] = {}
        markers: dict[str, Any] = {}
        for channel, value in (checkpoint.pop("channel_values", None) or {}).items():
            has_blob = (thread_id, ns, channel, str(versions.get(channel))) in blobs
            (markers if has_blob else inline)[channel] = value
        checkpoint["channel_values"] = markers
        # Plaintext primitives from before encryption: sealed into blobs at their version.
        moved = cipher.rewrap_channel_values(inline, versions, (source, ns), thread_id) or {}
        for channel, envelope in moved.items():
            await cur.execute(
                _UPSERT_BLOB,
                (thread_id, ns, channel, str(versions.get(channel)), *serde.dumps_typed(envelope)),
            )
        metadata = cipher.rewrap_metadata(row["metadata"], (source, ns, checkpoint_id), thread_id)
        if not moved and metadata is None:
            continue
        await cur.execute(
            "UPDATE checkpoints SET checkpoint = %s, metadata = %s WHERE thread_id = %s"
            " AND checkpoint_ns = %s AND checkpoint_id = %s",
            (
                Jsonb(checkpoint if moved else row["checkpoint"]),
                Jsonb(row["metadata"] if metadata is None else metadata),
                thread_id,
                ns,
                checkpoint_id,
            ),
        )
        changed += 1
    await cur.execute(
        "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob"
        " FROM checkpoint_writes WHERE thread_id = ANY(%s) FOR UPDATE",
        (threads,),
    )
    for row in await cur.fetchall():
        address = (
            stored_thread or row["thread_id"],
            row["checkpoint_ns"],
            row["checkpoint_id"],
            row["task_id"],
            row["channel"],
        )
        rewrapped = cipher.rewrap_write((row["type"], row["blob"]), address, row["thread_id"])
        if rewrapped is None:
            continue
        await cur.execute(
            "UPDATE checkpoint_writes SET type = %s, blob = %s WHERE thread_id = %s"
            " AND checkpoint_ns = %s AND checkpoint_id = %s AND task_id = %s AND idx = %s",
            (
                *rewrapped,
                row["thread_id"],
                row["checkpoint_ns"],
                row["checkpoint_id"],
                row["task_id"],
                row["idx"],
            ),
        )
        changed += 1
    return changed


__all__ = ["HOLD_ATTEMPT", "LEASE_LOST", "GarrisonPostgresSaver"]
