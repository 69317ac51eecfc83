"""Latency summaries and the result record every phase reports."""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (`q` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def baseline_name(graph: str, checkpointer: str, synchronous: str = "normal") -> str:
    """The phase name of an in-process baseline, e.g. `baseline:one_node:postgres`."""
    suffix = {"sqlite": "", "postgres": ":postgres", "none": ":no_checkpointer"}[checkpointer]
    if checkpointer == "sqlite" and synchronous == "full":
        suffix += ":stock"  # the saver's own setting, an fsync per commit
    return f"baseline:{graph}{suffix}"


@dataclass(frozen=True, slots=True)
class Latency:
    """Milliseconds."""

    p50: float
    p90: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Latency":
        ms = [s * 1000.0 for s in seconds]
        return cls(
            p50=percentile(ms, 50),
            p90=percentile(ms, 90),
            p99=percentile(ms, 99),
            mean=sum(ms) / len(ms) if ms else math.nan,
            max=max(ms) if ms else math.nan,
        )


@dataclass(slots=True)
class PhaseResult:
    """One measured phase: one scenario (or baseline) at one concurrency."""

    name: str
    kind: str  # "server" or "baseline"
    concurrency: int
    runs: int  # successful measured runs
    errors: int
    wall_seconds: float
    throughput: float  # successful runs per second
    latency: Latency  # the scenario's main latency (a whole "run")
    cpu_ms_per_run: float  # server process trees, or the baseline process itself
    client_cpu_ms_per_run: float  # the load generator (NaN for the baseline)
    services_cpu_ms_per_run: float  # PostgreSQL backends + Redis (NaN when none are used)
    other_cores: float  # average cores busy with anything else on the machine: noise
    extra_latency: dict[str, Latency] = field(default_factory=dict)  # e.g. ttfe
    extra: dict[str, Any] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    # Set by the suite, not the phase: the deployment under test (for a baseline, the one
    # that was up, idle, while it ran) and, on the split topology, its worker processes.
    topology: str = ""
    workers: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PhaseResult":
        data = dict(data)
        data["latency"] = Latency(**data["latency"])
        data["extra_latency"] = {k: Latency(**v) for k, v in data["extra_latency"].items()}
        return cls(**data)
