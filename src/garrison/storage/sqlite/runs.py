"""Runs on SQLite: the durable queue (claim, lease, fencing, reaper) and run records."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from garrison.domain.clock import after, from_text, to_text, utcnow
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
from garrison.security.lazy_reseal import StaleRow, reseal_row, rowcount, stale_row
from garrison.storage.models import (
    CancelledRun,
    Claim,
    ClaimedRun,
    CreatedRun,
    FailedRun,
    LeaseReport,
    NewRun,
    Page,
    QueueStats,
    ReapResult,
    Run,
    RunEnd,
    RunOutcome,
)
from garrison.storage.sqlite.database import SqliteDatabase
from garrison.storage.sqlite.rows import fetch_all, fetch_one, json_text, placeholders, to_run
from garrison.storage.sqlite.threads import (
    KEEP,
    insert_thread,
    refresh_thread_status,
    write_state,
)

THREAD_NOT_FOUND = "Thread or assistant not found."

_FINAL_STATUS = {
    RunEnd.SUCCESS: RunStatus.SUCCESS,
    RunEnd.ERROR: RunStatus.ERROR,
    RunEnd.TIMEOUT: RunStatus.TIMEOUT,
    RunEnd.INTERRUPTED: RunStatus.INTERRUPTED,
}

# The head of each thread's queue, if nothing on its thread is running: at most one run
# per thread executes, and a thread's runs start in (created_at, run_id) order.
_CLAIMABLE = """
SELECT r.run_id FROM runs AS r
WHERE r.status = 'pending' AND r.created_at <= ?
  AND NOT EXISTS (SELECT 1 FROM runs AS o WHERE o.thread_id = r.thread_id AND o.status = 'running')
  AND NOT EXISTS (
      SELECT 1 FROM runs AS p
      WHERE p.thread_id = r.thread_id AND p.status = 'pending'
        AND (p.created_at < r.created_at OR (p.created_at = r.created_at AND p.run_id < r.run_id)))
ORDER BY r.created_at, r.run_id
LIMIT 1
"""


def _get(
    conn: sqlite3.Connection,
    tenant_id: str,
    run_id: str,
    thread_id: str | None,
    cipher: ApiRowCipher,
) -> Run | None:
    return _read(conn, tenant_id, run_id, thread_id, cipher)[0]


def _read(
    conn: sqlite3.Connection,
    tenant_id: str,
    run_id: str,
    thread_id: str | None,
    cipher: ApiRowCipher,
) -> tuple[Run | None, StaleRow | None]:
    """The run, and what to re-seal of it when it is under an older key."""
    sql, params = "SELECT * FROM runs WHERE run_id = ? AND tenant_id = ?", [run_id, tenant_id]
    if thread_id is not None:
        sql += " AND thread_id = ?"
        params.append(thread_id)
    row = fetch_one(conn, sql, params)
    if row is None:
        return None, None
    stored = to_run(row)
    return cipher.run(stored), stale_row(cipher, RUNS, stored, row)


def _apply_cancel(
    conn: sqlite3.Connection, step: CancelStep, thread_id: str, now: str
) -> CancelledRun:
    if step.effect is CancelEffect.DELETE:
        conn.execute("DELETE FROM runs WHERE run_id = ?", (step.run_id,))
    elif step.effect is CancelEffect.MARK_INTERRUPTED:
        conn.execute(
            "UPDATE runs SET status = 'interrupted', cancel_action = ?, ended_at = ?,"
            " updated_at = ? WHERE run_id = ?",
            (step.action.value, now, now, step.run_id),
        )
    else:
        conn.execute(
            "UPDATE runs SET cancel_action = ?, updated_at = ? WHERE run_id = ?",
            (step.action.value, now, step.run_id),
        )
    return CancelledRun(
        run_id=step.run_id,
        thread_id=thread_id,
        action=step.action,
        signal=step.effect is CancelEffect.SIGNAL,
    )


def _create(
    conn: sqlite3.Connection,
    tenant_id: str,
    owner: str | None,
    new: NewRun,
    create_thread: bool,
    cipher: ApiRowCipher,
) -> CreatedRun:
    now = to_text(utcnow())
    thread = fetch_one(conn, "SELECT tenant_id FROM threads WHERE thread_id = ?", (new.thread_id,))
    if thread is not None and thread["tenant_id"] != tenant_id:
        raise NotFoundError(THREAD_NOT_FOUND)
    if thread is None:
        if not create_thread:
            raise NotFoundError(THREAD_NOT_FOUND)
        insert_thread(
            conn, tenant_id, owner, new.thread_id, {}, None, ThreadStatus.BUSY, cipher=cipher
        )

    active = [
        ActiveRun(row["run_id"], RunStatus(row["status"]))
        for row in fetch_all(
            conn,
            "SELECT run_id, status FROM runs WHERE thread_id = ?"
            " AND status IN ('pending', 'running') ORDER BY created_at, run_id",
            (new.thread_id,),
        )
    ]
    superseded = [
        _apply_cancel(conn, step, new.thread_id, now)
        for step in plan_multitask(new.multitask_strategy, active)
    ]
    inserted = fetch_one(
        conn,
        "INSERT INTO runs (run_id, thread_id, tenant_id, owner, assistant_id, status, metadata,"
        " kwargs, multitask_strategy, temporary, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?) RETURNING *",
        (
            new.run_id,
            new.thread_id,
            tenant_id,
            owner,
            new.assistant_id,
            json_text(cipher.seal_metadata(RUNS, tenant_id, new.run_id, new.metadata)),
            json_text(cipher.seal(RUNS, tenant_id, new.run_id, "kwargs", new.kwargs)),
            new.multitask_strategy.value,
            int(new.temporary),
            to_text(new.available_at),
            now,
        ),
    )
    conn.execute(
        "UPDATE threads SET status = 'busy', updated_at = ?, config = ?,"
        " metadata = json_patch(metadata, ?) WHERE thread_id = ?",
        (
            now,
            json_text(cipher.seal(THREADS, tenant_id, new.thread_id, "config", new.thread_config)),
            json_text(
                cipher.seal_metadata(
                    THREADS,
                    tenant_id,
                    new.thread_id,
                    {"graph_id": new.graph_id, "assistant_id": new.assistant_id},
                )
            ),
            new.thread_id,
        ),
    )
    assert inserted is not None  # INSERT ... RETURNING always returns the new row
    return CreatedRun(run=cipher.run(to_run(inserted)), superseded=superseded)


def _list(
    conn: sqlite3.Connection,
    tenant_id: str,
    thread_id: str,
    page: Page,
    status: RunStatus | None,
    cipher: ApiRowCipher,
) -> list[Run]:
    exists = fetch_one(
        conn, "SELECT 1 FROM threads WHERE thread_id = ? AND tenant_id = ?", (thread_id, tenant_id)
    )
    if exists is None:
        raise NotFoundError(f"Thread {thread_id} not found")
    sql, params = "SELECT * FROM runs WHERE thread_id = ?", [thread_id]
    if status is not None:
        sql += " AND status = ?"
        params.append(status.value)
    sql += " ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?"
    rows = fetch_all(conn, sql, (*params, page.limit, page.offset))
    return [cipher.run(to_run(r)) for r in rows]


def _delete(
    conn: sqlite3.Connection, tenant_id: str, thread_id: str, run_id: str, cipher: ApiRowCipher
) -> bool:
    run = _get(conn, tenant_id, run_id, thread_id, cipher)
    if run is None:
        return False
    if run.status in (RunStatus.PENDING, RunStatus.RUNNING):
        raise ConflictError(f"Run {run_id} is {run.status.value}; cancel it before deleting it")
    conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
    return True


def _cancel(
    conn: sqlite3.Connection,
    tenant_id: str,
    action: CancelAction,
    thread_id: str | None,
    run_ids: Sequence[str] | None,
    statuses: Sequence[RunStatus] | None,
) -> list[CancelledRun]:
    sql = "SELECT run_id, thread_id, status FROM runs WHERE tenant_id = ?"
    sql += " AND status IN ('pending', 'running')"
    params: list[object] = [tenant_id]
    if thread_id is not None:
        sql += " AND thread_id = ?"
        params.append(thread_id)
    if run_ids is not None:
        sql += f" AND run_id IN ({placeholders(len(run_ids))})" if run_ids else " AND 0"
        params.extend(run_ids)
    if statuses is not None:
        sql += f" AND status IN ({placeholders(len(statuses))})" if statuses else " AND 0"
        params.extend(s.value for s in statuses)
    now = to_text(utcnow())
    cancelled = []
    for row in fetch_all(conn, sql + " ORDER BY created_at, run_id", params):
        step = cancel_step(ActiveRun(row["run_id"], RunStatus(row["status"])), action)
        cancelled.append(_apply_cancel(conn, step, row["thread_id"], now))
    for touched in {c.thread_id for c in cancelled}:
        refresh_thread_status(conn, touched)
    return cancelled


def _claim(
    conn: sqlite3.Connection, worker_id: str, lease_seconds: float, cipher: ApiRowCipher
) -> Claim:
    now = utcnow()
    stamp = to_text(now)
    lease_expires_at = after(now, lease_seconds)
    row = fetch_one(
        conn,
        f"UPDATE runs SET status = 'running', attempt = attempt + 1, lease_owner = ?,"
        f" lease_expires_at = ?, started_at = COALESCE(started_at, ?), updated_at = ?"
        f" WHERE run_id = ({_CLAIMABLE}) RETURNING *",
        (worker_id, to_text(lease_expires_at), stamp, stamp, stamp),
    )
    claimed = None
    if row is not None:
        claimed = ClaimedRun(
            cipher.run(to_run(row)), lease_owner=worker_id, lease_expires_at=lease_expires_at
        )
    # Answer the worker's next questions in the same hop: claim again now, or sleep until?
    more = conn.execute(f"SELECT EXISTS ({_CLAIMABLE})", (stamp,)).fetchone()[0]
    due = conn.execute(
        "SELECT MIN(created_at) FROM runs WHERE status = 'pending' AND created_at > ?", (stamp,)
    ).fetchone()[0]
    return Claim(claimed=claimed, more=bool(more), next_due_at=from_text(due) if due else None)


def _extend_leases(
    conn: sqlite3.Connection,
    worker_id: str,
    leases: Sequence[tuple[str, int]],
    lease_seconds: float,
) -> LeaseReport:
    until = to_text(after(utcnow(), lease_seconds))
    lost, cancel = [], {}
    for run_id, attempt in leases:
        row = fetch_one(
            conn,
            "UPDATE runs SET lease_expires_at = ? WHERE run_id = ? AND attempt = ?"
            " AND status = 'running' AND lease_owner = ? RETURNING cancel_action",
            (until, run_id, attempt, worker_id),
        )
        if row is None:
            lost.append(run_id)
        elif row["cancel_action"]:
            cancel[run_id] = CancelAction(row["cancel_action"])
    return LeaseReport(lost=lost, cancel=cancel)


def _owns(conn: sqlite3.Connection, run_id: str, attempt: int) -> sqlite3.Row | None:
    return fetch_one(
        conn,
        "SELECT thread_id FROM runs WHERE run_id = ? AND attempt = ? AND status = 'running'",
        (run_id, attempt),
    )


def _finish(
    conn: sqlite3.Connection, run_id: str, attempt: int, outcome: RunOutcome, cipher: ApiRowCipher
) -> ThreadStatus | None:
    now = to_text(utcnow())
    # The attempt number fences the write: a stale attempt matches no row.
    if outcome.end is RunEnd.ROLLED_BACK:
        owned = fetch_one(
            conn,
            "DELETE FROM runs WHERE run_id = ? AND attempt = ? AND status = 'running'"
            " RETURNING thread_id, tenant_id",
            (run_id, attempt),
        )
    else:
        owned = fetch_one(
            conn,
            "UPDATE runs SET status = ?, error = ?, ended_at = ?, updated_at = ?,"
            " lease_owner = NULL, lease_expires_at = NULL"
            " WHERE run_id = ? AND attempt = ? AND status = 'running'"
            " RETURNING thread_id, tenant_id",
            (
                _FINAL_STATUS[outcome.end].value,
                _sealed_error(cipher, RUNS, owner_tenant(conn, run_id), run_id, outcome.error),
                now,
                now,
                run_id,
                attempt,
            ),
        )
    if owned is None:
        return None  # fenced: another attempt owns the run, or it was cancelled and reaped
    thread_id, tenant_id = owned["thread_id"], owned["tenant_id"]
    failed = outcome.end in (RunEnd.ERROR, RunEnd.TIMEOUT)
    # A cancelled or rolled-back run neither fails its thread nor clears an earlier failure.
    sets_error = failed or outcome.end is RunEnd.SUCCESS
    write_state(
        conn,
        thread_id,
        outcome.state,
        error=((outcome.error or {}) if failed else None) if sets_error else KEEP,
        cipher=cipher,
        tenant_id=tenant_id,
    )
    return refresh_thread_status(conn, thread_id)


def _release(conn: sqlite3.Connection, run_id: str, attempt: int, charge_attempt: bool) -> bool:
    if _owns(conn, run_id, attempt) is None:
        return False
    conn.execute(
        "UPDATE runs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,"
        " released = released + ?, updated_at = ? WHERE run_id = ?",
        (0 if charge_attempt else 1, to_text(utcnow()), run_id),
    )
    return True


def _reap(
    conn: sqlite3.Connection, max_attempts: int, all_running: bool, cipher: ApiRowCipher
) -> ReapResult:
    now = to_text(utcnow())
    sql = "SELECT run_id, thread_id, tenant_id, attempt, released, cancel_action FROM runs"
    sql += " WHERE status = 'running'"
    params: tuple[object, ...] = ()
    if not all_running:
        sql += " AND lease_expires_at < ?"
        params = (now,)
    requeued: list[str] = []
    failed: list[FailedRun] = []
    cancelled: list[CancelledRun] = []
    for row in fetch_all(conn, sql, params):
        run_id = row["run_id"]
        if row["cancel_action"]:
            # The run was being cancelled when its worker died: finish the cancel.
            action = CancelAction(row["cancel_action"])
            effect = (
                CancelEffect.DELETE
                if action is CancelAction.ROLLBACK
                else CancelEffect.MARK_INTERRUPTED
            )
            cancelled.append(
                _apply_cancel(conn, CancelStep(run_id, action, effect), row["thread_id"], now)
            )
        elif row["attempt"] - row["released"] >= max_attempts:
            error = max_attempts_error(max_attempts)
            conn.execute(
                "UPDATE runs SET status = 'error', error = ?, ended_at = ?, updated_at = ?,"
                " lease_owner = NULL, lease_expires_at = NULL WHERE run_id = ?",
                (_sealed_error(cipher, RUNS, row["tenant_id"], run_id, error), now, now, run_id),
            )
            conn.execute(
                "UPDATE threads SET error = ? WHERE thread_id = ?",
                (
                    _sealed_error(cipher, THREADS, row["tenant_id"], row["thread_id"], error),
                    row["thread_id"],
                ),
            )
            failed.append(FailedRun(run_id, row["thread_id"], error))
        else:
            conn.execute(
                "UPDATE runs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,"
                " updated_at = ? WHERE run_id = ?",
                (now, run_id),
            )
            requeued.append(run_id)
        refresh_thread_status(conn, row["thread_id"])
    return ReapResult(requeued=requeued, failed=failed, cancelled=cancelled)


def owner_tenant(conn: sqlite3.Connection, run_id: str) -> str:
    """The tenant of a run (its error is sealed for it); "" when the run is gone."""
    row = conn.execute("SELECT tenant_id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return str(row[0]) if row else ""


def _sealed_error(
    cipher: ApiRowCipher, table: str, tenant_id: str, row_id: str, error: object
) -> str | None:
    if error is None:
        return None
    return json_text(cipher.seal(table, tenant_id, row_id, "error", error))


_STATUS_CHUNK = 500  # ids per query, well under SQLite's bound-parameter limit


def _statuses(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, RunStatus]:
    found: dict[str, RunStatus] = {}
    for first in range(0, len(run_ids), _STATUS_CHUNK):
        chunk = run_ids[first : first + _STATUS_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT run_id, status FROM runs WHERE run_id IN ({marks})", chunk)
        found.update((run_id, RunStatus(status)) for run_id, status in rows)
    return found


def _count_by_status(conn: sqlite3.Connection) -> dict[RunStatus, int]:
    rows = conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
    return {RunStatus(status): int(count) for status, count in rows}


def _count_active(conn: sqlite3.Connection, tenant_id: str) -> dict[RunStatus, int]:
    rows = conn.execute(
        "SELECT status, COUNT(*) FROM runs"
        " WHERE tenant_id = ? AND status IN ('pending', 'running') GROUP BY status",
        (tenant_id,),
    ).fetchall()
    return {RunStatus(status): int(count) for status, count in rows}


def _queue_stats(conn: sqlite3.Connection) -> QueueStats:
    depth, oldest = conn.execute(
        "SELECT COUNT(*), MIN(CASE WHEN created_at <= ? THEN created_at END)"
        " FROM runs WHERE status = 'pending'",
        (to_text(utcnow()),),
    ).fetchone()
    return QueueStats(int(depth), from_text(oldest) if oldest is not None else None)


class SqliteRuns:
    def __init__(self, db: SqliteDatabase, cipher: ApiRowCipher | None = None) -> None:
        self._db = db
        self._cipher = cipher or ApiRowCipher()

    async def create(
        self, tenant_id: str, owner: str | None, new: NewRun, *, create_thread: bool
    ) -> CreatedRun:
        # An accepted run must survive power loss, not only a crash: sync this commit.
        return await self._db.transaction(
            _create, tenant_id, owner, new, create_thread, self._cipher, durable=True
        )

    async def get(self, tenant_id: str, run_id: str, thread_id: str | None = None) -> Run | None:
        run, stale = await self._db.read(_read, tenant_id, run_id, thread_id, self._cipher)
        # Lazy re-encryption: a row under an older key is re-sealed (never fails the read).
        await reseal_row(stale, self._reseal, mark="?", encode=json_text)
        return run

    async def _reseal(self, sql: str, params: list[object]) -> int:
        return await self._db.transaction(rowcount, sql, params)

    async def list_runs(
        self, tenant_id: str, thread_id: str, page: Page, status: RunStatus | None
    ) -> list[Run]:
        return await self._db.read(_list, tenant_id, thread_id, page, status, self._cipher)

    async def delete(self, tenant_id: str, thread_id: str, run_id: str) -> bool:
        return await self._db.transaction(_delete, tenant_id, thread_id, run_id, self._cipher)

    async def cancel(
        self,
        tenant_id: str,
        action: CancelAction,
        *,
        thread_id: str | None = None,
        run_ids: Sequence[str] | None = None,
        statuses: Sequence[RunStatus] | None = None,
    ) -> list[CancelledRun]:
        return await self._db.transaction(_cancel, tenant_id, action, thread_id, run_ids, statuses)

    async def claim(self, worker_id: str, lease_seconds: float) -> Claim:
        return await self._db.transaction(_claim, worker_id, lease_seconds, self._cipher)

    async def extend_leases(
        self, worker_id: str, leases: Sequence[tuple[str, int]], lease_seconds: float
    ) -> LeaseReport:
        return await self._db.transaction(_extend_leases, worker_id, leases, lease_seconds)

    async def finish(self, run_id: str, attempt: int, outcome: RunOutcome) -> ThreadStatus | None:
        return await self._db.transaction(_finish, run_id, attempt, outcome, self._cipher)

    async def release(self, run_id: str, attempt: int, *, charge_attempt: bool) -> bool:
        return await self._db.transaction(_release, run_id, attempt, charge_attempt)

    async def reap(self, max_attempts: int, *, all_running: bool = False) -> ReapResult:
        return await self._db.transaction(_reap, max_attempts, all_running, self._cipher)

    async def count_by_status(self) -> dict[RunStatus, int]:
        return await self._db.read(_count_by_status)

    async def count_active(self, tenant_id: str) -> dict[RunStatus, int]:
        return await self._db.read(_count_active, tenant_id)

    async def queue_stats(self) -> QueueStats:
        return await self._db.read(_queue_stats)

    async def statuses(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        return await self._db.read(_statuses, list(run_ids))
