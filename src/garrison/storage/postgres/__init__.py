"""The scale-out storage adapter: every repository, the checkpointer and the long-term
store on one PostgreSQL database, shared by many API replicas and workers.

The schema comes from `garrison migrate` (`migrate.migrate`); opening storage checks it
and never migrates by itself.
"""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore
from psycopg import sql

from garrison.security.api_rows import ROTATED_TABLES, ApiRowCipher, SealedTable, rewrapped
from garrison.security.at_rest import AtRestEncryption
from garrison.storage.audit_batching import GroupCommitAuditLog
from garrison.storage.postgres.api_keys import PostgresApiKeys
from garrison.storage.postgres.assistants import PostgresAssistants
from garrison.storage.postgres.audit import PostgresAuditLog
from garrison.storage.postgres.checkpointer import GarrisonPostgresSaver
from garrison.storage.postgres.crons import PostgresCrons
from garrison.storage.postgres.database import Cursor, PostgresDatabase
from garrison.storage.postgres.migrate import SchemaNotReadyError, migrate, require_schema
from garrison.storage.postgres.rows import nullable_jsonb
from garrison.storage.postgres.runs import PostgresRuns
from garrison.storage.postgres.store import GarrisonPostgresStore
from garrison.storage.postgres.threads import PostgresThreads


class PostgresStorage:
    """Implements `garrison.storage.ports.Storage`."""

    def __init__(
        self,
        db: PostgresDatabase,
        store: GarrisonPostgresStore,
        *,
        encryption: AtRestEncryption | None = None,
    ) -> None:
        self.db = db
        encryption = encryption or AtRestEncryption()
        self.api_rows = encryption.api_rows()  # seals the API tables' fields
        self.assistants = PostgresAssistants(db, self.api_rows)
        self.threads = PostgresThreads(db, self.api_rows)
        self.runs = PostgresRuns(db, self.api_rows)
        self.crons = PostgresCrons(db, self.api_rows)
        self.audit = GroupCommitAuditLog(PostgresAuditLog(db))
        self.api_keys = PostgresApiKeys(db)
        serde = encryption.serializer()  # strict mode: envelopes only
        self.checkpointer = GarrisonPostgresSaver(
            db, serde=serde, cipher=encryption.checkpoint_cipher()
        )
        self._store = store

    @property
    def store(self) -> BaseStore:
        return self._store

    @property
    def postgres_store(self) -> GarrisonPostgresStore:
        """The store with its PostgreSQL extras (TTL sweeps)."""
        return self._store

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_min_size: int = 2,
        pool_max_size: int = 20,
        connect_timeout_seconds: float = 5.0,
        store_index: dict[str, Any] | None = None,
        store_ttl: dict[str, Any] | None = None,
        encryption: AtRestEncryption | None = None,
    ) -> PostgresStorage:
        """Open the pool and check the schema. Raises UnavailableError when PostgreSQL
        cannot be reached, SchemaNotReadyError when `garrison migrate` must run first, and
        InvalidArgumentError when `store_index` is set and the server lacks pgvector."""
        db = await PostgresDatabase.open(
            url,
            min_size=pool_min_size,
            max_size=pool_max_size,
            connect_timeout_seconds=connect_timeout_seconds,
        )
        try:
            async with db.connection() as conn:
                await require_schema(conn, store_index)
            store = GarrisonPostgresStore(
                db,
                index=store_index,
                ttl=store_ttl,
                cipher=encryption.store_cipher() if encryption else None,
            )
        except BaseException:
            await db.close()
            raise
        return cls(db, store, encryption=encryption)

    async def arewrap_api_rows(self, batch_size: int) -> int:
        """Re-seal every API-table field under the active key, a batch of rows per
        transaction (`garrison keys rotate-data`); the number of rows rewritten."""
        changed = 0
        for spec in ROTATED_TABLES:
            after = ""
            while True:
                async with self.db.transaction() as cur:
                    count, last = await _rewrap_page(cur, self.api_rows, spec, after, batch_size)
                changed += count
                if last is None:
                    break
                after = last
        return changed

    async def start_background(self) -> None:
        if self._store.ttl_config:
            await self._store.start_ttl_sweeper()

    async def ping(self) -> None:
        await self.db.ping()

    def pool_stats(self) -> dict[str, int]:
        stats = self.db.stats()  # psycopg_pool's names
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        return {"in_use": max(0, size - idle), "idle": idle, "max": stats.get("pool_max", 0)}

    async def close(self) -> None:
        await self._store.stop_ttl_sweeper(timeout=1.0)
        await self.db.close()


async def _rewrap_page(
    cur: Cursor, cipher: ApiRowCipher, spec: SealedTable, after: str, limit: int
) -> tuple[int, str | None]:
    # Identifiers come from ROTATED_TABLES, never from a client.
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
    key, table = sql.Identifier(spec.key), sql.Identifier(spec.table)
    await cur.execute(
        sql.SQL(
            "SELECT {key} AS id, tenant_id, {columns} FROM {table} WHERE {key} > %s"
            " ORDER BY {key} LIMIT %s FOR UPDATE"
        ).format(key=key, columns=columns, table=table),
        (after, limit),
    )
    rows = await cur.fetchall()
    changed = 0
    for row in rows:
        changes = rewrapped(cipher, spec, row["tenant_id"], row["id"], dict(row))
        if changes:
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(c)) for c in changes
            )
            await cur.execute(
                sql.SQL("UPDATE {table} SET {assignments} WHERE {key} = %s").format(
                    table=table, assignments=assignments, key=key
                ),
                (*(nullable_jsonb(v) for v in changes.values()), row["id"]),
            )
            changed += 1
        if spec.table == "assistants":
            changed += await _rewrap_versions(cur, cipher, row["tenant_id"], row["id"])
    return changed, (rows[-1]["id"] if len(rows) == limit else None)


async def _rewrap_versions(
    cur: Cursor, cipher: ApiRowCipher, tenant_id: str | None, assistant_id: str
) -> int:
    await cur.execute(
        "SELECT version, metadata FROM assistant_versions WHERE assistant_id = %s FOR UPDATE",
        (assistant_id,),
    )
    changed = 0
    for row in await cur.fetchall():
        changes = rewrapped(cipher, ROTATED_TABLES[-1], tenant_id, assistant_id, dict(row))
        if changes:
            await cur.execute(
                "UPDATE assistant_versions SET metadata = %s"
                " WHERE assistant_id = %s AND version = %s",
                (nullable_jsonb(changes["metadata"]), assistant_id, row["version"]),
            )
            changed += 1
    return changed


__all__ = ["PostgresStorage", "SchemaNotReadyError", "migrate"]
