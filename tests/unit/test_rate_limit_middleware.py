"""The limits middleware in-process: who is counted, what is exempt, what a refusal says."""

import asyncio
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from garrison.api.rate_limit_middleware import RateLimitMiddleware
from garrison.domain.principal import Principal
from garrison.limits import MemoryRateLimiter
from garrison.limits.streams import MemoryStreamSlots


class _App:
    """Answers 200; requests to /gate/stream hold their response open until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"].endswith("/stream"):
            await self.release.wait()
        await send({"type": "http.response.body", "body": b"ok"})


class _WithPrincipal:
    """Stands in for the authentication middleware: puts a principal in the scope."""

    def __init__(self, app: Any, principal: Principal | None) -> None:
        self.app, self.principal = app, principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.principal is not None and scope["type"] == "http":
            scope.setdefault("state", {})["principal"] = self.principal
        await self.app(scope, receive, send)


def _client(app: Any, ip: str = "10.9.8.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _limited(burst: int = 2, streams: int = 0, principal: Principal | None = None) -> Any:
    limiter = MemoryRateLimiter(rate=0.001, burst=burst)  # no refill during a test
    slots = MemoryStreamSlots(streams) if streams else None
    inner = RateLimitMiddleware(_App(), limiter=limiter, stream_slots=slots)
    return _WithPrincipal(inner, principal)


async def test_refusal_is_json_with_retry_after() -> None:
    async with _client(_limited(burst=1)) as client:
        assert (await client.get("/threads/x")).status_code == 200
        refused = await client.get("/threads/x")
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("Rate limit exceeded")
    assert int(refused.headers["retry-after"]) >= 1


async def test_public_routes_and_preflights_are_never_limited() -> None:
    async with _client(_limited(burst=1)) as client:
        await client.get("/threads/x")
        for _ in range(5):
            for path in ("/ok", "/health", "/ready", "/metrics", "/info"):
                assert (await client.get(path)).status_code == 200, path
            assert (await client.options("/threads/x")).status_code == 200
        assert (await client.get("/threads/x")).status_code == 429


async def test_without_a_principal_each_client_ip_has_its_bucket() -> None:
    app = _limited(burst=1)
    async with _client(app, "10.0.0.1") as one, _client(app, "10.0.0.2") as two:
        assert (await one.get("/runs/x")).status_code == 200
        assert (await one.get("/runs/x")).status_code == 429
        assert (await two.get("/runs/x")).status_code == 200


async def test_a_principal_is_counted_by_its_rate_key_whatever_its_ip() -> None:
    app = _limited(burst=1, principal=Principal(tenant_id="t", credential_id="key-1"))
    async with _client(app, "10.0.0.1") as one, _client(app, "10.0.0.2") as two:
        assert (await one.get("/runs/x")).status_code == 200
        assert (await two.get("/runs/x")).status_code == 429


async def test_stream_slots_are_held_until_the_stream_ends() -> None:
    app = _limited(burst=100, streams=1)
    inner: _App = app.app.app
    async with _client(app) as client:
        first = asyncio.create_task(client.get("/threads/t/stream"))
        await asyncio.sleep(0.05)
        refused = await client.post("/runs/stream")
        assert refused.status_code == 429 and "streams" in refused.json()["detail"]
        assert (await client.get("/threads/t")).status_code == 200  # other routes unaffected
        inner.release.set()
        assert (await first).status_code == 200
        assert (await client.post("/runs/stream")).status_code == 200
