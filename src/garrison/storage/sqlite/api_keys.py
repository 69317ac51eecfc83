"""API keys on SQLite."""

import sqlite3
from datetime import datetime

from garrison.domain.clock import from_text, to_text
from garrison.storage.models import ApiKey
from garrison.storage.sqlite.database import SqliteDatabase
from garrison.storage.sqlite.rows import fetch_all, fetch_one

_COLUMNS = "key_id, secret_hash, tenant_id, role, name, created_at, expires_at, revoked_at"


def _moment(text: str | None) -> datetime | None:
    return from_text(text) if text is not None else None


def _to_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        secret_hash=row["secret_hash"],
        tenant_id=row["tenant_id"],
        role=row["role"],
        name=row["name"],
        created_at=from_text(row["created_at"]),
        expires_at=_moment(row["expires_at"]),
        revoked_at=_moment(row["revoked_at"]),
    )


def _insert(conn: sqlite3.Connection, key: ApiKey) -> None:
    conn.execute(
        f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key.key_id,
            key.secret_hash,
            key.tenant_id,
            key.role,
            key.name,
            to_text(key.created_at),
            to_text(key.expires_at) if key.expires_at else None,
            to_text(key.revoked_at) if key.revoked_at else None,
        ),
    )


def _get(conn: sqlite3.Connection, key_id: str) -> ApiKey | None:
    row = fetch_one(conn, f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
    return _to_key(row) if row else None


def _list(conn: sqlite3.Connection, tenant_id: str | None) -> list[ApiKey]:
    rows = fetch_all(
        conn,
        f"SELECT {_COLUMNS} FROM api_keys WHERE ? IS NULL OR tenant_id = ?"
        " ORDER BY created_at DESC, key_id",
        (tenant_id, tenant_id),
    )
    return [_to_key(row) for row in rows]


def _revoke(conn: sqlite3.Connection, key_id: str, at: datetime) -> bool:
    cursor = conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        (to_text(at), key_id),
    )
    return cursor.rowcount == 1


class SqliteApiKeys:
    """Implements `garrison.storage.ports.ApiKeyRepository`."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create(self, key: ApiKey) -> None:
        await self._db.transaction(_insert, key, durable=True)

    async def get(self, key_id: str) -> ApiKey | None:
        return await self._db.read(_get, key_id)

    async def list_keys(self, tenant_id: str | None) -> list[ApiKey]:
        return await self._db.read(_list, tenant_id)

    async def revoke(self, key_id: str, at: datetime) -> bool:
        return await self._db.transaction(_revoke, key_id, at, durable=True)
