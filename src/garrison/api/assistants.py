"""/assistants"""

from fastapi import APIRouter, Query, Request, Response

from garrison.api.context import principal, services
from garrison.api.links import links
from garrison.api.presenters import assistant_view, views
from garrison.api.responses import json_response, no_content, pagination_headers
from garrison.domain.errors import InvalidArgumentError
from garrison.schemas import assistants as wire
from garrison.schemas.common import ErrorBody

router = APIRouter(
    prefix="/assistants",
    tags=["assistants"],
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)


_ASSISTANT_LINKS = links(
    ("assistant_id",),
    ("GET", "/assistants/{assistant_id}"),
    ("PATCH", "/assistants/{assistant_id}"),
    ("DELETE", "/assistants/{assistant_id}"),
    ("GET", "/assistants/{assistant_id}/graph"),
    ("GET", "/assistants/{assistant_id}/schemas"),
    ("GET", "/assistants/{assistant_id}/subgraphs"),
    ("POST", "/assistants/{assistant_id}/versions"),
    ("POST", "/assistants/{assistant_id}/latest"),
)


@router.post(
    "", response_model=wire.Assistant, responses={409: {"model": ErrorBody}, **_ASSISTANT_LINKS}
)
async def create_assistant(request: Request, body: wire.AssistantCreate) -> Response:
    assistant = await services(request).assistants.create(principal(request), body)
    return json_response(assistant_view(assistant))


@router.post("/search", response_model=wire.AssistantSearchResults)
async def search_assistants(request: Request, body: wire.AssistantSearch) -> Response:
    found, has_more = await services(request).assistants.search(principal(request), body)
    headers = pagination_headers(body.offset, len(found), body.limit, has_more)
    return json_response(views(found, assistant_view, body.select), headers=headers)


@router.post("/count", response_model=int)
async def count_assistants(request: Request, body: wire.AssistantCount) -> Response:
    return json_response(await services(request).assistants.count(principal(request), body))


@router.get("/{assistant_id}", response_model=wire.Assistant)
async def get_assistant(request: Request, assistant_id: str) -> Response:
    assistant = await services(request).assistants.get(principal(request), assistant_id)
    return json_response(assistant_view(assistant))


@router.patch("/{assistant_id}", response_model=wire.Assistant)
async def update_assistant(
    request: Request, assistant_id: str, body: wire.AssistantPatch
) -> Response:
    assistant = await services(request).assistants.update(principal(request), assistant_id, body)
    return json_response(assistant_view(assistant))


@router.delete("/{assistant_id}", status_code=204)
async def delete_assistant(
    request: Request, assistant_id: str, delete_threads: bool = False
) -> Response:
    container, caller = services(request), principal(request)
    assistant = await container.assistants.get(caller, assistant_id)
    if delete_threads:
        await container.threads.delete_for_assistant(caller, assistant.assistant_id)
    await container.assistants.delete(caller, assistant.assistant_id)
    return no_content()


def _xray(value: str) -> bool | int:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered.isdigit() and int(lowered) > 0:
        return int(lowered)
    raise InvalidArgumentError("xray must be true, false or a positive integer")


@router.get("/{assistant_id}/graph")
async def get_assistant_graph(
    request: Request, assistant_id: str, xray: str = Query("false")
) -> Response:
    drawing = await services(request).assistants.draw(principal(request), assistant_id, _xray(xray))
    return json_response(drawing)


@router.get("/{assistant_id}/schemas", response_model=wire.GraphSchemas)
async def get_assistant_schemas(request: Request, assistant_id: str) -> Response:
    return json_response(
        await services(request).assistants.schemas(principal(request), assistant_id)
    )


@router.get("/{assistant_id}/subgraphs")
async def get_assistant_subgraphs(
    request: Request, assistant_id: str, recurse: bool = False
) -> Response:
    found = await services(request).assistants.subgraphs(
        principal(request), assistant_id, None, recurse
    )
    return json_response(found)


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def get_assistant_subgraphs_at(
    request: Request, assistant_id: str, namespace: str, recurse: bool = False
) -> Response:
    found = await services(request).assistants.subgraphs(
        principal(request), assistant_id, namespace, recurse
    )
    return json_response(found)


@router.post("/{assistant_id}/versions", response_model=list[wire.Assistant])
async def get_assistant_versions(
    request: Request, assistant_id: str, body: wire.AssistantVersionsQuery
) -> Response:
    versions = await services(request).assistants.versions(principal(request), assistant_id, body)
    return json_response([assistant_view(v) for v in versions])


@router.post("/{assistant_id}/latest", response_model=wire.Assistant)
async def set_latest_assistant_version(
    request: Request, assistant_id: str, body: wire.AssistantSetLatest
) -> Response:
    assistant = await services(request).assistants.set_latest(
        principal(request), assistant_id, body.version
    )
    return json_response(assistant_view(assistant))
