"""From traffic and a measured profile to replicas, pod sizes, database and Redis.

`make_plan` is a pure function: it composes the formulas of `model.py` and records, next
to each result, the assumptions it rests on so that every plan is printed with them.
"""

import math
from dataclasses import dataclass, field

from garrison.planning import model
from garrison.planning.profile import Profile, RequestCost

MIB = 1024.0 * 1024.0
GIB = 1024.0 * MIB
# One Garrison process is one Python interpreter: it keeps about one core busy at most.
CORES_PER_PROCESS = 1.0
# Connections a managed PostgreSQL keeps for itself and for operators and migrations.
RESERVED_CONNECTIONS = 10
_CPU_STEP = 0.05  # cores (50m)
_MEMORY_STEP = 64 * MIB


@dataclass(frozen=True, slots=True)
class Workload:
    """What the operator tells the planner (the `garrison plan` flags)."""

    daily_active_users: float = 10_000
    peak_concurrency: float = 0.15
    requests_per_user: float = 50
    avg_run_seconds: float = 3.0
    payload_mb: float = 0.5
    retention_days: float = 30
    target_cpu: float = 0.7
    headroom: float = 0.3
    session_minutes: float = 30
    worker_concurrency: int = 16
    max_connections: int | None = None  # the PostgreSQL server's limit, when fixed
    stream_retention_seconds: float = 600.0  # GARRISON_STREAM_RETENTION_SECONDS

    def validate(self) -> None:
        """Raise ValueError naming the first input out of range."""
        positive = {
            "daily-active-users": self.daily_active_users,
            "requests-per-user": self.requests_per_user,
            "avg-run-seconds": self.avg_run_seconds,
            "session-minutes": self.session_minutes,
            "worker-concurrency": self.worker_concurrency,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"--{name} must be positive, got {value}")
        for name, value in {
            "peak-concurrency": self.peak_concurrency,
            "target-cpu": self.target_cpu,
        }.items():
            if not 0 < value <= 1:
                raise ValueError(f"--{name} must be in (0, 1], got {value}")
        non_negative = {
            "payload-mb": self.payload_mb,
            "retention-days": self.retention_days,
            "headroom": self.headroom,
            "stream-retention-seconds": self.stream_retention_seconds,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise ValueError(f"--{name} must not be negative, got {value}")
        if self.max_connections is not None and self.max_connections <= RESERVED_CONNECTIONS:
            raise ValueError(f"--max-connections must be more than {RESERVED_CONNECTIONS}")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One Kubernetes Deployment (API or worker)."""

    replicas: int
    hpa_min: int
    hpa_max: int
    cpu_request: float  # cores
    cpu_limit: float
    memory_request: float  # bytes
    memory_limit: float
    pool_max: int  # PostgreSQL pool per pod
    concurrency: int | None = None  # runs at once per worker pod
    peak_cores: float = 0.0  # predicted CPU of the whole Deployment at peak


@dataclass(frozen=True, slots=True)
class Database:
    cpu: float  # cores
    memory: float  # bytes
    storage: float  # bytes, at steady state with retention, plus headroom
    growth_per_month: float  # bytes
    max_connections: int
    peak_cores: float


@dataclass(frozen=True, slots=True)
class Redis:
    memory: float  # bytes
    max_connections: int  # per process pool (GARRISON_REDIS_MAX_CONNECTIONS)
    live_streams: float


@dataclass(frozen=True, slots=True)
class Traffic:
    peak_runs_per_second: float
    average_runs_per_second: float
    runs_per_day: float
    runs_in_flight: float
    open_streams: float
    bytes_per_run: float  # database bytes
    egress_per_month: float  # HTTP response bytes
    ingress_per_month: float


@dataclass(frozen=True, slots=True)
class Plan:
    workload: Workload
    traffic: Traffic
    api: Deployment
    worker: Deployment
    database: Database
    redis: Redis
    profile_source: str
    assumptions: list[str] = field(default_factory=list)


def _cpu(cost: RequestCost, side: str, combined: bool) -> float:
    if combined:  # one process did everything: charge the whole of it to either side
        return cost.api_cpu_seconds + cost.worker_cpu_seconds
    return cost.api_cpu_seconds if side == "api" else cost.worker_cpu_seconds


def _replicas_with_idle(busy: float, idle_per_pod: float, target_cpu: float) -> int:
    """Smallest r with busy + r * idle ≤ r * target (each pod also idles)."""
    per_pod = target_cpu * CORES_PER_PROCESS - idle_per_pod
    if per_pod <= 0:
        raise ValueError("the profile's idle CPU per process exceeds --target-cpu")
    return max(1, math.ceil(busy / per_pod - 1e-9))


def make_plan(profile: Profile, workload: Workload, profile_source: str) -> Plan:
    workload.validate()
    w = workload
    peak = model.peak_arrival_rate(
        w.daily_active_users, w.peak_concurrency, w.requests_per_user, w.session_minutes * 60
    )
    average = model.average_arrival_rate(w.daily_active_users, w.requests_per_user)
    sessions_peak = w.daily_active_users * w.peak_concurrency / (w.session_minutes * 60)
    sessions_avg = average / w.requests_per_user
    payload = w.payload_mb * 1e6
    runs_per_day = w.daily_active_users * w.requests_per_user
    in_flight = model.littles_law(peak, w.avg_run_seconds)
    storage = profile.storage
    run_bytes = model.bytes_per_run(
        max(
            storage.db_bytes_per_run - storage.db_bytes_per_payload_byte * profile.payload_bytes, 0
        ),
        storage.db_bytes_per_payload_byte,
        payload,
    )
    stream = profile.requests["run.stream"]
    net_out = stream.bytes_out + storage.net_bytes_per_payload_byte * payload
    net_in = stream.bytes_in + payload

    def rates(run_rate: float, session_rate: float) -> dict[str, float]:
        return {"run.stream": run_rate, "thread.create": session_rate}

    def costs(side: str) -> dict[str, float]:
        return {k: _cpu(c, side, profile.combined) for k, c in profile.requests.items()}

    # API: CPU per request (measured) and memory per open stream (measured).
    api_idle = profile.idle_api_cores
    api_busy = model.cpu_cores(rates(peak, sessions_peak), costs("api"), 0.0)
    api_avg = model.cpu_cores(rates(average, sessions_avg), costs("api"), 0.0)
    api_n = max(2, _replicas_with_idle(api_busy, api_idle, w.target_cpu))
    api_min, api_max = model.hpa_bounds(
        api_n, _replicas_with_idle(api_avg, api_idle, w.target_cpu), w.headroom
    )
    api_cores = api_busy + api_idle * api_n
    streams_per_pod = in_flight / api_n

    # Workers: slots by queueing, replicas by slots and by CPU.
    slots = model.worker_slots(peak, w.avg_run_seconds, w.target_cpu)
    worker_idle = 0.0 if profile.combined else profile.idle_worker_cores
    worker_busy = model.cpu_cores(rates(peak, 0.0), costs("worker"), 0.0)
    worker_n = max(
        2,
        math.ceil(slots / w.worker_concurrency),
        _replicas_with_idle(worker_busy, worker_idle, w.target_cpu),
    )
    concurrency = math.ceil(slots / worker_n)
    avg_slots = model.worker_slots(average, w.avg_run_seconds, w.target_cpu)
    avg_busy = model.cpu_cores(rates(average, 0.0), costs("worker"), 0.0)
    worker_avg_n = max(
        math.ceil(avg_slots / concurrency), _replicas_with_idle(avg_busy, worker_idle, w.target_cpu)
    )
    worker_min, worker_max = model.hpa_bounds(worker_n, worker_avg_n, w.headroom)
    worker_cores = worker_busy + worker_idle * worker_n

    # PostgreSQL pools, sized at the autoscalers' maxima.
    # A connection per run in flight plus claims and leases. One size for every pod: the
    # Helm chart sets one GARRISON_DATABASE_POOL_MAX_SIZE (database.poolMaxSize).
    worker_pool_wanted = concurrency + 4
    if w.max_connections is not None:
        max_conn = w.max_connections
        api_pool, worker_pool = model.pool_sizes(
            max_conn,
            RESERVED_CONNECTIONS,
            api_max,
            worker_max,
            worker_pool_wanted,
            worker_pool_wanted,
        )
    else:
        api_pool = worker_pool = worker_pool_wanted
        needed = model.connections_needed(
            api_max, worker_max, api_pool, worker_pool, RESERVED_CONNECTIONS
        )
        max_conn = int(model.round_up(max(needed, 100), 50))

    memory = profile.memory
    api_mem = model.memory_bytes(
        memory.api_base_bytes, memory.per_sse_stream_bytes, streams_per_pod
    )
    if profile.combined:
        api_mem += memory.per_active_run_bytes * in_flight / api_n
    worker_base = memory.worker_base_bytes or memory.api_base_bytes
    worker_mem = model.memory_bytes(worker_base, memory.per_active_run_bytes, concurrency)

    def deployment(
        replicas: int,
        bounds: tuple[int, int],
        cores: float,
        mem: float,
        pool: int,
        conc: int | None,
    ) -> Deployment:
        request = min(
            CORES_PER_PROCESS, max(0.1, model.round_up(cores / replicas / w.target_cpu, _CPU_STEP))
        )
        mem_request = model.round_up(model.with_headroom(mem, w.headroom), _MEMORY_STEP)
        return Deployment(
            replicas=replicas,
            hpa_min=bounds[0],
            hpa_max=bounds[1],
            cpu_request=request,
            cpu_limit=model.round_up(model.with_headroom(request, w.headroom), _CPU_STEP),
            memory_request=mem_request,
            memory_limit=model.round_up(model.with_headroom(mem_request, w.headroom), _MEMORY_STEP),
            pool_max=pool,
            concurrency=conc,
            peak_cores=cores,
        )

    api = deployment(api_n, (api_min, api_max), api_cores, api_mem, api_pool, None)
    worker = deployment(
        worker_n, (worker_min, worker_max), worker_cores, worker_mem, worker_pool, concurrency
    )

    # PostgreSQL: measured CPU per request; memory by a stated rule of thumb.
    db_costs = {k: c.db_cpu_seconds for k, c in profile.requests.items()}
    db_cores = model.cpu_cores(rates(peak, sessions_peak), db_costs, 0.0)
    # Hot set: the latest run and state of every online user's thread, cached twice over
    # (shared buffers and the OS page cache).
    hot_set = 2 * w.daily_active_users * w.peak_concurrency * run_bytes
    db_memory = model.round_up(max(GIB, hot_set + max_conn * 10 * MIB), 512 * MIB)
    stored = model.stored_bytes(runs_per_day, run_bytes, w.retention_days)
    database = Database(
        cpu=max(0.5, model.round_up(db_cores / w.target_cpu, 0.25)),
        memory=db_memory,
        storage=model.round_up(model.with_headroom(stored, w.headroom), GIB),
        growth_per_month=model.monthly_growth(runs_per_day, run_bytes),
        max_connections=max_conn,
        peak_cores=db_cores,
    )

    live = model.littles_law(peak, w.stream_retention_seconds + w.avg_run_seconds)
    per_stream = model.bytes_per_run(
        max(
            (storage.redis_bytes_per_live_stream or 0.0)
            - (storage.redis_bytes_per_payload_byte or 0.0) * profile.payload_bytes,
            0.0,
        ),
        storage.redis_bytes_per_payload_byte or 0.0,
        payload,
    )
    redis_memory = model.round_up(
        model.with_headroom(64 * MIB + live * per_stream, w.headroom), 64 * MIB
    )
    redis = Redis(
        memory=redis_memory,
        max_connections=max(32, 2 * concurrency),
        live_streams=live,
    )

    month = runs_per_day * model.DAYS_PER_MONTH
    traffic = Traffic(
        peak_runs_per_second=peak,
        average_runs_per_second=average,
        runs_per_day=runs_per_day,
        runs_in_flight=in_flight,
        open_streams=in_flight,
        bytes_per_run=run_bytes,
        egress_per_month=month * net_out,
        ingress_per_month=month * net_in,
    )
    return Plan(
        workload=w,
        traffic=traffic,
        api=api,
        worker=worker,
        database=database,
        redis=redis,
        profile_source=profile_source,
        assumptions=_assumptions(profile, w, per_stream),
    )


def _assumptions(profile: Profile, w: Workload, redis_per_stream: float) -> list[str]:
    machine = profile.machine.get("name") or profile.machine.get("cpu_model", "unknown machine")
    notes = [
        f"Costs per request measured {profile.measured_at[:10]} on {machine} "
        f"({profile.topology} topology, graph {profile.graph!r}); CPU scales with your graph's "
        "own work, which an offline calibration graph does not do: profile your graph.",
        f"Peak: {w.peak_concurrency:.0%} of daily users online, each issuing "
        f"{w.requests_per_user:g} streamed runs over a {w.session_minutes:g}-minute session; "
        "one new thread per session.",
        f"Worker slots = peak runs/s x {w.avg_run_seconds:g} s / {w.target_cpu:g} (Little's "
        "law plus spare slots); open SSE streams = peak runs/s x run seconds.",
        "One Garrison process per pod uses at most ~1 core; pods are sized so that peak CPU "
        f"is {w.target_cpu:.0%} of the request; limits and HPA max add {w.headroom:.0%} headroom.",
        f"PostgreSQL: one pool size for every pod (worker concurrency + 4), counted at HPA max, "
        f"plus {RESERVED_CONNECTIONS} connections reserved for the server and operators.",
        "PostgreSQL memory is a rule of thumb, not a measurement: twice one run's bytes per "
        "online user (their thread's latest state) plus 10 MiB per connection, at least 1 GiB.",
        f"Storage = runs/day x bytes/run x {w.retention_days:g} retention days (+ headroom); "
        "bytes/run grow linearly with the payload (measured slope).",
    ]
    if profile.combined:
        notes.append(
            "The profile ran API and worker in one process: its whole CPU is charged to both "
            "the API and the workers (conservative). Profile `--topology split` to separate them."
        )
    if profile.topology == "embedded":
        notes.append(
            "The profile ran on SQLite: PostgreSQL CPU is the 0.5-core floor, not a measurement."
        )
    if not redis_per_stream:
        notes.append("The profile has no Redis measurement: Redis memory is the 64 MiB floor.")
    return notes
