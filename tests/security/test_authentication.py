"""S5 (API keys) and role-based authorization against real servers, SQLite and PostgreSQL.

Keys are made the way an operator makes them (`garrison keys create`), sent the way
`langgraph-sdk` sends them (`x-api-key`), and checked on every request.
"""

import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from tests.support.secured import SecuredDeployment, secured

BACKENDS = ["embedded", "postgres"]


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredDeployment]:
    with secured(request.param, tmp_path_factory.mktemp(f"auth-{request.param}")) as deployment:
        for role in ("admin", "developer", "user", "viewer"):
            deployment.create_key(role, "acme", role)
        yield deployment


def call(site: SecuredDeployment, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, site.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_public_probes_need_no_key(site: SecuredDeployment) -> None:
    for path in ("/ok", "/health", "/ready", "/info", "/metrics", "/openapi.json"):
        assert call(site, "GET", path).status_code == 200, path


@pytest.mark.parametrize("path", ["/threads/search", "/assistants/search", "/no/such/route"])
def test_no_credentials_is_401_with_detail(site: SecuredDeployment, path: str) -> None:
    response = call(site, "POST", path, json={})
    assert response.status_code == 401
    assert set(response.json()) == {"detail"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_key_works_in_header_and_as_bearer(site: SecuredDeployment) -> None:
    key = site.keys["developer"]
    assert call(site, "POST", "/threads/search", json={}, headers={"x-api-key": key}).is_success
    bearer = {"authorization": f"Bearer {key}"}
    assert call(site, "POST", "/threads/search", json={}, headers=bearer).is_success


def test_key_in_query_string_is_not_accepted(site: SecuredDeployment) -> None:
    key = site.keys["admin"]
    for name in ("api_key", "x-api-key", "token", "access_token"):
        response = call(site, "POST", f"/threads/search?{name}={key}", json={})
        assert response.status_code == 401, name


@pytest.mark.parametrize(
    "text",
    [
        "nonsense",
        "gk_000000000000_" + "A" * 43,  # well formed, unknown id
        str(uuid.uuid4()),
    ],
)
def test_bad_keys_are_refused_alike(site: SecuredDeployment, text: str) -> None:
    response = call(site, "POST", "/threads/search", json={}, headers={"x-api-key": text})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API key"}


def test_wrong_secret_for_a_real_key_id_is_refused(site: SecuredDeployment) -> None:
    key_id = site.keys["admin"].split("_")[1]
    forged = f"gk_{key_id}_{'B' * 43}"
    response = call(site, "POST", "/threads/search", json={}, headers={"x-api-key": forged})
    assert response.status_code == 401


def test_keys_are_random_and_long_not_uuids(site: SecuredDeployment) -> None:
    keys = [site.create_key(f"extra-{i}", "acme", "viewer") for i in range(3)]
    assert len(set(keys)) == 3
    for key in keys:
        match = re.fullmatch(r"gk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", key)
        assert match, key
        assert len(match.group(2)) * 6 >= 128  # >= 128 bits of secret
        with pytest.raises(ValueError):
            uuid.UUID(match.group(2))


def test_only_a_hash_is_stored_and_list_hides_secrets(site: SecuredDeployment) -> None:
    key = site.create_key("stored", "acme", "viewer", "--name", "ci")
    secret = key.split("_", 2)[2]  # the secret itself may contain "_"
    listing = site.cli("keys", "list", "--tenant", "acme")
    assert listing.returncode == 0 and key.split("_")[1] in listing.stdout
    assert secret not in listing.stdout
    if site.deployment.database_url:
        with psycopg.connect(site.deployment.database_url) as conn:
            rows = conn.execute("SELECT * FROM api_keys").fetchall()
        assert rows and secret not in repr(rows)
    else:
        database = Path(site.data_dir) / "garrison.sqlite"
        with sqlite3.connect(database) as conn:
            rows = conn.execute("SELECT * FROM api_keys").fetchall()
        assert rows and secret not in repr(rows)
        for path in Path(site.data_dir).glob("garrison.sqlite*"):
            assert secret.encode() not in path.read_bytes()


def test_revocation_takes_effect_on_the_next_request(site: SecuredDeployment) -> None:
    key = site.create_key("doomed", "acme", "developer")
    headers = {"x-api-key": key}
    assert call(site, "POST", "/threads/search", json={}, headers=headers).is_success
    revoked = site.cli("keys", "revoke", key.split("_")[1])
    assert revoked.returncode == 0, revoked.stderr
    assert call(site, "POST", "/threads/search", json={}, headers=headers).status_code == 401
    again = site.cli("keys", "revoke", key.split("_")[1])
    assert again.returncode == 1


def test_expired_key_is_refused(site: SecuredDeployment) -> None:
    key = site.create_key("old", "acme", "developer", "--expires", "2020-01-01")
    response = call(site, "POST", "/threads/search", json={}, headers={"x-api-key": key})
    assert response.status_code == 401


def test_create_refuses_unknown_roles(site: SecuredDeployment) -> None:
    done = site.cli("keys", "create", "--tenant", "acme", "--role", "root")
    assert done.returncode != 0 and "role must be one of" in done.stderr


# role -> (method, path, body, expected status) for what each role may and may not do
def _role_cases(thread_id: str) -> list[tuple[str, str, str, object, int]]:
    assistant = {"graph_id": "echo"}
    return [
        ("viewer", "POST", "/threads/search", {}, 200),
        ("viewer", "GET", f"/threads/{thread_id}", None, 200),
        ("viewer", "POST", "/threads", {}, 403),
        ("viewer", "POST", "/assistants", assistant, 403),
        ("viewer", "POST", f"/threads/{thread_id}/runs/wait", {"assistant_id": "echo"}, 403),
        ("viewer", "DELETE", f"/threads/{thread_id}", None, 403),
        ("user", "POST", "/threads", {}, 200),
        ("user", "POST", "/assistants", assistant, 403),
        ("user", "POST", "/assistants/search", {}, 200),
        ("user", "POST", "/runs/crons/search", {}, 403),
        ("user", "POST", "/store/items/search", {}, 403),
        ("developer", "POST", "/assistants", assistant, 200),
        ("developer", "POST", "/runs/crons/search", {}, 200),
        ("admin", "POST", "/assistants", assistant, 200),
        ("admin", "POST", "/store/items/search", {}, 200),
    ]


def test_roles_grant_what_they_say(site: SecuredDeployment) -> None:
    admin = site.headers("admin")
    thread_id = call(site, "POST", "/threads", json={}, headers=admin).json()["thread_id"]
    for role, method, path, body, expected in _role_cases(thread_id):
        response = call(site, method, path, json=body, headers=site.headers(role))
        assert response.status_code == expected, (role, method, path, response.text)
        if expected == 403:
            assert set(response.json()) == {"detail"} and "role" in response.json()["detail"]


async def test_sdk_client_works_with_a_key(site: SecuredDeployment) -> None:
    client = get_client(url=site.url, api_key=site.keys["developer"])
    try:
        thread = await client.threads.create()
        result = await client.runs.wait(thread["thread_id"], "echo", input={"messages": []})
        assert isinstance(result, dict)
        assert (await client.threads.get(thread["thread_id"]))["thread_id"] == thread["thread_id"]
    finally:
        await client.http.client.aclose()


def test_users_work_with_their_own_threads(site: SecuredDeployment) -> None:
    """The `user` role: a colleague's threads and runs are invisible (404, absent from
    search and counts); admins, developers and viewers see the whole tenant."""
    site.create_key("user-2", "acme", "user")
    mine, theirs = site.headers("user"), site.headers("user-2")
    marker = uuid.uuid4().hex
    thread = call(site, "POST", "/threads", json={"metadata": {"m": marker}}, headers=mine)
    assert thread.status_code == 200
    thread_id = thread.json()["thread_id"]
    run = call(
        site,
        "POST",
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "echo", "input": {"value": "x"}},
        headers=mine,
    )
    assert run.status_code == 200, run.text
    for method, path, body in (
        ("GET", f"/threads/{thread_id}", None),
        ("GET", f"/threads/{thread_id}/state", None),
        ("PATCH", f"/threads/{thread_id}", {"metadata": {"m": "stolen"}}),
        ("GET", f"/threads/{thread_id}/runs", None),
        ("POST", f"/threads/{thread_id}/runs/wait", {"assistant_id": "echo", "input": {}}),
        ("DELETE", f"/threads/{thread_id}", None),
    ):
        response = call(site, method, path, json=body, headers=theirs)
        assert response.status_code == 404, (method, path, response.text)
    search = {"metadata": {"m": marker}}
    assert call(site, "POST", "/threads/search", json=search, headers=theirs).json() == []
    assert call(site, "POST", "/threads/count", json=search, headers=theirs).json() == 0
    assert call(site, "POST", "/threads/count", json=search, headers=mine).json() == 1
    for role in ("admin", "developer", "viewer"):
        seen = call(site, "POST", "/threads/search", json=search, headers=site.headers(role))
        assert [t["thread_id"] for t in seen.json()] == [thread_id], role
    mine_now = call(site, "GET", f"/threads/{thread_id}", headers=mine).json()
    assert mine_now["metadata"]["m"] == marker  # the colleague's PATCH never landed
