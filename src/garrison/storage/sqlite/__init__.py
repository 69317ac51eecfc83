"""The embedded storage adapter: every repository, the checkpointer and the long-term store
in one SQLite file."""

from pathlib import Path
from typing import Any, cast

from langgraph.store.base import BaseStore, IndexConfig, TTLConfig

from garrison.security.at_rest import AtRestEncryption
from garrison.storage.sqlite.api_keys import SqliteApiKeys
from garrison.storage.sqlite.assistants import SqliteAssistants
from garrison.storage.sqlite.audit import SqliteAuditLog
from garrison.storage.sqlite.checkpointer import GarrisonSqliteSaver
from garrison.storage.sqlite.crons import SqliteCrons
from garrison.storage.sqlite.database import SqliteDatabase, connect_autocommit
from garrison.storage.sqlite.runs import SqliteRuns
from garrison.storage.sqlite.store import GarrisonSqliteStore
from garrison.storage.sqlite.threads import SqliteThreads


class SqliteStorage:
    """Implements `garrison.storage.ports.Storage`."""

    def __init__(
        self,
        db: SqliteDatabase,
        store: GarrisonSqliteStore,
        *,
        encryption: AtRestEncryption | None = None,
    ) -> None:
        self.db = db
        self._store_conn = store.conn
        self.assistants = SqliteAssistants(db)
        self.threads = SqliteThreads(db)
        self.runs = SqliteRuns(db)
        self.crons = SqliteCrons(db)
        self.audit = SqliteAuditLog(db)
        self.api_keys = SqliteApiKeys(db)
        encryption = encryption or AtRestEncryption()
        serde = encryption.serializer()  # strict mode: envelopes only
        self.checkpointer = GarrisonSqliteSaver(
            db, serde=serde, cipher=encryption.checkpoint_cipher()
        )
        self._store = store

    @property
    def store(self) -> BaseStore:
        return self._store

    @property
    def sqlite_store(self) -> GarrisonSqliteStore:
        """The store with its SQLite-only extras (vector counts, TTL sweeps)."""
        return self._store

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        busy_timeout_ms: int = 5000,
        store_index: dict[str, Any] | None = None,
        store_ttl: dict[str, Any] | None = None,
        encryption: AtRestEncryption | None = None,
    ) -> "SqliteStorage":
        db = await SqliteDatabase.open(path, busy_timeout_ms=busy_timeout_ms)
        # The official AsyncSqliteStore's `index` needs the sqlite-vec extension, which many
        # Python builds cannot load; GarrisonSqliteStore indexes vectors portably instead.
        # Its transactions span several round trips, so it gets its own connection.
        store = GarrisonSqliteStore(
            await connect_autocommit(path, busy_timeout_ms=busy_timeout_ms),
            index=cast(IndexConfig, store_index) if store_index else None,
            ttl=cast(TTLConfig, store_ttl) if store_ttl else None,
            cipher=encryption.store_cipher() if encryption else None,
        )
        storage = cls(db, store, encryption=encryption)
        await storage.checkpointer.setup()
        await store.setup()
        return storage

    async def schema_version(self) -> int:
        row = await self.db.read(
            lambda conn: conn.execute("SELECT MAX(version) FROM garrison_migrations").fetchone()
        )
        return int(row[0])

    async def start_background(self) -> None:
        if self._store.ttl_config:
            await self._store.start_ttl_sweeper()

    async def ping(self) -> None:
        await self.db.ping()

    def pool_stats(self) -> None:
        return None  # one file, a connection per use: nothing to exhaust

    async def close(self) -> None:
        await self._store.stop_ttl_sweeper(timeout=1.0)
        await self._store_conn.close()
        await self.db.close()


__all__ = ["SqliteStorage"]
