"""What the audit log costs: per append, and per audited request.

    .venv/bin/python bench/audit_overhead.py [--requests 2000] [--postgres-url URL]

For each backend (SQLite file, PostgreSQL database created and dropped here):
1. sequential appends: the latency of one `AuditLog.append` (lock the chain head, insert,
   advance the head);
2. concurrent appends from two "replicas" (two PostgreSQL pools, 16 writers each), one
   transaction per append and with group commit (`GroupCommitAuditLog`): the
   throughput the chain-head lock leaves;
3. per-request overhead: an app with a mutating route behind a real uvicorn, with and
   without `AuditMiddleware`, called alternately by one keep-alive client. The record's
   write overlaps the response, so the caller mostly does not see it; the next request on
   the same connection waits for it, and so does this closed loop.

Numbers, not assertions. Run under `flock /tmp/garrison-chaos.lock` on shared machines.
"""

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from garrison.api.audit_middleware import AuditMiddleware
from garrison.config.settings import Settings
from garrison.domain.principal import Principal
from garrison.security.audit import AuditEvent
from garrison.storage.audit_batching import GroupCommitAuditLog
from garrison.storage.ports import AuditLog
from garrison.storage.postgres import PostgresStorage
from garrison.storage.postgres.migrate import migrate
from garrison.storage.sqlite import SqliteStorage

PRINCIPAL = Principal("acme", "alice", roles=frozenset({"developer"}), credential_id="k1")


def _event(n: int) -> AuditEvent:
    return AuditEvent(
        time=datetime.now(UTC),
        request_id=f"bench-{n}",
        actor="alice",
        credential_id="k1",
        tenant_id="acme",
        action="threads.create",
        resource="/threads",
        status=200,
        client_ip="127.0.0.1",
        summary="POST /threads 200",
    )


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"mean {statistics.fmean(ordered) * 1e3:.3f} ms, "
        f"p50 {ordered[len(ordered) // 2] * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms"
    )


async def sequential_appends(log: AuditLog, count: int) -> list[float]:
    samples = []
    for n in range(count):
        start = time.perf_counter()
        await log.append(_event(n))
        samples.append(time.perf_counter() - start)
    return samples


async def concurrent_appends(logs: list[AuditLog], writers: int, count: int) -> float:
    """Appends per second with `writers` coroutines per log, `count` appends in all."""
    per_writer = count // (writers * len(logs))

    async def writer(log: AuditLog) -> None:
        for n in range(per_writer):
            await log.append(_event(n))

    start = time.perf_counter()
    await asyncio.gather(*(writer(log) for log in logs for _ in range(writers)))
    return per_writer * writers * len(logs) / (time.perf_counter() - start)


def _app(log: AuditLog | None) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A mutating route behind what the authentication middleware leaves on the scope."""

    async def create(request: Request) -> JSONResponse:
        return JSONResponse({"thread_id": str(uuid.uuid4())})

    inner: Any = Starlette(routes=[Route("/threads", create, methods=["POST"])])
    if log is not None:
        inner = AuditMiddleware(inner, settings=Settings.load({}), audit_log=lambda: log)

    async def authenticated(scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        state.update(request_id="r", principal=PRINCIPAL, auth_event={"outcome": "success"})
        await inner(scope, receive, send)

    return authenticated


@asynccontextmanager
async def served(app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> AsyncIterator[str]:
    """`app` behind a real uvicorn on loopback: the client sees the response when its body
    is sent, as in production (an in-process ASGI transport would wait for the handler)."""
    port = _free_port()
    config = uvicorn.Config(app, port=port, log_level="warning", lifespan="off", http="httptools")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def request_overhead(log: AuditLog, count: int) -> tuple[list[float], list[float]]:
    """Sequential POSTs, alternating between the app without and with the middleware, each
    on its own keep-alive connection."""
    timings: tuple[list[float], list[float]] = ([], [])
    async with served(_app(None)) as plain_url, served(_app(log)) as audited_url:
        plain = httpx.AsyncClient(base_url=plain_url)
        audited = httpx.AsyncClient(base_url=audited_url)
        async with plain, audited:
            for n in range(count + 100):
                for client, samples in ((plain, timings[0]), (audited, timings[1])):
                    start = time.perf_counter()
                    response = await client.post("/threads", json={})
                    elapsed = time.perf_counter() - start
                    assert response.status_code == 200
                    if n >= 100:  # warm-up
                        samples.append(elapsed)
    return timings


@asynccontextmanager
async def postgres_database(url: str) -> AsyncIterator[str]:
    name = f"garrison_bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        db_url = psycopg.conninfo.make_conninfo(url, dbname=name)
        await migrate(db_url)
        yield db_url
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure(name: str, logs: list[AuditLog], requests: int) -> None:
    print(f"\n== {name}")
    print(f"append, sequential:            {_ms(await sequential_appends(logs[0], 500))}")
    ungrouped = [log.inner if isinstance(log, GroupCommitAuditLog) else log for log in logs]
    single = await concurrent_appends(ungrouped, writers=16, count=4000)
    grouped = await concurrent_appends(logs, writers=16, count=4000)
    writers = 16 * len(logs)
    print(f"append, {writers} concurrent writers, a transaction each:  {single:,.0f} appends/s")
    print(f"append, {writers} concurrent writers, group commit:     {grouped:,.0f} appends/s")
    plain, audited = await request_overhead(logs[0], requests)
    print(f"request without audit:         {_ms(plain)}")
    print(f"request with audit:            {_ms(audited)}")
    delta = (statistics.fmean(audited) - statistics.fmean(plain)) * 1e3
    print(f"overhead per audited request:  {delta:.3f} ms (mean)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await SqliteStorage.open(Path(tmp) / "bench.sqlite")
        try:
            await measure("SQLite (WAL, synchronous=NORMAL)", [sqlite.audit], args.requests)
        finally:
            await sqlite.close()
    async with postgres_database(args.postgres_url) as url:
        replicas = [await PostgresStorage.open(url, pool_min_size=4) for _ in range(2)]
        try:
            await measure(
                "PostgreSQL (2 pools = 2 replicas)", [r.audit for r in replicas], args.requests
            )
        finally:
            for replica in replicas:
                await replica.close()


if __name__ == "__main__":
    asyncio.run(main())
