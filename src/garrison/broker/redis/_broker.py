"""RedisBroker: the broker port for many API and worker processes sharing one Redis."""

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import partial
from typing import Any, cast

from redis.asyncio.client import Pipeline

from garrison.broker.ids import EventIdClock
from garrison.broker.ports import StreamRecord, run_done_data
from garrison.broker.redis import _layout as layout
from garrison.broker.redis._link import Closed, Link, Unavailable
from garrison.broker.redis._listener import Listener, Watch
from garrison.domain.runs import CancelAction
from garrison.security.event_cipher import EventCipher, run_log_context, thread_log_context

logger = logging.getLogger("garrison.broker.redis")

_ABANDONED_MS = 24 * 3600 * 1000  # an unfinished run's log survives a day of silence
_MIN_TTL_MS = 1000  # a zero TTL would delete a log in the same breath as writing it
_READ_BATCH = 512
# How often a follower reads anyway while its notifications are not confirmed.
_UNCONFIRMED_POLL_SECONDS = 0.5


class RedisBroker:
    """Implements `garrison.broker.ports.Broker` on Redis Streams and pub/sub.

    Redis is an accelerator, never the source of truth: while it is down or after a flush,
    publishing drops events (logged, rate-limited), `wait_for_work` falls back to its
    timeout (the polling interval), output waits return None so callers re-check storage,
    and subscriptions yield idle ticks until it is back.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        retention_seconds: float,
        max_events_per_run: int,
        connect_timeout_seconds: float = 2.0,
        max_connections: int = 32,
        cipher: EventCipher | None = None,
    ) -> None:
        self._keys = layout.Keys(key_prefix)
        self._cipher = cipher  # seals event data kept for replay (encryption at rest)
        self._max_events = max_events_per_run
        self._retention_ms = max(_MIN_TTL_MS, round(retention_seconds * 1000))
        self._connect_timeout = connect_timeout_seconds
        self._link = Link(
            url, connect_timeout_seconds=connect_timeout_seconds, max_connections=max_connections
        )
        self._client = self._link.client
        self._origin = secrets.token_hex(8)  # lets the listener skip this process's signals
        self._ids = EventIdClock()  # ids for events dropped while Redis is unavailable
        self._work = asyncio.Event()
        self._cancel_callbacks: dict[str, list[Callable[[CancelAction], None]]] = {}
        self._listener = Listener(
            self._client,
            self._keys,
            origin=self._origin,
            io_timeout=self._link.io_timeout,
            outage=self._link.outage,
            on_wake=self._work.set,
            on_cancel=self._dispatch_cancel,
        )

    async def start(self) -> None:
        self._listener.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._connect_timeout):
                await self._listener.attempted.wait()
        if not self._listener.subscribed.is_set():
            logger.warning(
                "Redis at %s is not reachable at start-up; workers poll and run streams are "
                "not kept until it is",
                self._link.where,
            )

    async def ping(self) -> bool:
        return await self._link.ping()

    def pool_stats(self) -> Mapping[str, int]:
        return self._link.pool_stats()

    async def close(self) -> None:
        if self._link.closed:
            return
        self._link.begin_close()  # calls from now on end with Closed...
        await self._listener.stop()  # ...which is what the followers it wakes find
        await self._link.close()

    # Work wake-ups -------------------------------------------------------------------
    async def notify_work(self) -> None:
        self._work.set()  # a worker in this process needs no round trip through Redis
        await self._link.write(
            "waking workers", partial(self._client.publish, self._keys.work_channel, self._origin)
        )

    async def wait_for_work(self, max_wait_seconds: float) -> None:
        # The timeout is the polling fallback: never wait longer, whatever Redis does.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait_seconds):
                await self._work.wait()
        self._work.clear()

    # Cancel signals ------------------------------------------------------------------
    async def send_cancel(self, run_id: str, action: CancelAction) -> None:
        self._dispatch_cancel(run_id, action)
        message = layout.cancel_message(self._origin, run_id, action)
        await self._link.write(
            "sending a cancel signal",
            partial(self._client.publish, self._keys.cancel_channel, message),
        )

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

    def _dispatch_cancel(self, run_id: str, action: CancelAction) -> None:
        for callback in list(self._cancel_callbacks.get(run_id, ())):
            try:
                callback(action)
            except Exception:  # one faulty callback must not silence the others
                logger.exception("cancel callback for run %s failed", run_id)

    # Writing logs: one pipelined round trip each --------------------------------------
    async def publish(
        self, thread_id: str, run_id: str, event: str, data: bytes, attempt: int = 0
    ) -> str:
        (record_id,) = await self.publish_many(thread_id, run_id, [(event, data)], attempt)
        return record_id

    async def publish_many(
        self, thread_id: str, run_id: str, events: Sequence[tuple[str, bytes]], attempt: int = 0
    ) -> list[str]:
        if not events:
            return []
        if not self._link.usable():
            return [self._ids.next_id() for _ in events]
        run_log, thread_log = self._keys.run_log(run_id), self._keys.thread_log(thread_id)
        pipe = self._client.pipeline(transaction=False)
        for event, data in events:
            run_data = thread_data = data
            if self._cipher is not None:
                run_data = self._cipher.seal(data, run_log_context(run_id))
                thread_data = self._cipher.seal(data, thread_log_context(thread_id, run_id))
            # Raw commands: redis-py's typed helpers cost more Python time than they save.
            pipe.execute_command(
                "XADD", run_log, "MAXLEN", "~", self._max_events, "*",
                layout.EVENT, event, layout.DATA, run_data, layout.ATTEMPT, attempt,
            )  # fmt: skip
            pipe.execute_command(
                "XADD", thread_log, "MAXLEN", "~", self._max_events, "*",
                layout.RUN, run_id, layout.EVENT, event, layout.DATA, thread_data,
                layout.ATTEMPT, attempt,
            )  # fmt: skip
        # Also lifts the retention TTL of a log that a previous attempt ended.
        pipe.execute_command("PEXPIRE", run_log, _ABANDONED_MS)
        pipe.execute_command("PEXPIRE", thread_log, self._retention_ms)  # expires when idle
        # One notification per log and write: followers read whatever is new.
        pipe.execute_command("PUBLISH", self._keys.changes(run_log), b"")
        pipe.execute_command("PUBLISH", self._keys.changes(thread_log), b"")
        results = await self._link.write("publishing events", pipe.execute)
        if results is None:
            return [self._ids.next_id() for _ in events]
        return [results[2 * n].decode() for n in range(len(events))]

    async def end_run_stream(self, thread_id: str, run_id: str, output: bytes) -> None:
        if not self._link.usable():
            return
        run_log = self._keys.run_log(run_id)
        if self._cipher is not None:
            output = self._cipher.seal(output, run_log_context(run_id))
        pipe = self._client.pipeline(transaction=False)
        pipe.execute_command(
            "XADD", run_log, "MAXLEN", "~", self._max_events, "*",
            layout.EVENT, "end", layout.DATA, output, layout.END, 1,
        )  # fmt: skip
        pipe.execute_command("PEXPIRE", run_log, self._retention_ms)
        pipe.execute_command("PUBLISH", self._keys.changes(run_log), b"")
        # Output waiters hear only of the end, and get the output with it.
        pipe.execute_command("PUBLISH", self._keys.run_ended(run_id), output)
        self._queue_thread_event(pipe, thread_id, "metadata", run_done_data(run_id))
        await self._link.write("ending a run's stream", pipe.execute)

    async def publish_thread_event(self, thread_id: str, event: str, data: bytes) -> str:
        if not self._link.usable():
            return self._ids.next_id()
        pipe = self._client.pipeline(transaction=False)
        self._queue_thread_event(pipe, thread_id, event, data)
        results = await self._link.write("publishing a thread event", pipe.execute)
        if results is None:
            return self._ids.next_id()
        return str(results[0].decode())

    def _queue_thread_event(self, pipe: Pipeline, thread_id: str, event: str, data: bytes) -> None:
        """Queue a thread-level event's commands; the first replies with its id."""
        thread_log = self._keys.thread_log(thread_id)
        if self._cipher is not None:
            data = self._cipher.seal(data, thread_log_context(thread_id, ""))
        pipe.execute_command(
            "XADD", thread_log, "MAXLEN", "~", self._max_events, "*",
            layout.RUN, "", layout.EVENT, event, layout.DATA, data,
        )  # fmt: skip
        pipe.execute_command("PEXPIRE", thread_log, self._retention_ms)
        pipe.execute_command("PUBLISH", self._keys.changes(thread_log), b"")

    # Reading logs --------------------------------------------------------------------
    async def subscribe_run(
        self, run_id: str, since: str | None, idle_seconds: float
    ) -> AsyncIterator[StreamRecord | None]:
        cursor = layout.cursor_after(since)  # malformed ids fail here, before any I/O

        def decode(entry: layout.Entry) -> StreamRecord:
            record = layout.run_record(run_id, entry)
            if self._cipher is None:
                return record
            data = self._cipher.open(record.data, run_log_context(run_id))
            return dataclasses.replace(record, data=data)

        key = self._keys.run_log(run_id)
        async for record in self._follow(key, cursor, idle_seconds, decode, until_end=True):
            yield record

    async def subscribe_thread(
        self, thread_id: str, since: str | None, idle_seconds: float
    ) -> AsyncIterator[StreamRecord | None]:
        cursor = layout.cursor_after(since)
        key = self._keys.thread_log(thread_id)

        def decode(entry: layout.Entry) -> StreamRecord:
            record = layout.thread_record(entry)
            if self._cipher is None:
                return record
            context = thread_log_context(thread_id, record.run_id)
            return dataclasses.replace(record, data=self._cipher.open(record.data, context))

        async for record in self._follow(key, cursor, idle_seconds, decode, until_end=False):
            yield record

    async def run_stream_ended(self, run_id: str) -> bool:
        try:
            last = await self._tail("reading a run's stream", self._keys.run_log(run_id))
        except (Unavailable, Closed):
            return False  # callers then go by storage, which is what they fall back to
        return last is not None and layout.is_end(last)

    async def wait_run_output(self, run_id: str, max_wait_seconds: float) -> bytes | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_seconds
        run_log = self._keys.run_log(run_id)
        watch = await self._listener.watch(self._keys.run_ended(run_id))
        try:
            while True:
                watch.changed.clear()
                if watch.payload is not None:
                    return self._output(run_id, watch.payload)  # published while we waited
                try:
                    last = await self._tail("waiting for a run's output", run_log)
                except Closed:
                    return None
                except Unavailable:
                    await self._link.pause(deadline - loop.time())  # callers re-check storage
                    return None
                if last is not None and layout.is_end(last):
                    return self._output(run_id, last[1][layout.DATA])
                remaining = deadline - loop.time()
                if remaining <= 0 or not await self._changed(watch, remaining):
                    return None
        finally:
            watch.close()

    def _output(self, run_id: str, data: bytes) -> bytes:
        return data if self._cipher is None else self._cipher.open(data, run_log_context(run_id))

    async def _follow(
        self,
        key: str,
        cursor: str | None,
        idle_seconds: float,
        decode: Callable[[layout.Entry], StreamRecord],
        *,
        until_end: bool,
    ) -> AsyncIterator[StreamRecord | None]:
        """Follow a log after `cursor` (None: after its current tail), reading it whenever
        its change notification arrives, and yielding None after each idle period."""
        watch = await self._listener.watch(self._keys.changes(key))
        try:
            # A run's log is first checked for an end at or before the cursor: nothing follows.
            checked = not until_end
            fresh = False  # whether the last read left nothing unread
            loop = asyncio.get_running_loop()
            quiet_until = loop.time() + idle_seconds
            while True:
                if fresh:
                    remaining = quiet_until - loop.time()
                    if remaining <= 0 or not await self._changed(watch, remaining):
                        if self._link.closed:
                            return
                        yield None
                        quiet_until = loop.time() + idle_seconds
                        if watch.confirmed:
                            continue
                        # Unconfirmed notifications may have been missed: read anyway.
                watch.changed.clear()  # a change during the read below triggers another
                try:
                    if cursor is None or not checked:
                        last = await self._tail("following a stream", key)
                        live = cursor is None
                        if cursor is None:
                            # "Live" as a concrete id, not `$`: events published before the
                            # first read, or between two of them, are not missed.
                            cursor = last[0].decode() if last is not None else "0-0"
                        if until_end and _ends_at_or_before(last, cursor):
                            return
                        checked = True
                        if live:
                            fresh = True  # nothing follows the tail yet; appends notify
                            continue
                    read = partial(self._client.xread, {key: cursor}, count=_READ_BATCH)
                    entries = _entries(await self._link.read("following a stream", read))
                except Closed:
                    return
                except Unavailable:
                    if await self._link.pause(idle_seconds):
                        return
                    yield None
                    continue
                fresh = len(entries) < _READ_BATCH
                if entries:
                    quiet_until = loop.time() + idle_seconds
                for entry in entries:
                    record = decode(entry)
                    cursor = record.id
                    yield record
                    if until_end and record.end:
                        return
        finally:
            watch.close()

    async def _changed(self, watch: Watch, seconds: float) -> bool:
        """Wait up to `seconds` for a notification. While notifications are unconfirmed
        (subscribing, or the subscription connection is down) this returns True after a
        poll interval, so callers read anyway."""
        if watch.changed.is_set():
            return True
        wait = seconds if watch.confirmed else min(seconds, _UNCONFIRMED_POLL_SECONDS)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await watch.changed.wait()
            return True
        return wait < seconds

    async def _tail(self, what: str, key: str) -> layout.Entry | None:
        """The last entry of a log (XREVRANGE ... COUNT 1), if it has one."""
        reply = await self._link.read(what, partial(self._client.xrevrange, key, count=1))
        return cast(layout.Entry, reply[0]) if reply else None


def _ends_at_or_before(last: layout.Entry | None, cursor: str) -> bool:
    return (
        last is not None
        and layout.is_end(last)
        and layout.stream_id(last[0]) <= layout.stream_id(cursor)
    )


def _entries(reply: Any) -> list[layout.Entry]:
    """The entries of a single-stream XREAD reply (RESP2: [[key, entries]], or empty)."""
    return list(reply[0][1]) if reply else []
