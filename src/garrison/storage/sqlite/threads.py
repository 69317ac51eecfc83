"""Threads on SQLite."""

import sqlite3
from datetime import datetime
from enum import Enum
from functools import partial
from typing import Literal

from garrison.domain.clock import after, to_text, utcnow
from garrison.domain.errors import ConflictError, NotFoundError
from garrison.domain.threads import ThreadStatus, derive_thread_status
from garrison.security.api_rows import THREADS, ApiRowCipher
from garrison.security.lazy_reseal import StaleRow, reseal_row, rowcount, stale_row
from garrison.storage.models import IfExists, Json, Thread, ThreadQuery, ThreadState
from garrison.storage.ports import TTLSpec
from garrison.storage.sqlite.access import access_clauses
from garrison.storage.sqlite.database import SqliteDatabase
from garrison.storage.sqlite.rows import (
    fetch_all,
    fetch_one,
    json_text,
    merged,
    order_by,
    placeholders,
    to_thread,
)

_SORTABLE = frozenset({"thread_id", "status", "created_at", "updated_at", "state_updated_at"})


def get_thread(
    conn: sqlite3.Connection, tenant_id: str, thread_id: str, cipher: ApiRowCipher
) -> Thread | None:
    row = fetch_one(
        conn, "SELECT * FROM threads WHERE thread_id = ? AND tenant_id = ?", (thread_id, tenant_id)
    )
    return cipher.thread(to_thread(row)) if row else None


def _read_thread(
    conn: sqlite3.Connection, tenant_id: str, thread_id: str, cipher: ApiRowCipher
) -> tuple[Thread | None, StaleRow | None]:
    """The thread, and what to re-seal of it when it is under an older key."""
    row = fetch_one(
        conn, "SELECT * FROM threads WHERE thread_id = ? AND tenant_id = ?", (thread_id, tenant_id)
    )
    if row is None:
        return None, None
    stored = to_thread(row)
    return cipher.thread(stored), stale_row(cipher, THREADS, stored, row)


def require_thread(
    conn: sqlite3.Connection, tenant_id: str, thread_id: str, cipher: ApiRowCipher
) -> Thread:
    thread = get_thread(conn, tenant_id, thread_id, cipher)
    if thread is None:
        raise NotFoundError(f"Thread {thread_id} not found")
    return thread


def insert_thread(
    conn: sqlite3.Connection,
    tenant_id: str,
    owner: str | None,
    thread_id: str,
    metadata: Json,
    ttl: TTLSpec | None,
    status: ThreadStatus = ThreadStatus.IDLE,
    *,
    cipher: ApiRowCipher,
) -> sqlite3.Row | None:
    """Insert a thread unless its id is taken; the new row, or None when it was."""
    now = utcnow()
    stamp = to_text(now)
    return fetch_one(
        conn,
        "INSERT INTO threads (thread_id, tenant_id, owner, status, metadata, created_at,"
        " updated_at, state_updated_at, ttl_strategy, ttl_minutes, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (thread_id) DO NOTHING RETURNING *",
        (
            thread_id,
            tenant_id,
            owner,
            status.value,
            json_text(cipher.seal_metadata(THREADS, tenant_id, thread_id, metadata)),
            stamp,
            stamp,
            stamp,
            *_ttl_columns(ttl, now),
        ),
    )


def _ttl_columns(ttl: TTLSpec | None, now: datetime) -> tuple[str | None, float | None, str | None]:
    if ttl is None:
        return None, None, None
    return ttl.strategy, ttl.minutes, to_text(after(now, ttl.minutes * 60))


def refresh_thread_status(conn: sqlite3.Connection, thread_id: str) -> ThreadStatus:
    """Re-derive a thread's status from its runs, last error and checkpoint."""
    row = fetch_one(
        conn,
        "SELECT error IS NOT NULL AS failed, has_next,"
        " EXISTS (SELECT 1 FROM runs WHERE runs.thread_id = threads.thread_id"
        "         AND status IN ('pending', 'running')) AS active"
        " FROM threads WHERE thread_id = ?",
        (thread_id,),
    )
    if row is None:
        return ThreadStatus.IDLE  # the thread is gone (deleted with its runs)
    status = derive_thread_status(
        has_active_runs=bool(row["active"]),
        last_run_failed=bool(row["failed"]),
        has_next_tasks=bool(row["has_next"]),
    )
    conn.execute(
        "UPDATE threads SET status = ?, updated_at = ? WHERE thread_id = ? AND status != ?",
        (status.value, to_text(utcnow()), thread_id, status.value),
    )
    return status


def _create(
    conn: sqlite3.Connection,
    tenant_id: str,
    owner: str | None,
    thread_id: str,
    metadata: Json,
    ttl: TTLSpec | None,
    if_exists: IfExists,
    cipher: ApiRowCipher,
) -> Thread:
    inserted = insert_thread(conn, tenant_id, owner, thread_id, metadata, ttl, cipher=cipher)
    if inserted is not None:
        return cipher.thread(to_thread(inserted))
    existing = get_thread(conn, tenant_id, thread_id, cipher)
    if existing is not None and if_exists is IfExists.DO_NOTHING:
        return existing
    raise ConflictError(f"Thread {thread_id} already exists")


def _update(
    conn: sqlite3.Connection,
    tenant_id: str,
    thread_id: str,
    metadata: Json | None,
    ttl: TTLSpec | None,
    cipher: ApiRowCipher,
) -> Thread:
    current = require_thread(conn, tenant_id, thread_id, cipher)
    now = utcnow()
    sealed = cipher.seal_metadata(THREADS, tenant_id, thread_id, merged(current.metadata, metadata))
    conn.execute(
        "UPDATE threads SET metadata = ?, updated_at = ? WHERE thread_id = ?",
        (json_text(sealed), to_text(now), thread_id),
    )
    if ttl is not None:
        conn.execute(
            "UPDATE threads SET ttl_strategy = ?, ttl_minutes = ?, expires_at = ?"
            " WHERE thread_id = ?",
            (*_ttl_columns(ttl, now), thread_id),
        )
    return require_thread(conn, tenant_id, thread_id, cipher)


def _delete(conn: sqlite3.Connection, tenant_id: str, thread_id: str) -> bool:
    cur = conn.execute(
        "DELETE FROM threads WHERE thread_id = ? AND tenant_id = ?", (thread_id, tenant_id)
    )
    return cur.rowcount > 0


def _where(tenant_id: str, query: ThreadQuery) -> tuple[str, list[object]]:
    clauses: list[str] = ["tenant_id = ?"]
    params: list[object] = [tenant_id]
    if query.metadata:
        clauses.append("json_contains(metadata, ?)")
        params.append(json_text(query.metadata))
    if query.values:
        clauses.append('json_contains("values", ?)')
        params.append(json_text(query.values))
    if query.ids is not None:
        clauses.append(f"thread_id IN ({placeholders(len(query.ids))})" if query.ids else "0")
        params.extend(query.ids)
    if query.status is not None:
        clauses.append("status = ?")
        params.append(query.status.value)
    access, access_params = access_clauses(query.access)
    clauses += access
    params += access_params
    return " AND ".join(clauses), params


def _search(
    conn: sqlite3.Connection, tenant_id: str, query: ThreadQuery, cipher: ApiRowCipher
) -> tuple[list[Thread], bool]:
    where, params = _where(tenant_id, query)
    order = order_by(query.sort_by, _SORTABLE, query.sort_order, "thread_id")
    rows = fetch_all(
        conn,
        f"SELECT * FROM threads WHERE {where} {order} LIMIT ? OFFSET ?",
        (*params, query.page.limit + 1, query.page.offset),
    )
    threads = [cipher.thread(to_thread(r)) for r in rows[: query.page.limit]]
    return threads, len(rows) > query.page.limit


def _count(conn: sqlite3.Connection, tenant_id: str, query: ThreadQuery) -> int:
    where, params = _where(tenant_id, query)
    return int(conn.execute(f"SELECT COUNT(*) FROM threads WHERE {where}", params).fetchone()[0])


def _copy(
    conn: sqlite3.Connection,
    tenant_id: str,
    owner: str | None,
    source_id: str,
    target_id: str,
    cipher: ApiRowCipher,
) -> Thread:
    source = require_thread(conn, tenant_id, source_id, cipher)
    insert_thread(conn, tenant_id, owner, target_id, source.metadata, None, cipher=cipher)

    # Re-sealed for the copy: a ciphertext is bound to its row, so copying it would not open.
    def sealed(field: str, value: object) -> str | None:
        stored = cipher.seal(THREADS, tenant_id, target_id, field, value)
        return None if stored is None else json_text(stored)

    conn.execute(
        'UPDATE threads SET config = ?, "values" = ?, interrupts = ?, has_next = src.has_next,'
        " status = CASE WHEN src.has_next THEN 'interrupted' ELSE 'idle' END"
        " FROM (SELECT * FROM threads WHERE thread_id = ?) AS src WHERE threads.thread_id = ?",
        (
            sealed("config", source.config),
            sealed("values", source.values),
            sealed("interrupts", source.interrupts),
            source_id,
            target_id,
        ),
    )
    return require_thread(conn, tenant_id, target_id, cipher)


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # write_state: leave the thread's last error as it is


def write_state(
    conn: sqlite3.Connection,
    thread_id: str,
    state: ThreadState | None,
    *,
    error: Json | _Keep | None = KEEP,
    cipher: ApiRowCipher,
    tenant_id: str,
) -> None:
    """Store a thread's latest values, interrupts and whether tasks remain (when `state` is
    given) and its last run's error (None clears it), in one statement."""
    stamp = to_text(utcnow())
    assignments: list[str] = ["updated_at = ?"]
    params: list[object] = [stamp]
    if state is not None:
        assignments.append('"values" = ?, interrupts = ?, has_next = ?, state_updated_at = ?')
        params += [
            json_text(cipher.seal(THREADS, tenant_id, thread_id, "values", state.values))
            if state.values is not None
            else None,
            json_text(cipher.seal(THREADS, tenant_id, thread_id, "interrupts", state.interrupts)),
            int(state.has_next_tasks),
            stamp,
        ]
    if error is not KEEP:
        assignments.append("error = ?")
        sealed = cipher.seal(THREADS, tenant_id, thread_id, "error", error)
        params.append(None if sealed is None else json_text(sealed))
    conn.execute(
        f"UPDATE threads SET {', '.join(assignments)} WHERE thread_id = ?", (*params, thread_id)
    )


def _record_state(
    conn: sqlite3.Connection,
    tenant_id: str,
    thread_id: str,
    state: ThreadState,
    cipher: ApiRowCipher,
) -> Thread:
    thread = require_thread(conn, tenant_id, thread_id, cipher)
    if thread.status is ThreadStatus.BUSY:
        raise ConflictError(f"Thread {thread_id} is busy")
    # A manual update supersedes a failed run's error, as a new run would.
    write_state(conn, thread_id, state, error=None, cipher=cipher, tenant_id=tenant_id)
    refresh_thread_status(conn, thread_id)
    return require_thread(conn, tenant_id, thread_id, cipher)


def _ids_with_metadata(conn: sqlite3.Connection, tenant_id: str, metadata: Json) -> list[str]:
    rows = conn.execute(
        "SELECT thread_id FROM threads WHERE tenant_id = ? AND json_contains(metadata, ?)",
        (tenant_id, json_text(metadata)),
    ).fetchall()
    return [r[0] for r in rows]


def _expired(
    conn: sqlite3.Connection, now: datetime, limit: int
) -> list[tuple[str, str, Literal["delete", "keep_latest"]]]:
    rows = conn.execute(
        "SELECT tenant_id, thread_id, ttl_strategy FROM threads"
        " WHERE expires_at IS NOT NULL AND expires_at <= ? AND status != 'busy'"
        " ORDER BY expires_at LIMIT ?",
        (to_text(now), limit),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def _clear_ttl(conn: sqlite3.Connection, tenant_id: str, thread_id: str) -> None:
    conn.execute(
        "UPDATE threads SET expires_at = NULL WHERE thread_id = ? AND tenant_id = ?",
        (thread_id, tenant_id),
    )


class SqliteThreads:
    def __init__(self, db: SqliteDatabase, cipher: ApiRowCipher | None = None) -> None:
        self._db = db
        self._cipher = cipher or ApiRowCipher()

    async def create(
        self,
        tenant_id: str,
        owner: str | None,
        thread_id: str,
        metadata: Json,
        ttl: TTLSpec | None,
        if_exists: IfExists,
    ) -> Thread:
        return await self._db.transaction(
            _create, tenant_id, owner, thread_id, metadata, ttl, if_exists, self._cipher
        )

    async def get(self, tenant_id: str, thread_id: str) -> Thread | None:
        thread, stale = await self._db.read(_read_thread, tenant_id, thread_id, self._cipher)
        # Lazy re-encryption: a row under an older key is re-sealed (never fails the read).
        await reseal_row(stale, self._reseal, mark="?", encode=json_text)
        return thread

    async def _reseal(self, sql: str, params: list[object]) -> int:
        return await self._db.transaction(rowcount, sql, params)

    async def update(
        self, tenant_id: str, thread_id: str, metadata: Json | None, ttl: TTLSpec | None
    ) -> Thread:
        return await self._db.transaction(
            _update, tenant_id, thread_id, metadata, ttl, self._cipher
        )

    async def delete(self, tenant_id: str, thread_id: str) -> bool:
        return await self._db.transaction(_delete, tenant_id, thread_id)

    async def search(self, tenant_id: str, query: ThreadQuery) -> tuple[list[Thread], bool]:
        return await self._cipher.search_threads(partial(self._search, tenant_id), query)

    async def _search(self, tenant_id: str, query: ThreadQuery) -> tuple[list[Thread], bool]:
        return await self._db.read(_search, tenant_id, query, self._cipher)

    async def count(self, tenant_id: str, query: ThreadQuery) -> int:
        # Encrypted `values` (and sensitive metadata keys) are matched after decryption.
        return await self._cipher.count_threads(
            partial(self._search, tenant_id), partial(self._count, tenant_id), query
        )

    async def _count(self, tenant_id: str, query: ThreadQuery) -> int:
        return await self._db.read(_count, tenant_id, query)

    async def copy(
        self, tenant_id: str, owner: str | None, source_id: str, target_id: str
    ) -> Thread:
        return await self._db.transaction(
            _copy, tenant_id, owner, source_id, target_id, self._cipher
        )

    async def record_state(self, tenant_id: str, thread_id: str, state: ThreadState) -> Thread:
        return await self._db.transaction(_record_state, tenant_id, thread_id, state, self._cipher)

    async def ids_with_metadata(self, tenant_id: str, metadata: Json) -> list[str]:
        return await self._db.read(_ids_with_metadata, tenant_id, metadata)

    async def expired(
        self, now: datetime, limit: int
    ) -> list[tuple[str, str, Literal["delete", "keep_latest"]]]:
        return await self._db.read(_expired, now, limit)

    async def clear_ttl(self, tenant_id: str, thread_id: str) -> None:
        await self._db.transaction(_clear_ttl, tenant_id, thread_id)
