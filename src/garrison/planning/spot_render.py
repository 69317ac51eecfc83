"""How `garrison plan spot` is shown: a ranking table, the suggested mix, the assumptions
(always printed with them) and the same content as JSON for tools."""

from dataclasses import dataclass
from typing import Any

from rich.table import Table

from garrison.planning.cost import NODE_ALLOCATABLE
from garrison.planning.plan import Plan
from garrison.planning.spot import (
    DEFAULT_TOLERANCE,
    Demand,
    InstanceType,
    Mix,
    PoolPrice,
    Ranked,
    demand_of,
    pool_prices,
    rank,
    suggest_mix,
)
from garrison.planning.spot_prices import PRODUCT, SpotData

HOURS_PER_MONTH = 730
# A pool whose peak is this far above its average gets a note under the tables.
SWING = 1.05


@dataclass(frozen=True, slots=True)
class SpotReport:
    data: SpotData
    hours: float
    demand: Demand
    ranked: list[Ranked]
    mix: Mix
    unpriced: list[str]  # requested types with no spot price in the window


def spot_report(
    data: SpotData, names: list[str], plan: Plan, hours: float, pools: int
) -> SpotReport:
    demand = demand_of(plan)
    priced = pool_prices(data.types, data.points, data.start, data.end)
    ranked = rank(priced, demand)
    have = {r.cheapest.instance_type.name for r in ranked}
    return SpotReport(
        data=data,
        hours=hours,
        demand=demand,
        ranked=ranked,
        mix=suggest_mix(priced, demand, max_pools=pools),
        unpriced=[n for n in names if n not in have],
    )


def usd(value: float) -> str:
    """Dollars for people, three significant digits: 0.0345, 12.5, 1,234."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _type_cell(t: InstanceType) -> str:
    # x86_64 is the default; only the exception is marked (and named in the caption).
    return t.name if t.architecture == "x86_64" else f"{t.name}*"


def _arch_caption(types: list[InstanceType]) -> str:
    other = sorted({t.architecture for t in types} - {"x86_64"})
    return "".join(f"; * {arch}" for arch in other)


def ranking_table(report: SpotReport) -> Table:
    d, demand = report.data, report.demand
    types = [r.cheapest.instance_type for r in report.ranked]
    table = Table(
        title=f"Spot {PRODUCT} in {d.region}, last {report.hours:g} h, USD\n"
        f"plan needs {demand.vcpus:.1f} vCPU, {demand.memory_gib:.1f} GiB of nodes",
        caption="cheapest for this plan first; each type in its cheapest AZ" + _arch_caption(types),
        header_style="bold",
        show_edge=False,
    )
    table.add_column("type", style="bold cyan", no_wrap=True)
    for column in ("vCPU", "GiB", "AZs", "$/h", "$/vCPU-h", "$/GiB-h", "nodes", "$/mo"):
        table.add_column(column, justify="right", no_wrap=True)
    for i, r in enumerate(report.ranked):
        p, t = r.cheapest, r.cheapest.instance_type
        table.add_row(
            _type_cell(t),
            str(t.vcpus),
            f"{t.memory_gib:g}",
            str(r.zones),
            usd(p.average),
            usd(p.per_vcpu_hour),
            usd(p.per_gib_hour),
            str(r.instances),
            usd(r.fleet_hour * HOURS_PER_MONTH),
            style="green" if i == 0 else None,
        )
    return table


def _pool_row(table: Table, p: PoolPrice, instances: int) -> None:
    t = p.instance_type
    table.add_row(
        _type_cell(t),
        p.zone,
        str(instances),
        str(instances * t.vcpus),
        f"{instances * t.memory_gib:g}",
        usd(p.average),
        usd(instances * p.average * HOURS_PER_MONTH),
    )


def mix_table(report: SpotReport) -> Table:
    mix = report.mix
    table = Table(
        title=f"Suggested spot mix: {len(mix.lines)} pools over {len(mix.zones)} zones",
        caption=_arch_caption([line.pool.instance_type for line in mix.lines]).lstrip("; "),
        header_style="bold",
        show_edge=False,
    )
    table.add_column("type", style="bold cyan", no_wrap=True)
    table.add_column("AZ", no_wrap=True)
    for column in ("nodes", "vCPU", "GiB", "$/h each", "$/mo"):
        table.add_column(column, justify="right", no_wrap=True)
    for line in mix.lines:
        _pool_row(table, line.pool, line.instances)
    table.add_section()
    table.add_row(
        "[bold]total[/bold]",
        "",
        f"[bold]{mix.instances}[/bold]",
        f"[bold]{mix.vcpus}[/bold]",
        f"[bold]{mix.memory_gib:g}[/bold]",
        "",
        f"[bold]{usd(mix.hourly * HOURS_PER_MONTH)}[/bold]",
    )
    table.add_row(
        "plan needs", "", "", f"{report.demand.vcpus:.1f}", f"{report.demand.memory_gib:.1f}"
    )
    return table


def spot_notes(report: SpotReport, plan: Plan) -> list[str]:
    mix = report.mix
    notes = [
        "Recent price = time-weighted average of each (type, AZ) pool's spot price over the "
        f"window; spot prices move and this is not a quote. Months are {HOURS_PER_MONTH} h.",
        "Plan demand = API and worker pods at peak replicas x their requests, / "
        f"{NODE_ALLOCATABLE:g} for what the kubelet, OS and daemonsets keep; whole pods on "
        "whole nodes may need a little more (bin packing is not modelled).",
        "Ranking: a fleet of one type covering that demand, nodes = max(vCPU needed / vCPUs, "
        "GiB needed / GiB) rounded up, x price; vCPU and memory weigh as the plan needs them.",
        f"Mix: (type, AZ) pools of one CPU architecture within {DEFAULT_TOLERANCE - 1:.0%} of "
        "the cheapest cost per unit of demand, spread over zones first, then types; nodes are "
        "added to the pool with the least capacity until the demand is covered, so each "
        "reclaimed pool takes about an equal share.",
    ]
    left = mix.left_after_worst_loss()
    if len(mix.lines) >= 2 and left >= 1:
        notes.append("If the largest pool is reclaimed, the others still cover the whole demand.")
    elif len(mix.lines) >= 2:
        notes.append(
            f"If the largest pool is reclaimed, {left:.0%} of the demand stays covered; keep "
            "some on-demand nodes (see `garrison plan cost --spot-share`) for the rest."
        )
    else:
        notes.append(
            "Only one pool qualifies: no spread against interruptions. Pass more "
            "--instance-types (similar sizes, other families or generations)."
        )
    swing = max(mix.lines, key=lambda line: line.pool.maximum / line.pool.average, default=None)
    if swing is not None and swing.pool.maximum >= SWING * swing.pool.average:
        p = swing.pool
        notes.append(
            f"Largest price swing in the mix: {p.instance_type.name} in {p.zone} peaked at "
            f"${usd(p.maximum)}/h, {p.maximum / p.average:.2f}x its window average."
        )
    elif swing is not None:
        notes.append(
            f"No pool in the mix peaked more than {SWING - 1:.0%} above its window average."
        )
    if report.unpriced:
        notes.append(
            f"No {PRODUCT} spot price in the window for: {', '.join(report.unpriced)} "
            "(not offered as spot in this region, or no change recorded)."
        )
    notes.append(
        f"Workload: {plan.workload.daily_active_users:,.0f} daily active users "
        "(`garrison plan` flags before `spot`)."
    )
    return notes


def _pool_json(p: PoolPrice) -> dict[str, Any]:
    t = p.instance_type
    return {
        "instance_type": t.name,
        "architecture": t.architecture,
        "vcpus": t.vcpus,
        "memory_gib": t.memory_gib,
        "zone": p.zone,
        "average_hour": p.average,
        "latest_hour": p.latest,
        "max_hour": p.maximum,
        "per_vcpu_hour": p.per_vcpu_hour,
        "per_gib_hour": p.per_gib_hour,
    }


def spot_json(report: SpotReport, plan: Plan) -> dict[str, Any]:
    mix = report.mix
    return {
        "region": report.data.region,
        "product": PRODUCT,
        "currency": "USD",
        "window": {
            "start": report.data.start.isoformat(),
            "end": report.data.end.isoformat(),
            "hours": report.hours,
        },
        "demand": {"vcpus": report.demand.vcpus, "memory_gib": report.demand.memory_gib},
        "ranking": [
            {
                **_pool_json(r.cheapest),
                "zones": r.zones,
                "instances": r.instances,
                "cover_cost_hour": r.cover_cost,
                "fleet_hour": r.fleet_hour,
            }
            for r in report.ranked
        ],
        "mix": {
            "pools": [{**_pool_json(line.pool), "instances": line.instances} for line in mix.lines],
            "instances": mix.instances,
            "vcpus": mix.vcpus,
            "memory_gib": mix.memory_gib,
            "hourly": mix.hourly,
            "monthly": mix.hourly * HOURS_PER_MONTH,
            "zones": mix.zones,
            "left_after_worst_loss": mix.left_after_worst_loss(),
        },
        "unpriced": report.unpriced,
        "assumptions": spot_notes(report, plan),
    }
