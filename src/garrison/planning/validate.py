"""Check the model against reality: predict one profile's measured CPU from another's.

For each request phase of the observed profile, the load it carried is an arrival rate
(requests / wall seconds). The planner's CPU formula (`model.cpu_cores`) with the
reference profile's per-request CPU and idle CPU per process predicts the cores the
Garrison processes kept busy; multiplied by the phase's wall time that is CPU seconds,
compared with what /proc measured for the observed phase.
"""

from dataclasses import dataclass

from garrison.planning import model
from garrison.planning.profile import Profile

_COMPARED = ("thread.create", "run.wait", "run.stream", "state.get")


@dataclass(frozen=True, slots=True)
class CpuCheck:
    kind: str
    rate: float  # requests per second in the observed phase
    predicted_cpu_seconds: float  # API + worker processes
    measured_cpu_seconds: float

    @property
    def error(self) -> float:
        """(predicted - measured) / measured."""
        if self.measured_cpu_seconds <= 0:
            return float("inf")
        return (self.predicted_cpu_seconds - self.measured_cpu_seconds) / self.measured_cpu_seconds


def predict_cpu(reference: Profile, observed: Profile) -> list[CpuCheck]:
    """One check per request phase of `observed`, plus a `total` row."""
    costs = {
        kind: cost.api_cpu_seconds + cost.worker_cpu_seconds
        for kind, cost in reference.requests.items()
    }
    # One API process, and one worker process on split (idle_worker_cores is per worker).
    idle = reference.idle_api_cores + reference.idle_worker_cores
    checks: list[CpuCheck] = []
    for phase in observed.phases:
        if phase.kind not in _COMPARED or phase.wall_seconds <= 0:
            continue
        rate = phase.requests / phase.wall_seconds
        cores = model.cpu_cores({phase.kind: rate}, costs, idle)
        checks.append(
            CpuCheck(
                kind=phase.kind,
                rate=rate,
                predicted_cpu_seconds=cores * phase.wall_seconds,
                measured_cpu_seconds=phase.api_cpu_seconds + phase.worker_cpu_seconds,
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
