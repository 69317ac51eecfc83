"""The long-term store on PostgreSQL: LangGraph's AsyncPostgresStore on Garrison's pool,
opened the way the server opens it. Semantic search needs pgvector on the server; without
it, configuring `store.index` fails at start-up with the fix in the message."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from garrison.domain.errors import InvalidArgumentError
from garrison.runtime.embeddings import HashingEmbeddings
from garrison.runtime.scoped_store import TenantScopedStore
from garrison.storage.postgres import PostgresStorage
from garrison.storage.postgres.migrate import migrate
from tests.contract.conftest import POSTGRES_URL, open_postgres

DIMS = 64
INDEX: dict[str, Any] = {"dims": DIMS, "embed": HashingEmbeddings(DIMS)}

DOCS = {
    "cats": {"text": "cats purr and sleep in the sun", "kind": "pets", "stars": 5},
    "dogs": {"text": "dogs bark and fetch sticks", "kind": "pets", "stars": 3},
    "stocks": {"text": "stock markets fell as rates rose", "kind": "news", "stars": 4},
}


def _pgvector_available() -> bool:
    with psycopg.connect(POSTGRES_URL, connect_timeout=5) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    return found is not None


@pytest.fixture(scope="module")
def pgvector() -> bool:
    return _pgvector_available()


@pytest.fixture
async def postgres(postgres_url: str) -> AsyncIterator[PostgresStorage]:
    storage = await open_postgres(postgres_url, store_ttl={"refresh_on_read": True})
    yield storage
    await storage.close()


async def put_docs(store: BaseStore, namespace: tuple[str, ...] = ("docs",)) -> None:
    for key, value in DOCS.items():
        await store.aput(namespace, key, value)


async def test_put_get_delete(postgres: PostgresStorage) -> None:
    store = postgres.store
    await store.aput(("users", "u1"), "prefs", {"theme": "dark"})
    item = await store.aget(("users", "u1"), "prefs")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (("users", "u1"), "prefs", {"theme": "dark"})
    await store.aput(("users", "u1"), "prefs", {"theme": "light"})
    replaced = await store.aget(("users", "u1"), "prefs")
    assert replaced is not None and replaced.value == {"theme": "light"}
    await store.adelete(("users", "u1"), "prefs")
    assert await store.aget(("users", "u1"), "prefs") is None


async def test_filter_search_pages_and_namespaces(postgres: PostgresStorage) -> None:
    store = postgres.store
    await put_docs(store)
    await store.aput(("docsx",), "other", {"kind": "pets", "stars": 5})
    pets = await store.asearch(("docs",), filter={"kind": "pets"})
    assert {i.key for i in pets} == {"cats", "dogs"}
    rated = await store.asearch(("docs",), filter={"stars": {"$gte": 4}})
    assert {i.key for i in rated} == {"cats", "stocks"}
    assert len(await store.asearch(("docs",), limit=2)) == 2
    assert len(await store.asearch(("docs",), limit=2, offset=2)) == 1
    assert await store.alist_namespaces() == [("docs",), ("docsx",)]


async def test_matches_the_in_memory_reference(postgres: PostgresStorage) -> None:
    reference = InMemoryStore()
    for target in (postgres.store, reference):
        await put_docs(target, ("docs", "a"))
        await put_docs(target, ("docs", "b", "c"))
        await target.aput(("misc",), "note", {"text": "cats", "kind": "pets", "stars": 1})
    for prefix in [(), ("docs",), ("docs", "b"), ("doc",)]:
        for filter_ in [None, {"kind": "pets"}, {"stars": {"$gt": 3}}]:
            ours = await postgres.store.asearch(prefix, filter=filter_, limit=100)
            theirs = await reference.asearch(prefix, filter=filter_, limit=100)
            assert {(i.namespace, i.key) for i in ours} == {(i.namespace, i.key) for i in theirs}, (
                prefix,
                filter_,
            )
    option_sets: list[dict[str, Any]] = [
        {},
        {"prefix": ("docs",)},
        {"suffix": ("c",)},
        {"max_depth": 2},
    ]
    for options in option_sets:
        assert await postgres.store.alist_namespaces(**options) == sorted(
            await reference.alist_namespaces(**options)
        ), options


async def test_expired_items_are_swept(postgres: PostgresStorage) -> None:
    store = postgres.postgres_store
    assert store.supports_ttl  # wrappers such as TenantScopedStore rely on the flag
    await store.aput(("docs",), "brief", {"text": "cats"}, ttl=0.001)  # 60 ms
    await store.aput(("docs",), "lasting", {"text": "cats"})
    await asyncio.sleep(0.2)
    assert await store.sweep_ttl() == 1
    assert await store.aget(("docs",), "brief") is None
    assert [i.key for i in await store.asearch(("docs",))] == ["lasting"]


async def test_the_ttl_sweeper_runs_in_the_background(postgres_url: str) -> None:
    storage = await open_postgres(postgres_url, store_ttl={"sweep_interval_minutes": 0.002})
    try:
        await storage.start_background()
        await storage.store.aput(("docs",), "brief", {"text": "cats"}, ttl=0.001)
        for _ in range(50):
            if await storage.store.aget(("docs",), "brief") is None:
                break
            await asyncio.sleep(0.05)
        row = await storage.db.fetch_one("SELECT count(*) AS n FROM store")
        assert row is not None and row["n"] == 0  # deleted, not merely hidden
    finally:
        await storage.close()


async def test_tenant_scoping_over_sql(postgres: PostgresStorage) -> None:
    acme = TenantScopedStore(postgres.store, tenant=lambda: "acme")
    globex = TenantScopedStore(postgres.store, tenant=lambda: "globex")
    await put_docs(acme)
    await globex.aput(("docs",), "secret", {"text": "cats purr in the sun"})
    assert {i.key for i in await acme.asearch(("docs",))} == set(DOCS)
    assert [i.key for i in await globex.asearch(())] == ["secret"]
    assert await acme.alist_namespaces() == [("docs",)]


async def test_semantic_search_with_pgvector(pgvector: bool, postgres_url: str) -> None:
    if not pgvector:
        pytest.skip("the server has no pgvector; the start-up error is tested instead")
    await migrate(postgres_url, store_index=INDEX)
    storage = await open_postgres(postgres_url, store_index=INDEX)
    try:
        await put_docs(storage.store)
        await put_docs(storage.store, ("elsewhere",))
        results = await storage.store.asearch(("docs",), query="do cats purr in the sun?")
        assert results[0].key == "cats" and results[0].score is not None
        assert {r.namespace for r in results} == {("docs",)}
        news = await storage.store.asearch(("docs",), query="cats purr", filter={"kind": "news"})
        assert [r.key for r in news] == ["stocks"]
    finally:
        await storage.close()


async def test_store_index_without_pgvector_fails_at_start_up(
    pgvector: bool, postgres_url: str
) -> None:
    if pgvector:
        pytest.skip("the server has pgvector; semantic search is tested instead")
    with pytest.raises(InvalidArgumentError, match="pgvector") as raised:
        await open_postgres(postgres_url, store_index=INDEX)
    assert "remove store.index" in str(raised.value)
    with pytest.raises(InvalidArgumentError, match="pgvector"):
        await migrate(postgres_url, store_index=INDEX)
    # Without store.index the same database serves everything else.
    storage = await open_postgres(postgres_url)
    await storage.close()
