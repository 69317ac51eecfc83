"""Open SSE connections per key, counted in Redis so every API replica shares one cap.

A key's slots are a sorted set `{key_prefix}:streams:{key}` of slot ids scored by when
their lease expires (ms on Redis's clock, so skewed replicas agree). One Lua script takes a
slot: drop expired slots, count, add if under the cap, so concurrent replicas never pass
the cap. Closing the stream removes its slot. Each process renews the leases of all its
open slots every `renew_seconds` (default 10 s of a 30 s lease), so a replica that dies
holding slots blocks them for at most one lease.

While Redis fails, each process counts on its own (the in-process twin) and Redis is
tried again after a short backoff, as the Redis rate limiter does.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from garrison.limits.streams import MemoryStreamSlots

logger = logging.getLogger("garrison.limits")

LEASE_SECONDS = 30.0
RENEW_SECONDS = 10.0

_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS[1] the key's set; ARGV: cap, lease ms, slot id. Returns 1 when the slot was taken.
_ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
)

# KEYS: sets; ARGV[1] lease ms, ARGV[i + 1] the slot held in KEYS[i]. Renews the slots still
# there (never re-adds one: that could pass the cap); returns the ids of those gone.
_RENEW = (
    _NOW_MS
    + """
local lease = tonumber(ARGV[1])
local lost = {}
for i, key in ipairs(KEYS) do
  local slot = ARGV[i + 1]
  if redis.call('ZSCORE', key, slot) then
    redis.call('ZADD', key, 'XX', now + lease, slot)
    redis.call('PEXPIRE', key, lease)
  else
    table.insert(lost, slot)
  end
end
return lost
"""
)

_ERRORS = (RedisError, OSError, TimeoutError)
_BACKOFF_SECONDS = 5.0
_RENEW_BATCH = 500  # slots renewed per script call: bounds how long one call blocks Redis


class RedisStreamSlots:
    def __init__(
        self,
        client: "Redis",
        *,
        max_per_key: int,
        key_prefix: str,
        lease_seconds: float = LEASE_SECONDS,
        renew_seconds: float = RENEW_SECONDS,
        io_timeout_seconds: float = 1.0,
    ) -> None:
        if max_per_key < 1:
            raise ValueError("max_per_key must be >= 1")
        if not 0 < renew_seconds < lease_seconds:
            raise ValueError("stream slots need 0 < renew_seconds < lease_seconds")
        self._max_per_key = max_per_key
        self._client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._prefix = f"{key_prefix}:streams:"
        self._lease_ms = int(lease_seconds * 1000)
        self._renew_seconds = renew_seconds
        self._io_timeout = io_timeout_seconds
        self._fallback = MemoryStreamSlots(max_per_key)
        self._down_until = 0.0
        self._held: dict[str, str] = {}  # slot id -> its set, for this process's renewals
        self._renewer: asyncio.Task[None] | None = None

    @property
    def max_per_key(self) -> int:
        return self._max_per_key

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        slot, name = uuid.uuid4().hex, self._prefix + key
        taken = await self._take(name, slot) if time.monotonic() >= self._down_until else None
        if taken is None:  # Redis is down: count in this process until it is back
            async with self._fallback.hold(key) as held:
                yield held
            return
        if not taken:
            yield False
            return
        self._held[slot] = name
        self._start_renewing()
        try:
            yield True
        finally:
            del self._held[slot]
            await self._give_back(name, slot)

    async def _take(self, name: str, slot: str) -> bool | None:
        """Whether the slot was taken; None when Redis failed."""
        try:
            # Cancelled after Redis ran the script, the slot is added but never renewed:
            # it expires within one lease.
            async with asyncio.timeout(self._io_timeout):
                taken = await self._acquire(
                    keys=[name], args=[self._max_per_key, self._lease_ms, slot]
                )
        except _ERRORS as exc:
            logger.warning(
                "stream slots: Redis failed (%s); counting per process for %.0f s",
                type(exc).__name__,
                _BACKOFF_SECONDS,
            )
            self._down_until = time.monotonic() + _BACKOFF_SECONDS
            return None
        return bool(int(taken))

    async def _give_back(self, name: str, slot: str) -> None:
        try:
            async with asyncio.timeout(self._io_timeout):
                await self._client.zrem(name, slot)
        except _ERRORS as exc:
            logger.warning("stream slots: release failed (%s); it expires with its lease", exc)

    def _start_renewing(self) -> None:
        # One task per process, alive while this process holds slots.
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_while_held(), name="stream-slots")

    async def _renew_while_held(self) -> None:
        while self._held:
            await asyncio.sleep(self._renew_seconds)
            held = list(self._held.items())
            for start in range(0, len(held), _RENEW_BATCH):
                await self._renew_batch(held[start : start + _RENEW_BATCH])

    async def _renew_batch(self, held: list[tuple[str, str]]) -> None:
        try:
            async with asyncio.timeout(self._io_timeout):
                lost = await self._renew(
                    keys=[name for _, name in held],
                    args=[self._lease_ms, *(slot for slot, _ in held)],
                )
        except _ERRORS as exc:
            logger.warning("stream slots: renewal failed (%s); retrying", type(exc).__name__)
            return
        # Gone while still open: this process stalled past a lease. The stream goes on,
        # uncounted, rather than be cut off.
        still_open = [s for s in lost if (s.decode() if isinstance(s, bytes) else s) in self._held]
        if still_open:
            logger.warning("stream slots: %d open streams outlived their lease", len(still_open))

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.wait([self._renewer])
        await self._client.aclose()
