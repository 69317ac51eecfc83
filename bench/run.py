"""Garrison benchmark entry point.

    .venv/bin/python bench/run.py [--topology embedded,postgres,split] [--scenarios a,b]
                                  [--concurrency 1,32] [--runs N] [--duration S]
                                  [--warmup N] [--json out.json]

For each topology, starts a fresh deployment (temp data dir, free ports, a fresh PostgreSQL
database and Redis key prefix where it uses them), runs the in-process baselines and the
HTTP scenarios one subprocess each, stops it; then prints a table and optionally writes
JSON. See bench/README.md for what each number means.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

# `python bench/run.py` puts bench/ on sys.path, which is where garrison_bench lives.
from garrison_bench.loadgen import SCENARIOS
from garrison_bench.machine import load_average, machine_info
from garrison_bench.report import compare, comparisons_json, render
from garrison_bench.suite import Options, results_json, run_suite
from garrison_bench.topology import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    TOPOLOGIES,
    service_versions,
)


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark Garrison against in-process LangGraph.")
    parser.add_argument(
        "--topology",
        type=_csv,
        default=["embedded"],
        help=f"comma-separated deployments to measure, in order: {','.join(TOPOLOGIES)}"
        " (default embedded)",
    )
    parser.add_argument(
        "--scenarios",
        type=_csv,
        default=list(SCENARIOS),
        help=f"comma-separated, default all: {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(v) for v in _csv(s)],
        default=[1, 32],
        help="comma-separated concurrency levels (default 1,32)",
    )
    parser.add_argument(
        "--runs", type=int, default=1000, help="measured runs per phase (default 1000)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="measure each closed-loop phase for this many seconds instead of --runs "
        "(the background scenarios always use --runs)",
    )
    parser.add_argument(
        "--warmup", type=int, default=50, help="warm-up runs per phase (at least 2 x concurrency)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write all numbers here")
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-process baseline")
    parser.add_argument(
        "--server-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server, e.g. GARRISON_WORKER_CONCURRENCY=32",
    )
    parser.add_argument(
        "--group-size",
        type=int,
        default=8,
        help="load-generator coroutines sharing one httpx client (default 8)",
    )
    parser.add_argument(
        "--profile-server",
        type=Path,
        default=None,
        metavar="OUT.prof",
        help="run the server under cProfile and write its stats here (slows the server)",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the server's data dir")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="PostgreSQL server (a role that may create databases) for the postgres and split"
        " topologies and their baselines, each on a fresh database"
        f" (default {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="Redis for the split topology, under a fresh key prefix"
        f" (default {DEFAULT_REDIS_URL})",
    )
    return parser.parse_args(argv)


def _finite(value: Any) -> Any:
    """Strict JSON has no NaN: missing numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        # Piped or redirected: rich would assume 80 columns and squeeze the table.
        console = Console(width=180)
    options = Options(
        topologies=args.topology,
        scenarios=args.scenarios,
        concurrencies=args.concurrency,
        runs=args.runs,
        duration=args.duration,
        warmup=args.warmup,
        baseline=not args.no_baseline,
        server_env=dict(args.server_env),
        keep_data=args.keep_data,
        group_size=args.group_size,
        profile_to=args.profile_server.resolve() if args.profile_server else None,
        postgres_url=args.postgres_url,
        redis_url=args.redis_url,
    )
    machine = machine_info()
    if set(options.topologies) - {"embedded"}:
        machine["services"] = service_versions(options.postgres_url, options.redis_url)
    started = time.perf_counter()

    def progress(message: str) -> None:
        console.print(
            f"{time.perf_counter() - started:6.1f}s  {message}", style="dim", markup=False
        )

    suite = run_suite(options, progress)
    machine["load_average_at_end"] = load_average()
    machine["suite_seconds"] = round(time.perf_counter() - started, 1)
    comparisons = compare(suite.results)
    console.print(
        f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"langgraph {machine['packages']['langgraph']}, garrison {machine['packages']['garrison']};"
        f" load average {machine['load_average_at_start']} -> {machine['load_average_at_end']}"
    )
    render(suite.results, comparisons, console)
    for failure in suite.failures:
        console.print("phase failed", style="red", end=" ")
        console.print(failure, soft_wrap=True, markup=False)
    if args.json:
        document = results_json(machine, options, suite, comparisons_json(comparisons))
        args.json.write_text(json.dumps(_finite(document), indent=2) + "\n")
        console.print(f"wrote {args.json}")
    return 1 if suite.failures else 0


if __name__ == "__main__":
    sys.exit(main())
