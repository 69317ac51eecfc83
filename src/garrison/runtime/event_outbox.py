"""Publishes one attempt's stream events in order, without making the graph wait for each.

Awaiting the broker for every event put a broker round trip between the graph's steps (a
run's `metadata` before the graph even opens, then each `values`). The outbox hands events
to one sending task instead: the graph goes on while they are written, and events that
arrive during a write go out together in the next one (`Broker.publish_many`). The
attempt drains the outbox before it reports its end, so a run's log still ends after
every event it published.
"""

import asyncio

from garrison.broker.ports import Broker

# Events waiting for the broker before `put` makes the graph wait too: a graph cannot
# outrun its broker by more than this (memory stays bounded when the broker is slow).
MAX_PENDING_EVENTS = 512


class EventOutbox:
    def __init__(
        self,
        broker: Broker,
        thread_id: str,
        run_id: str,
        attempt: int,
        *,
        max_pending: int = MAX_PENDING_EVENTS,
    ) -> None:
        self._broker = broker
        self._thread_id, self._run_id, self._attempt = thread_id, run_id, attempt
        self._max_pending = max_pending
        self._pending: list[tuple[str, bytes]] = []
        self._sender: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def put(self, event: str, data: bytes) -> None:
        """Queue an event behind those put before it."""
        self._raise_failure()
        self._pending.append((event, data))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_pending())
        elif len(self._pending) >= self._max_pending:
            await self.drain()

    async def drain(self) -> None:
        """Wait until every event put so far is published; a failed write raises here."""
        while (sender := self._sender) is not None:
            # Shielded: cancelling the attempt must not cut a write short.
            await asyncio.shield(sender)
        self._raise_failure()

    async def _send_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._broker.publish_many(self._thread_id, self._run_id, batch, self._attempt)
        except Exception as exc:  # kept for the attempt, which fails with it
            self._failure = exc
            self._pending.clear()
        finally:
            self._sender = None

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
