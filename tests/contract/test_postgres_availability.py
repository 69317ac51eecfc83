"""How PostgreSQL failures reach callers. Going away and coming back: every storage call
fails with UnavailableError (the API's 503) while it is gone, and the same storage object
works again once it is back, without reopening; a TCP proxy in front of the server plays
the outage. Values PostgreSQL cannot store are the caller's error, not the server's."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from garrison.domain.attempts import AttemptToken, current_attempt
from garrison.domain.errors import InvalidArgumentError, UnavailableError
from garrison.storage.models import IfExists, ThreadQuery
from garrison.storage.postgres import PostgresStorage
from tests.contract.conftest import open_postgres
from tests.contract.factories import TENANT, make_thread, new_run


class Outage:
    """A TCP proxy to PostgreSQL that can drop every connection and refuse new ones."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_w.transport.abort()
            return
        self._links.update({client_w, server_w})
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._links.discard(writer)


@pytest.fixture
async def through_outage(postgres_url: str) -> AsyncIterator[tuple[PostgresStorage, Outage]]:
    params = conninfo_to_dict(postgres_url)
    outage = Outage(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    await outage.start()
    url = make_conninfo(postgres_url, host="127.0.0.1", port=str(outage.port))
    storage = await open_postgres(url, pool_min_size=2, connect_timeout_seconds=0.5)
    try:
        yield storage, outage
    finally:
        await storage.close()
        await outage.cut()


async def test_an_outage_is_unavailable_and_recovery_needs_no_restart(
    through_outage: tuple[PostgresStorage, Outage],
) -> None:
    storage, outage = through_outage
    thread = await make_thread(storage)
    await storage.ping()

    await outage.cut()
    started = time.monotonic()
    with pytest.raises(UnavailableError):
        await storage.ping()
    with pytest.raises(UnavailableError):
        await storage.threads.search(TENANT, ThreadQuery())
    with pytest.raises(UnavailableError):
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    with pytest.raises(UnavailableError):
        await storage.runs.claim("w1", 30.0)
    with pytest.raises(UnavailableError):
        await storage.store.aget(("docs",), "k")
    token = current_attempt.set(AttemptToken("r", 1))
    try:
        with pytest.raises(UnavailableError):
            await storage.checkpointer.aget_tuple({"configurable": {"thread_id": "t"}})
    finally:
        current_attempt.reset(token)
    assert time.monotonic() - started < 15  # each call gave up within its timeout

    await outage.start()  # the server is back, on the same address
    deadline = time.monotonic() + 20
    while True:
        try:
            await storage.ping()
            break
        except UnavailableError:
            assert time.monotonic() < deadline, "the pool did not reconnect"
            await asyncio.sleep(0.2)
    # Every stale connection is replaced on checkout: no call fails after the recovery.
    for _ in range(5):
        assert (await storage.threads.get(TENANT, thread.thread_id)) is not None
        await storage.store.aput(("docs",), "k", {"v": 1})
    assert storage.pool_stats()["max"] == 10  # what the metrics export
    assert storage.db.stats()["requests_errors"] > 0  # psycopg_pool saw the failures


async def test_recovery_after_a_long_outage_is_prompt(
    through_outage: tuple[PostgresStorage, Outage],
) -> None:
    # psycopg's reconnection backoff doubles (1, 2, 4, 8 s...): without a bound, callers
    # kept failing for seconds after the server was back (3 s after this 4 s outage).
    storage, outage = through_outage
    await storage.ping()
    await outage.cut()
    back_at = time.monotonic() + 4.0
    while time.monotonic() < back_at:  # callers keep asking throughout the outage
        with pytest.raises(UnavailableError):
            await storage.ping()

    await outage.start()
    back = time.monotonic()
    while True:
        try:
            await storage.ping()
            break
        except UnavailableError:
            await asyncio.sleep(0.05)
    # Attempts are at most one connect timeout (0.5 s here) apart; 1 s of margin.
    assert time.monotonic() - back < 0.5 + 1.0


async def test_json_that_postgres_cannot_store_is_invalid_argument(postgres_url: str) -> None:
    storage = await open_postgres(postgres_url)
    try:
        with pytest.raises(InvalidArgumentError, match="U\\+0000"):
            await storage.threads.create(
                TENANT, None, "t-nul", {"note": "a\x00b"}, None, IfExists.RAISE
            )
        assert await storage.threads.get(TENANT, "t-nul") is None
    finally:
        await storage.close()
