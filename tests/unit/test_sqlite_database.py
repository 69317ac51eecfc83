"""The shared SQLite connection: migrations, transactions and durability modes."""

import sqlite3
from pathlib import Path

import pytest

from garrison.storage.sqlite.database import SqliteDatabase, apply_migrations, migration_scripts


def _synchronous(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


async def test_durable_transactions_sync_fully_then_restore_normal(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "db.sqlite")
    try:
        seen = await db.transaction(_synchronous, durable=True)
        assert seen == 2  # FULL while the durable transaction commits
        assert await db.read(_synchronous) == 1  # NORMAL for everything else

        def fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO garrison_migrations (version) VALUES (999)")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await db.transaction(fail, durable=True)
        assert await db.read(_synchronous) == 1
        rows = await db.read(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM garrison_migrations WHERE version = 999"
            ).fetchone()
        )
        assert rows == (0,)  # rolled back
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
