"""The capacity model: small pure functions, each one formula.

Every input comes either from the operator (traffic) or from a measured profile (cost per
request); nothing here reads a file, a clock or a process. `plan.py` composes them.
"""

import math

SECONDS_PER_DAY = 86_400.0
DAYS_PER_MONTH = 30.0


def peak_arrival_rate(
    daily_active_users: float,
    peak_concurrency: float,
    requests_per_user: float,
    session_seconds: float,
) -> float:
    """Runs per second at the daily peak.

    λ = DAU * peak_concurrency * requests_per_user / session_seconds

    `peak_concurrency` is the share of daily users online at the peak; an online user
    issues their daily `requests_per_user` spread over one session of `session_seconds`.
    """
    if session_seconds <= 0:
        raise ValueError("session_seconds must be positive")
    return daily_active_users * peak_concurrency * requests_per_user / session_seconds


def average_arrival_rate(daily_active_users: float, requests_per_user: float) -> float:
    """Runs per second averaged over a day: λ_avg = DAU * requests_per_user / 86 400."""
    return daily_active_users * requests_per_user / SECONDS_PER_DAY


def littles_law(arrival_rate: float, seconds_in_system: float) -> float:
    """Items in the system at once (Little's law): L = λ * W.

    Used for runs in flight and for open SSE streams (a streamed run holds its stream for
    its whole duration)."""
    return arrival_rate * seconds_in_system


def worker_slots(arrival_rate: float, run_seconds: float, target_utilisation: float) -> int:
    """Run slots (worker concurrency summed over replicas) needed at peak.

    slots = ⌈λ * run_seconds / target_utilisation⌉

    λ * run_seconds runs are in flight on average (Little's law); dividing by the target
    utilisation keeps slots free for bursts so runs rarely wait in the queue."""
    _check_fraction("target_utilisation", target_utilisation)
    return math.ceil(littles_law(arrival_rate, run_seconds) / target_utilisation - 1e-9)


def cpu_cores(rates: dict[str, float], cpu_seconds: dict[str, float], idle_cores: float) -> float:
    """Cores kept busy: Σ_k rate_k * cpu_seconds_k + idle_cores.

    `rates` are requests per second per request kind, `cpu_seconds` the measured CPU one
    request of that kind costs, `idle_cores` what the processes burn with no load
    (heartbeats, polling). Kinds missing from `cpu_seconds` cost nothing."""
    busy = sum(rate * cpu_seconds.get(kind, 0.0) for kind, rate in rates.items())
    return busy + idle_cores


def replicas_for_cpu(cores: float, cores_per_replica: float, target_cpu: float) -> int:
    """Replicas so that each runs at `target_cpu` of its cores: ⌈cores / (per_replica * target)⌉
    (at least 1)."""
    _check_fraction("target_cpu", target_cpu)
    if cores_per_replica <= 0:
        raise ValueError("cores_per_replica must be positive")
    return max(1, math.ceil(cores / (cores_per_replica * target_cpu) - 1e-9))


def with_headroom(value: float, headroom: float) -> float:
    """value * (1 + headroom): spare capacity for bursts and for one replica being lost."""
    if headroom < 0:
        raise ValueError("headroom must not be negative")
    return value * (1.0 + headroom)


def hpa_bounds(
    peak_replicas: int, average_replicas: int, headroom: float, minimum: int = 2
) -> tuple[int, int]:
    """Horizontal Pod Autoscaler (min, max).

    min = max(minimum, average_replicas): enough for the daily average, and two for
    availability; max = max(min, ⌈peak_replicas * (1 + headroom)⌉)."""
    low = max(minimum, average_replicas)
    high = max(low, math.ceil(with_headroom(peak_replicas, headroom) - 1e-9))
    return low, high


def memory_bytes(base_bytes: float, per_item_bytes: float, items: float) -> float:
    """A process's memory: base + per_item * items (RSS at rest plus what each open stream
    or active run adds, both measured)."""
    return base_bytes + per_item_bytes * items


def pool_sizes(
    max_connections: int,
    reserved: int,
    api_pods: int,
    worker_pods: int,
    api_wanted: int,
    worker_wanted: int,
) -> tuple[int, int]:
    """Per-pod PostgreSQL pool maxima that never exceed the server's `max_connections`.

    api_pods * api_pool + worker_pods * worker_pool ≤ max_connections - reserved,
    with pod counts taken at the autoscaler's maximum. Pools get what they want when it
    fits; otherwise both are scaled down by the same factor (at least 1 connection each).
    Raises ValueError when even one connection per pod does not fit."""
    budget = max_connections - reserved
    if api_pods + worker_pods > budget:
        raise ValueError(
            f"{api_pods + worker_pods} pods need at least one connection each but "
            f"max_connections {max_connections} leaves {budget} after {reserved} reserved"
        )
    wanted = api_pods * api_wanted + worker_pods * worker_wanted
    if wanted <= budget:
        return api_wanted, worker_wanted
    factor = budget / wanted
    api = max(1, math.floor(api_wanted * factor))
    worker = max(1, math.floor(worker_wanted * factor))
    # Flooring keeps the sum within budget; hand what rounding left over to the workers.
    while api_pods * api + worker_pods * (worker + 1) <= budget and worker < worker_wanted:
        worker += 1
    return api, worker


def connections_needed(
    api_pods: int, worker_pods: int, api_pool: int, worker_pool: int, reserved: int
) -> int:
    """max_connections a PostgreSQL server needs for these pools at full scale:
    api_pods * api_pool + worker_pods * worker_pool + reserved."""
    return api_pods * api_pool + worker_pods * worker_pool + reserved


def stored_bytes(runs_per_day: float, bytes_per_run: float, retention_days: float) -> float:
    """Database size at steady state: runs_per_day * bytes_per_run * retention_days
    (threads older than the retention are pruned, so the size stops growing)."""
    return runs_per_day * bytes_per_run * retention_days


def monthly_growth(runs_per_day: float, bytes_per_run: float) -> float:
    """Bytes written per 30-day month before retention starts pruning:
    runs_per_day * bytes_per_run * 30."""
    return runs_per_day * bytes_per_run * DAYS_PER_MONTH


def bytes_per_run(overhead_bytes: float, per_payload_byte: float, payload_bytes: float) -> float:
    """Bytes one run costs: overhead + per_payload_byte * payload_bytes (a straight line
    through two measured payload sizes)."""
    return overhead_bytes + per_payload_byte * payload_bytes


def round_up(value: float, step: float) -> float:
    """The smallest multiple of `step` that is ≥ value (for CPU millicores and MiB)."""
    if step <= 0:
        raise ValueError("step must be positive")
    return math.ceil(value / step - 1e-9) * step


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
