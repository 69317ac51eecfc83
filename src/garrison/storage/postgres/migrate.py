"""`garrison migrate`: bring a PostgreSQL database to the schema this release needs.

One migration run, in order, under a session advisory lock (so processes starting together
migrate one after the other and the later ones find nothing left to do):
1. LangGraph's own migrations: the checkpointer's and the store's `setup()`, and the
   store's vector migrations when `store.index` is configured (pgvector);
2. Garrison's versioned scripts (`migrations/NNNN_name.sql`), each in one transaction with
   its row in `garrison_migrations`. Scripts are never edited once released; a change is a
   new script.

Waiting processes poll `pg_try_advisory_lock` instead of blocking in `pg_advisory_lock`: a
blocked statement holds a snapshot, and LangGraph's `CREATE INDEX CONCURRENTLY` migrations
wait for every older snapshot, which would deadlock with the waiter.

Opening storage never migrates; `require_schema` tells the operator to run the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row

from garrison.domain.errors import UnavailableError
from garrison.storage.postgres.database import Connection, connect_timeout, unavailable_on_failure
from garrison.storage.postgres.store import index_config, require_pgvector

logger = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "garrison.storage.postgres.migrations"
# pg_advisory_lock key of `garrison migrate`: the bytes of "garrison" as a bigint.
LOCK_KEY = int.from_bytes(b"garrison", "big")

_TRY_LOCK = "SELECT pg_try_advisory_lock(%s) AS locked"
_UNLOCK = "SELECT pg_advisory_unlock(%s)"
_CREATE_VERSIONS = """
CREATE TABLE IF NOT EXISTS garrison_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_APPLIED = "SELECT version FROM garrison_migrations"
_RECORD = "INSERT INTO garrison_migrations (version, name) VALUES (%s, %s)"
_TABLES = """
SELECT to_regclass('garrison_migrations') IS NOT NULL AS garrison,
       to_regclass('checkpoint_migrations') IS NOT NULL AS checkpoints,
       to_regclass('store_migrations') IS NOT NULL AS store,
       to_regclass('vector_migrations') IS NOT NULL AS vectors
"""
_GARRISON_VERSION = "SELECT COALESCE(max(version), 0) AS v FROM garrison_migrations"
_CHECKPOINT_VERSION = "SELECT COALESCE(max(v), -1) AS v FROM checkpoint_migrations"
_STORE_VERSION = "SELECT COALESCE(max(v), -1) AS v FROM store_migrations"
_VECTOR_VERSION = "SELECT COALESCE(max(v), -1) AS v FROM vector_migrations"
_VECTOR_TYPE = """
SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute
WHERE attrelid = to_regclass('store_vectors') AND attname = 'embedding'
"""


class SchemaNotReadyError(UnavailableError):
    """The database's schema is missing or older than this release needs."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migration_scripts() -> list[Migration]:
    """Every bundled migration, in version order."""
    scripts = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version, name = entry.name.removesuffix(".sql").split("_", 1)
            scripts.append(Migration(int(version), name, entry.read_text(encoding="utf-8")))
    return sorted(scripts, key=lambda m: m.version)


def latest_version() -> int:
    return migration_scripts()[-1].version


async def migrate(
    url: str,
    *,
    store_index: dict[str, Any] | None = None,
    target: int | None = None,
    lock_timeout_seconds: float = 600.0,
    connect_timeout_seconds: float = 10.0,
) -> int:
    """Apply every pending migration (Garrison's up to `target`, default all); idempotent
    and safe when several processes run it at once. Returns Garrison's schema version.

    `store_index` is the `store.index` configuration: its `dims` fix the vector column.
    """
    async with unavailable_on_failure():
        conn: Connection = await AsyncConnection.connect(
            url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=connect_timeout(connect_timeout_seconds),
        )
    async with conn:
        if store_index:
            await require_pgvector(conn)
        await _lock(conn, lock_timeout_seconds)
        try:
            await setup_langgraph(conn, store_index)
            return await apply_migrations(conn, target)
        finally:
            # Closing the connection releases the lock anyway; never mask the real error.
            with contextlib.suppress(psycopg.Error):
                await conn.execute(_UNLOCK, (LOCK_KEY,))


async def _lock(conn: Connection, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    delay = 0.05
    while True:
        row = await (await conn.execute(_TRY_LOCK, (LOCK_KEY,))).fetchone()
        if row is not None and row["locked"]:
            return
        if time.monotonic() >= deadline:
            raise UnavailableError(
                f"another process has been migrating the database for over "
                f"{timeout_seconds:.0f} s; try again when it is done"
            )
        logger.info("waiting for another process to finish migrating the database")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def setup_langgraph(conn: Connection, store_index: dict[str, Any] | None) -> None:
    """LangGraph's own migrations (idempotent; they record their versions themselves).
    They need an autocommit connection: some create indexes CONCURRENTLY."""
    await AsyncPostgresSaver(conn).setup()
    await AsyncPostgresStore(conn, index=index_config(store_index)).setup()


async def apply_migrations(conn: Connection, target: int | None = None) -> int:
    """Apply Garrison's pending scripts up to `target`, each in its own transaction."""
    await conn.execute(_CREATE_VERSIONS)
    applied = {row["version"] for row in await (await conn.execute(_APPLIED)).fetchall()}
    for migration in migration_scripts():
        if target is not None and migration.version > target:
            break
        if migration.version in applied:
            continue
        async with conn.transaction():
            # A script is several statements: sent unprepared, in one simple query.
            await conn.execute(migration.sql.encode(), prepare=False)
            await conn.execute(_RECORD, (migration.version, migration.name))
        logger.info("applied migration %04d_%s", migration.version, migration.name)
        applied.add(migration.version)
    return max(applied, default=0)


async def _scalar(conn: Connection, query: str) -> Any:
    row: DictRow | None = await (await conn.execute(query)).fetchone()
    return None if row is None else row["v"]


async def schema_problems(conn: Connection, store_index: dict[str, Any] | None) -> list[str]:
    """What keeps this release from running on the database, as sentences."""
    tables = await (await conn.execute(_TABLES)).fetchone()
    assert tables is not None  # a SELECT without FROM returns its one row
    if not tables["garrison"]:
        return ["the database has no Garrison schema"]
    problems = []
    current, needed = await _scalar(conn, _GARRISON_VERSION), latest_version()
    if current < needed:
        problems.append(f"its schema is at version {current}, this release needs {needed}")
    elif current > needed:
        # Migrations only add (expand first, contract in a later release), so an older
        # replica keeps working while a newer one rolls out.
        logger.warning(
            "database schema version %s is newer than this release's %s", current, needed
        )
    langgraph = [
        ("checkpoints", _CHECKPOINT_VERSION, len(AsyncPostgresSaver.MIGRATIONS) - 1),
        ("store", _STORE_VERSION, len(AsyncPostgresStore.MIGRATIONS) - 1),
    ]
    if store_index:
        langgraph.append(
            ("vectors", _VECTOR_VERSION, len(AsyncPostgresStore.VECTOR_MIGRATIONS) - 1)
        )
    for table, query, wanted in langgraph:
        if not tables[table] or await _scalar(conn, query) < wanted:
            problems.append(f"LangGraph's {table} tables are missing or out of date")
    if store_index and not problems:
        problem = await _vector_type_problem(conn, store_index)
        if problem:
            problems.append(problem)
    return problems


async def _vector_type_problem(conn: Connection, store_index: dict[str, Any]) -> str | None:
    row = await (await conn.execute(_VECTOR_TYPE)).fetchone()
    return vector_type_mismatch(None if row is None else row["type"], store_index)


def vector_type_mismatch(actual: str | None, store_index: dict[str, Any]) -> str | None:
    """Why the store's vector column (`vector(64)`...) cannot serve `store_index`, if so."""
    ann = store_index.get("ann_index_config") or {}
    wanted = f"{ann.get('vector_type', 'vector')}({int(store_index['dims'])})"
    if actual is None or actual == wanted:
        return None
    return (
        f"the store's vectors are {actual} but store.index asks for {wanted}; changing "
        "dims needs the store_vectors table rebuilt (drop it and its vector_migrations rows, "
        "then run `garrison migrate` and re-put the items)"
    )


async def require_schema(conn: Connection, store_index: dict[str, Any] | None) -> None:
    """Raise unless the database is ready for this release: InvalidArgumentError when
    `store.index` is configured and pgvector is missing, SchemaNotReadyError (naming
    `garrison migrate`) when the schema is missing or behind."""
    if store_index:
        await require_pgvector(conn)
    problems = await schema_problems(conn, store_index)
    if problems:
        raise SchemaNotReadyError(
            f"PostgreSQL is not ready for this Garrison release: {'; '.join(problems)}. "
            "Run `garrison migrate` (once, before starting the servers)."
        )


__all__ = [
    "LOCK_KEY",
    "Migration",
    "SchemaNotReadyError",
    "apply_migrations",
    "latest_version",
    "migrate",
    "migration_scripts",
    "require_schema",
    "schema_problems",
    "setup_langgraph",
    "vector_type_mismatch",
]
