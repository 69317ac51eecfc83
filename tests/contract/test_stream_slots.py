"""One contract for every stream-slot pool: the in-process counter and the Redis leases.

A cap of 3 open streams per key. The Redis tests that need a lease to run out use a short
one (1 s, renewed every 0.2 s); the others keep the default 30 s, so nothing expires.
"""

import asyncio
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis

from garrison.limits.ports import StreamSlotPool
from garrison.limits.redis_streams import RedisStreamSlots
from garrison.limits.streams import MemoryStreamSlots
from tests.support.topology import REDIS_URL

CAP = 3
Make = Callable[[str], StreamSlotPool]


def _redis_slots(
    prefix: str, url: str = REDIS_URL, lease: float = 30.0, renew: float = 10.0
) -> RedisStreamSlots:
    return RedisStreamSlots(
        aioredis.Redis.from_url(url, socket_connect_timeout=0.5), max_per_key=CAP,
        key_prefix=prefix, lease_seconds=lease, renew_seconds=renew, io_timeout_seconds=1.0,
    )  # fmt: skip


async def _drop(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    await _drop(prefix)


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    """Pools of one kind: in memory each is a process of its own; in Redis those made with
    one prefix are replicas of one deployment."""
    made: list[StreamSlotPool] = []
    prefixes: list[str] = []

    def pool(prefix: str) -> StreamSlotPool:
        one: StreamSlotPool
        if request.param == "memory":
            one = MemoryStreamSlots(CAP)
        else:
            one = _redis_slots(prefix)
            prefixes.append(prefix)
        made.append(one)
        return one

    yield pool
    for one in made:
        await one.close()
    for used in prefixes:
        await _drop(used)


@pytest.fixture
def slots(make: Make, prefix: str) -> StreamSlotPool:
    return make(prefix)


async def _hold(stack: AsyncExitStack, slots: StreamSlotPool, key: str, n: int) -> list[bool]:
    return [await stack.enter_async_context(slots.hold(key)) for _ in range(n)]


async def test_the_cap_is_honoured(slots: StreamSlotPool) -> None:
    async with AsyncExitStack() as stack:
        assert await _hold(stack, slots, "k", CAP + 2) == [True] * CAP + [False] * 2
        assert slots.max_per_key == CAP


async def test_closing_a_stream_frees_its_slot_even_after_an_error(slots: StreamSlotPool) -> None:
    async with AsyncExitStack() as stack:
        await _hold(stack, slots, "k", CAP - 1)
        async with slots.hold("k") as last:
            assert last
            async with slots.hold("k") as over:
                assert not over
        async with slots.hold("k") as again:  # the last one's slot is free again
            assert again
        with pytest.raises(RuntimeError):
            async with slots.hold("k") as failing:
                assert failing
                raise RuntimeError("client went away")
        async with slots.hold("k") as after_error:
            assert after_error
    async with AsyncExitStack() as stack:  # every slot was given back
        assert await _hold(stack, slots, "k", CAP + 1) == [True] * CAP + [False]


async def test_concurrent_acquisitions_never_exceed_the_cap(slots: StreamSlotPool) -> None:
    release, all_answered = asyncio.Event(), asyncio.Event()
    holding = most = answered = 0

    async def stream() -> bool:
        nonlocal holding, most, answered
        async with slots.hold("k") as held:
            holding += held
            most = max(most, holding)
            answered += 1
            if answered == 50:
                all_answered.set()
            if held:
                await release.wait()
                holding -= 1
            return held

    tasks = [asyncio.create_task(stream()) for _ in range(50)]
    await asyncio.wait_for(all_answered.wait(), 10)
    assert most == CAP  # at no moment more
    release.set()
    assert sorted(await asyncio.gather(*tasks)) == [False] * (50 - CAP) + [True] * CAP


async def test_keys_have_their_own_slots(slots: StreamSlotPool) -> None:
    async with AsyncExitStack() as stack:
        assert await _hold(stack, slots, "a", CAP + 1) == [True] * CAP + [False]
        assert await _hold(stack, slots, "b", CAP) == [True] * CAP


async def test_two_deployments_never_share_slots(make: Make) -> None:
    first, second = make(f"test-{uuid.uuid4().hex[:12]}"), make(f"test-{uuid.uuid4().hex[:12]}")
    async with AsyncExitStack() as stack:
        assert await _hold(stack, first, "k", CAP) == [True] * CAP
        assert await _hold(stack, second, "k", CAP + 1) == [True] * CAP + [False]


# Redis only --------------------------------------------------------------------------------
async def test_replicas_share_one_cap_even_when_racing(prefix: str) -> None:
    replicas = [_redis_slots(prefix) for _ in range(2)]
    release, all_answered = asyncio.Event(), asyncio.Event()
    answered = 0

    async def stream(slots: StreamSlotPool) -> bool:
        nonlocal answered
        async with slots.hold("k") as held:
            answered += 1
            if answered == 40:
                all_answered.set()
            if held:
                await release.wait()
            return held

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        tasks = [asyncio.create_task(stream(replicas[i % 2])) for i in range(40)]
        await asyncio.wait_for(all_answered.wait(), 10)
        assert await client.zcard(f"{prefix}:streams:k") == CAP
        release.set()
        assert sum(await asyncio.gather(*tasks)) == CAP
    finally:
        await client.aclose()
        for slots in replicas:
            await slots.close()


async def test_slots_live_under_the_prefix_for_one_lease_and_go_when_released(
    prefix: str,
) -> None:
    slots = _redis_slots(prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async with slots.hold("caller"):
            assert 25_000 < await client.pttl(f"{prefix}:streams:caller") <= 30_000
        assert await client.exists(f"{prefix}:streams:caller") == 0
    finally:
        await slots.close()
        await client.aclose()


_HOLDER = """
import asyncio, sys
from garrison.limits.redis_streams import RedisStreamSlots
from redis.asyncio import Redis

async def main() -> None:
    slots = RedisStreamSlots(
        Redis.from_url({url!r}), max_per_key={cap_all}, key_prefix={prefix!r},
        lease_seconds={lease}, renew_seconds={renew},
    )
    held = [slots.hold("k") for _ in range({cap})]  # referenced, so never finalized
    for slot in held:
        assert await slot.__aenter__()
    print("held", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_crashed_replicas_slots_expire_after_one_lease(prefix: str) -> None:
    lease = 1.0
    # The dead replica holds all slots but one; this live one holds the last, renewing the
    # key's TTL, so the dead slots must expire one by one, not with the whole key.
    code = _HOLDER.format(
        url=REDIS_URL, cap_all=CAP, cap=CAP - 1, prefix=prefix, lease=lease, renew=0.2
    )
    holder = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )
    slots = _redis_slots(prefix, lease=lease, renew=0.2)
    try:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
        async with slots.hold("k") as mine:
            assert mine
            # Alive, both renew their leases: still full well past one lease.
            await asyncio.sleep(2.5 * lease)
            async with slots.hold("k") as held:
                assert not held
            holder.kill()  # SIGKILL: no release, no goodbye
            holder.wait(5)
            killed = time.monotonic()
            async with slots.hold("k") as held:
                assert not held
            freed = 0
            while freed < CAP - 1:
                assert time.monotonic() - killed < lease + 0.5
                await asyncio.sleep(0.05)
                async with AsyncExitStack() as stack:
                    freed = sum(await _hold(stack, slots, "k", CAP))
    finally:
        holder.kill()
        holder.wait(5)
        await slots.close()


async def test_without_redis_each_process_still_caps() -> None:
    with_no_server = _redis_slots("unused", url="redis://127.0.0.1:1/0")
    try:
        async with AsyncExitStack() as stack:
            assert await _hold(stack, with_no_server, "k", CAP + 1) == [True] * CAP + [False]
    finally:
        await with_no_server.close()
