"""In-process baseline: the benchmark graphs called directly with `graph.ainvoke`, no
HTTP and no queue. Runs in its own process and prints one JSON `PhaseResult`.

Storage is LangGraph's stock `AsyncSqliteSaver` on a fresh SQLite file
(`aiosqlite.connect(path)`, `saver.setup()`), one new thread id per run, like a server
run on a new thread. `--checkpointer none` compiles the graph without one, which is what
the server does for stateless runs (`POST /runs/wait`).

`saver.setup()` turns on WAL but leaves SQLite's default `synchronous=FULL` (an fsync per
commit). Garrison runs WAL with `synchronous=NORMAL`; `--synchronous normal` (the
default here) matches it, so the comparison measures the server, not the fsync policy.

`--checkpointer postgres` uses LangGraph's official `AsyncPostgresSaver` the documented way,
`from_conn_string(url)` + `setup()`, on a fresh database created on the `--database-url`
server and dropped afterwards. That saver is one connection behind an asyncio lock (it holds
the lock even on a pool), so at high concurrency its checkpoint writes queue up in-process;
that is what a user of the library gets. The CPU of the database's backends is metered on
the side, like the server's.
"""

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from garrison.planning.procstat import Services
from garrison_bench.driver import Operation, Sample, measure_closed_loop
from garrison_bench.eventloop import run_async
from garrison_bench.meter import Meter
from garrison_bench.projectgraphs import load_graphs
from garrison_bench.stats import PhaseResult, baseline_name
from garrison_bench.topology import DEFAULT_POSTGRES_URL, fresh_database

GRAPH_INPUT: dict[str, Any] = {"count": 0}


def invoke(graph: Any, expected: int, *, with_thread: bool) -> Operation:
    async def once() -> Sample:
        start = time.perf_counter()
        config = {"configurable": {"thread_id": str(uuid.uuid4())}} if with_thread else None
        values = await graph.ainvoke(GRAPH_INPUT, config)
        if not isinstance(values, dict) or values.get("count") != expected:
            raise ValueError(f"unexpected final state: {values!r}")
        return {"latency": time.perf_counter() - start}

    return once


async def run_baseline(args: argparse.Namespace, database_url: str | None) -> PhaseResult:
    """`database_url`: the fresh PostgreSQL database for `--checkpointer postgres`."""
    graphs, expected = load_graphs()
    graph = graphs[args.graph]
    name = baseline_name(args.graph, args.checkpointer, args.synchronous)
    database = database_url.rsplit("/", 1)[1] if database_url else None
    common: dict[str, Any] = {
        "name": name,
        "kind": "baseline",
        "runs": args.runs,
        "duration": args.duration,
        "warmup": args.warmup,
        "meter": Meter(None, Services(postgres_database=database)),
    }

    async def measure(wired: Any) -> PhaseResult:
        operation = invoke(wired, expected[args.graph], with_thread=args.checkpointer != "none")
        result = await measure_closed_loop([operation] * args.concurrency, **common)
        result.extra["checkpointer"] = args.checkpointer
        return result

    if args.checkpointer == "none":
        return await measure(graph)
    if args.checkpointer == "postgres":
        assert database_url is not None
        async with AsyncPostgresSaver.from_conn_string(database_url) as postgres:
            await postgres.setup()
            return await measure(graph.copy(update={"checkpointer": postgres}))
    with tempfile.TemporaryDirectory(prefix="garrison-baseline-", dir=args.data_dir) as tmp:
        conn = await aiosqlite.connect(str(Path(tmp) / "baseline.sqlite"))
        try:
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            if args.synchronous == "normal":
                await conn.execute("PRAGMA synchronous=NORMAL")
            # The same wiring the server uses for a compiled graph: a copy with our saver.
            result = await measure(graph.copy(update={"checkpointer": saver}))
        finally:
            await conn.close()
    result.extra["synchronous"] = args.synchronous
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--graph", choices=("one_node", "five_node"), required=True)
    parser.add_argument("--checkpointer", choices=("sqlite", "postgres", "none"), default="sqlite")
    parser.add_argument(
        "--synchronous", choices=("normal", "full"), default="normal", help="SQLite only"
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_POSTGRES_URL,
        help="PostgreSQL server on which --checkpointer postgres creates its fresh database",
    )
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--duration", type=float, default=None, help="seconds; overrides --runs")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--data-dir", default=None, help="where the fresh SQLite file goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(json.dumps(run_baseline_sync(args).to_json()))


def run_baseline_sync(args: argparse.Namespace) -> PhaseResult:
    if args.checkpointer != "postgres":
        return run_async(run_baseline(args, None))
    with fresh_database(args.database_url) as database_url:
        return run_async(run_baseline(args, database_url))


if __name__ == "__main__":
    main()
