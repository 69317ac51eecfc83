"""Crons on SQLite."""

import sqlite3
from datetime import datetime

from garrison.domain.clock import to_text, utcnow
from garrison.domain.errors import NotFoundError
from garrison.security.api_rows import CRONS, ApiRowCipher
from garrison.security.lazy_reseal import StaleRow, reseal_row, rowcount, stale_row
from garrison.storage.models import UNSET, Cron, CronPatch, CronQuery, NewCron
from garrison.storage.sqlite.access import access_clauses
from garrison.storage.sqlite.database import SqliteDatabase
from garrison.storage.sqlite.rows import fetch_all, fetch_one, json_text, merged, order_by, to_cron

_SORTABLE = frozenset(
    {
        "cron_id",
        "assistant_id",
        "thread_id",
        "created_at",
        "updated_at",
        "next_run_date",
        "end_time",
    }
)


def _text(moment: datetime | None) -> str | None:
    return to_text(moment) if moment is not None else None


def _get(
    conn: sqlite3.Connection, tenant_id: str, cron_id: str, cipher: ApiRowCipher
) -> Cron | None:
    row = fetch_one(
        conn, "SELECT * FROM crons WHERE cron_id = ? AND tenant_id = ?", (cron_id, tenant_id)
    )
    return cipher.cron(to_cron(row)) if row else None


def _read(
    conn: sqlite3.Connection, tenant_id: str, cron_id: str, cipher: ApiRowCipher
) -> tuple[Cron | None, StaleRow | None]:
    """The cron, and what to re-seal of it when it is under an older key."""
    row = fetch_one(
        conn, "SELECT * FROM crons WHERE cron_id = ? AND tenant_id = ?", (cron_id, tenant_id)
    )
    if row is None:
        return None, None
    stored = to_cron(row)
    return cipher.cron(stored), stale_row(cipher, CRONS, stored, row)


def _require(conn: sqlite3.Connection, tenant_id: str, cron_id: str, cipher: ApiRowCipher) -> Cron:
    cron = _get(conn, tenant_id, cron_id, cipher)
    if cron is None:
        raise NotFoundError(f"Cron {cron_id} not found")
    return cron


def _create(
    conn: sqlite3.Connection, tenant_id: str, owner: str | None, new: NewCron, cipher: ApiRowCipher
) -> Cron:
    if new.thread_id is not None:
        thread = fetch_one(
            conn,
            "SELECT 1 FROM threads WHERE thread_id = ? AND tenant_id = ?",
            (new.thread_id, tenant_id),
        )
        if thread is None:
            raise NotFoundError(f"Thread {new.thread_id} not found")
    now = to_text(utcnow())
    conn.execute(
        "INSERT INTO crons (cron_id, tenant_id, owner, assistant_id, thread_id, schedule, timezone,"
        " payload, metadata, end_time, next_run_date, enabled, on_run_completed, user_id,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new.cron_id,
            tenant_id,
            owner,
            new.assistant_id,
            new.thread_id,
            new.schedule,
            new.timezone,
            json_text(cipher.seal(CRONS, tenant_id, new.cron_id, "payload", new.payload)),
            json_text(cipher.seal_metadata(CRONS, tenant_id, new.cron_id, new.metadata)),
            _text(new.end_time),
            _text(new.next_run_date),
            int(new.enabled),
            new.on_run_completed,
            new.user_id,
            now,
            now,
        ),
    )
    return _require(conn, tenant_id, new.cron_id, cipher)


def _update(
    conn: sqlite3.Connection, tenant_id: str, cron_id: str, patch: CronPatch, cipher: ApiRowCipher
) -> Cron:
    current = _require(conn, tenant_id, cron_id, cipher)
    payload = cipher.seal(
        CRONS, tenant_id, cron_id, "payload", merged(current.payload, patch.payload)
    )
    metadata = cipher.seal_metadata(
        CRONS, tenant_id, cron_id, merged(current.metadata, patch.metadata)
    )
    end_time = current.end_time if patch.end_time is UNSET else patch.end_time
    conn.execute(
        "UPDATE crons SET schedule = ?, timezone = ?, payload = ?, metadata = ?, end_time = ?,"
        " next_run_date = ?, enabled = ?, on_run_completed = ?, updated_at = ? WHERE cron_id = ?",
        (
            patch.schedule or current.schedule,
            patch.timezone if patch.timezone is not None else current.timezone,
            json_text(payload),
            json_text(metadata),
            _text(end_time),
            _text(patch.next_run_date or current.next_run_date),
            int(patch.enabled if patch.enabled is not None else current.enabled),
            patch.on_run_completed or current.on_run_completed,
            to_text(utcnow()),
            cron_id,
        ),
    )
    return _require(conn, tenant_id, cron_id, cipher)


def _delete(conn: sqlite3.Connection, tenant_id: str, cron_id: str) -> bool:
    cur = conn.execute(
        "DELETE FROM crons WHERE cron_id = ? AND tenant_id = ?", (cron_id, tenant_id)
    )
    return cur.rowcount > 0


def _where(tenant_id: str, query: CronQuery) -> tuple[str, list[object]]:
    clauses: list[str] = ["tenant_id = ?"]
    params: list[object] = [tenant_id]
    if query.assistant_id is not None:
        clauses.append("assistant_id = ?")
        params.append(query.assistant_id)
    if query.thread_id is not None:
        clauses.append("thread_id = ?")
        params.append(query.thread_id)
    if query.enabled is not None:
        clauses.append("enabled = ?")
        params.append(int(query.enabled))
    if query.metadata:
        clauses.append("json_contains(metadata, ?)")
        params.append(json_text(query.metadata))
    access, access_params = access_clauses(query.access)
    clauses += access
    params += access_params
    return " AND ".join(clauses), params


def _search(
    conn: sqlite3.Connection, tenant_id: str, query: CronQuery, cipher: ApiRowCipher
) -> tuple[list[Cron], bool]:
    where, params = _where(tenant_id, query)
    order = order_by(query.sort_by, _SORTABLE, query.sort_order, "cron_id")
    rows = fetch_all(
        conn,
        f"SELECT * FROM crons WHERE {where} {order} LIMIT ? OFFSET ?",
        (*params, query.page.limit + 1, query.page.offset),
    )
    return [cipher.cron(to_cron(r)) for r in rows[: query.page.limit]], len(rows) > query.page.limit


def _count(conn: sqlite3.Connection, tenant_id: str, query: CronQuery) -> int:
    where, params = _where(tenant_id, query)
    return int(conn.execute(f"SELECT COUNT(*) FROM crons WHERE {where}", params).fetchone()[0])


def _due(conn: sqlite3.Connection, now: datetime, limit: int, cipher: ApiRowCipher) -> list[Cron]:
    rows = fetch_all(
        conn,
        "SELECT * FROM crons WHERE enabled = 1 AND next_run_date IS NOT NULL"
        " AND next_run_date <= ? ORDER BY next_run_date LIMIT ?",
        (to_text(now), limit),
    )
    return [cipher.cron(to_cron(r)) for r in rows]


def _advance(
    conn: sqlite3.Connection, cron_id: str, expected_next: datetime, next_run_date: datetime | None
) -> bool:
    # `enabled = 1`: a cron paused after the scheduler read it must not fire that tick.
    cur = conn.execute(
        "UPDATE crons SET next_run_date = ?, enabled = CASE WHEN ? IS NULL THEN 0 ELSE enabled END,"
        " updated_at = ? WHERE cron_id = ? AND next_run_date = ? AND enabled = 1",
        (
            _text(next_run_date),
            _text(next_run_date),
            to_text(utcnow()),
            cron_id,
            to_text(expected_next),
        ),
    )
    return cur.rowcount == 1


class SqliteCrons:
    def __init__(self, db: SqliteDatabase, cipher: ApiRowCipher | None = None) -> None:
        self._db = db
        self._cipher = cipher or ApiRowCipher()

    async def create(self, tenant_id: str, owner: str | None, new: NewCron) -> Cron:
        return await self._db.transaction(_create, tenant_id, owner, new, self._cipher)

    async def get(self, tenant_id: str, cron_id: str) -> Cron | None:
        cron, stale = await self._db.read(_read, tenant_id, cron_id, self._cipher)
        # Lazy re-encryption: a row under an older key is re-sealed (never fails the read).
        await reseal_row(stale, self._reseal, mark="?", encode=json_text)
        return cron

    async def _reseal(self, sql: str, params: list[object]) -> int:
        return await self._db.transaction(rowcount, sql, params)

    async def update(self, tenant_id: str, cron_id: str, patch: CronPatch) -> Cron:
        return await self._db.transaction(_update, tenant_id, cron_id, patch, self._cipher)

    async def delete(self, tenant_id: str, cron_id: str) -> bool:
        return await self._db.transaction(_delete, tenant_id, cron_id)

    async def search(self, tenant_id: str, query: CronQuery) -> tuple[list[Cron], bool]:
        return await self._db.read(_search, tenant_id, query, self._cipher)

    async def count(self, tenant_id: str, query: CronQuery) -> int:
        return await self._db.read(_count, tenant_id, query)

    async def due(self, now: datetime, limit: int) -> list[Cron]:
        return await self._db.read(_due, now, limit, self._cipher)

    async def advance(
        self, cron_id: str, expected_next: datetime, next_run_date: datetime | None
    ) -> bool:
        return await self._db.transaction(_advance, cron_id, expected_next, next_run_date)
