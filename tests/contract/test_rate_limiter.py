"""One contract for every rate limiter: the in-memory twin and the Redis token bucket.

Real time, small numbers: 20 tokens per second (one every 50 ms) and a burst of 3.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from garrison.limits import MemoryRateLimiter, RateLimiter
from garrison.limits.redis_limiter import RedisRateLimiter
from tests.support.topology import REDIS_URL

RATE, BURST = 20.0, 3


def _redis_limiter(prefix: str, url: str = REDIS_URL) -> RedisRateLimiter:
    return RedisRateLimiter(
        aioredis.Redis.from_url(url, socket_connect_timeout=0.5), rate=RATE, burst=BURST,
        key_prefix=prefix, io_timeout_seconds=1.0,
    )  # fmt: skip


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[RateLimiter]:
    made: RateLimiter
    if request.param == "memory":
        made = MemoryRateLimiter(rate=RATE, burst=BURST)
    else:
        made = _redis_limiter(prefix)
    yield made
    await made.close()


async def test_a_full_bucket_allows_the_burst_then_refuses(limiter: RateLimiter) -> None:
    decisions = [await limiter.acquire("k") for _ in range(BURST + 1)]
    assert [d.allowed for d in decisions] == [True] * BURST + [False]
    refused = decisions[-1]
    # Less than one token's worth of waiting, since some refilled while we asked.
    assert 0 < refused.retry_after <= 1 / RATE
    assert all(d.retry_after == 0 for d in decisions[:BURST])


async def test_waiting_retry_after_is_enough(limiter: RateLimiter) -> None:
    for _ in range(BURST):
        await limiter.acquire("k")
    refused = await limiter.acquire("k")
    assert not refused.allowed
    await asyncio.sleep(refused.retry_after + 0.01)
    assert (await limiter.acquire("k")).allowed


async def test_refused_requests_spend_nothing(limiter: RateLimiter) -> None:
    for _ in range(BURST):
        await limiter.acquire("k")
    for _ in range(20):  # hammering while empty does not push the wait further out
        last = await limiter.acquire("k")
        assert not last.allowed and last.retry_after <= 1 / RATE
    await asyncio.sleep(last.retry_after + 0.01)
    assert (await limiter.acquire("k")).allowed


async def test_keys_have_their_own_buckets(limiter: RateLimiter) -> None:
    for _ in range(BURST):
        assert (await limiter.acquire("a")).allowed
    assert not (await limiter.acquire("a")).allowed
    assert (await limiter.acquire("b")).allowed


async def test_the_sustained_rate_is_the_configured_one(limiter: RateLimiter) -> None:
    started = time.monotonic()
    allowed = 0
    while time.monotonic() - started < 0.5:
        allowed += (await limiter.acquire("k")).allowed
        await asyncio.sleep(0.005)
    elapsed = time.monotonic() - started
    # burst + rate x elapsed, give or take a token for the edges.
    assert BURST + RATE * elapsed - 2 <= allowed <= BURST + RATE * elapsed + 1


# Redis only --------------------------------------------------------------------------------
async def test_replicas_share_one_bucket(prefix: str) -> None:
    first, second = _redis_limiter(prefix), _redis_limiter(prefix)
    try:
        results = [await (first if i % 2 else second).acquire("k") for i in range(BURST + 1)]
        assert [d.allowed for d in results] == [True] * BURST + [False]
    finally:
        await first.close()
        await second.close()


async def test_keys_live_under_the_prefix_and_expire(prefix: str) -> None:
    limiter = _redis_limiter(prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await limiter.acquire("caller")
        ttl_ms = await client.pttl(f"{prefix}:ratelimit:caller")
        # Until the bucket is full again (burst / rate = 150 ms) plus a second of slack.
        assert 0 < ttl_ms <= 1150
    finally:
        await limiter.close()
        await client.aclose()


async def test_without_redis_each_process_still_limits() -> None:
    with_no_server = _redis_limiter("unused", url="redis://127.0.0.1:1/0")
    try:
        decisions = [await with_no_server.acquire("k") for _ in range(BURST + 1)]
        assert [d.allowed for d in decisions] == [True] * BURST + [False]
    finally:
        await with_no_server.close()
