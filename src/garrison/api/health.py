"""The small HTTP endpoint of a worker process: liveness, readiness, metrics."""

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from garrison.observability import exposition


def health_app(
    ready: Callable[[], Awaitable[bool]],
    metrics: Callable[[], Awaitable[bytes]] | None = None,
) -> Starlette:
    """`ready` answers whether the process can do its work (storage reachable);
    `metrics` renders the process's Prometheus text (default: its registry alone)."""

    async def ok(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readiness(request: Request) -> Response:
        if await ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"detail": "storage is unavailable"}, status_code=503)

    async def scrape(request: Request) -> Response:
        body = await metrics() if metrics is not None else exposition.render()
        return Response(body, media_type=exposition.CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/ok", ok),
            Route("/health", health),
            Route("/ready", readiness),
            Route("/metrics", scrape),
        ]
    )
