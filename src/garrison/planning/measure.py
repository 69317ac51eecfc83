"""`garrison bench profile`: measure what each kind of request costs on this machine.

A fresh deployment of the chosen topology is started on loopback (`topology.deploy`), warmed
up, then driven through phases, each a fixed number of requests at a fixed concurrency:

| phase | requests | gives |
|---|---|---|
| idle | none, 3 s | CPU the processes burn with no load |
| thread.create | `POST /threads` | CPU, bytes per request |
| run.wait | `POST /threads/{t}/runs/wait` | CPU; database bytes per run and per checkpoint |
| run.stream | `POST /threads/{t}/runs/stream`, read to the end | CPU, bytes; Redis per log |
| state.get | `GET /threads/{t}/state` | CPU, bytes |
| payload | run.wait with a 32 KiB payload (calibration graph) | bytes per payload byte |
| active runs | a burst of background runs held in flight | worker RSS per active run |
| SSE | streams held open on runs that will not start | API RSS per open stream |

CPU is read from /proc (utime + stime of the process trees, the PostgreSQL backends of the
deployment's own database, and the Redis server), never derived from wall time, so it
holds on a busy machine.
"""

import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from garrison import __version__
from garrison.planning import _probes
from garrison.planning._load import LoadResult, drive, send, send_stream
from garrison.planning.procstat import Services, process_tree_cpu_seconds, rss_bytes
from garrison.planning.profile import Memory, Phase, Profile, Storage
from garrison.planning.topology import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    Deployment,
    deploy,
    redis_server_pid,
)

CALIBRATION_PROJECT = Path(__file__).resolve().parent / "calibration" / "langgraph.json"
CALIBRATION_GRAPH = "echo"
_BIG_PAYLOAD = 32 * 1024
_IDLE_SECONDS = 3.0
_HOLD_SECONDS = 2.0
_PENDING_FOR_A_DAY = 86_400


class ProfileRunError(RuntimeError):
    """The profile could not be measured (a phase failed); the message says why."""


@dataclass(frozen=True, slots=True)
class ProfileOptions:
    topology: str = "split"
    config: Path | None = None  # None: the calibration project
    graph: str = CALIBRATION_GRAPH
    graph_input: dict[str, Any] | None = None  # None: {"payload": <payload_bytes chars>}
    payload_bytes: int = 1024
    requests: int = 100  # per request phase
    concurrency: int = 4
    rate: float | None = None  # requests/s per phase (paced); None: closed loop
    active_runs: int = 16
    streams: int = 300
    warmup: int = 20
    postgres_url: str = DEFAULT_POSTGRES_URL
    redis_url: str = DEFAULT_REDIS_URL

    @property
    def calibrated(self) -> bool:
        return self.config is None

    def total_steps(self) -> int:
        """Units of progress: one per request plus one per held run/stream."""
        payload = self.requests // 2 if self.calibrated else 0
        return self.warmup + 4 * self.requests + payload + self.active_runs + self.streams


Progress = Callable[[str, int], None]  # (what is running, units done since last call)


@dataclass(slots=True)
class _Snapshot:
    wall: float
    api: float
    worker: float
    services: dict[int, float]


class _Meter:
    def __init__(self, deployment: Deployment, redis_pid: int | None) -> None:
        self.api_pid = deployment.api.pid
        self.worker_pids = [w.pid for w in deployment.workers]
        self.redis_pid = redis_pid
        self.services = Services(deployment.database_name, redis_pid)

    def snapshot(self) -> _Snapshot:
        return _Snapshot(
            wall=time.perf_counter(),
            api=process_tree_cpu_seconds(self.api_pid),
            worker=sum(process_tree_cpu_seconds(pid) for pid in self.worker_pids),
            services=self.services.cpu_by_pid(),
        )

    def phase(
        self,
        kind: str,
        before: _Snapshot,
        after: _Snapshot,
        load: LoadResult,
        concurrency: int,
        rate: float | None = None,
    ) -> Phase:
        redis_cpu = db_cpu = 0.0
        for pid, cpu in after.services.items():
            delta = cpu - before.services.get(pid, 0.0)
            if pid == self.redis_pid:
                redis_cpu += delta
            else:
                db_cpu += delta
        return Phase(
            kind=kind,
            requests=load.requests,
            concurrency=concurrency,
            wall_seconds=after.wall - before.wall,
            api_cpu_seconds=after.api - before.api,
            worker_cpu_seconds=after.worker - before.worker,
            db_cpu_seconds=db_cpu,
            redis_cpu_seconds=redis_cpu,
            bytes_in=load.bytes_in,
            bytes_out=load.bytes_out,
            errors=load.errors,
            rate=rate,
        )


def incompressible_text(size: int) -> str:
    """`size` characters of base64 from a seeded generator: a payload that neither TOAST
    nor any other compression shrinks, so storage per payload byte is not underestimated
    (real prompts compress a little; this errs on the safe side)."""
    raw = random.Random(size).randbytes(size)
    return base64.b64encode(raw).decode()[:size]


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, and a one-line name for it."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024 / 1024
    cpus = os.cpu_count() or 0
    return {
        "name": f"{cpus} x {model}, {memory_gib:.0f} GiB RAM, Linux {platform.release()}",
        "cpu_model": model,
        "cpus": cpus,
        "memory_gib": round(memory_gib, 1),
        "hostname": platform.node(),
        "python": platform.python_version(),
        "garrison": __version__,
    }


def _storage(deployment: Deployment) -> _probes.StorageReading:
    if deployment.database_url:
        return _probes.read_postgres(deployment.database_url)
    return _probes.read_sqlite(deployment.data_dir / "api" / "garrison.sqlite")


class _Profiler:
    def __init__(self, options: ProfileOptions, deployment: Deployment, progress: Progress):
        self.options = options
        self.deployment = deployment
        self.progress = progress
        self.redis_pid = redis_server_pid(deployment.redis_url) if deployment.redis_url else None
        self.meter = _Meter(deployment, self.redis_pid)
        self.phases: list[Phase] = []
        self.threads: list[str] = []

    def graph_input(self, payload_bytes: int | None = None) -> dict[str, Any]:
        if self.options.graph_input is not None:
            return self.options.graph_input
        size = self.options.payload_bytes if payload_bytes is None else payload_bytes
        return {"payload": incompressible_text(size)}

    async def measured(
        self,
        kind: str,
        count: int,
        operation: Callable[[int], Any],
        concurrency: int,
        rate: float | None = None,
    ) -> Phase:
        self.progress(kind, 0)
        before = self.meter.snapshot()
        rate = rate or self.options.rate
        load = await drive(count, concurrency, operation, lambda: self.progress(kind, 1), rate)
        after = self.meter.snapshot()
        if load.errors:
            raise ProfileRunError(
                f"{kind}: {load.errors} of {count} requests failed; first: {load.first_error}"
            )
        phase = self.meter.phase(kind, before, after, load, concurrency, rate)
        self.phases.append(phase)
        return phase

    async def run(self, client: httpx.AsyncClient) -> Profile:
        o = self.options
        graph = o.graph

        async def create_thread(_: int) -> tuple[int, int]:
            response, sent, received = await send(client, "POST", "/threads", json={})
            self.threads.append(response.json()["thread_id"])
            return sent, received

        async def run_wait(i: int, threads: list[str], body: dict[str, Any]) -> tuple[int, int]:
            path = f"/threads/{threads[i]}/runs/wait"
            response, sent, received = await send(client, "POST", path, json=body)
            if isinstance(response.json(), dict) and "__error__" in response.json():
                raise RuntimeError(f"run failed: {response.text[:200]}")
            return sent, received

        body = {"assistant_id": graph, "input": self.graph_input()}
        warm: list[str] = []
        for _ in range(o.warmup):
            response, _, _ = await send(client, "POST", "/threads", json={})
            warm.append(response.json()["thread_id"])
            await run_wait(len(warm) - 1, warm, body)
            self.progress("warm-up", 1)

        self.progress("idle", 0)
        before = self.meter.snapshot()
        await asyncio.sleep(_IDLE_SECONDS)
        idle = self.meter.phase("idle", before, self.meter.snapshot(), LoadResult(), 0)
        self.phases.append(idle)

        await self.measured("thread.create", o.requests, create_thread, o.concurrency)
        threads = list(self.threads)
        store_before = _storage(self.deployment)
        await self.measured(
            "run.wait", o.requests, lambda i: run_wait(i, threads, body), o.concurrency
        )
        store_after = _storage(self.deployment)

        async def run_stream(i: int) -> tuple[int, int]:
            payload = {**body, "stream_mode": ["values"]}
            return await send_stream(client, f"/threads/{threads[i]}/runs/stream", payload)

        await self.measured("run.stream", o.requests, run_stream, o.concurrency)
        redis_reading = self._redis()

        async def get_state(i: int) -> tuple[int, int]:
            _, sent, received = await send(client, "GET", f"/threads/{threads[i]}/state")
            return sent, received

        await self.measured("state.get", o.requests, get_state, o.concurrency)
        db_per_payload, net_per_payload, redis_per_payload = await self._payload_slope(
            client, run_wait, store_before, store_after
        )
        per_active_run = await self._active_run_memory(client)
        api_base = float(rss_bytes(self.meter.api_pid))
        per_stream = await self._stream_memory(client)

        worker_pids = self.meter.worker_pids
        worker_base = float(sum(rss_bytes(p) for p in worker_pids) / len(worker_pids or [1]))
        costs = {p.kind: p.cost() for p in self.phases if p.kind != "idle"}
        runs = max(o.requests, 1)
        checkpoints = (
            store_after.checkpoints - store_before.checkpoints
            if store_after.checkpoints is not None and store_before.checkpoints is not None
            else None
        )
        per_checkpoint = None
        if checkpoints and store_after.checkpoint_bytes is not None:
            grown = store_after.checkpoint_bytes - (store_before.checkpoint_bytes or 0)
            per_checkpoint = grown / checkpoints
        return Profile(
            machine=machine_info(),
            topology=self.deployment.name,
            graph=graph,
            payload_bytes=self._payload_size(),
            measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
            requests={
                k: costs[k] for k in ("thread.create", "run.wait", "run.stream", "state.get")
            },
            idle_api_cores=idle.api_cpu_seconds / idle.wall_seconds,
            idle_worker_cores=idle.worker_cpu_seconds
            / max(len(worker_pids), 1)
            / idle.wall_seconds,
            memory=Memory(
                api_base_bytes=api_base,
                worker_base_bytes=worker_base if worker_pids else 0.0,
                per_active_run_bytes=per_active_run,
                per_sse_stream_bytes=per_stream,
            ),
            storage=Storage(
                db_bytes_per_run=(store_after.total_bytes - store_before.total_bytes) / runs,
                db_bytes_per_payload_byte=db_per_payload,
                db_bytes_per_checkpoint=per_checkpoint,
                checkpoints_per_run=checkpoints / runs if checkpoints is not None else None,
                net_bytes_per_payload_byte=net_per_payload,
                redis_bytes_per_live_stream=redis_reading,
                redis_bytes_per_payload_byte=redis_per_payload,
            ),
            phases=self.phases,
        )

    def _payload_size(self) -> int:
        """Input + output bytes of one run: the calibration graph echoes its payload; for
        other graphs only the input is known."""
        if self.options.calibrated:
            return 2 * self.options.payload_bytes
        return len(json.dumps(self.graph_input()))

    def _redis_reading(self) -> _probes.RedisReading | None:
        prefix = self.deployment.env.get("GARRISON_REDIS_KEY_PREFIX")
        if not self.deployment.redis_url or not prefix:
            return None
        return _probes.read_redis(self.deployment.redis_url, prefix)

    def _redis(self) -> float | None:
        reading = self._redis_reading()
        if reading is None or not reading.run_logs:
            return None
        return reading.bytes / reading.run_logs

    async def _payload_slope(
        self,
        client: httpx.AsyncClient,
        run_wait: Callable[[int, list[str], dict[str, Any]], Any],
        small_before: _probes.StorageReading,
        small_after: _probes.StorageReading,
    ) -> tuple[float, float, float | None]:
        """Database, HTTP and Redis bytes per extra payload byte: the run.wait phase repeated with
        a 32 KiB payload, compared with the small-payload run.wait phase. Only the
        calibration graph's input has a payload to grow; other graphs report 0."""
        o = self.options
        if not o.calibrated:
            return 0.0, 0.0, None
        count = max(o.requests // 2, 1)
        threads: list[str] = []
        for _ in range(count):
            response, _, _ = await send(client, "POST", "/threads", json={})
            threads.append(response.json()["thread_id"])
        big = {"assistant_id": o.graph, "input": self.graph_input(_BIG_PAYLOAD)}
        before = _storage(self.deployment)
        redis_before = self._redis_reading()
        phase = await self.measured(
            "run.wait (32 KiB payload)",
            count,
            lambda i: run_wait(i, threads, big),
            o.concurrency,
        )
        after = _storage(self.deployment)
        small = next(p for p in self.phases if p.kind == "run.wait")
        # The payload is input + output: the calibration graph replies with its input.
        extra = 2 * (_BIG_PAYLOAD - o.payload_bytes)
        db_small = (small_after.total_bytes - small_before.total_bytes) / max(small.requests, 1)
        db_big = (after.total_bytes - before.total_bytes) / max(phase.requests, 1)
        net_small = small.bytes_out / max(small.requests, 1)
        net_big = phase.bytes_out / max(phase.requests, 1)
        redis_slope = None
        redis_after = self._redis_reading()
        if redis_before and redis_after and redis_before.run_logs:
            added = redis_after.run_logs - redis_before.run_logs
            if added > 0:
                redis_small = redis_before.bytes / redis_before.run_logs
                redis_big = (redis_after.bytes - redis_before.bytes) / added
                redis_slope = max(redis_big - redis_small, 0.0) / extra
        db_slope = max(db_big - db_small, 0.0) / extra
        return db_slope, max(net_big - net_small, 0.0) / extra, redis_slope

    async def _active_run_memory(self, client: httpx.AsyncClient) -> float:
        """Worker RSS growth per run in flight: a burst of background runs (held in the
        calibration graph's node for 2 s), the worker's peak RSS during it minus its RSS
        just before, divided by the runs."""
        o = self.options
        pids = self.meter.worker_pids or [self.meter.api_pid]
        graph_input = dict(self.graph_input())
        if o.calibrated:
            graph_input["hold_seconds"] = _HOLD_SECONDS
        body = {"assistant_id": o.graph, "input": graph_input}
        base = sum(rss_bytes(p) for p in pids)
        for _ in range(o.active_runs):  # created in ~10 ms each: all overlap the 2 s hold
            thread, _, _ = await send(client, "POST", "/threads", json={})
            thread_id = thread.json()["thread_id"]
            await send(client, "POST", f"/threads/{thread_id}/runs", json=body)
            self.progress("active runs", 1)
        peak = base
        deadline = time.monotonic() + _HOLD_SECONDS + 30
        while time.monotonic() < deadline:
            peak = max(peak, sum(rss_bytes(p) for p in pids))
            count = await client.post("/threads/count", json={"status": "busy"})
            if count.status_code == 200 and count.json() == 0:
                break
            await asyncio.sleep(0.05)
        return max(peak - base, 0) / max(o.active_runs, 1)

    async def _stream_memory(self, client: httpx.AsyncClient) -> float:
        """API RSS growth per open SSE stream: runs that will not start for a day, one
        stream held open on each, RSS read once the opening burst settled."""
        o = self.options
        body = {"assistant_id": o.graph, "input": {}, "after_seconds": _PENDING_FOR_A_DAY}
        runs: list[tuple[str, str]] = []
        while len(runs) < o.streams:
            size = min(100, o.streams - len(runs))
            response, _, _ = await send(client, "POST", "/runs/batch", json=[body] * size)
            runs.extend((r["thread_id"], r["run_id"]) for r in response.json())
        before = rss_bytes(self.meter.api_pid)
        limits = httpx.Limits(max_connections=o.streams + 8, max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(base_url=str(client.base_url), limits=limits, timeout=60) as held,
            contextlib.AsyncExitStack() as stack,
        ):
            opened = 0
            for thread_id, run_id in runs:
                response = await stack.enter_async_context(
                    held.stream("GET", f"/threads/{thread_id}/runs/{run_id}/stream")
                )
                if response.status_code == 200:
                    opened += 1
                self.progress("SSE streams", 1)
            await asyncio.sleep(1.0)
            after = rss_bytes(self.meter.api_pid)
        if not opened:
            raise ProfileRunError("no SSE stream could be opened")
        return max(after - before, 0) / opened


@contextlib.contextmanager
def _data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="garrison-profile-") as tmp:
        yield Path(tmp)


def run_profile(options: ProfileOptions, progress: Progress = lambda _, __: None) -> Profile:
    """Deploy `options.topology`, measure, tear down; returns the profile."""
    config = options.config or CALIBRATION_PROJECT
    with (
        _data_dir() as data_dir,
        deploy(
            options.topology,
            config,
            data_dir,
            postgres_url=options.postgres_url,
            redis_url=options.redis_url,
        ) as deployment,
    ):
        profiler = _Profiler(options, deployment, progress)

        async def go() -> Profile:
            async with httpx.AsyncClient(
                base_url=deployment.url,
                timeout=120,
                limits=httpx.Limits(max_connections=max(options.concurrency, 1) + 4),
            ) as client:
                return await profiler.run(client)

        return asyncio.run(go())
