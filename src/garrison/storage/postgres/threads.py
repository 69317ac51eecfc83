"""Threads on PostgreSQL.

Lock order, shared by every unit of work that changes a thread and its runs: the thread
row first (`FOR UPDATE`, several threads in thread_id order), then run rows in run_id
order. Run creation, finish, cancel, reap and state updates of one thread therefore
serialise on its row and cannot deadlock one another.
"""

from datetime import datetime
from enum import Enum
from functools import partial
from typing import Literal

from psycopg import sql
from psycopg.rows import DictRow

from garrison.domain.errors import ConflictError, NotFoundError
from garrison.domain.threads import ThreadStatus, derive_thread_status
from garrison.security.api_rows import THREADS, ApiRowCipher
from garrison.security.lazy_reseal import reseal_row, stale_row
from garrison.storage.models import IfExists, Json, Thread, ThreadQuery, ThreadState
from garrison.storage.ports import TTLSpec
from garrison.storage.postgres.access import access_clauses
from garrison.storage.postgres.database import Cursor, PostgresDatabase
from garrison.storage.postgres.rows import (
    THREAD_COLUMNS,
    jsonb,
    nullable_jsonb,
    order_by,
    to_thread,
)

_SORTABLE = frozenset({"thread_id", "status", "created_at", "updated_at", "state_updated_at"})

GET_THREAD = f"SELECT {THREAD_COLUMNS} FROM threads WHERE thread_id = %s AND tenant_id = %s"
# The row every change to a thread's runs locks first (see the module docstring).
LOCK_THREAD = "SELECT tenant_id FROM threads WHERE thread_id = %s FOR UPDATE"
INSERT_THREAD = f"""
INSERT INTO threads (thread_id, tenant_id, owner, status, metadata,
                     ttl_strategy, ttl_minutes, expires_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s::float8))
ON CONFLICT (thread_id) DO NOTHING
RETURNING {THREAD_COLUMNS}
"""
_UPDATE_METADATA = f"""
UPDATE threads SET metadata = metadata || %s, updated_at = now()
WHERE thread_id = %s AND tenant_id = %s
RETURNING {THREAD_COLUMNS}
"""
_UPDATE_TTL = f"""
UPDATE threads SET metadata = metadata || %s, updated_at = now(), ttl_strategy = %s,
       ttl_minutes = %s, expires_at = now() + make_interval(secs => %s::float8)
WHERE thread_id = %s AND tenant_id = %s
RETURNING {THREAD_COLUMNS}
"""
_DELETE = "DELETE FROM threads WHERE thread_id = %s AND tenant_id = %s"
# The copied fields come re-sealed for the new row id (a ciphertext is bound to its row).
_COPY = f"""
INSERT INTO threads (thread_id, tenant_id, owner, status, metadata, config, "values",
                     interrupts, has_next)
SELECT %s, tenant_id, %s, CASE WHEN has_next THEN 'interrupted' ELSE 'idle' END, %s,
       %s, %s, %s, has_next
FROM threads WHERE thread_id = %s AND tenant_id = %s
ON CONFLICT (thread_id) DO NOTHING
RETURNING {THREAD_COLUMNS}
"""
# What a thread's status derives from (domain.threads.derive_thread_status).
_FACTS = """
error IS NOT NULL AS failed, has_next, status,
EXISTS (SELECT 1 FROM runs WHERE runs.thread_id = threads.thread_id
        AND runs.status IN ('pending', 'running')) AS active
"""
_STATUS_FACTS = f"SELECT {_FACTS} FROM threads WHERE thread_id = %s"
_SET_STATUS = "UPDATE threads SET status = %s, updated_at = now() WHERE thread_id = %s"
_IDS_WITH_METADATA = "SELECT thread_id FROM threads WHERE tenant_id = %s AND metadata @> %s"
_EXPIRED = """
SELECT tenant_id, thread_id, ttl_strategy FROM threads
WHERE expires_at IS NOT NULL AND expires_at <= %s AND status <> 'busy'
ORDER BY expires_at LIMIT %s
"""
_CLEAR_TTL = "UPDATE threads SET expires_at = NULL WHERE thread_id = %s AND tenant_id = %s"


class Keep(Enum):
    KEEP = "keep"


KEEP = Keep.KEEP  # write_state: leave the thread's last error as it is


def ttl_params(ttl: TTLSpec | None) -> tuple[str | None, float | None, float | None]:
    """(strategy, minutes, seconds until expiry) for the TTL columns."""
    if ttl is None:
        return None, None, None
    return ttl.strategy, ttl.minutes, ttl.minutes * 60


async def get_thread(
    cur: Cursor, tenant_id: str, thread_id: str, cipher: ApiRowCipher
) -> Thread | None:
    await cur.execute(GET_THREAD, (thread_id, tenant_id))
    row = await cur.fetchone()
    return cipher.thread(to_thread(row)) if row else None


async def require_thread(
    cur: Cursor, tenant_id: str, thread_id: str, cipher: ApiRowCipher
) -> Thread:
    thread = await get_thread(cur, tenant_id, thread_id, cipher)
    if thread is None:
        raise NotFoundError(f"Thread {thread_id} not found")
    return thread


async def lock_thread(cur: Cursor, thread_id: str) -> str | None:
    """Lock a thread's row for the rest of the transaction; its tenant, or None when the
    thread does not exist."""
    await cur.execute(LOCK_THREAD, (thread_id,))
    row = await cur.fetchone()
    return None if row is None else str(row["tenant_id"])


async def insert_thread(
    cur: Cursor,
    tenant_id: str,
    owner: str | None,
    thread_id: str,
    metadata: Json,
    ttl: TTLSpec | None,
    status: ThreadStatus = ThreadStatus.IDLE,
    *,
    cipher: ApiRowCipher,
) -> DictRow | None:
    """Insert a thread unless its id is taken; the new (still sealed) row, or None when it
    was."""
    sealed = cipher.seal_metadata(THREADS, tenant_id, thread_id, metadata)
    await cur.execute(
        INSERT_THREAD,
        (thread_id, tenant_id, owner, status.value, jsonb(sealed), *ttl_params(ttl)),
    )
    return await cur.fetchone()


async def settle_status(cur: Cursor, thread_id: str, facts: DictRow | None) -> ThreadStatus:
    """Store the status `facts` (a `_FACTS` row) derive, when it changed."""
    if facts is None:
        return ThreadStatus.IDLE  # the thread is gone (deleted with its runs)
    status = derive_thread_status(
        has_active_runs=facts["active"],
        last_run_failed=facts["failed"],
        has_next_tasks=facts["has_next"],
    )
    if facts["status"] != status.value:
        await cur.execute(_SET_STATUS, (status.value, thread_id))
    return status


async def refresh_thread_status(cur: Cursor, thread_id: str) -> ThreadStatus:
    """Re-derive a thread's status from its runs, last error and checkpoint."""
    await cur.execute(_STATUS_FACTS, (thread_id,))
    return await settle_status(cur, thread_id, await cur.fetchone())


async def write_state(
    cur: Cursor,
    thread_id: str,
    state: ThreadState | None,
    *,
    error: Json | Keep | None = KEEP,
    cipher: ApiRowCipher,
    tenant_id: str,
) -> DictRow | None:
    """Store a thread's latest values, interrupts and whether tasks remain (when `state` is
    given) and its last run's error (None clears it), in one statement; returns the facts
    its status derives from, for `settle_status`."""
    await cur.execute(
        *state_update(thread_id, state, error=error, cipher=cipher, tenant_id=tenant_id)
    )
    return await cur.fetchone()


def state_update(
    thread_id: str,
    state: ThreadState | None,
    *,
    error: Json | Keep | None,
    cipher: ApiRowCipher,
    tenant_id: str,
) -> tuple[sql.Composed, tuple[object, ...]]:
    """The statement `write_state` runs, and its parameters."""
    assignments = [sql.SQL("updated_at = now()")]
    params: list[object] = []
    if state is not None:
        assignments.append(
            sql.SQL('"values" = %s, interrupts = %s, has_next = %s, state_updated_at = now()')
        )
        params += [
            nullable_jsonb(cipher.seal(THREADS, tenant_id, thread_id, "values", state.values)),
            jsonb(cipher.seal(THREADS, tenant_id, thread_id, "interrupts", state.interrupts)),
            state.has_next_tasks,
        ]
    if error is not KEEP:
        assignments.append(sql.SQL("error = %s"))
        params.append(nullable_jsonb(cipher.seal(THREADS, tenant_id, thread_id, "error", error)))
    query = sql.SQL("UPDATE threads SET {assignments} WHERE thread_id = %s RETURNING {facts}")
    return (
        query.format(assignments=sql.SQL(", ").join(assignments), facts=sql.SQL(_FACTS)),
        (*params, thread_id),
    )


def _where(tenant_id: str, query: ThreadQuery) -> tuple[sql.Composable, list[object]]:
    clauses: list[sql.Composable] = [sql.SQL("tenant_id = %s")]
    params: list[object] = [tenant_id]
    if query.metadata:
        clauses.append(sql.SQL("metadata @> %s"))
        params.append(jsonb(query.metadata))
    if query.values:
        clauses.append(sql.SQL('"values" @> %s'))
        params.append(jsonb(query.values))
    if query.ids is not None:
        clauses.append(sql.SQL("thread_id = ANY(%s)"))
        params.append(list(query.ids))
    if query.status is not None:
        clauses.append(sql.SQL("status = %s"))
        params.append(query.status.value)
    access, access_params = access_clauses(query.access)
    clauses += access
    params += access_params
    return sql.SQL(" AND ").join(clauses), params


class PostgresThreads:
    def __init__(self, db: PostgresDatabase, cipher: ApiRowCipher | None = None) -> None:
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
        # No transaction: the insert is one statement (atomic alone), and the read after a
        # conflict sees the committed row as it would inside one (read committed). This
        # spares BEGIN and COMMIT, two of a new thread's three round trips.
        async with self._db.connection() as conn, conn.cursor() as cur:
            inserted = await insert_thread(
                cur, tenant_id, owner, thread_id, metadata, ttl, cipher=self._cipher
            )
            if inserted is not None:
                return self._cipher.thread(to_thread(inserted))
            existing = await get_thread(cur, tenant_id, thread_id, self._cipher)
        if existing is not None and if_exists is IfExists.DO_NOTHING:
            return existing
        raise ConflictError(f"Thread {thread_id} already exists")

    async def get(self, tenant_id: str, thread_id: str) -> Thread | None:
        row = await self._db.fetch_one(GET_THREAD, (thread_id, tenant_id))
        if row is None:
            return None
        stored = to_thread(row)
        thread = self._cipher.thread(stored)
        # Lazy re-encryption: a row under an older key is re-sealed (never fails the read).
        stale = stale_row(self._cipher, THREADS, stored, row)
        await reseal_row(stale, self._db.execute, mark="%s", encode=jsonb, encode_expected=jsonb)
        return thread

    async def update(
        self, tenant_id: str, thread_id: str, metadata: Json | None, ttl: TTLSpec | None
    ) -> Thread:
        # `||` is the shallow merge LangGraph Server applies to metadata on update.
        patch = jsonb(self._cipher.seal_metadata(THREADS, tenant_id, thread_id, metadata or {}))
        if ttl is None:
            row = await self._db.fetch_one(_UPDATE_METADATA, (patch, thread_id, tenant_id))
        else:
            row = await self._db.fetch_one(
                _UPDATE_TTL, (patch, *ttl_params(ttl), thread_id, tenant_id)
            )
        if row is None:
            raise NotFoundError(f"Thread {thread_id} not found")
        return self._cipher.thread(to_thread(row))

    async def delete(self, tenant_id: str, thread_id: str) -> bool:
        # Runs and crons of the thread go with it (ON DELETE CASCADE).
        return await self._db.execute(_DELETE, (thread_id, tenant_id)) > 0

    async def search(self, tenant_id: str, query: ThreadQuery) -> tuple[list[Thread], bool]:
        # Encrypted `values` (and sensitive metadata keys) are matched after decryption.
        return await self._cipher.search_threads(partial(self._search, tenant_id), query)

    async def _search(self, tenant_id: str, query: ThreadQuery) -> tuple[list[Thread], bool]:
        where, params = _where(tenant_id, query)
        statement = sql.SQL(
            "SELECT {columns} FROM threads WHERE {where} {order} LIMIT %s OFFSET %s"
        )
        rows = await self._db.fetch_all(
            statement.format(
                columns=sql.SQL(THREAD_COLUMNS),
                where=where,
                order=order_by(query.sort_by, _SORTABLE, query.sort_order, "thread_id"),
            ),
            (*params, query.page.limit + 1, query.page.offset),
        )
        threads = [self._cipher.thread(to_thread(r)) for r in rows[: query.page.limit]]
        return threads, len(rows) > query.page.limit

    async def count(self, tenant_id: str, query: ThreadQuery) -> int:
        return await self._cipher.count_threads(
            partial(self._search, tenant_id), partial(self._count, tenant_id), query
        )

    async def _count(self, tenant_id: str, query: ThreadQuery) -> int:
        where, params = _where(tenant_id, query)
        statement = sql.SQL("SELECT count(*) AS n FROM threads WHERE {where}").format(where=where)
        row = await self._db.fetch_one(statement, params)
        return int(row["n"]) if row else 0

    async def copy(
        self, tenant_id: str, owner: str | None, source_id: str, target_id: str
    ) -> Thread:
        async with self._db.transaction() as cur:
            source = await get_thread(cur, tenant_id, source_id, self._cipher)
            if source is None:
                raise NotFoundError(f"Thread {source_id} not found")
            seal = partial(self._cipher.seal, THREADS, tenant_id, target_id)
            metadata = self._cipher.seal_metadata(THREADS, tenant_id, target_id, source.metadata)
            await cur.execute(
                _COPY,
                (
                    target_id,
                    owner,
                    jsonb(metadata),
                    jsonb(seal("config", source.config)),
                    nullable_jsonb(seal("values", source.values)),
                    jsonb(seal("interrupts", source.interrupts)),
                    source_id,
                    tenant_id,
                ),
            )
            row = await cur.fetchone()
            if row is not None:
                return self._cipher.thread(to_thread(row))
        raise ConflictError(f"Thread {target_id} already exists")

    async def record_state(self, tenant_id: str, thread_id: str, state: ThreadState) -> Thread:
        async with self._db.transaction() as cur:
            # Locked, so no run can be created on the thread between the check and the write.
            if await lock_thread(cur, thread_id) != tenant_id:
                raise NotFoundError(f"Thread {thread_id} not found")
            thread = await require_thread(cur, tenant_id, thread_id, self._cipher)
            if thread.status is ThreadStatus.BUSY:
                raise ConflictError(f"Thread {thread_id} is busy")
            # A manual update supersedes a failed run's error, as a new run would.
            facts = await write_state(
                cur, thread_id, state, error=None, cipher=self._cipher, tenant_id=tenant_id
            )
            await settle_status(cur, thread_id, facts)
            return await require_thread(cur, tenant_id, thread_id, self._cipher)

    async def ids_with_metadata(self, tenant_id: str, metadata: Json) -> list[str]:
        rows = await self._db.fetch_all(_IDS_WITH_METADATA, (tenant_id, jsonb(metadata)))
        return [r["thread_id"] for r in rows]

    async def expired(
        self, now: datetime, limit: int
    ) -> list[tuple[str, str, Literal["delete", "keep_latest"]]]:
        rows = await self._db.fetch_all(_EXPIRED, (now, limit))
        return [(r["tenant_id"], r["thread_id"], r["ttl_strategy"]) for r in rows]

    async def clear_ttl(self, tenant_id: str, thread_id: str) -> None:
        await self._db.execute(_CLEAR_TTL, (thread_id, tenant_id))
