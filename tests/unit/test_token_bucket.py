"""The token-bucket arithmetic both rate limiters implement, table-driven."""

import pytest

from garrison.limits import Bucket, MemoryRateLimiter, StreamSlots, take

RATE, BURST = 2.0, 3  # a token every 0.5 s, at most 3


@pytest.mark.parametrize(
    ("bucket", "now", "allowed", "tokens_after", "retry_after"),
    [
        (None, 10.0, True, 2.0, 0.0),  # no bucket is a full bucket
        (Bucket(1.0, 10.0), 10.0, True, 0.0, 0.0),
        (Bucket(0.0, 10.0), 10.0, False, 0.0, 0.5),  # one token takes 1 / rate
        (Bucket(0.5, 10.0), 10.0, False, 0.5, 0.25),
        (Bucket(0.0, 10.0), 10.5, True, 0.0, 0.0),  # refilled by elapsed x rate
        (Bucket(0.0, 10.0), 100.0, True, 2.0, 0.0),  # refill stops at burst
        (Bucket(1.0, 10.0), 9.0, True, 0.0, 0.0),  # a clock going back refills nothing
    ],
)
def test_take(
    bucket: Bucket | None, now: float, allowed: bool, tokens_after: float, retry_after: float
) -> None:
    decision, after = take(bucket, now, rate=RATE, burst=BURST)
    assert decision.allowed is allowed
    assert decision.retry_after == pytest.approx(retry_after)
    assert after.tokens == pytest.approx(tokens_after) and after.at == now


def test_memory_limiter_forgets_only_full_buckets() -> None:
    now = [0.0]
    limiter = MemoryRateLimiter(rate=RATE, burst=BURST, clock=lambda: now[0], prune_above=2)
    limiter.acquire_now("old")
    now[0] = 10.0  # "old" is full again: dropping it changes no decision
    limiter.acquire_now("a")
    limiter.acquire_now("b")
    assert len(limiter) == 2
    for _ in range(BURST):
        limiter.acquire_now("c")
    assert not limiter.acquire_now("c").allowed  # "c" was kept: it is not full


def test_stream_slots_free_on_exit_even_after_an_error() -> None:
    slots = StreamSlots(2)
    with slots.hold("k") as first, slots.hold("k") as second:
        assert first and second
        with slots.hold("k") as third:
            assert not third
    assert slots.open_count("k") == 0
    with pytest.raises(RuntimeError), slots.hold("k"):
        raise RuntimeError("client went away")
    assert slots.open_count("k") == 0
