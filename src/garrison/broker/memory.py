"""The in-process broker: one process (embedded mode) runs the API and the worker."""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

from garrison.broker.ids import EventIdClock, parse_event_id
from garrison.broker.ports import FROM_START, StreamRecord, run_done_data
from garrison.domain.runs import CancelAction


class _Log:
    """An append-only, bounded event log that wakes its followers on every append."""

    __slots__ = (
        "changed",
        "created_ms",
        "dropped",
        "ended",
        "ended_event",
        "expires_at",
        "followers",
        "records",
    )

    def __init__(self) -> None:
        self.created_ms = time.time() * 1000
        self.records: deque[StreamRecord] = deque()
        self.dropped = 0  # records evicted from the front (bounded length)
        self.ended = False
        self.followers = 0
        self.expires_at: float | None = None
        # Made only when someone waits: most runs publish with no follower at all.
        self.changed: asyncio.Event | None = None
        self.ended_event: asyncio.Event | None = None  # waiters for the final output only

    def append(self, record: StreamRecord, max_records: int) -> None:
        self.records.append(record)
        if len(self.records) > max_records:
            self.records.popleft()
            self.dropped += 1
        self.wake()

    def wake(self) -> None:
        """Wake the followers waiting for a change; the next wait makes a fresh event."""
        if self.changed is not None:
            self.changed.set()
            self.changed = None

    async def wait_change(self) -> None:
        if self.changed is None:
            self.changed = asyncio.Event()
        await self.changed.wait()

    def end(self) -> None:
        self.ended = True
        if self.ended_event is not None:
            self.ended_event.set()

    async def wait_end(self) -> None:
        if self.ended_event is None:
            self.ended_event = asyncio.Event()
        if not self.ended:
            await self.ended_event.wait()

    def index_after(self, since: str | None) -> int:
        """Absolute index of the first record to deliver to a new follower."""
        if since is None:
            return self.dropped + len(self.records)
        if since == FROM_START:
            return self.dropped
        wanted = parse_event_id(since)
        for offset, record in enumerate(self.records):
            if parse_event_id(record.id) > wanted:
                return self.dropped + offset
        return self.dropped + len(self.records)


class MemoryBroker:
    """Implements `garrison.broker.ports.Broker` within one event loop."""

    def __init__(self, *, retention_seconds: float, max_events_per_run: int) -> None:
        self._retention = retention_seconds
        self._max_records = max_events_per_run
        self._ids = EventIdClock()
        self._runs: dict[str, _Log] = {}
        self._threads: dict[str, _Log] = {}
        self._cancel_callbacks: dict[str, list[Callable[[CancelAction], None]]] = {}
        self._work = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="broker-sweeper")

    async def ping(self) -> bool:
        return True  # in-process: up while the process is

    def pool_stats(self) -> None:
        return None

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        # Wake every follower so open streams finish instead of hanging on shutdown.
        self._closed = True
        for log in (*self._runs.values(), *self._threads.values()):
            log.wake()
            if log.ended_event is not None:
                log.ended_event.set()

    # Work wake-ups -------------------------------------------------------------------
    async def notify_work(self) -> None:
        self._work.set()

    async def wait_for_work(self, max_wait_seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), max_wait_seconds)
        self._work.clear()

    # Cancel signals ------------------------------------------------------------------
    async def send_cancel(self, run_id: str, action: CancelAction) -> None:
        for callback in list(self._cancel_callbacks.get(run_id, ())):
            callback(action)

    def on_cancel(
        self, run_id: str, callback: Callable[[CancelAction], None]
    ) -> Callable[[], None]:
        self._cancel_callbacks.setdefault(run_id, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._cancel_callbacks.get(run_id, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._cancel_callbacks.pop(run_id, None)

        return unsubscribe

    # Event streams -------------------------------------------------------------------
    def _run_log(self, run_id: str) -> _Log:
        log = self._runs.get(run_id)
        if log is None:
            log = self._runs[run_id] = _Log()
        return log

    def _thread_log(self, thread_id: str) -> _Log:
        log = self._threads.get(thread_id)
        if log is None:
            log = self._threads[thread_id] = _Log()
        return log

    async def publish(
        self, thread_id: str, run_id: str, event: str, data: bytes, attempt: int = 0
    ) -> str:
        (record_id,) = await self.publish_many(thread_id, run_id, [(event, data)], attempt)
        return record_id

    async def publish_many(
        self, thread_id: str, run_id: str, events: Sequence[tuple[str, bytes]], attempt: int = 0
    ) -> list[str]:
        run_log, thread_log = self._run_log(run_id), self._thread_log(thread_id)
        if run_log.ended:
            # A new attempt of a run whose previous attempt's log was closed (restart).
            run_log.ended, run_log.expires_at, run_log.ended_event = False, None, None
        ids = []
        for event, data in events:
            record = StreamRecord(self._ids.next_id(), run_id, event, data, attempt=attempt)
            run_log.append(record, self._max_records)
            thread_log.append(record, self._max_records)
            ids.append(record.id)
        return ids

    async def end_run_stream(self, thread_id: str, run_id: str, output: bytes) -> None:
        log = self._run_log(run_id)
        end = StreamRecord(self._ids.next_id(), run_id, "end", output, end=True)
        log.append(end, self._max_records)
        log.end()
        log.expires_at = time.monotonic() + self._retention
        await self.publish_thread_event(thread_id, "metadata", run_done_data(run_id))

    async def publish_thread_event(self, thread_id: str, event: str, data: bytes) -> str:
        record = StreamRecord(self._ids.next_id(), "", event, data)
        self._thread_log(thread_id).append(record, self._max_records)
        return record.id

    async def subscribe_run(
        self, run_id: str, since: str | None, idle_seconds: float
    ) -> AsyncIterator[StreamRecord | None]:
        log = self._run_log(run_id)
        async for record in self._follow(log, log.index_after(since), idle_seconds, until_end=True):
            yield record

    async def subscribe_thread(
        self, thread_id: str, since: str | None, idle_seconds: float
    ) -> AsyncIterator[StreamRecord | None]:
        log = self._thread_log(thread_id)
        start = log.index_after(since)
        async for record in self._follow(log, start, idle_seconds, until_end=False):
            yield record

    async def run_stream_ended(self, run_id: str) -> bool:
        log = self._runs.get(run_id)
        return log is not None and log.ended

    async def wait_run_output(self, run_id: str, max_wait_seconds: float) -> bytes | None:
        log = self._run_log(run_id)
        log.followers += 1  # a waiter keeps the log alive like any follower
        try:
            if not log.ended and not self._closed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max_wait_seconds):
                        await log.wait_end()
        finally:
            log.followers -= 1
        if log.ended and log.records and log.records[-1].end:
            return log.records[-1].data
        return None

    async def _follow(
        self, log: _Log, index: int, idle_seconds: float, *, until_end: bool
    ) -> AsyncIterator[StreamRecord | None]:
        log.followers += 1
        try:
            while True:
                index = max(index, log.dropped)  # a slow follower skips evicted records
                while index < log.dropped + len(log.records):
                    record = log.records[index - log.dropped]
                    index += 1
                    yield record
                    if record.end and until_end:
                        return
                if self._closed or (until_end and log.ended):
                    return
                try:
                    async with asyncio.timeout(idle_seconds):
                        await log.wait_change()
                except TimeoutError:
                    yield None
        finally:
            log.followers -= 1

    # Retention -----------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        interval = min(30.0, max(1.0, self._retention / 4))
        while True:
            await asyncio.sleep(interval)
            self.sweep()

    def sweep(self) -> None:
        """Drop logs nobody follows once they are older than the retention window.

        A run's log counts from its end; an unfinished run's log is kept while the run
        may still publish, up to a day of silence.
        """
        now = time.monotonic()
        wall_ms = time.time() * 1000
        for run_id, log in list(self._runs.items()):
            if log.followers:
                continue
            if log.expires_at is not None:
                expired = log.expires_at <= now
            else:
                expired = _idle_ms(log, wall_ms) > _ABANDONED_MS
            if expired:
                del self._runs[run_id]
        for thread_id, log in list(self._threads.items()):
            if not log.followers and _idle_ms(log, wall_ms) > self._retention * 1000:
                del self._threads[thread_id]


_ABANDONED_MS = 24 * 3600 * 1000


def _idle_ms(log: _Log, wall_ms: float) -> float:
    """Milliseconds since the log's last record (ids carry their wall-clock time), or since
    it was created while still empty (a run that has not started yet)."""
    if not log.records:
        return wall_ms - log.created_ms
    return wall_ms - int(log.records[-1].id.split("-", 1)[0])
