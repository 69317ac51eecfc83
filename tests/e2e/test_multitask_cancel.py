"""Double-texting (multitask strategies) and cancellation, with concurrent clients."""

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError


async def _wait_status(client: LangGraphClient, thread_id: str, run_id: str, status: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if (await client.runs.get(thread_id, run_id))["status"] == status:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"run {run_id} never became {status}")


async def test_reject_refuses_a_second_run_with_409(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.5})
    with pytest.raises(ConflictError):
        await client.runs.create(thread["thread_id"], "echo", input={}, multitask_strategy="reject")
    await client.runs.join(thread["thread_id"], first["run_id"])
    assert len(await client.runs.list(thread["thread_id"])) == 1


async def test_concurrent_rejects_admit_exactly_one(http: httpx.AsyncClient) -> None:
    thread = (await http.post("/threads", json={})).json()
    body = {"assistant_id": "steps", "input": {"delay": 0.3}, "multitask_strategy": "reject"}
    responses = await asyncio.gather(
        *[http.post(f"/threads/{thread['thread_id']}/runs", json=body) for _ in range(30)]
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1 and codes.count(409) == 29
    assert all("already running" in r.json()["detail"] for r in responses if r.status_code == 409)


async def test_enqueue_runs_strictly_one_at_a_time_in_order(
    client: LangGraphClient, side_effects: Path
) -> None:
    thread = await client.threads.create()
    runs = []
    for _ in range(4):  # submitted in order; each logs its three steps
        runs.append(
            await client.runs.create(
                thread["thread_id"],
                "steps",
                input={"delay": 0.05, "log_file": str(side_effects)},
                multitask_strategy="enqueue",
            )
        )
    for run in runs:
        await client.runs.join(thread["thread_id"], run["run_id"])
    lines = side_effects.read_text().splitlines()
    order = [line.split()[0] for line in lines]
    expected = [run["run_id"] for run in runs for _ in range(3)]
    assert order == expected  # no interleaving, FIFO
    statuses = [(await client.runs.get(thread["thread_id"], r["run_id"]))["status"] for r in runs]
    assert statuses == ["success"] * 4


async def test_interrupt_stops_the_running_run_and_keeps_its_progress(
    client: LangGraphClient, side_effects: Path
) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(
        thread["thread_id"], "steps", input={"delay": 0.4, "log_file": str(side_effects)}
    )
    await asyncio.sleep(0.6)  # step one done, step two running
    second = await client.runs.create(
        thread["thread_id"], "steps", input={"delay": 0.0}, multitask_strategy="interrupt"
    )
    await client.runs.join(thread["thread_id"], second["run_id"])
    assert (await client.runs.get(thread["thread_id"], first["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(thread["thread_id"], second["run_id"]))["status"] == "success"
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["done"][0] == "one"  # the interrupted run's first step is kept
    assert state["values"]["done"][-3:] == ["one", "two", "three"]


async def test_rollback_deletes_the_running_run_and_its_checkpoints(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"value": "before", "count": 0})
    first = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.4})
    await asyncio.sleep(0.6)
    second = await client.runs.create(
        thread["thread_id"], "echo", input={"value": "after"}, multitask_strategy="rollback"
    )
    await client.runs.join(thread["thread_id"], second["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(thread["thread_id"], first["run_id"])
    state = await client.threads.get_state(thread["thread_id"])
    assert "done" not in state["values"]  # nothing of the rolled-back run survives
    assert state["values"] == {"value": "after", "count": 2}


async def test_rollback_of_a_pending_run_deletes_it_at_once(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.5})
    queued = await client.runs.create(thread["thread_id"], "echo", input={})
    latest = await client.runs.create(
        thread["thread_id"], "echo", input={"value": "z"}, multitask_strategy="rollback"
    )
    with pytest.raises(NotFoundError):
        await client.runs.get(thread["thread_id"], queued["run_id"])
    await client.runs.join(thread["thread_id"], latest["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(thread["thread_id"], first["run_id"])


async def test_cancel_a_running_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "steps", input={"delay": 1.0})
    await _wait_status(client, thread["thread_id"], run["run_id"], "running")
    started = time.monotonic()
    await client.runs.cancel(thread["thread_id"], run["run_id"])
    await _wait_status(client, thread["thread_id"], run["run_id"], "interrupted")
    assert time.monotonic() - started < 2
    assert (await client.threads.get(thread["thread_id"]))["status"] != "busy"


async def test_cancel_with_wait_returns_the_output(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.3})
    await _wait_status(client, thread["thread_id"], run["run_id"], "running")
    response = await http.post(
        f"/threads/{thread['thread_id']}/runs/{run['run_id']}/cancel", params={"wait": 1}
    )
    assert response.status_code == 200
    assert isinstance(response.json(), dict)
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "interrupted"


async def test_cancel_without_wait_is_202(http: httpx.AsyncClient, client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.5})
    response = await http.post(f"/threads/{thread['thread_id']}/runs/{run['run_id']}/cancel")
    assert response.status_code == 202 and response.content == b""


async def test_cancel_pending_run_marks_it_interrupted(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.4})
    queued = await client.runs.create(thread["thread_id"], "echo", input={})
    await client.runs.cancel(thread["thread_id"], queued["run_id"])
    assert (await client.runs.get(thread["thread_id"], queued["run_id"]))["status"] == "interrupted"
    # a waiter on the cancelled run is released at once
    assert isinstance(await client.runs.join(thread["thread_id"], queued["run_id"]), dict)
    await client.runs.join(thread["thread_id"], first["run_id"])


async def test_rollback_cancel_deletes_the_run(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.5})
    await _wait_status(client, thread["thread_id"], run["run_id"], "running")
    await client.runs.cancel(thread["thread_id"], run["run_id"], action="rollback")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            await client.runs.get(thread["thread_id"], run["run_id"])
        except NotFoundError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("rolled-back run still exists")
    assert (await client.threads.get_state(thread["thread_id"]))["values"] == {}


async def test_cancel_finished_run_is_404(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input={})
    await client.runs.join(thread["thread_id"], run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.cancel(thread["thread_id"], run["run_id"])


async def test_cancel_many(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread = await client.threads.create()
    first = await client.runs.create(thread["thread_id"], "steps", input={"delay": 0.5})
    second = await client.runs.create(thread["thread_id"], "echo", input={})
    await client.runs.cancel_many(
        thread_id=thread["thread_id"], run_ids=[first["run_id"], second["run_id"]]
    )
    for run in (first, second):
        await _wait_status(client, thread["thread_id"], run["run_id"], "interrupted")
    mixed = await http.post(
        "/runs/cancel", json={"status": "pending", "thread_id": thread["thread_id"]}
    )
    assert mixed.status_code == 422
    neither = await http.post("/runs/cancel", json={})
    assert neither.status_code == 422


async def test_stream_disconnect_cancels_when_asked(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    async with http.stream(
        "POST",
        f"/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "steps", "input": {"delay": 1.0}, "on_disconnect": "cancel"},
    ) as response:
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        async for _ in response.aiter_bytes():
            break  # read the first event, then hang up
    await _wait_status(client, thread["thread_id"], run_id, "interrupted")


async def test_stream_disconnect_continues_by_default(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    async with http.stream(
        "POST",
        f"/threads/{thread['thread_id']}/runs/stream",
        json={"assistant_id": "steps", "input": {"delay": 0.2}},
    ) as response:
        run_id = response.headers["content-location"].rsplit("/", 1)[1]
        async for _ in response.aiter_bytes():
            break
    await _wait_status(client, thread["thread_id"], run_id, "success")


async def test_wait_disconnect_cancels_when_asked(client: LangGraphClient, server_url: str) -> None:
    thread = await client.threads.create()
    async with httpx.AsyncClient(base_url=server_url, timeout=0.5) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post(
                f"/threads/{thread['thread_id']}/runs/wait",
                json={"assistant_id": "steps", "input": {"delay": 1.0}, "on_disconnect": "cancel"},
            )
    runs = await client.runs.list(thread["thread_id"])
    await _wait_status(client, thread["thread_id"], runs[0]["run_id"], "interrupted")


@pytest.fixture
def server_url(http: httpx.AsyncClient) -> str:
    return str(http.base_url)
