"""The long-term store, on its own connection to the embedded SQLite file, with a portable
semantic index.

LangGraph's `AsyncSqliteStore` ranks vectors with the `sqlite-vec` extension, which needs a
Python built with loadable-extension support; many builds (pyenv's among them) lack it. This
store runs the official one without `index`, so items, filters, namespaces and TTL keep
LangGraph's own SQL, and adds its own vectors in `garrison_store_vectors` (migration 0002),
ranked by a similarity function registered on the connection.

Cost of a semantic search: O(N * dims), N = vectors of the items matching the namespace
prefix and filter (brute force, no ANN structure). The scan runs on the store connection's
thread, not the event loop, and holds the store's lock while it runs: fine for the embedded
mode's thousands to tens of thousands of items; PostgreSQL with pgvector is the path beyond.

With a `StoreCipher`, values are sealed before they are written (vectors are computed from
the plaintext first) and opened after they are read (`garrison.security.store_cipher`).
"""

from __future__ import annotations

import asyncio
import math
import operator
import sys
from array import array
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import aiosqlite
import orjson
from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    GetOp,
    IndexConfig,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)
from langgraph.store.sqlite.aio import AsyncSqliteStore

from garrison.security.lazy_reseal import reseal_each
from garrison.security.store_cipher import StaleItem, StoreCipher

SIMILARITY_FUNCTION = "garrison_vector_similarity"

# `candidates` is the official store's own listing query for the op (namespace prefix and
# filter, unlimited), so semantic search filters exactly as plain search does. An item with
# several embedded fields scores its best field. (`similarity`: `c` has a NULL `score`.)
_SEMANTIC_SEARCH = f"""
SELECT c.prefix, c.key, c.value, c.created_at, c.updated_at,
       MAX({SIMILARITY_FUNCTION}(v.embedding, ?)) AS similarity
FROM ({{candidates}}) AS c
JOIN garrison_store_vectors AS v ON v.prefix = c.prefix AND v.key = c.key
GROUP BY c.prefix, c.key
HAVING similarity IS NOT NULL
ORDER BY similarity DESC, c.prefix, c.key
LIMIT ? OFFSET ?
"""
_DELETE_VECTORS = "DELETE FROM garrison_store_vectors WHERE prefix = ? AND key = ?"
_INSERT_VECTOR = (
    "INSERT OR REPLACE INTO garrison_store_vectors (prefix, key, field_name, embedding) "
    "VALUES (?, ?, ?, ?)"
)
_REFRESH_TTL = (
    "UPDATE store SET expires_at = DATETIME(CURRENT_TIMESTAMP, '+' || ttl_minutes || ' minutes')"
    " WHERE prefix = ? AND key IN ({keys}) AND ttl_minutes IS NOT NULL"
)
_COUNT_VECTORS = "SELECT COUNT(*) FROM garrison_store_vectors"
_STORE_PAGE = (
    "SELECT prefix, key, value FROM store WHERE prefix > ? OR (prefix = ? AND key > ?)"
    " ORDER BY prefix, key LIMIT ?"
)
_UPDATE_VALUE = "UPDATE store SET value = ? WHERE prefix = ? AND key = ?"
# Lazy re-encryption's compare-and-set: only over the envelope that was read.
_RESEAL_VALUE = (
    _UPDATE_VALUE + " AND json_extract(CAST(value AS TEXT), '$.__garrison_sealed__') = ?"
)

_BIG_ENDIAN = sys.byteorder == "big"

Field = tuple[str, Literal["$"] | list[str]]


def _field(path: str) -> Field:
    # tokenize_path("$") would look for a key named "$"; "$" means the whole document.
    return (path, "$") if path == "$" else (path, tokenize_path(path))


def encode_vector(vector: Sequence[float]) -> bytes:
    """L2-normalised float32 bytes, little-endian (so cosine similarity is a dot product)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    scale = 1.0 / norm if norm else 0.0
    packed = array("f", (x * scale for x in vector))
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def _decode_vector(blob: bytes) -> array[float]:
    vector = array("f")
    vector.frombytes(blob)
    if _BIG_ENDIAN:
        vector.byteswap()
    return vector


def vector_similarity(stored: bytes | None, query: bytes | None) -> float | None:
    """Cosine similarity of two encoded vectors; NULL when they cannot be compared (a vector
    written under another `dims` setting is skipped rather than failing every search)."""
    if not stored or not query or len(stored) != len(query) or len(stored) % 4:
        return None
    return float(sum(map(operator.mul, _decode_vector(stored), _decode_vector(query))))


@dataclass(frozen=True, slots=True)
class VectorIndex:
    """The `store.index` settings, resolved."""

    dims: int
    embeddings: Embeddings
    fields: tuple[Field, ...]

    @classmethod
    def from_config(cls, config: IndexConfig) -> VectorIndex:
        embeddings = ensure_embeddings(config.get("embed"))
        fields = tuple(_field(path) for path in (config.get("fields") or ["$"]))
        return cls(dims=int(config["dims"]), embeddings=embeddings, fields=fields)

    def encode(self, vector: Sequence[float]) -> bytes:
        if len(vector) != self.dims:
            raise RuntimeError(
                f"the embeddings returned {len(vector)} dimensions, store.index.dims is {self.dims}"
            )
        return encode_vector(vector)


@dataclass(frozen=True, slots=True)
class _VectorWrites:
    replaced: list[tuple[str, str]]  # (prefix, key) of every put: old vectors go
    rows: list[tuple[str, str, str, bytes]]  # (prefix, key, field_name, embedding)


class GarrisonSqliteStore(AsyncSqliteStore):
    """LangGraph's `AsyncSqliteStore` plus a semantic index that needs no SQLite extension.

    Everything but semantic search is the official store's SQL. The parent is built without
    `index` (its `index_config` stays None, or it would load `sqlite-vec`); `vector_index`
    holds this store's settings instead.
    """

    # BaseSqliteStore sets this, but BaseStore's False comes first in AsyncSqliteStore's MRO;
    # wrappers (TenantScopedStore) read it to decide whether a put may carry a TTL.
    supports_ttl = True

    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        cipher: StoreCipher | None = None,
    ) -> None:
        super().__init__(conn, ttl=ttl)
        self.vector_index = VectorIndex.from_config(index) if index else None
        self.cipher = cipher

    async def setup(self) -> None:
        if self.is_setup:
            return
        await self.conn.create_function(
            SIMILARITY_FUNCTION, 2, vector_similarity, deterministic=True
        )
        await super().setup()

    @asynccontextmanager
    async def _cursor(self, *, transaction: bool = True) -> AsyncIterator[aiosqlite.Cursor]:
        # The official cursor COMMITs in `finally`, keeping half a batch after an error or a
        # cancellation; an item and its vectors must change together, so roll back instead.
        if not self.is_setup:
            await self.setup()
        async with self.lock:
            if transaction:
                await self.conn.execute("BEGIN")
            try:
                async with self.conn.cursor() as cur:
                    yield cur
            except BaseException:
                if transaction:
                    await self.conn.rollback()
                raise
            if transaction:
                await self.conn.execute("COMMIT")

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        grouped: dict[type, list[tuple[int, Any]]] = defaultdict(list)
        original = list(ops)
        listed = self.cipher.seal_ops(original) if self.cipher else original
        for position, op in enumerate(listed):
            validate_op_namespace(op)
            grouped[type(op)].append((position, op))
        results: list[Result] = [None] * len(listed)

        index = self.vector_index
        searches = cast(list[tuple[int, SearchOp]], grouped.get(SearchOp, []))
        semantic = [(i, op) for i, op in searches if op.query and index]
        plain = [(i, op) for i, op in searches if not (op.query and index)]
        puts = cast(list[tuple[int, PutOp]], grouped.get(PutOp, []))
        # Embed before taking the connection: a slow (remote) model must not hold the lock
        # that every other reader and writer of the database waits on.
        plain_puts = [(i, cast(PutOp, original[i])) for i, _ in puts]
        writes = await self._vector_writes(index, plain_puts) if index and puts else None
        queries = await self._embed_queries(index, semantic) if index and semantic else {}

        async with self._cursor(transaction=True) as cur:
            if GetOp in grouped:
                await self._batch_get_ops(grouped[GetOp], results, cur)
            if plain:
                await self._batch_search_ops(plain, results, cur)
            if semantic:
                await self._semantic_search(semantic, queries, results, cur)
            if ListNamespacesOp in grouped:
                await self._batch_list_namespaces_ops(grouped[ListNamespacesOp], results, cur)
            if puts:
                await self._batch_put_ops(puts, cur)
                if writes is not None:
                    await cur.executemany(_DELETE_VECTORS, writes.replaced)
                    await cur.executemany(_INSERT_VECTOR, writes.rows)
        if self.cipher is None:
            return results
        stale = self.cipher.stale_items(original, results)
        opened = self.cipher.open_results(original, results)
        await reseal_each("store item", stale, self._reseal)  # lazy re-encryption
        return opened

    async def _reseal(self, item: StaleItem) -> int:
        params = (orjson.dumps(item.value).decode(), item.prefix, item.key, item.expected)
        async with self._cursor(transaction=True) as cur:
            await cur.execute(_RESEAL_VALUE, params)
            return cur.rowcount

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
        async with self._cursor(transaction=True) as cur:
            await cur.execute(_STORE_PAGE, (prefix, prefix, key, limit))
            rows = list(await cur.fetchall())
            for row_prefix, row_key, text in rows:
                value = cipher.rewrap(tuple(row_prefix.split(".")), row_key, orjson.loads(text))
                if value is not None:
                    text = orjson.dumps(value).decode()
                    await cur.execute(_UPDATE_VALUE, (text, row_prefix, row_key))
                    changed += 1
        return changed, ((rows[-1][0], rows[-1][1]) if len(rows) == limit else None)

    async def count_vectors(self) -> int:
        """How many vectors the semantic index holds (for metrics and tests)."""
        async with self._cursor(transaction=False) as cur:
            await cur.execute(_COUNT_VECTORS)
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _vector_writes(
        self, index: VectorIndex, puts: Sequence[tuple[int, PutOp]]
    ) -> _VectorWrites:
        latest: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for _, op in puts:  # the last put of a key wins, as in the official store
            latest[(op.namespace, op.key)] = op
        targets: list[tuple[str, str, str]] = []
        texts: list[str] = []
        for op in latest.values():
            if op.value is None or op.index is False:
                continue
            fields = index.fields if op.index is None else tuple(map(_field, op.index))
            prefix = ".".join(op.namespace)
            for path, tokens in fields:
                found = get_text_at_path(op.value, tokens)
                for position, text in enumerate(found):
                    if text.strip():  # an empty text carries no meaning to rank by
                        name = f"{path}.{position}" if len(found) > 1 else path
                        targets.append((prefix, op.key, name))
                        texts.append(text)
        vectors = await index.embeddings.aembed_documents(texts) if texts else []
        if len(vectors) != len(texts):
            raise RuntimeError(f"the embeddings returned {len(vectors)} vectors for {len(texts)}")
        return _VectorWrites(
            replaced=[(".".join(namespace), key) for namespace, key in latest],
            rows=[
                (*target, index.encode(vector))
                for target, vector in zip(targets, vectors, strict=True)
            ],
        )

    async def _embed_queries(
        self, index: VectorIndex, searches: Sequence[tuple[int, SearchOp]]
    ) -> dict[str, bytes]:
        texts = list({op.query for _, op in searches if op.query})
        vectors = await asyncio.gather(*(index.embeddings.aembed_query(text) for text in texts))
        return {text: index.encode(vector) for text, vector in zip(texts, vectors, strict=True)}

    async def _semantic_search(
        self,
        searches: Sequence[tuple[int, SearchOp]],
        queries: dict[str, bytes],
        results: list[Result],
        cur: aiosqlite.Cursor,
    ) -> None:
        for position, op in searches:
            # The official listing query of every item the op may return (LIMIT -1 = all).
            listing = op._replace(query=None, limit=-1, offset=0)
            prepared, _ = self._prepare_batch_search_queries([(position, listing)])
            [(candidates, params, refresh)] = prepared
            query = queries[cast(str, op.query)]
            await cur.execute(
                _SEMANTIC_SEARCH.format(candidates=candidates),
                [query, *params, op.limit, op.offset],
            )
            rows = list(await cur.fetchall())
            if refresh and rows:
                await self._refresh_ttl(cur, rows)
            results[position] = [self._search_item(row) for row in rows]

    async def _refresh_ttl(self, cur: aiosqlite.Cursor, rows: Sequence[Any]) -> None:
        keys_by_prefix: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            keys_by_prefix[row[0]].append(row[1])
        for prefix, keys in keys_by_prefix.items():
            await cur.execute(_REFRESH_TTL.format(keys=",".join("?" * len(keys))), (prefix, *keys))

    def _search_item(self, row: Any) -> SearchItem:
        prefix, key, value, created_at, updated_at, score = row
        loads = self._deserializer or orjson.loads
        return SearchItem(
            namespace=tuple(prefix.split(".")),
            key=key,
            value=cast(dict[str, Any], loads(value)),
            created_at=created_at,
            updated_at=updated_at,
            score=float(score),
        )


__all__ = ["GarrisonSqliteStore", "VectorIndex", "encode_vector", "vector_similarity"]
