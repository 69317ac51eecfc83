"""What the limits middleware costs per request, in process (no HTTP, no sockets).

    .venv/bin/python bench/rate_limit_overhead.py [--requests 20000] [--redis-url URL]

Calls a trivial ASGI app directly, bare and behind `RateLimitMiddleware` with: no limiter
(streams cap only), the in-memory token bucket, and the Redis token bucket (one Lua call
per request on a local Redis). Buckets are sized so nothing is refused: this is the cost
of the checks, not of refusals. The median of 5 rounds, in microseconds per request.

Numbers, not assertions. Run under `flock /tmp/garrison-chaos.lock` on shared machines.
"""

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from redis.asyncio import Redis
from starlette.types import Message, Receive, Scope, Send

from garrison.api.rate_limit_middleware import RateLimitMiddleware
from garrison.limits import MemoryRateLimiter, RateLimiter
from garrison.limits.redis_limiter import RedisRateLimiter

_BODY: Message = {"type": "http.response.body", "body": b"{}"}
_START: Message = {"type": "http.response.start", "status": 200, "headers": []}


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_START)
    await send(_BODY)


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/threads/0190aa53-7e71-7c4e-b1d5-4cbd0e2b1b1f",
        "headers": [],
        "client": ("127.0.0.1", 5000),
        "state": {},
    }


async def _per_request_us(app: Any, requests: int) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(requests):
            await app(_scope(), _receive, _send)
        rounds.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(rounds)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    big = 10**9  # nothing is ever refused
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    redis = RedisRateLimiter(Redis.from_url(args.redis_url), rate=big, burst=big, key_prefix=prefix)
    limiters: dict[str, RateLimiter | None] = {
        "streams cap only": None,
        "memory bucket": MemoryRateLimiter(rate=big, burst=big),
        "redis bucket": redis,
    }
    bare = await _per_request_us(_app, args.requests)
    print(f"{'bare app':<18} {bare:8.2f} us/request")
    for name, limiter in limiters.items():
        app = RateLimitMiddleware(_app, limiter=limiter, max_streams_per_key=10)
        n = args.requests if limiter is not redis else max(1, args.requests // 10)
        cost = await _per_request_us(app, n)
        print(f"{name:<18} {cost:8.2f} us/request  (+{cost - bare:.2f})")
    await redis.close()
    cleanup = Redis.from_url(args.redis_url)
    await cleanup.delete(*[key async for key in cleanup.scan_iter(f"{prefix}:*")] or ["-"])
    await cleanup.aclose()


if __name__ == "__main__":
    asyncio.run(main())
