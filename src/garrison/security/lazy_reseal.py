"""Lazy re-encryption on read: a row read under an older key is re-sealed under the active
one, so the data in use migrates without waiting for `garrison keys rotate-data`.

The adapters ask, after opening a row they read, whether any of its envelopes carries an
older kid (`ApiRowCipher.stale_changes`, `StoreCipher.stale_items`: headers only, so a
current row costs no decryption and no query). Only then do they write, with a
compare-and-set on the stored values they read: a writer that changed the row in between
keeps its newer value, and this read's stale copy is dropped (a later read retries).

The rewrite never fails the read (`reseal_quietly`): an error is logged and the read
returns what it opened; the next read, or the rotation job, tries again.

Checkpoints (`reseal_checkpoint`, from the checkpointers' `aget_tuple`) work the same way,
one checkpoint per read: its channel values, pending writes and sealed metadata
(`CheckpointCipher.stale_parts`), each with a compare-and-set on the envelope bytes read.
The rewrite runs inline, before the read returns, like the rows': only a read that found an
older key pays for it (once: the next read finds the checkpoint current), and a caller
that reads, then writes, never races its own rewrite. It does not go through the
checkpointer's attempt fence: it stores the same data, not a new checkpoint, and a worker
whose lease was lost may still migrate what it read (the compare-and-set keeps it from
overwriting anything newer).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from langgraph.checkpoint.base import CheckpointTuple

from garrison.security.api_rows import TABLE_SPECS, ApiRowCipher
from garrison.security.checkpoint_cipher import CheckpointCipher, StaleCheckpoint

logger = logging.getLogger("garrison.security")
T = TypeVar("T")
# Runs one statement in its own transaction; the number of rows it changed.
Execute = Callable[[str, list[Any]], Awaitable[int]]


class Row(Protocol):
    """A database row by column name (sqlite3.Row, psycopg's DictRow)."""

    def __getitem__(self, column: str, /) -> Any: ...


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class StaleRow:
    """One API row to re-seal: its new column values and the stored ones they replace."""

    table: str
    key: str  # the key column
    row_id: str
    changes: dict[str, Any]  # column -> value under the active key
    expected: dict[str, Any]  # column -> value as stored when read (the compare-and-set)

    def statement(
        self,
        mark: str,
        encode: Callable[[Any], Any],
        encode_expected: Callable[[Any], Any] = _same,
    ) -> tuple[str, list[Any]]:
        """The compare-and-set UPDATE (`mark`: the driver's placeholder) and its params;
        it changes no row when any re-sealed column no longer holds what was read.
        Identifiers come from `TABLE_SPECS`, never from a client."""
        columns = list(self.changes)
        sets = ", ".join(f'"{c}" = {mark}' for c in columns)
        same = " AND ".join(f'"{c}" = {mark}' for c in columns)
        sql = f'UPDATE {self.table} SET {sets} WHERE "{self.key}" = {mark} AND {same}'
        params = [
            *(encode(self.changes[c]) for c in columns),
            self.row_id,
            *(encode_expected(self.expected[c]) for c in columns),
        ]
        return sql, params


def stale_row(cipher: ApiRowCipher, table: str, stored: Any, raw: Row) -> StaleRow | None:
    """What to re-seal of a row just read: `stored` is its model before opening (a Thread,
    Run, Cron or Assistant, whose sealed attributes are named as their columns), `raw` the
    database row as read (the compare-and-set values). None when nothing is stale."""
    if not cipher.enabled:
        return None
    spec = TABLE_SPECS[table]
    row_id = str(getattr(stored, spec.key))
    values = {c: getattr(stored, c) for c in spec.columns}
    changes = cipher.stale_changes(table, stored.tenant_id, row_id, values)
    if not changes:
        return None
    return StaleRow(table, spec.key, row_id, changes, {c: raw[c] for c in changes})


async def reseal_row(
    stale: StaleRow | None,
    execute: Execute,
    *,
    mark: str,
    encode: Callable[[Any], Any],
    encode_expected: Callable[[Any], Any] = _same,
) -> None:
    """Write `stale` (from `stale_row`) with its compare-and-set; nothing when it is None."""
    if stale is None:
        return
    sql, params = stale.statement(mark, encode, encode_expected)
    await reseal_quietly(f"{stale.table} row", partial(execute, sql, params))


async def reseal_each(what: str, stale: Sequence[T], write: Callable[[T], Awaitable[int]]) -> None:
    """`write` (a compare-and-set) for each stale item, one failure not stopping the rest."""
    for item in stale:
        await reseal_quietly(what, partial(write, item))


async def reseal_checkpoint(
    cipher: CheckpointCipher,
    stored: CheckpointTuple,
    write: Callable[[StaleCheckpoint], Awaitable[int]],
) -> None:
    """Lazy re-encryption of a checkpoint just read: `stored` as the stock saver returned
    it (call after `open_tuple` succeeded, so only data that authenticates is re-sealed),
    `write` the backend's compare-and-sets (the number of rows they changed). Nothing, and
    no decryption, when every envelope is under the active key."""
    stale = cipher.stale_parts(stored)
    if stale is not None:
        await reseal_quietly("checkpoint", partial(write, stale))


def rowcount(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """`sql` on a SQLite connection (inside the caller's transaction); rows changed."""
    return conn.execute(sql, params).rowcount


async def reseal_quietly(what: str, write: Callable[[], Awaitable[int]]) -> None:
    """Run `write` (the compare-and-set; the number of rows it changed), never raising:
    the read that found the stale row must still return."""
    try:
        written = await write()
    except Exception:
        logger.warning(
            "encryption.lazy_reseal_failed: re-sealing a %s read under an older key failed;"
            " a later read or `garrison keys rotate-data` retries",
            what,
            exc_info=True,
        )
        return
    if not written:
        logger.info("encryption.lazy_reseal_skipped: the %s changed after it was read", what)


__all__ = [
    "Execute",
    "StaleRow",
    "reseal_checkpoint",
    "reseal_each",
    "reseal_quietly",
    "reseal_row",
    "rowcount",
    "stale_row",
]
