"""The embedded long-term store: LangGraph's AsyncSqliteStore plus Garrison's portable
semantic index, on the shared connection, opened the way the server opens it."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import BaseStore, GetOp, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from garrison.runtime.embeddings import HashingEmbeddings
from garrison.runtime.scoped_store import TenantScopedStore
from garrison.storage.sqlite import SqliteStorage
from garrison.storage.sqlite.store import GarrisonSqliteStore

DIMS = 64
INDEX: dict[str, Any] = {"dims": DIMS, "embed": HashingEmbeddings(DIMS)}

DOCS = {
    "cats": {"text": "cats purr and sleep in the sun", "kind": "pets", "stars": 5},
    "dogs": {"text": "dogs bark and fetch sticks", "kind": "pets", "stars": 3},
    "stocks": {"text": "stock markets fell as rates rose", "kind": "news", "stars": 4},
}


async def open_storage(path: Path, **options: Any) -> SqliteStorage:
    return await SqliteStorage.open(path, store_index=INDEX, **options)


@pytest.fixture
async def sqlite_storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    opened = await open_storage(tmp_path / "garrison.db", store_ttl={"refresh_on_read": True})
    yield opened
    await opened.close()


@pytest.fixture
def store(sqlite_storage: SqliteStorage) -> GarrisonSqliteStore:
    return sqlite_storage.sqlite_store


async def put_docs(store: BaseStore, namespace: tuple[str, ...] = ("docs",)) -> None:
    for key, value in DOCS.items():
        await store.aput(namespace, key, value)


async def test_put_get_delete(store: GarrisonSqliteStore) -> None:
    await store.aput(("users", "u1"), "prefs", {"theme": "dark"})
    item = await store.aget(("users", "u1"), "prefs")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (("users", "u1"), "prefs", {"theme": "dark"})
    assert await store.count_vectors() == 1

    await store.aput(("users", "u1"), "prefs", {"theme": "light"})
    assert (await store.aget(("users", "u1"), "prefs")).value == {"theme": "light"}  # type: ignore[union-attr]
    assert await store.count_vectors() == 1  # replaced, not added

    await store.adelete(("users", "u1"), "prefs")
    assert await store.aget(("users", "u1"), "prefs") is None
    assert await store.count_vectors() == 0


async def test_filter_search_and_namespaces(store: GarrisonSqliteStore) -> None:
    await put_docs(store)
    await store.aput(("docsx",), "other", {"kind": "pets", "stars": 5})

    pets = await store.asearch(("docs",), filter={"kind": "pets"})
    assert {i.key for i in pets} == {"cats", "dogs"}
    assert all(i.score is None for i in pets)
    rated = await store.asearch(("docs",), filter={"stars": {"$gte": 4}})
    assert {i.key for i in rated} == {"cats", "stocks"}
    assert len(await store.asearch(("docs",), limit=2)) == 2
    assert len(await store.asearch(("docs",), limit=2, offset=2)) == 1
    assert await store.alist_namespaces() == [("docs",), ("docsx",)]


async def test_semantic_search_ranks_by_meaning(store: GarrisonSqliteStore) -> None:
    await put_docs(store)
    await put_docs(store, ("elsewhere",))

    results = await store.asearch(("docs",), query="do cats purr in the sun?")
    assert results[0].key == "cats"
    assert {r.namespace for r in results} == {("docs",)}
    assert results[0].score is not None
    assert all(r.score is not None and -1.0 <= r.score <= 1.0 for r in results)
    assert [r.score for r in results] == sorted((r.score or 0.0 for r in results), reverse=True)

    # Filters and pagination apply to the ranking, as in a plain search.
    news = await store.asearch(("docs",), query="cats purr", filter={"kind": "news"})
    assert [r.key for r in news] == ["stocks"]
    ranked = [r.key for r in results]
    assert [r.key for r in await store.asearch(("docs",), query="cats purr", limit=1)] == ["cats"]
    page = await store.asearch(("docs",), query="do cats purr in the sun?", limit=2, offset=1)
    assert [r.key for r in page] == ranked[1:3]


async def test_index_paths_per_store_and_per_put(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(
        tmp_path / "fields.db", store_index={**INDEX, "fields": ["title", "tags[*]"]}
    )
    store = storage.sqlite_store
    try:
        await store.aput(("n",), "a", {"title": "cats", "tags": ["pets", "fur"], "body": "x"})
        assert await store.count_vectors() == 3  # title + one per tag
        await store.aput(("n",), "b", {"title": "markets", "body": "cats"}, index=["body"])
        assert await store.count_vectors() == 4
        await store.aput(("n",), "c", {"title": "cats again"}, index=False)
        assert await store.count_vectors() == 4
        results = await store.asearch(("n",), query="cats")
        assert {r.key for r in results} == {"a", "b"}  # unindexed "c" is never ranked
        assert all(r.score is not None for r in results)
    finally:
        await storage.close()


async def test_unindexed_put_drops_the_previous_vectors(store: GarrisonSqliteStore) -> None:
    await store.aput(("docs",), "cats", DOCS["cats"])
    assert await store.count_vectors() == 1
    await store.aput(("docs",), "cats", DOCS["cats"], index=False)
    assert await store.count_vectors() == 0
    assert await store.asearch(("docs",), query="cats") == []
    assert [i.key for i in await store.asearch(("docs",))] == ["cats"]  # still stored


async def test_batch_last_write_wins_for_vectors(store: GarrisonSqliteStore) -> None:
    await store.abatch(
        [
            PutOp(("docs",), "k", {"text": "cats"}),
            PutOp(("docs",), "k", {"text": "stock markets"}),
            PutOp(("docs",), "gone", {"text": "cats"}),
            PutOp(("docs",), "gone", None),
        ]
    )
    assert await store.count_vectors() == 1
    [item] = await store.asearch(("docs",), query="stock markets")
    assert item.value == {"text": "stock markets"}
    [stale] = await store.asearch(("docs",), query="cats")
    assert (item.score or 0.0) > (stale.score or 0.0)  # the vector is the last value's


async def test_expired_items_lose_their_vectors(sqlite_storage: SqliteStorage) -> None:
    store = sqlite_storage.sqlite_store
    assert store.supports_ttl  # wrappers such as TenantScopedStore rely on the flag
    await store.aput(("docs",), "brief", {"text": "cats"}, ttl=0.001)  # 60 ms
    await store.aput(("docs",), "lasting", {"text": "cats"})
    assert await store.count_vectors() == 2
    await asyncio.sleep(1.1)  # the official store compares expiry at one-second resolution
    assert await store.sweep_ttl() == 1
    assert await store.aget(("docs",), "brief") is None
    assert await store.count_vectors() == 1
    assert [r.key for r in await store.asearch(("docs",), query="cats")] == ["lasting"]


async def test_index_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "persist.db"
    first = await open_storage(path)
    await put_docs(first.store)
    await first.close()

    second = await open_storage(path)
    try:
        results = await second.store.asearch(("docs",), query="dogs fetch sticks")
        assert results[0].key == "dogs"
        assert await second.sqlite_store.count_vectors() == len(DOCS)
    finally:
        await second.close()


async def test_a_failed_batch_leaves_the_connection_usable(store: GarrisonSqliteStore) -> None:
    with pytest.raises(ValueError, match="Invalid filter key"):
        await store.abatch(
            [SearchOp(("docs",), {"bad key!": 1}), PutOp(("docs",), "k", {"text": "cats"})]
        )
    assert await store.aget(("docs",), "k") is None  # nothing of the batch was kept
    await store.aput(("docs",), "k", {"text": "cats"})
    [found] = await store.abatch([GetOp(("docs",), "k")])
    assert found is not None


async def test_matches_the_in_memory_reference(store: GarrisonSqliteStore) -> None:
    """LangGraph's InMemoryStore is the reference semantics: the same operations give the
    same items, namespaces and (within float32 precision) the same semantic scores."""
    reference = InMemoryStore(index=INDEX)  # type: ignore[arg-type]
    for target in (store, reference):
        await put_docs(target, ("docs", "a"))
        await put_docs(target, ("docs", "b", "c"))
        await target.aput(
            ("misc",), "note", {"text": "cats everywhere", "kind": "pets", "stars": 1}
        )

    def keyed(items: list[Any]) -> set[tuple[tuple[str, ...], str]]:
        return {(i.namespace, i.key) for i in items}

    for prefix in [(), ("docs",), ("docs", "b"), ("doc",)]:
        for filter_ in [None, {"kind": "pets"}, {"stars": {"$gt": 3}}]:
            ours = await store.asearch(prefix, filter=filter_, limit=100)
            theirs = await reference.asearch(prefix, filter=filter_, limit=100)
            assert keyed(ours) == keyed(theirs), (prefix, filter_)
            ours = await store.asearch(prefix, filter=filter_, query="cats purr", limit=100)
            theirs = await reference.asearch(prefix, filter=filter_, query="cats purr", limit=100)
            assert [(i.namespace, i.key) for i in ours][:1] == [
                (i.namespace, i.key) for i in theirs
            ][:1]
            assert {(i.namespace, i.key): pytest.approx(i.score, abs=1e-5) for i in ours} == {
                (i.namespace, i.key): i.score for i in theirs
            }
    option_sets: list[dict[str, Any]] = [
        {},
        {"prefix": ("docs",)},
        {"suffix": ("c",)},
        {"max_depth": 2},
        {"prefix": ("docs", "*")},
    ]
    for options in option_sets:
        assert await store.alist_namespaces(**options) == sorted(
            await reference.alist_namespaces(**options)
        ), options


async def test_tenant_scoping_over_sql(store: GarrisonSqliteStore) -> None:
    acme = TenantScopedStore(store, tenant=lambda: "acme")
    globex = TenantScopedStore(store, tenant=lambda: "globex")
    await put_docs(acme)
    await globex.aput(("docs",), "secret", {"text": "cats purr in the sun"})
    await acme.aput(("x", "docs"), "k", {"text": "x"})

    assert {r.key for r in await acme.asearch(("docs",), query="cats purr")} == set(DOCS)
    assert [r.key for r in await globex.asearch((), query="cats purr")] == ["secret"]
    assert await acme.alist_namespaces() == [("docs",), ("x", "docs")]
    assert await acme.alist_namespaces(suffix=("acme", "docs")) == []
    assert await acme.alist_namespaces(suffix=("*", "docs")) == [("x", "docs")]
    assert await acme.alist_namespaces(max_depth=1) == [("docs",), ("x",)]
