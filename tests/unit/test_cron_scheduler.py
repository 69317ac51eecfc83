"""The cron scheduler against real SQLite storage, with a recording stand-in for run creation."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from garrison.domain.errors import ConflictError
from garrison.domain.ids import uuid7
from garrison.domain.principal import Principal
from garrison.domain.runs import MultitaskStrategy, RunStatus
from garrison.schemas.runs import RunCreate
from garrison.services.crons import CronScheduler
from garrison.storage import models
from garrison.storage.models import CronPatch, IfExists, Json
from garrison.storage.ports import CronRepository
from garrison.storage.sqlite import SqliteStorage
from garrison.storage.sqlite.crons import SqliteCrons

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # a minute boundary: "* * * * *" is due at T0
TENANT = "tenant-a"
OWNER = "alice"
ASSISTANT = str(uuid.uuid4())


@dataclass
class Call:
    principal: Principal
    thread_id: str | None
    body: RunCreate
    server_configurable: Mapping[str, Any] | None
    extra_metadata: Json | None


@dataclass
class RecordingRuns:
    """Records each run the scheduler asks for; fails for the thread ids in `reject`."""

    calls: list[Call] = field(default_factory=list)
    reject: set[str] = field(default_factory=set)
    fired: asyncio.Event = field(default_factory=asyncio.Event)

    async def create(
        self,
        principal: Principal,
        thread_id: str | None,
        body: RunCreate,
        *,
        server_configurable: Mapping[str, Any] | None = None,
        extra_metadata: Json | None = None,
    ) -> models.Run:
        if thread_id in self.reject:
            raise ConflictError("Thread is busy")
        self.calls.append(Call(principal, thread_id, body, server_configurable, extra_metadata))
        self.fired.set()
        return models.Run(
            run_id=uuid7(),
            thread_id=thread_id or uuid7(),
            tenant_id=principal.tenant_id,
            owner=principal.identity,
            assistant_id=body.assistant_id,
            status=RunStatus.PENDING,
            metadata={},
            kwargs={},
            multitask_strategy=MultitaskStrategy(body.multitask_strategy),
            created_at=T0,
            updated_at=T0,
            attempt=0,
            temporary=False,
        )


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    opened = await SqliteStorage.open(tmp_path / "db.sqlite")
    yield opened
    await opened.close()


@pytest.fixture
def runs() -> RecordingRuns:
    return RecordingRuns()


def scheduler(crons: CronRepository, runs: RecordingRuns) -> CronScheduler:
    return CronScheduler(crons, runs, tick_seconds=60)


async def make_cron(
    storage: SqliteStorage,
    *,
    schedule: str = "* * * * *",
    next_run_date: datetime = T0,
    thread_id: str | None = None,
    payload: Json | None = None,
    metadata: Json | None = None,
    end_time: datetime | None = None,
    enabled: bool = True,
    on_run_completed: str = "delete",
) -> models.Cron:
    new = models.NewCron(
        cron_id=uuid7(),
        assistant_id=ASSISTANT,
        thread_id=thread_id,
        schedule=schedule,
        timezone=None,
        payload=payload if payload is not None else {"input": {"value": "tick"}},
        metadata=metadata or {},
        end_time=end_time,
        next_run_date=next_run_date,
        enabled=enabled,
        on_run_completed=on_run_completed,  # type: ignore[arg-type]
        user_id=OWNER,
    )
    return await storage.crons.create(TENANT, OWNER, new)


async def reload(storage: SqliteStorage, cron: models.Cron) -> models.Cron:
    found = await storage.crons.get(TENANT, cron.cron_id)
    assert found is not None
    return found


async def test_a_due_cron_fires_once_per_tick(storage: SqliteStorage, runs: RecordingRuns) -> None:
    cron = await make_cron(storage)
    ticker = scheduler(storage.crons, runs)

    assert await ticker.fire_due(T0 - timedelta(seconds=1)) == 0  # not yet due
    assert await ticker.fire_due(T0 + timedelta(seconds=1)) == 1
    assert (await reload(storage, cron)).next_run_date == T0 + timedelta(minutes=1)
    # Polling again within the same minute finds nothing new.
    assert await ticker.fire_due(T0 + timedelta(seconds=30)) == 0
    assert await ticker.fire_due(T0 + timedelta(minutes=1, seconds=2)) == 1
    assert len(runs.calls) == 2


async def test_two_schedulers_racing_on_one_tick_fire_it_once(
    storage: SqliteStorage, runs: RecordingRuns, tmp_path: Path
) -> None:
    crons = [await make_cron(storage) for _ in range(10)]
    # A second replica: its own connection to the same database file.
    replica = await SqliteStorage.open(tmp_path / "db.sqlite")
    try:
        # Both read the same due list before either claims a tick: the worst interleaving.
        barrier = asyncio.Barrier(2)
        first = scheduler(_SyncedDue(storage, barrier), runs)
        second = scheduler(_SyncedDue(replica, barrier), runs)
        now = T0 + timedelta(seconds=1)
        fired = await asyncio.gather(first.fire_due(now), second.fire_due(now))
    finally:
        await replica.close()

    assert sum(fired) == len(crons)
    started = sorted(call.extra_metadata["cron_id"] for call in runs.calls if call.extra_metadata)
    assert started == sorted(cron.cron_id for cron in crons)


async def test_end_time_disables_the_cron(storage: SqliteStorage, runs: RecordingRuns) -> None:
    # The tick at T0 is inside the window, the one at T0+1min is past it.
    last = await make_cron(storage, end_time=T0 + timedelta(seconds=30))
    over = await make_cron(storage, end_time=T0 - timedelta(seconds=30))
    ticker = scheduler(storage.crons, runs)

    assert await ticker.fire_due(T0 + timedelta(seconds=1)) == 1
    assert [call.extra_metadata for call in runs.calls] == [{"cron_id": last.cron_id}]
    for cron in (last, over):
        stored = await reload(storage, cron)
        assert (stored.enabled, stored.next_run_date) == (False, None)
    assert await ticker.fire_due(T0 + timedelta(hours=1)) == 0
    assert len(runs.calls) == 1


async def test_disabled_crons_never_fire(storage: SqliteStorage, runs: RecordingRuns) -> None:
    cron = await make_cron(storage, enabled=False)
    ticker = scheduler(storage.crons, runs)

    for minutes in (0, 1, 60):
        assert await ticker.fire_due(T0 + timedelta(minutes=minutes, seconds=1)) == 0
    assert runs.calls == []
    assert (await reload(storage, cron)).next_run_date == T0  # untouched while paused


async def test_a_cron_paused_after_it_was_read_does_not_fire(
    storage: SqliteStorage, runs: RecordingRuns
) -> None:
    cron = await make_cron(storage)
    due = await storage.crons.due(T0, 10)
    await storage.crons.update(TENANT, cron.cron_id, CronPatch(enabled=False))

    assert not await storage.crons.advance(cron.cron_id, T0, T0 + timedelta(minutes=1))
    assert [c.cron_id for c in due] == [cron.cron_id]


async def test_missed_ticks_fire_once(storage: SqliteStorage, runs: RecordingRuns) -> None:
    cron = await make_cron(storage)  # due every minute since T0
    ticker = scheduler(storage.crons, runs)
    back_up = T0 + timedelta(hours=3, seconds=20)  # the server was down for three hours

    assert await ticker.fire_due(back_up) == 1
    assert await ticker.fire_due(back_up) == 0
    assert len(runs.calls) == 1
    # The next tick is the first one after now, not the first missed one.
    assert (await reload(storage, cron)).next_run_date == T0 + timedelta(hours=3, minutes=1)


async def test_thread_cron_runs_on_its_thread_with_the_stored_payload(
    storage: SqliteStorage, runs: RecordingRuns
) -> None:
    thread_id = str(uuid.uuid4())
    await storage.threads.create(TENANT, OWNER, thread_id, {}, None, IfExists.RAISE)
    payload = {
        "assistant_id": ASSISTANT,
        "input": {"value": "hi"},
        "metadata": {"source": "payload", "shared": "payload"},
        "config": {"configurable": {"cron_id": "spoofed", "model": "small"}},
        "stream_mode": ["values"],
    }
    cron = await make_cron(
        storage, thread_id=thread_id, payload=payload, metadata={"team": "x", "shared": "cron"}
    )

    assert await scheduler(storage.crons, runs).fire_due(T0) == 1
    [call] = runs.calls
    assert call.principal == Principal(tenant_id=TENANT, identity=OWNER)
    assert call.thread_id == thread_id
    assert call.body.assistant_id == ASSISTANT
    assert call.body.input == {"value": "hi"}
    assert call.body.multitask_strategy == "enqueue"  # the default for thread crons
    assert call.body.metadata == {"team": "x", "source": "payload", "shared": "payload"}
    assert call.extra_metadata == {"cron_id": cron.cron_id}
    # cron_id reaches config.configurable through the server-provided entries, and a
    # client-supplied one cannot override it.
    assert call.server_configurable == {"cron_id": cron.cron_id}
    assert call.body.config is not None
    assert call.body.config.configurable == {"model": "small"}


async def test_thread_cron_keeps_its_multitask_strategy(
    storage: SqliteStorage, runs: RecordingRuns
) -> None:
    thread_id = str(uuid.uuid4())
    await storage.threads.create(TENANT, OWNER, thread_id, {}, None, IfExists.RAISE)
    await make_cron(storage, thread_id=thread_id, payload={"multitask_strategy": "reject"})

    assert await scheduler(storage.crons, runs).fire_due(T0) == 1
    assert runs.calls[0].body.multitask_strategy == "reject"


@pytest.mark.parametrize("on_run_completed", ["delete", "keep"])
async def test_stateless_cron_creates_a_new_thread_per_fire(
    storage: SqliteStorage, runs: RecordingRuns, on_run_completed: str
) -> None:
    await make_cron(storage, on_run_completed=on_run_completed)
    ticker = scheduler(storage.crons, runs)

    await ticker.fire_due(T0)
    await ticker.fire_due(T0 + timedelta(minutes=1))
    assert [call.thread_id for call in runs.calls] == [None, None]
    assert {call.body.on_completion for call in runs.calls} == {on_run_completed}


async def test_a_failed_run_is_logged_and_the_others_still_fire(
    storage: SqliteStorage, runs: RecordingRuns, caplog: pytest.LogCaptureFixture
) -> None:
    busy = str(uuid.uuid4())
    await storage.threads.create(TENANT, OWNER, busy, {}, None, IfExists.RAISE)
    rejected = await make_cron(storage, thread_id=busy)
    other = await make_cron(storage)
    runs.reject.add(busy)

    assert await scheduler(storage.crons, runs).fire_due(T0) == 1
    assert [call.extra_metadata for call in runs.calls] == [{"cron_id": other.cron_id}]
    assert "Thread is busy" in caplog.text
    # The tick was claimed before the run was tried: the failed one is not retried.
    assert (await reload(storage, rejected)).next_run_date == T0 + timedelta(minutes=1)


async def test_run_loop_polls_every_tick_until_stopped(
    storage: SqliteStorage, runs: RecordingRuns
) -> None:
    await make_cron(storage)
    ticker = CronScheduler(
        storage.crons, runs, tick_seconds=0.01, clock=lambda: T0 + timedelta(seconds=1)
    )
    await ticker.start()
    try:
        await asyncio.wait_for(runs.fired.wait(), timeout=5)
        await asyncio.sleep(0.1)  # about ten more ticks at the same instant
    finally:
        await ticker.stop()
    assert len(runs.calls) == 1  # the fixed clock never reaches the next tick


class _SyncedDue(SqliteCrons):
    """SQLite crons whose `due` returns only once every scheduler sharing `barrier` has read."""

    def __init__(self, storage: SqliteStorage, barrier: asyncio.Barrier) -> None:
        super().__init__(storage.db)
        self._barrier = barrier

    async def due(self, now: datetime, limit: int) -> list[models.Cron]:
        found = await super().due(now, limit)
        await self._barrier.wait()
        return found
