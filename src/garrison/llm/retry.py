"""Retry decisions (pure) and the tenacity loops that apply them.

:func:`retry_delay` answers "retry this failure, and after how long?" from the
failure, the attempt number, the policy and a jitter draw, so it is table-tested
without clocks or randomness. :func:`async_retrying` / :func:`retrying` plug it
into tenacity, which owns the loop.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState, Retrying, stop_never

from garrison.llm.failures import Failure, classify
from garrison.llm.profiles import RetrySettings

__all__ = ["OnRetry", "async_retrying", "retry_delay", "retrying"]

OnRetry = Callable[[Failure, int, float], None]
"""Called before each retry with the failure, the failed attempt's number and the delay."""


def retry_delay(
    failure: Failure, attempt: int, policy: RetrySettings, jitter: float
) -> float | None:
    """Decide whether to call the same provider again, and when.

    Backoff is exponential with full jitter: the wait is uniform in
    ``[0, min(max_delay, initial_delay * multiplier ** (attempt - 1))]``. A
    ``Retry-After`` from the provider replaces it, unless it exceeds
    ``max_retry_after``, in which case waiting is worse than failing over.

    Args:
        failure: The classified failure of attempt number ``attempt``.
        attempt: 1 for the first call.
        policy: The retry settings.
        jitter: A uniform draw in ``[0, 1)``.

    Returns:
        Seconds to wait before the next attempt, or ``None`` to stop retrying.
    """
    if not failure.retryable or attempt >= policy.max_attempts:
        return None
    if failure.retry_after is not None:
        return failure.retry_after if failure.retry_after <= policy.max_retry_after else None
    ceiling = min(policy.max_delay, policy.initial_delay * policy.multiplier ** (attempt - 1))
    return jitter * ceiling


class _Decision:
    """Feeds tenacity's ``retry`` and ``wait`` hooks from one :func:`retry_delay` call."""

    def __init__(self, policy: RetrySettings, on_retry: OnRetry | None, rng: random.Random):
        self._policy = policy
        self._on_retry = on_retry
        self._rng = rng
        self._delay = 0.0

    def should_retry(self, state: RetryCallState) -> bool:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        if exc is None:
            return False
        failure = classify(exc)
        delay = retry_delay(failure, state.attempt_number, self._policy, self._rng.random())
        if delay is None:
            return False
        self._delay = delay
        if self._on_retry is not None:
            self._on_retry(failure, state.attempt_number, delay)
        return True

    def wait(self, state: RetryCallState) -> float:
        return self._delay


def async_retrying(
    policy: RetrySettings,
    *,
    on_retry: OnRetry | None = None,
    rng: random.Random | None = None,
) -> AsyncRetrying:
    """A tenacity loop for one provider, for one async call.

    Args:
        policy: The retry settings.
        on_retry: Observer of each retry (logging).
        rng: Source of jitter (default: a fresh ``random.Random``).

    Returns:
        An ``AsyncRetrying`` that re-raises the last failure when it gives up.
    """
    decision = _Decision(policy, on_retry, rng or random.Random())
    return AsyncRetrying(
        retry=decision.should_retry,
        wait=decision.wait,
        stop=stop_never,
        reraise=True,
        sleep=asyncio.sleep,
    )


def retrying(
    policy: RetrySettings,
    *,
    on_retry: OnRetry | None = None,
    rng: random.Random | None = None,
) -> Retrying:
    """The synchronous twin of :func:`async_retrying`."""
    decision = _Decision(policy, on_retry, rng or random.Random())
    return Retrying(
        retry=decision.should_retry,
        wait=decision.wait,
        stop=stop_never,
        reraise=True,
        sleep=time.sleep,
    )
