"""LangGraph's official PostgreSQL long-term store on Garrison's pool.

Semantic search (`store.index`) is the official store's pgvector implementation: the
`vector` extension must be installable on the server. Without it, start-up fails with
`InvalidArgumentError` naming the fix, rather than the first search failing later.

With a `StoreCipher`, values are sealed when the put queries are built (embeddings are
requested from the plaintext) and opened after every read (`garrison.security.store_cipher`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from langgraph.store.base import Op, PutOp, Result, TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.postgres.base import PostgresIndexConfig
from psycopg.types.json import Jsonb

from garrison.domain.errors import InvalidArgumentError
from garrison.security.lazy_reseal import reseal_each
from garrison.security.store_cipher import StaleItem, StoreCipher
from garrison.storage.postgres.database import (
    Connection,
    Cursor,
    PostgresDatabase,
    unavailable_on_failure,
)

_STORE_PAGE = (
    "SELECT prefix, key, value FROM store WHERE (prefix, key) > (%s, %s)"
    " ORDER BY prefix, key LIMIT %s FOR UPDATE"
)
_UPDATE_VALUE = "UPDATE store SET value = %s WHERE prefix = %s AND key = %s"
# Lazy re-encryption's compare-and-set: only over the envelope that was read.
_RESEAL_VALUE = _UPDATE_VALUE + " AND value ->> '__garrison_sealed__' = %s"
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
        cipher: StoreCipher | None = None,
    ) -> None:
        super().__init__(
            db.pool, index=index_config(index), ttl=cast(TTLConfig, ttl) if ttl else None
        )
        self._db = db
        self.cipher = cipher

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        if self.cipher is None:
            return await super().abatch(ops)
        original = list(ops)
        results = await super().abatch(self.cipher.seal_ops(original, puts=False))
        stale = self.cipher.stale_items(original, results)
        opened = self.cipher.open_results(original, results)
        await reseal_each("store item", stale, self._reseal)  # lazy re-encryption
        return opened

    async def _reseal(self, item: StaleItem) -> int:
        params = (Jsonb(item.value), item.prefix, item.key, item.expected)
        return await self._db.execute(_RESEAL_VALUE, params)

    def _prepare_batch_PUT_queries(
        self, put_ops: Sequence[tuple[int, PutOp]]
    ) -> tuple[list[tuple[str, Sequence[Any]]], Any]:
        cipher = self.cipher
        if cipher is None:
            return super()._prepare_batch_PUT_queries(put_ops)
        sealed = [
            (
                i,
                op
                if op.value is None
                else op._replace(value=cipher.seal(op.namespace, op.key, op.value)),
            )
            for i, op in put_ops
        ]
        queries, _ = super()._prepare_batch_PUT_queries(sealed)
        # The texts to embed come from the plaintext; only the vectors are stored.
        _, embedding_request = super()._prepare_batch_PUT_queries(put_ops)
        return queries, embedding_request

    async def arewrap_batch(
        self, after: tuple[str, str] | None, limit: int
    ) -> tuple[int, tuple[str, str] | None]:
        """Re-encrypt up to `limit` items after (prefix, key) under the active key, sealing
        plaintext ones; returns (items changed, the last item seen, None when done)."""
        cipher = self.cipher
        if cipher is None:
            return 0, None
        prefix, key = after or ("", "")
        changed = 0
        async with self._db.transaction() as cur:
            await cur.execute(_STORE_PAGE, (prefix, key, limit))
            rows = await cur.fetchall()
            for row in rows:
                value = cipher.rewrap(tuple(row["prefix"].split(".")), row["key"], row["value"])
                if value is not None:
                    await cur.execute(_UPDATE_VALUE, (Jsonb(value), row["prefix"], row["key"]))
                    changed += 1
        last = (rows[-1]["prefix"], rows[-1]["key"]) if len(rows) == limit else None
        return changed, last

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[Cursor]:
        # With a pool the official cursor takes no shared lock: each call has its own
        # connection (see AsyncPostgresStore._cursor).
        async with unavailable_on_failure(), super()._cursor(pipeline=pipeline) as cur:
            yield cur


__all__ = ["PGVECTOR_MISSING", "GarrisonPostgresStore", "require_pgvector"]
