"""HTTP load generator: one scenario at one concurrency against a running Garrison.

Runs in its own process (`python -m garrison_bench.loadgen ...`) and prints one JSON
`PhaseResult` on stdout. It reads the server's CPU from /proc around the measured phase
(every process of the deployment: `--server-pid 1,2,3`, plus PostgreSQL backends and Redis
when named), so it must run on the same machine as the server.
"""

import argparse
import contextlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

import httpx

from garrison.planning.procstat import Services
from garrison_bench import background
from garrison_bench.driver import Operation, Sample, measure_closed_loop
from garrison_bench.eventloop import run_async
from garrison_bench.meter import Meter
from garrison_bench.stats import PhaseResult

GRAPH_INPUT: dict[str, Any] = {"count": 0}
EXPECTED_COUNT = {"one_node": 1, "five_node": 5}


def make_client(url: str, pool_size: int) -> httpx.AsyncClient:
    # The pool is sized to the coroutines sharing the client: each keeps its own keep-alive
    # connection, so no measured run pays for a TCP handshake or waits for a connection.
    limits = httpx.Limits(
        max_connections=pool_size,
        max_keepalive_connections=pool_size,
        keepalive_expiry=120.0,
    )
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(120.0))


def group_clients(
    stack: contextlib.AsyncExitStack, url: str, concurrency: int, group_size: int
) -> list[httpx.AsyncClient]:
    """One client per worker i: workers are split into groups of `group_size` that share a
    client. httpx's pool does work proportional to its connections on every request, so
    one big shared pool costs the load generator CPU that small pools do not (measured:
    about 3 vs 2 ms of client CPU per thread_wait run at concurrency 32)."""
    clients: list[httpx.AsyncClient] = []
    for first in range(0, concurrency, group_size):
        size = min(group_size, concurrency - first)
        client = make_client(url, size)
        stack.push_async_callback(client.aclose)
        clients += [client] * size
    return clients


def check_count(values: Any, graph: str) -> None:
    """A run that "succeeds" without running the graph must not count as a fast run."""
    if not isinstance(values, dict) or values.get("count") != EXPECTED_COUNT[graph]:
        raise ValueError(f"unexpected final state from {graph}: {str(values)[:200]}")


async def new_thread(client: httpx.AsyncClient) -> str:
    response = await client.post("/threads", json={})
    response.raise_for_status()
    return str(response.json()["thread_id"])


def run_body(graph: str) -> dict[str, Any]:
    return {"assistant_id": graph, "input": GRAPH_INPUT}


# Scenarios ------------------------------------------------------------------------------
def thread_wait(client: httpx.AsyncClient, graph: str) -> Operation:
    """New thread + `runs/wait`: the latency is both requests."""

    async def once() -> Sample:
        start = time.perf_counter()
        thread_id = await new_thread(client)
        response = await client.post(f"/threads/{thread_id}/runs/wait", json=run_body(graph))
        response.raise_for_status()
        check_count(response.json(), graph)
        return {"latency": time.perf_counter() - start}

    return once


def stateless_wait(client: httpx.AsyncClient, graph: str) -> Operation:
    """`POST /runs/wait`: a temporary thread, no checkpointer, deleted afterwards."""

    async def once() -> Sample:
        start = time.perf_counter()
        response = await client.post("/runs/wait", json=run_body(graph))
        response.raise_for_status()
        check_count(response.json(), graph)
        return {"latency": time.perf_counter() - start}

    return once


def stream_ttfe(client: httpx.AsyncClient, graph: str) -> Operation:
    """New thread + `runs/stream` read to the end. "ttfe" counts from sending the stream
    request to the first complete SSE event (which must be `metadata`); "latency" is the
    whole run including the thread creation, like the wait scenarios."""
    body = {**run_body(graph), "stream_mode": ["values"]}

    async def once() -> Sample:
        start = time.perf_counter()
        thread_id = await new_thread(client)
        sent = time.perf_counter()
        ttfe = math.nan
        events: list[str] = []
        event: str | None = None
        data = ""
        last_values: Any = None
        async with client.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as resp:
            resp.raise_for_status()
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                elif not line and event is not None:  # a blank line ends the event
                    if not events:
                        ttfe = time.perf_counter() - sent
                    events.append(event)
                    if event == "values":
                        last_values = json.loads(data)
                    event, data = None, ""
        if not events or events[0] != "metadata":
            raise ValueError(f"first SSE event was {events[:1]}, expected metadata")
        check_count(last_values, graph)
        return {"latency": time.perf_counter() - start, "ttfe": ttfe}

    return once


ClosedLoopScenario = Callable[[httpx.AsyncClient, str], Operation]

CLOSED_LOOP: dict[str, tuple[ClosedLoopScenario, str]] = {
    "thread_wait_1": (thread_wait, "one_node"),
    "thread_wait_5": (thread_wait, "five_node"),
    "stateless_wait": (stateless_wait, "one_node"),
    "stream_ttfe": (stream_ttfe, "one_node"),
}
SCENARIOS: tuple[str, ...] = (*CLOSED_LOOP, "background_throughput", "background_drain")


async def run_scenario(args: argparse.Namespace) -> PhaseResult:
    meter = Meter(args.server_pid, Services(args.postgres_db, args.redis_pid))
    async with contextlib.AsyncExitStack() as stack:
        clients = group_clients(stack, args.url, args.concurrency, args.group_size)
        if args.scenario == "background_throughput":
            return await background.measure(
                [create_background_run(client) for client in clients],
                poll=clients[0],
                runs=args.runs,
                warmup=args.warmup,
                meter=meter,
            )
        if args.scenario == "background_drain":
            due = background.DueTime()
            return await background.measure_drain(
                [create_background_run(client, due) for client in clients],
                due=due,
                poll=clients[0],
                runs=args.runs,
                warmup=args.warmup,
                meter=meter,
            )
        factory, graph = CLOSED_LOOP[args.scenario]
        return await measure_closed_loop(
            [factory(client, graph) for client in clients],
            name=args.scenario,
            kind="server",
            runs=args.runs,
            duration=args.duration,
            warmup=args.warmup,
            meter=meter,
        )


def create_background_run(
    client: httpx.AsyncClient, due: background.DueTime | None = None
) -> background.CreateRun:
    """New thread + `POST /threads/{id}/runs` on `one_node`, due at once or at `due`;
    returns (thread, run) ids."""

    async def create() -> tuple[str, str]:
        thread_id = await new_thread(client)
        body = run_body("one_node")
        if due is not None and due.epoch:
            body["after_seconds"] = due.after_seconds()
        response = await client.post(f"/threads/{thread_id}/runs", json=body)
        response.raise_for_status()
        return thread_id, str(response.json()["run_id"])

    return create


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument(
        "--server-pid",
        type=lambda text: [int(pid) for pid in text.split(",")],
        required=True,
        help="comma-separated pids whose process trees are the server (API and workers)",
    )
    parser.add_argument(
        "--postgres-db", default=None, help="meter the PostgreSQL backends of this database"
    )
    parser.add_argument("--redis-pid", type=int, default=None, help="meter this Redis server")
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--duration", type=float, default=None, help="seconds; overrides --runs")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--group-size", type=int, default=8, help="worker coroutines sharing one HTTP client"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run_async(run_scenario(args))
    print(json.dumps(result.to_json()))


if __name__ == "__main__":
    main()
