"""API keys on PostgreSQL."""

from datetime import datetime

from psycopg.rows import DictRow

from garrison.storage.models import ApiKey
from garrison.storage.postgres.database import PostgresDatabase

_COLUMNS = "key_id, secret_hash, tenant_id, role, name, created_at, expires_at, revoked_at"
_INSERT = f"INSERT INTO api_keys ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
_GET = f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = %s"
_LIST = f"""
SELECT {_COLUMNS} FROM api_keys WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s
ORDER BY created_at DESC, key_id
"""
_REVOKE = "UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL"


def _to_key(row: DictRow) -> ApiKey:
    return ApiKey(**row)


class PostgresApiKeys:
    """Implements `garrison.storage.ports.ApiKeyRepository`."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def create(self, key: ApiKey) -> None:
        await self._db.execute(
            _INSERT,
            (
                key.key_id,
                key.secret_hash,
                key.tenant_id,
                key.role,
                key.name,
                key.created_at,
                key.expires_at,
                key.revoked_at,
            ),
        )

    async def get(self, key_id: str) -> ApiKey | None:
        row = await self._db.fetch_one(_GET, (key_id,))
        return _to_key(row) if row else None

    async def list_keys(self, tenant_id: str | None) -> list[ApiKey]:
        return [_to_key(row) for row in await self._db.fetch_all(_LIST, {"tenant": tenant_id})]

    async def revoke(self, key_id: str, at: datetime) -> bool:
        return await self._db.execute(_REVOKE, (at, key_id)) == 1
