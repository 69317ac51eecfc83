"""Worker cancellation on every storage adapter: a cancel that the attempt loses on its
way is sent again by the heartbeat, which reads the cancel flag from the database, until
the attempt takes it."""

import asyncio
import time

from garrison.broker.memory import MemoryBroker
from garrison.config.settings import WorkerSettings
from garrison.domain.runs import CancelAction, RunStatus
from garrison.runtime.executor import Attempt, AttemptResult
from garrison.runtime.worker import Worker
from garrison.storage.models import RunEnd
from garrison.storage.ports import Storage
from tests.contract.factories import TENANT, pending_run

HEARTBEAT_SECONDS = 0.2


class _LosesTheFirstCancel:
    """An attempt in one long step that loses the first cancellation it is sent, as a
    step does when Python 3.11's asyncio.wait_for swallows one; it ends at the next,
    as the executor does."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancels_seen = 0

    async def run_attempt(self, attempt: Attempt) -> AttemptResult:
        self.started.set()
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancels_seen += 1
                if self.cancels_seen == 1:
                    continue  # lost
                task = asyncio.current_task()
                assert task is not None and attempt.cancel_action is not None
                attempt.cancel_taken = True
                while task.uncancel():
                    pass
                return AttemptResult(RunEnd.INTERRUPTED, output={}, state=None)


async def test_a_lost_cancel_is_sent_again_by_the_heartbeat(
    storage: Storage, memory_broker: MemoryBroker
) -> None:
    run_id = await pending_run(storage)
    executor = _LosesTheFirstCancel()
    worker = Worker(
        storage=storage,
        broker=memory_broker,
        executor=executor,  # type: ignore[arg-type]
        settings=WorkerSettings(
            poll_seconds=0.05, heartbeat_seconds=HEARTBEAT_SECONDS, lease_seconds=5.0
        ),
    )
    await worker.start()
    try:
        await asyncio.wait_for(executor.started.wait(), 5.0)
        # What the API does: flag the run in the database, then signal the broker.
        await storage.runs.cancel(TENANT, CancelAction.INTERRUPT, run_ids=[run_id])
        await memory_broker.send_cancel(run_id, CancelAction.INTERRUPT)
        sent = time.monotonic()
        while (run := await storage.runs.get(TENANT, run_id)) is not None and (
            run.status is RunStatus.RUNNING
        ):
            assert time.monotonic() - sent < 20 * HEARTBEAT_SECONDS, "the cancel was lost"
            await asyncio.sleep(0.02)
        assert run is not None and run.status is RunStatus.INTERRUPTED
        assert executor.cancels_seen == 2
    finally:
        await worker.stop(grace_seconds=1.0)
