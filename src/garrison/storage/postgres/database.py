"""One psycopg connection pool shared by Garrison's tables, the checkpointer and the store.

Connections are in autocommit mode: a read is one statement, and a unit of work opens an
explicit transaction (`transaction()`), so no connection ever idles inside a transaction.
Every failure to reach PostgreSQL (refused or dropped connections, an exhausted pool,
statement or lock timeouts, deadlock and serialization aborts) surfaces as
`UnavailableError`, which the API answers with 503; the pool replaces broken connections
and reconnects by itself when the server is back.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.abc import Params
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from garrison.domain.errors import InvalidArgumentError, UnavailableError

logger = logging.getLogger(__name__)

Connection = AsyncConnection[DictRow]
Cursor = AsyncCursor[DictRow]
Pool = AsyncConnectionPool[Connection]
# What a cursor executes: constant SQL text, or SQL composed from constants and identifiers.
Statement = str | bytes | sql.SQL | sql.Composed

UNAVAILABLE = "database is unavailable"
REPORT_EVERY_SECONDS = 30.0  # how often a lasting outage is logged
# A connection back in the pool for less than this is handed out again without a check.
CHECK_IDLE_AFTER_SECONDS = 1.0
# jsonb cannot hold U+0000; the same value is fine in SQLite, so say what is wrong.
NUL_IN_JSON = "PostgreSQL cannot store the character U+0000 in JSON text"


async def _roll_back(conn: Connection) -> None:
    """End a transaction that failed or was abandoned; a broken connection is the pool's
    to discard, and the caller's error is the one to report."""
    with contextlib.suppress(psycopg.Error):
        await conn.rollback()


def connect_timeout(seconds: float) -> int:
    """libpq's `connect_timeout` is whole seconds, and it treats values below 2 as 2."""
    return max(2, math.ceil(seconds))


@asynccontextmanager
async def unavailable_on_failure() -> AsyncIterator[None]:
    """Map database failures raised inside the block to Garrison's errors."""
    try:
        yield
    except psycopg.errors.UntranslatableCharacter as exc:
        raise InvalidArgumentError(NUL_IN_JSON) from exc
    # OperationalError covers lost connections, pool timeouts (PoolTimeout, PoolClosed and
    # TooManyRequests subclass it), cancelled statements and transaction rollbacks.
    except psycopg.OperationalError as exc:
        raise UnavailableError(UNAVAILABLE) from exc


# Connections whose sessions start with synchronous_commit off (set by the operator for the
# server, database or role): transactions that must survive a server crash ask for more.
_LAX_COMMITS: weakref.WeakSet[Connection] = weakref.WeakSet()


async def _configure(conn: Connection) -> None:
    # Timestamps come back in UTC whatever the server's or the role's default zone.
    await conn.execute("SET TIME ZONE 'UTC'")
    row = await (await conn.execute("SELECT current_setting('synchronous_commit') AS s")).fetchone()
    if row is not None and row["s"] == "off":
        _LAX_COMMITS.add(conn)


def commits_lazily(conn: Connection) -> bool:
    """Whether a commit on `conn` may return before it is flushed to disk (the session's
    synchronous_commit is off); then `SET LOCAL synchronous_commit = local` makes one
    transaction durable. Garrison never changes the setting within a session."""
    return conn in _LAX_COMMITS


class _IdleConnectionCheck:
    """Checks a connection on checkout only when it sat idle in the pool for a while.

    The check is there for connections that went stale while idle (a server restart, a
    dropped socket): they are replaced instead of failing the request that draws them.
    Checking every checkout cost a round trip per transaction, a fifth of a busy worker's;
    a connection returned moments ago worked moments ago, and one that breaks anyway
    fails its caller with a 503 and is discarded by the pool, as it would mid-transaction.
    """

    def __init__(self, idle_after_seconds: float = CHECK_IDLE_AFTER_SECONDS) -> None:
        self._idle_after = idle_after_seconds
        self._returned_at: weakref.WeakKeyDictionary[Connection, float] = (
            weakref.WeakKeyDictionary()
        )

    async def check(self, conn: Connection) -> None:
        returned_at = self._returned_at.pop(conn, None)
        if returned_at is None or time.monotonic() - returned_at >= self._idle_after:
            await AsyncConnectionPool.check_connection(conn)

    async def returned(self, conn: Connection) -> None:
        """The pool's `reset` hook: the connection is back, idle and healthy."""
        self._returned_at[conn] = time.monotonic()


class _ReconnectReport:
    """Records that the pool gave up a series of reconnection attempts. The pool keeps
    serving (and starts a new series on demand); with series as short as ours, a long
    outage ends many of them, so the log gets one line per REPORT_EVERY_SECONDS."""

    def __init__(self) -> None:
        self._next_report = 0.0

    async def __call__(self, pool: Any) -> None:
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + REPORT_EVERY_SECONDS
            logger.error(
                "PostgreSQL pool %s could not reconnect; still retrying on demand", pool.name
            )


class PostgresDatabase:
    """The pool, and helpers to run statements and transactions on it."""

    def __init__(self, pool: Pool, *, timeout_seconds: float) -> None:
        self.pool = pool
        self._timeout = timeout_seconds

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int,
        max_size: int,
        connect_timeout_seconds: float,
        name: str = "garrison",
    ) -> PostgresDatabase:
        idle_check = _IdleConnectionCheck()
        pool: Pool = AsyncConnectionPool(
            url,
            connection_class=AsyncConnection[DictRow],
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": connect_timeout(connect_timeout_seconds),
            },
            min_size=min_size,
            max_size=max_size,
            # How long a caller waits for a connection before it gets a 503.
            timeout=connect_timeout_seconds,
            configure=_configure,
            check=idle_check.check,
            reset=idle_check.returned,
            # psycopg retries a lost connection with exponential backoff (1, 2, 4, 8 s...)
            # for up to `reconnect_timeout`, and callers wait on those attempts: at its
            # default of 5 minutes, the API stayed down after an outage for about as long
            # again as the outage had lasted. Series of one connect timeout keep attempts
            # at most that far apart; a caller after a series starts a fresh one at once.
            reconnect_timeout=connect_timeout_seconds,
            reconnect_failed=_ReconnectReport(),
            name=name,
            open=False,
        )
        async with unavailable_on_failure():
            try:
                await pool.open(wait=min_size > 0, timeout=connect_timeout_seconds)
            except BaseException:
                await pool.close()
                raise
        return cls(pool, timeout_seconds=connect_timeout_seconds)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection (autocommit) for the duration of the block."""
        async with unavailable_on_failure(), self.pool.connection(self._timeout) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Cursor]:
        """A cursor inside one transaction: committed when the block ends, rolled back
        when it raises."""
        async with self.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @asynccontextmanager
    async def pipelined_transaction(self) -> AsyncIterator[Connection]:
        """A connection in pipeline mode, inside one transaction that commits when the
        block ends and rolls back when it raises.

        Statements are queued, not sent: BEGIN travels with the first ones and COMMIT with
        the last. A round trip happens only when the block fetches a result (which sends
        everything queued before it) and at the end. After a failed statement the server
        skips the rest of the queue, COMMIT included. Not `conn.transaction()`, which
        waits for BEGIN on entering and for COMMIT on leaving.
        """
        async with self.connection() as conn:
            try:
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    yield conn
                    await conn.execute("COMMIT")
            except BaseException:
                await _roll_back(conn)
                raise

    async def fetch_one(self, query: Statement, params: Params | None = None) -> DictRow | None:
        async with self.connection() as conn, conn.cursor() as cur:
            await cur.execute(query, params)
            return await cur.fetchone()

    async def fetch_all(self, query: Statement, params: Params | None = None) -> list[DictRow]:
        async with self.connection() as conn, conn.cursor() as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def execute(self, query: Statement, params: Params | None = None) -> int:
        """Run one statement in its own transaction; the number of rows it touched."""
        async with self.connection() as conn, conn.cursor() as cur:
            await cur.execute(query, params)
            return cur.rowcount

    async def ping(self) -> None:
        await self.fetch_one("SELECT 1")

    def stats(self) -> dict[str, int]:
        """The pool's gauges and counters (psycopg_pool names: pool_size, pool_available,
        requests_waiting, requests_num, requests_errors, connections_lost...)."""
        return self.pool.get_stats()

    async def close(self) -> None:
        await self.pool.close()
