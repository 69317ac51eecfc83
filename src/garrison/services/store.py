"""The long-term store as the API serves it: the caller's tenant's items only."""

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from langgraph.store.base import NOT_PROVIDED, BaseStore, InvalidNamespaceError, Item, SearchItem

from garrison.domain.errors import InvalidArgumentError
from garrison.domain.principal import Principal
from garrison.runtime.scoped_store import TenantScopedStore
from garrison.schemas import store as wire

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
    def __init__(self, store: BaseStore) -> None:
        self._store = store

    def _scoped(self, principal: Principal) -> TenantScopedStore:
        tenant = principal.tenant_id
        return TenantScopedStore(self._store, tenant=lambda: tenant)

    async def put(self, principal: Principal, body: wire.StorePut) -> None:
        with _namespace_errors():
            await self._scoped(principal).aput(
                tuple(body.namespace),
                body.key,
                body.value,
                index=body.index,
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
        with _namespace_errors():
            return await self._scoped(principal).aget(namespace, key, refresh_ttl=refresh_ttl)

    async def delete(self, principal: Principal, body: wire.StoreDelete) -> None:
        with _namespace_errors():
            await self._scoped(principal).adelete(tuple(body.namespace), body.key)

    async def search(self, principal: Principal, body: wire.StoreSearch) -> list[SearchItem]:
        check_filter(body.filter)
        with _namespace_errors():
            return await self._scoped(principal).asearch(
                tuple(body.namespace_prefix),
                query=body.query,
                filter=body.filter,
                limit=body.limit,
                offset=body.offset,
                refresh_ttl=body.refresh_ttl,
            )

    async def list_namespaces(
        self, principal: Principal, body: wire.StoreListNamespaces
    ) -> list[tuple[str, ...]]:
        with _namespace_errors():
            return await self._scoped(principal).alist_namespaces(
                prefix=tuple(body.prefix) if body.prefix else None,
                suffix=tuple(body.suffix) if body.suffix else None,
                max_depth=body.max_depth,
                limit=body.limit,
                offset=body.offset,
            )
