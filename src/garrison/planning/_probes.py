"""Readings of a deployment's storage: database size, checkpoint count, Redis memory.

PostgreSQL: the summed `pg_total_relation_size` (heap, TOAST and indexes) of every table
outside the system schemas, so growth is page-granular (8 KiB) and a phase of a hundred
runs resolves to well under 1 KiB per run. SQLite: the database file plus its WAL.
Redis: `MEMORY USAGE` of every key under the deployment's own prefix (the server is
shared, so its global `used_memory` would count other people's keys).
"""

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

_CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")

_SIZE_SQL = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%'
"""


@dataclass(frozen=True, slots=True)
class StorageReading:
    total_bytes: int
    checkpoint_bytes: int | None
    checkpoints: int | None


def read_postgres(url: str) -> StorageReading:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(_SIZE_SQL).fetchone()
        total = int(row[0]) if row else 0
        checkpoint_bytes = 0
        for table in _CHECKPOINT_TABLES:
            found = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if not found or found[0] is None:
                return StorageReading(total, None, None)
            size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,))
            size_row = size.fetchone()
            checkpoint_bytes += int(size_row[0]) if size_row else 0
        count_row = conn.execute("SELECT count(*) FROM checkpoints").fetchone()
    return StorageReading(total, checkpoint_bytes, int(count_row[0]) if count_row else 0)


def read_sqlite(database: Path) -> StorageReading:
    """The file and its WAL; the checkpoint count when LangGraph's table is there."""
    total = sum(
        p.stat().st_size
        for p in (database, database.with_name(database.name + "-wal"))
        if p.exists()
    )
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT count(*) FROM checkpoints").fetchone()
        count = int(row[0]) if row else None
    except sqlite3.Error:
        count = None
    return StorageReading(total, None, count)


@dataclass(frozen=True, slots=True)
class RedisReading:
    bytes: int
    run_logs: int  # keys `{prefix}:run:{id}:log`, one per retained run event stream


def read_redis(url: str, prefix: str) -> RedisReading:
    client = redis.Redis.from_url(url)
    try:
        total = 0
        run_logs = 0
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            usage = client.memory_usage(key, samples=0)
            total += int(usage or 0)
            name = key.decode() if isinstance(key, bytes) else str(key)
            if name.startswith(f"{prefix}:run:") and name.endswith(":log"):
                run_logs += 1
        return RedisReading(total, run_logs)
    finally:
        client.close()
