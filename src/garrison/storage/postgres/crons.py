"""Crons on PostgreSQL."""

from datetime import datetime

from psycopg import sql

from garrison.domain.errors import NotFoundError
from garrison.security.api_rows import CRONS, ApiRowCipher
from garrison.security.lazy_reseal import reseal_row, stale_row
from garrison.storage.models import UNSET, Cron, CronPatch, CronQuery, NewCron
from garrison.storage.postgres.access import access_clauses
from garrison.storage.postgres.database import PostgresDatabase
from garrison.storage.postgres.rows import CRON_COLUMNS, jsonb, order_by, to_cron

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

_GET = f"SELECT {CRON_COLUMNS} FROM crons WHERE cron_id = %s AND tenant_id = %s"
# A thread cron needs a thread of the caller's tenant: the SELECT yields no row otherwise.
_INSERT = f"""
INSERT INTO crons (cron_id, tenant_id, owner, assistant_id, thread_id, schedule, timezone,
                   payload, metadata, end_time, next_run_date, enabled, on_run_completed,
                   user_id)
SELECT %(id)s, %(tenant)s, %(owner)s, %(assistant)s, %(thread)s, %(schedule)s, %(timezone)s,
       %(payload)s, %(metadata)s, %(end)s, %(next)s, %(enabled)s, %(on_completed)s, %(user)s
WHERE %(thread)s::text IS NULL
   OR EXISTS (SELECT 1 FROM threads WHERE thread_id = %(thread)s AND tenant_id = %(tenant)s)
RETURNING {CRON_COLUMNS}
"""
_LOCK = f"{_GET} FOR UPDATE"
_UPDATE = f"""
UPDATE crons SET schedule = %s, timezone = %s, payload = %s, metadata = %s, end_time = %s,
       next_run_date = %s, enabled = %s, on_run_completed = %s, updated_at = now()
WHERE cron_id = %s
RETURNING {CRON_COLUMNS}
"""
_DELETE = "DELETE FROM crons WHERE cron_id = %s AND tenant_id = %s"
_DUE = f"""
SELECT {CRON_COLUMNS} FROM crons
WHERE enabled AND next_run_date IS NOT NULL AND next_run_date <= %s
ORDER BY next_run_date LIMIT %s
"""
# Compare-and-set on next_run_date: of several schedulers, one wins each tick. `enabled`:
# a cron paused after the scheduler read it must not fire that tick.
_ADVANCE = """
UPDATE crons SET next_run_date = %(next)s, enabled = %(next)s::timestamptz IS NOT NULL,
       updated_at = now()
WHERE cron_id = %(id)s AND next_run_date = %(expected)s AND enabled
"""


def _where(tenant_id: str, query: CronQuery) -> tuple[sql.Composable, list[object]]:
    clauses: list[sql.Composable] = [sql.SQL("tenant_id = %s")]
    params: list[object] = [tenant_id]
    if query.assistant_id is not None:
        clauses.append(sql.SQL("assistant_id = %s"))
        params.append(query.assistant_id)
    if query.thread_id is not None:
        clauses.append(sql.SQL("thread_id = %s"))
        params.append(query.thread_id)
    if query.enabled is not None:
        clauses.append(sql.SQL("enabled = %s"))
        params.append(query.enabled)
    if query.metadata:
        clauses.append(sql.SQL("metadata @> %s"))
        params.append(jsonb(query.metadata))
    access, access_params = access_clauses(query.access)
    clauses += access
    params += access_params
    return sql.SQL(" AND ").join(clauses), params


class PostgresCrons:
    def __init__(self, db: PostgresDatabase, cipher: ApiRowCipher | None = None) -> None:
        self._db = db
        self._cipher = cipher or ApiRowCipher()

    async def create(self, tenant_id: str, owner: str | None, new: NewCron) -> Cron:
        row = await self._db.fetch_one(
            _INSERT,
            {
                "id": new.cron_id,
                "tenant": tenant_id,
                "owner": owner,
                "assistant": new.assistant_id,
                "thread": new.thread_id,
                "schedule": new.schedule,
                "timezone": new.timezone,
                "payload": jsonb(
                    self._cipher.seal(CRONS, tenant_id, new.cron_id, "payload", new.payload)
                ),
                "metadata": jsonb(
                    self._cipher.seal_metadata(CRONS, tenant_id, new.cron_id, new.metadata)
                ),
                "end": new.end_time,
                "next": new.next_run_date,
                "enabled": new.enabled,
                "on_completed": new.on_run_completed,
                "user": new.user_id,
            },
        )
        if row is None:
            raise NotFoundError(f"Thread {new.thread_id} not found")
        return self._cipher.cron(to_cron(row))

    async def get(self, tenant_id: str, cron_id: str) -> Cron | None:
        row = await self._db.fetch_one(_GET, (cron_id, tenant_id))
        if row is None:
            return None
        stored = to_cron(row)
        cron = self._cipher.cron(stored)
        # Lazy re-encryption: a row under an older key is re-sealed (never fails the read).
        stale = stale_row(self._cipher, CRONS, stored, row)
        await reseal_row(stale, self._db.execute, mark="%s", encode=jsonb, encode_expected=jsonb)
        return cron

    async def update(self, tenant_id: str, cron_id: str, patch: CronPatch) -> Cron:
        async with self._db.transaction() as cur:
            await cur.execute(_LOCK, (cron_id, tenant_id))
            row = await cur.fetchone()
            if row is None:
                raise NotFoundError(f"Cron {cron_id} not found")
            current = self._cipher.cron(to_cron(row))
            end_time = current.end_time if patch.end_time is UNSET else patch.end_time
            await cur.execute(
                _UPDATE,
                (
                    patch.schedule or current.schedule,
                    patch.timezone if patch.timezone is not None else current.timezone,
                    jsonb(
                        self._cipher.seal(
                            CRONS,
                            tenant_id,
                            cron_id,
                            "payload",
                            {**current.payload, **(patch.payload or {})},
                        )
                    ),
                    jsonb(
                        self._cipher.seal_metadata(
                            CRONS,
                            tenant_id,
                            cron_id,
                            {**current.metadata, **(patch.metadata or {})},
                        )
                    ),
                    end_time,
                    patch.next_run_date or current.next_run_date,
                    patch.enabled if patch.enabled is not None else current.enabled,
                    patch.on_run_completed or current.on_run_completed,
                    cron_id,
                ),
            )
            updated = await cur.fetchone()
        assert updated is not None  # the row is locked by this transaction
        return self._cipher.cron(to_cron(updated))

    async def delete(self, tenant_id: str, cron_id: str) -> bool:
        return await self._db.execute(_DELETE, (cron_id, tenant_id)) > 0

    async def search(self, tenant_id: str, query: CronQuery) -> tuple[list[Cron], bool]:
        where, params = _where(tenant_id, query)
        statement = sql.SQL(
            "SELECT {columns} FROM crons WHERE {where} {order} LIMIT %s OFFSET %s"
        ).format(
            columns=sql.SQL(CRON_COLUMNS),
            where=where,
            order=order_by(query.sort_by, _SORTABLE, query.sort_order, "cron_id"),
        )
        rows = await self._db.fetch_all(
            statement, (*params, query.page.limit + 1, query.page.offset)
        )
        return [self._cipher.cron(to_cron(r)) for r in rows[: query.page.limit]], len(
            rows
        ) > query.page.limit

    async def count(self, tenant_id: str, query: CronQuery) -> int:
        where, params = _where(tenant_id, query)
        statement = sql.SQL("SELECT count(*) AS n FROM crons WHERE {where}").format(where=where)
        row = await self._db.fetch_one(statement, params)
        return int(row["n"]) if row else 0

    async def due(self, now: datetime, limit: int) -> list[Cron]:
        # `now` is the scheduler's: it computes the following tick from the same instant.
        rows = await self._db.fetch_all(_DUE, (now, limit))
        return [self._cipher.cron(to_cron(r)) for r in rows]

    async def advance(
        self, cron_id: str, expected_next: datetime, next_run_date: datetime | None
    ) -> bool:
        touched = await self._db.execute(
            _ADVANCE, {"next": next_run_date, "id": cron_id, "expected": expected_next}
        )
        return touched == 1
