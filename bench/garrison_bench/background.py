"""Background runs: how fast the deployment finishes runs nobody waits for.

`background_throughput` submits N background runs, then times how fast they all finish.
Phase 1 creates N runs (each on a new thread: `POST /threads` + `POST /threads/{id}/runs`)
as fast as `concurrency` clients allow, while the worker already executes them. Phase 2
polls `POST /threads/count {"status": "busy"}` until no thread is busy. The CPU window
spans both phases. Throughput uses the server's own end time of the last run (`updated_at`
of the finished run, read after the window closes), so the polling interval does not blur
the number:
    runs/s = N / (last run's end - first create sent)
Client and server share the machine's wall clock, so the two timestamps are comparable.

`background_drain` measures the worker tier alone: the same N runs are created with
`after_seconds` so that they all fall due at one instant after the last create returned,
and the clock starts then. Creating runs costs the API process and the load generator
CPU that adding a worker process cannot give back; on a small machine, where those share
the cores with the workers, only this phase shows what a second worker adds:
    runs/s = N / (last run's end - first run's due time)
A run's `created_at` is its due time (the server's clock, read when it was queued).
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import httpx

from garrison_bench.driver import Outcome, Sample, drive, summarize, warmup_runs
from garrison_bench.meter import Meter, Usage
from garrison_bench.stats import Latency, PhaseResult

CreateRun = Callable[[], Awaitable[tuple[str, str]]]

_POLL_SECONDS = 0.01
# The drain's due time leaves room to create every run at the warm-up's create rate (which
# was measured while runs executed too, so creating a backlog is faster) this many times
# over, plus the slack.
_SUBMIT_MARGIN = 1.5
_SUBMIT_SLACK_SECONDS = 1.0
_DRAIN_TIMEOUT_SECONDS = 600.0
_TERMINAL = frozenset({"success", "error", "timeout", "interrupted"})


@dataclass(frozen=True, slots=True)
class Submitted:
    thread_id: str
    run_id: str
    sent_epoch: float  # wall clock when the thread creation was sent


@dataclass(slots=True)
class DueTime:
    """When the runs being created fall due, as epoch seconds; 0 means at once."""

    epoch: float = 0.0

    def after_seconds(self) -> float:
        return max(0.0, self.epoch - time.time())


class Settled(NamedTuple):
    submitted: Submitted
    status: str
    due_epoch: float  # the run's created_at: when it could first be claimed
    end_epoch: float  # its updated_at once terminal: when it ended


async def busy_threads(client: httpx.AsyncClient) -> int:
    response = await client.post("/threads/count", json={"status": "busy"})
    response.raise_for_status()
    return int(response.json())


async def wait_until_idle(client: httpx.AsyncClient) -> None:
    # Every thread is marked busy in the same transaction that inserts its run, so
    # "none busy" after all creates returned means every run is terminal.
    deadline = time.perf_counter() + _DRAIN_TIMEOUT_SECONDS
    while await busy_threads(client):
        if time.perf_counter() > deadline:
            raise TimeoutError("background runs did not finish in time")
        await asyncio.sleep(_POLL_SECONDS)


async def submit(creators: Sequence[CreateRun], runs: int) -> tuple[list[Submitted], Outcome]:
    """Create `runs` runs, one creator per concurrent client; the outcome's samples are
    the create latencies."""
    submitted: list[Submitted] = []

    def timed(create: CreateRun) -> Callable[[], Awaitable[Sample]]:
        async def once() -> Sample:
            sent = time.time()
            start = time.perf_counter()
            thread_id, run_id = await create()
            submitted.append(Submitted(thread_id, run_id, sent))
            return {"latency": time.perf_counter() - start}

        return once

    outcome = await drive([timed(create) for create in creators], runs=runs, duration=None)
    return submitted, outcome


async def fetch_ends(
    client: httpx.AsyncClient, submitted: list[Submitted], concurrency: int
) -> list[Settled]:
    """Every run's final status with its server-side due and end times."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Submitted) -> Settled:
        async with gate:
            response = await client.get(f"/threads/{item.thread_id}/runs/{item.run_id}")
        response.raise_for_status()
        run = response.json()
        return Settled(
            item, str(run["status"]), _epoch(run["created_at"]), _epoch(run["updated_at"])
        )

    return list(await asyncio.gather(*(one(item) for item in submitted)))


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


async def measure(
    creators: Sequence[CreateRun],
    *,
    poll: httpx.AsyncClient,
    runs: int,
    warmup: int,
    meter: Meter,
) -> PhaseResult:
    """`background_throughput`: `creators` (one per concurrent client) create runs that are
    due at once; `poll` checks for idleness."""
    concurrency = len(creators)
    await submit(creators, warmup_runs(warmup, concurrency))
    await wait_until_idle(poll)

    before = meter.snapshot()
    start_epoch = time.time()
    start = time.perf_counter()
    submitted, created = await submit(creators, runs)
    await wait_until_idle(poll)
    observed_drain = time.perf_counter() - start
    usage = meter.between(before, meter.snapshot())

    # Outside the CPU window: the runs' final status and server-side end times.
    settled = await fetch_ends(poll, submitted, min(concurrency, 8))
    ok = [s for s in settled if s.status == "success"]
    server_wall = max((s.end_epoch for s in ok), default=math.nan) - start_epoch
    result = _result("background_throughput", concurrency, created, usage, settled, server_wall)
    result.extra_latency["submit_to_done"] = Latency.of(
        [s.end_epoch - s.submitted.sent_epoch for s in ok]
    )
    result.extra.update(observed_drain_s=observed_drain, server_drain_s=server_wall)
    return result


async def measure_drain(
    creators: Sequence[CreateRun],
    *,
    due: DueTime,
    poll: httpx.AsyncClient,
    runs: int,
    warmup: int,
    meter: Meter,
) -> PhaseResult:
    """`background_drain`: `creators` create runs due at `due` (which this sets); the CPU
    window opens when they fall due and closes when none is left."""
    concurrency = len(creators)
    warm_start = time.perf_counter()
    warm, _ = await submit(creators, warmup_runs(warmup, concurrency))
    create_rate = len(warm) / (time.perf_counter() - warm_start)
    await wait_until_idle(poll)

    due.epoch = time.time() + _SUBMIT_MARGIN * runs / create_rate + _SUBMIT_SLACK_SECONDS
    submitted, created = await submit(creators, runs)
    if time.time() >= due.epoch:
        created.errors.append("the runs fell due before the last one was created")
    await asyncio.sleep(due.after_seconds())
    before = meter.snapshot()
    await wait_until_idle(poll)
    usage = meter.between(before, meter.snapshot())
    due.epoch = 0.0

    settled = await fetch_ends(poll, submitted, min(concurrency, 8))
    ok = [s for s in settled if s.status == "success"]
    first_due = min((s.due_epoch for s in ok), default=math.nan)
    server_wall = max((s.end_epoch for s in ok), default=math.nan) - first_due
    result = _result("background_drain", concurrency, created, usage, settled, server_wall)
    result.extra.update(
        due_spread_s=max((s.due_epoch for s in ok), default=math.nan) - first_due,
        server_drain_s=server_wall,
    )
    return result


def _result(
    name: str,
    concurrency: int,
    created: Outcome,
    usage: Usage,
    settled: list[Settled],
    server_wall: float,
) -> PhaseResult:
    """The phase's numbers: latencies are the create calls', throughput and CPU per run
    count the runs that succeeded over `server_wall`."""
    ok = [s for s in settled if s.status == "success"]
    failed = [s for s in settled if s.status != "success"]
    create_phase = created.wall
    created.errors.extend(f"run {s.submitted.run_id} ended {s.status}" for s in failed)
    created.wall = server_wall
    result = summarize(name, "server", concurrency, created, usage)
    result.runs = len(ok)
    result.throughput = len(ok) / server_wall if server_wall > 0 else math.nan
    per_run = 1000.0 / len(ok) if ok else math.nan
    result.cpu_ms_per_run = usage.measured_cpu * per_run
    result.client_cpu_ms_per_run = usage.client_cpu * per_run
    result.services_cpu_ms_per_run = usage.services_cpu * per_run
    result.extra.update(
        create_runs_per_s=len(settled) / create_phase if create_phase > 0 else math.nan,
        create_phase_s=create_phase,
        not_terminal=sum(s.status not in _TERMINAL for s in failed),
    )
    return result
