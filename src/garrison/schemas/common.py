"""Building blocks shared by every resource's wire models."""

import operator
from datetime import datetime
from types import GenericAlias
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

Json = dict[str, Any]
SortOrder = Literal["asc", "desc"]
IfExists = Literal["raise", "do_nothing"]

# Offsets and versions end up in SQL integers: past this they overflow (a 500) rather than
# page through anything real.
MAX_SQL_INT = 2**31 - 1
# A TTL or delay longer than a century is a typo; far larger ones overflow `datetime`.
MAX_MINUTES = 100 * 366 * 24 * 60
# JSON integers are unbounded, but orjson, SQLite and query parameters stop at 64 bits.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _refuse_huge_integers(data: Any) -> Any:
    pending = [data]
    while pending:  # iterative: a deeply nested body must not exhaust the stack
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            raise ValueError("integers must fit in 64 bits")
    return data


class Body(BaseModel):
    """A request body. Unknown fields are accepted: newer SDKs send fields this server
    version may not know, and must not be refused for it. Known fields are strict: `0` is
    not `false` and `"5"` is not `5`, as the OpenAPI document says (JSON has real types)."""

    model_config = ConfigDict(extra="allow", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        # Anywhere in the body (metadata, input, store values): it is all stored as JSON.
        return _refuse_huge_integers(data)


class Page(Body):
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_SQL_INT)


class Wire(BaseModel):
    """A response shape, for the OpenAPI document."""

    model_config = ConfigDict(extra="allow")


class ErrorBody(Wire):
    detail: str


class Config(Body):
    tags: list[str] | None = None
    recursion_limit: int | None = Field(default=None, ge=1)
    configurable: Json | None = None


class Checkpoint(Body):
    thread_id: str | None = None
    checkpoint_ns: str | None = ""
    checkpoint_id: str | None = None
    checkpoint_map: Json | None = None


class Timestamped(Wire):
    created_at: datetime
    updated_at: datetime


def search_results(model: type[Wire]) -> Any:
    """The response of a search with `select`: whole `model`s, or only the chosen fields
    (a `{model}Selection`: the same fields, none required)."""
    fields: dict[str, Any] = {
        name: (operator.or_(info.annotation, None), None)
        for name, info in model.model_fields.items()
    }
    selection = create_model(f"{model.__name__}Selection", __base__=Wire, **fields)
    return GenericAlias(list, (model | selection,))
