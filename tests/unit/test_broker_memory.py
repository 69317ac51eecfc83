"""What only the in-process broker does (exact trimming, sweeping) and event ids; the
behaviour every broker shares is in tests/contract/test_broker.py."""

import asyncio

import pytest

from garrison.broker.ids import EventIdClock, parse_event_id
from garrison.broker.memory import MemoryBroker
from garrison.broker.ports import FROM_START
from garrison.domain.errors import InvalidArgumentError


@pytest.fixture
async def broker() -> MemoryBroker:
    return MemoryBroker(retention_seconds=60, max_events_per_run=100)


async def test_logs_are_trimmed_exactly_and_followers_skip_evicted_records() -> None:
    broker = MemoryBroker(retention_seconds=60, max_events_per_run=10)
    for i in range(25):
        await broker.publish("t", "r", str(i), b"{}")
    await broker.end_run_stream("t", "r", b"null")
    kept = [r.event async for r in broker.subscribe_run("r", FROM_START, 1.0) if r]
    assert kept == [str(i) for i in range(16, 25)] + ["end"]


async def test_ids_increase_even_within_one_millisecond() -> None:
    clock = EventIdClock()
    ids = [parse_event_id(clock.next_id()) for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("1700000000000-5", (1700000000000, 5)),
        ("1700000000000", (1700000000000, 0)),
        ("1700000000000-*", (1700000000000, 2**63)),
    ],
)
def test_event_id_forms(raw: str, parsed: tuple[int, int]) -> None:
    assert parse_event_id(raw) == parsed


@pytest.mark.parametrize("raw", ["abc", "12-x", "-5", ""])
def test_malformed_event_ids(raw: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_event_id(raw)


async def test_sweep_drops_expired_logs_nobody_follows() -> None:
    broker = MemoryBroker(retention_seconds=0, max_events_per_run=10)
    await broker.publish("t", "r", "e", b"{}")
    await broker.end_run_stream("t", "r", b"null")
    broker.sweep()
    assert not await broker.run_stream_ended("r")


async def test_sweep_keeps_the_log_a_waiter_is_blocked_on(broker: MemoryBroker) -> None:
    waiter = asyncio.ensure_future(broker.wait_run_output("pending-run", 5))
    await asyncio.sleep(0)
    broker.sweep()  # the run has not started: its log is empty, but someone waits on it
    await broker.publish("t", "pending-run", "metadata", b"{}")
    await broker.end_run_stream("t", "pending-run", b'{"count": 1}')
    assert await asyncio.wait_for(waiter, 1) == b'{"count": 1}'
