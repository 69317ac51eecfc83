"""The audit log on PostgreSQL.

A batch of appends is one transaction: lock the chain head (`FOR UPDATE`), then insert the
sealed records and advance the head in one statement. Replicas appending at once queue on
that row lock, so each record links to the one committed just before it.
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


def _insert_and_advance(count: int) -> str:
    """One statement for a whole group: advance the head to the last record and insert
    them all (the head is locked, so nothing can slip in between)."""
    return (
        "WITH advanced AS (UPDATE audit_chain_head SET seq = %s, hash = %s WHERE id) "
        f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES {', '.join([_ROW] * count)}"
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

    async def append(self, event: AuditEvent) -> AuditRecord:
        (record,) = await self.append_many([event])
        return record

    async def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if not events:
            return []
        async with self._db.transaction() as cur:
            await cur.execute(_LOCK_HEAD)
            row = await cur.fetchone()
            assert row is not None  # the migration inserts the head row
            records = seal_all(events, ChainHead(int(row["seq"]), str(row["hash"])))
            params: list[object] = [records[-1].seq, records[-1].hash]
            for record in records:
                row = to_row(record)
                params.extend(row[name] for name in COLUMNS)
            await cur.execute(_insert_and_advance(len(records)), params)
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


__all__ = ["PostgresAuditLog"]
