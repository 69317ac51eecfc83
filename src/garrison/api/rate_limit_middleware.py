"""Per-caller limits as pure ASGI middleware: a token bucket per key (429 + Retry-After)
and a cap on open SSE connections per key (429), both before any handler runs, so a
refused `POST .../runs/stream` creates no run.

The key is the authenticated principal's `rate_key` (API key id, user, or tenant). Without
a principal in the scope (auth mode `none` until authentication sets one) it is the client
IP: behind a proxy that is the proxy's address, so every caller then shares one bucket.
Public routes (probes, metrics, docs) and CORS preflights are never limited.
"""

import math
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from garrison.auth.route_policy import UnclassifiedRouteError, permission_for
from garrison.limits.ports import RateLimiter, StreamSlotPool

# Every SSE route's path ends so (runs/stream, runs/{run_id}/stream, threads/{id}/stream).
_STREAM_SUFFIX = "/stream"


def rate_key(scope: Scope) -> str:
    """Whose bucket a request is counted in."""
    principal: Any = scope.get("state", {}).get("principal")
    if principal is not None:
        return str(principal.rate_key)
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


def is_public(method: str, path: str) -> bool:
    """Public routes have static paths, so the path itself is the route template."""
    try:
        return permission_for(method, path) is None
    except UnclassifiedRouteError:
        return False  # a route with ids in its path, or no route: limited


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter | None,
        stream_slots: StreamSlotPool | None = None,
    ) -> None:
        """`stream_slots` caps open streams per caller (its owner closes it)."""
        self.app = app
        self.limiter = limiter
        self.streams = stream_slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if is_public(scope["method"], path):
            await self.app(scope, receive, send)
            return
        key = rate_key(scope)
        if self.limiter is not None:
            decision = await self.limiter.acquire(key)
            if not decision.allowed:
                wait = max(1, math.ceil(decision.retry_after))
                await _refuse(send, f"Rate limit exceeded; retry in {wait} s", wait)
                return
        if self.streams is None or not path.endswith(_STREAM_SUFFIX):
            await self.app(scope, receive, send)
            return
        async with self.streams.hold(key) as held:
            if not held:
                limit = self.streams.max_per_key
                # Streams end at the client's pace: 1 s is a polite interval to try again.
                await _refuse(send, f"Too many open streams (limit {limit} per caller)", 1)
                return
            await self.app(scope, receive, send)  # returns when the stream closes


async def _refuse(send: Send, detail: str, retry_after: int | None) -> None:
    body = b'{"detail":"%s"}' % detail.encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
