"""Building blocks shared by every resource's wire models."""

import operator
from datetime import datetime
from types import GenericAlias
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

Json = dict[str, Any]
SortOrder = Literal["asc", "desc"]
IfExists = Literal["raise", "do_nothing"]

# Offsets and versions end up in SQL integers: past this they overflow (a 500) rather than
# page through anything real.
MAX_SQL_INT = 2**31 - 1
# A TTL or delay longer than a century is a typo; far larger ones overflow `datetime`.
MAX_MINUTES = 100 * 366 * 24 * 60


class Body(BaseModel):
    """A request body. Unknown fields are accepted: newer SDKs send fields this server
    version may not know, and must not be refused for it. Known fields are strict: `0` is
    not `false` and `"5"` is not `5`, as the OpenAPI document says (JSON has real types)."""

    model_config = ConfigDict(extra="allow", strict=True)


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
