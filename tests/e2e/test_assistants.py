"""Assistants over the wire: system assistants, CRUD, versions, search and graph introspection.

Every test makes its own assistants (tagged with a unique marker in their metadata or name),
so they can share one server with the rest of the suite.
"""

import json
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from tests.support.server import PROJECT

SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
PROJECT_GRAPHS = tuple(json.loads(PROJECT.read_text())["graphs"])
# Graphs whose compiled name is their graph id (or factories, named after the graph id).
NAMED_AFTER_GRAPH_ID = ("echo", "steps", "approval", "nested", "chat", "configured")


def system_id(graph_id: str) -> str:
    return str(uuid.uuid5(SYSTEM_NAMESPACE, graph_id))


def marker() -> str:
    return uuid.uuid4().hex[:12]


# System assistants ---------------------------------------------------------------------
@pytest.mark.parametrize("graph_id", PROJECT_GRAPHS)
async def test_system_assistant_exists_with_the_langgraph_uuid5_id(
    client: LangGraphClient, graph_id: str
) -> None:
    assistant = await client.assistants.get(system_id(graph_id))
    assert assistant["assistant_id"] == system_id(graph_id)
    assert assistant["graph_id"] == graph_id
    assert assistant["metadata"] == {"created_by": "system"}
    assert assistant["version"] == 1
    assert assistant["config"] == {}
    assert assistant["context"] == {}


@pytest.mark.parametrize("graph_id", NAMED_AFTER_GRAPH_ID)
async def test_system_assistant_is_named_after_its_graph(
    client: LangGraphClient, graph_id: str
) -> None:
    assert (await client.assistants.get(system_id(graph_id)))["name"] == graph_id


async def test_system_assistants_are_found_by_their_metadata(client: LangGraphClient) -> None:
    found = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    by_graph = {a["graph_id"]: a["assistant_id"] for a in found}
    assert by_graph == {graph_id: system_id(graph_id) for graph_id in PROJECT_GRAPHS}


# Create --------------------------------------------------------------------------------
async def test_create_returns_a_new_assistant_with_defaults(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo")
    assert uuid.UUID(created["assistant_id"])
    assert created["graph_id"] == "echo"
    assert created["name"] == "Untitled"
    assert created["version"] == 1
    assert created["metadata"] == {}
    assert created["config"] == {}
    assert created["context"] == {}
    assert created["created_at"] and created["updated_at"]
    assert await client.assistants.get(created["assistant_id"]) == created


async def test_create_stores_name_description_metadata_and_config(
    client: LangGraphClient,
) -> None:
    created = await client.assistants.create(
        "echo",
        config={"tags": ["fast"], "recursion_limit": 7},
        metadata={"team": "a", "nested": {"k": 1}},
        name="Echo bot",
        description="repeats things",
    )
    fetched = await client.assistants.get(created["assistant_id"])
    assert fetched["name"] == "Echo bot"
    assert fetched["description"] == "repeats things"
    assert fetched["metadata"] == {"team": "a", "nested": {"k": 1}}
    assert fetched["config"]["tags"] == ["fast"]
    assert fetched["config"]["recursion_limit"] == 7


async def test_create_with_explicit_id(client: LangGraphClient) -> None:
    assistant_id = str(uuid.uuid4())
    created = await client.assistants.create("steps", assistant_id=assistant_id)
    assert created["assistant_id"] == assistant_id
    assert (await client.assistants.get(assistant_id))["graph_id"] == "steps"


async def test_create_existing_id_raises_409_by_default_and_with_raise(
    client: LangGraphClient,
) -> None:
    assistant_id = str(uuid.uuid4())
    await client.assistants.create("echo", assistant_id=assistant_id, name="first")
    with pytest.raises(ConflictError):
        await client.assistants.create("echo", assistant_id=assistant_id)
    with pytest.raises(ConflictError):
        await client.assistants.create("echo", assistant_id=assistant_id, if_exists="raise")
    assert (await client.assistants.get(assistant_id))["name"] == "first"


async def test_create_existing_id_with_do_nothing_returns_the_existing_assistant(
    client: LangGraphClient,
) -> None:
    assistant_id = str(uuid.uuid4())
    first = await client.assistants.create(
        "echo", assistant_id=assistant_id, name="first", metadata={"v": 1}
    )
    again = await client.assistants.create(
        "steps", assistant_id=assistant_id, name="second", metadata={"v": 2}, if_exists="do_nothing"
    )
    assert again == first
    assert (await client.assistants.get(assistant_id))["name"] == "first"


async def test_create_with_a_system_assistant_id_conflicts(client: LangGraphClient) -> None:
    with pytest.raises(ConflictError):
        await client.assistants.create("echo", assistant_id=system_id("echo"))
    existing = await client.assistants.create(
        "echo", assistant_id=system_id("echo"), if_exists="do_nothing"
    )
    assert existing["metadata"] == {"created_by": "system"}


async def test_create_with_a_non_uuid_id_is_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.create("echo", assistant_id="my-assistant")


async def test_create_for_an_unknown_graph_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.create("no-such-graph")


async def test_create_with_context_mirrors_it_into_configurable(client: LangGraphClient) -> None:
    created = await client.assistants.create("configured", context={"prefix": "Hi"})
    assert created["context"] == {"prefix": "Hi"}
    assert created["config"]["configurable"] == {"prefix": "Hi"}


async def test_create_with_configurable_mirrors_it_into_context(client: LangGraphClient) -> None:
    created = await client.assistants.create(
        "configured", config={"configurable": {"prefix": "Yo"}}
    )
    assert created["context"] == {"prefix": "Yo"}
    assert created["config"]["configurable"] == {"prefix": "Yo"}


async def test_create_with_both_context_and_configurable_is_400(client: LangGraphClient) -> None:
    with pytest.raises(BadRequestError):
        await client.assistants.create(
            "configured", config={"configurable": {"prefix": "A"}}, context={"prefix": "B"}
        )


async def test_assistant_config_reaches_a_graph_factory(client: LangGraphClient) -> None:
    assistant = await client.assistants.create("configured", context={"prefix": "Howdy"})
    thread = await client.threads.create()
    output = await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input={})
    assert output["greeting"] == "Howdy, world"


# Get -----------------------------------------------------------------------------------
async def test_get_unknown_assistant_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get(str(uuid.uuid4()))


async def test_get_malformed_id_is_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.get("not-a-uuid")


async def test_get_by_graph_name_is_422_outside_graph_drawing(client: LangGraphClient) -> None:
    # Only /graph (and run and cron bodies) map a graph name to its system assistant.
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.get("echo")


# Update and versions -------------------------------------------------------------------
async def test_update_creates_a_new_version_and_merges_metadata(client: LangGraphClient) -> None:
    created = await client.assistants.create(
        "echo",
        name="original",
        description="first description",
        config={"tags": ["keep"]},
        metadata={"a": 1, "b": 1},
    )
    updated = await client.assistants.update(created["assistant_id"], metadata={"b": 2, "c": 3})
    assert updated["version"] == 2
    assert updated["metadata"] == {"a": 1, "b": 2, "c": 3}
    # Unspecified fields keep their current values.
    assert updated["name"] == "original"
    assert updated["description"] == "first description"
    assert updated["graph_id"] == "echo"
    assert updated["config"] == {"tags": ["keep"]}
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] >= created["updated_at"]
    assert await client.assistants.get(created["assistant_id"]) == updated


async def test_update_changes_name_description_and_graph(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo", name="before")
    updated = await client.assistants.update(
        created["assistant_id"], graph_id="steps", name="after", description="now steps"
    )
    assert (updated["graph_id"], updated["name"], updated["description"]) == (
        "steps",
        "after",
        "now steps",
    )
    assert updated["version"] == 2


async def test_update_context_alone_keeps_the_rest_of_the_config(
    client: LangGraphClient,
) -> None:
    created = await client.assistants.create(
        "configured", config={"tags": ["t"]}, context={"prefix": "Hi"}
    )
    updated = await client.assistants.update(created["assistant_id"], context={"prefix": "Yo"})
    assert updated["context"] == {"prefix": "Yo"}
    assert updated["config"]["configurable"] == {"prefix": "Yo"}
    assert updated["config"]["tags"] == ["t"]


async def test_update_configurable_syncs_context(client: LangGraphClient) -> None:
    created = await client.assistants.create("configured", context={"prefix": "Hi"})
    updated = await client.assistants.update(
        created["assistant_id"], config={"configurable": {"prefix": "Hey"}}
    )
    assert updated["context"] == {"prefix": "Hey"}
    assert updated["config"]["configurable"] == {"prefix": "Hey"}


async def test_update_with_both_context_and_configurable_is_400(client: LangGraphClient) -> None:
    created = await client.assistants.create("configured")
    with pytest.raises(BadRequestError):
        await client.assistants.update(
            created["assistant_id"],
            config={"configurable": {"prefix": "A"}},
            context={"prefix": "B"},
        )
    assert (await client.assistants.get(created["assistant_id"]))["version"] == 1


async def test_update_unknown_assistant_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.update(str(uuid.uuid4()), metadata={"a": 1})


async def test_update_to_an_unknown_graph_is_404(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo")
    with pytest.raises(NotFoundError):
        await client.assistants.update(created["assistant_id"], graph_id="no-such-graph")
    assert (await client.assistants.get(created["assistant_id"]))["graph_id"] == "echo"


async def test_versions_are_listed_newest_first(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo", name="v1", metadata={"rev": 1})
    assistant_id = created["assistant_id"]
    await client.assistants.update(assistant_id, name="v2", metadata={"rev": 2})
    await client.assistants.update(assistant_id, name="v3", metadata={"rev": 3})

    versions = await client.assistants.get_versions(assistant_id)
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["name"] for v in versions] == ["v3", "v2", "v1"]
    assert [v["metadata"]["rev"] for v in versions] == [3, 2, 1]
    assert all(v["assistant_id"] == assistant_id for v in versions)

    page = await client.assistants.get_versions(assistant_id, limit=1, offset=1)
    assert [v["version"] for v in page] == [2]
    filtered = await client.assistants.get_versions(assistant_id, metadata={"rev": 1})
    assert [v["version"] for v in filtered] == [1]


async def test_versions_of_an_unknown_assistant_are_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(str(uuid.uuid4()))


async def test_set_latest_switches_back_to_an_older_version(client: LangGraphClient) -> None:
    created = await client.assistants.create(
        "configured", name="v1", metadata={"rev": 1}, context={"prefix": "One"}
    )
    assistant_id = created["assistant_id"]
    await client.assistants.update(
        assistant_id, name="v2", metadata={"rev": 2}, context={"prefix": "Two"}
    )

    restored = await client.assistants.set_latest(assistant_id, 1)
    assert restored["version"] == 1
    assert restored["name"] == "v1"
    assert restored["metadata"] == {"rev": 1}
    assert restored["context"] == {"prefix": "One"}
    assert await client.assistants.get(assistant_id) == restored
    # The history is kept, and the next update still gets a fresh version number.
    assert [v["version"] for v in await client.assistants.get_versions(assistant_id)] == [2, 1]
    bumped = await client.assistants.update(assistant_id, name="v3")
    assert bumped["version"] == 3
    assert bumped["metadata"] == {"rev": 1}


async def test_set_latest_version_is_used_by_runs(client: LangGraphClient) -> None:
    created = await client.assistants.create("configured", context={"prefix": "Old"})
    assistant_id = created["assistant_id"]
    await client.assistants.update(assistant_id, context={"prefix": "New"})
    thread = await client.threads.create()
    output = await client.runs.wait(thread["thread_id"], assistant_id, input={})
    assert output["greeting"] == "New, world"
    await client.assistants.set_latest(assistant_id, 1)
    output = await client.runs.wait(thread["thread_id"], assistant_id, input={})
    assert output["greeting"] == "Old, world"


async def test_set_latest_unknown_version_is_404(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo")
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(created["assistant_id"], 5)
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(str(uuid.uuid4()), 1)


# Delete --------------------------------------------------------------------------------
async def test_delete_answers_204_and_the_assistant_is_gone(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    created = await client.assistants.create("echo")
    response = await http.delete(f"/assistants/{created['assistant_id']}")
    assert response.status_code == 204
    assert response.content == b""
    with pytest.raises(NotFoundError):
        await client.assistants.get(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.delete(created["assistant_id"])


async def test_delete_keeps_threads_by_default(client: LangGraphClient) -> None:
    assistant = await client.assistants.create("echo")
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"value": "x"})
    await client.assistants.delete(assistant["assistant_id"])
    kept = await client.threads.get(thread["thread_id"])
    assert kept["metadata"]["assistant_id"] == assistant["assistant_id"]


async def test_delete_with_delete_threads_removes_its_threads(client: LangGraphClient) -> None:
    assistant = await client.assistants.create("echo")
    other = await client.assistants.create("echo")
    used = await client.threads.create()
    unrelated = await client.threads.create()
    await client.runs.wait(used["thread_id"], assistant["assistant_id"], input={"value": "x"})
    await client.runs.wait(unrelated["thread_id"], other["assistant_id"], input={"value": "y"})

    await client.assistants.delete(assistant["assistant_id"], delete_threads=True)

    with pytest.raises(NotFoundError):
        await client.threads.get(used["thread_id"])
    assert (await client.threads.get(unrelated["thread_id"]))["thread_id"] == unrelated["thread_id"]
    with pytest.raises(NotFoundError):
        await client.assistants.get(assistant["assistant_id"])


async def test_delete_malformed_id_is_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.delete("not-a-uuid")


# Search and count ----------------------------------------------------------------------
async def _three_tagged(client: LangGraphClient, tag: str) -> list[dict[str, Any]]:
    """Three assistants sharing metadata `suite=tag`, created in this order."""
    specs = [
        ("echo", f"Bravo {tag}", {"kind": "a", "labels": ["x", "y"], "nested": {"k": 1, "j": 2}}),
        ("steps", f"alpha {tag}", {"kind": "b", "labels": ["y"]}),
        ("echo", f"Charlie {tag}", {"kind": "b", "labels": ["z"]}),
    ]
    return [
        dict(await client.assistants.create(graph_id, name=name, metadata={"suite": tag, **meta}))
        for graph_id, name, meta in specs
    ]


async def test_search_filters_by_metadata_containment(client: LangGraphClient) -> None:
    tag = marker()
    made = await _three_tagged(client, tag)
    ids = [a["assistant_id"] for a in made]

    def found_ids(found: list[Any]) -> set[str]:
        return {a["assistant_id"] for a in found}

    assert found_ids(await client.assistants.search(metadata={"suite": tag})) == set(ids)
    assert found_ids(await client.assistants.search(metadata={"suite": tag, "kind": "b"})) == set(
        ids[1:]
    )
    # Nested objects and arrays match by containment, as PostgreSQL's @> does.
    assert found_ids(
        await client.assistants.search(metadata={"suite": tag, "nested": {"k": 1}})
    ) == {ids[0]}
    assert found_ids(await client.assistants.search(metadata={"suite": tag, "labels": ["y"]})) == {
        ids[0],
        ids[1],
    }
    assert await client.assistants.search(metadata={"suite": tag, "kind": "c"}) == []


async def test_search_filters_by_graph_id(client: LangGraphClient) -> None:
    tag = marker()
    made = await _three_tagged(client, tag)
    found = await client.assistants.search(metadata={"suite": tag}, graph_id="echo")
    assert {a["assistant_id"] for a in found} == {made[0]["assistant_id"], made[2]["assistant_id"]}
    assert all(a["graph_id"] == "echo" for a in found)


async def test_search_by_name_is_a_case_insensitive_substring(client: LangGraphClient) -> None:
    tag = marker()
    made = await _three_tagged(client, tag)
    found = await client.assistants.search(name=tag.upper())
    assert {a["assistant_id"] for a in found} == {a["assistant_id"] for a in made}
    found = await client.assistants.search(name=f"ALPHA {tag}")
    assert [a["assistant_id"] for a in found] == [made[1]["assistant_id"]]


async def test_search_defaults_to_newest_first(client: LangGraphClient) -> None:
    tag = marker()
    made = await _three_tagged(client, tag)
    found = await client.assistants.search(metadata={"suite": tag})
    assert [a["assistant_id"] for a in found] == [a["assistant_id"] for a in reversed(made)]


@pytest.mark.parametrize(
    ("sort_by", "sort_order"),
    [
        ("name", "asc"),
        ("name", "desc"),
        ("created_at", "asc"),
        ("created_at", "desc"),
        ("updated_at", "asc"),
        ("updated_at", "desc"),
        ("assistant_id", "asc"),
        ("assistant_id", "desc"),
        ("graph_id", "asc"),
    ],
)
async def test_search_sorts(client: LangGraphClient, sort_by: Any, sort_order: Any) -> None:
    tag = marker()
    made = await _three_tagged(client, tag)
    found = await client.assistants.search(
        metadata={"suite": tag}, sort_by=sort_by, sort_order=sort_order
    )
    keys = {
        "name": lambda a: a["name"].lower(),
        "created_at": lambda a: made.index(a),
        "updated_at": lambda a: made.index(a),
        "assistant_id": lambda a: a["assistant_id"],
        "graph_id": lambda a: a["graph_id"],
    }
    expected = sorted(made, key=keys[sort_by], reverse=sort_order == "desc")
    got = [a["assistant_id"] for a in found]
    if sort_by == "graph_id":
        # Ties (two echo assistants) may come in any order; the groups may not.
        assert [a["graph_id"] for a in found] == [a["graph_id"] for a in expected]
    elif sort_by == "name":
        # Case-insensitive order or plain byte order ("Bravo" < "Charlie" < "alpha").
        names = [a["name"] for a in found]
        assert names in (
            [a["name"] for a in expected],
            sorted((a["name"] for a in made), reverse=sort_order == "desc"),
        )
    else:
        assert got == [a["assistant_id"] for a in expected]


async def test_search_limit_and_offset(client: LangGraphClient) -> None:
    tag = marker()
    made = await _three_tagged(client, tag)
    newest_first = [a["assistant_id"] for a in reversed(made)]
    first = await client.assistants.search(metadata={"suite": tag}, limit=2)
    rest = await client.assistants.search(metadata={"suite": tag}, limit=2, offset=2)
    assert [a["assistant_id"] for a in first] == newest_first[:2]
    assert [a["assistant_id"] for a in rest] == newest_first[2:]
    beyond = await client.assistants.search(metadata={"suite": tag}, limit=2, offset=5)
    assert beyond == []


async def test_search_select_returns_only_the_chosen_fields(client: LangGraphClient) -> None:
    tag = marker()
    await _three_tagged(client, tag)
    found = await client.assistants.search(metadata={"suite": tag}, select=["assistant_id", "name"])
    assert len(found) == 3
    assert all(set(a) == {"assistant_id", "name"} for a in found)


async def test_search_pagination_headers(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    tag = marker()
    await _three_tagged(client, tag)
    first = await http.post("/assistants/search", json={"metadata": {"suite": tag}, "limit": 2})
    assert first.status_code == 200
    assert len(first.json()) == 2
    assert first.headers["X-Pagination-Next"] == "2"
    assert first.headers["X-Pagination-Total"] == "3"

    last = await http.post(
        "/assistants/search", json={"metadata": {"suite": tag}, "limit": 2, "offset": 2}
    )
    assert len(last.json()) == 1
    assert "X-Pagination-Next" not in last.headers
    assert last.headers["X-Pagination-Total"] == "3"

    exact = await http.post("/assistants/search", json={"metadata": {"suite": tag}, "limit": 3})
    assert "X-Pagination-Next" not in exact.headers
    assert exact.headers["X-Pagination-Total"] == "3"


async def test_search_object_response_carries_the_next_cursor(client: LangGraphClient) -> None:
    tag = marker()
    await _three_tagged(client, tag)
    page = await client.assistants.search(
        metadata={"suite": tag}, limit=2, response_format="object"
    )
    assert isinstance(page, dict)
    assert len(page["assistants"]) == 2
    assert page["next"] == "2"
    last = await client.assistants.search(
        metadata={"suite": tag}, limit=2, offset=2, response_format="object"
    )
    assert isinstance(last, dict)
    assert last["next"] is None


async def test_count(client: LangGraphClient) -> None:
    tag = marker()
    await _three_tagged(client, tag)
    assert await client.assistants.count(metadata={"suite": tag}) == 3
    assert await client.assistants.count(metadata={"suite": tag, "kind": "b"}) == 2
    assert await client.assistants.count(metadata={"suite": tag}, graph_id="steps") == 1
    assert await client.assistants.count(name=f"charlie {tag}") == 1
    assert await client.assistants.count(metadata={"suite": marker()}) == 0
    assert await client.assistants.count(metadata={"created_by": "system"}) == len(PROJECT_GRAPHS)


# Graph drawing -------------------------------------------------------------------------
def _node_ids(drawing: dict[str, Any]) -> set[str]:
    return {node["id"] for node in drawing["nodes"]}


def _edges(drawing: dict[str, Any]) -> set[tuple[str, str]]:
    return {(edge["source"], edge["target"]) for edge in drawing["edges"]}


async def test_get_graph_draws_nodes_and_edges(client: LangGraphClient) -> None:
    drawing = await client.assistants.get_graph(system_id("approval"))
    assert _node_ids(drawing) == {"__start__", "prepare", "ask", "finish", "__end__"}
    assert _edges(drawing) == {
        ("__start__", "prepare"),
        ("prepare", "ask"),
        ("ask", "finish"),
        ("finish", "__end__"),
    }
    # The server strips LangChain's per-node object ids from the drawing.
    for node in drawing["nodes"]:
        data = node.get("data")
        if isinstance(data, dict):
            assert "id" not in data


async def test_get_graph_accepts_a_graph_name_in_the_path(client: LangGraphClient) -> None:
    by_name = await client.assistants.get_graph("approval")
    by_id = await client.assistants.get_graph(system_id("approval"))
    assert by_name == by_id


async def test_get_graph_of_a_user_assistant(client: LangGraphClient) -> None:
    assistant = await client.assistants.create("echo")
    drawing = await client.assistants.get_graph(assistant["assistant_id"])
    assert _node_ids(drawing) == {"__start__", "echo", "__end__"}


async def test_get_graph_of_a_graph_factory(client: LangGraphClient) -> None:
    drawing = await client.assistants.get_graph("configured")
    assert "greet" in _node_ids(drawing)


async def test_get_graph_xray_expands_subgraphs(client: LangGraphClient) -> None:
    flat = await client.assistants.get_graph("nested")
    assert "inner" in _node_ids(flat)
    assert not any(node.startswith("inner:") for node in _node_ids(flat))

    for xray in (True, 1, 2):
        expanded = await client.assistants.get_graph("nested", xray=xray)
        assert "inner:inner_step" in _node_ids(expanded), xray
        assert ("before", "inner:inner_step") in _edges(expanded)


@pytest.mark.parametrize("xray", ["0", "-1", "maybe", "1.5"])
async def test_get_graph_rejects_bad_xray_with_422(http: httpx.AsyncClient, xray: str) -> None:
    response = await http.get(f"/assistants/{system_id('nested')}/graph", params={"xray": xray})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


async def test_get_graph_xray_zero_through_the_sdk_is_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.get_graph("nested", xray=0)


async def test_get_graph_of_unknown_assistant_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get_graph(str(uuid.uuid4()))


async def test_get_graph_of_unknown_graph_name_is_4xx(http: httpx.AsyncClient) -> None:
    response = await http.get("/assistants/no-such-graph/graph")
    assert response.status_code in (404, 422)
    assert isinstance(response.json()["detail"], str)


# Schemas and subgraphs -----------------------------------------------------------------
async def test_get_schemas_of_a_state_graph(client: LangGraphClient) -> None:
    schemas = await client.assistants.get_schemas(system_id("approval"))
    assert schemas["graph_id"] == "approval"
    for key in ("input_schema", "output_schema", "state_schema"):
        schema = schemas[key]
        assert schema is not None, key
        assert schema["type"] == "object"
        assert set(schema["properties"]) == {"request", "answer", "status"}, key
        assert schema["properties"]["request"]["type"] == "string"
    assert "config_schema" in schemas
    assert "context_schema" in schemas


async def test_get_schemas_of_a_messages_graph(client: LangGraphClient) -> None:
    schemas = await client.assistants.get_schemas(system_id("chat"))
    assert schemas["graph_id"] == "chat"
    assert "messages" in schemas["input_schema"]["properties"]
    assert "messages" in schemas["state_schema"]["properties"]


async def test_get_schemas_of_a_user_assistant_and_a_factory(client: LangGraphClient) -> None:
    assistant = await client.assistants.create("configured", context={"prefix": "Hi"})
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    assert schemas["graph_id"] == "configured"
    assert set(schemas["state_schema"]["properties"]) == {"greeting", "seen"}


async def test_get_schemas_of_unknown_assistant_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get_schemas(str(uuid.uuid4()))


async def test_get_subgraphs_lists_the_nested_namespace(client: LangGraphClient) -> None:
    subgraphs = await client.assistants.get_subgraphs(system_id("nested"))
    assert set(subgraphs) == {"inner"}
    inner = subgraphs["inner"]
    assert set(inner["input_schema"]["properties"]) == {"topic", "trail"}
    assert set(inner["state_schema"]["properties"]) == {"topic", "trail"}


async def test_get_subgraphs_recurse_and_namespace(client: LangGraphClient) -> None:
    recursed = await client.assistants.get_subgraphs(system_id("nested"), recurse=True)
    assert "inner" in recursed
    by_namespace = await client.assistants.get_subgraphs(system_id("nested"), namespace="inner")
    assert set(by_namespace) == {"inner"}
    assert await client.assistants.get_subgraphs(system_id("nested"), namespace="nope") == {}


async def test_get_subgraphs_of_a_flat_graph_is_empty(client: LangGraphClient) -> None:
    assert await client.assistants.get_subgraphs(system_id("echo")) == {}
    assert await client.assistants.get_subgraphs(system_id("echo"), recurse=True) == {}


async def test_get_subgraphs_of_unknown_assistant_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get_subgraphs(str(uuid.uuid4()))


async def test_errors_are_json_detail_bodies(http: httpx.AsyncClient) -> None:
    unknown = str(uuid.uuid4())
    for method, path, body, status in [
        ("GET", f"/assistants/{unknown}", None, 404),
        ("POST", "/assistants", {"graph_id": "no-such-graph"}, 404),
        ("POST", "/assistants", {"graph_id": "echo", "assistant_id": system_id("echo")}, 409),
        ("GET", "/assistants/not-a-uuid", None, 422),
        (
            "POST",
            "/assistants",
            {"graph_id": "echo", "config": {"configurable": {"a": 1}}, "context": {"a": 2}},
            400,
        ),
    ]:
        response = await http.request(method, path, json=body)
        assert response.status_code == status, (method, path)
        assert response.headers["content-type"].startswith("application/json")
        payload = response.json()
        assert set(payload) == {"detail"} and isinstance(payload["detail"], str), payload


# Bad input -----------------------------------------------------------------------------
_BODY_ROUTES = [
    ("POST", "/assistants"),
    ("POST", "/assistants/search"),
    ("POST", "/assistants/count"),
    ("PATCH", "/assistants/{id}"),
    ("POST", "/assistants/{id}/versions"),
    ("POST", "/assistants/{id}/latest"),
]


@pytest.fixture
async def assistant_id(client: LangGraphClient) -> str:
    return str((await client.assistants.create("echo"))["assistant_id"])


@pytest.mark.parametrize(("method", "path"), _BODY_ROUTES)
async def test_malformed_json_is_422(
    http: httpx.AsyncClient, assistant_id: str, method: str, path: str
) -> None:
    response = await http.request(
        method,
        path.format(id=assistant_id),
        content=b'{"graph_id": "echo",',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid JSON in request body"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/assistants", {"graph_id": 5}),
        ("POST", "/assistants", {"graph_id": "echo", "metadata": ["x"]}),
        ("POST", "/assistants", {"graph_id": "echo", "if_exists": "sometimes"}),
        ("POST", "/assistants", {"graph_id": "echo", "config": {"tags": "x"}}),
        ("POST", "/assistants", {}),
        ("POST", "/assistants/search", {"limit": "ten"}),
        ("POST", "/assistants/search", {"limit": 0}),
        ("POST", "/assistants/search", {"offset": -1}),
        ("POST", "/assistants/search", {"metadata": "x"}),
        ("POST", "/assistants/search", {"sort_by": "color"}),
        ("POST", "/assistants/search", {"sort_order": "up"}),
        ("POST", "/assistants/search", {"select": ["nope"]}),
        ("POST", "/assistants/count", {"metadata": 1}),
        ("PATCH", "/assistants/{id}", {"metadata": "x"}),
        ("PATCH", "/assistants/{id}", {"name": ["x"]}),
        ("POST", "/assistants/{id}/versions", {"limit": "x"}),
        ("POST", "/assistants/{id}/latest", {"version": "latest"}),
        ("POST", "/assistants/{id}/latest", {}),
    ],
)
async def test_wrong_types_are_422(
    http: httpx.AsyncClient, assistant_id: str, method: str, path: str, body: Any
) -> None:
    response = await http.request(method, path.format(id=assistant_id), json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/assistants", {"graph_id": "echo", "from_the_future": True}),
        ("POST", "/assistants/search", {"limit": 1, "from_the_future": {"a": 1}}),
        ("POST", "/assistants/count", {"from_the_future": 1}),
        ("PATCH", "/assistants/{id}", {"name": "n", "from_the_future": [1]}),
        ("POST", "/assistants/{id}/versions", {"from_the_future": None}),
        ("POST", "/assistants/{id}/latest", {"version": 1, "from_the_future": "x"}),
    ],
)
async def test_unknown_fields_are_accepted(
    http: httpx.AsyncClient, assistant_id: str, method: str, path: str, body: Any
) -> None:
    response = await http.request(method, path.format(id=assistant_id), json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("method", "path"), _BODY_ROUTES)
@pytest.mark.parametrize(
    "content", [b"", b"[]", b"null", b'"text"', b"42", b"\xff\xfe", b'{"metadata": {"a": [}']
)
async def test_garbage_bodies_never_cause_a_500(
    http: httpx.AsyncClient, assistant_id: str, method: str, path: str, content: bytes
) -> None:
    response = await http.request(
        method,
        path.format(id=assistant_id),
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json()["detail"], str)
