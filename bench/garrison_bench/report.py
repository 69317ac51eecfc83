"""Server-vs-baseline comparisons and the printed table. Nothing here asserts a target:
the targets are printed next to the measured numbers for a human to judge."""

import math
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from garrison_bench.stats import PhaseResult
from garrison_bench.suite import SCALE_OUT_SCENARIOS, STOCK_BASELINE, baseline_for


@dataclass(frozen=True, slots=True)
class Targets:
    """The goals the suite exists to track per topology (see README): compared, never
    asserted. None: no goal set, the measured value is printed alone."""

    p50_delta_ms: float | None  # thread_wait_1 @ 1: server p50 - baseline p50, at most
    throughput_ratio: float | None  # thread_wait_1 @ 32: server / baseline runs/s, at least
    scale_out_ratio: float | None = None  # background runs/s, 2 workers / 1 worker, above


TARGETS: dict[str, Targets] = {
    "embedded": Targets(p50_delta_ms=3.0, throughput_ratio=0.60),
    "postgres": Targets(p50_delta_ms=None, throughput_ratio=None),
    "split": Targets(p50_delta_ms=5.0, throughput_ratio=0.50, scale_out_ratio=1.0),
}


@dataclass(frozen=True, slots=True)
class Comparison:
    scenario: str
    topology: str
    workers: int | None
    concurrency: int
    baseline: str
    p50_delta_ms: float
    p99_delta_ms: float
    throughput_ratio: float
    cpu_ratio: float  # (own CPU + PostgreSQL/Redis CPU) per run, server / baseline


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


def _total_cpu(result: PhaseResult) -> float:
    services = result.services_cpu_ms_per_run
    return result.cpu_ms_per_run + (0.0 if math.isnan(services) else services)


def _key(result: PhaseResult) -> tuple[str, str, int | None, int]:
    return result.name, result.topology, result.workers, result.concurrency


def compare(results: list[PhaseResult]) -> list[Comparison]:
    # A baseline is keyed without its topology: postgres and split share one measurement.
    baselines = {(r.name, r.concurrency): r for r in results if r.kind == "baseline"}
    found = []
    for result in results:
        if result.kind != "server":
            continue
        spec = baseline_for(result.name, result.topology)
        base = baselines.get((spec.name, result.concurrency))
        if base is None:
            continue
        found.append(
            Comparison(
                scenario=result.name,
                topology=result.topology,
                workers=result.workers,
                concurrency=result.concurrency,
                baseline=base.name,
                p50_delta_ms=result.latency.p50 - base.latency.p50,
                p99_delta_ms=result.latency.p99 - base.latency.p99,
                throughput_ratio=_ratio(result.throughput, base.throughput),
                cpu_ratio=_ratio(_total_cpu(result), _total_cpu(base)),
            )
        )
    return found


def comparisons_json(comparisons: list[Comparison]) -> list[dict[str, Any]]:
    return [asdict(c) for c in comparisons]


def _num(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _notes(result: PhaseResult) -> str:
    parts = []
    if "ttfe" in result.extra_latency:
        ttfe = result.extra_latency["ttfe"]
        parts.append(f"time to first SSE event p50 {_num(ttfe.p50)} ms, p99 {_num(ttfe.p99)} ms")
    if "submit_to_done" in result.extra_latency:
        done = result.extra_latency["submit_to_done"]
        parts.append(
            f"p50/p99 are the create calls; submit->done p50 {_num(done.p50, 1)} ms,"
            f" p99 {_num(done.p99, 1)} ms; creates {_num(result.extra['create_runs_per_s'], 0)}/s"
        )
    if "due_spread_s" in result.extra:
        parts.append(
            f"p50/p99 are the create calls; {result.runs} runs queued"
            f" (creates {_num(result.extra['create_runs_per_s'], 0)}/s), then drained"
            f" in {_num(result.extra['server_drain_s'], 2)} s"
        )
    if result.error_samples:
        parts.append(f"{result.errors} errors, first: {result.error_samples[0]}")
    return "; ".join(parts)


def _baseline_label(name: str) -> str:
    return (
        name.replace(":no_checkpointer", " (no ckpt)")
        .replace(":stock", " (stock)")
        .replace(":postgres", " (postgres)")
    )


def label(result: PhaseResult) -> str:
    """`thread_wait_1 [split, 2 workers]`; a baseline's name says its storage instead."""
    if result.kind == "baseline":
        return _baseline_label(result.name)
    where = result.topology
    if result.workers is not None:
        where += f", {result.workers} worker{'s' if result.workers != 1 else ''}"
    return f"{result.name} [{where}]"


def _ordered(results: list[PhaseResult]) -> list[PhaseResult]:
    """Grouped by topology (in the order they ran), then concurrency, baselines first; the
    sort is stable, so a 2-worker row follows its 1-worker row."""
    topologies = list(dict.fromkeys(r.topology for r in results))
    return sorted(
        results,
        key=lambda r: (topologies.index(r.topology), r.concurrency, r.kind != "baseline"),
    )


def render(results: list[PhaseResult], comparisons: list[Comparison], console: Console) -> None:
    by_phase = {(c.scenario, c.topology, c.workers, c.concurrency): c for c in comparisons}
    table = Table(title="Garrison benchmark (latencies in ms)")
    for header in (
        "phase",
        "conc",
        "runs",
        "err",
        "p50",
        "p99",
        "runs/s",
        "CPU ms/run",
        "db CPU",
        "client CPU",
        "other cores",
        "Δp50 ms",
        "thr ratio",
        "CPU ratio",
    ):
        table.add_column(header, justify="left" if header == "phase" else "right", no_wrap=True)
    notes: list[str] = []
    previous = None
    for result in _ordered(results):
        if previous is not None and result.topology != previous:
            table.add_section()
        previous = result.topology
        comparison = by_phase.get(_key(result)) if result.kind == "server" else None
        table.add_row(
            Text(label(result)),  # plain text: "[split]" is not rich markup
            str(result.concurrency),
            str(result.runs),
            str(result.errors),
            _num(result.latency.p50),
            _num(result.latency.p99),
            _num(result.throughput, 0),
            _num(result.cpu_ms_per_run),
            _num(result.services_cpu_ms_per_run),
            _num(result.client_cpu_ms_per_run),
            _num(result.other_cores),
            _num(comparison.p50_delta_ms, signed=True) if comparison else "",
            _num(comparison.throughput_ratio) if comparison else "",
            _num(comparison.cpu_ratio) if comparison else "",
        )
        note = _notes(result)
        if note:
            notes.append(f"  {label(result)} @ {result.concurrency}: {note}")
    console.print(table)
    if notes:
        console.print("Notes:", *notes, sep="\n", soft_wrap=True, markup=False)
    _render_targets(results, console)


def _render_targets(results: list[PhaseResult], console: Console) -> None:
    console.print("Targets (informational, not asserted):")
    topologies = dict.fromkeys(r.topology for r in results if r.kind == "server")
    if not topologies:
        console.print("  not measured in this run")
    for topology in topologies:
        targets = TARGETS[topology]
        baselines = [baseline_for("thread_wait_1", topology)]
        if topology == "embedded":
            baselines.append(STOCK_BASELINE)
        for spec in baselines:
            how = {
                "sqlite": "same SQLite settings as the server",
                "postgres": "AsyncPostgresSaver",
            }[spec.checkpointer]
            if spec == STOCK_BASELINE:
                how = "stock saver, fsync per commit"
            console.print(f"  {topology} vs {_baseline_label(spec.name)}, {how}:", markup=False)
            _render_wait_targets(results, topology, spec.name, targets, console)
        if targets.scale_out_ratio is not None:
            _render_scale_out(results, topology, targets.scale_out_ratio, console)


def _goal(target: str | None) -> str:
    return f"   (target {target})" if target else "   (no target)"


def _render_wait_targets(
    results: list[PhaseResult], topology: str, baseline: str, targets: Targets, console: Console
) -> None:
    latency = _pair(results, topology, baseline, 1)
    throughput = _pair(results, topology, baseline, 32)
    if latency is not None:
        delta = latency[0].latency.p50 - latency[1].latency.p50
        goal = targets.p50_delta_ms
        console.print(
            f"    thread_wait_1 @ 1:  p50 - baseline p50 = {_num(delta, signed=True)} ms"
            + _goal(f"<= {goal:g} ms" if goal is not None else None)
        )
    if throughput is not None:
        ratio = _ratio(throughput[0].throughput, throughput[1].throughput)
        goal = targets.throughput_ratio
        console.print(
            f"    thread_wait_1 @ 32: runs/s / baseline runs/s = {_num(ratio)}"
            + _goal(f">= {goal:.2f}" if goal is not None else None)
        )
    if latency is None and throughput is None:
        console.print("    not measured in this run")


def _render_scale_out(
    results: list[PhaseResult], topology: str, target: float, console: Console
) -> None:
    measured = False
    for scenario in SCALE_OUT_SCENARIOS:
        runs = [r for r in results if r.name == scenario and r.topology == topology]
        by_workers = {(r.workers, r.concurrency): r for r in runs}
        pairs = [
            (concurrency, one, two)
            for (workers, concurrency), one in by_workers.items()
            if workers == 1 and (two := by_workers.get((2, concurrency))) is not None
        ]
        if not pairs:
            continue
        measured = True
        console.print(f"  {topology}, {scenario} with a second worker process:")
        for concurrency, one, two in pairs:
            console.print(
                f"    @ {concurrency}: runs/s 2 workers / 1 worker ="
                f" {_num(two.throughput, 0)} / {_num(one.throughput, 0)}"
                f" = {_num(_ratio(two.throughput, one.throughput))}" + _goal(f"> {target:g}")
            )
    if not measured:
        console.print(f"  {topology}, background runs with a second worker process:")
        console.print("    not measured in this run")


def _pair(
    results: list[PhaseResult], topology: str, baseline: str, concurrency: int
) -> tuple[PhaseResult, PhaseResult] | None:
    """(thread_wait_1 on `topology`, `baseline`) at `concurrency`, if both were measured."""
    server = base = None
    for result in results:
        if result.concurrency != concurrency:
            continue
        if result.kind == "server" and (result.name, result.topology) == (
            "thread_wait_1",
            topology,
        ):
            server = result
        elif result.kind == "baseline" and result.name == baseline:
            base = result
    return (server, base) if server is not None and base is not None else None
