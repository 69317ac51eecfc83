"""Building blocks shared by every resource's wire models."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Json = dict[str, Any]
SortOrder = Literal["asc", "desc"]
IfExists = Literal["raise", "do_nothing"]


class Body(BaseModel):
    """A request body. Unknown fields are accepted: newer SDKs send fields this server
    version may not know, and must not be refused for it."""

    model_config = ConfigDict(extra="allow")


class Page(Body):
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


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
