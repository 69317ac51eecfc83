"""/store: the long-term store's items and namespaces, scoped to the caller's tenant."""

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from langgraph.store.base import Item, SearchItem

from garrison.api.context import principal, services
from garrison.api.responses import json_response, no_content
from garrison.domain.errors import BadRequestError
from garrison.schemas import store as wire
from garrison.schemas.common import ErrorBody, Json

router = APIRouter(
    prefix="/store",
    tags=["store"],
    responses={422: {"model": ErrorBody}},
)


def _timestamp(moment: datetime) -> datetime:
    # The SQLite store keeps CURRENT_TIMESTAMP: UTC without an offset. Say so on the wire.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def item_view(item: Item) -> Json:
    view: Json = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": _timestamp(item.created_at),
        "updated_at": _timestamp(item.updated_at),
    }
    if isinstance(item, SearchItem):
        view["score"] = item.score
    return view


@router.put("/items", status_code=204)
async def put_item(request: Request, body: wire.StorePut) -> Response:
    await services(request).store.put(principal(request), body)
    return no_content()


@router.get("/items", response_model=wire.Item | None, responses={400: {"model": ErrorBody}})
async def get_item(
    request: Request,
    key: str | None = None,
    namespace: str | None = None,
    refresh_ttl: bool | None = None,
) -> Response:
    if not key:
        raise BadRequestError("Key is required")
    # The namespace travels dot-joined ("a.b.c"); labels cannot contain dots.
    labels = tuple(namespace.split(".")) if namespace else ()
    item = await services(request).store.get(
        principal(request), labels, key, refresh_ttl=refresh_ttl
    )
    return json_response(item_view(item) if item is not None else None)


@router.delete("/items", status_code=204)
async def delete_item(request: Request, body: wire.StoreDelete) -> Response:
    await services(request).store.delete(principal(request), body)
    return no_content()


@router.post("/items/search", response_model=wire.SearchItems)
async def search_items(request: Request, body: wire.StoreSearch) -> Response:
    items = await services(request).store.search(principal(request), body)
    return json_response({"items": [item_view(item) for item in items]})


@router.post("/namespaces", response_model=wire.Namespaces)
async def list_namespaces(request: Request, body: wire.StoreListNamespaces) -> Response:
    namespaces = await services(request).store.list_namespaces(principal(request), body)
    return json_response({"namespaces": [list(namespace) for namespace in namespaces]})
