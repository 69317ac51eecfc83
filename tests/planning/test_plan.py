"""The plan composes the formulas; these tests recompute its headline numbers by hand."""

import math
from dataclasses import replace

import pytest
import yaml

from garrison.planning.plan import GIB, Workload, make_plan
from garrison.planning.profile import Profile, reference_profile
from garrison.planning.render import helm_values, mebibytes, millicores, plan_json, to_yaml

WORKLOAD = Workload(
    daily_active_users=10_000,
    peak_concurrency=0.15,
    requests_per_user=50,
    avg_run_seconds=3,
    payload_mb=0.5,
    retention_days=30,
    target_cpu=0.7,
    headroom=0.3,
)


def test_headline_numbers_follow_the_formulas(simple_profile: Profile) -> None:
    plan = make_plan(simple_profile, WORKLOAD, "test")
    peak = 10_000 * 0.15 * 50 / 1800  # 41.67 runs/s
    assert plan.traffic.peak_runs_per_second == pytest.approx(peak)
    assert plan.traffic.runs_in_flight == pytest.approx(peak * 3)
    slots = math.ceil(peak * 3 / 0.7)  # 179
    assert plan.worker.replicas == math.ceil(slots / 16)
    assert plan.worker.replicas * plan.worker.concurrency >= slots
    assert plan.worker.concurrency <= 16
    # Worker CPU at peak: 41.67 runs/s x 10 ms.
    assert plan.worker.peak_cores == pytest.approx(peak * 0.010)
    # API CPU: runs x 6 ms + new sessions (1500 / 1800 s) x 1 ms.
    assert plan.api.peak_cores == pytest.approx(peak * 0.006 + 1500 / 1800 * 0.001)
    assert plan.api.replicas == 2  # 0.25 cores fit one pod; two for availability
    # Storage: 500,000 runs/day x (20,000 + 5 x 500,000) bytes x 30 days.
    per_run = 20_000 + 5 * 500_000
    assert plan.traffic.bytes_per_run == pytest.approx(per_run)
    assert plan.database.growth_per_month == pytest.approx(500_000 * per_run * 30)
    assert plan.database.storage >= 500_000 * per_run * 30 * 1.3
    assert plan.database.storage - 500_000 * per_run * 30 * 1.3 < GIB


def test_pools_fit_max_connections_at_full_scale(simple_profile: Profile) -> None:
    plan = make_plan(simple_profile, WORKLOAD, "test")
    used = plan.api.hpa_max * plan.api.pool_max + plan.worker.hpa_max * plan.worker.pool_max
    assert used + 10 <= plan.database.max_connections
    fixed = make_plan(simple_profile, replace(WORKLOAD, max_connections=100), "test")
    used = fixed.api.hpa_max * fixed.api.pool_max + fixed.worker.hpa_max * fixed.worker.pool_max
    assert fixed.database.max_connections == 100
    assert used + 10 <= 100


def test_more_users_never_need_less(simple_profile: Profile) -> None:
    small = make_plan(simple_profile, WORKLOAD, "test")
    big = make_plan(simple_profile, replace(WORKLOAD, daily_active_users=100_000), "test")
    assert big.traffic.peak_runs_per_second == pytest.approx(
        10 * small.traffic.peak_runs_per_second
    )
    assert big.worker.replicas > small.worker.replicas
    assert big.api.peak_cores > small.api.peak_cores
    assert big.database.storage > small.database.storage
    assert big.redis.memory > small.redis.memory


def test_hpa_bounds_bracket_the_peak(simple_profile: Profile) -> None:
    plan = make_plan(simple_profile, WORKLOAD, "test")
    for deployment in (plan.api, plan.worker):
        assert 2 <= deployment.hpa_min <= deployment.replicas <= deployment.hpa_max
        assert deployment.cpu_request <= deployment.cpu_limit
        assert deployment.memory_request <= deployment.memory_limit


def test_memory_covers_streams_and_runs(simple_profile: Profile) -> None:
    plan = make_plan(simple_profile, WORKLOAD, "test")
    streams_per_pod = plan.traffic.open_streams / plan.api.replicas
    assert plan.api.memory_request >= 128 * 2**20 + streams_per_pod * 64 * 1024
    assert plan.worker.memory_request >= 128 * 2**20 + plan.worker.concurrency * 2**20


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("peak_concurrency", 1.5, "--peak-concurrency"),
        ("target_cpu", 0.0, "--target-cpu"),
        ("daily_active_users", -1, "--daily-active-users"),
        ("headroom", -0.5, "--headroom"),
        ("max_connections", 5, "--max-connections"),
    ],
)
def test_bad_inputs_are_named(
    simple_profile: Profile, field: str, value: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_plan(simple_profile, replace(WORKLOAD, **{field: value}), "test")


def test_every_plan_carries_its_assumptions(simple_profile: Profile) -> None:
    plan = make_plan(simple_profile, WORKLOAD, "test")
    text = " ".join(plan.assumptions)
    assert "test machine" in text and "Little's law" in text and "rule of thumb" in text


def test_helm_values_use_the_documented_keys(simple_profile: Profile) -> None:
    plan = make_plan(simple_profile, WORKLOAD, "test")
    values = yaml.safe_load(to_yaml(helm_values(plan)))
    assert values["api"]["replicaCount"] == plan.api.replicas
    assert set(values["api"]["resources"]) == {"requests", "limits"}
    assert values["api"]["resources"]["requests"]["cpu"] == millicores(plan.api.cpu_request)
    assert values["worker"]["resources"]["limits"]["memory"] == mebibytes(plan.worker.memory_limit)
    assert values["api"]["autoscaling"] == {
        "minReplicas": plan.api.hpa_min,
        "maxReplicas": plan.api.hpa_max,
    }
    assert values["worker"]["concurrency"] == plan.worker.concurrency
    assert values["worker"]["autoscaling"]["maxReplicas"] == plan.worker.hpa_max
    assert values["database"]["poolMaxSize"] == plan.worker.pool_max
    assert values["redis"]["maxConnections"] == plan.redis.max_connections
    assert plan_json(plan)["helm_values"] == helm_values(plan)


@pytest.mark.parametrize(
    ("cores", "quantity"), [(0.25, "250m"), (1.0, "1"), (2.0, "2"), (0.1, "100m"), (1.5, "1500m")]
)
def test_millicores(cores: float, quantity: str) -> None:
    assert millicores(cores) == quantity


def test_reference_profile_ships_and_names_its_machine() -> None:
    profile = reference_profile()
    assert profile.topology == "split"
    assert profile.machine["name"]
    assert all(cost.worker_cpu_seconds > 0 for k, cost in profile.requests.items() if "run" in k)
    plan = make_plan(profile, WORKLOAD, "reference")
    assert plan.worker.replicas >= 2
