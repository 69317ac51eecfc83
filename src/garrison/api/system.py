"""Health, readiness and server information."""

from importlib import metadata

from fastapi import APIRouter, Request, Response

from garrison import __version__
from garrison.api.context import services
from garrison.api.responses import json_response
from garrison.domain.errors import UnavailableError
from garrison.observability.exposition import CONTENT_TYPE
from garrison.schemas.common import ErrorBody

router = APIRouter(tags=["system"])
# Server information, dropped with the other meta routes when `http.disable_meta` is set.
meta_router = APIRouter(tags=["system"])


async def _database_healthy(request: Request) -> bool:
    try:
        await services(request).storage.ping()
    except (UnavailableError, OSError):
        return False
    return True


@router.get("/ok", responses={422: {"model": ErrorBody}})
async def ok(request: Request, check_db: int = 0) -> Response:
    """LangGraph Server's health probe; `check_db=1` also probes storage."""
    if not check_db:
        return json_response({"ok": True})
    healthy = await _database_healthy(request)
    body = {"ok": healthy, "services": {"database": "healthy" if healthy else "unhealthy"}}
    return json_response(body, 200 if healthy else 500)


@router.get("/", include_in_schema=False)
async def root(request: Request, check_db: int = 0) -> Response:
    return await ok(request, check_db)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format)."""
    body = await request.app.state.metrics.render()
    return Response(body, media_type=CONTENT_TYPE)


@router.get("/health")
async def health() -> Response:
    """Liveness: the process serves requests."""
    return json_response({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> Response:
    """Readiness: storage is reachable."""
    if await _database_healthy(request):
        return json_response({"status": "ready"})
    raise UnavailableError("storage is unavailable")  # a 5xx like any other: with its request id


@meta_router.get("/info")
async def info(request: Request) -> Response:
    container = services(request)
    return json_response(
        {
            "version": __version__,
            "server": "garrison",
            "langgraph_py_version": metadata.version("langgraph"),
            "flags": {
                "assistants": True,
                "crons": container.settings.crons.enabled,
                "langsmith": False,
                "langsmith_tracing_replicas": False,
            },
            "host": {"kind": "self-hosted", "project_id": None, "revision_id": None},
            "graphs": container.registry.graph_ids,
        }
    )
