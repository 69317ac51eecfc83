"""The limits ports: one token bucket per key (an API key, a user, a tenant, an IP), and
slots for the streams a key may hold open."""

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from garrison.limits.bucket import RateDecision


class RateLimiter(Protocol):
    """Token buckets of `rate` tokens per second holding at most `burst` tokens."""

    async def acquire(self, key: str) -> RateDecision:
        """Spend one token of `key`'s bucket, or say how long until one is there."""
        ...

    async def close(self) -> None: ...


class StreamSlotPool(Protocol):
    """At most `max_per_key` open streams per key; a slot is held while its stream is open."""

    @property
    def max_per_key(self) -> int: ...

    def hold(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Yields True and holds a slot until the block exits (however it exits), or yields
        False when `key` already holds `max_per_key` slots."""
        ...

    async def close(self) -> None: ...
