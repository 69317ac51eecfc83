"""LangGraph's official PostgreSQL long-term store on Garrison's pool.

Semantic search (`store.index`) is the official store's pgvector implementation: the
`vector` extension must be installable on the server. Without it, start-up fails with
`InvalidArgumentError` naming the fix, rather than the first search failing later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from langgraph.store.base import TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.postgres.base import PostgresIndexConfig

from garrison.domain.errors import InvalidArgumentError
from garrison.storage.postgres.database import (
    Connection,
    Cursor,
    PostgresDatabase,
    unavailable_on_failure,
)

_PGVECTOR_AVAILABLE = "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"

PGVECTOR_MISSING = (
    "store.index is configured, but this PostgreSQL server has no pgvector extension "
    "('vector' is not in pg_available_extensions). Install pgvector on the database server "
    "(Debian/Ubuntu: apt-get install postgresql-<major>-pgvector; Docker: the pgvector/pgvector "
    "image; managed services: enable the 'vector' extension), then run `garrison migrate`; "
    "or remove store.index from the configuration to run without semantic search."
)


async def require_pgvector(conn: Connection) -> None:
    """Raise InvalidArgumentError (the start-up error) when the server cannot provide the
    `vector` extension that `store.index` needs."""
    async with conn.cursor() as cur:
        await cur.execute(_PGVECTOR_AVAILABLE)
        if await cur.fetchone() is None:
            raise InvalidArgumentError(PGVECTOR_MISSING)


def index_config(store_index: dict[str, Any] | None) -> PostgresIndexConfig | None:
    return cast(PostgresIndexConfig, store_index) if store_index else None


class GarrisonPostgresStore(AsyncPostgresStore):
    """The official store; its queries' failures to reach the database become
    UnavailableError (503) like every other storage call."""

    def __init__(
        self,
        db: PostgresDatabase,
        *,
        index: dict[str, Any] | None = None,
        ttl: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            db.pool, index=index_config(index), ttl=cast(TTLConfig, ttl) if ttl else None
        )

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[Cursor]:
        # With a pool the official cursor takes no shared lock: each call has its own
        # connection (see AsyncPostgresStore._cursor).
        async with unavailable_on_failure(), super()._cursor(pipeline=pipeline) as cur:
            yield cur


__all__ = ["PGVECTOR_MISSING", "GarrisonPostgresStore", "require_pgvector"]
