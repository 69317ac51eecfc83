"""One contract suite for every broker adapter (in-process and Redis), then what only the
Redis adapter promises: delivery between processes and surviving Redis outages."""

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from garrison.broker.ids import parse_event_id
from garrison.broker.memory import MemoryBroker
from garrison.broker.ports import FROM_START, Broker, StreamRecord
from garrison.broker.redis import RedisBroker
from garrison.broker.redis._link import Link
from garrison.domain.errors import InvalidArgumentError
from garrison.domain.runs import CancelAction
from tests.support.redis_server import RedisServer
from tests.support.server import free_port

REDIS_URL = os.environ.get("GARRISON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADAPTERS = ["memory", "redis"]


def _redis_broker(
    url: str, prefix: str, *, max_events: int = 100, retention: float = 60
) -> RedisBroker:
    return RedisBroker(
        url,
        key_prefix=prefix,
        retention_seconds=retention,
        max_events_per_run=max_events,
        connect_timeout_seconds=0.5,
    )


async def _delete_prefix(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _prefix() -> AsyncIterator[str]:
    """A key prefix of its own for one test, against the shared test Redis."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # a missing Redis is a broken test setup, never a skip
        pytest.fail(f"test Redis at {REDIS_URL} is unreachable: {exc}")
    finally:
        await client.aclose()
    prefix = f"test:{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        await _delete_prefix(prefix)


class Factory:
    """Makes brokers of one adapter kind, all closed after the test."""

    def __init__(self, kind: str, prefix: str) -> None:
        self.kind = kind
        self.prefix = prefix
        self.made: list[Broker] = []

    async def make(self, *, max_events: int = 100, retention: float = 60) -> Broker:
        broker: Broker
        if self.kind == "memory":
            broker = MemoryBroker(retention_seconds=retention, max_events_per_run=max_events)
        else:
            broker = _redis_broker(
                REDIS_URL, self.prefix, max_events=max_events, retention=retention
            )
        await broker.start()
        self.made.append(broker)
        return broker


@pytest.fixture(params=ADAPTERS)
async def factory(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    async with contextlib.AsyncExitStack() as stack:
        prefix = await stack.enter_async_context(_prefix()) if request.param == "redis" else ""
        made = Factory(request.param, prefix)
        try:
            yield made
        finally:
            for broker in made.made:  # before the prefix's keys are deleted
                await broker.close()


@pytest.fixture
async def broker(factory: Factory) -> Broker:
    return await factory.make()


async def _take(
    stream: AsyncIterator[StreamRecord | None], count: int
) -> list[StreamRecord | None]:
    items: list[StreamRecord | None] = []
    async for item in stream:
        items.append(item)
        if len(items) == count:
            break
    return items


async def _records(stream: AsyncIterator[StreamRecord | None]) -> list[StreamRecord]:
    """Every record of a run subscription, up to and including its end."""
    return [record async for record in stream if record is not None]


async def _until(stream: AsyncIterator[StreamRecord | None], event: str) -> list[StreamRecord]:
    found: list[StreamRecord] = []
    async for record in stream:
        if record is not None:
            found.append(record)
            if record.event == event:
                break
    return found


async def _until_idle(stream: AsyncIterator[StreamRecord | None]) -> list[StreamRecord]:
    """The records a follower gets before its first idle tick (a replay)."""
    found: list[StreamRecord] = []
    async for record in stream:
        if record is None:
            break
        found.append(record)
    return found


async def _next_record(
    stream: AsyncIterator[StreamRecord | None], max_ticks: int = 50
) -> StreamRecord:
    for _ in range(max_ticks):
        record = await anext(stream)
        if record is not None:
            return record
    pytest.fail(f"no record after {max_ticks} idle ticks")


async def _first_tick(stream: AsyncIterator[StreamRecord | None]) -> None:
    """Consume one idle tick: the follower is then subscribed and waiting."""
    assert await anext(stream) is None


# Replay and live following -----------------------------------------------------------------
async def test_replay_from_start_and_after_an_id(broker: Broker) -> None:
    ids = [await broker.publish("t", "r", f"e{i}", b"{}") for i in range(3)]
    await broker.end_run_stream("t", "r", b'{"done":true}')
    everything = await _records(broker.subscribe_run("r", FROM_START, 1.0))
    assert [r.event for r in everything] == ["e0", "e1", "e2", "end"]
    assert everything[-1].end and everything[-1].data == b'{"done":true}'
    assert [r.id for r in everything[:-1]] == ids  # publish returns the run log's ids
    after_first = await _records(broker.subscribe_run("r", ids[0], 1.0))
    assert [r.id for r in after_first[:-1]] == ids[1:]


async def test_ids_are_redis_stream_ids_increasing_within_a_log(broker: Broker) -> None:
    ids = [await broker.publish("t", "r", "e", b"{}") for _ in range(50)]
    parsed = [parse_event_id(i) for i in ids]
    assert all("-" in i for i in ids)
    assert parsed == sorted(parsed) and len(set(parsed)) == 50


async def test_last_event_id_forms_bare_ms_and_star(broker: Broker) -> None:
    first = await broker.publish("t", "r", "a", b"1")
    await broker.publish("t", "r", "b", b"2")
    await asyncio.sleep(0.005)  # the end falls in a later millisecond than `first`
    await broker.end_run_stream("t", "r", b"null")
    everything = await _records(broker.subscribe_run("r", FROM_START, 1.0))
    ms = int(first.split("-")[0])
    # `<ms>` means `<ms>-0`; `<ms>-*` skips the whole millisecond.
    for since, after in ((str(ms), (ms, 0)), (f"{ms}-*", (ms, 2**63))):
        resumed = await _records(broker.subscribe_run("r", since, 1.0))
        assert [r.id for r in resumed] == [r.id for r in everything if parse_event_id(r.id) > after]
        assert resumed[-1].end


async def test_resuming_after_the_last_record_of_an_ended_run_ends_at_once(
    broker: Broker,
) -> None:
    await broker.publish("t", "r", "a", b"1")
    await broker.end_run_stream("t", "r", b"null")
    end_id = (await _records(broker.subscribe_run("r", FROM_START, 1.0)))[-1].id
    for since in (end_id, "99999999999999-0", "99999999999999999999999-99999999999999999999"):
        items = await asyncio.wait_for(_take(broker.subscribe_run("r", since, 5.0), 1), 1.0)
        assert items == []


async def test_malformed_last_event_id_is_rejected(broker: Broker) -> None:
    for since in ("abc", "12-x", "-5"):
        with pytest.raises(InvalidArgumentError):
            await anext(broker.subscribe_run("r", since, 1.0))
        with pytest.raises(InvalidArgumentError):
            await anext(broker.subscribe_thread("t", since, 1.0))


async def test_live_subscribers_see_only_new_events(broker: Broker) -> None:
    await broker.publish("t", "r", "old", b"{}")
    stream = broker.subscribe_run("r", None, 0.05)
    await _first_tick(stream)
    await broker.publish("t", "r", "new", b"{}")
    (record,) = await _take(stream, 1)
    assert record is not None and record.event == "new"


async def test_live_subscription_to_an_ended_run_ends_at_once(broker: Broker) -> None:
    await broker.publish("t", "r", "a", b"1")
    await broker.end_run_stream("t", "r", b"null")
    assert await asyncio.wait_for(_take(broker.subscribe_run("r", None, 5.0), 1), 1.0) == []


async def test_live_followers_miss_nothing_between_idle_ticks(broker: Broker) -> None:
    stream = broker.subscribe_run("r", None, 0.002)
    await _first_tick(stream)
    follower = asyncio.ensure_future(_until(stream, "end"))

    async def publisher() -> list[str]:
        ids = []
        for i in range(200):
            ids.append(await broker.publish("t", "r", str(i), b"{}"))
            if i % 10 == 0:
                await asyncio.sleep(0.003)  # let ticks fall between publishes
        await broker.end_run_stream("t", "r", b"null")
        return ids

    published = await publisher()
    received = await asyncio.wait_for(follower, 5)
    assert [r.id for r in received[:-1]] == published
    assert received[-1].end


async def test_idle_followers_get_ticks(broker: Broker) -> None:
    assert await _take(broker.subscribe_run("quiet", None, 0.01), 2) == [None, None]
    assert await _take(broker.subscribe_thread("quiet", FROM_START, 0.01), 2) == [None, None]


async def test_thread_log_collects_every_run_and_thread_events(broker: Broker) -> None:
    await broker.publish("t", "r1", "values", b"1")
    await broker.publish("t", "r2", "values", b"2")
    # A run's end record stays in the run's log; the thread hears that the run is done.
    await broker.end_run_stream("t", "r1", b"null")
    await broker.publish_thread_event("t", "state_update", b"{}")
    items = await _take(broker.subscribe_thread("t", FROM_START, 1.0), 4)
    assert [(i.run_id, i.event, i.data) for i in items if i] == [
        ("r1", "values", b"1"),
        ("r2", "values", b"2"),
        ("", "metadata", b'{"status":"run_done","run_id":"r1"}'),
        ("", "state_update", b"{}"),
    ]


async def test_thread_followers_resume_after_an_id_and_follow_live(broker: Broker) -> None:
    first = await broker.publish_thread_event("t", "a", b"1")
    await broker.publish_thread_event("t", "b", b"2")
    stream = broker.subscribe_thread("t", first, 0.05)
    (record,) = await _take(stream, 1)
    assert record is not None and record.event == "b"
    live = broker.subscribe_thread("t", None, 0.05)
    await _first_tick(live)
    await broker.publish("t", "r", "c", b"3")
    (record,) = await _take(live, 1)
    assert record is not None and (record.run_id, record.event) == ("r", "c")


async def test_logs_are_bounded_and_followers_get_a_contiguous_tail(factory: Factory) -> None:
    # Redis trims with MAXLEN ~ (whole nodes of 100 entries), so the bound is approximate.
    broker = await factory.make(max_events=10)
    published = [await broker.publish("t", "r", str(i), b"{}") for i in range(250)]
    await broker.end_run_stream("t", "r", b"null")
    kept = await _records(broker.subscribe_run("r", FROM_START, 1.0))
    assert 10 <= len(kept) < 250
    assert [r.id for r in kept[:-1]] == published[-(len(kept) - 1) :] and kept[-1].end
    thread_records = await _until_idle(broker.subscribe_thread("t", FROM_START, 0.05))
    assert 10 <= len(thread_records) < 250
    assert [r.event for r in thread_records[-2:]] == ["249", "metadata"]  # then run_done


# Run output ---------------------------------------------------------------------------------
async def test_wait_run_output(broker: Broker) -> None:
    assert await broker.wait_run_output("r", 0.01) is None
    assert not await broker.run_stream_ended("r")
    waiter = asyncio.ensure_future(broker.wait_run_output("r", 5))
    await asyncio.sleep(0.05)
    await broker.publish("t", "r", "values", b"{}")  # events do not end the wait
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await broker.end_run_stream("t", "r", b"[1]")
    assert await asyncio.wait_for(waiter, 2) == b"[1]"
    assert await broker.run_stream_ended("r")
    assert await broker.wait_run_output("r", 0) == b"[1]"  # ended: no wait at all


async def test_a_waiter_registered_before_the_run_starts_gets_its_output(broker: Broker) -> None:
    waiter = asyncio.ensure_future(broker.wait_run_output("pending-run", 5))
    await asyncio.sleep(0.05)
    await broker.publish("t", "pending-run", "metadata", b"{}")
    await broker.end_run_stream("t", "pending-run", b'{"count": 1}')
    assert await asyncio.wait_for(waiter, 2) == b'{"count": 1}'


async def test_a_new_attempt_reopens_an_ended_log(broker: Broker) -> None:
    await broker.publish("t", "r", "values", b"1")
    await broker.end_run_stream("t", "r", b'"first"')
    await broker.publish("t", "r", "values", b"2")  # the run restarted
    assert not await broker.run_stream_ended("r")
    waiter = asyncio.ensure_future(broker.wait_run_output("r", 5))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # the first attempt's output is stale
    await broker.end_run_stream("t", "r", b'"second"')
    assert await asyncio.wait_for(waiter, 2) == b'"second"'


async def test_records_carry_the_attempt_that_published_them(broker: Broker) -> None:
    await broker.publish("t", "r", "values", b"1", attempt=1)
    await broker.publish("t", "r", "values", b"2", attempt=2)
    await broker.publish_thread_event("t", "state", b"3")
    await broker.end_run_stream("t", "r", b"null")
    run_records = await _records(broker.subscribe_run("r", FROM_START, 1.0))
    assert [(r.data, r.attempt) for r in run_records[:-1]] == [(b"1", 1), (b"2", 2)]
    assert run_records[-1].end and run_records[-1].attempt == 0
    thread_records = await _take(broker.subscribe_thread("t", FROM_START, 1.0), 3)
    assert [r.attempt for r in thread_records if r is not None] == [1, 2, 0]


async def test_publish_many_appends_a_batch_in_order_to_both_logs(broker: Broker) -> None:
    first = await broker.publish("t", "r", "metadata", b"0", attempt=3)
    batch = [("values", b"1"), ("updates", b"2"), ("values", b"3")]
    ids = await broker.publish_many("t", "r", batch, attempt=3)
    assert await broker.publish_many("t", "r", [], attempt=3) == []
    await broker.end_run_stream("t", "r", b"null")
    assert [parse_event_id(i) for i in [first, *ids]] == sorted(
        parse_event_id(i) for i in [first, *ids]
    )
    assert len(set(ids)) == 3
    run_records = await _records(broker.subscribe_run("r", FROM_START, 1.0))
    assert [(r.id, r.event, r.data, r.attempt) for r in run_records[1:-1]] == [
        (i, event, data, 3) for i, (event, data) in zip(ids, batch, strict=True)
    ]
    thread_records = await _take(broker.subscribe_thread("t", FROM_START, 1.0), 4)
    assert [(r.run_id, r.event, r.data) for r in thread_records if r] == [
        ("r", "metadata", b"0"),
        *(("r", event, data) for event, data in batch),
    ]
    # A follower resuming inside the batch gets only what follows.
    after = await _records(broker.subscribe_run("r", ids[0], 1.0))
    assert [r.data for r in after[:-1]] == [b"2", b"3"]


# Signals --------------------------------------------------------------------------------------
async def test_cancel_callbacks(broker: Broker) -> None:
    seen: list[CancelAction] = []
    unsubscribe = broker.on_cancel("r", seen.append)
    await broker.send_cancel("r", CancelAction.ROLLBACK)
    await broker.send_cancel("other", CancelAction.INTERRUPT)
    unsubscribe()
    await broker.send_cancel("r", CancelAction.INTERRUPT)
    await asyncio.sleep(0.05)  # a signal echoed back through Redis would land by now
    assert seen == [CancelAction.ROLLBACK]


async def test_wake_ups_are_not_lost(broker: Broker) -> None:
    loop = asyncio.get_running_loop()
    await broker.notify_work()  # before anyone waits
    started = loop.time()
    await broker.wait_for_work(5)
    assert loop.time() - started < 1
    await asyncio.sleep(0.05)  # nor is it delivered twice (once locally, once via Redis)
    started = loop.time()
    await broker.wait_for_work(0.1)
    assert loop.time() - started >= 0.09


async def test_close_ends_open_subscriptions_and_waits(factory: Factory) -> None:
    broker = await factory.make()
    thread_follower = asyncio.ensure_future(_take(broker.subscribe_thread("t", None, 10), 5))
    run_follower = asyncio.ensure_future(_take(broker.subscribe_run("r", FROM_START, 10), 5))
    waiter = asyncio.ensure_future(broker.wait_run_output("r", 10))
    await asyncio.sleep(0.1)
    await broker.close()
    assert await asyncio.wait_for(thread_follower, 1) == []
    assert await asyncio.wait_for(run_follower, 1) == []
    assert await asyncio.wait_for(waiter, 1) is None


# Between processes (two RedisBroker instances) ----------------------------------------------
@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with _prefix() as value:
        yield value


@contextlib.asynccontextmanager
async def _started(url: str, prefix: str) -> AsyncIterator[RedisBroker]:
    broker = _redis_broker(url, prefix, max_events=1000)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def test_a_wake_up_reaches_another_process(prefix: str) -> None:
    async with _started(REDIS_URL, prefix) as api, _started(REDIS_URL, prefix) as worker:
        loop = asyncio.get_running_loop()
        await worker.wait_for_work(0.01)  # start from a clear flag
        waiting = asyncio.ensure_future(worker.wait_for_work(5))
        started = loop.time()
        await api.notify_work()
        await asyncio.wait_for(waiting, 2)
        assert loop.time() - started < 1


async def test_a_cancel_reaches_the_process_running_the_run(prefix: str) -> None:
    async with _started(REDIS_URL, prefix) as api, _started(REDIS_URL, prefix) as worker:
        landed: asyncio.Future[CancelAction] = asyncio.get_running_loop().create_future()
        strays: list[CancelAction] = []
        worker.on_cancel("r", landed.set_result)
        worker.on_cancel("other", strays.append)
        await api.send_cancel("r", CancelAction.INTERRUPT)
        assert await asyncio.wait_for(landed, 2) is CancelAction.INTERRUPT
        assert strays == []


async def test_events_are_replayed_and_followed_through_another_process(prefix: str) -> None:
    async with _started(REDIS_URL, prefix) as worker, _started(REDIS_URL, prefix) as api:
        ids = [await worker.publish("t", "r", f"e{i}", b"{}") for i in range(3)]
        resumed = api.subscribe_run("r", ids[0], 0.05)  # a client reconnecting elsewhere
        replayed = await _take(resumed, 2)
        assert [r.id for r in replayed if r] == ids[1:]
        await _first_tick(resumed)
        await worker.publish("t", "r", "e3", b"{}")
        await worker.end_run_stream("t", "r", b'"out"')
        rest = await _records(resumed)
        assert [r.event for r in rest] == ["e3", "end"]
        assert await api.wait_run_output("r", 1) == b'"out"'
        assert await api.run_stream_ended("r")


async def _connections_named(raw: aioredis.Redis, name: str) -> int:
    clients = await raw.client_list()
    return sum(1 for client in clients if client.get("name") == name)


async def test_thousands_of_followers_share_a_few_connections(prefix: str) -> None:
    # Followers and output waiters wait on pub/sub notifications, not on a blocked
    # connection each: one API process holds thousands of open streams.
    raw = aioredis.Redis.from_url(REDIS_URL)
    name = f"garrison-test-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(
        REDIS_URL + f"?client_name={name}",
        key_prefix=prefix,
        retention_seconds=60,
        max_events_per_run=100,
        max_connections=8,
    )
    await broker.start()
    try:
        followers = [broker.subscribe_run(f"r{i}", FROM_START, 5.0) for i in range(2000)]
        waiters = [asyncio.ensure_future(broker.wait_run_output(f"r{i}", 30)) for i in range(2000)]
        pending = [asyncio.ensure_future(anext(f)) for f in followers]
        await asyncio.sleep(1.0)  # let the opening burst settle
        # Eight connections, subscriber included, serve 4,000 waiting readers: had each
        # held a connection while blocked, the deliveries below could never happen.
        assert await _connections_named(raw, name) <= 8
        await broker.publish("t", "r1999", "values", b"1")
        await broker.end_run_stream("t", "r7", b'"done"')
        first = await asyncio.wait_for(pending[1999], 2)
        assert first is not None and first.data == b"1"
        assert await asyncio.wait_for(waiters[7], 2) == b'"done"'
        assert not any(w.done() for i, w in enumerate(waiters) if i != 7)
        for task in pending + waiters:
            task.cancel()
    finally:
        await broker.close()
        await raw.aclose()


async def test_calls_queued_for_a_connection_are_not_an_outage() -> None:
    # A burst of calls (thousands of streams opening) queues for the pool's connections;
    # a call that waited longer than its time limit for one, without Redis ever failing,
    # must not make the process believe Redis is down.
    link = Link(REDIS_URL, connect_timeout_seconds=0.05, max_connections=3)  # 2 at a time
    assert link.io_timeout == pytest.approx(1.1)
    idle_key = f"garrison-test-{uuid.uuid4().hex}"  # never filled: each BLPOP takes 0.7 s
    try:
        slow = [
            asyncio.ensure_future(
                link.read("a slow call", partial(link.client.blpop, [idle_key], timeout=0.7))
            )
            for _ in range(6)
        ]
        await asyncio.sleep(0.05)
        queued_at = asyncio.get_running_loop().time()
        quick = await link.read("a quick call", link.client.ping)
        waited = asyncio.get_running_loop().time() - queued_at
        assert await asyncio.gather(*slow) == [None] * 6  # each BLPOP ran its 0.7 s
        assert quick is True
        assert waited > link.io_timeout  # it did queue longer than one call may take
        assert not link.outage.down
    finally:
        await link.close()


async def test_notifications_lost_in_a_reconnect_are_made_up(prefix: str) -> None:
    raw = aioredis.Redis.from_url(REDIS_URL)
    name = f"garrison-test-{uuid.uuid4().hex[:8]}"
    async with (
        _started(REDIS_URL + f"?client_name={name}", prefix) as api,
        _started(REDIS_URL, prefix) as worker,
    ):
        follower = api.subscribe_run("r", None, 10.0)
        pending = asyncio.ensure_future(anext(follower))
        waiter = asyncio.ensure_future(api.wait_run_output("r", 10))
        await asyncio.sleep(0.2)
        # Drop the subscriber's connection and publish before it can resubscribe: the
        # notifications are gone, the events are not.
        await raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await worker.publish("t", "r", "values", b"1")
        await worker.end_run_stream("t", "r", b'"out"')
        record = await asyncio.wait_for(pending, 5)
        assert record is not None and record.data == b"1"
        assert await asyncio.wait_for(waiter, 5) == b'"out"'
    await raw.aclose()


async def test_key_layout_and_retention(prefix: str) -> None:
    raw = aioredis.Redis.from_url(REDIS_URL)
    async with _started(REDIS_URL, prefix) as broker:
        await broker.publish("t", "r", "values", b"{}")
        run_log, thread_log = f"{prefix}:run:r:log", f"{prefix}:thread:t:log"
        assert await raw.type(run_log) == b"stream" and await raw.type(thread_log) == b"stream"
        day_ms = 24 * 3600 * 1000
        assert 60_000 < await raw.pttl(run_log) <= day_ms  # unfinished: kept a day at most
        assert 59_000 < await raw.pttl(thread_log) <= 60_000  # expires when idle
        await broker.end_run_stream("t", "r", b'"out"')
        assert 59_000 < await raw.pttl(run_log) <= 60_000  # retention counts from the end
        await broker.publish("t", "r", "values", b"{}")  # a new attempt
        assert await raw.pttl(run_log) > 60_000
    await raw.aclose()


async def test_key_prefixes_isolate_deployments(prefix: str) -> None:
    async with (
        _prefix() as other_prefix,
        _started(REDIS_URL, prefix) as mine,
        _started(REDIS_URL, other_prefix) as theirs,
    ):
        cancels: list[CancelAction] = []
        theirs.on_cancel("r", cancels.append)
        await theirs.wait_for_work(0.01)
        await mine.publish("t", "r", "e", b"{}")
        await mine.end_run_stream("t", "r", b"null")
        await mine.send_cancel("r", CancelAction.INTERRUPT)
        await mine.notify_work()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await theirs.wait_for_work(0.3)
        assert loop.time() - started >= 0.29  # no wake-up crossed over
        assert cancels == []
        assert not await theirs.run_stream_ended("r")
        assert await _take(theirs.subscribe_run("r", FROM_START, 0.01), 1) == [None]


# Redis outages (a private redis-server per test) ----------------------------------------------
@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


async def _eventually_delivers_wake_up(sender: RedisBroker, receiver: RedisBroker) -> None:
    """Until a wake-up sent through Redis reaches `receiver` promptly (10 s at most)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        await receiver.wait_for_work(0.01)
        await sender.notify_work()
        started = loop.time()
        await receiver.wait_for_work(0.5)
        if loop.time() - started < 0.4:
            return
    pytest.fail("wake-ups were not delivered again after Redis came back")


async def test_redis_down_fails_no_caller(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="garrison.broker.redis")
    async with _started(private_redis.url, "p") as broker:
        loop = asyncio.get_running_loop()
        await broker.publish("t", "r", "before", b"{}")
        follower = broker.subscribe_run("r", FROM_START, 0.1)
        (record,) = await _take(follower, 1)
        assert record is not None and record.event == "before"
        stop_publishing = asyncio.Event()

        async def keep_publishing() -> float:
            """Publish like a streaming run; the slowest publish, in seconds."""
            slowest = 0.0
            while not stop_publishing.is_set():
                started = loop.time()
                assert parse_event_id(await broker.publish("t", "r", "token", b"{}"))
                slowest = max(slowest, loop.time() - started)
                await asyncio.sleep(0.005)
            return slowest

        publisher = asyncio.ensure_future(keep_publishing())
        await asyncio.sleep(0.1)
        private_redis.stop()  # mid-stream

        # The follower gets what was published before the kill, then idle ticks; no error.
        await asyncio.wait_for(_until_idle(follower), 3)
        assert await asyncio.wait_for(anext(follower), 3) is None
        stop_publishing.set()
        assert await publisher < 1.5  # no publish waits for Redis beyond one timeout
        await broker.end_run_stream("t", "r", b"null")
        await broker.publish_thread_event("t", "state_update", b"{}")
        await broker.notify_work()
        await broker.send_cancel("r", CancelAction.INTERRUPT)
        assert not await broker.run_stream_ended("r")
        started = loop.time()
        assert await broker.wait_run_output("r", 0.3) is None
        assert 0.25 <= loop.time() - started < 2  # waits (no busy loop), then gives up
        await broker.wait_for_work(0.01)
        started = loop.time()
        await broker.wait_for_work(0.3)  # the polling fallback: exactly max_wait
        assert 0.29 <= loop.time() - started < 1
        thread = broker.subscribe_thread("t", None, 0.05)
        assert await asyncio.wait_for(_take(thread, 2), 3) == [None, None]
    # Dozens of failed calls, one warning: the outage is reported, not every dropped event.
    warnings = [r for r in caplog.records if r.name == "garrison.broker.redis"]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()


async def test_start_does_not_fail_when_redis_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="garrison.broker.redis")
    server = RedisServer(tmp_path / "redis", port=free_port())
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with _started(server.url, "p") as worker, _started(server.url, "p") as api:
        assert loop.time() - started < 3
        assert any("not reachable at start-up" in r.getMessage() for r in caplog.records)
        await api.notify_work()  # no Redis: nothing raises
        server.start()
        try:
            await _eventually_delivers_wake_up(api, worker)
        finally:
            server.stop()


async def test_delivery_recovers_after_a_redis_restart(private_redis: RedisServer) -> None:
    async with _started(private_redis.url, "p") as worker, _started(private_redis.url, "p") as api:
        follower = api.subscribe_run("r", None, 0.1)
        await _first_tick(follower)
        thread_follower = api.subscribe_thread("t", None, 0.1)
        await _first_tick(thread_follower)
        await worker.wait_for_work(0.01)  # start from a clear flag
        private_redis.stop()
        await worker.publish("t", "r", "lost", b"{}")  # dropped: Redis is down
        await api.notify_work()  # lost too: the worker learns of it by polling...
        assert await anext(follower) is None
        await asyncio.sleep(1.0)
        private_redis.start()

        # ...or as soon as its listener is back, which wakes it for what it may have missed.
        loop = asyncio.get_running_loop()
        started = loop.time()
        await worker.wait_for_work(30)
        assert loop.time() - started < 10
        await _eventually_delivers_wake_up(api, worker)
        landed: asyncio.Future[CancelAction] = asyncio.get_running_loop().create_future()
        worker.on_cancel("r", landed.set_result)
        await api.send_cancel("r", CancelAction.ROLLBACK)
        assert await asyncio.wait_for(landed, 2) is CancelAction.ROLLBACK

        # The open subscriptions pick up what is published once Redis is back.
        await worker.publish("t", "r", "back", b"{}")
        assert (await _next_record(follower)).event == "back"
        assert (await _next_record(thread_follower)).event == "back"
        await worker.end_run_stream("t", "r", b'"done"')
        assert await api.wait_run_output("r", 2) == b'"done"'


async def test_a_flushed_redis_only_loses_history(private_redis: RedisServer) -> None:
    async with _started(private_redis.url, "p") as worker, _started(private_redis.url, "p") as api:
        await worker.publish("t", "r", "before", b"{}")
        follower = api.subscribe_run("r", FROM_START, 0.05)
        (record,) = await _take(follower, 1)
        assert record is not None and record.event == "before"
        assert private_redis.command("FLUSHALL") == b"+OK"

        await worker.publish("t", "r", "after", b"{}")
        assert (await _next_record(follower)).event == "after"
        await worker.end_run_stream("t", "r", b'"out"')
        replay = await _records(api.subscribe_run("r", FROM_START, 0.05))
        assert [r.event for r in replay] == ["after", "end"]  # "before" went with the flush
        assert await api.wait_run_output("r", 1) == b'"out"'
        landed: asyncio.Future[CancelAction] = asyncio.get_running_loop().create_future()
        worker.on_cancel("r2", landed.set_result)
        await api.send_cancel("r2", CancelAction.INTERRUPT)
        assert await asyncio.wait_for(landed, 2) is CancelAction.INTERRUPT


async def test_malformed_ids_are_rejected_before_any_redis_call(tmp_path: Path) -> None:
    # Nothing listens on this port: a Redis call would tick or fail, not raise a 422 error.
    async with _started(f"redis://127.0.0.1:{free_port()}/0", "p") as broker:
        with pytest.raises(InvalidArgumentError):
            await anext(broker.subscribe_run("r", "not-an-id", 0.05))
        with pytest.raises(InvalidArgumentError):
            await anext(broker.subscribe_thread("t", "1-2-3", 0.05))
