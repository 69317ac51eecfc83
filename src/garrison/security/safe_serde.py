"""The checkpoint serializer: msgpack with a strict type allowlist, never pickle.

LangGraph's default `JsonPlusSerializer` imports and calls any `module.name` a stored row
names (it only warns), so anyone who can write the checkpoint tables could run code in
the server. Here only LangGraph's own safe types (`SAFE_MSGPACK_TYPES`: messages,
datetimes, Send, Command...) and the operator's explicit `encryption.msgpack_allowlist`
are rebuilt; any other type comes back as its plain serialized data and nothing is
imported. `pickle_fallback` stays off, and lc:2 JSON constructors are only revived for the
same safe types.

In strict encryption mode the savers get `EnvelopeOnlySerializer` instead: once every row
is sealed, the stored rows hold envelopes (`bytes`) in plain containers and nothing else,
so any other type tag, or any object to rebuild outside an envelope, is refused before
anything is rebuilt. Decrypted values go through `safe_serializer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import ormsgpack
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from garrison.security.envelope import refuse_plaintext


def parse_allowlist(entries: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """`module:Name` (or `module.Name`) entries as the serializer's (module, name) pairs."""
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        module, sep, name = entry.partition(":")
        if not sep:
            module, _, name = entry.rpartition(".")
        if not module or not name:
            raise ValueError(f"msgpack allowlist entry {entry!r} is not `module:Name`")
        pairs.append((module, name))
    return tuple(pairs)


def safe_serializer(allowlist: Iterable[str] = ()) -> JsonPlusSerializer:
    allowed = parse_allowlist(allowlist)
    return JsonPlusSerializer(
        pickle_fallback=False,
        allowed_json_modules=None,
        # None: only SAFE_MSGPACK_TYPES (the library's own strict mode).
        allowed_msgpack_modules=allowed or None,
    )


class EnvelopeOnlySerializer(SerializerProtocol):
    """The savers' serializer in strict mode: containers and envelopes, nothing else."""

    def __init__(self) -> None:
        self._writer = safe_serializer()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return self._writer.dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, payload = data
        if type_ == "bytes":
            return payload
        if type_ == "null":
            return None
        if type_ != "msgpack":
            raise refuse_plaintext(f"{type_!r} checkpoint row")
        objects: list[int] = []

        def refuse_objects(code: int, _: bytes) -> NoReturn:
            objects.append(code)
            raise TypeError("an object outside an envelope")

        try:
            return ormsgpack.unpackb(
                payload, ext_hook=refuse_objects, option=ormsgpack.OPT_NON_STR_KEYS
            )
        except ValueError:
            if objects:  # ormsgpack re-raises the hook's error as a bare ValueError
                raise refuse_plaintext("object in a checkpoint row") from None
            raise


__all__ = ["EnvelopeOnlySerializer", "parse_allowlist", "safe_serializer"]
