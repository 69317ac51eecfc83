"""Closed-loop driver: one coroutine per operation given (the concurrency), each running
its operation again as soon as the previous one returns.

An operation returns its timings in seconds (`{"latency": ..., "ttfe": ...}`); the
"latency" key is the scenario's main number. Exceptions count as errors, not samples.
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from garrison_bench.meter import Meter, Usage
from garrison_bench.stats import Latency, PhaseResult

Sample = dict[str, float]
Operation = Callable[[], Awaitable[Sample]]

_MAX_ERROR_SAMPLES = 5


@dataclass(slots=True)
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0


async def drive(
    operations: Sequence[Operation], *, runs: int | None, duration: float | None
) -> Outcome:
    """Run until `runs` operations were started, or until `duration` seconds passed.
    Operations may share state (one HTTP client per group of workers, say)."""
    outcome = Outcome()
    started = 0
    deadline = time.perf_counter() + duration if duration else math.inf

    async def loop(operation: Operation) -> None:
        nonlocal started
        while (runs is None or started < runs) and time.perf_counter() < deadline:
            started += 1  # claimed before awaiting: the event loop makes this race-free
            try:
                outcome.samples.append(await operation())
            except Exception as exc:  # measure on: a failed run is reported, not fatal
                outcome.errors.append(f"{type(exc).__name__}: {exc}"[:300])

    begin = time.perf_counter()
    await asyncio.gather(*(loop(operation) for operation in operations))
    outcome.wall = time.perf_counter() - begin
    return outcome


def warmup_runs(requested: int, concurrency: int) -> int:
    # Every worker should do a couple of runs, so each keep-alive connection is open and
    # every lazily initialised path on both sides has been exercised before measuring.
    return max(requested, 2 * concurrency)


async def measure_closed_loop(
    operations: Sequence[Operation],
    *,
    name: str,
    kind: str,
    runs: int,
    duration: float | None,
    warmup: int,
    meter: Meter,
) -> PhaseResult:
    concurrency = len(operations)
    await drive(operations, runs=warmup_runs(warmup, concurrency), duration=None)
    before = meter.snapshot()
    outcome = await drive(operations, runs=None if duration else runs, duration=duration)
    usage = meter.between(before, meter.snapshot())
    return summarize(name, kind, concurrency, outcome, usage)


def summarize(
    name: str, kind: str, concurrency: int, outcome: Outcome, usage: Usage
) -> PhaseResult:
    done = len(outcome.samples)
    per_run = 1000.0 / done if done else math.nan
    extra_keys = sorted({k for s in outcome.samples for k in s} - {"latency"})
    return PhaseResult(
        name=name,
        kind=kind,
        concurrency=concurrency,
        runs=done,
        errors=len(outcome.errors),
        wall_seconds=outcome.wall,
        throughput=done / outcome.wall if outcome.wall > 0 else math.nan,
        latency=Latency.of([s["latency"] for s in outcome.samples]),
        cpu_ms_per_run=usage.measured_cpu * per_run,
        client_cpu_ms_per_run=usage.client_cpu * per_run,
        services_cpu_ms_per_run=usage.services_cpu * per_run,
        other_cores=usage.other_cores,
        extra_latency={
            k: Latency.of([s[k] for s in outcome.samples if k in s]) for k in extra_keys
        },
        error_samples=outcome.errors[:_MAX_ERROR_SAMPLES],
    )
