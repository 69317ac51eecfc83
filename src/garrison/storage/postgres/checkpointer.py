"""LangGraph's official PostgreSQL checkpointer on Garrison's pool, with attempt fencing.

The library's `AsyncPostgresSaver` does the work (its SQL, serialization, pruning). This
subclass changes one thing, how it gets a cursor (`_cursor`, through which every one of the
saver's queries goes), and adds what the server needs beyond the stock saver: deleting the
checkpoints of given runs and copying a thread.

`_cursor`, three ways:
- Reads get a pooled autocommit connection and no lock. The stock saver holds one asyncio
  lock across every operation, which a single shared connection needs; with a pool each
  operation has a connection of its own, so the lock would only serialise the process.
- Writes (the methods wrapped in `_write()`) run in one transaction, pipelined.
- Writes made on behalf of an attempt (`domain.attempts.current_attempt` is set by the
  worker) are fenced: the transaction first runs `FENCE` (below), and commits only if the
  attempt still owns its run; otherwise it rolls back and raises LeaseLostError. The check
  and the write share one transaction, and `FOR SHARE` holds the run row until the commit,
  so a reaper or a new claim that changes the row waits for the write to land first, and
  once the row has changed, no write of the old attempt can commit. A worker that lost its
  lease can therefore never write a checkpoint that wins over the new owner's.
Writes with no attempt (API-side state updates, forks, thread copies) are not fenced.
`aprune` is not fenced either: only the API and the TTL sweeper prune, never a graph, and
its keep_latest transaction must start with SET TRANSACTION.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg.rows import DictRow, dict_row

from garrison.domain.attempts import current_attempt
from garrison.domain.errors import LeaseLostError
from garrison.storage.postgres.database import Cursor, PostgresDatabase

FENCE = "SELECT 1 FROM runs WHERE run_id = %s AND attempt = %s AND status = 'running' FOR SHARE"

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


class GarrisonPostgresSaver(AsyncPostgresSaver):
    def __init__(self, db: PostgresDatabase, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(db.pool, serde=serde)
        self._db = db

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[Cursor]:
        # `pipeline` is the official callers' hint; writes here are always pipelined, in
        # one transaction, and reads never are.
        writing = _writing.get()
        async with self._db.connection() as conn:
            if not writing:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
                return
            attempt = current_attempt.get()
            async with (
                conn.pipeline(),
                conn.transaction(),
                conn.cursor(binary=True, row_factory=dict_row) as cur,
            ):
                if attempt is None:
                    yield cur
                    return
                # Sent first, checked last: the pipeline sends it with the writes in one
                # round trip, and the transaction keeps nothing when it finds no row.
                fence = conn.cursor()
                await fence.execute(FENCE, (attempt.run_id, attempt.attempt))
                yield cur
                if await fence.fetchone() is None:
                    raise LeaseLostError(
                        f"Run {attempt.run_id} attempt {attempt.attempt} lost its lease;"
                        " its checkpoint write was discarded"
                    )

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        with _write():
            return await super().aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        with _write():
            await super().aput_writes(config, writes, task_id, task_path)

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


__all__ = ["FENCE", "GarrisonPostgresSaver"]
