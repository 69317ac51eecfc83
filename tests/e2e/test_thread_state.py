"""Thread state over the wire: get_state, update_state, history and time travel."""

import asyncio
import contextlib
import itertools
import uuid
from pathlib import Path
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


async def steps_thread(client: LangGraphClient) -> str:
    """A thread after one full run of `steps`: checkpoints at steps -1, 0, 1, 2 and 3."""
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "steps", input={"delay": 0})
    return str(thread["thread_id"])


async def interrupted_thread(client: LangGraphClient, request: str = "leave") -> str:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "approval", input={"request": request})
    return str(thread["thread_id"])


def by_step(history: list[Any], step: int) -> dict[str, Any]:
    [entry] = [h for h in history if h["metadata"]["step"] == step]
    return dict(entry)


# get_state -----------------------------------------------------------------------------
async def test_state_of_an_interrupted_thread(client: LangGraphClient) -> None:
    thread_id = await interrupted_thread(client)
    state = await client.threads.get_state(thread_id)

    assert state["values"] == {"request": "leave", "status": "waiting"}
    assert state["next"] == ["ask"]
    [task] = state["tasks"]
    assert task["name"] == "ask"
    assert task["error"] is None
    [task_interrupt] = task["interrupts"]
    assert task_interrupt["value"] == {"question": "Approve leave?"}
    [interrupt] = state["interrupts"]
    assert interrupt == task_interrupt

    checkpoint = state["checkpoint"]
    assert checkpoint["thread_id"] == thread_id
    assert checkpoint["checkpoint_ns"] == ""
    assert uuid.UUID(checkpoint["checkpoint_id"])
    parent = state["parent_checkpoint"]
    assert parent is not None
    assert parent["thread_id"] == thread_id
    assert parent["checkpoint_id"] != checkpoint["checkpoint_id"]
    assert state["metadata"]["source"] == "loop"
    assert state["metadata"]["step"] == 1
    assert state["created_at"]
    # The deprecated flat copies still travel.
    assert state["checkpoint_id"] == checkpoint["checkpoint_id"]
    assert state["parent_checkpoint_id"] == parent["checkpoint_id"]


async def test_state_of_a_finished_thread(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "v", "count": 3})
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"value": "v", "count": 4}
    assert state["next"] == []
    assert state["tasks"] == []
    assert state["interrupts"] == []
    assert state["metadata"]["step"] == 1


async def test_state_of_a_thread_without_runs_is_empty(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == []
    assert state["tasks"] == []
    assert state["checkpoint"] is None
    assert not state["values"]


async def test_state_of_unknown_or_malformed_thread(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.get_state(str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError):
        await client.threads.get_state("nope")


async def test_state_with_subgraphs_includes_the_subgraph_state(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "nested", input={"topic": "t"}, interrupt_before=["inner"])

    flat = await client.threads.get_state(thread_id)
    assert flat["next"] == ["inner"]
    [flat_task] = flat["tasks"]
    assert flat_task["name"] == "inner"
    assert flat_task["state"] is None
    assert flat_task["checkpoint"] is not None
    assert flat_task["checkpoint"]["checkpoint_ns"].startswith("inner:")

    nested = await client.threads.get_state(thread_id, subgraphs=True)
    assert nested["values"] == flat["values"] == {"topic": "t", "trail": ["before"]}
    [task] = nested["tasks"]
    assert task["name"] == "inner"
    sub_state = task["state"]
    assert isinstance(sub_state, dict)
    assert {"values", "next", "tasks", "checkpoint"} <= set(sub_state)


async def test_state_with_subgraphs_on_a_finished_nested_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "nested", input={"topic": "t"})
    state = await client.threads.get_state(thread["thread_id"], subgraphs=True)
    assert state["values"]["trail"][-1] == "after"
    assert state["next"] == []


async def test_subgraph_history_and_state_by_checkpoint_namespace(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "nested", input={"topic": "t"})
    history = await client.threads.get_history(thread_id)
    [namespace] = [
        task["checkpoint"]["checkpoint_ns"]
        for entry in history
        for task in entry["tasks"]
        if task["name"] == "inner" and task["checkpoint"]
    ]
    assert namespace.startswith("inner:")

    inner_history = await client.threads.get_history(
        thread_id, checkpoint={"checkpoint_ns": namespace}
    )
    assert inner_history
    assert all(h["checkpoint"]["checkpoint_ns"] == namespace for h in inner_history)
    assert inner_history[0]["values"] == {"topic": "t", "trail": ["before", "inner"]}

    inner_state = await client.threads.get_state(thread_id, checkpoint={"checkpoint_ns": namespace})
    assert inner_state["checkpoint"]["checkpoint_ns"] == namespace
    assert inner_state["values"] == inner_history[0]["values"]


async def test_state_select_is_accepted(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "v", "count": 0})
    state = await client.threads.get_state(thread["thread_id"], select=["values", "next"])
    assert state["values"] == {"value": "v", "count": 1}


# get_state at a checkpoint -------------------------------------------------------------
async def test_state_at_a_checkpoint_id(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    history = await client.threads.get_history(thread_id)
    after_one = by_step(history, 1)
    checkpoint_id = after_one["checkpoint"]["checkpoint_id"]

    state = await client.threads.get_state(thread_id, checkpoint_id=checkpoint_id)

    assert state["values"]["done"] == ["one"]
    assert state["next"] == ["two"]
    assert state["checkpoint"]["checkpoint_id"] == checkpoint_id
    assert state["parent_checkpoint"] == after_one["parent_checkpoint"]
    # The latest state is not moved by looking at an old one.
    latest = await client.threads.get_state(thread_id)
    assert latest["values"]["done"] == ["one", "two", "three"]


async def test_state_at_a_checkpoint_object(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    history = await client.threads.get_history(thread_id)
    after_two = by_step(history, 2)

    state = await client.threads.get_state(
        thread_id,
        checkpoint={"checkpoint_id": after_two["checkpoint"]["checkpoint_id"], "checkpoint_ns": ""},
    )
    assert state["values"]["done"] == ["one", "two"]
    assert state["next"] == ["three"]
    assert state["checkpoint"]["checkpoint_id"] == after_two["checkpoint"]["checkpoint_id"]


async def test_state_at_a_checkpoint_through_both_routes_agrees(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await steps_thread(client)
    checkpoint_id = by_step(await client.threads.get_history(thread_id), 0)["checkpoint"][
        "checkpoint_id"
    ]
    by_path = await http.get(f"/threads/{thread_id}/state/{checkpoint_id}")
    by_body = await http.post(
        f"/threads/{thread_id}/state/checkpoint",
        json={"checkpoint": {"checkpoint_id": checkpoint_id}, "subgraphs": False},
    )
    assert by_path.status_code == by_body.status_code == 200
    assert by_path.json() == by_body.json()
    assert by_path.json()["next"] == ["one"]


async def test_state_at_a_malformed_checkpoint_id_is_422(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await steps_thread(client)
    with pytest.raises(UnprocessableEntityError):
        await client.threads.get_state(thread_id, checkpoint_id="not-a-checkpoint")
    response = await http.post(
        f"/threads/{thread_id}/state/checkpoint", json={"checkpoint": {"checkpoint_id": "zz"}}
    )
    assert response.status_code == 422


async def test_state_at_an_unknown_checkpoint_is_404(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id, checkpoint_id=unknown)
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id, checkpoint={"checkpoint_id": unknown})


async def test_state_at_a_checkpoint_of_a_thread_without_runs_is_404(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread["thread_id"], checkpoint_id=str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError):
        await client.threads.get_state(thread["thread_id"], checkpoint_id="not-a-checkpoint")


async def test_state_at_another_threads_checkpoint_is_404(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    other_id = await steps_thread(client)
    foreign = (await client.threads.get_state(other_id))["checkpoint"]["checkpoint_id"]
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id, checkpoint_id=foreign)


# update_state --------------------------------------------------------------------------
async def test_update_state_writes_values(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "a", "count": 0})
    before = await client.threads.get_state(thread_id)

    result = await client.threads.update_state(thread_id, {"value": "patched"})

    checkpoint = result["checkpoint"]
    assert checkpoint["thread_id"] == thread_id
    assert checkpoint["checkpoint_ns"] == ""
    assert uuid.UUID(checkpoint["checkpoint_id"])
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"value": "patched", "count": 1}
    assert state["checkpoint"]["checkpoint_id"] == checkpoint["checkpoint_id"]
    assert state["parent_checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]
    assert state["metadata"]["source"] == "update"
    # The thread row follows the state.
    thread_after = await client.threads.get(thread_id)
    assert thread_after["values"] == {"value": "patched", "count": 1}
    assert thread_after["status"] == "idle"


async def test_update_state_as_node_then_continue_with_null_input(
    client: LangGraphClient, side_effects: Path
) -> None:
    thread = await client.threads.create(graph_id="steps")
    thread_id = thread["thread_id"]

    await client.threads.update_state(
        thread_id, {"done": ["one"], "log_file": str(side_effects)}, as_node="one"
    )

    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["two"]
    assert state["values"]["done"] == ["one"]
    assert (await client.threads.get(thread_id))["status"] == "interrupted"

    output = await client.runs.wait(thread_id, "steps", input=None)

    assert output["done"] == ["one", "two", "three"]
    ran = [line.split()[1] for line in side_effects.read_text().splitlines()]
    assert ran == ["two", "three"]
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_update_state_answers_an_interrupt_then_the_run_continues(
    client: LangGraphClient,
) -> None:
    thread_id = await interrupted_thread(client)
    await client.threads.update_state(
        thread_id, {"answer": "by hand", "status": "answered"}, as_node="ask"
    )
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["finish"]
    output = await client.runs.wait(thread_id, "approval", input=None)
    assert output == {"request": "leave", "answer": "by hand", "status": "done"}


async def test_update_state_from_a_checkpoint_forks(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "a", "count": 0})
    first_end = (await client.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "b"})
    assert (await client.threads.get(thread_id))["values"] == {"value": "b", "count": 2}

    result = await client.threads.update_state(
        thread_id, {"value": "forked"}, checkpoint_id=first_end
    )

    fork_id = result["checkpoint"]["checkpoint_id"]
    fork = await client.threads.get_state(thread_id, checkpoint_id=fork_id)
    assert fork["parent_checkpoint"]["checkpoint_id"] == first_end
    assert fork["values"] == {"value": "forked", "count": 1}
    latest = await client.threads.get_state(thread_id)
    assert latest["checkpoint"]["checkpoint_id"] == fork_id
    assert (await client.threads.get(thread_id))["values"] == {"value": "forked", "count": 1}


async def test_update_state_from_a_checkpoint_object(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    after_one = by_step(await client.threads.get_history(thread_id), 1)
    result = await client.threads.update_state(
        thread_id,
        {"done": ["extra"]},
        checkpoint={"checkpoint_id": after_one["checkpoint"]["checkpoint_id"]},
    )
    fork = await client.threads.get_state(
        thread_id, checkpoint_id=result["checkpoint"]["checkpoint_id"]
    )
    assert fork["values"]["done"] == ["one", "extra"]
    assert fork["parent_checkpoint"]["checkpoint_id"] == after_one["checkpoint"]["checkpoint_id"]


async def test_update_state_from_an_unknown_checkpoint_is_404(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "a", "count": 0})
    with pytest.raises(NotFoundError):
        await client.threads.update_state(
            thread_id, {"value": "x"}, checkpoint_id=str(uuid.uuid4())
        )
    assert (await client.threads.get_state(thread_id))["values"] == {"value": "a", "count": 1}


async def test_update_state_with_malformed_checkpoint_is_422(client: LangGraphClient) -> None:
    thread = await client.threads.create(graph_id="echo")
    with pytest.raises(UnprocessableEntityError):
        await client.threads.update_state(thread["thread_id"], {"value": "x"}, checkpoint_id="c1")


async def test_update_state_on_a_busy_thread_is_409(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    run = await client.runs.create(thread_id, "steps", input={"delay": SLOW_STEP})
    with pytest.raises(ConflictError):
        await client.threads.update_state(thread_id, {"done": ["sneaky"]}, as_node="one")
    await client.runs.join(thread_id, run["run_id"])
    state = await client.threads.get_state(thread_id)
    assert "sneaky" not in state["values"]["done"]


async def test_update_state_on_a_thread_without_graph_is_400(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    with pytest.raises(BadRequestError):
        await client.threads.update_state(thread["thread_id"], {"value": "x"})


async def test_update_state_as_an_unknown_node_is_400(client: LangGraphClient) -> None:
    thread = await client.threads.create(graph_id="echo")
    with pytest.raises(BadRequestError):
        await client.threads.update_state(thread["thread_id"], {"value": "x"}, as_node="nope")


async def test_update_state_of_unknown_thread_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.update_state(str(uuid.uuid4()), {"value": "x"})


async def test_update_state_response_carries_deprecated_copies(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create(graph_id="echo")
    response = await http.post(
        f"/threads/{thread['thread_id']}/state", json={"values": {"value": "x"}, "as_node": "echo"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["checkpoint"]["thread_id"] == thread["thread_id"]
    assert body["checkpoint_id"] == body["checkpoint"]["checkpoint_id"]


async def test_update_state_is_announced_on_the_thread_stream(client: LangGraphClient) -> None:
    thread = await client.threads.create(graph_id="echo")
    thread_id = thread["thread_id"]
    events: asyncio.Queue[Any] = asyncio.Queue()

    async def listen() -> None:
        stream = await client.threads.join_stream(thread_id, stream_mode="state_update")
        async for part in stream:
            await events.put(part)

    listener = asyncio.create_task(listen())
    try:
        part = None
        for attempt in range(40):  # until the subscription is in place
            await client.threads.update_state(thread_id, {"value": f"v{attempt}"}, as_node="echo")
            try:
                part = await asyncio.wait_for(events.get(), timeout=0.25)
                break
            except TimeoutError:
                continue
        assert part is not None, "no state_update event arrived"
        assert part.event == "state_update"
        assert part.data["thread_id"] == thread_id
        assert part.data["state"]["values"]["value"].startswith("v")
        assert part.data["state"]["checkpoint"]["thread_id"] == thread_id
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


# History -------------------------------------------------------------------------------
async def test_history_is_newest_first(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    history = await client.threads.get_history(thread_id)
    steps = [h["metadata"]["step"] for h in history]
    assert steps == [3, 2, 1, 0, -1]
    assert [h["next"] for h in history] == [[], ["three"], ["two"], ["one"], ["__start__"]]
    assert history[0]["checkpoint"] == (await client.threads.get_state(thread_id))["checkpoint"]
    # Each entry's parent is the next (older) entry.
    for newer, older in itertools.pairwise(history):
        assert newer["parent_checkpoint"]["checkpoint_id"] == older["checkpoint"]["checkpoint_id"]
    assert history[-1]["parent_checkpoint"] is None


async def test_history_limit_and_before(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    everything = await client.threads.get_history(thread_id)
    newest_two = await client.threads.get_history(thread_id, limit=2)
    assert newest_two == everything[:2]

    before = everything[1]["checkpoint"]["checkpoint_id"]
    older = await client.threads.get_history(thread_id, before=before)
    assert older == everything[2:]
    older_one = await client.threads.get_history(thread_id, before=before, limit=1)
    assert older_one == everything[2:3]
    as_object = await client.threads.get_history(
        thread_id, before={"checkpoint_id": before, "checkpoint_ns": ""}
    )
    assert as_object == everything[2:]


async def test_history_metadata_filter(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    [input_entry] = await client.threads.get_history(thread_id, metadata={"source": "input"})
    assert input_entry["metadata"]["step"] == -1
    [second] = await client.threads.get_history(thread_id, metadata={"step": 2})
    assert second["values"]["done"] == ["one", "two"]
    loop = await client.threads.get_history(thread_id, metadata={"source": "loop"})
    assert [h["metadata"]["step"] for h in loop] == [3, 2, 1, 0]
    assert await client.threads.get_history(thread_id, metadata={"source": "update"}) == []


async def test_history_over_get(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await steps_thread(client)
    everything = await client.threads.get_history(thread_id)
    response = await http.get(f"/threads/{thread_id}/history", params={"limit": 2})
    assert response.status_code == 200
    assert response.json() == everything[:2]
    before = everything[2]["checkpoint"]["checkpoint_id"]
    response = await http.get(f"/threads/{thread_id}/history", params={"before": before})
    assert response.json() == everything[3:]


async def test_history_spans_runs_and_updates(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "a", "count": 0})
    await client.threads.update_state(thread_id, {"value": "edited"})
    await client.runs.wait(thread_id, "echo", input={"value": "b"})
    history = await client.threads.get_history(thread_id, limit=100)
    assert history[0]["values"] == {"value": "b", "count": 2}
    [update] = await client.threads.get_history(thread_id, metadata={"source": "update"})
    assert update["values"] == {"value": "edited", "count": 1}
    runs = {h["metadata"].get("run_id") for h in history} - {None}
    assert len(runs) == 2


async def test_history_of_a_thread_without_runs_is_empty(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    assert await client.threads.get_history(thread["thread_id"]) == []


async def test_history_of_unknown_thread_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.get_history(str(uuid.uuid4()))


@pytest.mark.parametrize(
    "query", [{"limit": "x"}, {"limit": 0}, {"limit": -1}, {"before": "not-a-checkpoint"}]
)
async def test_history_over_get_rejects_bad_query_with_422(
    client: LangGraphClient, http: httpx.AsyncClient, query: dict[str, Any]
) -> None:
    thread_id = await steps_thread(client)
    response = await http.get(f"/threads/{thread_id}/history", params=query)
    assert response.status_code == 422


# Time travel ---------------------------------------------------------------------------
async def test_run_from_an_earlier_checkpoint_branches(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "a", "count": 0})
    first_end = (await client.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"]
    await client.runs.wait(thread_id, "echo", input={"value": "b", "count": 10})
    second_end = (await client.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"]

    output = await client.runs.wait(
        thread_id, "echo", input={"value": "c"}, checkpoint_id=first_end
    )

    # Built on the first run's state (count 1), not the latest (count 11).
    assert output == {"value": "c", "count": 2}
    history = await client.threads.get_history(thread_id, limit=100)
    assert history[0]["values"] == {"value": "c", "count": 2}
    lineage = {h["checkpoint"]["checkpoint_id"]: h for h in history}
    # Walk the new branch back: it passes the fork point and never the second run's end.
    current: Any = history[0]
    ancestors = []
    while current is not None and current["parent_checkpoint"] is not None:
        ancestors.append(current["parent_checkpoint"]["checkpoint_id"])
        current = lineage.get(current["parent_checkpoint"]["checkpoint_id"])
    assert first_end in ancestors
    assert second_end not in ancestors
    # The abandoned branch is still there to look at.
    old = await client.threads.get_state(thread_id, checkpoint_id=second_end)
    assert old["values"] == {"value": "b", "count": 11}


async def test_fork_at_an_earlier_interrupt_and_answer_it_differently(
    client: LangGraphClient,
) -> None:
    thread_id = await interrupted_thread(client)
    paused = (await client.threads.get_state(thread_id))["checkpoint"]["checkpoint_id"]
    first = await client.runs.wait(thread_id, "approval", command=Command(resume="yes"), input=None)
    assert first["answer"] == "yes"

    # A replay of the paused checkpoint would reuse the recorded answer; a fork asks again.
    fork = await client.threads.update_state(
        thread_id, {"request": "leave again"}, checkpoint_id=paused
    )
    forked = await client.threads.get_state(thread_id)
    assert forked["checkpoint"]["checkpoint_id"] == fork["checkpoint"]["checkpoint_id"]
    assert forked["next"] == ["ask"]
    assert (await client.threads.get(thread_id))["status"] == "interrupted"

    second = await client.runs.wait(thread_id, "approval", command=Command(resume="no"), input=None)

    assert second == {"request": "leave again", "answer": "no", "status": "done"}
    answers = [
        h["values"].get("answer")
        for h in await client.threads.get_history(thread_id, limit=100)
        if h["next"] == []
    ]
    assert sorted(answers) == ["no", "yes"]


async def test_null_input_run_from_a_checkpoint_replays_the_rest(
    client: LangGraphClient, side_effects: Path
) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "steps", input={"delay": 0, "log_file": str(side_effects)})
    after_one = by_step(await client.threads.get_history(thread_id), 1)
    side_effects.write_text("")

    output = await client.runs.wait(
        thread_id, "steps", input=None, checkpoint_id=after_one["checkpoint"]["checkpoint_id"]
    )

    assert output["done"] == ["one", "two", "three"]
    ran = [line.split()[1] for line in side_effects.read_text().splitlines()]
    assert ran == ["two", "three"]


async def test_errors_are_json_detail_bodies(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    no_graph = (await client.threads.create())["thread_id"]
    unknown = str(uuid.uuid4())
    for method, path, body, status in [
        ("GET", f"/threads/{unknown}/state", None, 404),
        ("GET", f"/threads/{no_graph}/state/{unknown}", None, 404),
        ("POST", f"/threads/{no_graph}/state", {"values": {"a": 1}}, 400),
        ("POST", f"/threads/{unknown}/history", {"limit": 1}, 404),
        ("GET", f"/threads/{no_graph}/state/not-a-uuid", None, 422),
    ]:
        response = await http.request(method, path, json=body)
        assert response.status_code == status, (method, path)
        assert response.headers["content-type"].startswith("application/json")
        payload = response.json()
        assert set(payload) == {"detail"} and isinstance(payload["detail"], str), payload


# Bad input -----------------------------------------------------------------------------
_BODY_ROUTES = [
    ("POST", "/threads/{id}/state"),
    ("POST", "/threads/{id}/state/checkpoint"),
    ("POST", "/threads/{id}/history"),
]


@pytest.fixture
async def run_thread(client: LangGraphClient) -> str:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "a", "count": 0})
    return str(thread["thread_id"])


@pytest.mark.parametrize(("method", "path"), _BODY_ROUTES)
async def test_malformed_json_is_422(
    http: httpx.AsyncClient, run_thread: str, method: str, path: str
) -> None:
    response = await http.request(
        method,
        path.format(id=run_thread),
        content=b'{"values": {"value": "x"',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid JSON in request body"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/threads/{id}/state", {"values": {"value": "x"}, "as_node": 5}),
        ("POST", "/threads/{id}/state", {"values": {}, "checkpoint": "x"}),
        ("POST", "/threads/{id}/state", {"values": {}, "checkpoint_id": 7}),
        ("POST", "/threads/{id}/state/checkpoint", {"checkpoint": "x"}),
        ("POST", "/threads/{id}/state/checkpoint", {}),
        ("POST", "/threads/{id}/state/checkpoint", {"checkpoint": {}, "subgraphs": "often"}),
        ("POST", "/threads/{id}/history", {"limit": "ten"}),
        ("POST", "/threads/{id}/history", {"limit": 0}),
        ("POST", "/threads/{id}/history", {"metadata": [1]}),
        ("POST", "/threads/{id}/history", {"before": 5}),
    ],
)
async def test_wrong_types_are_422(
    http: httpx.AsyncClient, run_thread: str, method: str, path: str, body: Any
) -> None:
    response = await http.request(method, path.format(id=run_thread), json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/threads/{id}/state", {"values": {"value": "y"}, "from_the_future": 1}),
        (
            "POST",
            "/threads/{id}/state/checkpoint",
            {"checkpoint": {"checkpoint_ns": "", "from_the_future": 1}, "select": ["values"]},
        ),
        ("POST", "/threads/{id}/history", {"limit": 1, "select": ["values"], "x": {"a": 1}}),
    ],
)
async def test_unknown_fields_are_accepted(
    http: httpx.AsyncClient, run_thread: str, method: str, path: str, body: Any
) -> None:
    response = await http.request(method, path.format(id=run_thread), json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("method", "path"), _BODY_ROUTES)
@pytest.mark.parametrize("content", [b"[]", b'"text"', b"42", b"\xff\xfe", b"{]"])
async def test_garbage_bodies_never_cause_a_500(
    http: httpx.AsyncClient, run_thread: str, method: str, path: str, content: bytes
) -> None:
    response = await http.request(
        method,
        path.format(id=run_thread),
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    "path",
    [
        "/threads/{id}/state?subgraphs=maybe",
        "/threads/{id}/state/{checkpoint}?subgraphs=2x",
        "/threads/{id}/history?limit=1e3",
    ],
)
async def test_bad_query_values_are_422(
    client: LangGraphClient, http: httpx.AsyncClient, run_thread: str, path: str
) -> None:
    checkpoint = (await client.threads.get_state(run_thread))["checkpoint"]["checkpoint_id"]
    response = await http.get(path.format(id=run_thread, checkpoint=checkpoint))
    assert response.status_code == 422
