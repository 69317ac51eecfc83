"""How Garrison's pool treats its PostgreSQL connections: a connection is checked on
checkout only after it sat idle, and run creation asks for a durable commit exactly on
sessions that start with synchronous_commit off."""

import asyncio

import psycopg
import pytest

from garrison.security.api_rows import ApiRowCipher
from garrison.storage.postgres import PostgresStorage
from garrison.storage.postgres.database import _IdleConnectionCheck, commits_lazily
from garrison.storage.postgres.runs import _create
from tests.contract.conftest import open_postgres
from tests.contract.factories import TENANT, make_thread, new_run


async def _kill_backend(url: str, pid: int) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_a_recently_returned_connection_is_handed_out_unchecked(postgres_url: str) -> None:
    check = _IdleConnectionCheck(idle_after_seconds=0.2)
    conn = await psycopg.AsyncConnection.connect(postgres_url, autocommit=True)
    try:
        await check.check(conn)  # never returned before: checked, and it works
        await check.returned(conn)
        await _kill_backend(postgres_url, conn.info.backend_pid)
        await check.check(conn)  # back moments ago: no round trip, so nothing notices
        await check.returned(conn)
        await asyncio.sleep(0.3)
        with pytest.raises(psycopg.OperationalError):
            await check.check(conn)  # idle long enough: checked, and found dead
    finally:
        await conn.close()


@pytest.mark.parametrize("setting", ["off", "on"])
async def test_run_creation_commits_durably_where_sessions_commit_lazily(
    postgres_url: str, setting: str
) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        database = admin.info.dbname
        await admin.execute(
            psycopg.sql.SQL("ALTER DATABASE {} SET synchronous_commit = {}").format(
                psycopg.sql.Identifier(database), psycopg.sql.Literal(setting)
            )
        )
    storage = await open_postgres(postgres_url)
    try:
        assert isinstance(storage, PostgresStorage)
        thread = await make_thread(storage)
        async with storage.db.transaction() as cur:
            assert commits_lazily(cur.connection) is (setting == "off")
            await _create(cur, TENANT, "owner", new_run(thread.thread_id), False, ApiRowCipher())
            await cur.execute("SELECT current_setting('synchronous_commit') AS s")
            row = await cur.fetchone()
            assert row is not None
            # The accepted run's commit waits for the local flush; an "on" session already does.
            assert row["s"] == ("local" if setting == "off" else "on")
    finally:
        await storage.close()
