"""Crons."""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from garrison.schemas.common import Body, Config, Json, Page, SortOrder, Wire, search_results
from garrison.schemas.runs import MultitaskStrategy

CronSortBy = Literal[
    "cron_id", "assistant_id", "thread_id", "created_at", "updated_at", "next_run_date", "end_time"
]
CronField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "on_run_completed",
    "enabled",
]


class CronCreate(Body):
    schedule: str = Field(min_length=1)
    assistant_id: str = Field(min_length=1)
    input: Any = None
    metadata: Json | None = None
    config: Config | None = None
    context: Json | None = None
    checkpoint_during: bool | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    multitask_strategy: MultitaskStrategy | None = None
    # JSON has no date type: an ISO string is parsed (the rest of the body is strict).
    end_time: datetime | None = Field(default=None, strict=False)
    enabled: bool = True
    timezone: str | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    on_run_completed: Literal["delete", "keep"] = "delete"


class CronPatch(Body):
    schedule: str | None = None
    end_time: datetime | None = Field(default=None, strict=False)
    input: Any = None
    metadata: Json | None = None
    config: Config | None = None
    context: Json | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    enabled: bool | None = None
    timezone: str | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None


class CronSearch(Page):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: Json | None = None
    sort_by: CronSortBy | None = None
    sort_order: SortOrder | None = None
    select: list[CronField] | None = None


class CronCount(Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    metadata: Json | None = None


class Cron(Wire):
    cron_id: str
    assistant_id: str
    thread_id: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    end_time: datetime | None = None
    schedule: str
    timezone: str | None = None
    created_at: datetime
    updated_at: datetime
    payload: Json
    user_id: str | None = None
    next_run_date: datetime | None = None
    metadata: Json
    enabled: bool


CronSearchResults = search_results(Cron)
