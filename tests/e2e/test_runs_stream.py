"""Run streams: every stream mode, subgraph namespaces, SSE framing, resumability."""

import asyncio
import itertools
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

from tests.support.sse import read_sse


async def _stream(
    client: LangGraphClient, graph: str, payload: Any, **options: Any
) -> list[tuple[str, Any]]:
    thread = await client.threads.create()
    return [
        (part.event, part.data)
        async for part in client.runs.stream(thread["thread_id"], graph, input=payload, **options)
    ]


async def test_metadata_event_comes_first_with_run_id_and_attempt(client: LangGraphClient) -> None:
    events = await _stream(client, "echo", {"value": "a"})
    name, data = events[0]
    assert name == "metadata"
    assert data["attempt"] == 1 and len(data["run_id"]) == 36


async def test_values_mode_is_the_default(client: LangGraphClient) -> None:
    events = await _stream(client, "echo", {"value": "a", "count": 0})
    assert [name for name, _ in events] == ["metadata", "values", "values"]
    assert events[-1][1] == {"value": "a", "count": 1}


async def test_updates_mode_names_the_node(client: LangGraphClient) -> None:
    events = await _stream(client, "steps", {}, stream_mode="updates")
    updates = [data for name, data in events if name == "updates"]
    assert updates == [
        {"one": {"done": ["one"]}},
        {"two": {"done": ["two"]}},
        {"three": {"done": ["three"]}},
    ]


async def test_custom_mode_carries_stream_writer_payloads(client: LangGraphClient) -> None:
    events = await _stream(client, "nested", {"topic": "t"}, stream_mode="custom")
    assert ("custom", {"where": "outer"}) in events
    assert all(name in ("metadata", "custom") for name, _ in events)


async def test_subgraph_events_are_named_mode_pipe_namespace(client: LangGraphClient) -> None:
    events = await _stream(
        client, "nested", {"topic": "t"}, stream_mode=["updates", "custom"], stream_subgraphs=True
    )
    names = [name for name, _ in events]
    inner = [n for n in names if n.startswith("updates|")]
    assert inner and inner[0].split("|")[1].startswith("inner:")
    assert any(n.startswith("custom|inner:") for n in names)
    assert "updates" in names  # root events keep the bare name


async def test_messages_tuple_streams_token_chunks_with_metadata(client: LangGraphClient) -> None:
    events = await _stream(
        client,
        "chat",
        {"messages": [{"role": "user", "content": "tell me about garrison streaming"}]},
        stream_mode=["messages-tuple", "values"],
    )
    chunks = [data for name, data in events if name == "messages"]
    assert len(chunks) > 3
    message, metadata = chunks[0]
    assert message["type"] == "AIMessageChunk"
    assert metadata["langgraph_node"] == "respond"
    streamed = "".join(chunk[0]["content"] for chunk in chunks)
    final = [data for name, data in events if name == "values"][-1]
    assert streamed == final["messages"][-1]["content"]


async def test_legacy_messages_mode_accumulates_partials(client: LangGraphClient) -> None:
    events = await _stream(
        client,
        "chat",
        {"messages": [{"role": "user", "content": "hello there friend"}]},
        stream_mode="messages",
    )
    names = [name for name, _ in events]
    assert "messages/metadata" in names
    partials = [data[0]["content"] for name, data in events if name == "messages/partial"]
    assert len(partials) > 2
    # each partial holds the whole message so far
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(partials))


async def test_tasks_checkpoints_and_debug_modes(client: LangGraphClient) -> None:
    events = await _stream(client, "steps", {}, stream_mode=["tasks", "checkpoints", "debug"])
    tasks = [d for n, d in events if n == "tasks"]
    assert {t["name"] for t in tasks} == {"one", "two", "three"}
    assert any("result" in t for t in tasks) and any("input" in t for t in tasks)
    checkpoints = [d for n, d in events if n == "checkpoints"]
    assert checkpoints and {"config", "values", "next", "metadata"} <= set(checkpoints[-1])
    debug = [d for n, d in events if n == "debug"]
    checkpoint_debug = [d for d in debug if d["type"] == "checkpoint"]
    assert checkpoint_debug and "checkpoint" in checkpoint_debug[-1]["payload"]


async def test_events_mode_forwards_langchain_events(client: LangGraphClient) -> None:
    events = await _stream(client, "echo", {"value": "e"}, stream_mode=["events", "values"])
    kinds = {data["event"] for name, data in events if name == "events"}
    assert {"on_chain_start", "on_chain_end"} <= kinds
    assert [d for n, d in events if n == "values"][-1] == {"value": "e", "count": 1}


async def test_interrupt_surfaces_in_values_and_updates(client: LangGraphClient) -> None:
    events = await _stream(client, "approval", {"request": "x"}, stream_mode=["values", "updates"])
    values = [d for n, d in events if n == "values"]
    assert values[-1]["__interrupt__"][0]["value"] == {"question": "Approve x?"}
    updates = [d for n, d in events if n == "updates"]
    assert "__interrupt__" in updates[-1]


async def test_interrupt_reaches_clients_that_asked_for_neither_values_nor_updates(
    client: LangGraphClient,
) -> None:
    events = await _stream(client, "approval", {"request": "y"}, stream_mode="custom")
    assert any(n == "values" and "__interrupt__" in d for n, d in events)


async def test_error_event_on_failure_then_stream_ends(client: LangGraphClient) -> None:
    events = await _stream(client, "failing", {})
    assert events[-1] == (
        "error",
        {"error": "ValueError", "message": "boom: the second node failed"},
    )


async def test_private_exception_text_is_not_sent(client: LangGraphClient) -> None:
    events = await _stream(client, "failing", {"kind": "private"})
    name, data = events[-1]
    assert name == "error" and data["error"] == "SecretLeak"
    assert "hunter2" not in str(events)


async def test_sse_wire_format_and_headers(http: httpx.AsyncClient) -> None:
    thread = (await http.post("/threads", json={})).json()
    async with http.stream(
        "POST",
        f"/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "echo", "input": {"value": "w"}},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        run_path = response.headers["content-location"]
        assert run_path.startswith(f"/threads/{thread['thread_id']}/runs/")
        assert response.headers["location"] == f"{run_path}/stream"
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert raw.startswith(b"event: metadata\r\ndata: {")
    assert b"\r\nid: " in raw and raw.endswith(b"\r\n\r\n")


async def test_rejects_unknown_stream_mode(http: httpx.AsyncClient) -> None:
    thread = (await http.post("/threads", json={})).json()
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "echo", "stream_mode": "tools"},
    )
    assert response.status_code == 422
    assert "stream_mode" in response.json()["detail"]


async def test_heartbeat_comments_while_waiting(http: httpx.AsyncClient) -> None:
    thread = (await http.post("/threads", json={})).json()
    async with http.stream(
        "POST",
        f"/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "steps", "input": {"delay": 1.2}, "stream_mode": "updates"},
    ) as response:
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert b": heartbeat\r\n\r\n" in raw  # the test server beats every second


async def test_join_stream_replays_after_last_event_id(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "steps", input={"delay": 0.2}, stream_mode="updates"
    )
    await client.runs.join(thread["thread_id"], run["run_id"])
    path = f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream"
    full = await read_sse(http, path, headers={"Last-Event-ID": "-"})
    assert [e.event for e in full] == ["metadata", "updates", "updates", "updates"]
    ids = [e.id for e in full]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    resumed = await read_sse(http, path, headers={"Last-Event-ID": full[1].id})
    assert [e.id for e in resumed] == ids[2:]


async def test_sdk_reconnects_with_last_event_id_after_a_drop(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "steps", input={"delay": 0.4}, stream_mode="updates"
    )
    path = f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream"
    first = await read_sse(http, path, headers={"Last-Event-ID": "-"}, limit=2)
    # the client "drops" after two events, then joins again from the last id it saw
    rest = await read_sse(http, path, headers={"Last-Event-ID": first[-1].id})
    names = [e.event for e in first + rest]
    assert names == ["metadata", "updates", "updates", "updates"]
    assert len({e.id for e in first + rest}) == 4


async def test_join_stream_with_malformed_last_event_id_is_422(http: httpx.AsyncClient) -> None:
    thread = (await http.post("/threads", json={})).json()
    run = (
        await http.post(f"/threads/{thread['thread_id']}/runs", json={"assistant_id": "echo"})
    ).json()
    response = await http.get(
        f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream",
        headers={"Last-Event-ID": "not-an-id"},
    )
    assert response.status_code == 422


async def test_join_stream_filters_by_stream_mode(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "steps", input={}, stream_mode=["updates", "values"]
    )
    await client.runs.join(thread["thread_id"], run["run_id"])
    path = f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream?stream_mode=updates"
    events = await read_sse(http, path, headers={"Last-Event-ID": "-"})
    assert {e.event for e in events} == {"metadata", "updates"}


async def test_sdk_join_stream_without_stream_mode_replays_every_mode(
    client: LangGraphClient,
) -> None:
    # The SDK sends `stream_mode=` (empty) when no mode is chosen: it means "no filter".
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "steps", input={}, stream_mode=["updates", "values"]
    )
    await client.runs.join(thread["thread_id"], run["run_id"])
    parts = client.runs.join_stream(thread["thread_id"], run["run_id"], last_event_id="-")
    assert {part.event async for part in parts} == {"metadata", "updates", "values"}


async def test_thread_stream_sees_runs_and_run_done(client: LangGraphClient) -> None:
    thread = await client.threads.create()

    async def collect() -> list[tuple[str, Any]]:
        seen = []
        async for part in await client.threads.join_stream(thread["thread_id"]):
            seen.append((part.event, part.data))
            if part.event == "metadata" and part.data.get("status") == "run_done":
                return seen
        return seen

    watcher = asyncio.create_task(collect())
    await asyncio.sleep(0.3)
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "t"})
    seen = await asyncio.wait_for(watcher, 10)
    assert seen[0][0] == "metadata" and "run_id" in seen[0][1]
    assert ("values", {"value": "t", "count": 1}) in seen
