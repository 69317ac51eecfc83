"""/threads: CRUD, search, copy, prune, state, history and the thread-level stream."""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from garrison.api.context import principal, services
from garrison.api.links import links
from garrison.api.presenters import selected, thread_view
from garrison.api.responses import json_response, no_content, pagination_headers
from garrison.api.runs import last_event_id
from garrison.api.sse import frames, sse_response
from garrison.domain.errors import InvalidArgumentError
from garrison.schemas import threads as wire
from garrison.schemas.common import Checkpoint, ErrorBody
from garrison.services.streams import without_stale_attempts
from garrison.services.threads import extract_path

router = APIRouter(
    prefix="/threads",
    tags=["threads"],
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)

_THREAD_STREAM_MODES = frozenset({"run_modes", "lifecycle", "state_update"})

_THREAD_LINKS = links(
    ("thread_id",),
    ("GET", "/threads/{thread_id}"),
    ("PATCH", "/threads/{thread_id}"),
    ("DELETE", "/threads/{thread_id}"),
    ("POST", "/threads/{thread_id}/copy"),
    ("GET", "/threads/{thread_id}/state"),
    ("POST", "/threads/{thread_id}/state"),
    ("GET", "/threads/{thread_id}/history"),
    ("POST", "/threads/{thread_id}/history"),
    ("POST", "/threads/{thread_id}/runs"),
    ("GET", "/threads/{thread_id}/runs"),
    ("POST", "/threads/{thread_id}/runs/wait"),
    ("POST", "/threads/{thread_id}/runs/crons"),
)


@router.post("", response_model=wire.Thread, responses={409: {"model": ErrorBody}, **_THREAD_LINKS})
async def create_thread(request: Request, body: wire.ThreadCreate) -> Response:
    thread = await services(request).threads.create(principal(request), body)
    return json_response(thread_view(thread))


@router.post("/search", response_model=wire.ThreadSearchResults)
async def search_threads(request: Request, body: wire.ThreadSearch) -> Response:
    found, has_more = await services(request).threads.search(principal(request), body)
    items = []
    for thread in found:
        view = thread_view(thread)
        shown = dict(selected(view, body.select))  # a copy: `extracted` may hold the view
        if body.extract:
            shown["extracted"] = {
                alias: extract_path(view, path) for alias, path in body.extract.items()
            }
        items.append(shown)
    headers = pagination_headers(body.offset, len(found), body.limit, has_more)
    return json_response(items, headers=headers)


@router.post("/count", response_model=int)
async def count_threads(request: Request, body: wire.ThreadCount) -> Response:
    return json_response(await services(request).threads.count(principal(request), body))


@router.post("/prune")
async def prune_threads(request: Request, body: wire.ThreadPrune) -> Response:
    pruned = await services(request).threads.prune(principal(request), body)
    return json_response({"pruned_count": pruned})


@router.get("/{thread_id}", response_model=wire.Thread)
async def get_thread(
    request: Request, thread_id: str, include: Annotated[list[str] | None, Query()] = None
) -> Response:
    thread = await services(request).threads.get(principal(request), thread_id)
    fields = {part.strip() for value in include or [] for part in value.split(",")}
    return json_response(thread_view(thread, include_ttl="ttl" in fields))


@router.patch("/{thread_id}", response_model=wire.Thread)
async def update_thread(request: Request, thread_id: str, body: wire.ThreadPatch) -> Response:
    thread = await services(request).threads.update(principal(request), thread_id, body)
    if "return=minimal" in request.headers.get("prefer", ""):
        return no_content()
    return json_response(thread_view(thread))


@router.delete("/{thread_id}", status_code=204)
async def delete_thread(request: Request, thread_id: str) -> Response:
    await services(request).threads.delete(principal(request), thread_id)
    return no_content()


@router.post(
    "/{thread_id}/copy",
    response_model=wire.Thread,
    responses={409: {"model": ErrorBody}, **_THREAD_LINKS},
)
async def copy_thread(request: Request, thread_id: str) -> Response:
    thread = await services(request).threads.copy(principal(request), thread_id)
    return json_response(thread_view(thread))


# State ----------------------------------------------------------------------------------
@router.get("/{thread_id}/state", response_model=wire.ThreadState)
async def get_thread_state(request: Request, thread_id: str, subgraphs: bool = False) -> Response:
    state = await services(request).threads.get_state(
        principal(request), thread_id, subgraphs=subgraphs
    )
    return json_response(state)


@router.post("/{thread_id}/state", response_model=wire.StateUpdateResponse)
async def update_thread_state(
    request: Request, thread_id: str, body: wire.StateUpdateRequest
) -> Response:
    result = await services(request).threads.update_state(principal(request), thread_id, body)
    return json_response(result)


@router.post("/{thread_id}/state/checkpoint", response_model=wire.ThreadState)
async def get_thread_state_at_checkpoint(
    request: Request, thread_id: str, body: wire.StateCheckpointQuery
) -> Response:
    state = await services(request).threads.get_state(
        principal(request), thread_id, subgraphs=body.subgraphs, checkpoint=body.checkpoint
    )
    return json_response(state)


@router.get("/{thread_id}/state/{checkpoint_id}", response_model=wire.ThreadState)
async def get_thread_state_at(
    request: Request, thread_id: str, checkpoint_id: str, subgraphs: bool = False
) -> Response:
    state = await services(request).threads.get_state(
        principal(request),
        thread_id,
        subgraphs=subgraphs,
        checkpoint=Checkpoint(checkpoint_id=checkpoint_id),
    )
    return json_response(state)


@router.get("/{thread_id}/history", response_model=list[wire.ThreadState])
async def get_thread_history(
    request: Request,
    thread_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: str | None = None,
) -> Response:
    history = await services(request).threads.history(
        principal(request), thread_id, limit=limit, before=before, metadata=None, checkpoint=None
    )
    return json_response(history)


@router.post("/{thread_id}/history", response_model=list[wire.ThreadState])
async def post_thread_history(
    request: Request, thread_id: str, body: wire.HistoryQuery
) -> Response:
    history = await services(request).threads.history(
        principal(request),
        thread_id,
        limit=body.limit,
        before=body.before,
        metadata=body.metadata,
        checkpoint=body.checkpoint,
    )
    return json_response(history)


# Thread stream --------------------------------------------------------------------------
def _thread_filter(request: Request) -> Callable[[str], bool]:
    # The server spelling is `stream_modes` (comma list); the SDK sends `stream_mode`.
    raw = request.query_params.getlist("stream_modes") + request.query_params.getlist("stream_mode")
    modes = {part.strip() for value in raw for part in value.split(",") if part.strip()}
    modes = modes or {"run_modes"}
    unknown = modes - _THREAD_STREAM_MODES
    if unknown:
        raise InvalidArgumentError(
            f"Invalid stream mode {sorted(unknown)[0]!r} for a thread stream; expected "
            f"{', '.join(sorted(_THREAD_STREAM_MODES))}"
        )

    def keep(event: str) -> bool:
        if event == "state_update":
            return "state_update" in modes
        if "run_modes" in modes:
            return True
        return "lifecycle" in modes and event == "metadata"

    return keep


@router.get("/{thread_id}/stream")
async def join_thread_stream(request: Request, thread_id: str) -> Response:
    container, caller = services(request), principal(request)
    thread = await container.threads.get(caller, thread_id)
    keep = _thread_filter(request)
    records = container.broker.subscribe_thread(
        thread.thread_id, last_event_id(request), container.settings.streams.heartbeat_seconds
    )
    return sse_response(frames(without_stale_attempts(records), keep=keep))
