"""The rate limiter the settings ask for: none, per process, or shared through Redis."""

import math

from garrison.config.security_settings import LimitSettings
from garrison.config.settings import RedisSettings
from garrison.limits.memory import MemoryRateLimiter
from garrison.limits.ports import RateLimiter


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
    from redis.asyncio import BlockingConnectionPool, Redis

    from garrison.limits.redis_limiter import RedisRateLimiter

    io_timeout = redis.connect_timeout_seconds + 1.0
    # A blocking pool: a burst of requests waits for a connection (bounded by the I/O
    # timeout, then the per-process fallback) instead of opening one each.
    pool = BlockingConnectionPool.from_url(
        redis.url.get_secret_value(),
        max_connections=redis.max_connections,
        timeout=io_timeout,
        socket_connect_timeout=redis.connect_timeout_seconds,
        socket_timeout=io_timeout,
        protocol=2,
    )
    return RedisRateLimiter(
        Redis.from_pool(pool),
        rate=limits.requests_per_second,
        burst=burst,
        key_prefix=redis.key_prefix,
        io_timeout_seconds=io_timeout,
    )
