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
        async with storage.db.pipelined_transaction() as conn:
            assert commits_lazily(conn) is (setting == "off")
            await _create(conn, TENANT, "owner", new_run(thread.thread_id), False, ApiRowCipher())
            setting_now = await conn.execute("SELECT current_setting('synchronous_commit') AS s")
            row = await setting_now.fetchone()
            assert row is not None
            # The accepted run's commit waits for the local flush; an "on" session already does.
            assert row["s"] == ("local" if setting == "off" else "on")
    finally:
        await storage.close()


async def _thread_count(storage: PostgresStorage) -> int:
    row = await storage.db.fetch_one("SELECT count(*) AS n FROM threads")
    assert row is not None
    return int(row["n"])


_INSERT_THREAD = "INSERT INTO threads (thread_id, tenant_id, status) VALUES (%s, 't', 'idle')"


async def test_a_transaction_commits_every_statement_or_none(postgres_url: str) -> None:
    storage = await open_postgres(postgres_url, pool_max_size=1)  # one connection, reused
    try:
        async with storage.db.transaction() as cur:
            await cur.execute(_INSERT_THREAD, ("a",))
            await cur.execute(_INSERT_THREAD, ("b",))
            assert cur.rowcount == 1
        assert await _thread_count(storage) == 2

        # A failing later statement takes the first one with it.
        with pytest.raises(psycopg.errors.UniqueViolation):
            async with storage.db.transaction() as cur:
                await cur.execute(_INSERT_THREAD, ("c",))
                await cur.execute(_INSERT_THREAD, ("a",))
        # So does a failing first statement (it travels with BEGIN), and the caller's own
        # error after a statement.
        with pytest.raises(psycopg.errors.UniqueViolation):
            async with storage.db.transaction() as cur:
                await cur.execute(_INSERT_THREAD, ("a",))
        with pytest.raises(RuntimeError):
            async with storage.db.transaction() as cur:
                await cur.execute(_INSERT_THREAD, ("d",))
                raise RuntimeError("changed my mind")
        assert await _thread_count(storage) == 2

        # The connection came back idle each time: the next transaction works on it.
        async with storage.db.transaction() as cur:
            await cur.execute("SELECT thread_id FROM threads ORDER BY thread_id")
            assert [row["thread_id"] for row in await cur.fetchall()] == ["a", "b"]
        conn = await storage.db.pool.getconn()
        try:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        finally:
            await storage.db.pool.putconn(conn)
    finally:
        await storage.close()
