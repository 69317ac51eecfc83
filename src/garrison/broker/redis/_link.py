"""The process's one Redis client, and how each call through it behaves while Redis is away:
bounded in time, skipped during the backoff after a failure, and interrupted by close."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from garrison.broker.redis._outage import Outage

T = TypeVar("T")

ERRORS = (RedisError, OSError, TimeoutError)


class Closed(Exception):
    """The broker closed while the call was pending."""


class Unavailable(Exception):
    """Redis failed the call, or is inside its backoff window after a failure."""


class Link:
    """`max_connections` bounds the pool, of which one connection is left for the pub/sub
    listener (so at least 2)."""

    def __init__(self, url: str, *, connect_timeout_seconds: float, max_connections: int) -> None:
        self.where = redacted(url)
        # One round trip may include a connect, redis-py's single retry, and the reply.
        self.io_timeout = 2 * connect_timeout_seconds + 1.0
        self.outage = Outage()
        # Calls queue here for a connection, and their time limit starts once they have
        # one: a burst (thousands of streams opening at once) waits its turn instead of
        # timing out in the pool's queue, which would read as Redis being down and send
        # every caller in the process to its fallback for the backoff window.
        self._turns = asyncio.Semaphore(max(1, max_connections - 1))
        # socket_timeout=None: blocking reads outlast any fixed socket timeout, so calls are
        # bounded with asyncio.timeout instead. One retry reconnects a pooled connection a
        # Redis restart broke; more would stall callers during an outage. RESP2 keeps reply
        # shapes stable across redis-py versions and servers.
        # A blocking pool (waiting up to io_timeout): the listener reconnecting while every
        # turn is taken may wait for a connection instead of failing.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=self.io_timeout,
            socket_connect_timeout=connect_timeout_seconds,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 1),
            protocol=2,
        )
        self._pool = pool
        self.client = Redis.from_pool(pool)  # the client owns (and closes) the pool
        self.closed = False
        self._closing: asyncio.Future[None] | None = None

    def pool_stats(self) -> dict[str, int]:
        """Connections lent out (pub/sub listeners included) and the pool's bound."""
        return {
            "in_use": len(self._pool._in_use_connections),
            "max": self._pool.max_connections,
        }

    async def ping(self) -> bool:
        """Whether Redis answers now (for metrics)."""
        if self.closed or not self.outage.allows():
            return False  # closed, or inside the backoff after a failure: down for now
        try:
            return bool(await self._call(self.client.ping))
        except (*ERRORS, Unavailable, Closed):
            return False

    def usable(self) -> bool:
        if self.closed:
            return False
        if self.outage.allows():
            return True
        self.outage.skipped()
        return False

    async def write(self, what: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """A write whose failure is logged and dropped: nothing in Redis is essential."""
        try:
            return await self.read(what, call)
        except (Unavailable, Closed):
            return None

    async def read(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await self._call(call)
        except ERRORS as exc:
            self.outage.failed(what, exc)
            raise Unavailable from exc
        self.outage.succeeded()
        return result

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call` on its turn, bounded by io_timeout from then on; Closed or Unavailable
        at once when the broker closed or Redis is in its backoff window, also after
        waiting for the turn (another call may have failed meanwhile)."""
        self._require_usable()
        async with self._turns:
            self._require_usable()
            async with asyncio.timeout(self.io_timeout):
                return await call()

    def _require_usable(self) -> None:
        if not self.usable():
            raise Closed if self.closed else Unavailable

    async def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds` (a failed call's caller, so it never spins); True if the
        broker closed meanwhile."""
        closing = self._closing_future()
        if seconds > 0 and not closing.done():
            await asyncio.wait((closing,), timeout=seconds)
        return closing.done()

    def begin_close(self) -> None:
        """From now on every call ends with Closed, and pending blocking calls end."""
        self.closed = True
        closing = self._closing_future()
        if not closing.done():
            closing.set_result(None)

    async def close(self) -> None:
        self.begin_close()
        await self.client.aclose()

    def _closing_future(self) -> asyncio.Future[None]:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_future()
        return self._closing


def redacted(url: str) -> str:
    """The URL without credentials, for logs."""
    parts = urlsplit(url)
    if parts.hostname is None:  # unix:///path/to/redis.sock
        return f"{parts.scheme}://{parts.path}"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
