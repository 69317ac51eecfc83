"""The run queue contract: multitask rules, claim order, leases, fencing, reaping, cancel."""

import asyncio
from datetime import timedelta

import pytest

from garrison.domain.clock import utcnow
from garrison.domain.errors import ConflictError, NotFoundError
from garrison.domain.runs import CancelAction, MultitaskStrategy, RunStatus
from garrison.domain.threads import ThreadStatus
from garrison.storage.models import ClaimedRun, Page, RunEnd, RunOutcome, ThreadState
from garrison.storage.ports import Storage
from tests.contract.factories import OTHER_TENANT, TENANT, make_thread, new_run

LEASE = 30.0


async def claim(storage: Storage, worker: str, lease: float = LEASE) -> ClaimedRun | None:
    return (await storage.runs.claim(worker, lease)).claimed


async def _status(storage: Storage, run_id: str) -> RunStatus | None:
    run = await storage.runs.get(TENANT, run_id)
    return None if run is None else run.status


async def test_create_marks_the_thread_busy_and_tags_it(storage: Storage) -> None:
    thread = await make_thread(storage)
    created = await storage.runs.create(
        TENANT, "owner", new_run(thread.thread_id), create_thread=False
    )
    assert created.run.status is RunStatus.PENDING and created.superseded == []
    assert created.run.attempt == 0 and created.run.kwargs == {"input": {"x": 1}}
    refreshed = await storage.threads.get(TENANT, thread.thread_id)
    assert refreshed is not None and refreshed.status is ThreadStatus.BUSY
    assert refreshed.metadata == {"graph_id": "graph-1", "assistant_id": "assistant-1"}


async def test_missing_thread_is_not_found_unless_created(storage: Storage) -> None:
    run = new_run("00000000-0000-0000-0000-000000000001")
    with pytest.raises(NotFoundError):
        await storage.runs.create(TENANT, None, run, create_thread=False)
    created = await storage.runs.create(TENANT, None, run, create_thread=True)
    thread = await storage.threads.get(TENANT, created.run.thread_id)
    assert thread is not None and thread.status is ThreadStatus.BUSY


async def test_another_tenants_thread_is_not_found(storage: Storage) -> None:
    thread = await make_thread(storage, OTHER_TENANT)
    with pytest.raises(NotFoundError):
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=True)


async def test_reject_refuses_a_busy_thread_and_writes_nothing(storage: Storage) -> None:
    thread = await make_thread(storage)
    await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    with pytest.raises(ConflictError):
        await storage.runs.create(
            TENANT, None, new_run(thread.thread_id, MultitaskStrategy.REJECT), create_thread=False
        )
    runs = await storage.runs.list_runs(TENANT, thread.thread_id, Page(), None)
    assert len(runs) == 1


async def test_interrupt_marks_pending_runs_and_flags_running_ones(storage: Storage) -> None:
    thread = await make_thread(storage)
    first = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    claimed = await claim(storage, "w1", LEASE)
    assert claimed is not None and claimed.run.run_id == first.run_id
    queued = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    created = await storage.runs.create(
        TENANT, None, new_run(thread.thread_id, MultitaskStrategy.INTERRUPT), create_thread=False
    )
    by_id = {c.run_id: c for c in created.superseded}
    assert by_id[first.run_id].signal and by_id[first.run_id].action is CancelAction.INTERRUPT
    assert not by_id[queued.run_id].signal
    assert await _status(storage, queued.run_id) is RunStatus.INTERRUPTED
    assert await _status(storage, first.run_id) is RunStatus.RUNNING  # until its worker stops


async def test_rollback_deletes_pending_runs(storage: Storage) -> None:
    thread = await make_thread(storage)
    queued = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    created = await storage.runs.create(
        TENANT, None, new_run(thread.thread_id, MultitaskStrategy.ROLLBACK), create_thread=False
    )
    assert [c.run_id for c in created.superseded] == [queued.run_id]
    assert await storage.runs.get(TENANT, queued.run_id) is None


async def test_claim_takes_one_run_per_thread_in_fifo_order(storage: Storage) -> None:
    busy, other = await make_thread(storage), await make_thread(storage)
    a1 = (await storage.runs.create(TENANT, None, new_run(busy.thread_id), create_thread=False)).run
    a2 = (await storage.runs.create(TENANT, None, new_run(busy.thread_id), create_thread=False)).run
    b1 = (
        await storage.runs.create(TENANT, None, new_run(other.thread_id), create_thread=False)
    ).run
    first = await claim(storage, "w1", LEASE)
    second = await claim(storage, "w1", LEASE)
    assert first is not None and second is not None
    assert [first.run.run_id, second.run.run_id] == [a1.run_id, b1.run_id]
    assert await claim(storage, "w1", LEASE) is None  # a2 waits for a1
    await storage.runs.finish(a1.run_id, 1, RunOutcome(RunEnd.SUCCESS))
    third = await claim(storage, "w1", LEASE)
    assert third is not None and third.run.run_id == a2.run_id


async def test_claim_starts_an_attempt_with_a_lease(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    claimed = await claim(storage, "worker-7", LEASE)
    assert claimed is not None
    assert claimed.run.status is RunStatus.RUNNING and claimed.run.attempt == 1
    assert claimed.lease_owner == "worker-7" and claimed.lease_expires_at > claimed.run.created_at
    assert claimed.run.run_id == run.run_id


async def test_delayed_runs_wait_until_they_are_due(storage: Storage) -> None:
    thread = await make_thread(storage)
    await storage.runs.create(
        TENANT, None, new_run(thread.thread_id, delay=0.3), create_thread=False
    )
    waiting = await storage.runs.claim("w1", LEASE)
    assert waiting.claimed is None and not waiting.more
    assert waiting.next_due_at is not None and waiting.next_due_at > utcnow()
    await asyncio.sleep(0.35)
    assert await claim(storage, "w1", LEASE) is not None


async def test_a_claim_says_whether_more_runs_are_claimable(storage: Storage) -> None:
    busy, other = await make_thread(storage), await make_thread(storage)
    for thread in (busy, busy, other):
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    first = await storage.runs.claim("w1", LEASE)
    assert first.claimed is not None and first.more  # the other thread's run is free
    second = await storage.runs.claim("w1", LEASE)
    assert second.claimed is not None and not second.more  # busy's second run must wait
    assert second.next_due_at is None


async def test_concurrent_claims_never_hand_out_a_run_twice(storage: Storage) -> None:
    threads = [await make_thread(storage) for _ in range(10)]
    for thread in threads:
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    claims = await asyncio.gather(*[claim(storage, f"w{i}") for i in range(20)])
    claimed = [c.run.run_id for c in claims if c is not None]
    assert len(claimed) == 10 and len(set(claimed)) == 10


async def test_finish_records_the_outcome_and_the_thread_state(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    await claim(storage, "w1", LEASE)
    state = ThreadState(values={"answer": 42}, interrupts={}, has_next_tasks=False)
    status = await storage.runs.finish(run.run_id, 1, RunOutcome(RunEnd.SUCCESS, state=state))
    assert status is ThreadStatus.IDLE
    assert await _status(storage, run.run_id) is RunStatus.SUCCESS
    refreshed = await storage.threads.get(TENANT, thread.thread_id)
    assert refreshed is not None
    assert refreshed.status is ThreadStatus.IDLE and refreshed.values == {"answer": 42}


@pytest.mark.parametrize(
    ("end", "has_next", "thread_status"),
    [
        (RunEnd.SUCCESS, True, ThreadStatus.INTERRUPTED),
        (RunEnd.ERROR, True, ThreadStatus.ERROR),
        (RunEnd.TIMEOUT, False, ThreadStatus.ERROR),
        (RunEnd.INTERRUPTED, False, ThreadStatus.IDLE),
    ],
)
async def test_thread_status_follows_the_run_end(
    storage: Storage, end: RunEnd, has_next: bool, thread_status: ThreadStatus
) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    await claim(storage, "w1", LEASE)
    state = ThreadState(values={}, interrupts={}, has_next_tasks=has_next)
    error = {"error": "E", "message": "m"} if end in (RunEnd.ERROR, RunEnd.TIMEOUT) else None
    await storage.runs.finish(run.run_id, 1, RunOutcome(end, error=error, state=state))
    refreshed = await storage.threads.get(TENANT, thread.thread_id)
    assert refreshed is not None and refreshed.status is thread_status


async def test_a_thread_with_queued_work_stays_busy(storage: Storage) -> None:
    thread = await make_thread(storage)
    first = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    await claim(storage, "w1", LEASE)
    await storage.runs.finish(first.run_id, 1, RunOutcome(RunEnd.SUCCESS))
    refreshed = await storage.threads.get(TENANT, thread.thread_id)
    assert refreshed is not None and refreshed.status is ThreadStatus.BUSY


async def test_rolled_back_run_disappears(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    await claim(storage, "w1", LEASE)
    await storage.runs.finish(run.run_id, 1, RunOutcome(RunEnd.ROLLED_BACK))
    assert await storage.runs.get(TENANT, run.run_id) is None


async def test_finish_is_fenced_by_attempt(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    await claim(storage, "w1", LEASE)
    stale = RunOutcome(
        RunEnd.ERROR,
        error={"error": "Stale", "message": "from attempt 2"},
        state=ThreadState(values={"stale": True}, interrupts={}, has_next_tasks=True),
    )
    assert await storage.runs.finish(run.run_id, 2, stale) is None
    assert await _status(storage, run.run_id) is RunStatus.RUNNING
    # Nothing of the stale outcome reached the thread: state, error and status are as the
    # live attempt left them.
    refreshed = await storage.threads.get(TENANT, thread.thread_id)
    assert refreshed is not None
    assert refreshed.status is ThreadStatus.BUSY
    assert refreshed.values is None and refreshed.error is None


async def test_leases_extend_report_losses_and_cancel_flags(storage: Storage) -> None:
    thread, other = await make_thread(storage), await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    lost = (
        await storage.runs.create(TENANT, None, new_run(other.thread_id), create_thread=False)
    ).run
    await claim(storage, "w1", LEASE)
    await claim(storage, "w1", LEASE)
    await storage.runs.cancel(TENANT, CancelAction.ROLLBACK, run_ids=[run.run_id])
    report = await storage.runs.extend_leases("w1", [(run.run_id, 1), (lost.run_id, 7)], LEASE)
    assert report.lost == [lost.run_id]
    assert report.cancel == {run.run_id: CancelAction.ROLLBACK}
    other_worker = await storage.runs.extend_leases("w2", [(run.run_id, 1)], LEASE)
    assert other_worker.lost == [run.run_id]


async def test_release_returns_a_run_to_the_queue_without_charging(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    for attempt in range(1, 6):  # five drains never exhaust max_attempts=3
        claimed = await claim(storage, "w1", LEASE)
        assert claimed is not None and claimed.run.attempt == attempt  # the fencing token grows
        assert await storage.runs.release(run.run_id, attempt, charge_attempt=False)
    await claim(storage, "w1", 0.01)
    await asyncio.sleep(0.05)
    result = await storage.runs.reap(max_attempts=3)
    assert result.requeued == [run.run_id] and result.failed == []


async def test_reaper_requeues_expired_leases_then_gives_up(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    for _ in range(2):
        assert await claim(storage, "dead-worker", 0.01) is not None
        await asyncio.sleep(0.05)
        result = await storage.runs.reap(max_attempts=3)
        assert result.requeued == [run.run_id]
        assert await _status(storage, run.run_id) is RunStatus.PENDING
    assert await claim(storage, "dead-worker", 0.01) is not None
    await asyncio.sleep(0.05)
    result = await storage.runs.reap(max_attempts=3)
    assert [f.run_id for f in result.failed] == [run.run_id]
    failed = await storage.runs.get(TENANT, run.run_id)
    assert failed is not None and failed.status is RunStatus.ERROR and failed.attempt == 3
    assert failed.error is not None and failed.error["error"] == "MaxAttemptsExceeded"
    refreshed = await storage.threads.get(TENANT, thread.thread_id)
    assert refreshed is not None and refreshed.status is ThreadStatus.ERROR


async def test_reaper_leaves_live_leases_alone(storage: Storage) -> None:
    thread = await make_thread(storage)
    await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    await claim(storage, "w1", LEASE)
    result = await storage.runs.reap(max_attempts=3)
    assert result.requeued == [] and result.failed == []
    everything = await storage.runs.reap(max_attempts=3, all_running=True)
    assert len(everything.requeued) == 1


async def test_reaper_finishes_the_cancel_of_an_orphan(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    await claim(storage, "dead-worker", 0.01)
    await storage.runs.cancel(TENANT, CancelAction.INTERRUPT, run_ids=[run.run_id])
    await asyncio.sleep(0.05)
    result = await storage.runs.reap(max_attempts=3)
    assert [c.run_id for c in result.cancelled] == [run.run_id]
    assert await _status(storage, run.run_id) is RunStatus.INTERRUPTED


async def test_cancel_filters(storage: Storage) -> None:
    thread, other = await make_thread(storage), await make_thread(storage)
    running = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    await claim(storage, "w1", LEASE)
    pending = (
        await storage.runs.create(
            TENANT, None, new_run(other.thread_id, delay=60), create_thread=False
        )
    ).run
    only_pending = await storage.runs.cancel(
        TENANT, CancelAction.INTERRUPT, statuses=[RunStatus.PENDING]
    )
    assert [(c.run_id, c.signal) for c in only_pending] == [(pending.run_id, False)]
    foreign = await storage.runs.cancel(
        OTHER_TENANT, CancelAction.INTERRUPT, thread_id=thread.thread_id
    )
    assert foreign == []
    on_thread = await storage.runs.cancel(
        TENANT, CancelAction.INTERRUPT, thread_id=thread.thread_id
    )
    assert [(c.run_id, c.signal) for c in on_thread] == [(running.run_id, True)]
    assert await storage.runs.cancel(TENANT, CancelAction.INTERRUPT, run_ids=[]) == []


async def test_runs_are_scoped_by_tenant(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    assert await storage.runs.get(OTHER_TENANT, run.run_id) is None
    with pytest.raises(NotFoundError):
        await storage.runs.list_runs(OTHER_TENANT, thread.thread_id, Page(), None)


async def test_list_is_newest_first_and_filters_status(storage: Storage) -> None:
    thread = await make_thread(storage)
    first = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    second = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    listed = await storage.runs.list_runs(TENANT, thread.thread_id, Page(), None)
    assert [r.run_id for r in listed] == [second.run_id, first.run_id]
    page = await storage.runs.list_runs(TENANT, thread.thread_id, Page(limit=1, offset=1), None)
    assert [r.run_id for r in page] == [first.run_id]
    assert await storage.runs.list_runs(TENANT, thread.thread_id, Page(), RunStatus.SUCCESS) == []


async def test_active_runs_cannot_be_deleted(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    with pytest.raises(ConflictError):
        await storage.runs.delete(TENANT, thread.thread_id, run.run_id)
    await claim(storage, "w1", LEASE)
    await storage.runs.finish(run.run_id, 1, RunOutcome(RunEnd.SUCCESS))
    assert await storage.runs.delete(TENANT, thread.thread_id, run.run_id)
    assert not await storage.runs.delete(TENANT, thread.thread_id, run.run_id)


async def test_deleting_a_thread_deletes_its_runs(storage: Storage) -> None:
    thread = await make_thread(storage)
    run = (
        await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    ).run
    assert await storage.threads.delete(TENANT, thread.thread_id)
    assert await storage.runs.get(TENANT, run.run_id) is None


async def test_counts_by_status(storage: Storage) -> None:
    thread = await make_thread(storage)
    await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    await claim(storage, "w1", LEASE)
    counts = await storage.runs.count_by_status()
    assert counts[RunStatus.PENDING] == 1 and counts[RunStatus.RUNNING] == 1


async def test_count_active_counts_one_tenants_pending_and_running_runs(
    storage: Storage,
) -> None:
    done, busy = await make_thread(storage), await make_thread(storage)
    finished = await storage.runs.create(TENANT, None, new_run(done.thread_id), create_thread=False)
    claimed = await claim(storage, "w1")
    assert claimed is not None and claimed.run.run_id == finished.run.run_id
    await storage.runs.finish(finished.run.run_id, 1, RunOutcome(RunEnd.SUCCESS))
    await storage.runs.create(TENANT, None, new_run(busy.thread_id), create_thread=False)
    await storage.runs.create(TENANT, None, new_run(busy.thread_id), create_thread=False)
    assert await claim(storage, "w1") is not None
    other = await make_thread(storage, OTHER_TENANT)
    await storage.runs.create(OTHER_TENANT, None, new_run(other.thread_id), create_thread=False)
    counts = await storage.runs.count_active(TENANT)
    assert counts == {RunStatus.PENDING: 1, RunStatus.RUNNING: 1}
    assert await storage.runs.count_active(OTHER_TENANT) == {RunStatus.PENDING: 1}
    assert await storage.runs.count_active("nobody") == {}


async def test_queue_stats_count_pending_runs_and_age_the_oldest_eligible(
    storage: Storage,
) -> None:
    empty = await storage.runs.queue_stats()
    assert empty.depth == 0 and empty.oldest_pending_at is None
    thread = await make_thread(storage)
    before = utcnow()
    first = await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    # A run delayed into the future is queued but has not started waiting yet.
    await storage.runs.create(
        TENANT, None, new_run(thread.thread_id, delay=3600), create_thread=False
    )
    stats = await storage.runs.queue_stats()
    assert stats.depth == 3
    assert stats.oldest_pending_at is not None
    assert abs((stats.oldest_pending_at - first.run.created_at).total_seconds()) < 0.01
    assert before - timedelta(seconds=1) <= stats.oldest_pending_at <= utcnow()
    await claim(storage, "w1", LEASE)  # running runs leave the queue
    assert (await storage.runs.queue_stats()).depth == 2


async def test_statuses_of_many_runs_at_once(storage: Storage) -> None:
    thread = await make_thread(storage)
    first = await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    other_thread = await make_thread(storage, OTHER_TENANT)
    second = await storage.runs.create(
        OTHER_TENANT, None, new_run(other_thread.thread_id), create_thread=False
    )
    claimed = await claim(storage, "w1")
    assert claimed is not None and claimed.run.run_id == first.run.run_id
    missing = "00000000-0000-0000-0000-00000000dead"
    found = await storage.runs.statuses([first.run.run_id, second.run.run_id, missing])
    # Both tenants' runs (the caller already holds them), and nothing for a missing id.
    assert found == {first.run.run_id: RunStatus.RUNNING, second.run.run_id: RunStatus.PENDING}
    assert await storage.runs.statuses([]) == {}
    many = [missing[:-4] + f"{i:04x}" for i in range(1200)]  # more than one query's worth
    assert await storage.runs.statuses([*many, first.run.run_id]) == {
        first.run.run_id: RunStatus.RUNNING
    }
