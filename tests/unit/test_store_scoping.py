"""TenantScopedStore: every tenant sees its own store, under the namespaces it used."""

import asyncio
import contextvars

import pytest
from langgraph.store.base import BaseStore, InvalidNamespaceError, MatchCondition
from langgraph.store.memory import InMemoryStore

from garrison.domain.principal import DEFAULT_TENANT, current_tenant
from garrison.runtime.embeddings import HashingEmbeddings
from garrison.runtime.scoped_store import TenantScopedStore, scope_conditions, tenant_label


def scoped(inner: BaseStore, tenant: str) -> TenantScopedStore:
    return TenantScopedStore(inner, tenant=lambda: tenant)


@pytest.fixture
def inner() -> InMemoryStore:
    return InMemoryStore(index={"dims": 32, "embed": HashingEmbeddings(32)})


async def test_tenants_never_see_each_others_items(inner: InMemoryStore) -> None:
    acme, globex = scoped(inner, "acme"), scoped(inner, "globex")
    await acme.aput(("users", "u1"), "prefs", {"theme": "dark"})
    await globex.aput(("users", "u1"), "prefs", {"theme": "light"})
    await acme.aput(("users", "u2"), "prefs", {"theme": "blue"})
    # The database holds each item under its tenant's hidden label.
    assert sorted(await inner.alist_namespaces()) == [
        ("acme", "users", "u1"),
        ("acme", "users", "u2"),
        ("globex", "users", "u1"),
    ]

    mine = await acme.aget(("users", "u1"), "prefs")
    assert mine is not None
    assert mine.namespace == ("users", "u1")
    assert mine.value == {"theme": "dark"}
    assert await globex.aget(("users", "u2"), "prefs") is None

    found = await globex.asearch(("users",))
    assert [(i.namespace, i.value) for i in found] == [(("users", "u1"), {"theme": "light"})]

    await globex.adelete(("users", "u1"), "prefs")
    assert await globex.aget(("users", "u1"), "prefs") is None
    assert await acme.aget(("users", "u1"), "prefs") is not None


async def test_semantic_search_keeps_scores_and_visible_namespaces(inner: InMemoryStore) -> None:
    acme, globex = scoped(inner, "acme"), scoped(inner, "globex")
    await acme.aput(("docs",), "cats", {"text": "cats purr and sleep all day"})
    await acme.aput(("docs",), "stocks", {"text": "stock markets fell sharply"})
    await globex.aput(("docs",), "felines", {"text": "cats purr loudly"})

    results = await acme.asearch(("docs",), query="why do cats purr")
    assert [r.key for r in results] == ["cats", "stocks"]
    assert results[0].namespace == ("docs",)
    assert results[0].score is not None and results[0].score > (results[1].score or 0.0)


async def test_namespaces_are_listed_relative_to_the_visible_root(inner: InMemoryStore) -> None:
    acme, globex = scoped(inner, "acme"), scoped(inner, "globex")
    for namespace in [("a",), ("a", "b"), ("a", "b", "c"), ("x", "a")]:
        await acme.aput(namespace, "k", {"v": 1})
    await globex.aput(("a", "secret"), "k", {"v": 1})

    assert await acme.alist_namespaces() == [("a",), ("a", "b"), ("a", "b", "c"), ("x", "a")]
    assert await acme.alist_namespaces(prefix=("a",)) == [("a",), ("a", "b"), ("a", "b", "c")]
    assert await acme.alist_namespaces(suffix=("a",)) == [("a",), ("x", "a")]
    assert await acme.alist_namespaces(max_depth=1) == [("a",), ("x",)]
    assert await acme.alist_namespaces(prefix=("a",), max_depth=2) == [("a",), ("a", "b")]
    assert await acme.alist_namespaces(prefix=("*", "b")) == [("a", "b"), ("a", "b", "c")]
    assert await acme.alist_namespaces(limit=2, offset=1) == [("a", "b"), ("a", "b", "c")]
    # A suffix may not reach into the hidden tenant label: ("a",) does not end with
    # ("acme", "a") nor with ("*", "a"), even though its stored form does.
    assert await acme.alist_namespaces(suffix=("acme", "a")) == []
    assert await acme.alist_namespaces(suffix=("*", "a")) == [("x", "a")]
    assert await globex.alist_namespaces() == [("a", "secret")]


def test_scoped_conditions_guard_suffixes_longer_than_the_prefix() -> None:
    suffix = MatchCondition("suffix", ("b", "c"))
    assert scope_conditions([suffix], "t") == (MatchCondition("prefix", ("t", "*", "*")), suffix)
    prefix = MatchCondition("prefix", ("a", "b"))
    assert scope_conditions([prefix, suffix], "t") == (
        MatchCondition("prefix", ("t", "a", "b")),
        suffix,
    )
    assert scope_conditions([], "t") == (MatchCondition("prefix", ("t",)),)


async def test_tenant_ids_map_to_labels_one_to_one(inner: InMemoryStore) -> None:
    assert tenant_label("acme") == "acme"
    assert len({tenant_label(t) for t in ["a.b", "a%2Eb", "*", "%2A", "a"]}) == 5
    dotted, plain, star = scoped(inner, "a.b"), scoped(inner, "a"), scoped(inner, "*")
    await dotted.aput(("x",), "k", {"owner": "a.b"})
    await plain.aput(("b", "x"), "k", {"owner": "a"})
    assert (await dotted.aget(("x",), "k")).value == {"owner": "a.b"}  # type: ignore[union-attr]
    assert await plain.alist_namespaces() == [("b", "x")]
    # "*" would be a wildcard label; escaped, that tenant sees nothing of the others.
    assert await star.alist_namespaces() == []
    assert await star.asearch(()) == []
    with pytest.raises(ValueError, match="empty"):
        await scoped(inner, "").aget(("x",), "k")


async def test_labels_are_validated_on_the_visible_namespace(inner: InMemoryStore) -> None:
    acme = scoped(inner, "acme")
    with pytest.raises(InvalidNamespaceError):
        await acme.aput(("langgraph", "x"), "k", {})
    with pytest.raises(InvalidNamespaceError):
        await acme.aput(("a.b",), "k", {})


async def test_default_scope_follows_the_current_tenant_context(inner: InMemoryStore) -> None:
    store = TenantScopedStore(inner)
    assert current_tenant.get() == DEFAULT_TENANT

    async def as_tenant(tenant: str, value: int) -> None:
        current_tenant.set(tenant)  # tasks run in a copy of the context: no leaks
        await store.aput(("n",), "k", {"v": value})

    await asyncio.gather(as_tenant("acme", 1), as_tenant("globex", 2))
    await store.aput(("n",), "k", {"v": 0})
    assert sorted(await inner.alist_namespaces()) == [
        ("acme", "n"),
        ("default", "n"),
        ("globex", "n"),
    ]
    assert (await store.aget(("n",), "k")).value == {"v": 0}  # type: ignore[union-attr]

    def sync_read() -> object:  # a sync node reads on a worker thread with a copied context
        current_tenant.set("acme")
        item = store.get(("n",), "k")
        return item.value if item else None

    assert await asyncio.to_thread(contextvars.copy_context().run, sync_read) == {"v": 1}


def test_ttl_support_mirrors_the_inner_store(inner: InMemoryStore) -> None:
    store = scoped(inner, "acme")
    assert store.supports_ttl == inner.supports_ttl
    assert store.ttl_config == inner.ttl_config
