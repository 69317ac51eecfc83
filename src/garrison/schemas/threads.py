"""Threads and their state."""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from garrison.schemas.common import (
    MAX_MINUTES,
    Body,
    Checkpoint,
    IfExists,
    Json,
    Page,
    SortOrder,
    Wire,
    search_results,
)

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
ThreadSortBy = Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"]
ThreadField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
]


class ThreadTTL(Body):
    ttl: float = Field(gt=0, le=MAX_MINUTES, description="minutes")
    strategy: Literal["delete", "keep_latest"] = "delete"


def _ttl(value: Any) -> Any:
    # Older SDKs send a bare number of minutes.
    return (
        {"ttl": value} if isinstance(value, int | float) and not isinstance(value, bool) else value
    )


class StateUpdate(Body):
    values: Any = None
    command: Json | None = None
    as_node: str | None = None


class Superstep(Body):
    updates: list[StateUpdate]


class ThreadCreate(Body):
    thread_id: str | None = None
    metadata: Json | None = None
    if_exists: IfExists = "raise"
    ttl: ThreadTTL | None = None
    supersteps: list[Superstep] | None = None
    graph_id: str | None = None

    _ttl = field_validator("ttl", mode="before")(_ttl)


class ThreadPatch(Body):
    metadata: Json | None = None
    ttl: ThreadTTL | None = None

    _ttl = field_validator("ttl", mode="before")(_ttl)


class ThreadSearch(Page):
    metadata: Json | None = None
    values: Json | None = None
    ids: list[str] | None = None
    status: ThreadStatus | None = None
    sort_by: ThreadSortBy | None = None
    sort_order: SortOrder | None = None
    select: list[ThreadField] | None = None
    extract: dict[str, str] | None = None


class ThreadCount(Body):
    metadata: Json | None = None
    values: Json | None = None
    status: ThreadStatus | None = None


class ThreadPrune(Body):
    thread_ids: list[str] = Field(min_length=1)
    strategy: Literal["delete", "keep_latest"] = "delete"


class StateCheckpointQuery(Body):
    checkpoint: Checkpoint
    subgraphs: bool = False


class StateUpdateRequest(Body):
    values: Any = None
    as_node: str | None = None
    checkpoint: Checkpoint | None = None
    checkpoint_id: str | None = None


class HistoryQuery(Body):
    limit: int = Field(default=10, ge=1, le=1000)
    before: str | Checkpoint | None = None
    metadata: Json | None = None
    checkpoint: Checkpoint | None = None


class Thread(Wire):
    thread_id: str
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime
    metadata: Json
    config: Json
    status: ThreadStatus
    values: Any = None
    interrupts: dict[str, list[Json]]


ThreadSearchResults = search_results(Thread)


class ThreadState(Wire):
    values: Any = None
    next: list[str]
    tasks: list[Json]
    metadata: Json | None = None
    created_at: str | None = None
    checkpoint: Json | None = None
    parent_checkpoint: Json | None = None
    interrupts: list[Json]
    checkpoint_id: str | None = None
    parent_checkpoint_id: str | None = None


class StateUpdateResponse(Wire):
    checkpoint: Json
