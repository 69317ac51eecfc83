"""The small HTTP endpoint of a worker process: liveness, readiness, metrics."""

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def health_app(ready: Callable[[], Awaitable[bool]]) -> Starlette:
    """`ready` answers whether the process can do its work (storage reachable)."""

    async def ok(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readiness(request: Request) -> Response:
        if await ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"detail": "storage is unavailable"}, status_code=503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/ok", ok),
            Route("/health", health),
            Route("/ready", readiness),
            Route("/metrics", metrics),
        ]
    )
