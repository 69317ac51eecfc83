"""Storage ports: what the services and the worker need from a database.

Each method is one atomic unit of work. Every query is scoped by `tenant_id`; a row of
another tenant behaves exactly like a missing row. Adapters: `storage.sqlite` (embedded)
and, later, PostgreSQL; `tests/contract` holds the suite both must pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from garrison.domain.runs import CancelAction, RunStatus
from garrison.domain.threads import ThreadStatus
from garrison.security.audit import AuditEvent, AuditRecord, ChainHead
from garrison.storage.models import (
    ApiKey,
    Assistant,
    AssistantPatch,
    AssistantQuery,
    CancelledRun,
    Claim,
    CreatedRun,
    Cron,
    CronPatch,
    CronQuery,
    IfExists,
    Json,
    LeaseReport,
    NewAssistant,
    NewCron,
    NewRun,
    Page,
    QueueStats,
    ReapResult,
    Run,
    RunOutcome,
    Thread,
    ThreadQuery,
    ThreadState,
)


@dataclass(frozen=True, slots=True)
class TTLSpec:
    strategy: Literal["delete", "keep_latest"]
    minutes: float


class AssistantRepository(Protocol):
    async def ensure_system(self, assistants: Sequence[NewAssistant]) -> None:
        """Create missing system assistants (shared by all tenants); keep existing ones."""

    async def create(
        self, tenant_id: str, owner: str | None, new: NewAssistant, if_exists: IfExists
    ) -> Assistant: ...

    async def get(self, tenant_id: str, assistant_id: str) -> Assistant | None: ...

    async def update(self, tenant_id: str, assistant_id: str, patch: AssistantPatch) -> Assistant:
        """Append a new version and make it current. Raises NotFoundError."""

    async def delete(self, tenant_id: str, assistant_id: str) -> bool: ...

    async def search(self, tenant_id: str, query: AssistantQuery) -> tuple[list[Assistant], bool]:
        """The page of assistants, and whether more rows follow it."""

    async def count(self, tenant_id: str, query: AssistantQuery) -> int: ...

    async def versions(
        self, tenant_id: str, assistant_id: str, metadata: Json | None, page: Page
    ) -> list[Assistant]:
        """Every version as a snapshot, newest first."""

    async def set_latest(self, tenant_id: str, assistant_id: str, version: int) -> Assistant: ...


class ThreadRepository(Protocol):
    async def create(
        self,
        tenant_id: str,
        owner: str | None,
        thread_id: str,
        metadata: Json,
        ttl: TTLSpec | None,
        if_exists: IfExists,
    ) -> Thread: ...

    async def get(self, tenant_id: str, thread_id: str) -> Thread | None: ...

    async def update(
        self, tenant_id: str, thread_id: str, metadata: Json | None, ttl: TTLSpec | None
    ) -> Thread:
        """Merge `metadata` into the thread's; replace its TTL when given."""

    async def delete(self, tenant_id: str, thread_id: str) -> bool:
        """Delete the thread and its runs (checkpoints are the checkpointer's)."""

    async def search(self, tenant_id: str, query: ThreadQuery) -> tuple[list[Thread], bool]: ...

    async def count(self, tenant_id: str, query: ThreadQuery) -> int: ...

    async def copy(
        self, tenant_id: str, owner: str | None, source_id: str, target_id: str
    ) -> Thread: ...

    async def record_state(self, tenant_id: str, thread_id: str, state: ThreadState) -> Thread:
        """Store the thread's latest values after a state update; refuses a busy thread."""

    async def ids_with_metadata(self, tenant_id: str, metadata: Json) -> list[str]: ...

    async def expired(
        self, now: datetime, limit: int
    ) -> list[tuple[str, str, Literal["delete", "keep_latest"]]]:
        """(tenant_id, thread_id, strategy) of idle threads whose TTL has passed."""

    async def clear_ttl(self, tenant_id: str, thread_id: str) -> None:
        """Forget a thread's expiry once `keep_latest` has pruned it."""


class RunRepository(Protocol):
    async def create(
        self,
        tenant_id: str,
        owner: str | None,
        new: NewRun,
        *,
        create_thread: bool,
    ) -> CreatedRun:
        """Insert a pending run, applying the thread's multitask rule atomically.

        Raises NotFoundError for a missing thread unless `create_thread`, and
        ConflictError when the strategy is `reject` and the thread is busy.
        """

    async def get(
        self, tenant_id: str, run_id: str, thread_id: str | None = None
    ) -> Run | None: ...

    async def list_runs(
        self, tenant_id: str, thread_id: str, page: Page, status: RunStatus | None
    ) -> list[Run]:
        """Newest first. Raises NotFoundError when the thread does not exist."""

    async def delete(self, tenant_id: str, thread_id: str, run_id: str) -> bool:
        """Raises ConflictError for a run that is still pending or running."""

    async def cancel(
        self,
        tenant_id: str,
        action: CancelAction,
        *,
        thread_id: str | None = None,
        run_ids: Sequence[str] | None = None,
        statuses: Sequence[RunStatus] | None = None,
    ) -> list[CancelledRun]:
        """Cancel active runs: pending ones at once, running ones by flag (see `signal`)."""

    async def claim(self, worker_id: str, lease_seconds: float) -> Claim:
        """Take the oldest eligible pending run (one running run per thread, FIFO per
        thread), start its next attempt and lease it to `worker_id`."""

    async def extend_leases(
        self, worker_id: str, leases: Sequence[tuple[str, int]], lease_seconds: float
    ) -> LeaseReport:
        """Extend the leases of (run_id, attempt) held by `worker_id`."""

    async def finish(self, run_id: str, attempt: int, outcome: RunOutcome) -> ThreadStatus | None:
        """Record the end of an attempt and derive the thread status, which it returns
        (BUSY means more runs wait on the thread); None when fenced out (the attempt no
        longer owns the run)."""

    async def release(self, run_id: str, attempt: int, *, charge_attempt: bool) -> bool:
        """Return a running run to pending (shutdown, drain); fenced like `finish`."""

    async def reap(self, max_attempts: int, *, all_running: bool = False) -> ReapResult:
        """Requeue runs whose lease expired, or fail them after `max_attempts`.

        `all_running` treats every running run as orphaned: only for embedded mode at
        start-up, where a file lock proves no other worker is alive.
        """

    async def count_by_status(self) -> dict[RunStatus, int]: ...

    async def count_active(self, tenant_id: str) -> dict[RunStatus, int]:
        """The tenant's `pending` and `running` runs by status (absent: none), for the
        per-tenant caps checked when a run is created."""

    async def queue_stats(self) -> QueueStats:
        """Pending runs, and the eligibility time of the oldest eligible one (not delayed
        by `after_seconds` into the future). One cheap query: metrics call it often."""

    async def statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        """The status of each of `run_ids` that still exists (deleted runs are absent).
        Not tenant-scoped: callers ask about runs they were already allowed to see."""


class CronRepository(Protocol):
    async def create(self, tenant_id: str, owner: str | None, new: NewCron) -> Cron: ...

    async def get(self, tenant_id: str, cron_id: str) -> Cron | None: ...

    async def update(self, tenant_id: str, cron_id: str, patch: CronPatch) -> Cron: ...

    async def delete(self, tenant_id: str, cron_id: str) -> bool: ...

    async def search(self, tenant_id: str, query: CronQuery) -> tuple[list[Cron], bool]: ...

    async def count(self, tenant_id: str, query: CronQuery) -> int: ...

    async def due(self, now: datetime, limit: int) -> list[Cron]:
        """Enabled crons whose next run date has come."""

    async def advance(
        self, cron_id: str, expected_next: datetime, next_run_date: datetime | None
    ) -> bool:
        """Move a cron to its next tick if it is still at `expected_next`; only one caller
        wins a tick, so a tick never fires twice. None disables the cron (past end_time)."""


class ApiKeyRepository(Protocol):
    async def create(self, key: ApiKey) -> None: ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def list_keys(self, tenant_id: str | None) -> list[ApiKey]:
        """Keys of one tenant, or of every tenant; newest first."""
        ...

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Marks a key revoked; False if there is no such key or it already was."""
        ...


class AuditLog(Protocol):
    """Append-only, hash-chained audit records (`garrison.security.audit`). Appends are
    serialized across processes, so concurrent writers never fork the chain."""

    async def append(self, event: AuditEvent) -> AuditRecord: ...

    async def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Append `events` in order, in one transaction (group commit)."""
        ...

    async def records(
        self, *, after_seq: int = 0, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditRecord]:
        """Records with seq > `after_seq` (and time >= `since`), in sequence order."""

    async def head(self) -> ChainHead:
        """The last record's seq and hash, as kept next to the chain."""


class Storage(Protocol):
    """Every repository of one backend, plus its checkpointer and long-term store."""

    @property
    def assistants(self) -> AssistantRepository: ...

    @property
    def threads(self) -> ThreadRepository: ...

    @property
    def runs(self) -> RunRepository: ...

    @property
    def crons(self) -> CronRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any]: ...

    @property
    def store(self) -> BaseStore: ...

    async def start_background(self) -> None:
        """Start the adapter's own background work (store TTL sweeping)."""

    async def ping(self) -> None:
        """Raise UnavailableError when the database cannot be reached."""

    def pool_stats(self) -> Mapping[str, int] | None:
        """Connection-pool usage for metrics (`in_use`, `idle`, `max`); None without a pool."""

    async def close(self) -> None: ...
