"""Per-provider circuit breakers: a pure state machine and a process-wide holder.

States: ``closed`` (calls flow; failures inside a sliding window are counted),
``open`` (calls are refused until the cool-down has passed), ``half_open`` (one
probe call is in flight; its outcome closes or re-opens the breaker).

The transition functions take the time as an argument, so tests drive them with
a table and a fake clock. :class:`CircuitBreakers` keeps one state per
``(provider, model)`` for the whole process, so every graph run and worker task
that uses a provider shares what is known about its health.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from garrison.llm import metrics
from garrison.llm.profiles import BreakerSettings

__all__ = [
    "DEFAULT_BREAKERS",
    "Admission",
    "BreakerState",
    "BreakerStatus",
    "CircuitBreakers",
    "admit",
    "on_abandon",
    "on_failure",
    "on_success",
]

logger = logging.getLogger("garrison.llm")

BreakerStatus = Literal["closed", "half_open", "open"]
Admission = Literal["allowed", "probe", "denied"]
"""``probe`` is an allowed call that decides whether a half-open breaker closes."""


@dataclass(frozen=True, slots=True)
class BreakerState:
    """The health record of one provider.

    Attributes:
        status: Current state.
        failures: Times of recent failures (closed state only).
        opened_at: When the breaker last opened.
        probing: A half-open probe call is in flight.
    """

    status: BreakerStatus = "closed"
    failures: tuple[float, ...] = ()
    opened_at: float = 0.0
    probing: bool = False


def admit(
    state: BreakerState, now: float, policy: BreakerSettings
) -> tuple[Admission, BreakerState]:
    """Decide whether a call may go to the provider.

    Args:
        state: Current state.
        now: Current time (seconds, monotonic).
        policy: Breaker settings.

    Returns:
        The admission and the new state; an open breaker past its cool-down turns
        half-open and admits exactly one probe.
    """
    if state.status == "closed":
        return "allowed", state
    if state.status == "open":
        if now - state.opened_at >= policy.cooldown_seconds:
            return "probe", BreakerState(
                status="half_open", opened_at=state.opened_at, probing=True
            )
        return "denied", state
    if state.probing:
        return "denied", state
    return "probe", replace(state, probing=True)


def on_success(state: BreakerState) -> BreakerState:
    """Record a call the provider answered.

    Args:
        state: Current state.

    Returns:
        ``closed`` with a clean record after a half-open probe; otherwise unchanged
        (a late success of a call admitted before the breaker opened proves little).
    """
    if state.status == "half_open":
        return BreakerState()
    return state


def on_failure(state: BreakerState, now: float, policy: BreakerSettings) -> BreakerState:
    """Record a failure that counts against the provider.

    Args:
        state: Current state.
        now: Current time (seconds, monotonic).
        policy: Breaker settings.

    Returns:
        ``open`` when the failures inside the window reach the threshold, or when a
        half-open probe failed; otherwise the state with the failure recorded.
    """
    if state.status == "half_open":
        return BreakerState(status="open", opened_at=now)
    if state.status == "open":
        return state
    recent = (*(t for t in state.failures if now - t < policy.window_seconds), now)
    if len(recent) >= policy.failure_threshold:
        return BreakerState(status="open", opened_at=now)
    return replace(state, failures=recent)


def on_abandon(state: BreakerState) -> BreakerState:
    """Release the probe slot of a probe call that ended without an outcome (cancelled).

    Args:
        state: Current state.

    Returns:
        The state with no probe in flight, so the next call may probe.
    """
    if state.status == "half_open":
        return replace(state, probing=False)
    return state


_GAUGE_VALUES: dict[BreakerStatus, int] = {"closed": 0, "half_open": 1, "open": 2}


class CircuitBreakers:
    """Thread-safe breaker states keyed by ``(provider, model)``.

    Args:
        clock: Monotonic time source; tests inject a fake one.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[tuple[str, str], BreakerState] = {}
        self._lock = threading.Lock()

    def state(self, provider: str, model: str) -> BreakerState:
        """The current state of one provider's breaker."""
        with self._lock:
            return self._states.get((provider, model), BreakerState())

    def admit(self, provider: str, model: str, policy: BreakerSettings) -> Admission:
        """Ask whether a call may go to ``provider``/``model`` now."""
        with self._lock:
            decision, new = admit(self._get(provider, model), self._clock(), policy)
            self._set(provider, model, new)
        return decision

    def success(self, provider: str, model: str) -> None:
        """Record that the provider answered."""
        with self._lock:
            self._set(provider, model, on_success(self._get(provider, model)))

    def failure(self, provider: str, model: str, policy: BreakerSettings) -> None:
        """Record a failure that counts against the provider."""
        with self._lock:
            new = on_failure(self._get(provider, model), self._clock(), policy)
            self._set(provider, model, new)

    def abandon(self, provider: str, model: str) -> None:
        """Release the probe slot of a cancelled probe call."""
        with self._lock:
            self._set(provider, model, on_abandon(self._get(provider, model)))

    def _get(self, provider: str, model: str) -> BreakerState:
        return self._states.get((provider, model), BreakerState())

    def _set(self, provider: str, model: str, new: BreakerState) -> None:
        old = self._states.get((provider, model))
        self._states[(provider, model)] = new
        if old is not None and new.status == old.status:
            return
        # The first sighting sets the gauge too, so healthy providers show up as 0.
        metrics.BREAKER_STATE.labels(provider, model).set(_GAUGE_VALUES[new.status])
        if old is not None:
            log = logger.warning if new.status == "open" else logger.info
            log("circuit breaker of %s/%s: %s -> %s", provider, model, old.status, new.status)


DEFAULT_BREAKERS: CircuitBreakers = CircuitBreakers()
"""The breakers shared by every resilient model of this process."""
