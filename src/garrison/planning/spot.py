"""Rank EC2 instance types by recent spot price and suggest a mix (pure; no AWS calls).

`spot_prices.py` fetches the inputs; this module only does arithmetic. Prices are USD per
instance-hour. The formulas:

- A pool is one (instance type, availability zone). Its recent price is the time-weighted
  average over the window [start, end]: spot price history lists price *changes*, so each
  point holds from its timestamp (or from `start`, for the one in effect when the window
  opened) until the next point (or `end`).
- Price per vCPU-hour = price / vCPUs; per GiB-hour = price / memory GiB.
- Demand (from a plan) = Σ_deployments replicas * (CPU request, memory request)
  / node_allocatable: the pods at peak, plus what the kubelet, OS and daemonsets keep.
- Instances of type t to cover demand D: n(t) = max(1, ⌈D_vcpu / vcpu_t⌉, ⌈D_gib / gib_t⌉).
- Cover cost, covering D with t before rounding to whole instances:
  cover(t) = price_t * max(D_vcpu / vcpu_t, D_gib / gib_t). It weighs vCPU and memory by the
  plan's own shape: a memory-bound plan favours memory-rich types and vice versa.
- Ranking: by what a fleet of one type costs, n(t) * price_t (whole instances, so a small
  plan favours small types), then by cover(t).
- Mix: pools of the top-ranked pool's CPU architecture whose cover cost is within
  `tolerance` of the lowest cover cost in that architecture; k = min(max_pools, candidates,
  max(2, n(top-ranked type))) of them, picked greedily: least-used zone first, then
  least-used type, then cheapest. Each pool starts with one instance; one more goes, in
  turn, to the pool holding the least share of D, share = instances * min(vcpu / D_vcpu,
  gib / D_gib), until the mix covers D in vCPU and in GiB. Pools stay within about one
  instance of an equal share, so one reclaimed pool takes about 1/k of the capacity.
"""

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from garrison.planning.cost import NODE_ALLOCATABLE
from garrison.planning.plan import GIB, Plan

DEFAULT_TOLERANCE = 1.2
DEFAULT_MAX_POOLS = 6


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: float
    architecture: str  # x86_64 | arm64


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One entry of the spot price history: `price` holds from `at` until the next change."""

    instance_type: str
    zone: str
    price: float  # USD per instance-hour
    at: datetime


@dataclass(frozen=True, slots=True)
class Demand:
    vcpus: float
    memory_gib: float

    def __post_init__(self) -> None:
        if not (self.vcpus > 0 and self.memory_gib > 0):
            raise ValueError(f"demand must be positive, got {self.vcpus} vCPU, {self.memory_gib}")


def demand_of(plan: Plan, allocatable: float = NODE_ALLOCATABLE) -> Demand:
    """Node capacity the plan's Garrison pods need at peak (PostgreSQL and Redis are managed
    services, not nodes)."""
    pods = (plan.api, plan.worker)
    return Demand(
        vcpus=sum(d.replicas * d.cpu_request for d in pods) / allocatable,
        memory_gib=sum(d.replicas * d.memory_request for d in pods) / GIB / allocatable,
    )


@dataclass(frozen=True, slots=True)
class PoolPrice:
    """One spot pool's prices over the window."""

    instance_type: InstanceType
    zone: str
    average: float  # time-weighted over the window
    latest: float
    maximum: float

    @property
    def per_vcpu_hour(self) -> float:
        return self.average / self.instance_type.vcpus

    @property
    def per_gib_hour(self) -> float:
        return self.average / self.instance_type.memory_gib


def window_stats(
    points: Iterable[PricePoint], start: datetime, end: datetime
) -> tuple[float, float, float]:
    """(time-weighted average, latest, maximum) of one pool's prices over [start, end].

    Points before `start` count only for the last of them (the price in effect at `start`);
    if the points span no time at all, the average is their plain mean.
    """
    ordered = sorted((p for p in points if p.at <= end), key=lambda p: p.at)
    before = [p for p in ordered if p.at <= start]
    relevant = before[-1:] + [p for p in ordered if p.at > start]
    if not relevant:
        raise ValueError("no price in the window")
    weighted = seconds = 0.0
    for i, point in enumerate(relevant):
        begin = max(point.at, start)
        finish = relevant[i + 1].at if i + 1 < len(relevant) else end
        duration = max((finish - begin).total_seconds(), 0.0)
        weighted += point.price * duration
        seconds += duration
    prices = [p.price for p in relevant]
    average = weighted / seconds if seconds > 0 else sum(prices) / len(prices)
    return average, relevant[-1].price, max(prices)


def pool_prices(
    types: Mapping[str, InstanceType],
    points: Iterable[PricePoint],
    start: datetime,
    end: datetime,
) -> list[PoolPrice]:
    """Every pool with a price in the window, for the types in `types`."""
    by_pool: dict[tuple[str, str], list[PricePoint]] = {}
    for point in points:
        if point.instance_type in types:
            by_pool.setdefault((point.instance_type, point.zone), []).append(point)
    pools = []
    for (name, zone), history in sorted(by_pool.items()):
        if not any(p.at <= end for p in history):
            continue
        average, latest, maximum = window_stats(history, start, end)
        pools.append(PoolPrice(types[name], zone, average, latest, maximum))
    return pools


def instances_to_cover(t: InstanceType, demand: Demand) -> int:
    """n(t) = max(1, ⌈D_vcpu / vcpu⌉, ⌈D_gib / gib⌉)."""
    return max(
        1,
        math.ceil(demand.vcpus / t.vcpus - 1e-9),
        math.ceil(demand.memory_gib / t.memory_gib - 1e-9),
    )


def cover_cost(pool: PoolPrice, demand: Demand) -> float:
    """USD per hour to cover the demand with this pool's type, before rounding instances."""
    t = pool.instance_type
    return pool.average * max(demand.vcpus / t.vcpus, demand.memory_gib / t.memory_gib)


@dataclass(frozen=True, slots=True)
class Ranked:
    """One instance type, priced in its cheapest zone."""

    cheapest: PoolPrice
    zones: int  # zones with a spot price in the window
    instances: int  # n(t) for the demand
    cover_cost: float  # ranking key (USD per hour)

    @property
    def fleet_hour(self) -> float:
        """USD per hour for `instances` whole instances in the cheapest zone."""
        return self.instances * self.cheapest.average


def rank(pools: Iterable[PoolPrice], demand: Demand) -> list[Ranked]:
    """Instance types, cheapest whole-instance fleet first (ties: cover cost, then name)."""
    by_type: dict[str, list[PoolPrice]] = {}
    for pool in pools:
        by_type.setdefault(pool.instance_type.name, []).append(pool)
    ranked = []
    for zones in by_type.values():
        best = min(zones, key=lambda p: (p.average, p.zone))
        ranked.append(
            Ranked(
                cheapest=best,
                zones=len(zones),
                instances=instances_to_cover(best.instance_type, demand),
                cover_cost=cover_cost(best, demand),
            )
        )
    ranked.sort(key=lambda r: (r.fleet_hour, r.cover_cost, r.cheapest.instance_type.name))
    return ranked


@dataclass(frozen=True, slots=True)
class MixLine:
    pool: PoolPrice
    instances: int

    @property
    def hourly(self) -> float:
        return self.instances * self.pool.average


@dataclass(frozen=True, slots=True)
class Mix:
    lines: list[MixLine]
    demand: Demand

    @property
    def instances(self) -> int:
        return sum(line.instances for line in self.lines)

    @property
    def vcpus(self) -> int:
        return sum(line.instances * line.pool.instance_type.vcpus for line in self.lines)

    @property
    def memory_gib(self) -> float:
        return sum(line.instances * line.pool.instance_type.memory_gib for line in self.lines)

    @property
    def hourly(self) -> float:
        return sum(line.hourly for line in self.lines)

    @property
    def zones(self) -> list[str]:
        return sorted({line.pool.zone for line in self.lines})

    def left_after_worst_loss(self) -> float:
        """Share of the demand still covered when the pool holding the most capacity is
        reclaimed: min over pools of min(vCPU left / D_vcpu, GiB left / D_gib)."""
        if len(self.lines) < 2:
            return 0.0
        worst = math.inf
        for line in self.lines:
            t = line.pool.instance_type
            cpu_left = self.vcpus - line.instances * t.vcpus
            mem_left = self.memory_gib - line.instances * t.memory_gib
            worst = min(worst, cpu_left / self.demand.vcpus, mem_left / self.demand.memory_gib)
        return worst


def suggest_mix(
    pools: Iterable[PoolPrice],
    demand: Demand,
    *,
    max_pools: int = DEFAULT_MAX_POOLS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Mix:
    """Spread the demand over several cheap pools (formula in the module docstring)."""
    if max_pools < 1:
        raise ValueError(f"max_pools must be at least 1, got {max_pools}")
    if tolerance < 1:
        raise ValueError(f"tolerance must be at least 1, got {tolerance}")
    available = list(pools)
    if not available:
        return Mix([], demand)
    costs = {p: cover_cost(p, demand) for p in available}
    # The top of `rank`: whole-instance fleet cost, then cover cost.
    best = min(
        available,
        key=lambda p: (
            instances_to_cover(p.instance_type, demand) * p.average,
            costs[p],
            p.instance_type.name,
            p.zone,
        ),
    )
    # One architecture: a mixed node group needs multi-arch images for every pod.
    arch = best.instance_type.architecture
    same_arch = [p for p in available if p.instance_type.architecture == arch]
    floor = min(costs[p] for p in same_arch)
    candidates = [p for p in same_arch if costs[p] <= tolerance * floor]
    k = min(max_pools, len(candidates), max(2, instances_to_cover(best.instance_type, demand)))
    zone_use: Counter[str] = Counter()
    type_use: Counter[str] = Counter()
    chosen: list[PoolPrice] = []
    for _ in range(k):
        pick = min(
            (p for p in candidates if p not in chosen),
            key=lambda p: (
                zone_use[p.zone],
                type_use[p.instance_type.name],
                costs[p],
                p.instance_type.name,
                p.zone,
            ),
        )
        chosen.append(pick)
        zone_use[pick.zone] += 1
        type_use[pick.instance_type.name] += 1
    return Mix(_fill(chosen, demand), demand)


def _fill(pools: list[PoolPrice], demand: Demand) -> list[MixLine]:
    """One instance per pool, then one at a time to the pool with the least share of the
    demand until vCPU and memory are both covered."""

    def unit(p: PoolPrice) -> float:  # share of the demand one instance covers
        t = p.instance_type
        return min(t.vcpus / demand.vcpus, t.memory_gib / demand.memory_gib)

    counts = [1] * len(pools)
    while True:
        cpu = sum(n * p.instance_type.vcpus for n, p in zip(counts, pools, strict=True))
        mem = sum(n * p.instance_type.memory_gib for n, p in zip(counts, pools, strict=True))
        if cpu >= demand.vcpus - 1e-9 and mem >= demand.memory_gib - 1e-9:
            return [MixLine(p, n) for n, p in zip(counts, pools, strict=True)]
        i = min(range(len(pools)), key=lambda j: ((counts[j] + 1) * unit(pools[j]), j))
        counts[i] += 1
