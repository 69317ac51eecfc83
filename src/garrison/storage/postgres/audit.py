"""The audit log on PostgreSQL.

A batch of appends is one transaction: lock the chain head (`FOR UPDATE`), insert the sealed
records (pipelined) and advance the head. Replicas appending at once queue on that row lock,
so each record links to the one committed just before it.
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
_INSERT = (
    f"INSERT INTO audit_log ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'%({name})s' for name in COLUMNS)})"
)
_ADVANCE = "UPDATE audit_chain_head SET seq = %s, hash = %s WHERE id"
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
            await cur.executemany(_INSERT, [to_row(record) for record in records])
            await cur.execute(_ADVANCE, (records[-1].seq, records[-1].hash))
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
