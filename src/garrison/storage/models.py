"""Rows as the storage ports hand them out: plain, typed, immutable."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from garrison.domain.access import AccessFilter
from garrison.domain.runs import CancelAction, MultitaskStrategy, RunStatus
from garrison.domain.threads import ThreadStatus

Json = dict[str, Any]


class IfExists(StrEnum):
    RAISE = "raise"
    DO_NOTHING = "do_nothing"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = 10
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Assistant:
    assistant_id: str
    tenant_id: str | None  # None: a system assistant, shared by every tenant
    owner: str | None
    graph_id: str
    name: str
    description: str | None
    config: Json
    context: Json
    metadata: Json
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewAssistant:
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: Json
    context: Json
    metadata: Json


@dataclass(frozen=True, slots=True)
class AssistantPatch:
    """Fields left None keep their current value; metadata is merged."""

    graph_id: str | None = None
    name: str | None = None
    description: str | None = None
    config: Json | None = None
    context: Json | None = None
    metadata: Json | None = None


@dataclass(frozen=True, slots=True)
class AssistantQuery:
    metadata: Json | None = None
    graph_id: str | None = None
    name: str | None = None
    sort_by: str = "created_at"
    sort_order: SortOrder = SortOrder.DESC
    page: Page = Page()
    # Rows the caller may see (custom auth filters, the `user` role's ownership).
    access: AccessFilter | None = None


@dataclass(frozen=True, slots=True)
class ThreadTTL:
    strategy: Literal["delete", "keep_latest"]
    minutes: float
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Thread:
    thread_id: str
    tenant_id: str
    owner: str | None
    status: ThreadStatus
    metadata: Json
    config: Json
    values: Any
    interrupts: dict[str, list[Json]]
    error: Json | None
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime
    ttl: ThreadTTL | None


@dataclass(frozen=True, slots=True)
class ThreadQuery:
    metadata: Json | None = None
    values: Json | None = None
    ids: list[str] | None = None
    status: ThreadStatus | None = None
    sort_by: str = "updated_at"
    sort_order: SortOrder = SortOrder.DESC
    page: Page = Page()
    # Rows the caller may see (custom auth filters, the `user` role's ownership).
    access: AccessFilter | None = None


@dataclass(frozen=True, slots=True)
class ThreadState:
    """What a run or a state update leaves on its thread row."""

    values: Any  # usually a dict; a graph's state may be any JSON value
    interrupts: dict[str, list[Json]]
    has_next_tasks: bool


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    thread_id: str
    tenant_id: str
    owner: str | None
    assistant_id: str
    status: RunStatus
    metadata: Json
    kwargs: Json
    multitask_strategy: MultitaskStrategy
    created_at: datetime
    updated_at: datetime
    attempt: int
    temporary: bool
    cancel_action: CancelAction | None = None
    error: Json | None = None


@dataclass(frozen=True, slots=True)
class NewRun:
    run_id: str
    thread_id: str
    assistant_id: str
    graph_id: str
    metadata: Json
    kwargs: Json
    multitask_strategy: MultitaskStrategy
    available_at: datetime  # `after_seconds` pushes this, and created_at, into the future
    temporary: bool = False
    thread_config: Json = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CancelledRun:
    run_id: str
    thread_id: str
    action: CancelAction
    signal: bool  # True when the run is running and its worker must be told


@dataclass(frozen=True, slots=True)
class CreatedRun:
    run: Run
    superseded: list[CancelledRun]  # runs the new one cancelled (multitask interrupt/rollback)


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    run: Run
    lease_owner: str
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """One claim attempt, with what the worker needs to decide when to try again."""

    claimed: ClaimedRun | None
    more: bool  # another run is claimable right now
    next_due_at: datetime | None  # when the earliest delayed pending run becomes eligible


class RunEnd(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class RunOutcome:
    end: RunEnd
    error: Json | None = None
    state: ThreadState | None = None  # None: the run left no new state to record


@dataclass(frozen=True, slots=True)
class FailedRun:
    run_id: str
    thread_id: str
    error: Json


@dataclass(frozen=True, slots=True)
class ReapResult:
    requeued: list[str]
    failed: list[FailedRun]
    cancelled: list[CancelledRun]  # orphans that had a cancel request: finished as asked


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The run queue at one moment, for metrics and autoscaling."""

    depth: int  # pending runs, delayed ones included
    oldest_pending_at: datetime | None  # when the longest-waiting eligible run became eligible


@dataclass(frozen=True, slots=True)
class LeaseReport:
    lost: list[str]  # runs this worker no longer owns: stop them, write nothing
    cancel: dict[str, CancelAction]  # cancel requests found in the database (broker fallback)


@dataclass(frozen=True, slots=True)
class Cron:
    cron_id: str
    tenant_id: str
    owner: str | None
    assistant_id: str
    thread_id: str | None
    schedule: str
    timezone: str | None
    payload: Json
    metadata: Json
    end_time: datetime | None
    next_run_date: datetime | None
    enabled: bool
    on_run_completed: Literal["delete", "keep"]
    user_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewCron:
    cron_id: str
    assistant_id: str
    thread_id: str | None
    schedule: str
    timezone: str | None
    payload: Json
    metadata: Json
    end_time: datetime | None
    next_run_date: datetime
    enabled: bool
    on_run_completed: Literal["delete", "keep"]
    user_id: str | None


UNSET: Any = object()  # "leave as is" for patch fields where None is a real value


@dataclass(frozen=True, slots=True)
class CronPatch:
    schedule: str | None = None
    timezone: str | None = None
    payload: Json | None = None  # merged into the stored payload
    metadata: Json | None = None  # merged
    end_time: datetime | None = UNSET
    next_run_date: datetime | None = None
    enabled: bool | None = None
    on_run_completed: Literal["delete", "keep"] | None = None


@dataclass(frozen=True, slots=True)
class CronQuery:
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: Json | None = None
    sort_by: str = "created_at"
    sort_order: SortOrder = SortOrder.DESC
    page: Page = Page()
    # Rows the caller may see (custom auth filters, the `user` role's ownership).
    access: AccessFilter | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key: never the secret, only its hash."""

    key_id: str
    secret_hash: str
    tenant_id: str
    role: str
    name: str | None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable_at(self, moment: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or moment < self.expires_at)
