"""`background_throughput`: submit N background runs, then time how fast they all finish.

Phase 1 creates N runs (each on a new thread: `POST /threads` + `POST /threads/{id}/runs`)
as fast as `concurrency` clients allow, while the worker already executes them. Phase 2
polls `POST /threads/count {"status": "busy"}` until no thread is busy. The CPU window
spans both phases.

Throughput uses the server's own end time of the last run (`updated_at` of the finished
run, read after the window closes), so the polling interval does not blur the number:
    runs/s = N / (last run's end - first create sent)
Client and server share the machine's wall clock, so the two timestamps are comparable.
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx

from garrison_bench.driver import Outcome, Sample, drive, summarize, warmup_runs
from garrison_bench.meter import Meter
from garrison_bench.stats import Latency, PhaseResult

CreateRun = Callable[[], Awaitable[tuple[str, str]]]

_POLL_SECONDS = 0.01
_DRAIN_TIMEOUT_SECONDS = 600.0
_TERMINAL = frozenset({"success", "error", "timeout", "interrupted"})


@dataclass(frozen=True, slots=True)
class Submitted:
    thread_id: str
    run_id: str
    sent_epoch: float  # wall clock when the thread creation was sent


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
) -> list[tuple[Submitted, str, float]]:
    """(submission, final status, server end time as epoch seconds) of every run."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Submitted) -> tuple[Submitted, str, float]:
        async with gate:
            response = await client.get(f"/threads/{item.thread_id}/runs/{item.run_id}")
        response.raise_for_status()
        run = response.json()
        return item, str(run["status"]), datetime.fromisoformat(run["updated_at"]).timestamp()

    return list(await asyncio.gather(*(one(item) for item in submitted)))


async def measure(
    creators: Sequence[CreateRun],
    *,
    poll: httpx.AsyncClient,
    runs: int,
    warmup: int,
    meter: Meter,
) -> PhaseResult:
    """`creators` (one per concurrent client) create runs; `poll` checks for idleness."""
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
    ends = await fetch_ends(poll, submitted, min(concurrency, 8))
    ok = [(item, end) for item, status, end in ends if status == "success"]
    failed = [(item, status) for item, status, _ in ends if status != "success"]
    last_end = max((end for _, end in ok), default=math.nan)
    server_wall = last_end - start_epoch

    create_phase = created.wall
    created.errors.extend(f"run {item.run_id} ended {status}" for item, status in failed)
    created.wall = server_wall
    result = summarize("background_throughput", "server", concurrency, created, usage)
    result.runs = len(ok)
    result.throughput = len(ok) / server_wall if server_wall > 0 else math.nan
    per_run = 1000.0 / len(ok) if ok else math.nan
    result.cpu_ms_per_run = usage.measured_cpu * per_run
    result.client_cpu_ms_per_run = usage.client_cpu * per_run
    result.services_cpu_ms_per_run = usage.services_cpu * per_run
    result.extra_latency["submit_to_done"] = Latency.of([end - item.sent_epoch for item, end in ok])
    result.extra.update(
        create_runs_per_s=len(submitted) / create_phase if create_phase > 0 else math.nan,
        create_phase_s=create_phase,
        observed_drain_s=observed_drain,
        server_drain_s=server_wall,
        not_terminal=sum(status not in _TERMINAL for _, status in failed),
    )
    return result
