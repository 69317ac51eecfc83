"""How many concurrent SSE streams one Garrison API process holds.

    .venv/bin/python bench/sse_capacity.py [--topology split] [--streams 10000]
                                           [--heartbeat-seconds 5] [--json out.json]

Deploys the topology (default split: one `serve --no-worker` + one `worker` on PostgreSQL +
Redis), opens `--streams` SSE streams of waiting runs against the API process, holds them
for two heartbeat intervals and prints what it cost. See garrison_bench/sse_capacity.py.
"""

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from garrison_bench.eventloop import run_async
from garrison_bench.projectgraphs import CONFIG_FILE
from garrison_bench.sse_capacity import CapacityResult, measure
from garrison_bench.topology import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, TOPOLOGIES, deploy


def raise_open_files_limit(needed: int) -> int:
    """Lift the soft limit on open files to the hard one (the servers started from here
    inherit it); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topology", choices=TOPOLOGIES, default="split")
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--heartbeat-seconds", type=float, default=5.0)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def render(result: CapacityResult, topology: str, console: Console) -> None:
    table = Table(title=f"SSE capacity of one API process ({topology} topology)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("streams requested", f"{result.requested}"),
        ("streams open", f"{result.opened}"),
        ("failed to open", f"{result.failed_to_open}"),
        ("closed before the end", f"{result.closed_early}"),
        ("got a heartbeat in the window", f"{result.with_heartbeat}"),
        ("heartbeats received in the window", f"{result.heartbeats}"),
        ("window (s)", f"{result.window_seconds:.1f}"),
        ("creating the waiting runs (s)", f"{result.create_seconds:.1f}"),
        ("opening the streams (s)", f"{result.open_seconds:.1f}"),
        ("API RSS before (MiB)", f"{result.rss_before_mib:.0f}"),
        ("API RSS with the streams open (MiB)", f"{result.rss_open_mib:.0f}"),
        ("API memory per stream (KiB)", f"{result.kib_per_stream:.1f}"),
        ("API CPU holding them (cores)", f"{result.api_cores_holding:.2f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for error in result.errors[:5]:
        console.print(f"[red]error[/red] {error}", soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=120)
    limit = raise_open_files_limit(args.streams + 1024)
    if limit < args.streams + 1024:
        console.print(f"[red]open-files limit {limit} is too low for {args.streams} streams[/red]")
        return 1
    env = {"GARRISON_STREAM_HEARTBEAT_SECONDS": str(args.heartbeat_seconds)}
    with (
        tempfile.TemporaryDirectory(prefix="garrison-sse-") as tmp,
        deploy(
            args.topology,
            CONFIG_FILE,
            Path(tmp),
            env=env,
            postgres_url=args.postgres_url,
            redis_url=args.redis_url,
        ) as deployment,
    ):
        console.print(f"{args.topology}: API pid {deployment.api.pid} on {deployment.url}")
        result = run_async(
            measure(deployment.url, deployment.api.pid, args.streams, args.heartbeat_seconds)
        )
    render(result, args.topology, console)
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    complete = result.opened == args.streams and result.with_heartbeat == args.streams
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
