"""Assistants."""

from typing import Literal

from pydantic import Field

from garrison.schemas.common import (
    MAX_SQL_INT,
    Body,
    Config,
    IfExists,
    Json,
    Page,
    SortOrder,
    Timestamped,
    search_results,
)

AssistantSortBy = Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"]
AssistantField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]


class AssistantCreate(Body):
    graph_id: str = Field(min_length=1)
    assistant_id: str | None = None
    config: Config | None = None
    context: Json | None = None
    metadata: Json | None = None
    if_exists: IfExists = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(Body):
    graph_id: str | None = None
    config: Config | None = None
    context: Json | None = None
    metadata: Json | None = None
    name: str | None = None
    description: str | None = None


class AssistantSearch(Page):
    metadata: Json | None = None
    graph_id: str | None = None
    name: str | None = None
    sort_by: AssistantSortBy | None = None
    sort_order: SortOrder | None = None
    select: list[AssistantField] | None = None


class AssistantCount(Body):
    metadata: Json | None = None
    graph_id: str | None = None
    name: str | None = None


class AssistantVersionsQuery(Page):
    metadata: Json | None = None


class AssistantSetLatest(Body):
    version: int = Field(ge=1, le=MAX_SQL_INT)


class Assistant(Timestamped):
    assistant_id: str
    graph_id: str
    config: Json
    context: Json
    metadata: Json
    version: int
    name: str
    description: str | None = None


AssistantSearchResults = search_results(Assistant)


class GraphSchemas(Body):
    graph_id: str
    input_schema: Json | None = None
    output_schema: Json | None = None
    state_schema: Json | None = None
    config_schema: Json | None = None
    context_schema: Json | None = None
