"""A storage outage under a running attempt, on every storage adapter: the worker writes
no end for it (the run did not fail), and the reaper gives the run another attempt once
the lease runs out (R9: a PostgreSQL restart with runs in flight loses none to `error`)."""

import asyncio
import time

from garrison.broker.memory import MemoryBroker
from garrison.config.settings import WorkerSettings
from garrison.domain.errors import UnavailableError
from garrison.domain.runs import RunStatus
from garrison.runtime.executor import Attempt, AttemptResult
from garrison.runtime.worker import Worker
from garrison.storage.models import RunEnd
from garrison.storage.ports import Storage
from tests.contract.factories import TENANT, pending_run


class _OutageOnFirstAttempt:
    """Attempt 1 loses its storage (as a checkpoint write does while PostgreSQL is down);
    later attempts succeed."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    async def run_attempt(self, attempt: Attempt) -> AttemptResult:
        self.attempts.append(attempt.number)
        if attempt.number == 1:
            raise UnavailableError("database is unavailable")
        return AttemptResult(RunEnd.SUCCESS, output={}, state=None)


async def test_an_attempt_that_loses_storage_is_retried_not_failed(
    storage: Storage, memory_broker: MemoryBroker
) -> None:
    run_id = await pending_run(storage)
    executor = _OutageOnFirstAttempt()
    settings = WorkerSettings(
        lease_seconds=0.5, heartbeat_seconds=0.2, reaper_seconds=0.1, poll_seconds=0.05
    )
    worker = Worker(
        storage=storage,
        broker=memory_broker,
        executor=executor,  # type: ignore[arg-type]
        settings=settings,
    )
    await worker.start()
    try:
        # Lease, then one reaper pass, then one poll, with a second of margin.
        deadline = time.monotonic() + 0.5 + 0.1 + 0.05 + 1.0
        while (run := await storage.runs.get(TENANT, run_id)) is not None and (
            run.status is not RunStatus.SUCCESS
        ):
            assert run.status in (RunStatus.PENDING, RunStatus.RUNNING), run
            assert time.monotonic() < deadline, run
            await asyncio.sleep(0.02)
    finally:
        await worker.stop(grace_seconds=1.0)
    assert run is not None and (run.status, run.attempt, run.error) == (
        RunStatus.SUCCESS,
        2,
        None,
    )
    assert executor.attempts == [1, 2]
