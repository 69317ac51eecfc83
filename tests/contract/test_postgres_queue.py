"""The run queue on PostgreSQL, where many processes share it: concurrent claims and
creators on separate connections, the one-running-run-per-thread index, the database
clock, and the attempt fence on checkpoint writes."""

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from garrison.domain.attempts import AttemptToken, current_attempt
from garrison.domain.clock import utcnow
from garrison.domain.errors import ConflictError, LeaseLostError
from garrison.domain.runs import MultitaskStrategy, RunStatus
from garrison.storage.models import RunEnd, RunOutcome
from garrison.storage.postgres import PostgresStorage
from tests.contract.conftest import open_postgres
from tests.contract.factories import TENANT, make_thread, new_run

LEASE = 30.0


@pytest.fixture
async def postgres(postgres_url: str) -> AsyncIterator[PostgresStorage]:
    storage = await open_postgres(postgres_url)
    yield storage
    await storage.close()


@contextlib.asynccontextmanager
async def replicas(url: str, count: int) -> AsyncIterator[list[PostgresStorage]]:
    """`count` storages with pools of their own, as separate processes would have."""
    opened = [await open_postgres(url, pool_max_size=4) for _ in range(count)]
    try:
        yield opened
    finally:
        for storage in opened:
            await storage.close()


@contextlib.contextmanager
def attempt_of(run_id: str, attempt: int) -> Iterator[None]:
    token = current_attempt.set(AttemptToken(run_id, attempt))
    try:
        yield
    finally:
        current_attempt.reset(token)


async def scalar(storage: PostgresStorage, query: str, *params: Any) -> Any:
    row = await storage.db.fetch_one(query, params)
    assert row is not None
    return next(iter(row.values()))


async def test_many_workers_never_double_claim_or_overlap_a_thread(postgres_url: str) -> None:
    async with replicas(postgres_url, 6) as workers:
        api = workers[0]
        threads = [await make_thread(api) for _ in range(12)]
        expected: dict[str, list[str]] = defaultdict(list)
        for _ in range(4):
            for thread in threads:
                created = await api.runs.create(
                    TENANT, None, new_run(thread.thread_id), create_thread=False
                )
                expected[thread.thread_id].append(created.run.run_id)
        started: dict[str, list[str]] = defaultdict(list)
        running: dict[str, str] = {}
        claimed: list[str] = []
        overlaps: list[str] = []

        async def work(storage: PostgresStorage, worker: str) -> None:
            idle = 0
            while idle < 20:
                claim = await storage.runs.claim(worker, LEASE)
                if claim.claimed is None:
                    idle += 1
                    await asyncio.sleep(0.01)
                    continue
                idle = 0
                run = claim.claimed.run
                claimed.append(run.run_id)
                if run.thread_id in running:
                    overlaps.append(run.thread_id)
                running[run.thread_id] = run.run_id
                started[run.thread_id].append(run.run_id)
                await asyncio.sleep(0.005)  # the "graph"
                del running[run.thread_id]
                status = await storage.runs.finish(
                    run.run_id, run.attempt, RunOutcome(RunEnd.SUCCESS)
                )
                assert status is not None

        # Two loops per replica, each on its own pooled connection.
        await asyncio.gather(
            *(work(storage, f"w{i}-{j}") for i, storage in enumerate(workers) for j in range(2))
        )
    assert overlaps == []
    assert len(claimed) == len(set(claimed)) == 48
    assert started == expected  # every thread's runs, each once, in FIFO order


async def test_at_most_one_running_run_per_thread_is_enforced_by_the_schema(
    postgres: PostgresStorage,
) -> None:
    thread = await make_thread(postgres)
    first = await postgres.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    second = await postgres.runs.create(
        TENANT, None, new_run(thread.thread_id), create_thread=False
    )
    assert (await postgres.runs.claim("w1", LEASE)).claimed is not None
    with pytest.raises(psycopg.errors.UniqueViolation, match="runs_one_running_per_thread"):
        await postgres.db.execute(
            "UPDATE runs SET status = 'running' WHERE run_id = %s", (second.run.run_id,)
        )
    assert await postgres.runs.finish(first.run.run_id, 1, RunOutcome(RunEnd.SUCCESS))
    claimed = (await postgres.runs.claim("w1", LEASE)).claimed
    assert claimed is not None and claimed.run.run_id == second.run.run_id


async def test_reject_admits_exactly_one_of_fifty_concurrent_creators(postgres_url: str) -> None:
    async with replicas(postgres_url, 5) as apis:
        thread = await make_thread(apis[0])

        async def create(index: int) -> str | None:
            storage = apis[index % len(apis)]
            run = new_run(thread.thread_id, MultitaskStrategy.REJECT)
            try:
                await storage.runs.create(TENANT, None, run, create_thread=False)
            except ConflictError:
                return None
            return run.run_id

        admitted = [r for r in await asyncio.gather(*(create(i) for i in range(50))) if r]
        assert len(admitted) == 1
        active = await scalar(
            apis[0], "SELECT count(*) FROM runs WHERE thread_id = %s", thread.thread_id
        )
    assert active == 1


async def test_concurrent_creators_of_a_new_thread_all_land_on_it(postgres_url: str) -> None:
    async with replicas(postgres_url, 4) as apis:
        thread_id = str(uuid.uuid4())
        created = await asyncio.gather(
            *(
                apis[i % 4].runs.create(TENANT, None, new_run(thread_id), create_thread=True)
                for i in range(12)
            )
        )
        # Enqueued in the order the creators took the thread's lock: created_at is read
        # after the lock, so it is strictly increasing in that order.
        times = sorted(c.run.created_at for c in created)
        assert len(set(times)) == 12
        order = [c.run.run_id for c in sorted(created, key=lambda c: c.run.created_at)]
        claimed = []
        for _ in range(12):
            claim = (await apis[0].runs.claim("w", LEASE)).claimed
            assert claim is not None
            claimed.append(claim.run.run_id)
            await apis[0].runs.finish(claim.run.run_id, 1, RunOutcome(RunEnd.SUCCESS))
    assert claimed == order


async def test_time_is_the_databases_whatever_the_callers_clock(
    postgres: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    skew = timedelta(hours=1)

    def skewed_now() -> datetime:
        return utcnow() + skew

    # An API replica whose clock runs an hour ahead asks for a run "now".
    monkeypatch.setattr("garrison.storage.postgres.runs.utcnow", skewed_now)
    thread = await make_thread(postgres)
    run = new_run(thread.thread_id, available_at=skewed_now())
    await postgres.runs.create(TENANT, None, run, create_thread=False)
    db_now: datetime = await scalar(postgres, "SELECT now()")
    claim = await postgres.runs.claim("w1", LEASE)
    assert claim.claimed is not None  # due now by the database's clock, not in an hour
    lease_left = (claim.claimed.lease_expires_at - db_now).total_seconds()
    assert LEASE - 1 < lease_left < LEASE + 1
    # The reaper compares leases with the database's clock too: nothing expired.
    assert (await postgres.runs.reap(max_attempts=3)).requeued == []
    # ...until the database says the lease is over.
    await postgres.db.execute(
        "UPDATE runs SET lease_expires_at = now() - interval '1 second' WHERE run_id = %s",
        (run.run_id,),
    )
    assert (await postgres.runs.reap(max_attempts=3)).requeued == [run.run_id]


async def test_extending_a_lease_moves_it_by_the_database_clock(postgres: PostgresStorage) -> None:
    thread = await make_thread(postgres)
    run = new_run(thread.thread_id)
    await postgres.runs.create(TENANT, None, run, create_thread=False)
    assert (await postgres.runs.claim("w1", 1.0)).claimed is not None
    report = await postgres.runs.extend_leases("w1", [(run.run_id, 1)], 120.0)
    assert report.lost == []
    left = await scalar(
        postgres,
        "SELECT extract(epoch FROM lease_expires_at - now()) FROM runs WHERE run_id = %s",
        run.run_id,
    )
    assert 119 < float(left) <= 120


async def stale_and_current_attempts(storage: PostgresStorage) -> tuple[str, str]:
    """A run whose first attempt lost its lease and whose second attempt owns it now."""
    thread = await make_thread(storage)
    run = new_run(thread.thread_id)
    await storage.runs.create(TENANT, None, run, create_thread=False)
    assert (await storage.runs.claim("stale-worker", 0.01)).claimed is not None
    await asyncio.sleep(0.05)
    assert (await storage.runs.reap(max_attempts=3)).requeued == [run.run_id]
    second = (await storage.runs.claim("new-worker", LEASE)).claimed
    assert second is not None and second.run.attempt == 2
    return thread.thread_id, run.run_id


def checkpoint_args(thread_id: str, run_id: str) -> tuple[Any, Any, Any, Any]:
    checkpoint = {**empty_checkpoint(), "channel_values": {"notes": ["x"]}}
    checkpoint["channel_versions"] = {"notes": "1"}
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    return config, checkpoint, {"run_id": run_id}, {"notes": "1"}


async def checkpoint_rows(storage: PostgresStorage, thread_id: str) -> tuple[int, int, int]:
    counts = []
    for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        counts.append(
            await scalar(storage, f"SELECT count(*) FROM {table} WHERE thread_id = %s", thread_id)
        )
    return counts[0], counts[1], counts[2]


async def test_a_stale_attempt_cannot_write_checkpoints(postgres: PostgresStorage) -> None:
    thread_id, run_id = await stale_and_current_attempts(postgres)
    saver = postgres.checkpointer
    saved = await saver.aput(*checkpoint_args(thread_id, run_id))  # API-side: not fenced
    before = await checkpoint_rows(postgres, thread_id)
    assert before == (1, 1, 0)

    with attempt_of(run_id, 1):
        with pytest.raises(LeaseLostError):
            await saver.aput(*checkpoint_args(thread_id, run_id))
        with pytest.raises(LeaseLostError):
            await saver.aput_writes(saved, [("notes", ["y"])], "task-1")
        with pytest.raises(LeaseLostError):
            await saver.adelete_for_runs([run_id])
        with pytest.raises(LeaseLostError):
            await saver.adelete_thread(thread_id)
        with pytest.raises(LeaseLostError):
            await saver.acopy_thread(thread_id, str(uuid.uuid4()))
    assert await checkpoint_rows(postgres, thread_id) == before  # nothing left behind

    with attempt_of(run_id, 2):  # the owner writes as usual
        await saver.aput_writes(saved, [("notes", ["y"])], "task-1")
        await saver.aput(*checkpoint_args(thread_id, run_id))
    assert await checkpoint_rows(postgres, thread_id) == (2, 1, 1)


async def test_a_finished_run_fences_its_own_late_writes(postgres: PostgresStorage) -> None:
    thread = await make_thread(postgres)
    run = new_run(thread.thread_id)
    await postgres.runs.create(TENANT, None, run, create_thread=False)
    assert (await postgres.runs.claim("w1", LEASE)).claimed is not None
    await postgres.runs.finish(run.run_id, 1, RunOutcome(RunEnd.SUCCESS))
    with attempt_of(run.run_id, 1), pytest.raises(LeaseLostError):
        await postgres.checkpointer.aput(*checkpoint_args(thread.thread_id, run.run_id))
    assert await checkpoint_rows(postgres, thread.thread_id) == (0, 0, 0)


class State(TypedDict):
    steps: list[str]


async def test_a_graph_of_a_stale_attempt_stops_with_lease_lost(postgres: PostgresStorage) -> None:
    thread_id, run_id = await stale_and_current_attempts(postgres)
    builder = StateGraph(State)
    builder.add_node("step", lambda state: {"steps": [*state["steps"], "step"]})
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    graph = builder.compile(checkpointer=postgres.checkpointer)
    config: RunnableConfig = {"configurable": {"thread_id": thread_id, "run_id": run_id}}
    start: State = {"steps": []}

    with attempt_of(run_id, 1), pytest.raises(LeaseLostError):
        await graph.ainvoke(start, config, durability="sync")
    assert await checkpoint_rows(postgres, thread_id) == (0, 0, 0)

    with attempt_of(run_id, 2):
        result = await graph.ainvoke(start, config, durability="sync")
    assert result == {"steps": ["step"]}


async def test_the_fence_holds_the_run_until_the_write_commits(postgres: PostgresStorage) -> None:
    """A reaper (or finish) that changes the run waits for an in-flight fenced write, so a
    write never commits after its attempt was superseded."""
    thread = await make_thread(postgres)
    run = new_run(thread.thread_id)
    await postgres.runs.create(TENANT, None, run, create_thread=False)
    assert (await postgres.runs.claim("w1", LEASE)).claimed is not None
    async with postgres.db.transaction() as cur:
        await cur.execute(
            "SELECT 1 FROM runs WHERE run_id = %s AND attempt = 1 AND status = 'running' FOR SHARE",
            (run.run_id,),
        )
        finishing = asyncio.create_task(
            postgres.runs.finish(run.run_id, 1, RunOutcome(RunEnd.SUCCESS))
        )
        await asyncio.sleep(0.2)
        assert not finishing.done()  # blocked behind the fence's row lock
    assert await finishing is not None
    status = await scalar(postgres, "SELECT status FROM runs WHERE run_id = %s", run.run_id)
    assert status == RunStatus.SUCCESS
