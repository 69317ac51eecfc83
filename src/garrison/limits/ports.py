"""The rate-limiter port: one token bucket per key (an API key, a user, a tenant, an IP)."""

from typing import Protocol

from garrison.limits.bucket import RateDecision


class RateLimiter(Protocol):
    """Token buckets of `rate` tokens per second holding at most `burst` tokens."""

    async def acquire(self, key: str) -> RateDecision:
        """Spend one token of `key`'s bucket, or say how long until one is there."""
        ...

    async def close(self) -> None: ...
