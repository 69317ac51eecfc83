"""The long-term store over HTTP: the official SDK's StoreClient, the wire details it relies
on, and graphs sharing the same store through `runtime.store` and `get_store()`."""

import uuid
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient


def unique() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def test_put_get_delete_with_the_sdk(client: LangGraphClient) -> None:
    ns = [unique(), "prefs"]
    await client.store.put_item(ns, "theme", {"value": "dark"})
    item = await client.store.get_item(ns, "theme")
    assert item["namespace"] == ns
    assert item["key"] == "theme"
    assert item["value"] == {"value": "dark"}
    assert str(item["created_at"]).endswith("+00:00")  # JSON text, typed as datetime

    await client.store.put_item(ns, "theme", {"value": "light"}, ttl=60)
    item = await client.store.get_item(ns, "theme", refresh_ttl=True)
    assert item["value"] == {"value": "light"}

    await client.store.delete_item(ns, "theme")
    assert await client.store.get_item(ns, "theme") is None


DOCS = {
    "cats": {"text": "cats purr and sleep in the sun", "kind": "pets"},
    "dogs": {"text": "dogs bark and fetch sticks", "kind": "pets"},
    "stocks": {"text": "stock markets fell as rates rose", "kind": "news"},
}


async def _put_docs(client: LangGraphClient, root: str) -> None:
    for key, value in DOCS.items():
        await client.store.put_item([root, "docs"], key, value)
    await client.store.put_item([root, "docs"], "hidden", {"text": "cats purr"}, index=False)


async def test_search_lists_and_filters(client: LangGraphClient) -> None:
    root = unique()
    await _put_docs(client, root)
    listed = await client.store.search_items([root], limit=10)
    assert {i["key"] for i in listed["items"]} == {*DOCS, "hidden"}
    pets = await client.store.search_items([root], filter={"kind": "pets"})
    assert {i["key"] for i in pets["items"]} == {"cats", "dogs"}


async def test_search_ranks_semantically(client: LangGraphClient, semantic_store: None) -> None:
    root = unique()
    await _put_docs(client, root)
    ranked = await client.store.search_items([root], query="why do cats purr in the sun")
    keys = [i["key"] for i in ranked["items"]]
    assert keys[0] == "cats"
    assert "hidden" not in keys  # index=False: stored, never ranked
    assert all(isinstance(i["score"], float) for i in ranked["items"])
    assert ranked["items"][0]["namespace"] == [root, "docs"]

    page = await client.store.search_items(
        [root], query="why do cats purr in the sun", limit=1, offset=1
    )
    assert [i["key"] for i in page["items"]] == keys[1:2]


async def test_list_namespaces(client: LangGraphClient) -> None:
    root = unique()
    for ns in [[root, "a"], [root, "a", "b"], [root, "c", "b"]]:
        await client.store.put_item(ns, "k", {"v": 1})

    found = await client.store.list_namespaces(prefix=[root])
    assert found["namespaces"] == [[root, "a"], [root, "a", "b"], [root, "c", "b"]]
    shallow = await client.store.list_namespaces(prefix=[root], max_depth=2)
    assert shallow["namespaces"] == [[root, "a"], [root, "c"]]
    ending = await client.store.list_namespaces(prefix=[root], suffix=["b"])
    assert ending["namespaces"] == [[root, "a", "b"], [root, "c", "b"]]
    paged = await client.store.list_namespaces(prefix=[root], limit=1, offset=1)
    assert paged["namespaces"] == [[root, "a", "b"]]


async def test_wire_details(http: httpx.AsyncClient) -> None:
    ns = [unique(), "wire"]
    put = await http.put("/store/items", json={"namespace": ns, "key": "k", "value": {"a": 1}})
    assert put.status_code == 204
    assert put.content == b""

    got = await http.get("/store/items", params={"namespace": ".".join(ns), "key": "k"})
    assert got.status_code == 200
    assert got.json()["value"] == {"a": 1}

    missing = await http.get("/store/items", params={"namespace": ".".join(ns), "key": "nope"})
    assert (missing.status_code, missing.content) == (200, b"null")

    no_key = await http.get("/store/items", params={"namespace": ".".join(ns)})
    assert (no_key.status_code, no_key.json()) == (400, {"detail": "Key is required"})

    empty_label = await http.get("/store/items", params={"namespace": "a..b", "key": "k"})
    assert empty_label.status_code == 422
    assert "detail" in empty_label.json()

    deleted = await http.request("DELETE", "/store/items", json={"namespace": ns, "key": "k"})
    assert deleted.status_code == 204
    gone = await http.get("/store/items", params={"namespace": ".".join(ns), "key": "k"})
    assert gone.json() is None


async def test_bad_input_is_refused_with_422(http: httpx.AsyncClient) -> None:
    bad_puts = [
        {"namespace": ["a.b"], "key": "k", "value": {}},
        {"namespace": ["a", ""], "key": "k", "value": {}},
        {"namespace": [], "key": "k", "value": {}},
        {"namespace": ["langgraph"], "key": "k", "value": {}},
        {"namespace": ["a"], "key": "k", "value": "not an object"},
        {"namespace": ["a"], "key": "k", "value": {}, "ttl": -1},
    ]
    for body in bad_puts:
        response = await http.put("/store/items", json=body)
        assert response.status_code == 422, body
        assert isinstance(response.json()["detail"], str)

    bad_delete = await http.request(
        "DELETE", "/store/items", json={"namespace": ["x.y"], "key": "k"}
    )
    assert bad_delete.status_code == 422

    for search in [
        {"namespace_prefix": ["a.b"]},
        {"filter": {"bad key!": 1}},
        {"filter": {"kind": {"$regex": "x"}}},
        {"limit": 0},
    ]:
        response = await http.post("/store/items/search", json=search)
        assert response.status_code == 422, search
        assert "detail" in response.json()

    response = await http.post("/store/namespaces", json={"prefix": ["a.b"]})
    assert response.status_code == 422


async def test_graphs_share_the_store_with_the_api(client: LangGraphClient) -> None:
    ns = [unique(), "notes"]
    await client.store.put_item(ns, "from-api", {"text": "written by a client"})

    thread = await client.threads.create()
    output: Any = await client.runs.wait(
        thread["thread_id"],
        "memory",
        input={"namespace": ns, "key": "from-graph", "text": "written by a graph"},  # type: ignore[dict-item]
    )
    # The sync node read, through get_store(), what the client and the async node wrote.
    assert output["found"] == ["from-api", "from-graph"]

    item = await client.store.get_item(ns, "from-graph")
    assert item is not None
    assert item["namespace"] == ns
    assert item["value"] == {"text": "written by a graph"}


async def test_graph_writes_are_indexed(client: LangGraphClient, semantic_store: None) -> None:
    ns = [unique(), "notes"]
    await client.store.put_item(ns, "from-api", {"text": "written by a client"})
    thread = await client.threads.create()
    await client.runs.wait(
        thread["thread_id"],
        "memory",
        input={"namespace": ns, "key": "from-graph", "text": "written by a graph"},  # type: ignore[dict-item]
    )
    ranked = await client.store.search_items(ns, query="written by a graph")
    assert ranked["items"][0]["key"] == "from-graph"
