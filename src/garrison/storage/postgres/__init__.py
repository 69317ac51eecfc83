"""The scale-out storage adapter: every repository, the checkpointer and the long-term
store on one PostgreSQL database, shared by many API replicas and workers.

The schema comes from `garrison migrate` (`migrate.migrate`); opening storage checks it
and never migrates by itself.
"""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore

from garrison.security.at_rest import AtRestEncryption
from garrison.storage.postgres.api_keys import PostgresApiKeys
from garrison.storage.postgres.assistants import PostgresAssistants
from garrison.storage.postgres.audit import PostgresAuditLog
from garrison.storage.postgres.checkpointer import GarrisonPostgresSaver
from garrison.storage.postgres.crons import PostgresCrons
from garrison.storage.postgres.database import PostgresDatabase
from garrison.storage.postgres.migrate import SchemaNotReadyError, migrate, require_schema
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
        self.assistants = PostgresAssistants(db)
        self.threads = PostgresThreads(db)
        self.runs = PostgresRuns(db)
        self.crons = PostgresCrons(db)
        self.audit = PostgresAuditLog(db)
        self.api_keys = PostgresApiKeys(db)
        encryption = encryption or AtRestEncryption()
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


__all__ = ["PostgresStorage", "SchemaNotReadyError", "migrate"]
