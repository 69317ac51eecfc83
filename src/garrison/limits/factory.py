"""The rate limiter and stream slots the settings ask for: none, per process, or shared
through Redis."""

import math
from typing import TYPE_CHECKING

from pydantic import SecretStr

from garrison.config.security_settings import LimitSettings
from garrison.config.settings import RedisSettings
from garrison.limits.memory import MemoryRateLimiter
from garrison.limits.ports import RateLimiter, StreamSlotPool
from garrison.limits.streams import MemoryStreamSlots

if TYPE_CHECKING:
    from redis.asyncio import Redis


def burst_for(limits: LimitSettings) -> int:
    """The configured burst, or one second's worth of requests when it is left at 0."""
    return limits.burst or max(1, math.ceil(limits.requests_per_second))


def open_rate_limiter(limits: LimitSettings, redis: RedisSettings) -> RateLimiter | None:
    """None when rate limiting is off. Connections open lazily, on the first request, in
    the serving event loop; close the limiter at shutdown."""
    if limits.requests_per_second <= 0:
        return None
    burst = burst_for(limits)
    if redis.url is None:
        return MemoryRateLimiter(rate=limits.requests_per_second, burst=burst)
    from garrison.limits.redis_limiter import RedisRateLimiter

    client, io_timeout = _redis_client(redis.url, redis)
    return RedisRateLimiter(
        client,
        rate=limits.requests_per_second,
        burst=burst,
        key_prefix=redis.key_prefix,
        io_timeout_seconds=io_timeout,
    )


def open_stream_slots(limits: LimitSettings, redis: RedisSettings) -> StreamSlotPool | None:
    """None when open streams are not capped; shared through Redis when it is configured, so
    the cap holds across API replicas. Close the pool at shutdown."""
    if limits.max_streams_per_key <= 0:
        return None
    if redis.url is None:
        return MemoryStreamSlots(limits.max_streams_per_key)
    from garrison.limits.redis_streams import RedisStreamSlots

    client, io_timeout = _redis_client(redis.url, redis)
    return RedisStreamSlots(
        client,
        max_per_key=limits.max_streams_per_key,
        key_prefix=redis.key_prefix,
        io_timeout_seconds=io_timeout,
    )


def _redis_client(url: SecretStr, redis: RedisSettings) -> "tuple[Redis, float]":
    """A client of its own for each user (each closes its own), and its I/O timeout."""
    from redis.asyncio import BlockingConnectionPool, Redis

    io_timeout = redis.connect_timeout_seconds + 1.0
    # A blocking pool: a burst of requests waits for a connection (bounded by the I/O
    # timeout, then the per-process fallback) instead of opening one each.
    pool = BlockingConnectionPool.from_url(
        url.get_secret_value(),
        max_connections=redis.max_connections,
        timeout=io_timeout,
        socket_connect_timeout=redis.connect_timeout_seconds,
        socket_timeout=io_timeout,
        protocol=2,
    )
    return Redis.from_pool(pool), io_timeout
