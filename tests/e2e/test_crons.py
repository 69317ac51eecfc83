"""Crons through the SDK: create, read, search, count, update, delete, bad input, and one
cron that really fires."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import BadRequestError, NotFoundError, UnprocessableEntityError

from garrison.domain.ids import system_assistant_id
from tests.support.server import GarrisonProcess

Json = dict[str, Any]
ECHO = system_assistant_id("echo")
# Crons made on the shared server must not fire during the session: once a year at most.
NEVER_SOON = "0 0 1 1 *"


@pytest.fixture
async def tag(client: LangGraphClient) -> AsyncIterator[str]:
    """A metadata value unique to the test; its crons are deleted afterwards."""
    value = uuid.uuid4().hex
    yield value
    for cron in await client.crons.search(metadata={"tag": value}, limit=100):
        await client.crons.delete(cron["cron_id"])


async def thread_cron(client: LangGraphClient, thread_id: str, **kwargs: Any) -> Json:
    kwargs.setdefault("schedule", NEVER_SOON)
    return cast(Json, await client.crons.create_for_thread(thread_id, "echo", **kwargs))


async def stateless_cron(client: LangGraphClient, **kwargs: Any) -> Json:
    kwargs.setdefault("schedule", NEVER_SOON)
    return cast(Json, await client.crons.create("echo", **kwargs))


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_create_for_thread_returns_the_cron(
    client: LangGraphClient, http: httpx.AsyncClient, tag: str
) -> None:
    thread = await client.threads.create()
    before = datetime.now(UTC)
    cron = await thread_cron(
        client,
        thread["thread_id"],
        schedule="0 9 * * *",
        timezone="Asia/Tokyo",
        input={"value": "morning"},
        metadata={"tag": tag},
        multitask_strategy="reject",
    )
    assert cron["assistant_id"] == ECHO  # the graph name resolved to its system assistant
    assert cron["thread_id"] == thread["thread_id"]
    assert (cron["schedule"], cron["timezone"], cron["enabled"]) == (
        "0 9 * * *",
        "Asia/Tokyo",
        True,
    )
    assert cron["metadata"] == {"tag": tag}
    assert cron["end_time"] is None and cron["user_id"] is None
    assert cron["payload"]["input"] == {"value": "morning"}
    assert cron["payload"]["multitask_strategy"] == "reject"
    # 09:00 in Tokyo is 00:00 UTC, at most a day away.
    next_run = moment(cron["next_run_date"])
    assert before < next_run <= before + timedelta(days=1)
    assert (next_run.hour, next_run.minute) == (0, 0)

    fetched = await http.get(f"/runs/crons/{cron['cron_id']}")
    assert fetched.status_code == 200
    assert fetched.json() == cron


async def test_create_stateless_cron(client: LangGraphClient, tag: str) -> None:
    end = datetime.now(UTC) + timedelta(days=30)
    cron = await stateless_cron(
        client, metadata={"tag": tag}, on_run_completed="keep", end_time=end, enabled=False
    )
    assert cron["thread_id"] is None
    assert cron["on_run_completed"] == "keep"
    assert cron["enabled"] is False
    assert moment(cron["end_time"]) == end
    default = await stateless_cron(client, metadata={"tag": tag})
    assert default["on_run_completed"] == "delete"


async def test_search_filters_sorts_selects_and_paginates(
    client: LangGraphClient, http: httpx.AsyncClient, tag: str
) -> None:
    thread = await client.threads.create()
    on_thread = await thread_cron(
        client, thread["thread_id"], schedule="0 0 1 1 *", metadata={"tag": tag}
    )
    yearly = await stateless_cron(client, schedule="0 0 1 7 *", metadata={"tag": tag})
    # Disabled, so it never fires, yet it has the soonest next_run_date.
    paused = await stateless_cron(
        client, schedule="* * * * *", metadata={"tag": tag, "kind": "paused"}, enabled=False
    )

    found = await client.crons.search(metadata={"tag": tag})
    assert [c["cron_id"] for c in found] == [
        paused["cron_id"],
        yearly["cron_id"],
        on_thread["cron_id"],
    ]  # newest first by default
    by_thread = await client.crons.search(thread_id=thread["thread_id"])
    assert [c["cron_id"] for c in by_thread] == [on_thread["cron_id"]]
    enabled = await client.crons.search(metadata={"tag": tag}, enabled=True)
    assert {c["cron_id"] for c in enabled} == {on_thread["cron_id"], yearly["cron_id"]}
    assert [c["cron_id"] for c in await client.crons.search(metadata={"kind": "paused"})] == [
        paused["cron_id"]
    ]
    by_assistant = await client.crons.search(assistant_id=ECHO, metadata={"tag": tag})
    assert len(by_assistant) == 3
    soonest = await client.crons.search(
        metadata={"tag": tag}, sort_by="next_run_date", sort_order="asc", limit=1
    )
    assert [c["cron_id"] for c in soonest] == [paused["cron_id"]]
    selected = await client.crons.search(metadata={"tag": tag}, select=["cron_id", "schedule"])
    assert all(set(c) == {"cron_id", "schedule"} for c in selected)

    first_page = await http.post(
        "/runs/crons/search", json={"metadata": {"tag": tag}, "limit": 2, "offset": 0}
    )
    assert len(first_page.json()) == 2
    assert first_page.headers["x-pagination-next"] == "2"
    assert first_page.headers["x-pagination-total"] == "3"
    last_page = await http.post(
        "/runs/crons/search", json={"metadata": {"tag": tag}, "limit": 2, "offset": 2}
    )
    assert [c["cron_id"] for c in last_page.json()] == [on_thread["cron_id"]]
    assert "x-pagination-next" not in last_page.headers
    assert last_page.headers["x-pagination-total"] == "3"


async def test_count(client: LangGraphClient, tag: str) -> None:
    thread = await client.threads.create()
    await thread_cron(client, thread["thread_id"], metadata={"tag": tag})
    await stateless_cron(client, metadata={"tag": tag})
    assert await client.crons.count(metadata={"tag": tag}) == 2
    assert await client.crons.count(thread_id=thread["thread_id"]) == 1
    assert await client.crons.count(assistant_id=ECHO, metadata={"tag": tag}) == 2
    assert await client.crons.count(metadata={"tag": "no such tag"}) == 0


async def test_update_reschedules_and_merges(client: LangGraphClient, tag: str) -> None:
    cron = await stateless_cron(
        client, metadata={"tag": tag, "owner": "ops"}, input={"value": "old"}
    )
    updated = cast(
        Json,
        await client.crons.update(
            cron["cron_id"],
            schedule="30 6 * * *",
            timezone="America/New_York",
            metadata={"owner": "data"},
            input={"value": "new"},
            on_run_completed="keep",
        ),
    )
    assert (updated["schedule"], updated["timezone"]) == ("30 6 * * *", "America/New_York")
    assert updated["metadata"] == {"tag": tag, "owner": "data"}
    assert updated["payload"]["input"] == {"value": "new"}
    assert updated["on_run_completed"] == "keep"
    next_run = moment(updated["next_run_date"]).astimezone(ZoneInfo("America/New_York"))
    assert (next_run.hour, next_run.minute) == (6, 30)
    assert moment(updated["updated_at"]) >= moment(cron["updated_at"])


async def test_update_end_time_null_clears_and_omitted_keeps(
    client: LangGraphClient, http: httpx.AsyncClient, tag: str
) -> None:
    end = datetime.now(UTC) + timedelta(days=7)
    cron = await stateless_cron(client, metadata={"tag": tag}, end_time=end)

    kept = cast(Json, await client.crons.update(cron["cron_id"], enabled=False))
    assert moment(kept["end_time"]) == end
    assert kept["enabled"] is False
    cleared = cast(Json, await client.crons.update(cron["cron_id"], end_time=None))
    assert cleared["end_time"] is None
    assert cleared["enabled"] is False
    raw = await http.patch(f"/runs/crons/{cron['cron_id']}", json={"end_time": end.isoformat()})
    assert moment(raw.json()["end_time"]) == end


async def test_update_with_an_empty_body_is_a_400(client: LangGraphClient, tag: str) -> None:
    cron = await stateless_cron(client, metadata={"tag": tag})
    with pytest.raises(BadRequestError):
        await client.crons.update(cron["cron_id"])


async def test_delete(client: LangGraphClient, http: httpx.AsyncClient, tag: str) -> None:
    cron = await stateless_cron(client, metadata={"tag": tag})
    response = await http.delete(f"/runs/crons/{cron['cron_id']}")
    assert response.status_code == 204
    missing = await http.get(f"/runs/crons/{cron['cron_id']}")
    assert missing.status_code == 404
    assert "detail" in missing.json()
    with pytest.raises(NotFoundError):
        await client.crons.delete(cron["cron_id"])


async def test_deleting_the_thread_deletes_its_crons(
    client: LangGraphClient, http: httpx.AsyncClient, tag: str
) -> None:
    thread = await client.threads.create()
    cron = await thread_cron(client, thread["thread_id"], metadata={"tag": tag})
    await client.threads.delete(thread["thread_id"])
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).status_code == 404


@pytest.mark.parametrize(
    "schedule", ["not a cron", "* * * *", "* * * * * *", "61 * * * *", "0 0 31 2 *"]
)
async def test_invalid_schedule_is_a_422(client: LangGraphClient, tag: str, schedule: str) -> None:
    with pytest.raises(UnprocessableEntityError):
        await stateless_cron(client, schedule=schedule, metadata={"tag": tag})


async def test_unknown_timezone_is_a_422(client: LangGraphClient, tag: str) -> None:
    with pytest.raises(UnprocessableEntityError, match="timezone"):
        await stateless_cron(client, timezone="Mars/Olympus_Mons", metadata={"tag": tag})
    with pytest.raises(UnprocessableEntityError):
        await stateless_cron(client, timezone="America", metadata={"tag": tag})


async def test_unknown_thread_is_a_404(client: LangGraphClient, tag: str) -> None:
    with pytest.raises(NotFoundError):
        await thread_cron(client, str(uuid.uuid4()), metadata={"tag": tag})
    with pytest.raises(UnprocessableEntityError):
        await thread_cron(client, "not-a-uuid", metadata={"tag": tag})


@pytest.mark.parametrize("assistant_id", ["no_such_graph", str(uuid.uuid4())])
async def test_unknown_assistant_is_a_404(
    client: LangGraphClient, tag: str, assistant_id: str
) -> None:
    with pytest.raises(NotFoundError):
        await client.crons.create(assistant_id, schedule=NEVER_SOON, metadata={"tag": tag})


async def test_bad_ids_and_bad_updates(
    client: LangGraphClient, http: httpx.AsyncClient, tag: str
) -> None:
    assert (await http.get("/runs/crons/not-a-uuid")).status_code == 422
    unknown = await http.get(f"/runs/crons/{uuid.uuid4()}")
    assert unknown.status_code == 404
    assert set(unknown.json()) == {"detail"}
    assert (
        await http.patch(f"/runs/crons/{uuid.uuid4()}", json={"enabled": False})
    ).status_code == 404
    assert (await http.post("/runs/crons/search", json={"assistant_id": "echo"})).status_code == 422

    cron = await stateless_cron(client, metadata={"tag": tag})
    with pytest.raises(UnprocessableEntityError):
        await client.crons.update(cron["cron_id"], schedule="every day")
    with pytest.raises(UnprocessableEntityError):
        await client.crons.update(cron["cron_id"], timezone="Nowhere/Town")
    with pytest.raises(BadRequestError):  # would fail at every fire
        await stateless_cron(
            client, config={"configurable": {"a": 1}}, context={"b": 2}, metadata={"tag": tag}
        )


async def _runs_of(sdk: LangGraphClient, thread_id: str, deadline: float) -> list[Json]:
    while time.monotonic() < deadline:
        runs = [cast(Json, r) for r in await sdk.runs.list(thread_id)]
        if runs:
            return runs
        await asyncio.sleep(0.5)
    return []


async def test_a_cron_fires_in_real_time(tmp_path: Path) -> None:
    """`* * * * *` starts a run at the next minute boundary, on its thread and statelessly."""
    process = GarrisonProcess(
        tmp_path / "cron-server", env={"GARRISON_CRON_TICK_SECONDS": "0.5"}
    ).start()
    sdk = get_client(url=process.url, api_key=None)
    try:
        thread = await sdk.threads.create()
        cron = await thread_cron(
            sdk,
            thread["thread_id"],
            schedule="* * * * *",
            input={"value": "cron", "count": 10},
            metadata={"origin": "cron-test"},
        )
        kept = await stateless_cron(
            sdk, schedule="* * * * *", input={"value": "kept"}, on_run_completed="keep"
        )
        deadline = time.monotonic() + 75

        runs = await _runs_of(sdk, thread["thread_id"], deadline)
        assert runs, f"no cron run within 75 s:\n{process.log()[-3000:]}"
        run = runs[0]
        assert run["metadata"]["cron_id"] == cron["cron_id"]
        assert run["metadata"]["origin"] == "cron-test"
        assert run["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
        output = await sdk.runs.join(thread["thread_id"], run["run_id"])
        assert output == {"value": "cron", "count": 11}
        refreshed = (await process_get(process, f"/runs/crons/{cron['cron_id']}")).json()
        assert moment(refreshed["next_run_date"]) > moment(cron["next_run_date"])

        # The stateless cron ran on a thread of its own, kept after the run.
        others: list[Json] = []
        while not others and time.monotonic() < deadline:
            threads = await sdk.threads.search(limit=10)
            others = [cast(Json, t) for t in threads if t["thread_id"] != thread["thread_id"]]
            await asyncio.sleep(0.2)
        assert others, "the stateless cron made no thread"
        kept_run = (await _runs_of(sdk, others[-1]["thread_id"], deadline))[0]
        assert kept_run["metadata"]["cron_id"] == kept["cron_id"]
        assert await sdk.runs.join(others[-1]["thread_id"], kept_run["run_id"]) == {
            "value": "kept",
            "count": 1,
        }
    finally:
        await sdk.http.client.aclose()
        process.stop()


async def process_get(process: GarrisonProcess, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=process.url) as raw:
        return await raw.get(path)
