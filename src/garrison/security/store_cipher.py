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
from typing import Any, cast

import orjson
from langgraph.store.base import Item, Op, PutOp, Result, SearchOp

# Private, but it is the reference semantics of store filters ($eq, $gt, nested dicts).
from langgraph.store.memory import _compare_values

from garrison.security.envelope import EnvelopeCipher, is_envelope, refuse_plaintext

SEALED_FIELD = "__garrison_sealed__"
_ALL = 2**31 - 1  # "no limit" for SQL LIMIT clauses in both stores


def item_context(namespace: Sequence[str], key: str) -> tuple[str, ...]:
    return ("store-value", str(len(namespace)), *namespace, key)


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


__all__ = ["SEALED_FIELD", "StoreCipher", "item_context"]
