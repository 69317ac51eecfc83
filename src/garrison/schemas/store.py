"""The long-term store."""

from typing import Literal

from pydantic import Field, field_validator

from garrison.schemas.common import MAX_MINUTES, MAX_SQL_INT, Body, Json, Wire


def _check_labels(namespace: list[str]) -> list[str]:
    for label in namespace:
        if not label:
            raise ValueError("namespace labels must be non-empty strings")
        if "." in label:
            raise ValueError(f"namespace labels must not contain '.', got {label!r}")
    return namespace


class StorePut(Body):
    namespace: list[str] = Field(min_length=1)
    key: str = Field(min_length=1)
    value: Json
    index: Literal[False] | list[str] | None = None
    ttl: float | None = Field(default=None, gt=0, le=MAX_MINUTES, description="minutes")

    _labels = field_validator("namespace")(_check_labels)


class StoreDelete(Body):
    namespace: list[str] = Field(min_length=1)
    key: str = Field(min_length=1)

    _labels = field_validator("namespace")(_check_labels)


class StoreSearch(Body):
    namespace_prefix: list[str] = Field(default_factory=list)
    filter: Json | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_SQL_INT)
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreListNamespaces(Body):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = Field(default=None, ge=1, le=MAX_SQL_INT)
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_SQL_INT)


class Item(Wire):
    namespace: list[str]
    key: str
    value: Json
    created_at: str
    updated_at: str


class SearchItem(Item):
    score: float | None = None


class SearchItems(Wire):
    items: list[SearchItem]


class Namespaces(Wire):
    namespaces: list[list[str]]
