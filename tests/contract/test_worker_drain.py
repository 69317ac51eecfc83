"""Worker drain on every storage adapter: `Worker.stop` finishes what fits in the grace
period, hands the rest back to the queue without charging an attempt, and reports how
many attempts it cut off (the worker process exits without joining their node threads)."""

import asyncio
import threading

from garrison.broker.memory import MemoryBroker
from garrison.config.settings import WorkerSettings
from garrison.domain.runs import RunStatus
from garrison.runtime.executor import Attempt, AttemptResult
from garrison.runtime.worker import Worker
from garrison.storage.models import RunEnd
from garrison.storage.ports import Storage
from tests.contract.factories import TENANT, pending_run


class _SyncNodeExecutor:
    """Runs each attempt as a synchronous node would: in a thread, for `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = asyncio.Event()
        self.unblock = threading.Event()  # lets a test end the thread early

    async def run_attempt(self, attempt: Attempt) -> AttemptResult:
        self.started.set()
        await asyncio.to_thread(self.unblock.wait, self.seconds)
        return AttemptResult(RunEnd.SUCCESS, output={}, state=None)


async def _worker_running_one_run(
    storage: Storage, memory_broker: MemoryBroker, executor: _SyncNodeExecutor
) -> tuple[Worker, str]:
    run_id = await pending_run(storage)
    worker = Worker(
        storage=storage,
        broker=memory_broker,
        executor=executor,  # type: ignore[arg-type]
        settings=WorkerSettings(poll_seconds=0.05),
    )
    await worker.start()
    await asyncio.wait_for(executor.started.wait(), 5.0)
    return worker, run_id


async def test_stop_finishes_an_attempt_that_fits_in_the_grace_period(
    storage: Storage, memory_broker: MemoryBroker
) -> None:
    executor = _SyncNodeExecutor(seconds=0.2)
    worker, run_id = await _worker_running_one_run(storage, memory_broker, executor)
    assert await worker.stop(grace_seconds=5.0) == 0
    run = await storage.runs.get(TENANT, run_id)
    assert run is not None and (run.status, run.attempt) == (RunStatus.SUCCESS, 1)


async def test_stop_hands_back_an_attempt_that_outlives_the_grace_without_charging_it(
    storage: Storage, memory_broker: MemoryBroker
) -> None:
    executor = _SyncNodeExecutor(seconds=30.0)
    worker, run_id = await _worker_running_one_run(storage, memory_broker, executor)
    try:
        assert await worker.stop(grace_seconds=0.1) == 1
        run = await storage.runs.get(TENANT, run_id)
        assert run is not None and (run.status, run.attempt) == (RunStatus.PENDING, 1)
        # Uncharged: after the drain, one lost attempt is still within max_attempts=2.
        claimed = (await storage.runs.claim("next-worker", 0.01)).claimed
        assert claimed is not None and claimed.run.attempt == 2
        await asyncio.sleep(0.05)
        result = await storage.runs.reap(max_attempts=2)
        assert result.requeued == [run_id] and result.failed == []
    finally:
        executor.unblock.set()  # the node's thread, which stop() could not interrupt
