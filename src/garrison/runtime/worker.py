"""The worker: claims pending runs, executes them with bounded concurrency, keeps their
leases alive, stops them on cancel, drains on shutdown, and reaps orphaned runs."""

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from langgraph.errors import GraphDrained

from garrison import serde
from garrison.broker.ports import Broker
from garrison.config.settings import WorkerSettings
from garrison.domain.clock import utcnow
from garrison.domain.errors import InvalidArgumentError, LeaseLostError, UnavailableError
from garrison.domain.runs import CancelAction
from garrison.domain.threads import ThreadStatus
from garrison.observability import logs
from garrison.observability.metrics import (
    ACTIVE_WORKFLOWS,
    LEASE_EXPIRATIONS,
    REAPER_RECOVERIES,
    WORKER_SLOTS,
    WORKER_SLOTS_BUSY,
    WORKFLOW_DURATION,
    WORKFLOW_EXECUTIONS,
)
from garrison.runtime.executor import Attempt, AttemptResult, RunExecutor, describe_error
from garrison.storage.models import ClaimedRun, ReapResult, Run, RunEnd, RunOutcome
from garrison.storage.ports import Storage

logger = logging.getLogger(__name__)

RunEndHook = Callable[[Run, AttemptResult], Awaitable[None]]
StopReason = Literal["shutdown", "lease_lost"]
# A rollback is a cancellation: it counts as interrupted in the executions metric.
_METRIC_STATUS = {RunEnd.ROLLED_BACK: RunEnd.INTERRUPTED.value}


@dataclass(slots=True)
class _Active:
    attempt: Attempt
    task: asyncio.Task[AttemptResult]
    stop_reason: StopReason | None = None
    cancel_sent_at: float = 0.0  # time.monotonic() of the last task.cancel() for a cancel


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    def __init__(
        self,
        *,
        storage: Storage,
        broker: Broker,
        executor: RunExecutor,
        settings: WorkerSettings,
        hooks: Sequence[RunEndHook] = (),
        worker_id: str | None = None,
    ) -> None:
        self.worker_id = worker_id or make_worker_id()
        self._storage = storage
        self._broker = broker
        self._executor = executor
        self._settings = settings
        self._hooks = list(hooks)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._active: dict[str, _Active] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._counted_slots = False

    @property
    def active_runs(self) -> int:
        return len(self._active)

    async def start(self, *, recover_all_running: bool = False) -> None:
        """Start claiming. `recover_all_running` requeues every running run first (embedded
        mode after a crash: the data-dir lock proves their previous worker is gone)."""
        if recover_all_running:
            result = await self._storage.runs.reap(self._settings.max_attempts, all_running=True)
            await self._settle_reaped(result)
        WORKER_SLOTS.inc(self._settings.concurrency)
        self._counted_slots = True
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="worker-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
            asyncio.create_task(self._reaper_loop(), name="worker-reaper"),
        ]

    async def stop(self, grace_seconds: float | None = None) -> int:
        """Stop claiming, let running runs reach a superstep boundary within the grace
        period, then hand what is left back to the queue without charging an attempt.

        Returns how many attempts were cut off that way: their synchronous graph nodes
        may still be running in threads, which cannot be interrupted."""
        grace = self._settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        self._stopping = True
        if self._loops:
            self._loops[0].cancel()  # the claim loop: take no new runs
        for active in self._active.values():
            active.attempt.control.request_drain("shutdown")
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=grace)
        cut_off = [run_id for run_id, active in self._active.items() if not active.task.done()]
        for run_id in cut_off:
            self._stop(run_id, "shutdown")
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5.0)
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        if self._counted_slots:
            WORKER_SLOTS.dec(self._settings.concurrency)
            self._counted_slots = False
        return len(cut_off)

    # Claiming ------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            try:
                claim = await self._storage.runs.claim(self.worker_id, self._settings.lease_seconds)
            except Exception:
                self._slots.release()
                logger.exception("claiming a run failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if claim.claimed is None:
                self._slots.release()
            else:
                run_id = claim.claimed.run.run_id
                handler = asyncio.create_task(self._handle(claim.claimed), name=f"run-{run_id}")
                self._handlers.add(handler)
                handler.add_done_callback(self._handlers.discard)
            if not claim.more:
                # Nothing else to take now: sleep until a wake-up (a new run, or a thread's
                # queued run freed by a finish), the next delayed run, or the poll interval.
                await self._broker.wait_for_work(self._idle_seconds(claim.next_due_at))

    def _idle_seconds(self, next_due_at: datetime | None) -> float:
        wait = self._settings.poll_seconds
        if next_due_at is not None:
            wait = min(wait, max(0.01, (next_due_at - utcnow()).total_seconds()))
        return wait

    # Executing -----------------------------------------------------------------------
    async def _handle(self, claimed: ClaimedRun) -> None:
        run = claimed.run
        logs.bind_run(run.run_id, run.thread_id, run.tenant_id)  # this task's log lines
        graph_id = _graph_id(run)
        ACTIVE_WORKFLOWS.labels(graph_id).inc()
        WORKER_SLOTS_BUSY.inc()
        started = time.monotonic()
        attempt = Attempt(run=run, number=run.attempt)
        task = asyncio.create_task(self._executor.run_attempt(attempt))
        active = self._active[run.run_id] = _Active(attempt, task)
        unsubscribe = self._broker.on_cancel(
            run.run_id, lambda action: self._cancel(run.run_id, action)
        )
        try:
            result = await task
        except GraphDrained:
            await self._release(attempt, charge=False)
            return
        except LeaseLostError:
            # Storage refused this attempt's write: another worker owns the run now.
            logger.warning("run %s: attempt %d was fenced out; stopped", run.run_id, attempt.number)
            return
        except UnavailableError:
            # Storage failed under the attempt (a database outage), not the run: no end is
            # written. The lease expires unrenewed and the reaper requeues the run for
            # another attempt, counted against max_attempts.
            logger.warning(
                "run %s: attempt %d stopped, storage unavailable; the reaper will retry it",
                run.run_id,
                attempt.number,
            )
            return
        except asyncio.CancelledError:
            if active.stop_reason == "shutdown":
                await self._release(attempt, charge=False)
                return
            if active.stop_reason == "lease_lost":
                logger.warning("run %s: lease lost; stopped attempt %d", run.run_id, attempt.number)
                return
            raise
        except Exception as exc:
            # Failures outside the graph's own execution (a factory that raises, a broker
            # error): the run fails with them. If storage is down, `finish` fails too and
            # the lease expires, so the reaper retries the run within max_attempts.
            logger.exception("run %s: attempt %d crashed", run.run_id, attempt.number)
            error = describe_error(exc)
            result = AttemptResult(RunEnd.ERROR, {"__error__": error}, None, error)
        finally:
            unsubscribe()
            self._active.pop(run.run_id, None)
            self._slots.release()
            ACTIVE_WORKFLOWS.labels(graph_id).dec()
            WORKER_SLOTS_BUSY.dec()
        end = await self._complete(run, attempt.number, result)
        if end is not None:
            WORKFLOW_EXECUTIONS.labels(graph_id, _METRIC_STATUS.get(end, end.value)).inc()
            WORKFLOW_DURATION.labels(graph_id).observe(time.monotonic() - started)

    def _cancel(self, run_id: str, action: CancelAction) -> None:
        """Cancel the attempt's task for `action` (the first action asked for wins).

        A cancellation can be swallowed on its way (see the executor's
        `_deliver_swallowed_cancellation`), which the executor catches at the graph's next
        event; one lost inside a long step is sent again by a later delivery (the
        heartbeat's, every `heartbeat_seconds`) while the attempt has not taken it.
        """
        active = self._active.get(run_id)
        if active is None or active.task.done() or active.attempt.cancel_taken:
            return
        now = time.monotonic()
        if active.attempt.cancel_action is None:
            active.attempt.cancel_action = action
        elif now - active.cancel_sent_at < self._settings.heartbeat_seconds:
            return  # sent moments ago: still on its way, or the graph is cleaning up
        active.cancel_sent_at = now
        active.task.cancel()

    def _stop(self, run_id: str, reason: StopReason) -> None:
        active = self._active.get(run_id)
        if active is None or active.task.done():
            return
        active.stop_reason = reason
        active.task.cancel()

    async def _release(self, attempt: Attempt, *, charge: bool) -> None:
        try:
            released = await self._storage.runs.release(
                attempt.run.run_id, attempt.number, charge_attempt=charge
            )
        except Exception:
            logger.exception("run %s: could not return it to the queue", attempt.run.run_id)
            return
        if released:
            await self._broker.notify_work()

    async def _complete(self, run: Run, attempt: int, result: AttemptResult) -> RunEnd | None:
        """Record the attempt's end; returns it, or None when the attempt was fenced out."""
        outcome = RunOutcome(end=result.end, error=result.error, state=result.state)
        try:
            thread_status = await self._storage.runs.finish(run.run_id, attempt, outcome)
        except InvalidArgumentError as exc:
            # The result holds data storage refuses (PostgreSQL JSON cannot hold U+0000).
            # Retrying would refuse it again on every attempt: the run fails, saying why.
            logger.warning("run %s: storage refused its result: %s", run.run_id, exc)
            error = describe_error(exc)
            result = AttemptResult(RunEnd.ERROR, {"__error__": error}, None, error)
            outcome = RunOutcome(end=RunEnd.ERROR, error=error, state=None)
            thread_status = await self._storage.runs.finish(run.run_id, attempt, outcome)
        if thread_status is None:
            logger.warning("run %s: attempt %d was fenced out; result dropped", run.run_id, attempt)
            return None
        await self._announce_end(run.thread_id, run.run_id, result.output)
        if run.temporary:
            await self._storage.threads.delete(run.tenant_id, run.thread_id)
        if thread_status is ThreadStatus.BUSY:
            await self._broker.notify_work()  # the thread's next queued run may now start
        for hook in self._hooks:
            try:
                await hook(run, result)
            except Exception:
                logger.exception("run %s: end hook %r failed", run.run_id, hook)
        return result.end

    async def _announce_end(self, thread_id: str, run_id: str, output: object) -> None:
        await self._broker.end_run_stream(thread_id, run_id, serde.dumps(output))

    # Leases and recovery -------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_seconds)
            leases = [(run_id, a.attempt.number) for run_id, a in self._active.items()]
            if not leases:
                continue
            try:
                report = await self._storage.runs.extend_leases(
                    self.worker_id, leases, self._settings.lease_seconds
                )
            except Exception:
                logger.exception("extending leases failed")
                continue
            for run_id in report.lost:
                self._stop(run_id, "lease_lost")
            for run_id, action in report.cancel.items():
                self._cancel(run_id, action)  # the database flag backs up the broker signal

    async def _reaper_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.reaper_seconds)
            try:
                result = await self._storage.runs.reap(self._settings.max_attempts)
            except Exception:
                logger.exception("reaping expired leases failed")
                continue
            await self._settle_reaped(result)

    async def _settle_reaped(self, result: ReapResult) -> None:
        LEASE_EXPIRATIONS.inc(len(result.requeued) + len(result.failed) + len(result.cancelled))
        REAPER_RECOVERIES.inc(len(result.requeued))
        if result.requeued:
            logger.warning("requeued %d run(s) whose worker was lost", len(result.requeued))
            await self._broker.notify_work()
        for failed in result.failed:
            await self._announce_end(failed.thread_id, failed.run_id, {"__error__": failed.error})
        for cancelled in result.cancelled:
            if cancelled.action is CancelAction.ROLLBACK:
                await self._storage.checkpointer.adelete_for_runs([cancelled.run_id])
            await self._announce_end(cancelled.thread_id, cancelled.run_id, None)


def _graph_id(run: Run) -> str:
    configurable = (run.kwargs.get("config") or {}).get("configurable") or {}
    return str(configurable.get("graph_id") or "unknown")
