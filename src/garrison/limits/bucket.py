"""Token-bucket arithmetic, pure: the in-memory limiter runs it in Python and the Redis
limiter runs the same steps in Lua (`redis_limiter.py`); one contract suite checks both."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    """Tokens left and when they were counted (seconds on the limiter's clock)."""

    tokens: float
    at: float


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    # Seconds until a refused request would be allowed; 0 when allowed.
    retry_after: float = 0.0


def take(
    bucket: Bucket | None, now: float, *, rate: float, burst: int, cost: float = 1.0
) -> tuple[RateDecision, Bucket]:
    """Refill `bucket` to `now`, then spend `cost` tokens if there are enough.

    A missing bucket is a full one. A clock that went backwards refills nothing. A refused
    request spends nothing, so a client that waits `retry_after` is then allowed.
    """
    if bucket is None:
        tokens = float(burst)
    else:
        tokens = min(float(burst), bucket.tokens + max(0.0, now - bucket.at) * rate)
    if tokens >= cost:
        return RateDecision(True), Bucket(tokens - cost, now)
    return RateDecision(False, (cost - tokens) / rate), Bucket(tokens, now)


def idle_seconds_until_full(burst: int, rate: float) -> float:
    """After this long without requests a bucket is full again, the same as no bucket."""
    return burst / rate
