"""One SQLite connection shared by Garrison's tables and the checkpointer.

SQLite has a single writer. Every unit of work (a Garrison transaction, a checkpointer
operation) is one synchronous function that runs to completion on the connection's thread
(`ConnectionThread`), queued first-in first-out, so units never interleave and need no
lock. (An asyncio lock held across round trips to the event loop serialised the whole
server at event-loop speed under load; measured, it capped throughput near 125 runs/s.)
Units share the connection instead of colliding on SQLite's file lock, where the busy
handler would sleep whole milliseconds. The long-term store, whose official implementation
spans several round trips per transaction, has a connection of its own.
"""

import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from garrison import serde
from garrison.domain.errors import UnavailableError
from garrison.domain.jsonfilter import json_contains
from garrison.storage.sqlite.connection_thread import ConnectionThread

T = TypeVar("T")

MIGRATIONS_PACKAGE = "garrison.storage.sqlite.migrations"


def _json_contains_sql(document: str | None, pattern: str | None) -> int:
    if document is None or pattern is None:
        return 0
    return int(json_contains(serde.loads(document), serde.loads(pattern)))


def migration_scripts() -> list[tuple[int, str]]:
    """(version, sql) for every bundled migration, in order."""
    scripts = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            scripts.append((version, entry.read_text(encoding="utf-8")))
    return sorted(scripts)


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction; returns the schema version."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS garrison_migrations "
        "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    conn.commit()
    # Every version not yet applied, not only those above the highest: a database migrated
    # by a build that lacked a middle migration still gets it.
    applied = {row[0] for row in conn.execute("SELECT version FROM garrison_migrations")}
    for version, script in migration_scripts():
        if version in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript would COMMIT first; run statements one by one inside our BEGIN.
            for statement in _split_statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO garrison_migrations (version) VALUES (?)", (version,))
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        applied.add(version)
    return max(applied, default=0)


def _split_statements(script: str) -> list[str]:
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


class SqliteDatabase:
    """The shared connection, and helpers to run units of work on it."""

    def __init__(self, thread: ConnectionThread, conn: sqlite3.Connection) -> None:
        self._thread = thread
        self._conn = conn
        # Whether durable units are group-committed (one log sync per batch, see
        # ConnectionThread) rather than committed with synchronous=FULL one by one.
        self._group_sync = False

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout_ms: int = 5000) -> "SqliteDatabase":
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # The connection is only ever used on its thread; it is made here so that opening
        # a bad path fails the caller directly.
        conn = sqlite3.connect(str(path), check_same_thread=False)
        thread = ConnectionThread(conn)
        db = cls(thread, conn)
        try:
            log_path = await db._call(db._configure, busy_timeout_ms)
        except BaseException:
            await thread.stop()
            raise
        if log_path is not None:
            thread.sync_log_at(log_path)
            db._group_sync = True
        return db

    @staticmethod
    def _configure(conn: sqlite3.Connection, busy_timeout_ms: int) -> str | None:
        """Configure the connection and migrate; returns the write-ahead log's path, or
        None when the database has no log (in memory, or WAL unsupported)."""
        journal_mode: str = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        database_file: str = conn.execute("PRAGMA database_list").fetchone()[2]
        # NORMAL in WAL mode survives process crashes (kill -9); only an OS crash or power
        # loss can drop the last commits. Accepting a run syncs the log (durable=True).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.create_function("json_contains", 2, _json_contains_sql, deterministic=True)
        apply_migrations(conn)
        if journal_mode.lower() != "wal" or not database_file:
            return None
        return f"{database_file}-wal"

    async def _call(self, fn: Callable[..., T], *args: Any, durable: bool = False) -> T:
        try:
            result: T = await self._thread.submit(fn, args, durable=durable)
        except sqlite3.OperationalError as exc:
            if _is_unavailable(exc):
                raise UnavailableError("database is unavailable") from exc
            raise
        return result

    async def transaction(self, fn: Callable[..., T], *args: Any, durable: bool = False) -> T:
        """Run `fn(conn, *args)` in one write transaction (BEGIN IMMEDIATE ... COMMIT).

        `durable` returns only once the transaction (and every commit before it in the log)
        survives an OS crash or power loss, not only a process crash.
        """
        if durable and not self._group_sync:
            return await self._call(_in_durable_transaction, fn, *args)
        return await self._call(_in_transaction, fn, *args, durable=durable)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` outside an explicit transaction: read-only work, or work
        that manages its own commits (the checkpointer's)."""
        return await self._call(fn, *args)

    @property
    def sqlite_connection(self) -> sqlite3.Connection:
        """The connection itself, for code that runs on its thread through `read` or
        `transaction` (never call it from the event loop)."""
        return self._conn

    async def ping(self) -> None:
        await self.read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self._thread.stop()


async def connect_autocommit(path: Path | str, *, busy_timeout_ms: int) -> aiosqlite.Connection:
    """A second connection to the same file, in autocommit mode, for code that manages its
    own BEGIN/COMMIT across several round trips (the official long-term store)."""
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _in_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return result


def _in_durable_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    conn.execute("PRAGMA synchronous=FULL")
    try:
        return _in_transaction(conn, fn, *args)
    finally:
        conn.execute("PRAGMA synchronous=NORMAL")


def _is_unavailable(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "unable to open" in message or "disk i/o" in message or "locked" in message
