"""The shared SQLite connection: migrations, transactions, their order and durability."""

import asyncio
import errno
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from garrison.domain.errors import UnavailableError
from garrison.storage.sqlite.database import SqliteDatabase, apply_migrations, migration_scripts


def _synchronous(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


def _record(version: int) -> Callable[[sqlite3.Connection], None]:
    def insert(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO garrison_migrations (version) VALUES (?)", (version,))

    return insert


def _recorded(conn: sqlite3.Connection) -> list[int]:
    rows = conn.execute("SELECT version FROM garrison_migrations WHERE version >= 1000")
    return sorted(version for (version,) in rows)


class _LogSyncs:
    """Wraps os.fsync: the real sync still happens; the test sees which files were synced,
    and can make the next syncs fail."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.failure: OSError | None = None
        self._real = os.fsync

    def __call__(self, descriptor: int) -> None:
        self.paths.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        if self.failure is not None:
            raise self.failure
        self._real(descriptor)

    def of(self, database: Path) -> int:
        """Syncs of the write-ahead log of the database file at `database`."""
        return self.paths.count(f"{database}-wal")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = await SqliteDatabase.open(db_path)
    yield database
    await database.close()


@pytest.fixture
def log_syncs(monkeypatch: pytest.MonkeyPatch) -> _LogSyncs:
    syncs = _LogSyncs()
    monkeypatch.setattr(os, "fsync", syncs)
    return syncs


class _Held:
    """Holds the connection's thread inside one unit, so that the units queued meanwhile
    run as one batch when it lets go."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._started, self._release = threading.Event(), threading.Event()

    async def __aenter__(self) -> None:
        self._unit = asyncio.ensure_future(self._db.read(self._hold))
        assert await asyncio.to_thread(self._started.wait, 5)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0)  # every task started inside the block queues its unit
        self._release.set()
        await self._unit

    def _hold(self, conn: sqlite3.Connection) -> None:
        self._started.set()
        self._release.wait(5)


async def test_a_durable_transaction_returns_after_the_log_is_synced(
    db: SqliteDatabase, db_path: Path, log_syncs: _LogSyncs
) -> None:
    await db.transaction(_record(1000))
    assert log_syncs.of(db_path) == 0  # NORMAL: a process crash keeps it, no sync needed
    await db.transaction(_record(1001), durable=True)
    assert log_syncs.of(db_path) == 1
    assert await db.read(_synchronous) == 1  # commits stay NORMAL; the sync is ours
    assert await db.read(_recorded) == [1000, 1001]


async def test_durable_transactions_queued_together_share_one_log_sync(
    db: SqliteDatabase, db_path: Path, log_syncs: _LogSyncs
) -> None:
    async with _Held(db):
        writes = [
            asyncio.ensure_future(db.transaction(_record(1000 + i), durable=True))
            for i in range(20)
        ]
    await asyncio.gather(*writes)
    assert log_syncs.of(db_path) == 1
    assert await db.read(_recorded) == list(range(1000, 1020))


async def test_a_failed_log_sync_fails_the_durable_units_only(
    db: SqliteDatabase, db_path: Path, log_syncs: _LogSyncs
) -> None:
    log_syncs.failure = OSError(errno.EIO, "Input/output error")
    async with _Held(db):
        durable = asyncio.ensure_future(db.transaction(_record(1000), durable=True))
        plain = asyncio.ensure_future(db.transaction(_record(1001)))
    with pytest.raises(UnavailableError):
        await durable
    await plain


async def test_a_failing_unit_rolls_back_alone_within_its_batch(db: SqliteDatabase) -> None:
    def fail(conn: sqlite3.Connection) -> None:
        _record(1001)(conn)
        raise RuntimeError("boom")

    async with _Held(db):
        before = asyncio.ensure_future(db.transaction(_record(1000), durable=True))
        failing = asyncio.ensure_future(db.transaction(fail, durable=True))
        after = asyncio.ensure_future(db.transaction(_record(1002)))
    await before
    with pytest.raises(RuntimeError, match="boom"):
        await failing
    await after
    assert await db.read(_recorded) == [1000, 1002]


async def test_units_run_in_the_order_they_were_queued(db: SqliteDatabase) -> None:
    order: list[int] = []

    def note(conn: sqlite3.Connection, index: int) -> None:
        order.append(index)

    await asyncio.gather(*(db.read(note, index) for index in range(200)))
    assert order == list(range(200))


async def test_without_a_write_ahead_log_durable_transactions_sync_fully() -> None:
    db = await SqliteDatabase.open(":memory:")
    try:
        assert await db.transaction(_synchronous, durable=True) == 2  # FULL while it commits
        assert await db.read(_synchronous) == 1  # NORMAL for everything else
    finally:
        await db.close()


def test_migrations_are_ordered_idempotent_and_recorded(tmp_path: Path) -> None:
    versions = [version for version, _ in migration_scripts()]
    assert versions == sorted(versions) and versions[0] == 1
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    try:
        assert apply_migrations(conn) == versions[-1]
        schema = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        assert apply_migrations(conn) == versions[-1]  # a second start changes nothing
        assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
    finally:
        conn.close()


def test_migrating_step_by_step_equals_a_fresh_schema(tmp_path: Path) -> None:
    fresh = sqlite3.connect(tmp_path / "fresh.sqlite")
    stepwise = sqlite3.connect(tmp_path / "stepwise.sqlite")
    try:
        apply_migrations(fresh)
        scripts = migration_scripts()
        # an old database at version 1, upgraded later by a newer release
        stepwise.execute(
            "CREATE TABLE garrison_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        stepwise.executescript(scripts[0][1])
        stepwise.execute("INSERT INTO garrison_migrations (version) VALUES (1)")
        stepwise.commit()
        apply_migrations(stepwise)

        def schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
            ).fetchall()

        assert schema(stepwise) == schema(fresh)
    finally:
        fresh.close()
        stepwise.close()


def test_a_skipped_middle_migration_is_applied_later(tmp_path: Path) -> None:
    """A database migrated by a build that lacked a middle migration (a branch that added
    version 4 before version 3 existed) gets version 3 on the next start."""
    conn = sqlite3.connect(tmp_path / "gap.sqlite")
    try:
        apply_migrations(conn)
        scripts = dict(migration_scripts())
        middle = sorted(scripts)[-2]
        created = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name.lower() in scripts[middle].lower()
        ]
        assert created, "the middle migration should create at least one table"
        for table in created:
            conn.execute(f'DROP TABLE "{table}"')
        conn.execute("DELETE FROM garrison_migrations WHERE version = ?", (middle,))
        conn.commit()
        assert apply_migrations(conn) == max(scripts)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert set(created) <= tables
    finally:
        conn.close()
