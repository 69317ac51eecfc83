"""The audit log contract (both adapters): appends chain, reads page and filter, records
cannot be changed through SQL, tampering around the guards is detected, and concurrent
writers never fork the chain. PostgreSQL also proves the operator's role setup (A2)."""

import asyncio
import itertools
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from garrison.security.audit import GENESIS_HASH, AuditEvent, AuditRecord, ChainBreak, ChainHead
from garrison.security.audit_cli import verify_log
from garrison.storage.audit_batching import GroupCommitAuditLog
from garrison.storage.ports import AuditLog, Storage
from garrison.storage.postgres import PostgresStorage
from garrison.storage.sqlite import SqliteStorage
from tests.contract.conftest import open_postgres


def event(n: int = 0, **overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "time": datetime.now(UTC),
        "request_id": f"req-{n}",
        "actor": "alice",
        "credential_id": "key_1",
        "tenant_id": "t1",
        "action": "threads.create",
        "resource": "/threads/{thread_id}",
        "object_ids": {"thread_id": f"th-{n}"},
        "outcome": "success",
        "status": 200,
        "client_ip": "10.0.0.1",
        "summary": "POST /threads 200",
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


async def verify(log: AuditLog, page: int = 2) -> ChainBreak | None:
    return (await verify_log(log, page))[1]


async def raw(storage: Storage, statement: str) -> None:
    """Run SQL as the database owner (the tests' superuser), around the app's API."""
    if isinstance(storage, SqliteStorage):
        await storage.db.transaction(lambda conn: conn.executescript(statement))
    else:
        assert isinstance(storage, PostgresStorage)
        await storage.db.execute(statement)


async def test_append_chains_records_and_round_trips_them(storage: Storage) -> None:
    assert await storage.audit.head() == ChainHead(0, GENESIS_HASH)
    first = await storage.audit.append(event(1))
    second = await storage.audit.append(event(2, outcome="denied", status=403, actor=None))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    assert (await storage.audit.head()).hash == second.hash
    stored = await storage.audit.records()
    assert stored == [first, second]  # every field survives the trip, time in UTC
    assert await verify(storage.audit) is None


async def test_records_page_by_seq_and_filter_by_time(storage: Storage) -> None:
    old = datetime.now(UTC) - timedelta(days=2)
    await storage.audit.append(event(1, time=old))
    await storage.audit.append(event(2))
    await storage.audit.append(event(3))
    assert [r.seq for r in await storage.audit.records(after_seq=1, limit=1)] == [2]
    since = datetime.now(UTC) - timedelta(days=1)
    assert [r.seq for r in await storage.audit.records(since=since)] == [2, 3]


async def test_records_cannot_be_updated_or_deleted(storage: Storage) -> None:
    await storage.audit.append(event(1))
    refused = (sqlite3.IntegrityError, psycopg.errors.InsufficientPrivilege)
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(refused, match="append-only"):
            await raw(storage, statement)
    assert [r.event.actor for r in await storage.audit.records()] == ["alice"]


async def _disable_guards(storage: Storage) -> None:
    if isinstance(storage, SqliteStorage):
        await raw(storage, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
    else:
        await raw(storage, "ALTER TABLE audit_log DISABLE TRIGGER USER")


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3", 3),
        ("UPDATE audit_log SET status = 200, outcome = 'success' WHERE seq = 2", 2),
        ("DELETE FROM audit_log WHERE seq = 2", 2),
        ("DELETE FROM audit_log WHERE seq = 4", 4),  # the tail: caught by the head
        # Reordering: swap two records' positions (the chain links no longer match).
        ("UPDATE audit_log SET seq = -seq WHERE seq IN (2, 3);"
         "UPDATE audit_log SET seq = 5 - seq WHERE seq < 0", 2),
    ],
)  # fmt: skip
async def test_verify_finds_the_first_tampered_record(
    storage: Storage, tamper: str, first_bad: int
) -> None:
    for n in range(1, 5):
        await storage.audit.append(event(n, outcome="denied" if n == 2 else "success"))
    await _disable_guards(storage)
    await raw(storage, tamper)
    problem = await verify(storage.audit)
    assert problem is not None and problem.seq == first_bad, problem


async def test_concurrent_writers_never_fork_the_chain(storage: Storage) -> None:
    writers: list[Storage] = [storage]
    if isinstance(storage, PostgresStorage):
        # A second "replica": its own pool on the same database.
        url = storage.db.pool.conninfo
        assert isinstance(url, str)
        writers.append(await open_postgres(url, pool_max_size=10))
    try:
        await asyncio.gather(*(writers[n % len(writers)].audit.append(event(n)) for n in range(60)))
    finally:
        for extra in writers[1:]:
            await extra.close()
    records = await storage.audit.records()
    assert [r.seq for r in records] == list(range(1, 61))
    assert await verify(storage.audit, page=25) is None


async def test_postgres_replicas_taking_turns_never_fork_the_chain(postgres_url: str) -> None:
    """Each replica appends after the head it last wrote; when the other one moved it in
    between, its one-statement append must write nothing and seal the group again after
    the real head."""
    first, second = await open_postgres(postgres_url), await open_postgres(postgres_url)
    try:
        appended = []
        for n in range(12):
            writer = (first, second)[n // 2 % 2]  # two in a row each: fast path, then stale
            appended += await writer.audit.append_many([event(2 * n), event(2 * n + 1)])
        records = await first.audit.records()
        assert [r.seq for r in records] == list(range(1, 25))
        assert records == appended
        assert await verify(first.audit, page=5) is None
    finally:
        await first.close()
        await second.close()


# --- A2: the application's own database role (PostgreSQL) ---------------------------------


def _create_app_role(postgres_url: str, role: str, *, revoke: bool) -> None:
    """The GRANTs docs/security.md ("Audit log") tells operators to run; without `revoke`,
    an operator who forgot the REVOKE line (the triggers must still hold)."""
    database = str(conninfo_to_dict(postgres_url)["dbname"])
    statements = [
        "CREATE ROLE {r} LOGIN",
        "GRANT CONNECT ON DATABASE {db} TO {r}",
        "GRANT USAGE ON SCHEMA public TO {r}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {r}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r}",
    ]
    if revoke:
        statements.append("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {r}")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for statement in statements:
            admin.execute(
                sql.SQL(statement).format(r=sql.Identifier(role), db=sql.Identifier(database))
            )


def _drop_role(postgres_url: str, role: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {r}").format(r=sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {r}").format(r=sql.Identifier(role)))


@pytest.mark.parametrize("revoke", [True, False], ids=["documented-grants", "blanket-grants"])
async def test_postgres_app_role_cannot_rewrite_audit_rows(postgres_url: str, revoke: bool) -> None:
    role = f"garrison_app_{secrets.token_hex(4)}"
    _create_app_role(postgres_url, role, revoke=revoke)
    app_url = make_conninfo(postgres_url, user=role)
    try:
        app = await open_postgres(app_url)
        try:
            record = await app.audit.append(event(1))  # INSERT (and the head) work
            assert await app.audit.records() == [record]  # SELECT works
        finally:
            await app.close()
        with psycopg.connect(app_url, autocommit=True) as conn:
            for statement in (
                "UPDATE audit_log SET actor = 'mallory'",
                "DELETE FROM audit_log",
                "TRUNCATE audit_log",
                "ALTER TABLE audit_log DISABLE TRIGGER USER",  # only the owner may
                "DROP TABLE audit_log",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
            row = conn.execute("SELECT actor FROM audit_log").fetchone()
            assert row == ("alice",)
    finally:
        _drop_role(postgres_url, role)


class CountingLog:
    """An AuditLog that counts the transactions it is asked for."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.batches: list[int] = []

    async def append_many(self, events: list[AuditEvent]) -> list[AuditRecord]:
        self.batches.append(len(events))
        await asyncio.sleep(0.01)  # a transaction in flight, while others arrive
        return await self.log.append_many(events)


async def test_append_many_chains_in_order_in_one_transaction(storage: Storage) -> None:
    records = await storage.audit.append_many([event(n) for n in range(5)])
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert [r.event.request_id for r in records] == [f"req-{n}" for n in range(5)]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert await storage.audit.head() == ChainHead(5, records[-1].hash)
    assert await storage.audit.append_many([]) == []
    assert await verify(storage.audit) is None


async def test_concurrent_appends_are_committed_in_groups(storage: Storage) -> None:
    """Group commit: appends arriving while a batch is written share the next transaction;
    every caller gets its own record and the chain stays whole."""
    adapter = storage.audit
    inner = adapter.inner if isinstance(adapter, GroupCommitAuditLog) else adapter
    counting = CountingLog(inner)
    grouped = GroupCommitAuditLog(counting)  # type: ignore[arg-type]
    records = await asyncio.gather(*(grouped.append(event(n)) for n in range(40)))
    assert sorted(r.seq for r in records) == list(range(1, 41))
    assert [r.event.request_id for r in records] == [f"req-{n}" for n in range(40)]
    assert sum(counting.batches) == 40 and len(counting.batches) < 40
    assert await verify(inner) is None


async def test_a_failed_group_fails_each_of_its_callers(storage: Storage) -> None:
    class Failing(CountingLog):
        async def append_many(self, events: list[AuditEvent]) -> list[AuditRecord]:
            raise RuntimeError("disk full")

    grouped = GroupCommitAuditLog(Failing(storage.audit))  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(grouped.append(event(n)) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert (await storage.audit.append(event(9))).seq == 1  # nothing half-written
