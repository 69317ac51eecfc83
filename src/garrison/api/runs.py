"""/threads/{thread_id}/runs, /runs: create, stream, wait, join, cancel."""

import fnmatch
from collections.abc import Callable
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from garrison.api.context import principal, services
from garrison.api.links import links
from garrison.api.presenters import run_view, views
from garrison.api.responses import json_response, no_content
from garrison.api.sse import frames, sse_response
from garrison.api.waiting import wait_response
from garrison.broker.ids import parse_event_id
from garrison.broker.ports import FROM_START
from garrison.config.project import HeaderFilter
from garrison.domain.errors import InvalidArgumentError
from garrison.domain.principal import Principal
from garrison.domain.runs import CancelAction, RunStatus, parse_cancel_action
from garrison.runtime.stream_events import parse_stream_modes
from garrison.schemas import runs as wire
from garrison.schemas.common import MAX_SQL_INT, ErrorBody
from garrison.services.runs import parse_since
from garrison.storage.models import Run

router = APIRouter(tags=["runs"], responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})

# Never forwarded into a run's config: credentials and routing headers.
_PRIVATE_HEADERS = frozenset({"x-api-key", "x-tenant-id", "x-service-key", "authorization"})


def configurable_headers(request: Request, policy: HeaderFilter | None) -> dict[str, str]:
    """Request headers a graph sees in `config.configurable`: x-* and user-agent, plus the
    project's `http.configurable_headers.includes`, minus its excludes."""
    includes = policy.includes if policy else []
    excludes = policy.excludes if policy else []
    forwarded = {}
    for name, value in request.headers.items():
        if name in _PRIVATE_HEADERS or any(fnmatch.fnmatch(name, p.lower()) for p in excludes):
            continue
        if (
            name.startswith("x-")
            or name == "user-agent"
            or any(fnmatch.fnmatch(name, p.lower()) for p in includes)
        ):
            forwarded[name] = value
    return forwarded


def _run_paths(run: Run, stateless: bool) -> tuple[str, str]:
    base = f"/runs/{run.run_id}" if stateless else f"/threads/{run.thread_id}/runs/{run.run_id}"
    return base, base


async def _create(
    request: Request, thread_id: str | None, body: wire.RunCreate
) -> tuple[Principal, Run]:
    container, caller = services(request), principal(request)
    headers = configurable_headers(request, container.project.http.configurable_headers)
    run = await container.runs.create(caller, thread_id, body, server_configurable=headers)
    return caller, run


# Create ---------------------------------------------------------------------------------
_RUN_LINKS = links(
    ("thread_id", "run_id"),
    ("GET", "/threads/{thread_id}/runs/{run_id}"),
    ("DELETE", "/threads/{thread_id}/runs/{run_id}"),
    ("GET", "/threads/{thread_id}/runs/{run_id}/join"),
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"),
    ("GET", "/runs/{run_id}/join"),
)


@router.post("/threads/{thread_id}/runs", response_model=wire.Run, responses=_RUN_LINKS)
async def create_run(request: Request, thread_id: str, body: wire.RunCreate) -> Response:
    _, run = await _create(request, thread_id, body)
    base, _ = _run_paths(run, stateless=False)
    return json_response(run_view(run), headers={"Content-Location": base})


@router.post("/runs", response_model=wire.Run)
async def create_stateless_run(request: Request, body: wire.RunCreate) -> Response:
    _, run = await _create(request, None, body)
    return json_response(run_view(run), headers={"Content-Location": f"/runs/{run.run_id}"})


@router.post("/runs/batch", response_model=list[wire.Run])
async def create_run_batch(request: Request, body: list[wire.RunCreate]) -> Response:
    runs = await services(request).runs.create_batch(principal(request), body)
    return json_response([run_view(r) for r in runs])


# Stream and wait ------------------------------------------------------------------------
def _stream_response(
    request: Request,
    caller: Principal,
    run: Run,
    stateless: bool,
    *,
    since: str | None,
    keep: Callable[[str], bool] | None,
    cancel_on_disconnect: bool,
) -> Response:
    container = services(request)
    base, _ = _run_paths(run, stateless)
    heartbeat = container.settings.streams.heartbeat_seconds

    async def on_close(completed: bool) -> None:
        if not completed and cancel_on_disconnect:
            await _cancel_quietly(request, caller, run)

    records = container.runs.records(caller, run, since, heartbeat)
    return sse_response(
        frames(records, keep=keep),
        headers={"Location": f"{base}/stream", "Content-Location": base},
        on_close=on_close,
    )


async def _cancel_quietly(request: Request, caller: Principal, run: Run) -> None:
    try:
        await services(request).runs.cancel(
            caller, run.thread_id, run.run_id, CancelAction.INTERRUPT
        )
    except Exception:  # finished meanwhile: nothing to cancel
        return


@router.post("/threads/{thread_id}/runs/stream")
async def stream_run(request: Request, thread_id: str, body: wire.RunCreate) -> Response:
    caller, run = await _create(request, thread_id, body)
    return _stream_response(
        request,
        caller,
        run,
        False,
        since=FROM_START,
        keep=None,
        cancel_on_disconnect=body.on_disconnect == "cancel",
    )


@router.post("/runs/stream")
async def stream_stateless_run(request: Request, body: wire.RunCreate) -> Response:
    caller, run = await _create(request, None, body)
    return _stream_response(
        request,
        caller,
        run,
        True,
        since=FROM_START,
        keep=None,
        cancel_on_disconnect=body.on_disconnect == "cancel",
    )


async def _wait(
    request: Request, caller: Principal, run: Run, stateless: bool, cancel_on_disconnect: bool
) -> Response:
    container = services(request)
    base, _ = _run_paths(run, stateless)
    ticks = container.runs.output_ticks(caller, run, container.settings.streams.heartbeat_seconds)

    async def on_disconnect() -> None:
        await _cancel_quietly(request, caller, run)

    return await wait_response(
        request,
        ticks,
        headers={"Location": f"{base}/join", "Content-Location": base},
        on_disconnect=on_disconnect if cancel_on_disconnect else None,
    )


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(request: Request, thread_id: str, body: wire.RunCreate) -> Response:
    caller, run = await _create(request, thread_id, body)
    return await _wait(request, caller, run, False, body.on_disconnect == "cancel")


@router.post("/runs/wait")
async def wait_stateless_run(request: Request, body: wire.RunCreate) -> Response:
    caller, run = await _create(request, None, body)
    return await _wait(request, caller, run, True, body.on_disconnect == "cancel")


# Read -----------------------------------------------------------------------------------
@router.get("/threads/{thread_id}/runs", response_model=wire.RunSearchResults)
async def list_runs(
    request: Request,
    thread_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
    status: RunStatus | None = None,
    select: Annotated[list[wire.RunField] | None, Query()] = None,
) -> Response:
    runs = await services(request).runs.list_runs(
        principal(request), thread_id, limit, offset, status
    )
    return json_response(views(runs, run_view, select))


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=wire.Run)
async def get_run(request: Request, thread_id: str, run_id: str) -> Response:
    run = await services(request).runs.get(principal(request), thread_id, run_id)
    return json_response(run_view(run))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(request: Request, thread_id: str, run_id: str) -> Response:
    await services(request).runs.delete(principal(request), thread_id, run_id)
    return no_content()


# Join -----------------------------------------------------------------------------------
@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(
    request: Request, thread_id: str, run_id: str, cancel_on_disconnect: bool = False
) -> Response:
    caller = principal(request)
    run = await services(request).runs.get(caller, thread_id, run_id)
    return await _wait(request, caller, run, False, cancel_on_disconnect)


@router.get("/runs/{run_id}/join")
async def join_stateless_run(
    request: Request, run_id: str, cancel_on_disconnect: bool = False
) -> Response:
    caller = principal(request)
    run = await services(request).runs.get_any(caller, run_id)
    return await _wait(request, caller, run, True, cancel_on_disconnect)


def stream_mode_filter(request: Request) -> Callable[[str], bool] | None:
    """`stream_mode` as one value, a JSON array, or repeated keys."""
    raw: list[str] = []
    for value in request.query_params.getlist("stream_mode"):
        if not value.strip():
            continue  # the SDK's join_stream sends `stream_mode=` when none was chosen
        if value.startswith("["):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise InvalidArgumentError(f"Invalid stream_mode {value!r}") from None
            raw.extend(str(item) for item in parsed)
        else:
            raw.append(value)
    if not raw:
        return None
    modes = set(parse_stream_modes(raw))
    messages = bool(modes & {"messages", "messages-tuple"})

    def keep(event: str) -> bool:
        mode = event.split("|", 1)[0]
        return (
            mode in modes
            or mode in ("metadata", "error")
            or (messages and mode.startswith("messages"))
        )

    return keep


def last_event_id(request: Request) -> str | None:
    value = request.headers.get("last-event-id")
    if value is None or value.strip() == "":
        return None
    if value.strip() not in ("-", "0"):
        parse_event_id(value)  # 422 on a malformed id
    return parse_since(value.strip())


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_run_stream(
    request: Request, thread_id: str, run_id: str, cancel_on_disconnect: bool = False
) -> Response:
    caller = principal(request)
    run = await services(request).runs.get(caller, thread_id, run_id)
    return _stream_response(
        request,
        caller,
        run,
        False,
        since=last_event_id(request),
        keep=stream_mode_filter(request),
        cancel_on_disconnect=cancel_on_disconnect,
    )


@router.get("/runs/{run_id}/stream")
async def join_stateless_run_stream(
    request: Request, run_id: str, cancel_on_disconnect: bool = False
) -> Response:
    caller = principal(request)
    run = await services(request).runs.get_any(caller, run_id)
    return _stream_response(
        request,
        caller,
        run,
        True,
        since=last_event_id(request),
        keep=stream_mode_filter(request),
        cancel_on_disconnect=cancel_on_disconnect,
    )


# Cancel ---------------------------------------------------------------------------------
@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel",
    status_code=202,
    responses={200: {"description": "The run's final output (with wait=1)"}},
)
async def cancel_run(
    request: Request,
    thread_id: str,
    run_id: str,
    wait: bool = False,
    action: str = "interrupt",
) -> Response:
    caller = principal(request)
    container = services(request)
    run = await container.runs.cancel(caller, thread_id, run_id, parse_cancel_action(action))
    if not wait:
        return Response(status_code=202)
    return await _wait(request, caller, run, False, cancel_on_disconnect=False)


@router.post("/runs/cancel", status_code=204)
async def cancel_runs(
    request: Request, body: wire.CancelMany, action: str = "interrupt"
) -> Response:
    await services(request).runs.cancel_many(principal(request), body, parse_cancel_action(action))
    return no_content()
