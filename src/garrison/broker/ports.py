"""What moves between API processes and workers besides the database.

Nothing here is the source of truth: a lost wake-up is covered by polling, a lost cancel
signal by the database flag the worker reads with each heartbeat, and lost events only
cost a client its replay (the run itself completes and its result is in storage).
"""

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from garrison import serde
from garrison.domain.runs import CancelAction

# `since` values for subscriptions.
FROM_START = "-"


def run_done_data(run_id: str) -> bytes:
    """The thread event that follows a run's end: `metadata` with this data."""
    return serde.dumps({"status": "run_done", "run_id": run_id})


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One entry of a run's (or thread's) event log.

    `event` is the SSE event name; `data` is compact JSON. The log of a run ends with a
    record whose `end` is True and whose `data` is the run's final output (what `wait` and
    `join` return); that record is never sent to SSE clients.
    """

    id: str  # "<unix ms>-<seq>", increasing within a log
    run_id: str
    event: str
    data: bytes
    end: bool = False
    # The run attempt that published it (0 for thread events and end records). Readers
    # drop a record from an attempt older than one already seen: a worker that lost its
    # lease may publish a little longer, but never over the new owner's events.
    attempt: int = 0


class Broker(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """Whether the broker answers now (for metrics and alerts)."""

    def pool_stats(self) -> Mapping[str, int] | None:
        """Connection-pool usage for metrics (`in_use`, `max`); None without a pool."""

    # Work wake-ups -------------------------------------------------------------------
    async def notify_work(self) -> None:
        """Tell workers that a run may be claimable."""

    async def wait_for_work(self, max_wait_seconds: float) -> None:
        """Return after a notification or `max_wait_seconds`, whichever comes first."""

    # Cancel signals ------------------------------------------------------------------
    async def send_cancel(self, run_id: str, action: CancelAction) -> None: ...

    def on_cancel(
        self, run_id: str, callback: Callable[[CancelAction], None]
    ) -> Callable[[], None]:
        """Call `callback` when a cancel for `run_id` arrives; returns the unsubscriber."""

    # Event streams -------------------------------------------------------------------
    async def publish(
        self, thread_id: str, run_id: str, event: str, data: bytes, attempt: int = 0
    ) -> str:
        """Append an event of `attempt` to the run's log and its thread's log; returns
        its id."""

    async def publish_many(
        self, thread_id: str, run_id: str, events: Sequence[tuple[str, bytes]], attempt: int = 0
    ) -> list[str]:
        """`publish` for several (event, data) pairs, in order, in one write where the
        broker has writes; their ids."""

    async def end_run_stream(self, thread_id: str, run_id: str, output: bytes) -> None:
        """Close the run's log with its final output, and tell the thread's followers (a
        `metadata` event, `run_done_data(run_id)`), in one write where the broker has
        writes. The run's log is kept for replay until the retention window passes."""

    async def publish_thread_event(self, thread_id: str, event: str, data: bytes) -> str:
        """Append a thread-level event (`metadata` run_done, `state_update`)."""

    def subscribe_run(
        self, run_id: str, since: str | None, idle_seconds: float
    ) -> AsyncIterator[StreamRecord | None]:
        """Follow a run's log until its end record (included).

        `since`: None for live events only, FROM_START for the whole retained log, or an
        event id to replay what came after it. Yields None after each `idle_seconds`
        without events, so callers can send heartbeats or re-check the run.
        """

    def subscribe_thread(
        self, thread_id: str, since: str | None, idle_seconds: float
    ) -> AsyncIterator[StreamRecord | None]:
        """Follow a thread's log (every run on it, plus thread events) until closed;
        None after each idle period, as for runs."""

    async def run_stream_ended(self, run_id: str) -> bool:
        """Whether the run's log holds its end record (within retention)."""

    async def wait_run_output(self, run_id: str, max_wait_seconds: float) -> bytes | None:
        """The run's final output once its log ends; None if it has not within the wait."""
