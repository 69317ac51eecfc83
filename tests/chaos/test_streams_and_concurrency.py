"""R11-R13: resumable streams across API replicas, cross-replica cancel, one active run per
thread (reliability-targets.md).

Every test starts its own deployment (tests/chaos/conftest.py): two `garrison serve
--no-worker` API processes and two `garrison worker` processes on one PostgreSQL database
and one Redis key prefix, with a 3 s lease, 1 s heartbeat, 1 s reaper and 0.5 s poll.
Clients are bound to one API process each (`cluster.apis[i].url`), so "another replica"
means another process, not another connection to the same one. Runs use the `steps` graph,
whose steps append start/end lines to the side-effect log and write `{"step": n}` to the
`custom` stream mode as they start.
"""

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as aioredis
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode, StreamPart

from garrison.broker.ids import parse_event_id
from tests.chaos.conftest import (
    LEASE_SECONDS,
    POLL_SECONDS,
    REAPER_SECONDS,
    Cluster,
    chaos_cluster,
)
from tests.support.server import GarrisonProcess

pytestmark = pytest.mark.chaos

STREAM_MODES: list[StreamMode] = ["values", "updates", "custom"]
# Recovery after a worker is SIGKILLed: the lease runs out, the next reaper pass requeues
# the run, and a worker claims it within one poll (wake-ups are faster, polling is the bound).
RECOVERY_SECONDS = LEASE_SECONDS + REAPER_SECONDS + POLL_SECONDS
CANCEL_P99_SECONDS = 2.0  # R12


@asynccontextmanager
async def bound_client(process: GarrisonProcess) -> AsyncIterator[LangGraphClient]:
    """An SDK client that talks to one API process only."""
    client = get_client(url=process.url, api_key=None)
    try:
        yield client
    finally:
        await client.http.client.aclose()


def id_key(event_id: str | None) -> tuple[int, int]:
    assert event_id, "every event of a resumable stream carries an id"
    return parse_event_id(event_id)


def wire(parts: list[StreamPart]) -> list[tuple[str | None, str, Any]]:
    return [(part.id, part.event, part.data) for part in parts]


def assert_strictly_increasing_ids(parts: list[StreamPart]) -> None:
    keys = [id_key(part.id) for part in parts]
    assert all(a < b for a, b in itertools.pairwise(keys)), [p.id for p in parts]


async def read_then_drop(
    parts: AsyncIterator[StreamPart], stop: Callable[[StreamPart], bool]
) -> list[StreamPart]:
    """Events up to and including the first that satisfies `stop`; then the client closes
    its connection (the SDK stream is an async generator; closing it closes the response)."""
    seen: list[StreamPart] = []
    try:
        async for part in parts:
            seen.append(part)
            if stop(part):
                break
    finally:
        await parts.aclose()  # type: ignore[attr-defined]
    return seen


def custom_step(part: StreamPart) -> int | None:
    if part.event == "custom" and isinstance(part.data, dict):
        return part.data.get("step")
    return None


async def replay_from_start(
    client: LangGraphClient, thread_id: str, run_id: str
) -> list[StreamPart]:
    return [p async for p in client.runs.join_stream(thread_id, run_id, last_event_id="-")]


# R11 ----------------------------------------------------------------------------------
async def test_a_stream_resumed_on_another_replica_delivers_each_later_event_once_in_order(
    tmp_path: Path,
) -> None:
    count = 6
    with chaos_cluster(tmp_path / "c") as cluster:
        async with bound_client(cluster.apis[0]) as first, bound_client(cluster.apis[1]) as second:
            thread_id = (await first.threads.create())["thread_id"]
            stream = first.runs.stream(
                thread_id,
                "steps",
                input={"count": count, "step_seconds": 0.4},
                stream_mode=STREAM_MODES,
                stream_resumable=True,
                durability="sync",
            )
            # Drop as step 2 starts: steps 2-6 publish while the client is away or after.
            before = await read_then_drop(stream, lambda p: custom_step(p) == 2)
            run_id = before[0].data["run_id"]
            # Stay away until events were published that this client has not seen.
            await cluster.effects.wait_for(
                lambda e: e["run_id"] == run_id and e.get("step") == 4 and e["phase"] == "end"
            )
            after = [
                p
                async for p in second.runs.join_stream(
                    thread_id, run_id, last_event_id=before[-1].id
                )
            ]
            full = await replay_from_start(second, thread_id, run_id)

        assert before[0].event == "metadata" and before[0].data["attempt"] == 1
        assert_strictly_increasing_ids(before + after)
        assert wire(before) + wire(after) == wire(full)  # nothing missed, nothing repeated
        assert [custom_step(p) for p in after if p.event == "custom"] == [3, 4, 5, 6]
        assert [p.data for p in full if p.event == "values"][-1]["done"] == count
        assert {p.event for p in full} == {"metadata", *STREAM_MODES}


async def test_a_stream_resumed_after_its_worker_was_killed_marks_the_new_attempt(
    tmp_path: Path,
) -> None:
    count, step_seconds = 6, 0.8
    with chaos_cluster(tmp_path / "c") as cluster:
        async with bound_client(cluster.apis[0]) as first, bound_client(cluster.apis[1]) as second:
            thread_id = (await first.threads.create())["thread_id"]
            stream = first.runs.stream(
                thread_id,
                "steps",
                input={"count": count, "step_seconds": step_seconds},
                stream_mode=STREAM_MODES,
                stream_resumable=True,
                durability="sync",
            )
            # Step 3 has started (its custom event arrived) and sleeps 0.8 s: steps 1-2 are
            # checkpointed (durability=sync), so only step 3 may run again.
            before = await read_then_drop(stream, lambda p: custom_step(p) == 3)
            run_id = before[0].data["run_id"]
            started = [e for e in cluster.effects.entries(run_id) if e.get("step") == 3]
            cluster.worker_with_pid(started[0]["pid"]).kill()

            # Another replica resumes the stream while the run waits for recovery.
            remaining = (count - 2) * step_seconds
            async with asyncio.timeout(RECOVERY_SECONDS + remaining + 10):
                after = [
                    p
                    async for p in second.runs.join_stream(
                        thread_id, run_id, last_event_id=before[-1].id
                    )
                ]
            full = await replay_from_start(first, thread_id, run_id)
            run = await second.runs.get(thread_id, run_id)
            published_by = await attempts_in_redis(cluster, run_id)

        assert_strictly_increasing_ids(before + after)
        assert wire(before) + wire(after) == wire(full)
        assert_recovery_is_marked(full, run_id, published_by)
        assert run["status"] == "success" and dict(run)["attempt"] == 2
        assert [p.data for p in full if p.event == "values"][-1]["done"] == count


async def test_a_stream_kept_open_through_a_worker_kill_continues_with_the_new_attempt(
    tmp_path: Path,
) -> None:
    count, step_seconds = 6, 0.8
    with chaos_cluster(tmp_path / "c") as cluster:
        async with bound_client(cluster.apis[0]) as client:
            thread_id = (await client.threads.create())["thread_id"]
            seen: list[StreamPart] = []
            killed = False
            async with asyncio.timeout(RECOVERY_SECONDS + count * step_seconds + 10):
                async for part in client.runs.stream(
                    thread_id,
                    "steps",
                    input={"count": count, "step_seconds": step_seconds},
                    stream_mode=STREAM_MODES,
                    stream_resumable=True,
                    durability="sync",
                ):
                    seen.append(part)
                    if custom_step(part) == 3 and not killed:
                        run_id = seen[0].data["run_id"]
                        effects = cluster.effects.entries(run_id)
                        owner = next(e["pid"] for e in effects if e.get("step") == 3)
                        cluster.worker_with_pid(owner).kill()
                        killed = True
            full = await replay_from_start(client, thread_id, run_id)
            run = await client.runs.get(thread_id, run_id)
            published_by = await attempts_in_redis(cluster, run_id)

        assert_strictly_increasing_ids(seen)
        assert wire(seen) == wire(full)
        assert_recovery_is_marked(full, run_id, published_by)
        assert run["status"] == "success" and dict(run)["attempt"] == 2
        assert [p.data for p in seen if p.event == "values"][-1]["done"] == count


def assert_recovery_is_marked(
    full: list[StreamPart], run_id: str, published_by: dict[str, int]
) -> None:
    """A run whose worker was killed during step 3 (of 6): the new attempt's `metadata`
    marker precedes all of its events, and the re-executed step shows under it."""
    markers = [i for i, p in enumerate(full) if p.event == "metadata"]
    assert [full[i].data for i in markers] == [
        {"run_id": run_id, "attempt": 1},
        {"run_id": run_id, "attempt": 2},
    ]
    killed, recovered = full[: markers[1]], full[markers[1] :]
    # No event of the killed attempt follows the marker (the attempt that published each
    # event is kept with it in Redis).
    assert {published_by[str(p.id)] for p in killed} == {1}
    assert {published_by[str(p.id)] for p in recovered} == {2}
    # Step 3 ran again under the new marker; the checkpointed steps 1-2 did not.
    assert [custom_step(p) for p in killed if p.event == "custom"] == [1, 2, 3]
    assert [custom_step(p) for p in recovered if p.event == "custom"] == [3, 4, 5, 6]


async def attempts_in_redis(cluster: Cluster, run_id: str) -> dict[str, int]:
    """Event id -> the attempt that published it, read straight from the run's Redis log."""
    prefix = cluster.env["GARRISON_REDIS_KEY_PREFIX"]
    client = aioredis.Redis.from_url(cluster.redis_url)
    try:
        reply = await client.xrange(f"{prefix}:run:{run_id}:log")
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], reply)
    finally:
        await client.aclose()
    return {entry_id.decode(): int(fields.get(b"a", b"0")) for entry_id, fields in entries}


# R12 ----------------------------------------------------------------------------------
async def test_a_cancel_sent_to_one_replica_stops_a_run_created_on_another_within_2s_p99(
    tmp_path: Path,
) -> None:
    runs = 20
    step_seconds = 0.25
    with chaos_cluster(tmp_path / "c") as cluster:
        async with (
            bound_client(cluster.apis[0]) as canceller,
            bound_client(cluster.apis[1]) as creator,
        ):
            threads = await asyncio.gather(*(creator.threads.create() for _ in range(runs)))
            created = await asyncio.gather(
                *(
                    creator.runs.create(
                        t["thread_id"],
                        "steps",
                        input={"count": 60, "step_seconds": step_seconds},
                        durability="sync",
                    )
                    for t in threads
                )
            )
            run_ids = [r["run_id"] for r in created]
            # Cancel only runs that are executing on a worker (their first step started).
            await wait_until_started(cluster, run_ids, within=20.0)
            sent_at: dict[str, float] = {}
            for run in created:
                sent_at[run["run_id"]] = time.time()
                await canceller.runs.cancel(run["thread_id"], run["run_id"], action="interrupt")
            interrupted_at = await wait_for_status(cluster, run_ids, "interrupted", within=10.0)
            # Let a few more step lengths pass: a run still going would start steps now.
            await asyncio.sleep(4 * step_seconds)
            final = await asyncio.gather(
                *(creator.runs.get(r["thread_id"], r["run_id"]) for r in created)
            )

        # Same host, so the test's clock and PostgreSQL's clock_timestamp() agree.
        latencies = sorted(interrupted_at[r] - sent_at[r] for r in run_ids)
        p99 = latencies[-1]  # nearest rank: with 20 samples the 99th percentile is the max
        assert p99 <= CANCEL_P99_SECONDS, f"cancel latencies (s): {latencies}"
        assert {r["status"] for r in final} == {"interrupted"}
        for run_id in run_ids:
            late = [
                e
                for e in cluster.effects.entries(run_id)
                if e["phase"] == "start" and e["at"] > interrupted_at[run_id]
            ]
            assert late == [], f"run {run_id} started steps after it was interrupted: {late}"


async def wait_until_started(cluster: Cluster, run_ids: list[str], within: float) -> None:
    """Until every run has logged the start of a step."""
    deadline = time.monotonic() + within
    while True:
        started = {e["run_id"] for e in cluster.effects.entries() if e["phase"] == "start"}
        if started >= set(run_ids):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"runs never started within {within} s: {set(run_ids) - started}")
        await asyncio.sleep(0.05)


async def wait_for_status(
    cluster: Cluster, run_ids: list[str], status: str, within: float
) -> dict[str, float]:
    """When (unix time, by the database's transition log) each run first took `status`."""
    deadline = time.monotonic() + within
    while True:
        rows = await asyncio.to_thread(
            cluster.query,
            "SELECT run_id, min(extract(epoch FROM at))::float8 FROM chaos_run_transitions"
            " WHERE status = %s AND run_id = ANY(%s) GROUP BY run_id",
            (status, run_ids),
        )
        reached = {run_id: at for run_id, at in rows}
        if len(reached) == len(run_ids):
            return reached
        if time.monotonic() > deadline:
            missing = sorted(set(run_ids) - set(reached))
            statuses = await asyncio.to_thread(
                cluster.query,
                "SELECT run_id, status FROM runs WHERE run_id = ANY(%s)",
                (missing,),
            )
            pytest.fail(f"{len(missing)} run(s) not {status} within {within} s: {statuses}")
        await asyncio.sleep(0.05)


# R13 ----------------------------------------------------------------------------------
async def post_runs(
    cluster: Cluster, thread_id: str, bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    """POST every body at once, alternating between the API processes."""
    async with httpx.AsyncClient(timeout=30.0) as http:
        return list(
            await asyncio.gather(
                *(
                    http.post(
                        f"{cluster.apis[i % len(cluster.apis)].url}/threads/{thread_id}/runs",
                        json=body,
                    )
                    for i, body in enumerate(bodies)
                )
            )
        )


async def test_concurrent_creates_with_reject_accept_exactly_one_run(tmp_path: Path) -> None:
    with chaos_cluster(tmp_path / "c") as cluster:
        async with bound_client(cluster.apis[0]) as client:
            thread_id = (await client.threads.create())["thread_id"]
            # Long enough to outlast every request; cancelled afterwards.
            body = {
                "assistant_id": "steps",
                "input": {"count": 100, "step_seconds": 0.1},
                "multitask_strategy": "reject",
            }
            responses = await post_runs(cluster, thread_id, [body] * 50)
            codes = sorted(r.status_code for r in responses)
            accepted = [r.json()["run_id"] for r in responses if r.is_success]
            assert len(accepted) == 1 and codes.count(409) == 49, codes
            stored = await asyncio.to_thread(
                cluster.query, "SELECT run_id FROM runs WHERE thread_id = %s", (thread_id,)
            )
            still_active = await client.runs.get(thread_id, accepted[0])
            await client.runs.cancel(thread_id, accepted[0])

        assert stored == [(accepted[0],)]  # rejected runs left no row
        assert still_active["status"] in ("pending", "running")  # the test was not vacuous


async def test_concurrent_creates_with_enqueue_run_one_at_a_time_in_acceptance_order(
    tmp_path: Path,
) -> None:
    """Fifty concurrent requests have no order of their own: the client sends them "at
    once". What the server promises is FIFO in the order it accepted them, i.e. the order
    their creators took the thread's lock, which it records as `created_at` (ties broken
    by run id, as the queue does). Execution must follow that order, one run at a time."""
    with chaos_cluster(tmp_path / "c") as cluster:
        async with bound_client(cluster.apis[0]) as client:
            thread_id = (await client.threads.create())["thread_id"]
            body = {
                "assistant_id": "steps",
                "input": {"count": 1, "step_seconds": 0.05},
                "multitask_strategy": "enqueue",
            }
            responses = await post_runs(cluster, thread_id, [body] * 50)
            assert [r.status_code for r in responses] == [200] * 50
            runs = [r.json() for r in responses]
            await wait_for_status(cluster, [r["run_id"] for r in runs], "success", within=60.0)

        accepted = [
            r["run_id"]
            for r in sorted(
                runs, key=lambda r: (datetime.fromisoformat(r["created_at"]), r["run_id"])
            )
        ]
        assert_executed_one_at_a_time_in_order(cluster, accepted)


async def test_enqueued_runs_submitted_one_after_another_run_in_submission_order(
    tmp_path: Path,
) -> None:
    """When each creation is awaited before the next is sent, submission order is the
    client's own; the requests still alternate between API processes."""
    with chaos_cluster(tmp_path / "c") as cluster:
        async with bound_client(cluster.apis[0]) as first, bound_client(cluster.apis[1]) as second:
            thread_id = (await first.threads.create())["thread_id"]
            submitted = []
            for i in range(12):
                client = (first, second)[i % 2]
                run = await client.runs.create(
                    thread_id,
                    "steps",
                    input={"count": 1, "step_seconds": 0.05},
                    multitask_strategy="enqueue",
                )
                submitted.append(run["run_id"])
            await wait_for_status(cluster, submitted, "success", within=30.0)

        assert_executed_one_at_a_time_in_order(cluster, submitted)


def assert_executed_one_at_a_time_in_order(cluster: Cluster, expected_order: list[str]) -> None:
    """Side effects and the database's own status log both show the runs executing
    strictly one after another, in `expected_order`."""
    spans = []
    for run_id in expected_order:
        entries = cluster.effects.entries(run_id)
        assert [e["phase"] for e in entries] == ["start", "end"], entries
        spans.append((entries[0]["at"], entries[1]["at"], run_id))
    by_start = sorted(spans)
    assert [run_id for *_, run_id in by_start] == expected_order
    overlaps = [(a, b) for a, b in itertools.pairwise(by_start) if b[0] < a[1]]
    assert overlaps == [], f"side effects of runs overlapped: {overlaps}"

    rows = cluster.query(
        "SELECT run_id, status, at FROM chaos_run_transitions"
        " WHERE run_id = ANY(%s) AND status IN ('running', 'success') ORDER BY at, id",
        (expected_order,),
    )
    # Alternating running/success pairs, run after run: never two running at once.
    assert [(run_id, status) for run_id, status, _ in rows] == [
        (run_id, status) for run_id in expected_order for status in ("running", "success")
    ]
