"""Check the model against reality: predict measured CPU from profiles taken at other rates.

For each request phase of the observed profiles, the load it carried is an arrival rate
(requests / wall seconds). The planner's CPU formula (`model.cpu_cores`) with the reference
profiles' per-request CPU and idle CPU per process predicts the cores the Garrison
processes kept busy; multiplied by the phase's wall time that is CPU seconds, compared with
what /proc measured for the observed phase.

Several profiles on each side are pooled: per-request CPU is the reference phases' CPU over
their requests, and the observed phases of a kind add up. Profiles taken in turn (reference,
observed, observed, reference) put both sides' centre in time at the same moment, so a
window in which the machine runs slower shifts both sides instead of reading as a model
error.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from garrison.planning import model
from garrison.planning.profile import Phase, Profile

_COMPARED = ("thread.create", "run.wait", "run.stream", "state.get")


@dataclass(frozen=True, slots=True)
class CpuCheck:
    kind: str
    rate: float  # requests per second in the observed phases
    predicted_cpu_seconds: float  # API + worker processes
    measured_cpu_seconds: float

    @property
    def error(self) -> float:
        """(predicted - measured) / measured."""
        if self.measured_cpu_seconds <= 0:
            return float("inf")
        return (self.predicted_cpu_seconds - self.measured_cpu_seconds) / self.measured_cpu_seconds


def predict_cpu(references: Sequence[Profile], observed: Sequence[Profile]) -> list[CpuCheck]:
    """One check per request kind measured on both sides, plus a `total` row."""
    costs = _pooled_costs(references)
    # One API process, and one worker process on split (idle_worker_cores is per worker).
    idle = sum(r.idle_api_cores + r.idle_worker_cores for r in references) / len(references)
    checks: list[CpuCheck] = []
    for kind in _COMPARED:
        phases = [p for profile in observed for p in _measured(profile, kind)]
        if kind not in costs or not phases:
            continue
        predicted = sum(
            model.cpu_cores({kind: p.requests / p.wall_seconds}, costs, idle) * p.wall_seconds
            for p in phases
        )
        checks.append(
            CpuCheck(
                kind=kind,
                rate=sum(p.requests for p in phases) / sum(p.wall_seconds for p in phases),
                predicted_cpu_seconds=predicted,
                measured_cpu_seconds=sum(p.api_cpu_seconds + p.worker_cpu_seconds for p in phases),
            )
        )
    if checks:
        checks.append(
            CpuCheck(
                kind="total",
                rate=sum(c.rate for c in checks) / len(checks),
                predicted_cpu_seconds=sum(c.predicted_cpu_seconds for c in checks),
                measured_cpu_seconds=sum(c.measured_cpu_seconds for c in checks),
            )
        )
    return checks


def _measured(profile: Profile, kind: str) -> list[Phase]:
    return [p for p in profile.phases if p.kind == kind and p.requests and p.wall_seconds > 0]


def _pooled_costs(references: Sequence[Profile]) -> dict[str, float]:
    """CPU seconds (API + worker) per request of each kind, over every reference phase."""
    costs: dict[str, float] = {}
    for kind in _COMPARED:
        phases = [p for profile in references for p in _measured(profile, kind)]
        if phases:
            cpu = sum(p.api_cpu_seconds + p.worker_cpu_seconds for p in phases)
            costs[kind] = cpu / sum(p.requests for p in phases)
    return costs
