"""How plans and profiles are shown: rich tables for people, JSON for tools, Helm values
for the chart (`deploy/helm/garrison`; keys documented in docs/capacity.md)."""

from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from garrison.planning.plan import GIB, MIB, Deployment, Plan
from garrison.planning.profile import Profile


def size(value: float) -> str:
    """Bytes for people: 512 MiB, 3.2 GiB, 1.4 TiB."""
    for unit, scale in (("TiB", 1024 * GIB), ("GiB", GIB), ("MiB", MIB), ("KiB", 1024.0)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def millicores(cores: float) -> str:
    """Kubernetes CPU quantity: 250m, 1."""
    milli = round(cores * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def mebibytes(value: float) -> str:
    """Kubernetes memory quantity in Mi."""
    return f"{round(value / MIB)}Mi"


def _pods(table: Table, name: str, d: Deployment) -> None:
    replicas = f"{d.replicas} (HPA {d.hpa_min}-{d.hpa_max})"
    if d.concurrency is not None:
        replicas += f", {d.concurrency} runs each"
    table.add_row(name, "replicas", replicas)
    table.add_row(
        "", "CPU request / limit", f"{millicores(d.cpu_request)} / {millicores(d.cpu_limit)}"
    )
    table.add_row(
        "", "memory request / limit", f"{mebibytes(d.memory_request)} / {mebibytes(d.memory_limit)}"
    )
    table.add_row("", "DB pool per pod", str(d.pool_max))
    table.add_row("", "predicted peak CPU", f"{d.peak_cores:.2f} cores", end_section=True)


def plan_table(plan: Plan) -> Table:
    t = plan.traffic
    table = Table(title="Garrison capacity plan", show_header=True, header_style="bold")
    table.add_column("component", style="bold cyan")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row(
        "traffic",
        "peak / average runs per second",
        f"{t.peak_runs_per_second:.1f} / {t.average_runs_per_second:.1f}",
    )
    table.add_row("", "runs per day", f"{t.runs_per_day:,.0f}")
    table.add_row("", "runs in flight, open streams", f"{t.runs_in_flight:,.0f}")
    table.add_row("", "PostgreSQL bytes per run", size(t.bytes_per_run))
    table.add_row("", "egress per month", size(t.egress_per_month), end_section=True)
    _pods(table, "API", plan.api)
    _pods(table, "workers", plan.worker)
    db = plan.database
    table.add_row("PostgreSQL", "CPU / memory", f"{db.cpu:g} cores / {size(db.memory)}")
    table.add_row("", "storage (retention + headroom)", size(db.storage))
    table.add_row("", "growth per month", size(db.growth_per_month))
    table.add_row("", "max_connections", str(db.max_connections), end_section=True)
    table.add_row("Redis", "memory", size(plan.redis.memory))
    table.add_row("", "live streams retained", f"{plan.redis.live_streams:,.0f}")
    table.add_row("", "maxConnections per process", str(plan.redis.max_connections))
    return table


def print_plan(plan: Plan, console: Console) -> None:
    console.print(plan_table(plan))
    print_assumptions(plan.assumptions, f"profile: {plan.profile_source}", console)


def print_assumptions(notes: list[str], source: str, console: Console) -> None:
    console.print(f"[bold]Assumptions[/bold] ({source})")
    for note in notes:
        console.print(f"  - {note}", highlight=False)


def plan_json(plan: Plan) -> dict[str, Any]:
    data = asdict(plan)
    data["helm_values"] = helm_values(plan)
    return data


def _resources(d: Deployment) -> dict[str, Any]:
    return {
        "requests": {"cpu": millicores(d.cpu_request), "memory": mebibytes(d.memory_request)},
        "limits": {"cpu": millicores(d.cpu_limit), "memory": mebibytes(d.memory_limit)},
    }


def helm_values(plan: Plan) -> dict[str, Any]:
    """The chart's values this plan sets (docs/capacity.md lists them)."""
    return {
        "api": {
            "replicaCount": plan.api.replicas,
            "resources": _resources(plan.api),
            "autoscaling": {"minReplicas": plan.api.hpa_min, "maxReplicas": plan.api.hpa_max},
        },
        "worker": {
            "replicaCount": plan.worker.replicas,
            "concurrency": plan.worker.concurrency,
            "resources": _resources(plan.worker),
            "autoscaling": {
                "minReplicas": plan.worker.hpa_min,
                "maxReplicas": plan.worker.hpa_max,
            },
        },
        "database": {"poolMaxSize": max(plan.api.pool_max, plan.worker.pool_max)},
        "redis": {"maxConnections": plan.redis.max_connections},
    }


def to_yaml(data: dict[str, Any], indent: int = 0) -> str:
    """Block YAML for nested dicts of scalars (all Helm values need); strings are quoted
    so that `500m` or `1` stay strings."""
    lines: list[str] = []
    pad = "  " * indent
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(to_yaml(value, indent + 1))
        elif isinstance(value, str):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{pad}{key}: "{escaped}"')
        elif isinstance(value, bool):
            lines.append(f"{pad}{key}: {'true' if value else 'false'}")
        elif value is None:
            lines.append(f"{pad}{key}: null")
        else:
            lines.append(f"{pad}{key}: {value}")
    return "\n".join(lines)


def profile_table(profile: Profile) -> Table:
    table = Table(
        title=f"CPU ms and bytes per request: graph {profile.graph!r}, {profile.topology}",
        caption=profile.machine.get("name", ""),
        header_style="bold",
    )
    table.add_column("request", no_wrap=True)
    # CPU milliseconds per request by process; HTTP bytes per request.
    for column in ("API ms", "worker ms", "PG ms", "Redis ms", "in B", "out B"):
        table.add_column(column, justify="right")
    for kind, cost in profile.requests.items():
        table.add_row(
            kind,
            f"{cost.api_cpu_seconds * 1000:.2f}",
            f"{cost.worker_cpu_seconds * 1000:.2f}",
            f"{cost.db_cpu_seconds * 1000:.2f}",
            f"{cost.redis_cpu_seconds * 1000:.2f}",
            f"{cost.bytes_in:,.0f}",
            f"{cost.bytes_out:,.0f}",
        )
    return table


def profile_summary(profile: Profile) -> Table:
    m, s = profile.memory, profile.storage
    table = Table(show_header=False, title="per-item costs")
    table.add_column("item", style="bold")
    table.add_column("value", justify="right")
    rows = [
        (
            "idle CPU (API / worker process)",
            f"{profile.idle_api_cores * 1000:.1f}m / {profile.idle_worker_cores * 1000:.1f}m",
        ),
        ("RSS at rest (API / worker)", f"{size(m.api_base_bytes)} / {size(m.worker_base_bytes)}"),
        ("memory per active run", size(m.per_active_run_bytes)),
        ("memory per open SSE stream", size(m.per_sse_stream_bytes)),
        (f"database per run ({profile.payload_bytes} B in+out)", size(s.db_bytes_per_run)),
        ("database per payload byte (in+out)", f"{s.db_bytes_per_payload_byte:.2f} B"),
        (
            "database per checkpoint",
            size(s.db_bytes_per_checkpoint) if s.db_bytes_per_checkpoint is not None else "-",
        ),
        ("checkpoints per run", f"{s.checkpoints_per_run:g}" if s.checkpoints_per_run else "-"),
        ("HTTP bytes per payload byte", f"{s.net_bytes_per_payload_byte:.2f}"),
        (
            "Redis per live stream",
            size(s.redis_bytes_per_live_stream)
            if s.redis_bytes_per_live_stream is not None
            else "-",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
