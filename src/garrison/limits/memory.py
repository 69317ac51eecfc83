"""Token buckets in this process's memory: exact for one process, per replica for many."""

import time
from collections.abc import Callable

from garrison.limits.bucket import Bucket, RateDecision, idle_seconds_until_full, take

# Past this many keys, full (idle) buckets are dropped: they are the same as no bucket, so
# forgetting them changes no decision and keeps memory bounded when keys are client IPs.
_PRUNE_ABOVE = 100_000


class MemoryRateLimiter:
    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        prune_above: int = _PRUNE_ABOVE,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limiter needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._prune_above = prune_above
        self._buckets: dict[str, Bucket] = {}

    async def acquire(self, key: str) -> RateDecision:
        return self.acquire_now(key)

    def acquire_now(self, key: str) -> RateDecision:
        """`acquire` without awaiting: no I/O, no task switch (used as the Redis fallback)."""
        now = self._clock()
        decision, self._buckets[key] = take(
            self._buckets.get(key), now, rate=self.rate, burst=self.burst
        )
        if len(self._buckets) > self._prune_above:
            self._prune(now)
        return decision

    def _prune(self, now: float) -> None:
        full_after = idle_seconds_until_full(self.burst, self.rate)
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.at < full_after}

    def __len__(self) -> int:
        return len(self._buckets)

    async def close(self) -> None:
        self._buckets.clear()
