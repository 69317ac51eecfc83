"""The checkpointer's writes as single statements, with the attempt fence inside them.

The stock saver writes a checkpoint as several statements (one per blob, then the
checkpoint row), which need a transaction around them, and Garrison's fence adds a
statement more: BEGIN, the fence, the writes and COMMIT. Every run makes several such
writes per step, and each statement costs the worker Python time in the driver whatever
the round trips. Here each write is one statement in autocommit, its rows passed as
arrays: the fence (`garrison_hold_attempt`, migration 0005) runs in a CTE that every row
is selected through, so a refused fence fails the statement and nothing of it lands, and
its `FOR SHARE` holds the run's row until the statement commits. Without an attempt
(API-side state updates) the fence is a no-op.

The rows and conflict rules are the stock saver's (`langgraph.checkpoint.postgres.base`):
blobs are never overwritten, a checkpoint row is, and writes to LangGraph's special
channels (errors, interrupts...) replace earlier ones at their fixed index while others
are kept as first written.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg.types.json import Jsonb

from garrison.domain.attempts import AttemptToken

_FENCE = """
WITH fence AS MATERIALIZED (
    SELECT CASE WHEN %(run_id)s::text IS NULL THEN NULL
                ELSE garrison_hold_attempt(%(run_id)s, %(attempt)s) END
)"""

PUT_CHECKPOINT = (
    _FENCE
    + """, blobs AS (
    INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT %(thread_id)s, %(checkpoint_ns)s, b.channel, b.version, b.type, b.blob
    FROM fence, unnest(%(channels)s::text[], %(versions)s::text[], %(types)s::text[],
                       %(blobs)s::bytea[]) AS b (channel, version, type, blob)
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
)
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                         checkpoint, metadata)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(parent_checkpoint_id)s,
       %(checkpoint)s, %(metadata)s
FROM fence
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
"""
)

_INSERT_WRITES = (
    _FENCE
    + """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path,
                               idx, channel, type, blob)
SELECT %(thread_id)s, %(checkpoint_ns)s, %(checkpoint_id)s, %(task_id)s, %(task_path)s,
       w.idx, w.channel, w.type, w.blob
FROM fence, unnest(%(indexes)s::integer[], %(channels)s::text[], %(types)s::text[],
                   %(blobs)s::bytea[]) AS w (idx, channel, type, blob)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
"""
)
PUT_WRITES_KEEPING_FIRST = _INSERT_WRITES + "DO NOTHING"
PUT_WRITES_REPLACING = (
    _INSERT_WRITES
    + "DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"
)


def fence_params(attempt: AttemptToken | None) -> dict[str, Any]:
    if attempt is None:
        return {"run_id": None, "attempt": None}
    return {"run_id": attempt.run_id, "attempt": attempt.attempt}


def checkpoint_params(
    attempt: AttemptToken | None,
    address: tuple[str, str],
    checkpoint_id: str,
    parent_checkpoint_id: str | None,
    checkpoint: dict[str, Any],
    metadata: Mapping[str, Any],
    blobs: Sequence[tuple[str, str, str, bytes | None]],
) -> dict[str, Any]:
    """`blobs`: (channel, version, type, serialized value) rows."""
    thread_id, checkpoint_ns = address
    return {
        **fence_params(attempt),
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "parent_checkpoint_id": parent_checkpoint_id,
        "checkpoint": Jsonb(checkpoint),
        "metadata": Jsonb(metadata),
        "channels": [row[0] for row in blobs],
        "versions": [row[1] for row in blobs],
        "types": [row[2] for row in blobs],
        "blobs": [row[3] for row in blobs],
    }


def writes_params(
    attempt: AttemptToken | None,
    address: tuple[str, str, str],
    task: tuple[str, str],
    rows: Sequence[tuple[int, str, str, bytes | None]],
) -> dict[str, Any]:
    """`rows`: (idx, channel, type, serialized value); one row per idx (one statement
    cannot write a row twice)."""
    thread_id, checkpoint_ns, checkpoint_id = address
    task_id, task_path = task
    return {
        **fence_params(attempt),
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "task_id": task_id,
        "task_path": task_path,
        "indexes": [row[0] for row in rows],
        "channels": [row[1] for row in rows],
        "types": [row[2] for row in rows],
        "blobs": [row[3] for row in rows],
    }
