"""Runs on PostgreSQL: the durable queue (claim, lease, fencing, reaper) and run records.

Time is the database's: eligibility (`created_at <= now()`), leases and the reaper compare
against PostgreSQL's clock, so the clocks of API replicas and workers never matter. Each
claim, lease extension and release is one statement; units of work that change a thread
and its runs lock the thread row first (see `threads.py` for the lock order).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.rows import DictRow

from garrison.domain.clock import utcnow
from garrison.domain.errors import ConflictError, NotFoundError
from garrison.domain.runs import (
    ActiveRun,
    CancelAction,
    CancelEffect,
    CancelStep,
    RunStatus,
    cancel_step,
    max_attempts_error,
    plan_multitask,
)
from garrison.domain.threads import ThreadStatus
from garrison.security.api_rows import RUNS, THREADS, ApiRowCipher
from garrison.security.lazy_reseal import reseal_row, stale_row
from garrison.storage.models import (
    CancelledRun,
    Claim,
    ClaimedRun,
    CreatedRun,
    FailedRun,
    Json,
    LeaseReport,
    NewRun,
    Page,
    QueueStats,
    ReapResult,
    Run,
    RunEnd,
    RunOutcome,
)
from garrison.storage.postgres.database import (
    Connection,
    Cursor,
    PostgresDatabase,
    commits_lazily,
)
from garrison.storage.postgres.rows import RUN_COLUMNS, jsonb, nullable_jsonb, qualified, to_run
from garrison.storage.postgres.threads import (
    KEEP,
    LOCK_THREAD,
    Keep,
    insert_thread,
    lock_thread,
    refresh_thread_status,
    settle_status,
    state_update,
)

THREAD_NOT_FOUND = "Thread or assistant not found."

_FINAL_STATUS = {
    RunEnd.SUCCESS: RunStatus.SUCCESS,
    RunEnd.ERROR: RunStatus.ERROR,
    RunEnd.TIMEOUT: RunStatus.TIMEOUT,
    RunEnd.INTERRUPTED: RunStatus.INTERRUPTED,
}

# A pending run is claimable when it is due, nothing on its thread runs, and it heads its
# thread's queue: at most one run per thread executes, and a thread's runs start in
# (created_at, run_id) order.
_CLAIMABLE = """
r.status = 'pending' AND r.created_at <= now()
AND NOT EXISTS (SELECT 1 FROM runs AS o WHERE o.thread_id = r.thread_id AND o.status = 'running')
AND NOT EXISTS (
    SELECT 1 FROM runs AS p
    WHERE p.thread_id = r.thread_id AND p.status = 'pending'
      AND (p.created_at, p.run_id) < (r.created_at, r.run_id))
"""
# One statement claims the oldest claimable run and answers the worker's next questions:
# is another run claimable now (on another thread: the claimed one's thread is busy from
# now on), and when does the earliest delayed run fall due. SKIP LOCKED lets concurrent
# claimers pass over each other's candidates instead of queueing behind them.
CLAIM = f"""
WITH candidate AS (
    SELECT r.run_id, r.thread_id FROM runs AS r
    WHERE {_CLAIMABLE}
    ORDER BY r.created_at, r.run_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE runs SET status = 'running', attempt = attempt + 1, lease_owner = %(worker)s,
           lease_expires_at = now() + make_interval(secs => %(lease)s::float8),
           started_at = COALESCE(started_at, now()), updated_at = now()
    FROM candidate WHERE runs.run_id = candidate.run_id
    RETURNING {qualified(RUN_COLUMNS, "runs")}, runs.lease_expires_at
)
SELECT claimed.*,
       -- The oldest claimable run, not EXISTS: it walks the queue's index from its head
       -- instead of scanning the table past every finished run.
       (SELECT r.run_id FROM runs AS r WHERE {_CLAIMABLE}
          AND r.thread_id IS DISTINCT FROM (SELECT thread_id FROM candidate)
        ORDER BY r.created_at, r.run_id LIMIT 1) IS NOT NULL AS more,
       (SELECT min(created_at) FROM runs
        WHERE status = 'pending' AND created_at > now()) AS next_due_at
FROM (SELECT 1) AS one LEFT JOIN claimed ON true
"""
GET = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = %s AND tenant_id = %s"
GET_ON_THREAD = GET + " AND thread_id = %s"
# The active runs of a thread, locked in run_id order after the thread's row (the shared
# lock order: a thread, then its runs). It goes out right behind LOCK_THREAD, before that
# one's answer: if the thread did not exist for LOCK_THREAD but another creator committed
# it just after, this statement must still not lock that creator's run without holding the
# thread (it would deadlock with a third creator holding the thread and waiting for the
# run), so it locks the thread itself first (a no-op when LOCK_THREAD already has).
_LOCK_ACTIVE = """
SELECT run_id, thread_id, status, created_at FROM runs
WHERE thread_id = %(thread)s AND status IN ('pending', 'running')
  AND thread_id IN (SELECT thread_id FROM threads WHERE thread_id = %(thread)s FOR UPDATE)
ORDER BY run_id
FOR UPDATE
"""
# created_at: the eligibility time. Read from the clock after the thread lock was taken,
# so a thread's runs are ordered as their creators acquired the lock (submission order),
# and delayed by what the caller asked, measured as an offset from the caller's own clock.
# Marks the (locked) thread busy with the run's config and inserts the run: one round trip.
_TAG_THREAD_AND_INSERT = f"""
WITH tagged AS (
    UPDATE threads SET status = 'busy', updated_at = now(), config = %s,
                       metadata = metadata || %s
    WHERE thread_id = %s
)
INSERT INTO runs (run_id, thread_id, tenant_id, owner, assistant_id, status, metadata, kwargs,
                  multitask_strategy, temporary, created_at)
VALUES (%s, %s, %s, %s, %s, 'pending', %s, %s, %s, %s,
        clock_timestamp() + make_interval(secs => %s::float8))
RETURNING {RUN_COLUMNS}
"""
# A thread's accepted runs must survive a server crash even where the operator turned
# synchronous_commit off; stronger settings (remote_apply...) are left as they are.
_DURABLE_COMMIT = "SET LOCAL synchronous_commit = local"
_DELETE_PENDING = "DELETE FROM runs WHERE run_id = %s"
_MARK_INTERRUPTED = """
UPDATE runs SET status = 'interrupted', cancel_action = %s, ended_at = now(), updated_at = now()
WHERE run_id = %s
"""
_FLAG_CANCEL = "UPDATE runs SET cancel_action = %s, updated_at = now() WHERE run_id = %s"
_THREAD_VISIBLE = "SELECT 1 FROM threads WHERE thread_id = %s AND tenant_id = %s"
_LIST = f"""
SELECT {RUN_COLUMNS} FROM runs WHERE thread_id = %(thread)s
AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY created_at DESC, run_id DESC LIMIT %(limit)s OFFSET %(offset)s
"""
_DELETE_FINISHED = """
DELETE FROM runs WHERE run_id = %s AND tenant_id = %s AND thread_id = %s
AND status NOT IN ('pending', 'running')
"""
_CANCEL_CANDIDATES = """
SELECT DISTINCT thread_id FROM runs
WHERE tenant_id = %(tenant)s AND status IN ('pending', 'running')
  AND (%(thread)s::text IS NULL OR thread_id = %(thread)s)
  AND (%(runs)s::text[] IS NULL OR run_id = ANY(%(runs)s))
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))
ORDER BY thread_id
"""
_LOCK_THREADS = (
    "SELECT thread_id FROM threads WHERE thread_id = ANY(%s) ORDER BY thread_id FOR UPDATE"
)
_LOCK_CANCELLABLE = """
SELECT run_id, thread_id, status, created_at FROM runs
WHERE tenant_id = %(tenant)s AND thread_id = ANY(%(threads)s)
  AND status IN ('pending', 'running')
  AND (%(runs)s::text[] IS NULL OR run_id = ANY(%(runs)s))
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))
ORDER BY run_id
FOR UPDATE
"""
# Locks the runs in run_id order before extending them (the shared lock order).
_EXTEND_LEASES = """
WITH held AS (
    SELECT r.run_id FROM runs AS r
    JOIN unnest(%(runs)s::text[], %(attempts)s::int[]) AS l (run_id, attempt)
      ON r.run_id = l.run_id AND r.attempt = l.attempt
    WHERE r.status = 'running' AND r.lease_owner = %(worker)s
    ORDER BY r.run_id
    FOR UPDATE OF r
)
UPDATE runs SET lease_expires_at = now() + make_interval(secs => %(lease)s::float8)
FROM held WHERE runs.run_id = held.run_id
RETURNING runs.run_id, runs.cancel_action
"""
# The thread of a run, locked; the attempt's fence is checked by the write that follows.
_LOCK_THREAD_OF_RUN = """
SELECT t.thread_id, t.tenant_id FROM threads AS t JOIN runs AS r ON r.thread_id = t.thread_id
WHERE r.run_id = %s
FOR UPDATE OF t
"""
# The attempt number fences every end of an attempt: a stale attempt matches no row.
_FINISH = """
UPDATE runs SET status = %s, error = %s, ended_at = now(), updated_at = now(),
       lease_owner = NULL, lease_expires_at = NULL
WHERE run_id = %s AND attempt = %s AND status = 'running'
RETURNING thread_id
"""
_ROLL_BACK = """
DELETE FROM runs WHERE run_id = %s AND attempt = %s AND status = 'running'
RETURNING thread_id
"""
_RELEASE = """
UPDATE runs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
       released = released + %s, updated_at = now()
WHERE run_id = %s AND attempt = %s AND status = 'running'
"""
_ORPHANED = """
SELECT DISTINCT thread_id FROM runs
WHERE status = 'running' AND (%(all)s OR lease_expires_at < now())
ORDER BY thread_id
"""
_LOCK_ORPHANS = """
SELECT run_id, thread_id, tenant_id, attempt, released, cancel_action FROM runs
WHERE thread_id = ANY(%(threads)s) AND status = 'running'
  AND (%(all)s OR lease_expires_at < now())
ORDER BY run_id
FOR UPDATE
"""
_FAIL_ORPHAN = """
UPDATE runs SET status = 'error', error = %s, ended_at = now(), updated_at = now(),
       lease_owner = NULL, lease_expires_at = NULL
WHERE run_id = %s
"""
_SET_THREAD_ERROR = "UPDATE threads SET error = %s WHERE thread_id = %s"
_REQUEUE_ORPHAN = """
UPDATE runs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
       updated_at = now()
WHERE run_id = %s
"""
_COUNT_BY_STATUS = "SELECT status, count(*) AS n FROM runs GROUP BY status"
# Served by the partial index runs_active_by_tenant.
_COUNT_ACTIVE = """
SELECT status, count(*) AS n FROM runs
WHERE tenant_id = %s AND status IN ('pending', 'running') GROUP BY status
"""
_STATUSES = "SELECT run_id, status FROM runs WHERE run_id = ANY(%s)"
_QUEUE_STATS = (
    "SELECT count(*) AS depth, min(created_at) FILTER (WHERE created_at <= now()) AS oldest"
    " FROM runs WHERE status = 'pending'"
)


async def _apply_cancel(cur: Cursor, step: CancelStep, thread_id: str) -> CancelledRun:
    if step.effect is CancelEffect.DELETE:
        await cur.execute(_DELETE_PENDING, (step.run_id,))
    elif step.effect is CancelEffect.MARK_INTERRUPTED:
        await cur.execute(_MARK_INTERRUPTED, (step.action.value, step.run_id))
    else:
        await cur.execute(_FLAG_CANCEL, (step.action.value, step.run_id))
    return CancelledRun(
        run_id=step.run_id,
        thread_id=thread_id,
        action=step.action,
        signal=step.effect is CancelEffect.SIGNAL,
    )


def _in_queue_order(rows: Sequence[DictRow]) -> list[DictRow]:
    # Rows are locked in run_id order; decisions follow the queue's (created_at, run_id).
    return sorted(rows, key=lambda row: (row["created_at"], row["run_id"]))


async def _create(
    conn: Connection,
    tenant_id: str,
    owner: str | None,
    new: NewRun,
    create_thread: bool,
    cipher: ApiRowCipher,
) -> tuple[Cursor, list[CancelledRun]]:
    """Queue the run's insert on a pipelined transaction: the cursor that will hold the new
    row once the transaction commits, and the runs it supersedes.

    Two round trips on an existing thread: its lock with its active runs, then the insert
    with the COMMIT."""
    cur = conn.cursor()
    if commits_lazily(conn):
        await cur.execute(_DURABLE_COMMIT)
    # The thread row lock serialises every creator of runs on this thread: under `reject`,
    # of many concurrent creators exactly one sees an idle thread. The active runs are read
    # after the lock is granted (the server runs the queue in order).
    locked = await conn.execute(LOCK_THREAD, (new.thread_id,))
    active = await conn.execute(_LOCK_ACTIVE, {"thread": new.thread_id})
    row = await locked.fetchone()
    thread_tenant = None if row is None else str(row["tenant_id"])
    if thread_tenant is None:
        if not create_thread:
            raise NotFoundError(THREAD_NOT_FOUND)
        inserted = await insert_thread(
            cur, tenant_id, owner, new.thread_id, {}, None, ThreadStatus.BUSY, cipher=cipher
        )
        # Another creator inserted it first: wait for its commit, then take our turn.
        thread_tenant = tenant_id if inserted is not None else await lock_thread(cur, new.thread_id)
        # Read without the thread's lock: read again under it.
        active = await conn.execute(_LOCK_ACTIVE, {"thread": new.thread_id})
    if thread_tenant != tenant_id:
        raise NotFoundError(THREAD_NOT_FOUND)

    steps = plan_multitask(
        new.multitask_strategy,
        [
            ActiveRun(row["run_id"], RunStatus(row["status"]))
            for row in _in_queue_order(await active.fetchall())
        ],
    )
    superseded = [await _apply_cancel(cur, step, new.thread_id) for step in steps]
    delay = max(0.0, (new.available_at - utcnow()).total_seconds())
    thread_tag = {"graph_id": new.graph_id, "assistant_id": new.assistant_id}
    inserted_run = await conn.execute(
        _TAG_THREAD_AND_INSERT,
        (
            jsonb(cipher.seal(THREADS, tenant_id, new.thread_id, "config", new.thread_config)),
            jsonb(cipher.seal_metadata(THREADS, tenant_id, new.thread_id, thread_tag)),
            new.thread_id,
            new.run_id,
            new.thread_id,
            tenant_id,
            owner,
            new.assistant_id,
            jsonb(cipher.seal_metadata(RUNS, tenant_id, new.run_id, new.metadata)),
            jsonb(cipher.seal(RUNS, tenant_id, new.run_id, "kwargs", new.kwargs)),
            new.multitask_strategy.value,
            new.temporary,
            delay,
        ),
    )
    return inserted_run, superseded


async def _cancel(
    cur: Cursor,
    tenant_id: str,
    action: CancelAction,
    thread_id: str | None,
    run_ids: Sequence[str] | None,
    statuses: Sequence[RunStatus] | None,
) -> list[CancelledRun]:
    filters = {
        "tenant": tenant_id,
        "thread": thread_id,
        "runs": list(run_ids) if run_ids is not None else None,
        "statuses": [s.value for s in statuses] if statuses is not None else None,
    }
    await cur.execute(_CANCEL_CANDIDATES, filters)
    threads = [row["thread_id"] for row in await cur.fetchall()]
    if not threads:
        return []
    await cur.execute(_LOCK_THREADS, (threads,))
    await cur.execute(_LOCK_CANCELLABLE, {**filters, "threads": threads})
    cancelled = []
    for row in _in_queue_order(await cur.fetchall()):
        step = cancel_step(ActiveRun(row["run_id"], RunStatus(row["status"])), action)
        cancelled.append(await _apply_cancel(cur, step, row["thread_id"]))
    for touched in sorted({c.thread_id for c in cancelled}):
        await refresh_thread_status(cur, touched)
    return cancelled


class _FencedOut(Exception):
    """The attempt no longer owns its run: what `_finish` wrote must be rolled back."""


async def _finish(
    conn: Connection, run_id: str, attempt: int, outcome: RunOutcome, cipher: ApiRowCipher
) -> ThreadStatus | None:
    """Three round trips on a pipelined transaction: lock the run's thread; end the run and
    write the thread's state together (undone by rolling back when the run's end is
    fenced out); store the thread's new status with the COMMIT."""
    locked = await (await conn.execute(_LOCK_THREAD_OF_RUN, (run_id,))).fetchone()
    if locked is None:
        return None  # the run is gone (rolled back, or its thread deleted)
    tenant_id, thread_id = locked["tenant_id"], locked["thread_id"]  # a run's are its thread's
    if outcome.end is RunEnd.ROLLED_BACK:
        ended = await conn.execute(_ROLL_BACK, (run_id, attempt))
    else:
        error_column = cipher.seal(RUNS, tenant_id, run_id, "error", outcome.error)
        ended = await conn.execute(
            _FINISH,
            (_FINAL_STATUS[outcome.end].value, nullable_jsonb(error_column), run_id, attempt),
        )
    # A failed run records its error on the thread, a successful one clears it; a cancelled
    # or rolled-back run neither fails its thread nor clears an earlier failure.
    error: Json | Keep | None = KEEP
    if outcome.end in (RunEnd.ERROR, RunEnd.TIMEOUT):
        error = outcome.error or {}
    elif outcome.end is RunEnd.SUCCESS:
        error = None
    written = await conn.execute(
        *state_update(thread_id, outcome.state, error=error, cipher=cipher, tenant_id=tenant_id)
    )
    if await ended.fetchone() is None:
        # Fenced: another attempt owns the run, or it was cancelled and reaped.
        raise _FencedOut
    return await settle_status(conn.cursor(), thread_id, await written.fetchone())


async def _reap(
    cur: Cursor, max_attempts: int, all_running: bool, cipher: ApiRowCipher
) -> ReapResult:
    await cur.execute(_ORPHANED, {"all": all_running})
    threads = [row["thread_id"] for row in await cur.fetchall()]
    if not threads:
        return ReapResult(requeued=[], failed=[], cancelled=[])
    await cur.execute(_LOCK_THREADS, (threads,))
    # Re-checked under the locks: a concurrent reaper, a late heartbeat or the run's own
    # finish may have settled some of them meanwhile.
    await cur.execute(_LOCK_ORPHANS, {"threads": threads, "all": all_running})
    requeued: list[str] = []
    failed: list[FailedRun] = []
    cancelled: list[CancelledRun] = []
    for row in await cur.fetchall():
        run_id, thread_id = row["run_id"], row["thread_id"]
        if row["cancel_action"]:
            # The run was being cancelled when its worker died: finish the cancel.
            action = CancelAction(row["cancel_action"])
            effect = (
                CancelEffect.DELETE
                if action is CancelAction.ROLLBACK
                else CancelEffect.MARK_INTERRUPTED
            )
            cancelled.append(
                await _apply_cancel(cur, CancelStep(run_id, action, effect), thread_id)
            )
        elif row["attempt"] - row["released"] >= max_attempts:
            error = max_attempts_error(max_attempts)
            tenant_id = row["tenant_id"]
            await cur.execute(
                _FAIL_ORPHAN, (jsonb(cipher.seal(RUNS, tenant_id, run_id, "error", error)), run_id)
            )
            await cur.execute(
                _SET_THREAD_ERROR,
                (jsonb(cipher.seal(THREADS, tenant_id, thread_id, "error", error)), thread_id),
            )
            failed.append(FailedRun(run_id, thread_id, error))
        else:
            await cur.execute(_REQUEUE_ORPHAN, (run_id,))
            requeued.append(run_id)
    for thread_id in threads:
        await refresh_thread_status(cur, thread_id)
    return ReapResult(requeued=requeued, failed=failed, cancelled=cancelled)


class PostgresRuns:
    def __init__(self, db: PostgresDatabase, cipher: ApiRowCipher | None = None) -> None:
        self._db = db
        self._cipher = cipher or ApiRowCipher()

    async def create(
        self, tenant_id: str, owner: str | None, new: NewRun, *, create_thread: bool
    ) -> CreatedRun:
        # The commit is the durability point: a run acknowledged with 2xx is never lost.
        async with self._db.pipelined_transaction() as conn:
            inserted, superseded = await _create(
                conn, tenant_id, owner, new, create_thread, self._cipher
            )
        row = await inserted.fetchone()  # received with the COMMIT
        assert row is not None  # INSERT ... RETURNING always returns the new row
        return CreatedRun(run=self._cipher.run(to_run(row)), superseded=superseded)

    async def get(self, tenant_id: str, run_id: str, thread_id: str | None = None) -> Run | None:
        if thread_id is None:
            row = await self._db.fetch_one(GET, (run_id, tenant_id))
        else:
            row = await self._db.fetch_one(GET_ON_THREAD, (run_id, tenant_id, thread_id))
        if row is None:
            return None
        stored = to_run(row)
        run = self._cipher.run(stored)
        # Lazy re-encryption: a row under an older key is re-sealed (never fails the read).
        stale = stale_row(self._cipher, RUNS, stored, row)
        await reseal_row(stale, self._db.execute, mark="%s", encode=jsonb, encode_expected=jsonb)
        return run

    async def list_runs(
        self, tenant_id: str, thread_id: str, page: Page, status: RunStatus | None
    ) -> list[Run]:
        async with self._db.connection() as conn, conn.cursor() as cur:
            await cur.execute(_THREAD_VISIBLE, (thread_id, tenant_id))
            if await cur.fetchone() is None:
                raise NotFoundError(f"Thread {thread_id} not found")
            await cur.execute(
                _LIST,
                {
                    "thread": thread_id,
                    "status": status.value if status is not None else None,
                    "limit": page.limit,
                    "offset": page.offset,
                },
            )
            return [self._cipher.run(to_run(row)) for row in await cur.fetchall()]

    async def delete(self, tenant_id: str, thread_id: str, run_id: str) -> bool:
        async with self._db.transaction() as cur:
            await cur.execute(_DELETE_FINISHED, (run_id, tenant_id, thread_id))
            if cur.rowcount:
                return True
            await cur.execute(GET_ON_THREAD, (run_id, tenant_id, thread_id))
            row = await cur.fetchone()
        if row is None:
            return False
        raise ConflictError(f"Run {run_id} is {row['status']}; cancel it before deleting it")

    async def cancel(
        self,
        tenant_id: str,
        action: CancelAction,
        *,
        thread_id: str | None = None,
        run_ids: Sequence[str] | None = None,
        statuses: Sequence[RunStatus] | None = None,
    ) -> list[CancelledRun]:
        if (run_ids is not None and not run_ids) or (statuses is not None and not statuses):
            return []
        async with self._db.transaction() as cur:
            return await _cancel(cur, tenant_id, action, thread_id, run_ids, statuses)

    async def claim(self, worker_id: str, lease_seconds: float) -> Claim:
        try:
            row = await self._db.fetch_one(CLAIM, {"worker": worker_id, "lease": lease_seconds})
        except psycopg.errors.UniqueViolation:
            # Another worker started a run of the same thread in the instant between this
            # claim's snapshot and its update; the one-running-per-thread index refused
            # the second. Nothing was claimed; the worker may try again at once.
            return Claim(claimed=None, more=True, next_due_at=None)
        assert row is not None  # the statement always returns its one summary row
        claimed = None
        if row["run_id"] is not None:
            claimed = ClaimedRun(
                self._cipher.run(to_run(row)),
                lease_owner=worker_id,
                lease_expires_at=row["lease_expires_at"],
            )
        return Claim(claimed=claimed, more=row["more"], next_due_at=row["next_due_at"])

    async def extend_leases(
        self, worker_id: str, leases: Sequence[tuple[str, int]], lease_seconds: float
    ) -> LeaseReport:
        if not leases:
            return LeaseReport(lost=[], cancel={})
        rows = await self._db.fetch_all(
            _EXTEND_LEASES,
            {
                "runs": [run_id for run_id, _ in leases],
                "attempts": [attempt for _, attempt in leases],
                "worker": worker_id,
                "lease": lease_seconds,
            },
        )
        held = {row["run_id"]: row["cancel_action"] for row in rows}
        return LeaseReport(
            lost=[run_id for run_id, _ in leases if run_id not in held],
            cancel={run_id: CancelAction(action) for run_id, action in held.items() if action},
        )

    async def finish(self, run_id: str, attempt: int, outcome: RunOutcome) -> ThreadStatus | None:
        try:
            async with self._db.pipelined_transaction() as conn:
                return await _finish(conn, run_id, attempt, outcome, self._cipher)
        except _FencedOut:
            return None

    async def release(self, run_id: str, attempt: int, *, charge_attempt: bool) -> bool:
        # The thread stays busy (its run is pending again), so no thread lock is needed.
        released = 0 if charge_attempt else 1
        return await self._db.execute(_RELEASE, (released, run_id, attempt)) == 1

    async def reap(self, max_attempts: int, *, all_running: bool = False) -> ReapResult:
        async with self._db.transaction() as cur:
            return await _reap(cur, max_attempts, all_running, self._cipher)

    async def count_by_status(self) -> dict[RunStatus, int]:
        rows = await self._db.fetch_all(_COUNT_BY_STATUS)
        return {RunStatus(row["status"]): int(row["n"]) for row in rows}

    async def count_active(self, tenant_id: str) -> dict[RunStatus, int]:
        rows = await self._db.fetch_all(_COUNT_ACTIVE, (tenant_id,))
        return {RunStatus(row["status"]): int(row["n"]) for row in rows}

    async def queue_stats(self) -> QueueStats:
        row = await self._db.fetch_one(_QUEUE_STATS)
        assert row is not None  # an aggregate always returns one row
        return QueueStats(int(row["depth"]), row["oldest"])

    async def statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        rows = await self._db.fetch_all(_STATUSES, (list(run_ids),))
        return {row["run_id"]: RunStatus(row["status"]) for row in rows}
