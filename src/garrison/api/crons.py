"""/runs/crons and /threads/{thread_id}/runs/crons"""

from fastapi import APIRouter, Request, Response

from garrison.api.context import principal, services
from garrison.api.links import links
from garrison.api.presenters import cron_view, views
from garrison.api.responses import json_response, no_content, pagination_headers
from garrison.schemas import crons as wire
from garrison.schemas.common import ErrorBody

router = APIRouter(tags=["crons"], responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})


_CRON_LINKS = links(
    ("cron_id",),
    ("GET", "/runs/crons/{cron_id}"),
    ("PATCH", "/runs/crons/{cron_id}"),
    ("DELETE", "/runs/crons/{cron_id}"),
)


@router.post("/threads/{thread_id}/runs/crons", response_model=wire.Cron, responses=_CRON_LINKS)
async def create_thread_cron(request: Request, thread_id: str, body: wire.CronCreate) -> Response:
    cron = await services(request).crons.create(principal(request), thread_id, body)
    return json_response(cron_view(cron))


@router.post("/runs/crons", response_model=wire.Cron, responses=_CRON_LINKS)
async def create_cron(request: Request, body: wire.CronCreate) -> Response:
    cron = await services(request).crons.create(principal(request), None, body)
    return json_response(cron_view(cron))


@router.post("/runs/crons/search", response_model=wire.CronSearchResults)
async def search_crons(request: Request, body: wire.CronSearch) -> Response:
    found, has_more = await services(request).crons.search(principal(request), body)
    headers = pagination_headers(body.offset, len(found), body.limit, has_more)
    return json_response(views(found, cron_view, body.select), headers=headers)


@router.post("/runs/crons/count", response_model=int)
async def count_crons(request: Request, body: wire.CronCount) -> Response:
    return json_response(await services(request).crons.count(principal(request), body))


@router.get("/runs/crons/{cron_id}", response_model=wire.Cron)
async def get_cron(request: Request, cron_id: str) -> Response:
    cron = await services(request).crons.get(principal(request), cron_id)
    return json_response(cron_view(cron))


@router.patch(
    "/runs/crons/{cron_id}", response_model=wire.Cron, responses={400: {"model": ErrorBody}}
)
async def update_cron(request: Request, cron_id: str, body: wire.CronPatch) -> Response:
    cron = await services(request).crons.update(principal(request), cron_id, body)
    return json_response(cron_view(cron))


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(request: Request, cron_id: str) -> Response:
    await services(request).crons.delete(principal(request), cron_id)
    return no_content()
