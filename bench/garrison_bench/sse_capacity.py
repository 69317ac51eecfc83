"""How many concurrent SSE streams one API process holds, and what they cost.

N runs are created that stay pending (`after_seconds` far in the future, so no worker
starts them), then one `GET /threads/{t}/runs/{r}/stream` per run is opened and held. Each
open stream of a waiting run must keep receiving its `: heartbeat` comment. Reported:
time to open them all, the API process's memory before and with the streams open (RSS,
per stream), its CPU while merely holding them, and how many streams got a heartbeat in
a window of two heartbeat intervals (all of them, or the process does not hold N).

The client side is raw asyncio sockets (an HTTP/1.1 request, then reading SSE frames):
ten thousand httpx streams would cost the client more than the server.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from garrison.planning.procstat import process_tree_cpu_seconds, rss_mib

_CREATE_BATCH = 100  # runs per POST /runs/batch
_OPEN_AT_ONCE = 256  # connections opening concurrently (below the listen backlog)
_HEARTBEAT = b": heartbeat"


@dataclass
class Stream:
    """One held SSE connection and what arrived on it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    heartbeats: int = 0
    events: int = 0
    closed: bool = False


@dataclass
class CapacityResult:
    requested: int
    opened: int = 0
    failed_to_open: int = 0
    create_seconds: float = 0.0
    open_seconds: float = 0.0
    window_seconds: float = 0.0
    with_heartbeat: int = 0  # streams that got at least one heartbeat in the window
    heartbeats: int = 0
    closed_early: int = 0
    rss_before_mib: float = 0.0
    rss_open_mib: float = 0.0
    api_cpu_seconds_in_window: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def kib_per_stream(self) -> float:
        if not self.opened:
            return float("nan")
        return (self.rss_open_mib - self.rss_before_mib) * 1024 / self.opened

    @property
    def api_cores_holding(self) -> float:
        return self.api_cpu_seconds_in_window / self.window_seconds if self.window_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items() if k != "errors"},
            "kib_per_stream": self.kib_per_stream,
            "api_cores_holding": self.api_cores_holding,
            "errors": self.errors[:5],
        }


async def create_waiting_runs(url: str, count: int) -> list[tuple[str, str]]:
    """(thread_id, run_id) of `count` stateless runs that will not start for a day."""
    body = {"assistant_id": "one_node", "input": {"count": 0}, "after_seconds": 86_400}
    created: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def batch(size: int) -> None:
            response = await client.post("/runs/batch", json=[body] * size)
            response.raise_for_status()
            created.extend((r["thread_id"], r["run_id"]) for r in response.json())

        sizes = [min(_CREATE_BATCH, count - i) for i in range(0, count, _CREATE_BATCH)]
        for first in range(0, len(sizes), 8):
            await asyncio.gather(*(batch(size) for size in sizes[first : first + 8]))
    return created


async def open_stream(host: str, port: int, thread_id: str, run_id: str) -> Stream:
    reader, writer = await asyncio.open_connection(host, port)
    request = (
        f"GET /threads/{thread_id}/runs/{run_id}/stream HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status:
        writer.close()
        raise RuntimeError(f"stream answered {status.decode(errors='replace')}")
    return Stream(reader, writer)


async def follow(stream: Stream) -> None:
    """Count what arrives until the connection ends (chunked framing is ignored: a
    heartbeat comment is found by its bytes)."""
    try:
        while True:
            chunk = await stream.reader.read(4096)
            if not chunk:
                break
            stream.heartbeats += chunk.count(_HEARTBEAT)
            stream.events += chunk.count(b"\nevent: ") + chunk.startswith(b"event: ")
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        stream.closed = True


async def measure(url: str, api_pid: int, count: int, heartbeat_seconds: float) -> CapacityResult:
    result = CapacityResult(requested=count)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result.rss_before_mib = rss_mib(api_pid)

    started = time.perf_counter()
    runs = await create_waiting_runs(url, count)
    result.create_seconds = time.perf_counter() - started

    streams: list[Stream] = []
    followers: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(_OPEN_AT_ONCE)

    async def open_one(thread_id: str, run_id: str) -> None:
        async with gate:
            try:
                stream = await open_stream(host, port, thread_id, run_id)
            except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
                result.failed_to_open += 1
                result.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return
        streams.append(stream)
        followers.append(asyncio.create_task(follow(stream)))

    started = time.perf_counter()
    await asyncio.gather(*(open_one(t, r) for t, r in runs))
    result.open_seconds = time.perf_counter() - started
    result.opened = len(streams)

    # Hold them all for two heartbeat intervals; every stream must hear at least one.
    await asyncio.sleep(heartbeat_seconds)  # let the opening burst settle
    result.rss_open_mib = rss_mib(api_pid)
    for stream in streams:
        stream.heartbeats = 0
    cpu_before = process_tree_cpu_seconds(api_pid)
    window_started = time.perf_counter()
    await asyncio.sleep(2 * heartbeat_seconds + 1)
    result.window_seconds = time.perf_counter() - window_started
    result.api_cpu_seconds_in_window = process_tree_cpu_seconds(api_pid) - cpu_before
    result.with_heartbeat = sum(1 for s in streams if s.heartbeats > 0)
    result.heartbeats = sum(s.heartbeats for s in streams)
    result.closed_early = sum(1 for s in streams if s.closed)

    for stream in streams:
        stream.writer.close()
    for task in followers:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*followers, return_exceptions=True)
    return result
