"""The arithmetic of `predict_cpu`: pooled references, observed phases summed per kind."""

import dataclasses

import pytest

from garrison.planning.profile import Phase, Profile
from garrison.planning.validate import predict_cpu


def _phase(kind: str, requests: int, wall: float, api: float, worker: float) -> Phase:
    return Phase(
        kind=kind,
        requests=requests,
        concurrency=8,
        wall_seconds=wall,
        api_cpu_seconds=api,
        worker_cpu_seconds=worker,
        db_cpu_seconds=0.0,
        redis_cpu_seconds=0.0,
        bytes_in=0,
        bytes_out=0,
    )


def _with(profile: Profile, *phases: Phase, idle: float = 0.0) -> Profile:
    return dataclasses.replace(
        profile, phases=list(phases), idle_api_cores=idle, idle_worker_cores=idle
    )


def test_one_reference_predicts_rate_times_cost_plus_idle(simple_profile: Profile) -> None:
    # 100 run.wait at 20/s cost 0.5 s API + 1.0 s worker: 15 ms each; idle 0.01 + 0.01.
    reference = _with(simple_profile, _phase("run.wait", 100, 5.0, 0.5, 1.0), idle=0.01)
    # 200 at 40/s for 5 s: (40 * 0.015 + 0.02) cores for 5 s.
    observed = _with(simple_profile, _phase("run.wait", 200, 5.0, 1.2, 2.0))

    check, total = predict_cpu([reference], [observed])

    assert check.kind == "run.wait" and total.kind == "total"
    assert check.rate == pytest.approx(40.0)
    assert check.predicted_cpu_seconds == pytest.approx(3.1)
    assert check.measured_cpu_seconds == pytest.approx(3.2)
    assert total.error == pytest.approx((3.1 - 3.2) / 3.2)


def test_pooled_profiles_cancel_a_slow_window(simple_profile: Profile) -> None:
    # Taken low, high, high, low while the machine slows down steadily, a run.wait costs
    # 10, 11, 12 and 13 ms: either low profile alone is off by more than 12 %; pooled,
    # the prediction is exact (the cost per request is the same at both rates).
    def profile(rate: float, cost: float) -> Profile:
        requests = int(rate * 5)
        return _with(simple_profile, _phase("run.wait", requests, 5.0, 0.0, requests * cost))

    low_1, high_1, high_2, low_2 = (
        profile(20, 0.010),
        profile(40, 0.011),
        profile(40, 0.012),
        profile(20, 0.013),
    )

    assert abs(predict_cpu([low_1], [high_1, high_2])[-1].error) > 0.12
    assert abs(predict_cpu([low_2], [high_1, high_2])[-1].error) > 0.12
    total = predict_cpu([low_1, low_2], [high_1, high_2])[-1]
    assert total.error == pytest.approx(0.0)
    assert total.measured_cpu_seconds == pytest.approx(200 * 0.011 + 200 * 0.012)


def test_kinds_missing_on_either_side_are_not_compared(simple_profile: Profile) -> None:
    reference = _with(simple_profile, _phase("run.wait", 100, 5.0, 0.5, 1.0))
    observed = _with(
        simple_profile,
        _phase("run.wait", 200, 5.0, 1.2, 2.0),
        _phase("state.get", 200, 5.0, 0.2, 0.0),
    )

    assert [c.kind for c in predict_cpu([reference], [observed])] == ["run.wait", "total"]
