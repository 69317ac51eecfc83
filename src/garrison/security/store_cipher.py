"""Encrypts long-term store values, each bound to its (tenant namespace, key).

A value is stored as `{SEALED_FIELD: base64(envelope)}`; the namespace (whose first label
is the tenant's, see `runtime.scoped_store`) and the key are the associated data, so a
value copied to another item, namespace or tenant fails to decrypt. Namespaces, keys,
timestamps and semantic-index vectors stay in clear: the stores list, expire and rank by
them.

A search `filter` matches values, which the database can no longer read: such searches
fetch the candidate items unfiltered and match the decrypted values here, with LangGraph's
own in-memory matcher, then apply offset and limit (cost: every item under the prefix is
read and decrypted).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from langgraph.store.base import GetOp, Item, Op, PutOp, Result, SearchOp

# Private, but it is the reference semantics of store filters ($eq, $gt, nested dicts).
from langgraph.store.memory import _compare_values

from garrison.security.envelope import (
    EnvelopeCipher,
    is_envelope,
    kid_of_base64,
    refuse_plaintext,
)

SEALED_FIELD = "__garrison_sealed__"
_ALL = 2**31 - 1  # "no limit" for SQL LIMIT clauses in both stores


def item_context(namespace: Sequence[str], key: str) -> tuple[str, ...]:
    return ("store-value", str(len(namespace)), *namespace, key)


@dataclass(frozen=True, slots=True)
class StaleItem:
    """An item read under an older key, re-sealed: the store writes `value` where the
    item still holds the envelope `expected` it was read with (a compare-and-set)."""

    prefix: str  # the namespace as the stores keep it, labels joined with "."
    key: str
    value: dict[str, Any]
    expected: str  # the base64 envelope that was read


class StoreCipher:
    def __init__(self, envelopes: EnvelopeCipher) -> None:
        self.envelopes = envelopes

    def seal(self, namespace: Sequence[str], key: str, value: Mapping[str, Any]) -> dict[str, Any]:
        envelope = self.envelopes.seal(orjson.dumps(value), item_context(namespace, key))
        return {SEALED_FIELD: base64.b64encode(envelope).decode("ascii")}

    def open(self, namespace: Sequence[str], key: str, stored: Mapping[str, Any]) -> dict[str, Any]:
        envelope = _envelope(stored)
        if envelope is None:
            if self.envelopes.strict:
                raise refuse_plaintext("store-value")
            return dict(stored)  # written before encryption was enabled
        return cast(
            dict[str, Any],
            orjson.loads(self.envelopes.open(envelope, item_context(namespace, key))),
        )

    def rewrap(
        self, namespace: Sequence[str], key: str, stored: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The value under the active key; None when it already is."""
        envelope = _envelope(stored)
        if envelope is not None and self.envelopes.is_current(envelope):
            return None
        return self.seal(namespace, key, self.open(namespace, key, stored))

    def stale_items(self, ops: Sequence[Op], results: Sequence[Result]) -> list[StaleItem]:
        """The items got by key (`GetOp`) whose envelope is under an older key, re-sealed
        under the active one (lazy re-encryption). Call before `open_results`, on the
        stored values; a current item costs a header check, not a decryption."""
        stale: list[StaleItem] = []
        for op, result in zip(ops, results, strict=True):
            if not (isinstance(op, GetOp) and isinstance(result, Item)):
                continue
            text = result.value.get(SEALED_FIELD) if len(result.value) == 1 else None
            if isinstance(text, str) and self.envelopes.is_stale_kid(kid_of_base64(text)):
                value = self.rewrap(result.namespace, result.key, result.value)
                if value is not None:
                    prefix = ".".join(result.namespace)
                    stale.append(StaleItem(prefix, result.key, value, text))
        return stale

    # Batches ---------------------------------------------------------------------------
    def seal_ops(self, ops: Sequence[Op], *, puts: bool = True) -> list[Op]:
        """Puts carry sealed values (unless `puts` is False: the caller seals them later);
        filtered searches run unfiltered (see `open_results`)."""
        sealed: list[Op] = []
        for op in ops:
            if puts and isinstance(op, PutOp) and op.value is not None:
                op = op._replace(value=self.seal(op.namespace, op.key, op.value))
            elif isinstance(op, SearchOp) and op.filter:
                op = op._replace(filter=None, limit=_ALL, offset=0)
            sealed.append(op)
        return sealed

    def open_results(self, ops: Sequence[Op], results: list[Result]) -> list[Result]:
        """`results` of the sealed ops, decrypted, with the original searches' filters."""
        for position, (op, result) in enumerate(zip(ops, results, strict=True)):
            if isinstance(result, Item):
                self._open_item(result)
            elif isinstance(op, SearchOp) and isinstance(result, list):
                items = cast(list[Item], result)
                for item in items:
                    self._open_item(item)
                if op.filter:
                    found = [item for item in items if _matches(item.value, op.filter)]
                    results[position] = found[op.offset : op.offset + op.limit]
        return results

    def _open_item(self, item: Item) -> None:
        item.value = self.open(item.namespace, item.key, item.value)


def _envelope(stored: Mapping[str, Any]) -> bytes | None:
    sealed = stored.get(SEALED_FIELD) if len(stored) == 1 else None
    if not isinstance(sealed, str):
        return None
    envelope = base64.b64decode(sealed)
    return envelope if is_envelope(envelope) else None


def _matches(value: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    return all(_compare_values(value.get(key), wanted) for key, wanted in filter.items())


__all__ = ["SEALED_FIELD", "StaleItem", "StoreCipher", "item_context"]
