"""Retry decisions (table) and the tenacity loops that apply them."""

import pytest

from garrison.llm.errors import ProviderTimeoutError
from garrison.llm.failures import Failure
from garrison.llm.profiles import RetrySettings
from garrison.llm.retry import async_retrying, retry_delay, retrying

POLICY = RetrySettings(
    max_attempts=5, initial_delay=0.5, multiplier=2.0, max_delay=3.0, max_retry_after=30.0
)


@pytest.mark.parametrize(
    ("failure", "attempt", "jitter", "expected"),
    [
        # full jitter: uniform in [0, min(max_delay, initial * multiplier ** (attempt - 1))]
        (Failure("server_error", 500), 1, 0.5, 0.25),
        (Failure("server_error", 500), 1, 0.0, 0.0),
        (Failure("timeout"), 2, 1.0, 1.0),
        (Failure("connection_error"), 3, 0.5, 1.0),
        (Failure("rate_limited", 429), 4, 1.0, 3.0),  # 4.0 capped at max_delay
        # the last attempt is not retried
        (Failure("server_error", 500), 5, 0.5, None),
        # Retry-After replaces the backoff, jitter ignored
        (Failure("rate_limited", 429, 2.0), 1, 0.1, 2.0),
        (Failure("server_error", 503, 0.0), 1, 0.9, 0.0),
        (Failure("rate_limited", 429, 30.0), 1, 0.5, 30.0),
        # ... unless it asks for more than max_retry_after: fail over instead
        (Failure("rate_limited", 429, 30.5), 1, 0.5, None),
        # never retried
        (Failure("client_error", 400), 1, 0.5, None),
        (Failure("client_error", 422), 1, 0.5, None),
        (Failure("auth_error", 401), 1, 0.5, None),
        (Failure("auth_error", 403), 1, 0.5, None),
        (Failure("not_found", 404), 1, 0.5, None),
        (Failure("breaker_open"), 1, 0.5, None),
        (Failure("interrupted"), 1, 0.5, None),
        (Failure("error"), 1, 0.5, None),
    ],
)
def test_retry_delay(failure: Failure, attempt: int, jitter: float, expected: float | None) -> None:
    assert retry_delay(failure, attempt, POLICY, jitter) == expected


FAST = RetrySettings(max_attempts=3, initial_delay=0.001, max_delay=0.001)


async def test_async_loop_retries_retryable_errors_until_success() -> None:
    calls: list[int] = []
    retries: list[tuple[str, int]] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError()
        return "ok"

    loop = async_retrying(FAST, on_retry=lambda f, n, delay: retries.append((f.kind, n)))

    assert await loop(flaky) == "ok"
    assert len(calls) == 3
    assert retries == [("connection_error", 1), ("connection_error", 2)]


async def test_async_loop_reraises_the_last_failure_after_max_attempts() -> None:
    calls: list[int] = []

    async def down() -> str:
        calls.append(1)
        raise ProviderTimeoutError("total", 1.0)

    with pytest.raises(ProviderTimeoutError):
        await async_retrying(FAST)(down)
    assert len(calls) == 3


async def test_async_loop_does_not_retry_other_errors() -> None:
    calls: list[int] = []

    async def buggy() -> str:
        calls.append(1)
        raise ValueError("bad request shape")

    with pytest.raises(ValueError, match="bad request shape"):
        await async_retrying(FAST)(buggy)
    assert len(calls) == 1


def test_sync_loop_retries_then_gives_up() -> None:
    calls: list[int] = []

    def down() -> str:
        calls.append(1)
        raise ConnectionRefusedError()

    with pytest.raises(ConnectionRefusedError):
        retrying(FAST)(down)
    assert len(calls) == 3
