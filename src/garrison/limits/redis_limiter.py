"""Token buckets in Redis, shared by every replica: one atomic Lua script per request.

The script reads Redis's own clock (`TIME`), so replicas with skewed clocks still agree.
Keys are `{key_prefix}:ratelimit:{key}` and expire once the bucket would be full again.
Redis is optional for correctness: while it fails, each process limits on its own (the
in-memory twin), and Redis is tried again after a short backoff.
"""

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from garrison.limits.bucket import RateDecision, idle_seconds_until_full
from garrison.limits.memory import MemoryRateLimiter

logger = logging.getLogger("garrison.limits")

# The same steps as `bucket.take`; keep them in step (tests/contract/test_rate_limiter.py).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1])
if tokens == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - tonumber(saved[2])) * rate)
end
local allowed = 0
local retry_after = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry_after = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return {allowed, tostring(retry_after)}
"""

_ERRORS = (RedisError, OSError, TimeoutError)
_BACKOFF_SECONDS = 5.0


class RedisRateLimiter:
    def __init__(
        self,
        client: "Redis",
        *,
        rate: float,
        burst: int,
        key_prefix: str,
        io_timeout_seconds: float = 1.0,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limiter needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._client = client
        self._script = client.register_script(_TAKE)
        self._prefix = f"{key_prefix}:ratelimit:"
        # A key lives until its bucket is full again (plus a second of slack for rounding).
        self._ttl_ms = int(idle_seconds_until_full(burst, rate) * 1000) + 1000
        self._io_timeout = io_timeout_seconds
        self._fallback = MemoryRateLimiter(rate=rate, burst=burst)
        self._down_until = 0.0

    async def acquire(self, key: str) -> RateDecision:
        if time.monotonic() < self._down_until:
            return self._fallback.acquire_now(key)
        try:
            async with asyncio.timeout(self._io_timeout):
                allowed, retry_after = await self._script(
                    keys=[self._prefix + key], args=[self.rate, self.burst, self._ttl_ms]
                )
        except _ERRORS as exc:
            logger.warning(
                "rate limiter: Redis failed (%s); limiting per process for %.0f s",
                type(exc).__name__,
                _BACKOFF_SECONDS,
            )
            self._down_until = time.monotonic() + _BACKOFF_SECONDS
            return self._fallback.acquire_now(key)
        return RateDecision(bool(int(allowed)), float(retry_after))

    async def close(self) -> None:
        await self._client.aclose()
