"""The audit log on PostgreSQL.

An append is one transaction: lock the chain head (`FOR UPDATE`), then insert the sealed
record and advance the head in one statement. Replicas appending at once queue on that row
lock, so each record links to the one committed just before it.
"""

from datetime import datetime

from garrison.security.audit import (
    COLUMNS,
    AuditEvent,
    AuditRecord,
    ChainHead,
    from_row,
    seal,
    to_row,
)
from garrison.storage.postgres.database import PostgresDatabase

_LOCK_HEAD = "SELECT seq, hash FROM audit_chain_head WHERE id FOR UPDATE"
_HEAD = "SELECT seq, hash FROM audit_chain_head WHERE id"
_INSERT = (
    "WITH advanced AS (UPDATE audit_chain_head SET seq = %(seq)s, hash = %(hash)s WHERE id) "
    f"INSERT INTO audit_log ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'%({name})s' for name in COLUMNS)})"
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
        async with self._db.transaction() as cur:
            await cur.execute(_LOCK_HEAD)
            row = await cur.fetchone()
            assert row is not None  # the migration inserts the head row
            record = seal(event, ChainHead(int(row["seq"]), str(row["hash"])))
            await cur.execute(_INSERT, to_row(record))
        return record

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
