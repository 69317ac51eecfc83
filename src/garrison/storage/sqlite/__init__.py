"""The embedded storage adapter: every repository, the checkpointer and the long-term store
in one SQLite file."""

import sqlite3
from pathlib import Path
from typing import Any, cast

from langgraph.store.base import BaseStore, IndexConfig, TTLConfig

from garrison.security.api_rows import ROTATED_TABLES, SealedTable, rewrapped
from garrison.security.at_rest import AtRestEncryption
from garrison.storage.audit_batching import GroupCommitAuditLog
from garrison.storage.sqlite.api_keys import SqliteApiKeys
from garrison.storage.sqlite.assistants import SqliteAssistants
from garrison.storage.sqlite.audit import SqliteAuditLog
from garrison.storage.sqlite.checkpointer import GarrisonSqliteSaver
from garrison.storage.sqlite.crons import SqliteCrons
from garrison.storage.sqlite.database import SqliteDatabase, connect_autocommit
from garrison.storage.sqlite.rows import fetch_all, json_text, json_value
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
        encryption = encryption or AtRestEncryption()
        self.api_rows = encryption.api_rows()  # seals the API tables' fields
        self.assistants = SqliteAssistants(db, self.api_rows)
        self.threads = SqliteThreads(db, self.api_rows)
        self.runs = SqliteRuns(db, self.api_rows)
        self.crons = SqliteCrons(db, self.api_rows)
        self.audit = GroupCommitAuditLog(SqliteAuditLog(db))
        self.api_keys = SqliteApiKeys(db)
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

    async def arewrap_api_rows(self, batch_size: int) -> int:
        """Re-seal every API-table field under the active key, a batch of rows per
        transaction (`garrison keys rotate-data`); the number of rows rewritten."""
        changed = 0
        for spec in ROTATED_TABLES:
            after = ""
            while True:
                count, last = await self.db.transaction(_rewrap_page, self, spec, after, batch_size)
                changed += count
                if last is None:
                    break
                after = last
        return changed

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


def _rewrap_page(
    conn: sqlite3.Connection, storage: SqliteStorage, spec: SealedTable, after: str, limit: int
) -> tuple[int, str | None]:
    columns = ", ".join(f'"{c}"' for c in spec.columns)
    rows = fetch_all(
        conn,
        f'SELECT "{spec.key}" AS id, tenant_id, {columns} FROM {spec.table}'
        f' WHERE "{spec.key}" > ? ORDER BY "{spec.key}" LIMIT ?',
        (after, limit),
    )
    changed = 0
    for row in rows:
        stored = {c: json_value(row[c]) for c in spec.columns}
        changes = rewrapped(storage.api_rows, spec, row["tenant_id"], row["id"], stored)
        if changes:
            assignments = ", ".join(f'"{c}" = ?' for c in changes)
            values = [json_text(v) if v is not None else None for v in changes.values()]
            conn.execute(
                f'UPDATE {spec.table} SET {assignments} WHERE "{spec.key}" = ?',
                (*values, row["id"]),
            )
            changed += 1
        if spec.table == "assistants":
            changed += _rewrap_versions(conn, storage, row["tenant_id"], row["id"])
    return changed, (rows[-1]["id"] if len(rows) == limit else None)


def _rewrap_versions(
    conn: sqlite3.Connection, storage: SqliteStorage, tenant_id: str | None, assistant_id: str
) -> int:
    spec = ROTATED_TABLES[-1]
    changed = 0
    for row in fetch_all(
        conn,
        "SELECT version, metadata FROM assistant_versions WHERE assistant_id = ?",
        (assistant_id,),
    ):
        stored = {"metadata": json_value(row["metadata"])}
        changes = rewrapped(storage.api_rows, spec, tenant_id, assistant_id, stored)
        if changes:
            conn.execute(
                "UPDATE assistant_versions SET metadata = ? WHERE assistant_id = ? AND version = ?",
                (json_text(changes["metadata"]), assistant_id, row["version"]),
            )
            changed += 1
    return changed


__all__ = ["SqliteStorage"]
