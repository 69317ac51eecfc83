"""JSON for everything a graph can put in its state or stream: LangChain messages, pydantic
models, dataclasses (Interrupt, Command), Send packets, sets, exceptions.

One encoder serves the wire, the stored thread values and stream replay, so a value looks
the same whichever way a client reads it.
"""

import base64
import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _encode(obj: Any) -> Any:
    # orjson calls this only for types it does not know natively.
    if isinstance(obj, BaseModel):  # LangChain messages are pydantic models
        return obj.model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # Slotted or generic dataclasses (langgraph's Interrupt) escape orjson's fast path.
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    if isinstance(obj, Mapping):
        return dict(obj)
    node = getattr(obj, "node", None)
    if node is not None and hasattr(obj, "arg"):  # langgraph.types.Send
        return {"node": node, "arg": obj.arg}
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):  # LangChain Serializable objects outside pydantic
        return to_json()
    # Never fail a run for a value we cannot map; show what it was instead.
    return repr(obj)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return orjson.dumps(obj, default=_encode, option=_OPTIONS)


def dumps_text(obj: Any) -> str:
    return dumps(obj).decode("utf-8")


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def to_jsonable(obj: Any) -> Any:
    """`obj` as plain JSON types (dicts, lists, str, numbers, bool, None)."""
    return orjson.loads(dumps(obj))
