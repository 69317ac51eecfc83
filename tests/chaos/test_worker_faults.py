"""Worker faults: targets R1, R2, R3, R4 and R6 of reference/reliability-targets.md.

Each test starts its own deployment with `chaos_cluster` (one API process, two or three
`garrison worker` processes, a fresh PostgreSQL database and Redis prefix), starts a run of
one of the chaos graphs, and injects a process fault into the worker that owns the run:
SIGKILL (crash), SIGSTOP/SIGCONT (a worker that stalls past its lease and comes back) or
SIGTERM (graceful drain). The worker owning a task is the `pid` of the task's entry in the
side-effect log; what happened afterwards is read from that log (which process ran which
task of which attempt), from the API (status, `attempt`, output, checkpoint history) and
from the database (checkpoint rows, and the trigger-recorded status transitions of runs).

Timing comes from the harness (lease 3 s, heartbeat 1 s, reaper 1 s, poll 0.5 s, max
attempts 3); every bound below is derived from those constants with its margin stated.
Tests wait on observable conditions with deadlines; the only fixed waits are R6's "within
1 s of SIGTERM" and the windows in which something must *not* happen (no retry after a
terminal error).
"""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Durability

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
from tests.support.server import GarrisonProcess

pytestmark = pytest.mark.chaos

Entry = dict[str, Any]

# The longest a run of a lost worker waits before it is back in the queue: its lease was
# extended at most just before the fault, and a reaper looks once per period.
RECOVERY_SECONDS = LEASE_SECONDS + REAPER_SECONDS
# R1's bound, from the fault to `success` on another worker: lease + reaper + 5 s.
R1_BOUND_SECONDS = RECOVERY_SECONDS + 5.0
# How long `slow` sleeps in the fanout graph. Long enough that the kill lands while it
# sleeps, short enough that its re-execution fits R1's 5 s budget with room to spare.
SLOW_SECONDS = 2.5


# Helpers -------------------------------------------------------------------------------


async def wait_for_status(
    client: LangGraphClient,
    cluster: Cluster,
    run: dict[str, Any],
    statuses: set[str],
    within_seconds: float,
) -> dict[str, Any]:
    """The run (as the API shows it) once its status is one of `statuses`."""
    deadline = time.monotonic() + within_seconds
    while True:
        current = await client.runs.get(run["thread_id"], run["run_id"])
        if current["status"] in statuses:
            return dict(current)
        if time.monotonic() > deadline:
            pytest.fail(
                f"run {run['run_id']} still {current['status']} after {within_seconds} s,"
                f" expected {sorted(statuses)}\n{cluster.logs()}"
            )
        await asyncio.sleep(0.1)


async def create_run(
    client: LangGraphClient, graph: str, graph_input: dict[str, Any], **options: Any
) -> dict[str, Any]:
    """A run of `graph` on a new thread (so it has checkpoints to resume from)."""
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], graph, input=graph_input, **options)
    return dict(run)


async def wait_until(condition: Callable[[], bool], within_seconds: float, what: str) -> None:
    deadline = time.monotonic() + within_seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within_seconds} s: {what}")
        await asyncio.sleep(0.05)


def of_run(run: dict[str, Any], node: str, phase: str, **fields: Any) -> Callable[[Entry], bool]:
    """A side-effect log predicate: this run's `node` at `phase`, with `fields`."""

    def matches(entry: Entry) -> bool:
        return (
            entry["run_id"] == run["run_id"]
            and entry["node"] == node
            and entry["phase"] == phase
            and all(entry.get(k) == v for k, v in fields.items())
        )

    return matches


def effects_of(cluster: Cluster, run: dict[str, Any], node: str, phase: str) -> list[Entry]:
    return [e for e in cluster.effects.entries(run["run_id"]) if of_run(run, node, phase)(e)]


def transitions(cluster: Cluster, run: dict[str, Any]) -> list[tuple[str, int]]:
    """Every (status, attempt) the run's row took, in order, as the database recorded it."""
    rows = cluster.query(
        "SELECT status, attempt FROM chaos_run_transitions WHERE run_id = %s ORDER BY id",
        (run["run_id"],),
    )
    return [(status, attempt) for status, attempt in rows]


def checkpoints_of_attempt(cluster: Cluster, thread_id: str, attempt: int) -> int:
    rows = cluster.query(
        "SELECT count(*) FROM checkpoints"
        " WHERE thread_id = %s AND (metadata ->> 'run_attempt')::int = %s",
        (thread_id, attempt),
    )
    return int(rows[0][0])


def task_write_is_durable(cluster: Cluster, thread_id: str, task_id: str) -> bool:
    """Whether a task's result is stored as a pending write of a stored checkpoint."""
    rows = cluster.query(
        "SELECT count(*) FROM checkpoint_writes AS w JOIN checkpoints AS c"
        " USING (thread_id, checkpoint_ns, checkpoint_id)"
        " WHERE w.thread_id = %s AND w.task_id = %s",
        (thread_id, task_id),
    )
    return int(rows[0][0]) > 0


async def final_values(client: LangGraphClient, thread_id: str) -> dict[str, Any]:
    state = await client.threads.get_state(thread_id)
    assert isinstance(state["values"], dict)
    return state["values"]


async def start_fanout_and_kill_its_owner_mid_superstep(
    client: LangGraphClient, cluster: Cluster, durability: Durability
) -> tuple[dict[str, Any], GarrisonProcess, float]:
    """Start a fanout run and SIGKILL its worker while `slow` sleeps and `fast` is done.

    Returns the run, the killed worker and the monotonic time of the kill.
    """
    run = await create_run(client, "fanout", {"slow_seconds": SLOW_SECONDS}, durability=durability)
    slow = await cluster.effects.wait_for(of_run(run, "slow", "start"))
    fast = await cluster.effects.wait_for(of_run(run, "fast", "end"))
    if durability != "exit":
        # Kill only once the completed sibling's result is stored (as LangGraph stores it,
        # a pending write of the superstep's checkpoint): that is what must not re-run.
        await wait_until(
            lambda: task_write_is_durable(cluster, run["thread_id"], fast["task_id"]),
            within_seconds=SLOW_SECONDS / 2,
            what="fast's write stored",
        )
    owner = cluster.worker_with_pid(slow["pid"])
    owner.kill()
    killed_at = time.monotonic()
    # The fault landed inside the superstep: the killed attempt never finished `slow`.
    early_ends = [e for e in effects_of(cluster, run, "slow", "end") if e["pid"] == owner.pid]
    assert not early_ends, "the kill came after `slow` ended; the test machine is too slow"
    return run, owner, killed_at


# R1 — kill -9 mid-run ----------------------------------------------------------------


@pytest.mark.parametrize("durability", ["sync", "async"])
async def test_kill_9_mid_superstep_resumes_on_another_worker_rerunning_only_the_cut_task(
    tmp_path: Path, sdk: SdkFactory, durability: Durability
) -> None:
    with chaos_cluster(tmp_path / "c", apis=1, workers=2) as cluster:
        client = sdk(cluster)
        run, killed, killed_at = await start_fanout_and_kill_its_owner_mid_superstep(
            client, cluster, durability
        )
        done = await wait_for_status(client, cluster, run, {"success"}, R1_BOUND_SECONDS)
        assert time.monotonic() - killed_at <= R1_BOUND_SECONDS

        # Completed superstep (a) and completed sibling (fast): exactly once.
        for node in ("a", "fast"):
            assert len(effects_of(cluster, run, node, "start")) == 1, node
            assert len(effects_of(cluster, run, node, "end")) == 1, node
        # The interrupted task ran again, as the same task, on another worker.
        slow_starts = effects_of(cluster, run, "slow", "start")
        assert len(slow_starts) == 2
        assert slow_starts[0]["task_id"] == slow_starts[1]["task_id"]
        assert [e["attempt"] for e in slow_starts] == [1, 2]
        assert slow_starts[0]["pid"] == killed.pid
        assert slow_starts[1]["pid"] != killed.pid
        (c_start,) = effects_of(cluster, run, "c", "start")
        assert c_start["pid"] == slow_starts[1]["pid"]
        assert len(effects_of(cluster, run, "c", "end")) == 1

        assert done["attempt"] == 2
        assert cluster.success_transitions() == {run["run_id"]: 1}
        visits = (await final_values(client, run["thread_id"]))["visits"]
        assert sorted(visits) == ["a", "c", "fast", "slow"]


# R2 — `exit` durability is honest ------------------------------------------------------


async def test_kill_9_with_exit_durability_restarts_the_run_from_its_input_as_attempt_2(
    tmp_path: Path, sdk: SdkFactory
) -> None:
    with chaos_cluster(tmp_path / "c", apis=1, workers=2) as cluster:
        client = sdk(cluster)
        run, killed, killed_at = await start_fanout_and_kill_its_owner_mid_superstep(
            client, cluster, "exit"
        )
        done = await wait_for_status(client, cluster, run, {"success"}, R1_BOUND_SECONDS)
        assert time.monotonic() - killed_at <= R1_BOUND_SECONDS

        # Nothing of the first attempt was stored, so the second one starts from the input:
        # every node of the first attempt runs again.
        a_starts = effects_of(cluster, run, "a", "start")
        assert [e["attempt"] for e in a_starts] == [1, 2]
        assert a_starts[0]["pid"] == killed.pid and a_starts[1]["pid"] != killed.pid
        assert len(effects_of(cluster, run, "fast", "start")) == 2
        assert len(effects_of(cluster, run, "slow", "start")) == 2
        assert len(effects_of(cluster, run, "c", "start")) == 1
        assert done["attempt"] == 2
        assert cluster.success_transitions() == {run["run_id"]: 1}
        # The state holds one pass over the graph: the lost attempt left nothing behind.
        visits = (await final_values(client, run["thread_id"]))["visits"]
        assert sorted(visits) == ["a", "c", "fast", "slow"]


async def test_kill_9_with_exit_durability_and_one_attempt_ends_the_run_in_error(
    tmp_path: Path, sdk: SdkFactory
) -> None:
    env = {"GARRISON_WORKER_MAX_ATTEMPTS": "1"}
    with chaos_cluster(tmp_path / "c", apis=1, workers=2, env=env) as cluster:
        client = sdk(cluster)
        run, _, _ = await start_fanout_and_kill_its_owner_mid_superstep(client, cluster, "exit")
        done = await wait_for_status(client, cluster, run, {"error"}, R1_BOUND_SECONDS)

        assert done["attempt"] == 1
        output = await client.runs.join(run["thread_id"], run["run_id"])
        assert "Max attempts exceeded" in output["__error__"]["message"]
        # No second attempt, now or after the reaper has had a few more looks.
        await asyncio.sleep(2 * REAPER_SECONDS + POLL_SECONDS)
        assert len(effects_of(cluster, run, "a", "start")) == 1
        assert transitions(cluster, run) == [
            ("pending", 0),
            ("running", 1),
            ("error", 1),
        ]


# R3 — no zombie writes -----------------------------------------------------------------

STEPS = 6
STEP_SECONDS = 1.0
# After SIGCONT the stale worker's overdue heartbeat fires at once and finds its lease gone;
# one heartbeat period plus 0.5 s of scheduling margin bounds when it must have stopped.
STALE_STOP_SECONDS = HEARTBEAT_SECONDS + 0.5


async def test_worker_stalled_past_its_lease_is_fenced_out_when_it_resumes(
    tmp_path: Path, sdk: SdkFactory
) -> None:
    with chaos_cluster(tmp_path / "c", apis=1, workers=2) as cluster:
        client = sdk(cluster)
        # `sync`: a superstep's checkpoint is stored before the next one starts, so the
        # worker is stopped during step 2's sleep, not in the middle of a write.
        run = await create_run(
            client, "steps", {"count": STEPS, "step_seconds": STEP_SECONDS}, durability="sync"
        )
        thread_id = run["thread_id"]
        second = await cluster.effects.wait_for(of_run(run, "step", "start", step=2))
        stale = cluster.worker_with_pid(second["pid"])
        stale.pause()

        # Its lease runs out; another worker takes the run as attempt 2, from the
        # checkpoint of step 1, and stores a checkpoint of its own.
        taken = await cluster.effects.wait_for(
            of_run(run, "step", "start", attempt=2), RECOVERY_SECONDS + 2.0
        )
        assert taken["pid"] != stale.pid
        assert taken["step"] == 2
        await wait_until(
            lambda: checkpoints_of_attempt(cluster, thread_id, 2) > 0,
            STEP_SECONDS + 2.0,
            "attempt 2 stored a checkpoint",
        )
        stale_checkpoints = checkpoints_of_attempt(cluster, thread_id, 1)
        stale.resume()
        resumed_at = time.time()  # wall clock, as the side-effect log's `at`

        done = await wait_for_status(
            client, cluster, run, {"success"}, STEPS * STEP_SECONDS + RECOVERY_SECONDS
        )

        # The stale worker stopped: the step it was in may end, but it starts no other.
        late_starts = [
            e
            for e in effects_of(cluster, run, "step", "start")
            if e["pid"] == stale.pid and e["at"] > resumed_at + STALE_STOP_SECONDS
        ]
        assert late_starts == []
        # Its checkpoint writes were refused: attempt 1 has no checkpoint stored after the
        # resume, and reading the history from oldest to newest, attempts never go back.
        assert checkpoints_of_attempt(cluster, thread_id, 1) == stale_checkpoints
        history = await client.threads.get_history(thread_id, limit=100)
        attempts = [h["metadata"]["run_attempt"] for h in reversed(history)]
        assert attempts == sorted(attempts) and set(attempts) == {1, 2}
        # Its status writes were refused: the run left `running` once per attempt, and
        # only attempt 2 ended it.
        assert transitions(cluster, run) == [
            ("pending", 0),
            ("running", 1),
            ("pending", 1),
            ("running", 2),
            ("success", 2),
        ]
        assert cluster.success_transitions() == {run["run_id"]: 1}
        assert done["attempt"] == 2
        assert (await final_values(client, thread_id))["done"] == STEPS


# R4 — bounded retries ------------------------------------------------------------------


async def keep_workers_alive(cluster: Cluster, stop: asyncio.Event) -> None:
    """Replace every worker that dies (the crasher graph kills one per attempt)."""
    replaced: set[int] = set()
    while not stop.is_set():
        for worker in list(cluster.workers):
            dead = worker.process is not None and worker.process.poll() is not None
            if dead and worker.pid not in replaced:
                replaced.add(worker.pid)
                await asyncio.to_thread(cluster.start_worker)
        await asyncio.sleep(0.1)


async def test_run_that_kills_its_worker_every_time_errors_after_max_attempts_and_stays_dead(
    tmp_path: Path, sdk: SdkFactory
) -> None:
    with chaos_cluster(tmp_path / "c", apis=1, workers=2) as cluster:
        client = sdk(cluster)
        stop = asyncio.Event()
        restarter = asyncio.create_task(keep_workers_alive(cluster, stop))
        try:
            run = await create_run(client, "crasher", {})
            # Each attempt costs at most a recovery period plus a worker's start-up (5 s).
            done = await wait_for_status(
                client, cluster, run, {"error"}, MAX_ATTEMPTS * (RECOVERY_SECONDS + 5.0)
            )
            output = await client.runs.join(run["thread_id"], run["run_id"])
            assert "Max attempts exceeded" in output["__error__"]["message"]
            booms = effects_of(cluster, run, "boom", "start")
            assert [e["attempt"] for e in booms] == list(range(1, MAX_ATTEMPTS + 1))
            assert len({e["pid"] for e in booms}) == MAX_ATTEMPTS  # a worker died each time
            assert done["attempt"] == MAX_ATTEMPTS

            # It never loops: with live workers and the reaper looking every period,
            # nothing takes the run again.
            await asyncio.sleep(3 * REAPER_SECONDS + POLL_SECONDS)
            assert len(effects_of(cluster, run, "boom", "start")) == MAX_ATTEMPTS
            assert len(cluster.live_workers()) >= 2
            again = dict(await client.runs.get(run["thread_id"], run["run_id"]))
            assert (again["status"], again["attempt"]) == ("error", MAX_ATTEMPTS)
            assert [s for s, _ in transitions(cluster, run)].count("error") == 1
        finally:
            stop.set()
            await restarter


# R6 — graceful drain -------------------------------------------------------------------

# Exit within the grace period plus 2 s: closing pools, Redis and the probe server.
EXIT_MARGIN_SECONDS = 2.0


async def sigterm(process: GarrisonProcess, grace: float) -> tuple[int, float]:
    """SIGTERM the process and wait for it: its exit code and seconds from signal to exit."""

    def stop() -> tuple[int, float]:
        signalled = time.monotonic()
        code = process.stop(timeout=grace + 10.0)  # SIGKILLs (code -9) if it hangs
        return code, time.monotonic() - signalled

    return await asyncio.to_thread(stop)


async def test_sigterm_stops_claiming_at_once_and_finishes_or_hands_back_in_flight_runs(
    tmp_path: Path, sdk: SdkFactory
) -> None:
    grace = 10.0
    env = {"GARRISON_WORKER_SHUTDOWN_GRACE_SECONDS": str(grace)}
    with chaos_cluster(tmp_path / "c", apis=1, workers=2, env=env) as cluster:
        client = sdk(cluster)
        draining, other = cluster.workers
        # Both in-flight runs go to the worker that will drain: the other one is stopped
        # (SIGSTOP) until they have started there.
        other.pause()
        one_step = await create_run(
            client, "steps", {"count": 1, "step_seconds": 3.0}, durability="sync"
        )
        three_steps = await create_run(
            client, "steps", {"count": 3, "step_seconds": 1.5}, durability="sync"
        )
        for run in (one_step, three_steps):
            started = await cluster.effects.wait_for(of_run(run, "step", "start", step=1))
            assert started["pid"] == draining.pid
        other.resume()

        assert not effects_of(cluster, one_step, "step", "end")  # in flight at SIGTERM
        stopped = asyncio.create_task(sigterm(draining, grace))
        # Claiming stops within 1 s of SIGTERM: runs created after that second, while the
        # draining worker still has runs in flight, all go to the other worker.
        await asyncio.sleep(1.0)
        assert draining.process is not None and draining.process.poll() is None
        quick = [await create_run(client, "quick", {"n": n}) for n in range(4)]
        for run in quick:
            await wait_for_status(client, cluster, run, {"success"}, 10.0)
            (echo,) = effects_of(cluster, run, "echo", "end")
            assert echo["pid"] == other.pid

        # The one-step run finished on the draining worker within the grace period.
        done = await wait_for_status(client, cluster, one_step, {"success"}, grace)
        assert done["attempt"] == 1
        assert [e["pid"] for e in effects_of(cluster, one_step, "step", "end")] == [draining.pid]

        # The three-step run was handed back at its next superstep boundary and finished
        # elsewhere from its checkpoint: step 1 is not repeated.
        done = await wait_for_status(client, cluster, three_steps, {"success"}, grace)
        starts = effects_of(cluster, three_steps, "step", "start")
        assert [(e["step"], e["pid"]) for e in starts] == [
            (1, draining.pid),
            (2, other.pid),
            (3, other.pid),
        ]
        assert transitions(cluster, three_steps) == [
            ("pending", 0),
            ("running", 1),
            ("pending", 1),
            ("running", 2),
            ("success", 2),
        ]

        exit_code, exit_seconds = await stopped
        assert exit_code == 0
        assert exit_seconds < grace + EXIT_MARGIN_SECONDS


LONG_STEP_SECONDS = 4.0  # far longer than the 1 s grace period of the test below


async def test_sigterm_hands_back_a_run_that_cannot_finish_in_grace_without_charging_it(
    tmp_path: Path, sdk: SdkFactory
) -> None:
    grace = 1.0
    # Two attempts allowed: the drain, then a crash. Had the drain been charged (or had
    # the run come back through lease expiry, which charges), the crash would exhaust the
    # run's attempts and the reaper would fail it.
    env = {
        "GARRISON_WORKER_SHUTDOWN_GRACE_SECONDS": str(grace),
        "GARRISON_WORKER_MAX_ATTEMPTS": "2",
    }
    with chaos_cluster(tmp_path / "c", apis=1, workers=3, env=env) as cluster:
        client = sdk(cluster)
        run = await create_run(
            client, "steps", {"count": 1, "step_seconds": LONG_STEP_SECONDS}, durability="sync"
        )
        first = await cluster.effects.wait_for(of_run(run, "step", "start", attempt=1))
        draining = cluster.worker_with_pid(first["pid"])

        exit_code, exit_seconds = await sigterm(draining, grace)
        assert exit_code == 0
        assert exit_seconds < grace + EXIT_MARGIN_SECONDS
        # The run was back in the queue by the time its worker had exited.
        assert transitions(cluster, run)[:3] == [
            ("pending", 0),
            ("running", 1),
            ("pending", 1),
        ]

        second = await cluster.effects.wait_for(of_run(run, "step", "start", attempt=2))
        crashed = cluster.worker_with_pid(second["pid"])
        crashed.kill()
        done = await wait_for_status(
            client, cluster, run, {"success", "error"}, RECOVERY_SECONDS + LONG_STEP_SECONDS + 3.0
        )
        assert done["status"] == "success"
        assert done["attempt"] == 3
        assert transitions(cluster, run) == [
            ("pending", 0),
            ("running", 1),
            ("pending", 1),
            ("running", 2),
            ("pending", 2),
            ("running", 3),
            ("success", 3),
        ]
        # Only the third attempt finished the step: the drained worker's node died with its
        # process instead of running on after the run was handed back.
        (end,) = effects_of(cluster, run, "step", "end")
        assert end["attempt"] == 3 and end["pid"] not in (draining.pid, crashed.pid)
