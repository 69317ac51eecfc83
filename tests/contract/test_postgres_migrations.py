"""`garrison migrate` on PostgreSQL: idempotent, safe when processes start together, and a
database migrated one release at a time ends with exactly the schema of a fresh one."""

import asyncio
import shutil
import subprocess

import psycopg
import pytest

from garrison.domain.errors import UnavailableError
from garrison.storage.postgres import PostgresStorage, SchemaNotReadyError
from garrison.storage.postgres.migrate import (
    LOCK_KEY,
    latest_version,
    migrate,
    migration_scripts,
)
from tests.contract.conftest import PostgresDatabases, open_postgres


def schema_of(url: str) -> str:
    """The whole schema as pg_dump prints it: tables, columns, defaults, constraints,
    indexes, extensions."""
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None, "pg_dump (postgresql-client) is needed to compare schemas"
    done = subprocess.run(
        [pg_dump, "--schema-only", "--no-owner", "--no-privileges", "--dbname", url],
        capture_output=True,
        text=True,
        check=True,
    )
    # pg_dump 15.14+ fences its output with a random \restrict key per dump.
    lines = done.stdout.splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))


async def recorded(url: str) -> list[tuple[int, str]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT version, name FROM garrison_migrations ORDER BY version")
        return [(row[0], row[1]) for row in await cur.fetchall()]


async def test_concurrent_and_repeated_runs_migrate_once(empty_postgres_url: str) -> None:
    results = await asyncio.gather(*(migrate(empty_postgres_url) for _ in range(6)))
    assert results == [latest_version()] * 6
    expected = [(m.version, m.name) for m in migration_scripts()]
    assert await recorded(empty_postgres_url) == expected
    schema = await asyncio.to_thread(schema_of, empty_postgres_url)

    assert await migrate(empty_postgres_url) == latest_version()  # a restart: nothing to do
    assert await recorded(empty_postgres_url) == expected
    assert await asyncio.to_thread(schema_of, empty_postgres_url) == schema


async def test_migrating_release_by_release_equals_a_fresh_schema(
    postgres_databases: PostgresDatabases,
) -> None:
    fresh, stepwise = postgres_databases.create(), postgres_databases.create()
    try:
        fresh_url, stepwise_url = (postgres_databases.url_for(n) for n in (fresh, stepwise))
        await migrate(fresh_url)
        for migration in migration_scripts():
            # An old database at each version in turn, upgraded by the next release.
            assert await migrate(stepwise_url, target=migration.version) == migration.version
            assert (await recorded(stepwise_url))[-1] == (migration.version, migration.name)
        fresh_schema = await asyncio.to_thread(schema_of, fresh_url)
        assert "runs_one_running_per_thread" in fresh_schema
        assert await asyncio.to_thread(schema_of, stepwise_url) == fresh_schema
    finally:
        postgres_databases.drop(fresh)
        postgres_databases.drop(stepwise)


async def test_migrate_waits_for_a_migration_in_progress(empty_postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(empty_postgres_url, autocommit=True) as other:
        await other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        waiting = asyncio.create_task(migrate(empty_postgres_url))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        with pytest.raises(UnavailableError, match="another process"):
            await migrate(empty_postgres_url, lock_timeout_seconds=0.2)
        await other.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        assert await asyncio.wait_for(waiting, 10) == latest_version()


async def test_opening_an_unmigrated_database_says_to_run_migrate(
    empty_postgres_url: str,
) -> None:
    with pytest.raises(SchemaNotReadyError, match=r"no Garrison schema.*garrison migrate"):
        await open_postgres(empty_postgres_url)


async def test_opening_a_database_behind_this_release_says_to_run_migrate(
    empty_postgres_url: str,
) -> None:
    await migrate(empty_postgres_url, target=latest_version() - 1)
    with pytest.raises(SchemaNotReadyError) as raised:
        await open_postgres(empty_postgres_url)
    assert f"version {latest_version() - 1}, this release needs {latest_version()}" in str(
        raised.value
    )
    assert isinstance(raised.value, UnavailableError)  # a 503 if it ever reached a client
    await migrate(empty_postgres_url)
    storage = await open_postgres(empty_postgres_url)
    await storage.close()


async def test_opening_without_langgraph_tables_says_to_run_migrate(postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute("DELETE FROM checkpoint_migrations WHERE v > 3")
    with pytest.raises(SchemaNotReadyError, match="LangGraph's checkpoints tables"):
        await PostgresStorage.open(
            postgres_url, pool_min_size=0, pool_max_size=2, connect_timeout_seconds=5
        )


async def test_an_unreachable_server_is_unavailable() -> None:
    url = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1
    with pytest.raises(UnavailableError):
        await PostgresStorage.open(
            url, pool_min_size=1, pool_max_size=1, connect_timeout_seconds=0.5
        )
    with pytest.raises(UnavailableError):
        await migrate(url, connect_timeout_seconds=0.5)
