"""The store as one tenant sees it: a hidden leading namespace label per tenant.

Graphs and the store API both go through `TenantScopedStore`, so an item a graph writes at
`("memories", "u1")` is the item a client reads at `["memories", "u1"]`, while the database
holds it at `(<tenant>, "memories", "u1")` and no other tenant can name it.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from garrison.domain.principal import current_tenant

# Tenant ids come from authentication and may hold characters a namespace label cannot
# (".", NUL) or that match as a wildcard ("*"); escaping them keeps the mapping one-to-one.
_ESCAPES = {"%": "%25", ".": "%2E", "*": "%2A", "\x00": "%00"}


def tenant_label(tenant_id: str) -> str:
    """The hidden namespace label of a tenant."""
    if not tenant_id:
        raise ValueError("a tenant id must not be empty")
    return "".join(_ESCAPES.get(char, char) for char in tenant_id)


def scope_op(op: Op, label: str) -> Op:
    """`op` with every namespace moved under the tenant's label."""
    if isinstance(op, GetOp | PutOp):
        return op._replace(namespace=(label, *op.namespace))
    if isinstance(op, SearchOp):
        return op._replace(namespace_prefix=(label, *op.namespace_prefix))
    if isinstance(op, ListNamespacesOp):
        return op._replace(
            match_conditions=scope_conditions(op.match_conditions or (), label),
            max_depth=None if op.max_depth is None else op.max_depth + 1,
        )
    raise TypeError(f"unknown store operation {type(op).__name__}")


def scope_conditions(
    conditions: Sequence[MatchCondition], label: str
) -> tuple[MatchCondition, ...]:
    """Namespace match conditions that hold for the visible namespace.

    Prefixes gain the tenant label. A suffix must not reach into the hidden label: a visible
    namespace shorter than the suffix cannot match it, so a guard prefix of wildcards
    requires the visible namespace to be at least as long as the longest suffix.
    """
    prefixes = [c.path for c in conditions if c.match_type == "prefix"]
    longest_suffix = max((len(c.path) for c in conditions if c.match_type == "suffix"), default=0)
    scoped = [MatchCondition("prefix", (label, *path)) for path in prefixes]
    if not prefixes or longest_suffix > max(len(path) for path in prefixes):
        scoped.append(MatchCondition("prefix", (label, *("*",) * longest_suffix)))
    scoped.extend(c for c in conditions if c.match_type != "prefix")
    return tuple(scoped)


def unscope_result(op: Op, result: Result, label: str) -> Result:
    """`result` of the scoped `op` with the tenant's label removed from every namespace.

    Anything outside the tenant is dropped: a store bug must not become a data leak.
    """
    if result is None:
        return None
    if isinstance(op, GetOp):
        assert isinstance(result, Item)
        return _visible_item(result) if result.namespace[:1] == (label,) else None
    if isinstance(op, SearchOp):
        items = cast(list[Item], result)
        return [_visible_item(item) for item in items if item.namespace[:1] == (label,)]
    if isinstance(op, ListNamespacesOp):
        namespaces = cast(list[tuple[str, ...]], result)
        return [ns[1:] for ns in namespaces if ns[:1] == (label,) and len(ns) > 1]
    return result


def _visible_item(item: Item) -> Item:
    fields: dict[str, Any] = {
        "namespace": item.namespace[1:],
        "key": item.key,
        "value": item.value,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
    if isinstance(item, SearchItem):
        return SearchItem(**fields, score=item.score)
    return Item(**fields)


class TenantScopedStore(BaseStore):
    """Wraps a store so that every operation stays inside one tenant.

    The tenant is read when an operation starts, in the caller's context: by default the
    `current_tenant` context variable, which the worker sets for each run.
    """

    def __init__(self, store: BaseStore, *, tenant: Callable[[], str] = current_tenant.get) -> None:
        self._store = store
        self._tenant = tenant
        # BaseStore resolves default TTLs and refresh-on-read from these before batching.
        self.supports_ttl = store.supports_ttl
        self.ttl_config = store.ttl_config

    @property
    def inner(self) -> BaseStore:
        return self._store

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        label, listed = tenant_label(self._tenant()), list(ops)
        results = self._store.batch([scope_op(op, label) for op in listed])
        return [unscope_result(scoped, r, label) for scoped, r in zip(listed, results, strict=True)]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        label, listed = tenant_label(self._tenant()), list(ops)
        results = await self._store.abatch([scope_op(op, label) for op in listed])
        return [unscope_result(scoped, r, label) for scoped, r in zip(listed, results, strict=True)]


__all__ = ["TenantScopedStore", "scope_conditions", "scope_op", "tenant_label", "unscope_result"]
