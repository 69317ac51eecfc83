"""Threads over the wire: CRUD, search, count, copy, prune and thread statuses.

Every test makes its own threads; searches are narrowed by a unique marker in metadata.
"""

import asyncio
import uuid
from datetime import datetime, timedelta
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
from langgraph_sdk.schema import Command

SLOW_STEP = 0.5  # seconds per step of the `steps` graph when a test needs a busy thread


def marker() -> str:
    return uuid.uuid4().hex[:12]


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


async def wait_for_status(client: LangGraphClient, thread_id: str, status: str) -> dict[str, Any]:
    """The thread once it reaches `status` (within 20 s)."""
    thread = await client.threads.get(thread_id)
    async with asyncio.timeout(20):
        while thread["status"] != status:
            await asyncio.sleep(0.05)
            thread = await client.threads.get(thread_id)
    return dict(thread)


# Create --------------------------------------------------------------------------------
async def test_create_returns_an_idle_empty_thread(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    assert uuid.UUID(thread["thread_id"])
    assert thread["status"] == "idle"
    assert thread["metadata"] == {}
    assert thread["values"] is None
    assert thread["interrupts"] == {}
    assert thread["created_at"] and thread["updated_at"]
    assert await client.threads.get(thread["thread_id"]) == thread


async def test_create_with_explicit_id_and_metadata(client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    thread = await client.threads.create(thread_id=thread_id, metadata={"user": "ann", "n": 1})
    assert thread["thread_id"] == thread_id
    assert thread["metadata"] == {"user": "ann", "n": 1}
    assert (await client.threads.get(thread_id))["metadata"] == {"user": "ann", "n": 1}


async def test_create_existing_id_raises_409(client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    await client.threads.create(thread_id=thread_id, metadata={"v": 1})
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id)
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id, if_exists="raise")
    assert (await client.threads.get(thread_id))["metadata"] == {"v": 1}


async def test_create_existing_id_with_do_nothing_returns_it(client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    first = await client.threads.create(thread_id=thread_id, metadata={"v": 1})
    again = await client.threads.create(
        thread_id=thread_id, metadata={"v": 2}, if_exists="do_nothing"
    )
    assert again == first


async def test_thread_ids_are_canonical_lowercase_uuids(client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    created = await client.threads.create(thread_id=thread_id.upper())
    assert created["thread_id"] == thread_id
    assert (await client.threads.get(thread_id.upper()))["thread_id"] == thread_id
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id)
    assert _ids(await client.threads.search(ids=[thread_id.upper()])) == [thread_id]


async def test_create_with_malformed_id_is_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.threads.create(thread_id="thread-1")


async def test_graph_id_is_folded_into_metadata(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create(graph_id="echo", metadata={"a": 1})
    assert thread["metadata"] == {"a": 1, "graph_id": "echo"}
    # The field sent at the top level of the body (older clients) lands there too.
    response = await http.post("/threads", json={"graph_id": "steps"})
    assert response.status_code == 200
    assert response.json()["metadata"] == {"graph_id": "steps"}


async def test_create_with_ttl_minutes(client: LangGraphClient) -> None:
    thread = await client.threads.create(ttl=30)
    fetched = await client.threads.get(thread["thread_id"], include=["ttl"])
    ttl = fetched["ttl"]
    assert ttl["strategy"] == "delete"
    assert ttl["ttl_minutes"] == 30
    expected = at(thread["created_at"]) + timedelta(minutes=30)
    assert abs(at(ttl["expires_at"]) - expected) < timedelta(seconds=5)


async def test_create_with_ttl_object(client: LangGraphClient) -> None:
    thread = await client.threads.create(ttl={"ttl": 5, "strategy": "keep_latest"})
    ttl = (await client.threads.get(thread["thread_id"], include=["ttl"]))["ttl"]
    assert ttl["strategy"] == "keep_latest"
    assert ttl["ttl_minutes"] == 5


async def test_ttl_is_shown_only_when_included(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    with_ttl = await client.threads.create(ttl=10)
    without = await client.threads.create()
    assert "ttl" not in await client.threads.get(with_ttl["thread_id"])
    response = await http.get(f"/threads/{with_ttl['thread_id']}", params={"include": "ttl"})
    assert response.json()["ttl"]["ttl_minutes"] == 10
    response = await http.get(f"/threads/{without['thread_id']}", params={"include": "ttl"})
    assert response.json()["ttl"] is None


@pytest.mark.parametrize("ttl", [0, -5, "soon", {"ttl": 5, "strategy": "forever"}])
async def test_create_with_invalid_ttl_is_422(http: httpx.AsyncClient, ttl: Any) -> None:
    response = await http.post("/threads", json={"ttl": ttl})
    assert response.status_code == 422


async def test_create_with_supersteps_applies_them_as_state_updates(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create(
        graph_id="steps",
        supersteps=[
            {"updates": [{"values": {"done": ["one"]}, "as_node": "one"}]},
            {"updates": [{"values": {"done": ["two"]}, "as_node": "two"}]},
        ],
    )
    thread_id = thread["thread_id"]
    assert thread["values"] == {"done": ["one", "two"]}
    assert thread["status"] == "interrupted"  # `three` is still to run
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["three"]
    history = await client.threads.get_history(thread_id)
    assert [h["metadata"]["source"] for h in history] == ["update", "update"]

    output = await client.runs.wait(thread_id, "steps", input=None)
    assert output["done"] == ["one", "two", "three"]


async def test_create_with_supersteps_needs_a_graph(client: LangGraphClient) -> None:
    with pytest.raises(BadRequestError):
        await client.threads.create(
            supersteps=[{"updates": [{"values": {"done": ["one"]}, "as_node": "one"}]}]
        )


async def test_create_with_failing_supersteps_leaves_no_thread(client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    with pytest.raises(BadRequestError):
        await client.threads.create(
            thread_id=thread_id,
            graph_id="steps",
            supersteps=[{"updates": [{"values": {"done": ["x"]}, "as_node": "no-such-node"}]}],
        )
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    # The id is still free.
    assert (await client.threads.create(thread_id=thread_id))["thread_id"] == thread_id


async def test_create_do_nothing_does_not_apply_supersteps_to_an_existing_thread(
    client: LangGraphClient,
) -> None:
    thread_id = str(uuid.uuid4())
    await client.threads.create(thread_id=thread_id, graph_id="steps")
    again = await client.threads.create(
        thread_id=thread_id,
        graph_id="steps",
        if_exists="do_nothing",
        supersteps=[{"updates": [{"values": {"done": ["one"]}, "as_node": "one"}]}],
    )
    assert again["values"] is None
    assert await client.threads.get_history(thread_id) == []


# Get -----------------------------------------------------------------------------------
async def test_get_unknown_thread_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))


async def test_get_malformed_id_is_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.threads.get("not-a-uuid")


# Update --------------------------------------------------------------------------------
async def test_update_merges_metadata(client: LangGraphClient) -> None:
    thread = await client.threads.create(metadata={"a": 1, "b": 1})
    updated = await client.threads.update(thread["thread_id"], metadata={"b": 2, "c": 3})
    assert updated["metadata"] == {"a": 1, "b": 2, "c": 3}
    assert at(updated["updated_at"]) >= at(thread["updated_at"])
    assert updated["created_at"] == thread["created_at"]
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == updated["metadata"]


async def test_update_with_prefer_return_minimal_answers_204(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create(metadata={"a": 1})
    response = await http.patch(
        f"/threads/{thread['thread_id']}",
        json={"metadata": {"b": 2}},
        headers={"Prefer": "return=minimal"},
    )
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == {"a": 1, "b": 2}


async def test_update_return_minimal_through_the_sdk(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    result = await client.threads.update(
        thread["thread_id"], metadata={"k": "v"}, return_minimal=True
    )
    assert result is None
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == {"k": "v"}


async def test_update_sets_a_ttl(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.threads.update(thread["thread_id"], metadata={}, ttl=15)
    ttl = (await client.threads.get(thread["thread_id"], include=["ttl"]))["ttl"]
    assert ttl["ttl_minutes"] == 15
    assert ttl["strategy"] == "delete"


async def test_update_unknown_thread_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.update(str(uuid.uuid4()), metadata={"a": 1})


# Delete --------------------------------------------------------------------------------
async def test_delete_answers_204_then_the_thread_is_gone(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    response = await http.delete(f"/threads/{thread['thread_id']}")
    assert response.status_code == 204
    assert response.content == b""
    with pytest.raises(NotFoundError):
        await client.threads.get(thread["thread_id"])
    with pytest.raises(NotFoundError):
        await client.threads.delete(thread["thread_id"])


async def test_delete_cascades_to_runs_and_state(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "x"})
    [run] = await client.runs.list(thread_id)

    await client.threads.delete(thread_id)

    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id)
    # The id is free again and the new thread starts from nothing.
    fresh = await client.threads.create(thread_id=thread_id)
    assert fresh["values"] is None
    assert await client.runs.list(thread_id) == []
    assert await client.threads.get_history(thread_id) == []


async def test_delete_a_busy_thread_stops_and_removes_its_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    run = await client.runs.create(thread_id, "steps", input={"delay": SLOW_STEP})
    await wait_for_status(client, thread_id, "busy")
    await asyncio.sleep(SLOW_STEP / 2)  # let it start
    await client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    # Once the run would have finished, nothing of it has come back under that id.
    await asyncio.sleep(SLOW_STEP * 4)
    await client.threads.create(thread_id=thread_id)
    assert await client.threads.get_history(thread_id) == []
    assert await client.runs.list(thread_id) == []
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_delete_malformed_id_is_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.threads.delete("nope")


# Search and count ----------------------------------------------------------------------
async def _tagged(client: LangGraphClient, tag: str, n: int = 3) -> list[dict[str, Any]]:
    return [
        dict(await client.threads.create(metadata={"suite": tag, "i": i, "even": i % 2 == 0}))
        for i in range(n)
    ]


def _ids(threads: list[Any]) -> list[str]:
    return [t["thread_id"] for t in threads]


async def test_search_by_metadata_containment(client: LangGraphClient) -> None:
    tag = marker()
    made = await _tagged(client, tag)
    assert set(_ids(await client.threads.search(metadata={"suite": tag}))) == set(_ids(made))
    even = await client.threads.search(metadata={"suite": tag, "even": True})
    assert set(_ids(even)) == {made[0]["thread_id"], made[2]["thread_id"]}
    assert await client.threads.search(metadata={"suite": tag, "i": 7}) == []


async def test_search_by_values_containment(client: LangGraphClient) -> None:
    tag = marker()
    [first, second] = await _tagged(client, tag, 2)
    await client.runs.wait(first["thread_id"], "echo", input={"value": tag, "count": 10})
    await client.runs.wait(second["thread_id"], "echo", input={"value": "other", "count": 10})
    found = await client.threads.search(values={"value": tag})
    assert _ids(found) == [first["thread_id"]]
    found = await client.threads.search(metadata={"suite": tag}, values={"count": 11})
    assert set(_ids(found)) == {first["thread_id"], second["thread_id"]}


async def test_search_by_ids(client: LangGraphClient) -> None:
    tag = marker()
    made = await _tagged(client, tag)
    wanted = [made[0]["thread_id"], made[2]["thread_id"]]
    found = await client.threads.search(ids=wanted)
    assert set(_ids(found)) == set(wanted)
    unknown = await client.threads.search(ids=[str(uuid.uuid4())])
    assert unknown == []


async def test_search_by_status(client: LangGraphClient) -> None:
    tag = marker()
    [idle, interrupted] = await _tagged(client, tag, 2)
    await client.runs.wait(interrupted["thread_id"], "approval", input={"request": "x"})
    found = await client.threads.search(metadata={"suite": tag}, status="interrupted")
    assert _ids(found) == [interrupted["thread_id"]]
    found = await client.threads.search(metadata={"suite": tag}, status="idle")
    assert _ids(found) == [idle["thread_id"]]
    assert await client.threads.search(metadata={"suite": tag}, status="error") == []


async def test_search_defaults_to_most_recently_updated_first(client: LangGraphClient) -> None:
    tag = marker()
    made = await _tagged(client, tag)
    found = await client.threads.search(metadata={"suite": tag})
    assert _ids(found) == _ids(list(reversed(made)))
    await client.threads.update(made[0]["thread_id"], metadata={"touched": True})
    found = await client.threads.search(metadata={"suite": tag})
    assert _ids(found)[0] == made[0]["thread_id"]


@pytest.mark.parametrize("sort_order", ["asc", "desc"])
@pytest.mark.parametrize("sort_by", ["created_at", "thread_id", "updated_at", "state_updated_at"])
async def test_search_sorts(client: LangGraphClient, sort_by: Any, sort_order: Any) -> None:
    tag = marker()
    made = await _tagged(client, tag)
    found = await client.threads.search(
        metadata={"suite": tag}, sort_by=sort_by, sort_order=sort_order
    )
    key = (lambda t: t["thread_id"]) if sort_by == "thread_id" else (lambda t: made.index(t))
    expected = sorted(made, key=key, reverse=sort_order == "desc")
    assert _ids(found) == _ids(expected)


async def test_search_sorts_by_status(client: LangGraphClient) -> None:
    tag = marker()
    [_, interrupted] = await _tagged(client, tag, 2)
    await client.runs.wait(interrupted["thread_id"], "approval", input={"request": "x"})
    found = await client.threads.search(metadata={"suite": tag}, sort_by="status", sort_order="asc")
    assert [t["status"] for t in found] == ["idle", "interrupted"]


async def test_search_limit_offset_and_pagination_headers(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    tag = marker()
    made = await _tagged(client, tag)
    newest_first = _ids(list(reversed(made)))

    first = await http.post("/threads/search", json={"metadata": {"suite": tag}, "limit": 2})
    assert first.status_code == 200
    assert _ids(first.json()) == newest_first[:2]
    assert first.headers["X-Pagination-Next"] == "2"
    assert first.headers["X-Pagination-Total"] == "3"

    last = await http.post(
        "/threads/search", json={"metadata": {"suite": tag}, "limit": 2, "offset": 2}
    )
    assert _ids(last.json()) == newest_first[2:]
    assert "X-Pagination-Next" not in last.headers
    assert last.headers["X-Pagination-Total"] == "3"

    assert await client.threads.search(metadata={"suite": tag}, offset=3) == []


async def test_search_select_returns_only_the_chosen_fields(client: LangGraphClient) -> None:
    tag = marker()
    await _tagged(client, tag)
    found = await client.threads.search(metadata={"suite": tag}, select=["thread_id", "status"])
    assert len(found) == 3
    assert all(set(t) == {"thread_id", "status"} for t in found)
    assert all(t["status"] == "idle" for t in found)


async def test_search_extract_resolves_paths(client: LangGraphClient) -> None:
    tag = marker()
    thread = await client.threads.create(metadata={"suite": tag, "owner": {"name": "ann"}})
    await client.runs.wait(thread["thread_id"], "nested", input={"topic": tag})
    [found] = await client.threads.search(
        metadata={"suite": tag},
        select=["thread_id"],
        extract={
            "topic": "values.topic",
            "first": "values.trail[0]",
            "last": "values.trail[-1]",
            "owner": "metadata.owner.name",
            "missing": "values.nothing.here",
        },
    )
    assert found["thread_id"] == thread["thread_id"]
    assert found["extracted"] == {
        "topic": tag,
        "first": "before",
        "last": "after",
        "owner": "ann",
        "missing": None,
    }


async def test_count(client: LangGraphClient) -> None:
    tag = marker()
    made = await _tagged(client, tag)
    await client.runs.wait(made[1]["thread_id"], "echo", input={"value": tag})
    await client.runs.wait(made[2]["thread_id"], "approval", input={"request": tag})
    assert await client.threads.count(metadata={"suite": tag}) == 3
    assert await client.threads.count(metadata={"suite": tag, "even": True}) == 2
    assert await client.threads.count(values={"value": tag}) == 1
    assert await client.threads.count(metadata={"suite": tag}, status="interrupted") == 1
    assert await client.threads.count(metadata={"suite": tag}, status="idle") == 2
    assert await client.threads.count(metadata={"suite": marker()}) == 0


# Copy ----------------------------------------------------------------------------------
async def test_copy_makes_a_new_thread_with_the_same_state_and_history(
    client: LangGraphClient,
) -> None:
    source = await client.threads.create(metadata={"origin": "source"})
    source_id = source["thread_id"]
    await client.runs.wait(source_id, "echo", input={"value": "a", "count": 0})
    await client.runs.wait(source_id, "echo", input={"value": "b"})

    copy = await client.threads.copy(source_id)
    assert copy is not None
    copy_id = copy["thread_id"]
    assert copy_id != source_id
    assert uuid.UUID(copy_id)
    assert copy["metadata"]["origin"] == "source"
    assert copy["values"] == {"value": "b", "count": 2}
    assert copy["status"] == "idle"

    source_state = await client.threads.get_state(source_id)
    copy_state = await client.threads.get_state(copy_id)
    assert copy_state["values"] == source_state["values"]
    assert copy_state["checkpoint"]["thread_id"] == copy_id

    source_history = await client.threads.get_history(source_id, limit=50)
    copy_history = await client.threads.get_history(copy_id, limit=50)
    assert [h["values"] for h in copy_history] == [h["values"] for h in source_history]
    assert [h["next"] for h in copy_history] == [h["next"] for h in source_history]


async def test_copy_is_independent_of_its_source(client: LangGraphClient) -> None:
    source = await client.threads.create()
    source_id = source["thread_id"]
    await client.runs.wait(source_id, "echo", input={"value": "a", "count": 0})
    copy = await client.threads.copy(source_id)
    assert copy is not None
    await client.runs.wait(copy["thread_id"], "echo", input={"value": "copy"})
    assert (await client.threads.get(copy["thread_id"]))["values"] == {"value": "copy", "count": 2}
    assert (await client.threads.get(source_id))["values"] == {"value": "a", "count": 1}
    await client.threads.delete(source_id)
    assert (await client.threads.get_state(copy["thread_id"]))["values"]["value"] == "copy"


async def test_copy_of_an_interrupted_thread_can_be_resumed_on_its_own(
    client: LangGraphClient,
) -> None:
    source = await client.threads.create()
    source_id = source["thread_id"]
    await client.runs.wait(source_id, "approval", input={"request": "leave"})
    copy = await client.threads.copy(source_id)
    assert copy is not None
    copy_state = await client.threads.get_state(copy["thread_id"])
    assert copy_state["next"] == ["ask"]

    output = await client.runs.wait(
        copy["thread_id"], "approval", command=Command(resume="yes"), input=None
    )
    assert output["answer"] == "yes"
    assert output["status"] == "done"
    assert (await client.threads.get(source_id))["status"] == "interrupted"
    assert (await client.threads.get_state(source_id))["next"] == ["ask"]


async def test_copy_of_unknown_thread_is_409(client: LangGraphClient) -> None:
    with pytest.raises(ConflictError):
        await client.threads.copy(str(uuid.uuid4()))


async def test_copy_with_malformed_id_is_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.threads.copy("not-a-uuid")


# Prune ---------------------------------------------------------------------------------
async def test_prune_deletes_threads(client: LangGraphClient) -> None:
    first = await client.threads.create()
    second = await client.threads.create()
    kept = await client.threads.create()
    await client.runs.wait(first["thread_id"], "echo", input={"value": "x"})
    result = await client.threads.prune(
        [first["thread_id"], second["thread_id"], str(uuid.uuid4())]
    )
    assert result == {"pruned_count": 2}
    for gone in (first, second):
        with pytest.raises(NotFoundError):
            await client.threads.get(gone["thread_id"])
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]


async def test_prune_keep_latest_keeps_only_the_latest_checkpoint(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "a", "count": 0})
    await client.runs.wait(thread_id, "echo", input={"value": "b"})
    before = await client.threads.get_state(thread_id)
    assert len(await client.threads.get_history(thread_id, limit=50)) > 1

    result = await client.threads.prune([thread_id], strategy="keep_latest")

    assert result == {"pruned_count": 1}
    history = await client.threads.get_history(thread_id, limit=50)
    assert len(history) == 1
    assert history[0]["checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]
    after = await client.threads.get_state(thread_id)
    assert after["values"] == before["values"] == {"value": "b", "count": 2}
    assert (await client.threads.get(thread_id))["values"] == {"value": "b", "count": 2}
    # The thread still works from the kept state.
    output = await client.runs.wait(thread_id, "echo", input={"value": "c"})
    assert output == {"value": "c", "count": 3}


@pytest.mark.parametrize(
    "body",
    [{"thread_ids": []}, {"thread_ids": "x"}, {"thread_ids": ["x"]}, {}, {"strategy": "x"}],
)
async def test_prune_rejects_bad_input_with_422(http: httpx.AsyncClient, body: Any) -> None:
    response = await http.post("/threads/prune", json=body)
    assert response.status_code == 422


# Statuses and values -------------------------------------------------------------------
async def test_thread_is_idle_after_a_successful_run_and_values_follow_runs(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "a", "count": 0})
    first = await client.threads.get(thread_id)
    assert first["status"] == "idle"
    assert first["values"] == {"value": "a", "count": 1}
    assert first["interrupts"] == {}
    assert first["metadata"]["graph_id"] == "echo"

    await client.runs.wait(thread_id, "echo", input={"value": "b"})
    second = await client.threads.get(thread_id)
    assert second["values"] == {"value": "b", "count": 2}
    assert at(second["state_updated_at"]) >= at(first["state_updated_at"])
    assert at(second["updated_at"]) >= at(first["updated_at"])


async def test_thread_is_interrupted_with_interrupts_after_an_interrupt(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "approval", input={"request": "leave"})
    interrupted = await client.threads.get(thread_id)
    assert interrupted["status"] == "interrupted"
    assert interrupted["values"] == {"request": "leave", "status": "waiting"}
    [(task_id, [interrupt])] = interrupted["interrupts"].items()
    assert interrupt["value"] == {"question": "Approve leave?"}
    assert interrupt["id"]
    state = await client.threads.get_state(thread_id)
    assert [t["id"] for t in state["tasks"]] == [task_id]
    assert [i["id"] for i in state["interrupts"]] == [interrupt["id"]]

    await client.runs.wait(thread_id, "approval", command=Command(resume="ok"), input=None)
    resumed = await client.threads.get(thread_id)
    assert resumed["status"] == "idle"
    assert resumed["interrupts"] == {}
    assert resumed["values"] == {"request": "leave", "status": "done", "answer": "ok"}


async def test_thread_is_error_after_a_failed_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    output = await client.runs.wait(thread_id, "failing", input={}, raise_error=False)
    assert output["__error__"]["error"] == "ValueError"
    failed = await client.threads.get(thread_id)
    assert failed["status"] == "error"
    # What the first node wrote before the failure is the thread's latest state.
    assert failed["values"] == {"progress": "first done"}
    assert await client.threads.search(ids=[thread_id], status="error") != []


async def test_thread_is_busy_while_a_run_is_pending_or_running(
    client: LangGraphClient,
) -> None:
    tag = marker()
    thread = await client.threads.create(metadata={"suite": tag})
    thread_id = thread["thread_id"]
    first = await client.runs.create(thread_id, "steps", input={"delay": SLOW_STEP})
    queued = await client.runs.create(
        thread_id, "steps", input={"delay": 0}, multitask_strategy="enqueue"
    )
    assert (await client.threads.get(thread_id))["status"] == "busy"
    assert _ids(await client.threads.search(metadata={"suite": tag}, status="busy")) == [thread_id]
    assert await client.threads.count(metadata={"suite": tag}, status="busy") == 1

    await client.runs.join(thread_id, first["run_id"])
    await client.runs.join(thread_id, queued["run_id"])
    done = await wait_for_status(client, thread_id, "idle")
    assert done["values"]["done"] == ["one", "two", "three", "one", "two", "three"]


async def test_errors_are_json_detail_bodies(http: httpx.AsyncClient) -> None:
    unknown = str(uuid.uuid4())
    for method, path, status in [
        ("GET", f"/threads/{unknown}", 404),
        ("PATCH", f"/threads/{unknown}", 404),
        ("DELETE", f"/threads/{unknown}", 404),
        ("POST", f"/threads/{unknown}/copy", 409),
        ("GET", "/threads/not-a-uuid", 422),
    ]:
        response = await http.request(
            method, path, json={"metadata": {}} if method == "PATCH" else None
        )
        assert response.status_code == status, (method, path)
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"detail"} and isinstance(body["detail"], str), body


# Bad input -----------------------------------------------------------------------------
_BODY_ROUTES = [
    ("POST", "/threads"),
    ("POST", "/threads/search"),
    ("POST", "/threads/count"),
    ("POST", "/threads/prune"),
    ("PATCH", "/threads/{id}"),
]


@pytest.fixture
async def thread_id(client: LangGraphClient) -> str:
    return str((await client.threads.create())["thread_id"])


@pytest.mark.parametrize(("method", "path"), _BODY_ROUTES)
async def test_malformed_json_is_422(
    http: httpx.AsyncClient, thread_id: str, method: str, path: str
) -> None:
    response = await http.request(
        method,
        path.format(id=thread_id),
        content=b'{"metadata": {',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid JSON in request body"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/threads", {"thread_id": 5}),
        ("POST", "/threads", {"metadata": "x"}),
        ("POST", "/threads", {"if_exists": "maybe"}),
        ("POST", "/threads/search", {"limit": "ten"}),
        ("POST", "/threads/search", {"limit": 0}),
        ("POST", "/threads/search", {"offset": -1}),
        ("POST", "/threads/search", {"status": "sleeping"}),
        ("POST", "/threads/search", {"ids": "x"}),
        ("POST", "/threads/search", {"ids": ["not-a-uuid"]}),
        ("POST", "/threads/search", {"values": [1]}),
        ("POST", "/threads/search", {"sort_by": "color"}),
        ("POST", "/threads/search", {"sort_order": "sideways"}),
        ("POST", "/threads/search", {"select": ["nope"]}),
        ("POST", "/threads/search", {"extract": {"a": 1}}),
        ("POST", "/threads/count", {"status": 1}),
        ("POST", "/threads/count", {"metadata": [1]}),
        ("PATCH", "/threads/{id}", {"metadata": "x"}),
        ("PATCH", "/threads/{id}", {"ttl": "x"}),
    ],
)
async def test_wrong_types_are_422(
    http: httpx.AsyncClient, thread_id: str, method: str, path: str, body: Any
) -> None:
    response = await http.request(method, path.format(id=thread_id), json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/threads", {"from_the_future": True}),
        ("POST", "/threads/search", {"limit": 1, "from_the_future": {"a": 1}}),
        ("POST", "/threads/count", {"from_the_future": 1}),
        ("POST", "/threads/prune", {"thread_ids": [str(uuid.uuid4())], "from_the_future": 1}),
        ("PATCH", "/threads/{id}", {"metadata": {}, "from_the_future": [1]}),
    ],
)
async def test_unknown_fields_are_accepted(
    http: httpx.AsyncClient, thread_id: str, method: str, path: str, body: Any
) -> None:
    response = await http.request(method, path.format(id=thread_id), json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("method", "path"), _BODY_ROUTES)
@pytest.mark.parametrize("content", [b"[]", b"null", b'"text"', b"42", b"\xff\xfe", b"{]"])
async def test_garbage_bodies_never_cause_a_500(
    http: httpx.AsyncClient, thread_id: str, method: str, path: str, content: bytes
) -> None:
    response = await http.request(
        method,
        path.format(id=thread_id),
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json()["detail"], str)
