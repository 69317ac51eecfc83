"""Run lifecycle: background/wait/join/stateless/batch, options, and bad input."""

import asyncio
import time
import uuid

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError

from tests.support.sse import read_sse
from tests.support.topology import Deployment
from tests.support.webhooks import WebhookReceiver


async def test_background_run_completes_and_is_listed(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs",
        json={"assistant_id": "echo", "input": {"value": "b"}},
    )
    run = response.json()
    assert (
        response.headers["content-location"]
        == f"/threads/{thread['thread_id']}/runs/{run['run_id']}"
    )
    assert run["status"] == "pending" and run["multitask_strategy"] == "enqueue"
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == {"value": "b", "count": 1}
    fetched = await client.runs.get(thread["thread_id"], run["run_id"])
    assert fetched["status"] == "success"
    listed = await client.runs.list(thread["thread_id"])
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    assert await client.runs.list(thread["thread_id"], status="error") == []


async def test_runs_are_listed_newest_first_with_select(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], "echo", input={})
    second = await client.runs.create(thread["thread_id"], "echo", input={})
    await client.runs.join(thread["thread_id"], second["run_id"])
    listed = await client.runs.list(thread["thread_id"], select=["run_id", "status"])
    assert [r["run_id"] for r in listed] == [second["run_id"], first["run_id"]]
    assert set(listed[0]) == {"run_id", "status"}


async def test_wait_headers_and_error_output(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs/wait", json={"assistant_id": "failing", "input": {}}
    )
    assert response.status_code == 200
    assert response.json() == {
        "__error__": {"error": "ValueError", "message": "boom: the second node failed"}
    }
    run_path = response.headers["content-location"]
    assert response.headers["location"] == f"{run_path}/join"
    with pytest.raises(Exception, match="boom"):
        await client.runs.wait(thread["thread_id"], "failing", input={})
    assert (await client.threads.get(thread["thread_id"]))["status"] == "error"


async def test_a_result_storage_cannot_hold_fails_the_run_once_and_says_why(
    client: LangGraphClient, server: Deployment
) -> None:
    thread = await client.threads.create()
    output = await client.runs.wait(
        thread["thread_id"], "echo", input={"value": "a", "with_nul": True}, raise_error=False
    )
    (run,) = await client.runs.list(thread["thread_id"])
    if server.name == "embedded":  # SQLite keeps U+0000 in JSON text
        assert run["status"] == "success" and output["value"] == "a\x00"
        return
    # PostgreSQL's JSON cannot: the run fails on its first attempt, not after max_attempts
    # lease expiries, and the error names the cause.
    assert run["status"] == "error" and run["attempt"] == 1
    assert "U+0000" in output["__error__"]["message"]
    assert (await client.threads.get(thread["thread_id"]))["status"] == "error"


async def test_join_of_a_finished_run_returns_its_output(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input={"value": "j"})
    first = await client.runs.join(thread["thread_id"], run["run_id"])
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == first


async def test_stateless_run_deletes_its_thread_unless_kept(client: LangGraphClient) -> None:
    output = await client.runs.wait(None, "echo", input={"value": "s"})
    assert output == {"value": "s", "count": 1}
    kept_run = await client.runs.create(None, "echo", input={"value": "k"}, on_completion="keep")
    await asyncio.sleep(0)  # the run is created; join it through its thread
    assert await client.runs.join(kept_run["thread_id"], kept_run["run_id"]) == {
        "value": "k",
        "count": 1,
    }
    assert (await client.threads.get(kept_run["thread_id"]))["status"] == "idle"

    temp_run = await client.runs.create(None, "echo", input={"value": "t"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            await client.threads.get(temp_run["thread_id"])
        except NotFoundError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the temporary thread of a stateless run was not deleted")


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_stateless_run_accepts_every_durability(
    client: LangGraphClient, durability: str
) -> None:
    # A stateless run has no checkpointer, so there is nothing for `sync` to wait for.
    output = await client.runs.wait(
        None,
        "echo",
        input={"value": "d"},
        durability=durability,  # type: ignore[arg-type]
    )
    assert output == {"value": "d", "count": 1}


async def test_stateless_stream_and_its_join_route(http: httpx.AsyncClient) -> None:
    events = await read_sse(
        http,
        "/runs/stream",
        method="POST",
        json={
            "assistant_id": "steps",
            "input": {},
            "stream_mode": "updates",
            "on_completion": "keep",
        },
    )
    assert [e.event for e in events] == ["metadata", "updates", "updates", "updates"]
    run_id = events[0].data["run_id"]
    replay = await read_sse(http, f"/runs/{run_id}/stream", headers={"Last-Event-ID": "-"})
    assert [e.id for e in replay] == [e.id for e in events]


async def test_batch_creates_stateless_runs(client: LangGraphClient) -> None:
    runs = await client.runs.create_batch(
        [
            {"assistant_id": "echo", "input": {"value": str(i)}, "on_completion": "keep"}
            for i in range(3)
        ]
    )
    assert len(runs) == 3 and len({r["thread_id"] for r in runs}) == 3
    outputs = [await client.runs.join(r["thread_id"], r["run_id"]) for r in runs]
    assert [o["value"] for o in outputs] == ["0", "1", "2"]


async def test_empty_batch_is_422(http: httpx.AsyncClient) -> None:
    assert (await http.post("/runs/batch", json=[])).status_code == 422


async def test_resume_needs_a_thread(client: LangGraphClient) -> None:
    with pytest.raises(BadRequestError, match="thread_id"):
        await client.runs.create(None, "approval", command={"resume": "yes"})


async def test_if_not_exists(client: LangGraphClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.runs.create(missing, "echo", input={})
    run = await client.runs.create(missing, "echo", input={"value": "c"}, if_not_exists="create")
    assert await client.runs.join(missing, run["run_id"]) == {"value": "c", "count": 1}


async def test_assistant_resolution(http: httpx.AsyncClient) -> None:
    thread = (await http.post("/threads", json={})).json()
    runs = f"/threads/{thread['thread_id']}/runs"
    unknown = await http.post(runs, json={"assistant_id": str(uuid.uuid4())})
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Thread or assistant not found."}
    not_a_graph = await http.post(runs, json={"assistant_id": "no-such-graph"})
    assert not_a_graph.status_code == 422 and "echo" in not_a_graph.json()["detail"]
    by_system_id = await http.post(
        runs,
        json={
            "assistant_id": str(
                uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "echo")
            )
        },
    )
    assert by_system_id.status_code == 200


async def test_config_context_and_metadata_reach_the_graph(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs/wait",
        json={
            "assistant_id": "configured",
            "input": {},
            "config": {"configurable": {"prefix": "Hi", "name": "Ada"}},
            "metadata": {"team": "qa", "run_id": "forged"},
        },
        headers={"x-trace": "abc", "x-api-key": "secret-key"},
    )
    output = response.json()
    assert output["greeting"] == "Hi, Ada"  # the factory saw the run's config
    seen = output["seen"]
    assert seen["thread_id"] == thread["thread_id"] and seen["graph_id"] == "configured"
    assert seen["x-trace"] == "abc" and seen["x-api-key"] is None
    assert seen["env"] == "1"  # from the project's `env`
    run = (await client.runs.list(thread["thread_id"]))[0]
    assert run["metadata"]["team"] == "qa"
    assert "run_id" not in run["metadata"]  # reserved keys are stripped


async def test_context_and_configurable_together_is_400(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    with pytest.raises(BadRequestError):
        await client.runs.create(
            thread["thread_id"], "echo", config={"configurable": {"a": 1}}, context={"b": 2}
        )


async def test_after_seconds_delays_the_start(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input={}, after_seconds=1.5)
    await asyncio.sleep(0.7)
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "pending"
    await client.runs.join(thread["thread_id"], run["run_id"])
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


async def test_recursion_limit_is_honoured(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    output = await client.runs.wait(
        thread["thread_id"], "steps", input={}, config={"recursion_limit": 2}, raise_error=False
    )
    assert output["__error__"]["error"] == "GraphRecursionError"


async def test_recursion_limit_above_the_server_maximum_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs/wait", json={"assistant_id": "echo", "config": {"recursion_limit": 10**7}}
    )
    assert response.status_code == 422 and "recursion_limit" in response.json()["detail"]


async def test_static_breakpoints_pause_and_resume(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "steps", input={}, interrupt_before=["two"])
    paused = await client.threads.get(thread["thread_id"])
    assert paused["status"] == "interrupted"
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["two"]
    output = await client.runs.wait(thread["thread_id"], "steps", input=None)
    assert output["done"] == ["one", "two", "three"]
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


async def test_interrupt_then_resume_with_command(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    paused = await client.runs.wait(thread["thread_id"], "approval", input={"request": "deploy"})
    assert paused["__interrupt__"][0]["value"] == {"question": "Approve deploy?"}
    interrupted = await client.threads.get(thread["thread_id"])
    assert interrupted["status"] == "interrupted"
    assert next(iter(interrupted["interrupts"].values()))[0]["value"] == {
        "question": "Approve deploy?"
    }
    done = await client.runs.wait(thread["thread_id"], "approval", command={"resume": "yes"})
    assert done == {"request": "deploy", "answer": "yes", "status": "done"}
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


async def test_command_goto_and_update(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "steps", input={})
    output = await client.runs.wait(
        thread["thread_id"], "steps", command={"update": {"done": ["extra"]}, "goto": "three"}
    )
    assert output["done"] == ["one", "two", "three", "extra", "three"]


async def test_fork_from_checkpoint_id(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "first", "count": 0})
    history = await client.threads.get_history(thread["thread_id"], limit=10)
    origin = history[-1]["checkpoint"]["checkpoint_id"]  # the input checkpoint of run one
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "second", "count": 10})
    forked = await client.runs.wait(
        thread["thread_id"], "echo", input={"value": "fork"}, checkpoint_id=origin
    )
    assert forked["value"] == "fork" and forked["count"] == 1


async def test_invalid_checkpoint_id_is_422(http: httpx.AsyncClient) -> None:
    thread = (await http.post("/threads", json={})).json()
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs",
        json={"assistant_id": "echo", "checkpoint_id": "nope"},
    )
    assert response.status_code == 422


async def test_blocking_graph_code_does_not_freeze_the_api(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "blocking", input={"seconds": 2.0})
    await asyncio.sleep(0.3)  # the node is sleeping in its thread now
    started = time.monotonic()
    for _ in range(5):
        assert (await http.get("/ok")).status_code == 200
    assert time.monotonic() - started < 0.5
    assert (await client.runs.join(thread["thread_id"], run["run_id"]))["slept"] == 2.0


async def test_delete_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    busy = await client.runs.create(thread["thread_id"], "steps", input={"delay": 1.0})
    with pytest.raises(ConflictError):
        await client.runs.delete(thread["thread_id"], busy["run_id"])
    await client.runs.join(thread["thread_id"], busy["run_id"])
    await client.runs.delete(thread["thread_id"], busy["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(thread["thread_id"], busy["run_id"])


async def test_webhook_is_posted_on_completion(client: LangGraphClient) -> None:
    async with WebhookReceiver() as receiver:
        thread = await client.threads.create()
        run = await client.runs.create(
            thread["thread_id"], "echo", input={"value": "hook"}, webhook=receiver.url("/done")
        )
        path, payload = await receiver.next_call(within_seconds=10)
    assert path == "/done"
    assert payload["run_id"] == run["run_id"] and payload["status"] == "success"
    assert payload["values"] == {"value": "hook", "count": 1}


async def test_webhook_url_must_be_http(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs", json={"assistant_id": "echo", "webhook": "file:///etc/passwd"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"assistant_id": 42}',
        b'{"assistant_id": "echo", "multitask_strategy": "sometimes"}',
        b'{"assistant_id": "echo", "stream_mode": ["values", 3]}',
        b'{"assistant_id": "echo", "after_seconds": -1}',
        b"[]",
    ],
)
async def test_bad_run_bodies_are_422_with_detail(http: httpx.AsyncClient, body: bytes) -> None:
    thread = (await http.post("/threads", json={})).json()
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


async def test_invalid_json_message(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert response.json() == {"detail": "Invalid JSON in request body"}


async def test_unknown_fields_are_accepted(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs/wait", json={"assistant_id": "echo", "input": {}, "brand_new_sdk_field": {"x": 1}}
    )
    assert response.status_code == 200


async def test_malformed_ids_are_422(http: httpx.AsyncClient) -> None:
    assert (
        await http.post("/threads/not-a-uuid/runs", json={"assistant_id": "echo"})
    ).status_code == 422
    assert (await http.get(f"/threads/{uuid.uuid4()}/runs/not-a-uuid")).status_code == 422


async def test_oversized_body_is_413(http: httpx.AsyncClient) -> None:
    big = b'{"assistant_id": "echo", "input": {"value": "' + b"x" * (11 * 1024 * 1024) + b'"}}'
    response = await http.post("/runs", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
