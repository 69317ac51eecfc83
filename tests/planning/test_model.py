"""Table-driven tests of the capacity formulas."""

import math

import pytest

from garrison.planning import model


@pytest.mark.parametrize(
    ("dau", "share", "requests", "session", "expected"),
    [
        (10_000, 0.15, 50, 1800, 41.666666),  # 1,500 online users x 50 runs / 30 min
        (1_000, 1.0, 10, 100, 100.0),
        (0, 0.5, 50, 1800, 0.0),
        (3_600, 0.5, 2, 3600, 1.0),
    ],
)
def test_peak_arrival_rate(
    dau: float, share: float, requests: float, session: float, expected: float
) -> None:
    assert model.peak_arrival_rate(dau, share, requests, session) == pytest.approx(expected)


def test_peak_arrival_rate_rejects_empty_sessions() -> None:
    with pytest.raises(ValueError, match="session_seconds"):
        model.peak_arrival_rate(10, 0.1, 1, 0)


@pytest.mark.parametrize(
    ("dau", "requests", "expected"),
    [(86_400, 1, 1.0), (10_000, 50, 5.787037), (0, 50, 0.0)],
)
def test_average_arrival_rate(dau: float, requests: float, expected: float) -> None:
    assert model.average_arrival_rate(dau, requests) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rate", "seconds", "expected"), [(10, 3, 30), (0.5, 4, 2), (100, 0, 0), (41.7, 3, 125.1)]
)
def test_littles_law(rate: float, seconds: float, expected: float) -> None:
    assert model.littles_law(rate, seconds) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rate", "seconds", "utilisation", "expected"),
    [
        (10, 3, 1.0, 30),  # exactly the runs in flight
        (10, 3, 0.7, 43),  # 30 / 0.7 = 42.86 -> 43
        (7, 1, 0.7, 10),  # 7 / 0.7 = 10 exactly: no spurious extra slot
        (0, 3, 0.7, 0),
        (0.1, 1, 0.5, 1),  # a fraction of a slot still needs one
    ],
)
def test_worker_slots(rate: float, seconds: float, utilisation: float, expected: int) -> None:
    assert model.worker_slots(rate, seconds, utilisation) == expected


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_worker_slots_rejects_utilisation_outside_0_1(bad: float) -> None:
    with pytest.raises(ValueError, match="target_utilisation"):
        model.worker_slots(1, 1, bad)


@pytest.mark.parametrize(
    ("rates", "costs", "idle", "expected"),
    [
        ({"a": 10}, {"a": 0.01}, 0.0, 0.1),
        ({"a": 10, "b": 100}, {"a": 0.01, "b": 0.002}, 0.05, 0.35),
        ({"unknown": 50}, {"a": 0.01}, 0.02, 0.02),  # kinds without a cost cost nothing
        ({}, {}, 0.0, 0.0),
    ],
)
def test_cpu_cores(
    rates: dict[str, float], costs: dict[str, float], idle: float, expected: float
) -> None:
    assert model.cpu_cores(rates, costs, idle) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("cores", "per_replica", "target", "expected"),
    [(0.0, 1, 0.7, 1), (0.7, 1, 0.7, 1), (0.71, 1, 0.7, 2), (7, 1, 0.7, 10), (3, 2, 0.5, 3)],
)
def test_replicas_for_cpu(cores: float, per_replica: float, target: float, expected: int) -> None:
    assert model.replicas_for_cpu(cores, per_replica, target) == expected


@pytest.mark.parametrize(
    ("peak", "average", "headroom", "expected"),
    [
        (10, 3, 0.3, (3, 13)),
        (1, 0, 0.3, (2, 2)),  # two for availability; max never below min
        (10, 1, 0.0, (2, 10)),
        (4, 6, 0.5, (6, 6)),
    ],
)
def test_hpa_bounds(peak: int, average: int, headroom: float, expected: tuple[int, int]) -> None:
    assert model.hpa_bounds(peak, average, headroom) == expected


@pytest.mark.parametrize(
    ("max_conn", "reserved", "api", "workers", "api_want", "worker_want", "expected"),
    [
        (100, 10, 2, 4, 10, 20, (9, 18)),  # 2*10 + 4*20 = 100 > 90: scaled by 0.9
        (200, 10, 2, 4, 10, 20, (10, 20)),  # fits
        (30, 10, 4, 4, 10, 10, (2, 3)),
        (20, 10, 5, 5, 10, 10, (1, 1)),
    ],
)
def test_pool_sizes_never_exceed_max_connections(
    max_conn: int,
    reserved: int,
    api: int,
    workers: int,
    api_want: int,
    worker_want: int,
    expected: tuple[int, int],
) -> None:
    api_pool, worker_pool = model.pool_sizes(
        max_conn, reserved, api, workers, api_want, worker_want
    )
    assert api * api_pool + workers * worker_pool + reserved <= max_conn
    assert (api_pool, worker_pool) == expected


def test_pool_sizes_refuses_when_one_connection_per_pod_does_not_fit() -> None:
    with pytest.raises(ValueError, match="max_connections 15"):
        model.pool_sizes(15, 10, 3, 3, 10, 10)


@pytest.mark.parametrize(
    ("api", "workers", "api_pool", "worker_pool", "reserved", "expected"),
    [(3, 16, 19, 19, 10, 371), (1, 1, 1, 1, 0, 2)],
)
def test_connections_needed(
    api: int, workers: int, api_pool: int, worker_pool: int, reserved: int, expected: int
) -> None:
    assert model.connections_needed(api, workers, api_pool, worker_pool, reserved) == expected


@pytest.mark.parametrize(
    ("runs", "per_run", "days", "expected"),
    [(500_000, 20_000, 30, 3e11), (0, 1, 30, 0), (1, 1024, 1, 1024)],
)
def test_stored_bytes(runs: float, per_run: float, days: float, expected: float) -> None:
    assert model.stored_bytes(runs, per_run, days) == pytest.approx(expected)


@pytest.mark.parametrize(("runs", "per_run", "expected"), [(1000, 1000, 3e7), (0, 5, 0)])
def test_monthly_growth(runs: float, per_run: float, expected: float) -> None:
    assert model.monthly_growth(runs, per_run) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("overhead", "slope", "payload", "expected"),
    [(10_000, 4.7, 0, 10_000), (10_000, 4.7, 1_000_000, 4_710_000), (0, 1, 5, 5)],
)
def test_bytes_per_run(overhead: float, slope: float, payload: float, expected: float) -> None:
    assert model.bytes_per_run(overhead, slope, payload) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [(0.12, 0.05, 0.15), (0.15, 0.05, 0.15), (100, 64, 128), (0, 64, 0)],
)
def test_round_up(value: float, step: float, expected: float) -> None:
    assert model.round_up(value, step) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("base", "per_item", "items", "expected"), [(100, 2, 10, 120), (100, 0, 10, 100)]
)
def test_memory_bytes(base: float, per_item: float, items: float, expected: float) -> None:
    assert model.memory_bytes(base, per_item, items) == expected


def test_with_headroom() -> None:
    assert model.with_headroom(10, 0.3) == pytest.approx(13)
    assert math.isclose(model.with_headroom(10, 0), 10)
    with pytest.raises(ValueError):
        model.with_headroom(10, -0.1)
