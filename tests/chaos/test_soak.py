"""R5: accounting under chaos (reliability-targets.md).

A soak on one deployment (tests/chaos/conftest.py): two API processes behind a round-robin
proxy, workers, and a private PostgreSQL and Redis so that restarting and flushing them
touches no other test. Runs arrive at random (Poisson) times: `quick` runs and short
`steps` runs on threads of their own, plus `steps` runs enqueued ten at a time on shared
threads. Meanwhile, at random intervals, a worker is SIGKILLed (chosen at random among
those inside a step, if any) and replaced, Redis is FLUSHALLed once and PostgreSQL is
restarted once. Then every accepted run must reach a terminal, visible outcome.

`make test` runs a scaled-down soak (300 runs over ~45 s, two workers). The full R5 soak is
`GARRISON_SOAK_RUNS=1000 GARRISON_SOAK_WORKERS=3 pytest tests/chaos/test_soak.py`.

The schedule comes from a seeded RNG: set GARRISON_CHAOS_SEED to replay one. The seed and
the chaos event log (kills, restarts, the flush, the database restart) are in every failure
message and in `soak-events.json` under the test's tmp_path.
"""

import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.chaos.conftest import (
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    MAX_ATTEMPTS,
    POLL_SECONDS,
    REAPER_SECONDS,
    Cluster,
    SdkFactory,
    chaos_cluster,
)
from tests.support.postgres_server import PrivatePostgres
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.chaos

SEED_ENV = "GARRISON_CHAOS_SEED"
RUNS = int(os.environ.get("GARRISON_SOAK_RUNS", "300"))
WORKERS = int(os.environ.get("GARRISON_SOAK_WORKERS", "2"))
RUN_TIMEOUT_SECONDS = 10.0  # GARRISON_WORKER_RUN_TIMEOUT_SECONDS, the soak's BG_JOB_TIMEOUT
SUBMIT_SECONDS = RUNS * 0.15  # ~6.7 arrivals per second
RUNS_PER_SHARED_THREAD = 10
SHARED_THREADS = max(1, RUNS // 50)
QUICK_RUNS = RUNS // 2
STEPS_RUNS = RUNS - QUICK_RUNS - SHARED_THREADS * RUNS_PER_SHARED_THREAD
# PostgreSQL stays down this long: shorter than the pool wait (5 s), so API calls mostly
# wait it out, but long enough that leases held at the crash may expire and be recovered.
POSTGRES_DOWN_SECONDS = 2.5
# A killed run is requeued within lease + reaper and claimed within a poll; runs last under
# a second. Kills spaced further apart than that recover each victim before the next kill,
# so no run can use up MAX_ATTEMPTS (3): every run must end in `success`.
RECOVERY_SECONDS = LEASE_SECONDS + REAPER_SECONDS + POLL_SECONDS
KILL_INTERVAL_SECONDS = (RECOVERY_SECONDS + 1.5, RECOVERY_SECONDS + 5.0)
# Once the chaos stops, nothing may stay pending/running longer than a run's timeout plus
# a lease and a reaper pass (the R5 bound), plus a poll and time to drain enqueued runs.
SETTLE_SECONDS = RUN_TIMEOUT_SECONDS + LEASE_SECONDS + REAPER_SECONDS + POLL_SECONDS + 10.0

assert KILL_INTERVAL_SECONDS[0] > RECOVERY_SECONDS + HEARTBEAT_SECONDS  # see above
assert MAX_ATTEMPTS == 3


@dataclass(frozen=True)
class RunSpec:
    graph: str
    thread_id: str | None  # None: a thread of its own, created with the run
    input: dict[str, Any]

    @property
    def own_thread(self) -> bool:
        return self.thread_id is None

    def expected_output(self) -> dict[str, Any]:
        if self.graph == "quick":
            return {**self.input, "echoed": self.input["n"]}
        return {**self.input, "done": self.input["count"]}


@dataclass
class Chaos:
    """The seeded schedule and what it did, for failure messages and replay."""

    seed: int
    rng: random.Random
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)

    def note(self, event: str, **details: Any) -> None:
        self.events.append(
            {"t": round(time.monotonic() - self.started, 3), "event": event, **details}
        )
        self.log_path.write_text(json.dumps({"seed": self.seed, "events": self.events}, indent=1))

    def context(self) -> str:
        return f"seed={self.seed} (replay: {SEED_ENV}={self.seed}); log={self.log_path}"

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e["event"] == event)


def workload(rng: random.Random) -> list[RunSpec]:
    shared = [str(uuid.uuid4()) for _ in range(SHARED_THREADS)]
    specs = [RunSpec("quick", None, {"n": i}) for i in range(QUICK_RUNS)]
    specs += [RunSpec("steps", None, {"count": 3, "step_seconds": 0.2}) for _ in range(STEPS_RUNS)]
    specs += [
        RunSpec("steps", thread_id, {"count": 2, "step_seconds": 0.1})
        for thread_id in shared
        for _ in range(RUNS_PER_SHARED_THREAD)
    ]
    rng.shuffle(specs)
    return specs


async def submit(client: LangGraphClient, spec: RunSpec) -> dict[str, Any]:
    """Create the run, retrying as a client would while the database is restarting.

    A run counts as accepted only when the API answered 2xx. A retried create whose first
    attempt did reach the database (the answer was lost) leaves an extra run: the checks
    below allow such runs but hold them to the same rules."""
    for attempt in range(20):
        try:
            return dict(
                await client.runs.create(
                    spec.thread_id or str(uuid.uuid4()),
                    spec.graph,
                    input=spec.input,
                    multitask_strategy="enqueue",
                    if_not_exists="create",
                    durability="sync",
                )
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 503 or attempt == 19:
                raise
        except httpx.TransportError:
            if attempt == 19:
                raise
        await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def kill_workers_until(cluster: Cluster, chaos: Chaos, stop: asyncio.Event) -> None:
    """Kill a random worker at random intervals and start a replacement, until `stop`."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), chaos.rng.uniform(*KILL_INTERVAL_SECONDS))
            return
        except TimeoutError:
            pass
        live = cluster.live_workers()
        # Prefer a worker in the middle of a step: a kill that hits no run tests nothing.
        busy = [w for w in live if w.pid in workers_inside_a_step(cluster)]
        victim = chaos.rng.choice(busy or live)
        victim.kill()
        chaos.note("kill", pid=victim.pid, busy=bool(busy))
        replacement = await asyncio.to_thread(cluster.start_worker)
        chaos.note("restart", pid=replacement.pid)


def workers_inside_a_step(cluster: Cluster) -> set[int]:
    """Pids that logged a step's start but not yet its end."""
    inside: dict[tuple[str, str, int], int] = {}
    for entry in cluster.effects.entries():
        key = (entry["run_id"], entry["task_id"], entry["attempt"])
        if entry["phase"] == "start":
            inside[key] = entry["pid"]
        else:
            inside.pop(key, None)
    return set(inside.values())


async def flush_redis_at(redis: RedisServer, chaos: Chaos, delay: float) -> None:
    await asyncio.sleep(delay)
    reply = await asyncio.to_thread(redis.command, "FLUSHALL")
    chaos.note("flushall", reply=reply.decode())


async def restart_postgres_at(postgres: PrivatePostgres, chaos: Chaos, delay: float) -> None:
    await asyncio.sleep(delay)
    await asyncio.to_thread(postgres.stop, "immediate")
    chaos.note("postgres down")
    await asyncio.sleep(POSTGRES_DOWN_SECONDS)
    await asyncio.to_thread(postgres.start)
    chaos.note("postgres up")


async def wait_until_settled(cluster: Cluster, chaos: Chaos) -> None:
    """Every run terminal within SETTLE_SECONDS, or fail naming the stuck ones."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        active = await asyncio.to_thread(
            cluster.query,
            "SELECT run_id, status, attempt, lease_owner FROM runs"
            " WHERE status IN ('pending', 'running')",
        )
        if not active:
            chaos.note("settled")
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"{len(active)} run(s) still pending/running {SETTLE_SECONDS:g} s after the"
                f" chaos stopped: {active[:10]}; {chaos.context()}"
            )
        await asyncio.sleep(0.2)


@pytest.mark.timeout(SUBMIT_SECONDS * 2 + 200)
async def test_every_accepted_run_succeeds_exactly_once_under_worker_kills_and_backend_restarts(
    tmp_path: Path,
    private_postgres: PrivatePostgres,
    private_redis: RedisServer,
    sdk: SdkFactory,
) -> None:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    chaos = Chaos(seed, random.Random(seed), tmp_path / "soak-events.json")
    specs = workload(chaos.rng)
    arrivals = [chaos.rng.expovariate(len(specs) / SUBMIT_SECONDS) for _ in specs]
    flush_after = chaos.rng.uniform(0.2, 0.4) * SUBMIT_SECONDS
    restart_after = chaos.rng.uniform(0.5, 0.8) * SUBMIT_SECONDS

    with chaos_cluster(
        tmp_path / "c",
        workers=WORKERS,
        postgres_url=private_postgres.url,
        redis_url=private_redis.url,
        env={"GARRISON_WORKER_RUN_TIMEOUT_SECONDS": str(RUN_TIMEOUT_SECONDS)},
    ) as cluster:
        client = sdk(cluster)
        for thread_id in {s.thread_id for s in specs if s.thread_id is not None}:
            await client.threads.create(thread_id=thread_id)
        chaos.note("start", workers=[w.pid for w in cluster.workers])

        stop = asyncio.Event()
        killer = asyncio.create_task(kill_workers_until(cluster, chaos, stop))
        flusher = asyncio.create_task(flush_redis_at(private_redis, chaos, flush_after))
        restarter = asyncio.create_task(restart_postgres_at(private_postgres, chaos, restart_after))
        pending: list[asyncio.Task[dict[str, Any]]] = []
        for spec, gap in zip(specs, arrivals, strict=True):
            await asyncio.sleep(gap)
            pending.append(asyncio.create_task(submit(client, spec)))
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        chaos.note("submitted", runs=len(outcomes))
        await flusher
        await restarter
        stop.set()
        await killer  # returns after a kill in progress has its replacement: all workers
        chaos.note("chaos stopped", live=[w.pid for w in cluster.live_workers()])

        await wait_until_settled(cluster, chaos)

        refused = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        assert refused == [], f"runs not accepted: {refused[:5]}; {chaos.context()}"
        runs = [o for o in outcomes if not isinstance(o, BaseException)]
        accepted = {run["run_id"]: spec for spec, run in zip(specs, runs, strict=True)}
        rows = await asyncio.to_thread(cluster.query, "SELECT run_id, status, attempt FROM runs")
        statuses = Counter(status for _, status, _ in rows)
        successes = await asyncio.to_thread(cluster.success_transitions)
        # Only a thread's own run: a join of a finished run may answer with its thread's
        # state, which a later run on a shared thread has since changed (as LangGraph does).
        outputs = await join_all(client, [r for r in runs if accepted[r["run_id"]].own_thread])

    attempts = Counter(attempt for _, _, attempt in rows)
    chaos.note("outcome", statuses=dict(statuses), attempts=dict(attempts))
    context = f"statuses={dict(statuses)}; {chaos.context()}\n{cluster.logs()[-6000:]}"
    assert chaos.count("kill") >= 3, context
    assert chaos.count("flushall") == 1 and chaos.count("postgres up") == 1, context
    # accepted == terminal, and every terminal run is a success. Runs the database holds
    # beyond the accepted ones can only be retried creates whose answer was lost.
    stored = {run_id for run_id, _, _ in rows}
    assert set(accepted) <= stored, f"accepted runs missing: {set(accepted) - stored}; {context}"
    chaos.note("unanswered creates", runs=len(stored) - len(accepted))
    assert statuses == {"success": len(stored)}, context
    # Exactly one `success` transition per run, by the database's own trigger.
    duplicates = {run_id: n for run_id, n in successes.items() if n != 1}
    assert duplicates == {} and set(successes) == stored, f"{duplicates}; {context}"
    # The kills hit runs in flight, and those were recovered within MAX_ATTEMPTS.
    assert (
        max(attempts) <= MAX_ATTEMPTS
        and sum(n for attempt, n in attempts.items() if attempt > 1) > 0
    ), f"attempts={dict(attempts)}; {context}"
    # What clients see: each run's join returns its graph's output.
    wrong = {
        run_id: output
        for run_id, output in outputs.items()
        if output != accepted[run_id].expected_output()
    }
    assert wrong == {}, f"{len(wrong)} wrong outputs, e.g. {list(wrong.items())[:3]}; {context}"


async def join_all(client: LangGraphClient, runs: list[dict[str, Any]]) -> dict[str, Any]:
    limit = asyncio.Semaphore(16)

    async def join(run: dict[str, Any]) -> tuple[str, Any]:
        async with limit:
            return run["run_id"], await client.runs.join(run["thread_id"], run["run_id"])

    return dict(await asyncio.gather(*(join(run) for run in runs)))
