"""Spot ranking arithmetic (`garrison.planning.spot`): table-driven, no AWS."""

from datetime import UTC, datetime, timedelta

import pytest

from garrison.planning.cost import NODE_ALLOCATABLE
from garrison.planning.plan import GIB, Workload, make_plan
from garrison.planning.profile import Profile
from garrison.planning.spot import (
    Demand,
    InstanceType,
    PoolPrice,
    PricePoint,
    cover_cost,
    demand_of,
    instances_to_cover,
    pool_prices,
    rank,
    suggest_mix,
    window_stats,
)

END = datetime(2026, 1, 2, tzinfo=UTC)
START = END - timedelta(hours=24)

M_LARGE = InstanceType("m.large", 2, 8.0, "x86_64")
C_XLARGE = InstanceType("c.xlarge", 4, 8.0, "x86_64")
R_LARGE = InstanceType("r.large", 2, 16.0, "x86_64")
G_LARGE = InstanceType("g.large", 2, 8.0, "arm64")


def _at(hours_after_start: float) -> datetime:
    return START + timedelta(hours=hours_after_start)


def _point(price: float, hours: float, t: str = "m.large", zone: str = "a") -> PricePoint:
    return PricePoint(t, zone, price, _at(hours))


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        # The price in effect when the window opened (older timestamp) holds all window.
        ([_point(0.10, -100)], (0.10, 0.10, 0.10)),
        # A change half way: half the window at each price.
        ([_point(0.10, -1), _point(0.30, 12)], (0.20, 0.30, 0.30)),
        # Only the last point before the window counts; older ones were superseded.
        ([_point(9.0, -50), _point(0.10, -1), _point(0.30, 18)], (0.15, 0.30, 0.30)),
        # History starting inside the window: average over the covered part only.
        ([_point(0.20, 12), _point(0.40, 18)], (0.30, 0.40, 0.40)),
        # Points after the window's end are not part of it.
        ([_point(0.10, -1), _point(5.0, 30)], (0.10, 0.10, 0.10)),
        # No time covered at all (a single change at the very end): the plain mean.
        ([_point(0.10, 24), _point(0.30, 24)], (0.20, 0.30, 0.30)),
    ],
)
def test_window_stats_is_time_weighted(
    points: list[PricePoint], expected: tuple[float, float, float]
) -> None:
    assert window_stats(points, START, END) == pytest.approx(expected)


def test_window_stats_needs_a_price() -> None:
    with pytest.raises(ValueError, match="no price"):
        window_stats([_point(0.1, 30)], START, END)


@pytest.mark.parametrize(
    ("t", "demand", "expected"),
    [
        (M_LARGE, Demand(3.0, 4.0), 2),  # CPU-bound: ⌈3 / 2⌉
        (M_LARGE, Demand(1.0, 20.0), 3),  # memory-bound: ⌈20 / 8⌉
        (C_XLARGE, Demand(0.2, 0.5), 1),  # at least one
        (M_LARGE, Demand(4.0, 16.0), 2),  # an exact fit needs no spare instance
        (M_LARGE, Demand(0.1 + 0.2 + 3.7, 16.0), 2),  # nor does float noise on it
    ],
)
def test_instances_to_cover(t: InstanceType, demand: Demand, expected: int) -> None:
    assert instances_to_cover(t, demand) == expected


def test_prices_per_vcpu_and_gib_hour() -> None:
    pool = PoolPrice(C_XLARGE, "a", average=0.08, latest=0.09, maximum=0.1)
    assert pool.per_vcpu_hour == pytest.approx(0.02)
    assert pool.per_gib_hour == pytest.approx(0.01)
    # Cover cost weighs the scarcer resource: 6 vCPU need 1.5 c.xlarge, 4 GiB only 0.5.
    assert cover_cost(pool, Demand(6.0, 4.0)) == pytest.approx(0.08 * 1.5)


def test_demand_is_peak_pods_over_node_allocatable(simple_profile: Profile) -> None:
    plan = make_plan(simple_profile, Workload(daily_active_users=50_000), "test")
    demand = demand_of(plan)
    pods = (plan.api, plan.worker)
    cpu = sum(d.replicas * d.cpu_request for d in pods)
    memory = sum(d.replicas * d.memory_request for d in pods) / GIB
    assert demand.vcpus == pytest.approx(cpu / NODE_ALLOCATABLE)
    assert demand.memory_gib == pytest.approx(memory / NODE_ALLOCATABLE)
    with pytest.raises(ValueError, match="positive"):
        Demand(0.0, 1.0)


def _pools(prices: dict[tuple[InstanceType, str], float]) -> list[PoolPrice]:
    types = {t.name: t for t, _ in prices}
    points = [PricePoint(t.name, zone, price, _at(-1)) for (t, zone), price in prices.items()]
    return pool_prices(types, points, START, END)


def test_pool_prices_keep_only_requested_types_with_a_price() -> None:
    types = {"m.large": M_LARGE}
    points = [
        _point(0.1, -1, "m.large", "a"),
        _point(0.2, -1, "other", "a"),
        _point(0.3, 30, "m.large", "b"),  # only after the window: no price in it
    ]
    [pool] = pool_prices(types, points, START, END)
    assert (pool.instance_type, pool.zone, pool.average) == (M_LARGE, "a", 0.1)


# Per vCPU-hour: m 0.04, c 0.045, r 0.0625; per GiB-hour: r 0.0078, m 0.01, c 0.0225.
PRICES = {
    (M_LARGE, "a"): 0.10,
    (M_LARGE, "b"): 0.08,
    (C_XLARGE, "a"): 0.18,
    (C_XLARGE, "c"): 0.20,
    (R_LARGE, "b"): 0.125,
}


@pytest.mark.parametrize(
    ("demand", "order"),
    [
        # CPU-bound: m in zone b is cheapest per vCPU; r is dearest per vCPU.
        (Demand(16.0, 16.0), ["m.large", "c.xlarge", "r.large"]),
        # Memory-bound: r's cheap GiB wins, c's 8 GiB for 4 vCPU is dearest per GiB.
        (Demand(2.0, 64.0), ["r.large", "m.large", "c.xlarge"]),
        # Whole nodes decide: m covers 8.5 GiB for 0.085 $/h in fractions of nodes but
        # needs 2 (0.16 $/h); one r.large (0.125 $/h) is enough.
        (Demand(2.0, 8.5), ["r.large", "m.large", "c.xlarge"]),
    ],
)
def test_rank_follows_the_plans_shape(demand: Demand, order: list[str]) -> None:
    ranked = rank(_pools(PRICES), demand)
    assert [r.cheapest.instance_type.name for r in ranked] == order
    by_name = {r.cheapest.instance_type.name: r for r in ranked}
    m = by_name["m.large"]
    assert (m.cheapest.zone, m.zones) == ("b", 2)  # priced in its cheapest of two zones
    assert m.instances == instances_to_cover(M_LARGE, demand)
    assert m.fleet_hour == pytest.approx(m.instances * 0.08)


def _covers(mix_vcpus: float, mix_gib: float, demand: Demand) -> bool:
    return mix_vcpus >= demand.vcpus - 1e-9 and mix_gib >= demand.memory_gib - 1e-9


def test_mix_spreads_over_zones_then_types_and_covers_demand() -> None:
    prices = {
        (M_LARGE, "a"): 0.10,
        (M_LARGE, "b"): 0.10,
        (C_XLARGE, "a"): 0.21,  # 5 % dearer per vCPU: within tolerance
        (C_XLARGE, "c"): 0.21,
        (R_LARGE, "a"): 0.20,  # twice the price per vCPU: left out
        (G_LARGE, "a"): 0.05,  # cheapest of all but arm64 ...
    }
    demand = Demand(12.0, 12.0)
    mix = suggest_mix(_pools(prices), demand)
    # ... so the mix is arm64-only: g.large, its one pool at cheapest cover cost.
    assert {line.pool.instance_type.architecture for line in mix.lines} == {"arm64"}
    assert len(mix.lines) == 1

    no_arm = {k: v for k, v in prices.items() if k[0] is not G_LARGE}
    mix = suggest_mix(_pools(no_arm), demand)
    picked = [(line.pool.instance_type.name, line.pool.zone) for line in mix.lines]
    # An unused zone first, then an unused type, then the cheapest; r.large is left out.
    assert picked == [("m.large", "a"), ("c.xlarge", "c"), ("m.large", "b"), ("c.xlarge", "a")]
    assert mix.zones == ["a", "b", "c"]
    # One node per pool already gives 2 + 4 + 2 + 4 = 12 vCPU: nothing more is added.
    assert [line.instances for line in mix.lines] == [1, 1, 1, 1]
    assert _covers(mix.vcpus, mix.memory_gib, demand)
    assert mix.hourly == pytest.approx(0.10 + 0.21 + 0.10 + 0.21)
    # Losing a c.xlarge pool (4 vCPU) leaves 8 of the 12 vCPU needed.
    assert mix.left_after_worst_loss() == pytest.approx(8 / 12)


@pytest.mark.parametrize(
    ("demand", "counts"),
    [
        # 16.9 vCPU over 4 m.large pools: 9 nodes, one pool gets the odd one.
        (Demand(16.9, 20.0), [3, 2, 2, 2]),
        # Memory-bound: 40 GiB in 8 GiB nodes needs 5.
        (Demand(2.0, 40.0), [2, 1, 1, 1]),
        (Demand(16.0, 16.0), [2, 2, 2, 2]),  # exact fit: no spare node
    ],
)
def test_mix_adds_nodes_to_the_smallest_pool_until_covered(
    demand: Demand, counts: list[int]
) -> None:
    prices = {(M_LARGE, z): 0.1 for z in "abcd"}
    mix = suggest_mix(_pools(prices), demand, max_pools=4)
    assert [line.instances for line in mix.lines] == counts
    assert _covers(mix.vcpus, mix.memory_gib, demand)


@pytest.mark.parametrize(
    ("demand", "max_pools", "pools"),
    [
        (Demand(1.0, 2.0), 6, 2),  # small demand: still two pools for spread
        (Demand(100.0, 100.0), 6, 6),  # large demand: capped by max_pools
        (Demand(100.0, 100.0), 3, 3),
        (Demand(5.0, 5.0), 6, 3),  # 3 m.large cover it: no more pools than that
    ],
)
def test_mix_size(demand: Demand, max_pools: int, pools: int) -> None:
    prices = {(M_LARGE, z): 0.1 for z in "abcdefgh"}
    mix = suggest_mix(_pools(prices), demand, max_pools=max_pools)
    assert len(mix.lines) == pools
    assert len(mix.zones) == pools
    assert _covers(mix.vcpus, mix.memory_gib, demand)


def test_mix_with_one_pool_has_no_spread() -> None:
    mix = suggest_mix(_pools({(M_LARGE, "a"): 0.1}), Demand(3.0, 3.0))
    assert [line.instances for line in mix.lines] == [2]
    assert mix.left_after_worst_loss() == 0.0
    assert suggest_mix([], Demand(1.0, 1.0)).lines == []
    with pytest.raises(ValueError, match="max_pools"):
        suggest_mix([], Demand(1.0, 1.0), max_pools=0)


def test_left_after_worst_loss_counts_the_biggest_pool() -> None:
    # Demand 6 vCPU: one c.xlarge (4) and one m.large (2) cover it; losing the c.xlarge
    # pool leaves 2 of 6 vCPU, losing the m.large one 4 of 6: the worst is 1/3.
    mix = suggest_mix(
        _pools({(M_LARGE, "a"): 0.1, (C_XLARGE, "b"): 0.2}), Demand(6.0, 6.0), max_pools=2
    )
    assert sorted((line.pool.instance_type.name, line.instances) for line in mix.lines) == [
        ("c.xlarge", 1),
        ("m.large", 1),
    ]
    assert mix.left_after_worst_loss() == pytest.approx(2 / 6)


def test_report_names_unpriced_types_and_price_swings(simple_profile: Profile) -> None:
    from garrison.planning.spot_prices import SpotData
    from garrison.planning.spot_render import spot_json, spot_notes, spot_report

    plan = make_plan(simple_profile, Workload(), "test")
    points = [_point(0.10, -1, zone="a"), _point(0.12, 12, zone="a"), _point(0.1, -1, zone="b")]
    data = SpotData("r", START, END, {"m.large": M_LARGE, "r.large": R_LARGE}, points)
    report = spot_report(data, ["m.large", "r.large"], plan, 24, 6)
    assert report.unpriced == ["r.large"]
    notes = " ".join(spot_notes(report, plan))
    assert "No Linux/UNIX spot price in the window for: r.large" in notes
    assert "m.large in a peaked at $0.12/h, 1.09x its window average" in notes
    assert spot_json(report, plan)["unpriced"] == ["r.large"]
