"""The event outbox: a run's events reach the broker in order, batched while a write is in
flight, without the graph waiting for each; `drain` waits for all of them and reports a
failed write; a slow broker holds the graph back once too many events wait."""

import asyncio
from collections.abc import Sequence

import pytest

from garrison.broker.memory import MemoryBroker
from garrison.broker.ports import FROM_START
from garrison.runtime.event_outbox import EventOutbox


class GatedBroker(MemoryBroker):
    """An in-process broker whose writes wait for the test to open a gate, and which
    records each write's batch."""

    def __init__(self) -> None:
        super().__init__(retention_seconds=60, max_events_per_run=100)
        self.gate = asyncio.Event()
        self.batches: list[list[str]] = []
        self.fail_with: Exception | None = None

    async def publish_many(
        self, thread_id: str, run_id: str, events: Sequence[tuple[str, bytes]], attempt: int = 0
    ) -> list[str]:
        self.batches.append([event for event, _ in events])
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return await super().publish_many(thread_id, run_id, events, attempt)


async def _published(broker: MemoryBroker) -> list[tuple[str, bytes, int]]:
    await broker.end_run_stream("t", "r", b"null")
    records = []
    async for record in broker.subscribe_run("r", FROM_START, 1.0):
        if record is not None and not record.end:
            records.append((record.event, record.data, record.attempt))
    return records


async def test_events_arriving_during_a_write_go_out_together_in_order() -> None:
    broker = GatedBroker()
    outbox = EventOutbox(broker, "t", "r", attempt=2)
    await outbox.put("e0", b"0")
    await asyncio.sleep(0)  # the sender takes what is queued: its write is in flight
    for n in range(1, 4):
        await outbox.put(f"e{n}", str(n).encode())  # returns at once: the gate is shut
    await asyncio.sleep(0)
    assert broker.batches == [["e0"]]  # the rest wait for the write in flight
    broker.gate.set()
    await outbox.drain()
    assert broker.batches == [["e0"], ["e1", "e2", "e3"]]
    assert await _published(broker) == [(f"e{n}", str(n).encode(), 2) for n in range(4)]


async def _draining_one_event() -> tuple[GatedBroker, EventOutbox, asyncio.Future[None]]:
    """An outbox whose one event is held at the broker's gate, and its drain, started."""
    broker = GatedBroker()
    outbox = EventOutbox(broker, "t", "r", attempt=1)
    await outbox.put("values", b"1")
    return broker, outbox, asyncio.ensure_future(outbox.drain())


async def test_drain_waits_for_the_write_in_flight() -> None:
    broker, _, drained = await _draining_one_event()
    await asyncio.sleep(0.01)
    assert not drained.done()
    broker.gate.set()
    await drained
    assert await _published(broker) == [("values", b"1", 1)]


async def test_a_failed_write_is_raised_by_drain_and_by_the_next_put() -> None:
    broker = GatedBroker()
    broker.fail_with = RuntimeError("broker down")
    broker.gate.set()
    outbox = EventOutbox(broker, "t", "r", attempt=1)
    await outbox.put("values", b"1")
    with pytest.raises(RuntimeError, match="broker down"):
        await outbox.drain()
    with pytest.raises(RuntimeError, match="broker down"):
        await outbox.put("values", b"2")


async def test_a_slow_broker_holds_the_graph_back_at_the_pending_limit() -> None:
    broker = GatedBroker()
    outbox = EventOutbox(broker, "t", "r", attempt=1, max_pending=3)
    await outbox.put("e0", b"0")
    await asyncio.sleep(0)  # in flight
    await outbox.put("e1", b"1")
    await outbox.put("e2", b"2")
    third = asyncio.ensure_future(outbox.put("e3", b"3"))  # the third waiting event
    await asyncio.sleep(0.01)
    assert not third.done()
    broker.gate.set()
    await third
    await outbox.drain()
    assert [event for event, _, _ in await _published(broker)] == ["e0", "e1", "e2", "e3"]


async def test_cancelling_a_drain_does_not_cut_the_write_short() -> None:
    broker, outbox, drained = await _draining_one_event()
    await asyncio.sleep(0)
    drained.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drained
    broker.gate.set()
    await outbox.drain()
    assert await _published(broker) == [("values", b"1", 1)]
