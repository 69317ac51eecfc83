"""The audit log on PostgreSQL.

A batch of appends is sealed after the chain head this process last saw, and stored by one
statement that advances the head only if it is still that one (compare-and-set) and
inserts the records only if it advanced: one round trip in the common case, where this
process is the only one appending. When another replica moved the head in between, nothing
is written and the batch is sealed again in a transaction that locks the head
(`FOR UPDATE`) first; replicas queue on that row lock, so each record links to the one
committed just before it.
"""

from collections.abc import Sequence
from datetime import datetime

from garrison.security.audit import (
    COLUMNS,
    AuditEvent,
    AuditRecord,
    ChainHead,
    from_row,
    seal_all,
    to_row,
)
from garrison.storage.postgres.database import PostgresDatabase

_LOCK_HEAD = "SELECT seq, hash FROM audit_chain_head WHERE id FOR UPDATE"
_HEAD = "SELECT seq, hash FROM audit_chain_head WHERE id"
_ROW = f"({', '.join(['%s'] * len(COLUMNS))})"
# Values in a subquery get no types from the target columns: the first row names them.
_CASTS = {"seq": "::bigint", "time": "::timestamptz", "status": "::integer"}
_TYPED_ROW = f"({', '.join('%s' + _CASTS.get(name, '::text') for name in COLUMNS)})"


def _insert_and_advance(count: int) -> str:
    """One statement for a whole group: advance the head to the last record and insert
    them all (the head is locked, so nothing can slip in between)."""
    return (
        "WITH advanced AS (UPDATE audit_chain_head SET seq = %s, hash = %s WHERE id) "
        f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES {', '.join([_ROW] * count)}"
    )


def _insert_if_head_is(count: int) -> str:
    """One statement: advance the head from an expected (seq, hash) to the last record and
    insert the records, or, when the head is no longer the expected one, do neither."""
    rows = ", ".join([_TYPED_ROW] + [_ROW] * (count - 1))
    return (
        "WITH advanced AS (UPDATE audit_chain_head SET seq = %s, hash = %s"
        " WHERE id AND seq = %s AND hash = %s RETURNING seq) "
        f"INSERT INTO audit_log ({', '.join(COLUMNS)}) "
        f"SELECT v.* FROM advanced, (VALUES {rows}) AS v ({', '.join(COLUMNS)})"
    )


_COLUMNS = ", ".join(COLUMNS)
_AFTER = f"SELECT {_COLUMNS} FROM audit_log WHERE seq > %s ORDER BY seq LIMIT %s"
_AFTER_SINCE = (
    f"SELECT {_COLUMNS} FROM audit_log WHERE seq > %s AND time >= %s ORDER BY seq LIMIT %s"
)


class PostgresAuditLog:
    """Implements `garrison.storage.ports.AuditLog`."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._last_head: ChainHead | None = None  # after this process's last append

    async def append(self, event: AuditEvent) -> AuditRecord:
        (record,) = await self.append_many([event])
        return record

    async def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if not events:
            return []
        expected = self._last_head
        records = None
        if expected is not None:
            records = seal_all(events, expected)
            params = [records[-1].seq, records[-1].hash, expected.seq, expected.hash]
            async with self._db.connection() as conn, conn.cursor() as cur:
                await cur.execute(_insert_if_head_is(len(records)), params + _values(records))
                if cur.rowcount != len(records):
                    records = None  # another replica appended since: nothing was written
        if records is None:
            records = await self._append_locked(events)
        self._last_head = ChainHead(records[-1].seq, records[-1].hash)
        return records

    async def _append_locked(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        async with self._db.transaction() as cur:
            await cur.execute(_LOCK_HEAD)
            row = await cur.fetchone()
            assert row is not None  # the migration inserts the head row
            records = seal_all(events, ChainHead(int(row["seq"]), str(row["hash"])))
            params: list[object] = [records[-1].seq, records[-1].hash]
            await cur.execute(_insert_and_advance(len(records)), params + _values(records))
        return records

    async def records(
        self, *, after_seq: int = 0, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditRecord]:
        if since is None:
            rows = await self._db.fetch_all(_AFTER, (after_seq, limit))
        else:
            rows = await self._db.fetch_all(_AFTER_SINCE, (after_seq, since, limit))
        return [from_row(row) for row in rows]

    async def head(self) -> ChainHead:
        row = await self._db.fetch_one(_HEAD)
        assert row is not None  # the migration inserts the head row
        return ChainHead(int(row["seq"]), str(row["hash"]))


def _values(records: Sequence[AuditRecord]) -> list[object]:
    values: list[object] = []
    for record in records:
        row = to_row(record)
        values.extend(row[name] for name in COLUMNS)
    return values


__all__ = ["PostgresAuditLog"]
