"""The audit log on SQLite: a batch of appends is one write transaction (SQLite's single
writer serializes them, so the chain cannot fork)."""

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from garrison.domain.clock import to_text
from garrison.security.audit import (
    COLUMNS,
    AuditEvent,
    AuditRecord,
    ChainHead,
    from_row,
    seal_all,
    to_row,
)
from garrison.storage.sqlite.database import SqliteDatabase
from garrison.storage.sqlite.rows import fetch_all, fetch_one

_HEAD = "SELECT seq, hash FROM audit_chain_head WHERE id = 1"
_INSERT = (
    f"INSERT INTO audit_log ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(':' + name for name in COLUMNS)})"
)
_ADVANCE = "UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1"
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE seq > ?"


def _head(conn: sqlite3.Connection) -> ChainHead:
    row = fetch_one(conn, _HEAD)
    assert row is not None  # the migration inserts the head row
    return ChainHead(int(row["seq"]), str(row["hash"]))


def _append_many(conn: sqlite3.Connection, events: Sequence[AuditEvent]) -> list[AuditRecord]:
    records = seal_all(events, _head(conn))
    conn.executemany(_INSERT, [{**to_row(r), "time": to_text(r.event.time)} for r in records])
    conn.execute(_ADVANCE, (records[-1].seq, records[-1].hash))
    return records


def _records(
    conn: sqlite3.Connection, after_seq: int, since: datetime | None, limit: int
) -> list[AuditRecord]:
    query, params = _SELECT, list[object]([after_seq])
    if since is not None:
        query += " AND time >= ?"
        params.append(to_text(since))  # fixed-width UTC text sorts as time
    rows = fetch_all(conn, f"{query} ORDER BY seq LIMIT ?", (*params, limit))
    return [from_row(dict(row)) for row in rows]


class SqliteAuditLog:
    """Implements `garrison.storage.ports.AuditLog`."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def append(self, event: AuditEvent) -> AuditRecord:
        (record,) = await self.append_many([event])
        return record

    async def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if not events:
            return []
        return await self._db.transaction(_append_many, events)

    async def records(
        self, *, after_seq: int = 0, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditRecord]:
        return await self._db.read(_records, after_seq, since, limit)

    async def head(self) -> ChainHead:
        return await self._db.read(_head)


__all__ = ["SqliteAuditLog"]
