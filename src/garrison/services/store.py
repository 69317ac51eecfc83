"""The long-term store as the API serves it: the caller's tenant's items only."""

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from langgraph.store.base import NOT_PROVIDED, BaseStore, InvalidNamespaceError, Item, SearchItem

from garrison.domain.access import AccessFilter
from garrison.domain.errors import InvalidArgumentError
from garrison.domain.principal import Principal
from garrison.runtime.scoped_store import TenantScopedStore
from garrison.schemas import store as wire
from garrison.services.authorization import AllowAll, Authorizer

# The filter language of LangGraph's SQL stores: `{field: value}` for equality, or
# `{field: {operator: value}}`; anything else fails inside the store, so refuse it here.
_FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
_FILTER_KEY = re.compile(r"^[a-zA-Z0-9_.-]+$")


def check_filter(filter_: dict[str, Any] | None) -> None:
    """Raise InvalidArgumentError for a filter the store cannot express."""
    for key, condition in (filter_ or {}).items():
        if not _FILTER_KEY.match(key):
            raise InvalidArgumentError(
                f"Invalid filter key {key!r}: use letters, digits, '_', '-' and '.' (nesting)"
            )
        if isinstance(condition, dict):
            unknown = sorted(set(condition) - _FILTER_OPERATORS)
            if unknown:
                supported = ", ".join(sorted(_FILTER_OPERATORS))
                raise InvalidArgumentError(
                    f"Unsupported filter operator {unknown[0]!r} for {key!r} (supported: "
                    f"{supported})"
                )


@contextlib.contextmanager
def _namespace_errors() -> Iterator[None]:
    try:
        yield
    except InvalidNamespaceError as exc:
        raise InvalidArgumentError(str(exc)) from None


class StoreService:
    """Custom auth store handlers may rewrite the namespace (typically to prefix it with
    the user's identity); a filter they return is AND-ed into searches and must match the
    value of an item read by key."""

    def __init__(self, store: BaseStore, authorizer: Authorizer | None = None) -> None:
        self._store = store
        self._authorizer = authorizer or AllowAll()

    async def _decide(
        self, principal: Principal, action: str, value: dict[str, Any]
    ) -> AccessFilter | None:
        return await self._authorizer.authorize(principal, "store", action, value)

    def _scoped(self, principal: Principal) -> TenantScopedStore:
        tenant = principal.tenant_id
        return TenantScopedStore(self._store, tenant=lambda: tenant)

    async def put(self, principal: Principal, body: wire.StorePut) -> None:
        request: dict[str, Any] = {
            "namespace": tuple(body.namespace),
            "key": body.key,
            "value": body.value,
            "index": body.index,
        }
        await self._decide(principal, "put", request)
        with _namespace_errors():
            await self._scoped(principal).aput(
                _namespace(request["namespace"]),
                request["key"],
                request["value"],
                index=request["index"],
                # Absent → the project's store.ttl.default_ttl, as LangGraph Server does.
                ttl=NOT_PROVIDED if body.ttl is None else body.ttl,
            )

    async def get(
        self,
        principal: Principal,
        namespace: tuple[str, ...],
        key: str,
        *,
        refresh_ttl: bool | None = None,
    ) -> Item | None:
        request: dict[str, Any] = {"namespace": namespace, "key": key}
        access = await self._decide(principal, "get", request)
        with _namespace_errors():
            item = await self._scoped(principal).aget(
                _namespace(request["namespace"]), request["key"], refresh_ttl=refresh_ttl
            )
        if item is not None and access is not None and not access.admits(item.value, None):
            return None
        return item

    async def delete(self, principal: Principal, body: wire.StoreDelete) -> None:
        request: dict[str, Any] = {"namespace": tuple(body.namespace), "key": body.key}
        await self._decide(principal, "delete", request)
        with _namespace_errors():
            await self._scoped(principal).adelete(_namespace(request["namespace"]), request["key"])

    async def search(self, principal: Principal, body: wire.StoreSearch) -> list[SearchItem]:
        check_filter(body.filter)
        request: dict[str, Any] = {
            "namespace": tuple(body.namespace_prefix),
            "filter": body.filter,
            "limit": body.limit,
            "offset": body.offset,
            "query": body.query,
        }
        access = await self._decide(principal, "search", request)
        filter_ = _with_access(request["filter"], access)
        check_filter(filter_)
        with _namespace_errors():
            return await self._scoped(principal).asearch(
                _namespace(request["namespace"]),
                query=request["query"],
                filter=filter_,
                limit=body.limit,
                offset=body.offset,
                refresh_ttl=body.refresh_ttl,
            )

    async def list_namespaces(
        self, principal: Principal, body: wire.StoreListNamespaces
    ) -> list[tuple[str, ...]]:
        request: dict[str, Any] = {
            "namespace": tuple(body.prefix) if body.prefix else None,
            "suffix": tuple(body.suffix) if body.suffix else None,
            "max_depth": body.max_depth,
            "limit": body.limit,
            "offset": body.offset,
        }
        await self._decide(principal, "list_namespaces", request)
        with _namespace_errors():
            return await self._scoped(principal).alist_namespaces(
                prefix=_namespace(request["namespace"]) if request["namespace"] else None,
                suffix=tuple(body.suffix) if body.suffix else None,
                max_depth=body.max_depth,
                limit=body.limit,
                offset=body.offset,
            )


def _namespace(value: Any) -> tuple[str, ...]:
    """A namespace a handler may have rewritten as a list or a tuple."""
    if isinstance(value, str) or not all(isinstance(part, str) for part in value):
        raise InvalidArgumentError("An auth handler produced an invalid store namespace")
    return tuple(value)


def _with_access(
    filter_: dict[str, Any] | None, access: AccessFilter | None
) -> dict[str, Any] | None:
    """The item filter AND the handler's: each handler key constrains the item too (on a
    key both name, the handler's condition is the one kept, so nothing hidden leaks)."""
    if access is None:
        return filter_
    combined = dict(filter_ or {})
    for pattern in access.metadata:
        combined.update(pattern)
    return combined or None
