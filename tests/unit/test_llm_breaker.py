"""Circuit breaker: the pure state machine (table) and the process-wide holder."""

from dataclasses import dataclass

import pytest

from garrison.llm.breaker import (
    DEFAULT_BREAKERS,
    Admission,
    BreakerState,
    CircuitBreakers,
    admit,
    on_abandon,
    on_failure,
    on_success,
)
from garrison.llm.profiles import BreakerSettings
from tests.support.fakellm import FakeClock, sample

POLICY = BreakerSettings(failure_threshold=3, window_seconds=10.0, cooldown_seconds=30.0)
CLOSED = BreakerState()
OPEN = BreakerState(status="open", opened_at=100.0)
PROBING = BreakerState(status="half_open", opened_at=100.0, probing=True)
IDLE_HALF_OPEN = BreakerState(status="half_open", opened_at=100.0, probing=False)


@dataclass(frozen=True)
class Case:
    name: str
    state: BreakerState
    event: str  # admit | success | failure | abandon
    now: float
    expected: BreakerState
    admission: Admission | None = None


CASES = [
    Case("closed admits", CLOSED, "admit", 100.0, CLOSED, "allowed"),
    Case(
        "closed records a failure",
        BreakerState(failures=(95.0,)),
        "failure",
        100.0,
        BreakerState(failures=(95.0, 100.0)),
    ),
    Case(
        "threshold within the window opens",
        BreakerState(failures=(95.0, 99.0)),
        "failure",
        100.0,
        BreakerState(status="open", opened_at=100.0),
    ),
    Case(
        "failures older than the window do not count",
        BreakerState(failures=(80.0, 89.0)),
        "failure",
        100.0,
        BreakerState(failures=(100.0,)),
    ),
    Case(
        "success while closed keeps the window",
        BreakerState(failures=(99.0,)),
        "success",
        100.0,
        BreakerState(failures=(99.0,)),
    ),
    Case("open refuses during the cool-down", OPEN, "admit", 129.9, OPEN, "denied"),
    Case("open lets one probe through after it", OPEN, "admit", 130.0, PROBING, "probe"),
    Case("half-open refuses while probing", PROBING, "admit", 131.0, PROBING, "denied"),
    Case("probe success closes", PROBING, "success", 131.0, CLOSED),
    Case(
        "probe failure re-opens", PROBING, "failure", 131.0, BreakerState("open", opened_at=131.0)
    ),
    Case("abandoned probe frees the slot", PROBING, "abandon", 131.0, IDLE_HALF_OPEN),
    Case("idle half-open admits a new probe", IDLE_HALF_OPEN, "admit", 140.0, PROBING, "probe"),
    Case("late success while open changes nothing", OPEN, "success", 110.0, OPEN),
    Case("late failure while open keeps opened_at", OPEN, "failure", 110.0, OPEN),
    Case("abandon while closed changes nothing", CLOSED, "abandon", 110.0, CLOSED),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_transitions(case: Case) -> None:
    admission: Admission | None = None
    if case.event == "admit":
        admission, state = admit(case.state, case.now, POLICY)
    elif case.event == "success":
        state = on_success(case.state)
    elif case.event == "failure":
        state = on_failure(case.state, case.now, POLICY)
    else:
        state = on_abandon(case.state)

    assert state == case.expected
    assert admission == case.admission


def _gauge(provider: str, model: str) -> float:
    return sample("langgraph_llm_circuit_breaker_state", provider=provider, model=model)


def test_holder_opens_probes_and_closes_on_its_clock() -> None:
    clock = FakeClock()
    breakers = CircuitBreakers(clock=clock)
    key = ("breaker-holder", "m1")

    assert breakers.admit(*key, POLICY) == "allowed"
    assert _gauge(*key) == 0
    for _ in range(3):
        breakers.failure(*key, POLICY)
    assert breakers.state(*key).status == "open"
    assert _gauge(*key) == 2
    assert breakers.admit(*key, POLICY) == "denied"

    clock.advance(30.0)
    assert breakers.admit(*key, POLICY) == "probe"
    assert _gauge(*key) == 1
    assert breakers.admit(*key, POLICY) == "denied"  # one probe at a time
    breakers.success(*key)

    assert breakers.state(*key) == BreakerState()
    assert _gauge(*key) == 0


def test_holder_keeps_providers_apart() -> None:
    breakers = CircuitBreakers(clock=FakeClock())
    for _ in range(3):
        breakers.failure("breaker-a", "m", POLICY)

    assert breakers.admit("breaker-a", "m", POLICY) == "denied"
    assert breakers.admit("breaker-a", "other-model", POLICY) == "allowed"
    assert breakers.admit("breaker-b", "m", POLICY) == "allowed"


def test_one_holder_serves_the_whole_process() -> None:
    from garrison.llm import resilient_chat_model

    assert resilient_chat_model("a").breakers is DEFAULT_BREAKERS
    assert resilient_chat_model("b").breakers is DEFAULT_BREAKERS
