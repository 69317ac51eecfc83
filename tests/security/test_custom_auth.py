"""Custom `langgraph_sdk.Auth` handlers (`auth.path`) end to end: a real server loads the
project's auth file, the official SDK calls it with bearer tokens, and the handlers'
ownership filters, denials, payload rewrites and store namespaces hold on SQLite and on
PostgreSQL. The project is in `custom_auth_project/` (written as LangGraph's docs teach)."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, PermissionDeniedError

from tests.support.topology import Deployment, deploy

PROJECT = Path(__file__).resolve().parent / "custom_auth_project" / "langgraph.json"


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    data_dir = tmp_path_factory.mktemp(f"custom-auth-{request.param}")
    with deploy(request.param, data_dir, config=PROJECT) as deployment:
        yield deployment


def client(server: Deployment, user: str) -> LangGraphClient:
    return get_client(url=server.url, headers={"Authorization": f"Bearer token-{user}"})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def status_as(server: Deployment, user: str, method: str, path: str, **body: Any) -> int:
    """The raw status of a call (the SDK's wait/join surface errors as plain HTTP errors)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.request(
            method, path, headers={"authorization": f"Bearer token-{user}"}, **body
        )
        return response.status_code


def test_the_authenticate_handler_decides_who_gets_in(server: Deployment) -> None:
    url = f"{server.url}/threads/search"
    for headers in ({}, {"authorization": "Bearer nobody"}, {"authorization": "Basic token-bob"}):
        response = httpx.post(url, json={}, headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == {"detail": "Invalid or missing token"}
    banned = httpx.post(
        url, json={}, headers={"authorization": "Bearer token-bob", "x-banned": "yes"}
    )
    assert banned.status_code == 403
    assert banned.json() == {"detail": "Banned caller"}
    # The handler read the body; the route must still get it whole.
    created = httpx.post(
        f"{server.url}/threads",
        json={"metadata": {"topic": "body replay"}},
        headers={"authorization": "Bearer token-bob"},
    )
    assert created.status_code == 200, created.text
    assert created.json()["metadata"]["topic"] == "body replay"


def test_owners_see_only_their_threads(server: Deployment) -> None:
    async def scenario() -> None:
        alice, bob = client(server, "alice"), client(server, "bob")
        # A client-chosen owner is overwritten by the handler's stamp (and persisted).
        thread = await alice.threads.create(metadata={"owner": "bob", "topic": "tea"})
        thread_id = thread["thread_id"]
        assert thread["metadata"]["owner"] == "alice"
        assert (await alice.threads.get(thread_id))["metadata"]["owner"] == "alice"

        for attempt in (
            bob.threads.get(thread_id),
            bob.threads.update(thread_id, metadata={"topic": "coffee"}),
            bob.threads.delete(thread_id),
            bob.threads.get_state(thread_id),
            bob.threads.get_history(thread_id),
            bob.runs.list(thread_id),
            bob.runs.create(thread_id, "whoami", input={}),
        ):
            with pytest.raises(NotFoundError):
                await attempt
        with pytest.raises(ConflictError):  # copying what one cannot see: as if missing
            await bob.threads.copy(thread_id)
        with pytest.raises(ConflictError):  # the id is taken; nothing else is learned
            await bob.threads.create(thread_id=thread_id, if_exists="do_nothing")

        bob_ids = {t["thread_id"] for t in await bob.threads.search(limit=100)}
        assert thread_id not in bob_ids
        assert await bob.threads.count(metadata={"topic": "tea"}) == 0
        assert await alice.threads.count(metadata={"topic": "tea"}) >= 1
        alice_ids = {t["thread_id"] for t in await alice.threads.search(limit=100)}
        assert thread_id in alice_ids and not alice_ids & (bob_ids - {thread_id})
        # Untouched by Bob's attempts.
        assert (await alice.threads.get(thread_id))["metadata"]["topic"] == "tea"

    run(scenario())


def test_runs_follow_their_thread_and_graphs_see_the_user(server: Deployment) -> None:
    async def scenario() -> None:
        alice, bob = client(server, "alice"), client(server, "bob")
        thread = await alice.threads.create()
        result = await alice.runs.wait(thread["thread_id"], "whoami", input={"question": "?"})
        assert result["identity"] == "alice"
        assert result["display_name"] == "Alice Liddell"
        assert result["permissions"] == ["assistants:write"]
        assert result["org"] == "wonderland"  # extra fields reach the graph too
        assert result["user_id"] == "alice"
        runs = await alice.runs.list(thread["thread_id"])
        run_id = runs[0]["run_id"]
        assert runs[0]["metadata"]["owner"] == "alice"  # create_run's stamp is persisted
        join = f"/threads/{thread['thread_id']}/runs/{run_id}/join"
        assert await status_as(server, "bob", "GET", join) == 404
        for attempt in (
            bob.runs.get(thread["thread_id"], run_id),
            bob.runs.cancel(thread["thread_id"], run_id),
            bob.runs.delete(thread["thread_id"], run_id),
        ):
            with pytest.raises(NotFoundError):
                await attempt
        # A stateless run works for anyone, as itself.
        stateless = await bob.runs.wait(None, "whoami", input={})
        assert stateless["identity"] == "bob"
        assert stateless["permissions"] == []

    run(scenario())


def test_the_most_specific_handler_runs(server: Deployment) -> None:
    async def scenario() -> None:
        carol = client(server, "carol")
        thread = await carol.threads.create()
        # threads.delete has its own handler, which refuses Carol (the global one would not).
        with pytest.raises(PermissionDeniedError):
            await carol.threads.delete(thread["thread_id"])
        assert (await carol.threads.get(thread["thread_id"]))["thread_id"] == thread["thread_id"]
        # assistants.create has its own handler: only holders of assistants:write create.
        with pytest.raises(PermissionDeniedError) as denied:
            await carol.assistants.create("whoami", name="carol's")
        assert "read-only" in str(denied.value)

    run(scenario())


def test_assistants_and_crons_are_filtered(server: Deployment) -> None:
    async def scenario() -> None:
        alice, bob = client(server, "alice"), client(server, "bob")
        assistant = await alice.assistants.create("whoami", name="alice's")
        assert assistant["metadata"]["owner"] == "alice"
        with pytest.raises(NotFoundError):
            await bob.assistants.get(assistant["assistant_id"])
        assert assistant["assistant_id"] not in {
            a["assistant_id"] for a in await bob.assistants.search(limit=100)
        }
        # A run needs `read` on its assistant (system assistants excepted, as above).
        body = {"assistant_id": assistant["assistant_id"], "input": {}}
        assert await status_as(server, "bob", "POST", "/runs/wait", json=body) == 404

        cron = await alice.crons.create("whoami", schedule="0 0 1 1 *", input={})
        cron_id = cron["cron_id"]
        # `$contains` membership filter: Alice is a member, Bob is not.
        assert cron_id in {c["cron_id"] for c in await alice.crons.search(limit=100)}
        assert cron_id not in {c["cron_id"] for c in await bob.crons.search(limit=100)}
        assert await bob.crons.count() == 0
        with pytest.raises(NotFoundError):
            await bob.crons.delete(cron_id)
        assert cron_id in {c["cron_id"] for c in await alice.crons.search(limit=100)}

    run(scenario())


def test_store_handlers_rewrite_namespaces(server: Deployment) -> None:
    async def scenario() -> None:
        alice, bob = client(server, "alice"), client(server, "bob")
        key = f"k-{uuid.uuid4().hex[:8]}"
        await alice.store.put_item(("notes",), key, {"text": "alice's note"})
        assert (await alice.store.get_item(("notes",), key))["value"] == {"text": "alice's note"}
        assert await bob.store.get_item(("notes",), key) is None  # the API's "no such item"
        found = await alice.store.search_items(("notes",))
        assert [item["key"] for item in found["items"]] == [key]
        assert found["items"][0]["namespace"] == ["alice", "notes"]
        assert (await bob.store.search_items(("notes",)))["items"] == []
        await bob.store.delete_item(("notes",), key)  # Bob's namespace: nothing to delete
        assert (await alice.store.get_item(("notes",), key))["value"] == {"text": "alice's note"}

    run(scenario())


def test_the_project_describes_its_auth_in_openapi(server: Deployment) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {
        "bearerToken": {"type": "http", "scheme": "bearer"}
    }
    assert schema["security"] == [{"bearerToken": []}]
    assert schema["paths"]["/threads/search"]["post"]["description"] == (
        "Only the caller's own threads."
    )
