"""Per-caller limits: request rate (token buckets, in memory or shared through Redis) and
open streams per key."""

from garrison.limits.bucket import Bucket, RateDecision, take
from garrison.limits.factory import burst_for, open_rate_limiter
from garrison.limits.memory import MemoryRateLimiter
from garrison.limits.ports import RateLimiter
from garrison.limits.streams import StreamSlots

__all__ = [
    "Bucket",
    "MemoryRateLimiter",
    "RateDecision",
    "RateLimiter",
    "StreamSlots",
    "burst_for",
    "open_rate_limiter",
    "take",
]
