"""The thread that owns Garrison's main SQLite connection and runs its units of work.

The event loop queues units; the thread takes every unit queued so far as one batch, runs
them one after another in queue order, and hands all their outcomes back to the loop in a
single wake-up. Under load that turns many thread hops (a futex wake, a self-pipe write
and an event-loop callback each) into one per batch.

A batch is also the unit of group commit. Every transaction commits with
`synchronous=NORMAL`, which in WAL mode writes the log without syncing it; when a batch
holds a durable unit, the thread syncs the write-ahead log once after the batch and only
then reports the batch's outcomes. One `fsync` makes every commit of the batch (and all
before it) survive an OS crash, where `synchronous=FULL` would sync at each of them.
"""

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Unit:
    """One unit of work: `fn(conn, *args)`; `durable` units report only once the log is synced."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    durable: bool
    future: "asyncio.Future[Any]"
    result: Any = None
    error: BaseException | None = None


_STOP = None


class ConnectionThread:
    """A daemon thread that runs every unit of work on `conn`, fed through `submit`."""

    def __init__(self, conn: sqlite3.Connection, *, name: str = "garrison-sqlite") -> None:
        self._conn = conn
        self._queue: SimpleQueue[Unit | None] = SimpleQueue()
        self._log_path: str | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def sync_log_at(self, path: str | None) -> None:
        """Group-commit durable units by syncing the write-ahead log at `path`; None (no WAL,
        e.g. an in-memory database) leaves durability to SQLite's own setting."""
        self._log_path = path

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, durable: bool
    ) -> "asyncio.Future[Any]":
        if self._closing:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        future = asyncio.get_running_loop().create_future()
        self._queue.put(Unit(fn, args, durable, future))
        return future

    async def stop(self) -> None:
        """Run every unit queued so far, then close the connection and end the thread."""
        if not self._closing:
            self._closing = True
            self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            self._run(batch)
        self._conn.close()

    def _next_batch(self) -> tuple[list[Unit], bool]:
        batch: list[Unit] = []
        item = self._queue.get()
        while item is not _STOP:
            batch.append(item)
            if self._queue.empty():
                return batch, False
            item = self._queue.get_nowait()
        return batch, True

    def _run(self, batch: list[Unit]) -> None:
        synced = True
        for unit in batch:
            try:
                unit.result = unit.fn(self._conn, *unit.args)
                synced = synced and not unit.durable
            except BaseException as exc:  # every outcome, even a KeyboardInterrupt, goes back
                unit.error = exc
        if not synced and self._log_path is not None:
            self._sync_log(batch)
        self._deliver(batch)

    def _sync_log(self, batch: list[Unit]) -> None:
        assert self._log_path is not None
        try:
            descriptor = os.open(self._log_path, os.O_RDONLY)
        except FileNotFoundError:
            return  # no log: every commit was checkpointed into the database file and synced
        except OSError as exc:
            self._fail_durable(batch, exc)
            return
        try:
            os.fsync(descriptor)
        except OSError as exc:
            self._fail_durable(batch, exc)
        finally:
            os.close(descriptor)

    @staticmethod
    def _fail_durable(batch: list[Unit], exc: OSError) -> None:
        logger.error("could not sync the SQLite write-ahead log: %s", exc)
        for unit in batch:
            if unit.durable and unit.error is None:
                unit.error = sqlite3.OperationalError(f"disk I/O error: {exc}")

    @staticmethod
    def _deliver(batch: list[Unit]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Unit]] = {}
        for unit in batch:
            by_loop.setdefault(unit.future.get_loop(), []).append(unit)
        for loop, units in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_settle, units)


def _settle(units: list[Unit]) -> None:
    for unit in units:
        if unit.future.done():  # the caller was cancelled; its unit ran regardless
            continue
        if unit.error is not None:
            unit.future.set_exception(unit.error)
        else:
            unit.future.set_result(unit.result)
