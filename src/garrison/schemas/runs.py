"""Runs."""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from garrison.schemas.common import (
    MAX_MINUTES,
    Body,
    Checkpoint,
    Config,
    Json,
    Wire,
    search_results,
)

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
# The SDK's `RunSelectField` (it knows `cancel_reason`, always null here) plus `attempt`.
RunField = Literal[
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "cancel_reason",
    "attempt",
]


class RunCommand(Body):
    resume: Any = None
    update: Any = None
    goto: Any = None


class RunCreate(Body):
    """The body of every run-creating endpoint (stateful, stateless, stream, wait, batch)."""

    assistant_id: str = Field(min_length=1)
    input: Any = None
    command: RunCommand | None = None
    config: Config | None = None
    context: Json | None = None
    metadata: Json | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    checkpoint: Checkpoint | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: Literal["reject", "create"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    after_seconds: float | None = Field(default=None, ge=0, le=MAX_MINUTES * 60)


class CancelMany(Body):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None


# The `kwargs` field collides with the **kwargs of the __init__ the pydantic plugin derives.
class Run(Wire):  # type: ignore[no-redef]
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: datetime
    updated_at: datetime
    status: RunStatus
    metadata: Json
    kwargs: Json
    multitask_strategy: MultitaskStrategy
    attempt: int = Field(description="How many times a worker has taken the run.")


RunSearchResults = search_results(Run)
