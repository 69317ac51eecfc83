"""The audit middleware on a small app with the real authentication middleware and route
guards: which requests write a record, what the record holds, and what it never holds."""

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from garrison.api.audit_middleware import AuditMiddleware, TrustedProxies, audit_outcome
from garrison.auth.middleware import AuthenticationMiddleware, guard_routes
from garrison.config.settings import Settings
from garrison.domain.errors import AuthenticationError
from garrison.domain.principal import Principal
from garrison.security.audit import GENESIS_HASH, AuditEvent, AuditRecord, ChainHead, seal

GENESIS = ChainHead(0, GENESIS_HASH)
SECRET_KEY = "gk_live_PLANTED_SECRET_abc123"
VIEWER_KEY = "gk_live_PLANTED_VIEWER_def456"


class MemoryAuditLog:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[AuditEvent] = []
        self.chain: list[AuditRecord] = []
        self.fail = fail

    async def append(self, event: AuditEvent) -> AuditRecord:
        if self.fail:
            raise RuntimeError("database is down")
        record = seal(event, await self.head())
        self.events.append(event)
        self.chain.append(record)
        return record

    async def records(
        self, *, after_seq: int = 0, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditRecord]:
        return [r for r in self.chain if r.seq > after_seq][:limit]

    async def head(self) -> ChainHead:
        return ChainHead(self.chain[-1].seq, self.chain[-1].hash) if self.chain else GENESIS


class KeyAuthenticator:
    async def authenticate(self, request: Request) -> Principal:
        roles = {SECRET_KEY: "developer", VIEWER_KEY: "viewer"}
        role = roles.get(request.headers.get("x-api-key", ""))
        if role is None:
            raise AuthenticationError("Invalid API key")
        return Principal(
            "tenant-a",
            f"{role}-1",
            roles=frozenset({role}),
            auth_kind="api_key",
            credential_id="k1",
        )


async def create_thread(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"thread_id": "t1"})


async def get_thread(request: Request) -> JSONResponse:
    return JSONResponse({"thread_id": request.path_params["thread_id"]})


async def delete_thread(request: Request) -> JSONResponse:
    raise RuntimeError("boom")


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def make_app(log: MemoryAuditLog, **audit: Any) -> Starlette:
    settings = Settings.load({"audit": audit, "server": {"trusted_proxies": ["10.0.0.0/8"]}})
    app = Starlette(
        routes=[
            Route("/threads", create_thread, methods=["POST"]),
            Route("/threads/{thread_id}", get_thread, methods=["GET"]),
            Route("/threads/{thread_id}", delete_thread, methods=["DELETE"]),
            Route("/ok", ok, methods=["GET"]),
        ]
    )
    guard_routes(app.router.routes)
    app.add_middleware(AuthenticationMiddleware)
    app.add_middleware(AuditMiddleware, settings=settings, audit_log=lambda: log)
    app.state.authenticator = KeyAuthenticator()

    async def with_request_id(scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("state", {})["request_id"] = "req-1"
        await inner(scope, receive, send)

    inner = app.build_middleware_stack()
    app.middleware_stack = with_request_id
    return app


def client(app: Starlette, peer: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 1234), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_mutating_call_writes_one_complete_record() -> None:
    log = MemoryAuditLog()
    async with client(make_app(log)) as http:
        response = await http.post(
            "/threads",
            headers={"x-api-key": SECRET_KEY, "authorization": f"Bearer {SECRET_KEY}"},
            json={"metadata": {"email": "victim@example.com", "password": "hunter2"}},
        )
    assert response.status_code == 200
    [event] = log.events
    assert event.request_id == "req-1" and event.time.tzinfo is not None
    assert (event.actor, event.credential_id, event.tenant_id) == ("developer-1", "k1", "tenant-a")
    assert (event.action, event.resource, event.outcome) == (
        "threads.create",
        "/threads",
        "success",
    )
    assert event.client_ip == "203.0.113.7"
    text = repr(event)
    for planted in (SECRET_KEY, "hunter2", "victim@example.com"):
        assert planted not in text


async def test_authentication_failure_is_recorded_with_its_route() -> None:
    log = MemoryAuditLog()
    async with client(make_app(log)) as http:
        response = await http.get("/threads/abc", headers={"x-api-key": "gk_wrong_PLANTED"})
    assert response.status_code == 401
    [event] = log.events
    assert (event.outcome, event.status, event.actor) == ("failure", 401, None)
    assert (event.action, event.resource) == ("threads.read", "/threads/{thread_id}")
    assert event.object_ids == {"thread_id": "abc"}
    assert "gk_wrong_PLANTED" not in repr(event)


async def test_authorization_denial_is_recorded() -> None:
    log = MemoryAuditLog()
    async with client(make_app(log)) as http:
        response = await http.post("/threads", headers={"x-api-key": VIEWER_KEY}, json={})
    assert response.status_code == 403
    [event] = log.events
    assert (event.outcome, event.actor, event.action) == ("denied", "viewer-1", "threads.create")


@pytest.mark.parametrize(("record_reads", "expected"), [(True, 1), (False, 0)])
async def test_authenticated_reads_follow_the_setting(record_reads: bool, expected: int) -> None:
    log = MemoryAuditLog()
    async with client(make_app(log, record_reads=record_reads)) as http:
        response = await http.get("/threads/t9", headers={"x-api-key": VIEWER_KEY})
        assert (await http.get("/ok")).status_code == 200  # public: never recorded
    assert response.status_code == 200
    assert len(log.events) == expected
    if expected:
        assert (log.events[0].action, log.events[0].outcome) == ("threads.read", "success")


async def test_a_crashing_mutation_is_recorded_as_an_error() -> None:
    log = MemoryAuditLog()
    async with client(make_app(log)) as http:
        response = await http.delete("/threads/t1", headers={"x-api-key": SECRET_KEY})
    assert response.status_code == 500
    [event] = log.events
    assert (event.action, event.outcome, event.status) == ("threads.delete", "error", 500)


async def test_disabled_audit_writes_nothing() -> None:
    log = MemoryAuditLog()
    async with client(make_app(log, enabled=False)) as http:
        await http.post("/threads", headers={"x-api-key": SECRET_KEY}, json={})
    assert log.events == []


async def test_a_failed_write_keeps_the_response_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with client(make_app(MemoryAuditLog(fail=True))) as http:
        response = await http.post("/threads", headers={"x-api-key": SECRET_KEY}, json={})
    assert response.status_code == 200 and response.json() == {"thread_id": "t1"}
    assert any("could not write the audit record" in r.getMessage() for r in caplog.records)


async def test_summary_is_redacted_and_single_line() -> None:
    log = MemoryAuditLog()
    async with client(make_app(log, redact_patterns=[r"EMP-\d+"])) as http:
        await http.get(
            "/threads/a%0D%0Aforged%20bob@example.com%20EMP-42",
            headers={"x-api-key": VIEWER_KEY},
        )
    [event] = log.events
    assert "\n" not in event.summary and "\r" not in event.summary
    assert "bob@example.com" not in event.summary and "EMP-42" not in event.summary
    assert "[email]" in event.summary and "[redacted]" in event.summary


async def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    log = MemoryAuditLog()
    forged = {"x-api-key": VIEWER_KEY, "x-forwarded-for": "1.1.1.1, 198.51.100.9"}
    async with client(make_app(log), peer="203.0.113.7") as http:
        await http.get("/threads/t1", headers=forged)
    async with client(make_app(log), peer="10.1.2.3") as http:
        await http.get("/threads/t1", headers=forged)
    assert [e.client_ip for e in log.events] == ["203.0.113.7", "198.51.100.9"]


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("203.0.113.7", "1.1.1.1", "203.0.113.7"),  # untrusted peer: header ignored
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", "198.51.100.9", "198.51.100.9"),
        ("10.0.0.1", "6.6.6.6, 198.51.100.9, 10.0.0.2", "198.51.100.9"),  # skip trusted hops
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),  # all trusted: the left-most
        ("10.0.0.1", "not-an-ip, 10.0.0.2", "10.0.0.2"),  # garbage: stop at the last good
        (None, "1.1.1.1", None),
    ],
)
def test_trusted_proxies_client_ip(peer: str | None, header: str | None, expected: str) -> None:
    assert TrustedProxies(["10.0.0.0/8"]).client_ip(peer, header) == expected


@pytest.mark.parametrize(
    ("status", "auth", "expected"),
    [
        (200, "success", "success"),
        (201, None, "success"),
        (401, "failure", "failure"),
        (503, "failure", "failure"),  # the auth layer's verdict wins
        (403, "denied", "denied"),
        (404, "success", "failure"),
        (409, None, "failure"),
        (500, "success", "error"),
        (499, "success", "error"),
    ],
)
def test_audit_outcome(status: int, auth: str | None, expected: str) -> None:
    assert audit_outcome(status, auth) == expected


async def test_client_disconnect_before_the_response_still_records() -> None:
    log = MemoryAuditLog()
    started = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await asyncio.sleep(10)

    settings = Settings.load({})
    middleware = AuditMiddleware(slow, settings=settings, audit_log=lambda: log)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/threads",
        "headers": [],
        "client": ("203.0.113.7", 1),
        "state": {"request_id": "r", "auth_event": {"outcome": "success"}},
    }
    task = asyncio.create_task(middleware(scope, None, None))  # type: ignore[arg-type]
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    [event] = log.events
    assert (event.status, event.outcome) == (499, "error")
