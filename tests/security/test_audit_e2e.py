"""A1 against real servers (SQLite and PostgreSQL): each authentication success and failure,
denial and mutating call writes exactly one complete record; planted secrets (API key,
bearer token, AES key) appear neither in the audit log nor in the server's own log; the
exported chain verifies."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.secured import SecuredDeployment, secured

AES_KEY = "PLANTED-AES-KEY-0123456789abcdef"  # 32 bytes, as LANGGRAPH_AES_KEY takes
BEARER = "eyPLANTED.bearer-token.0123456789"
EMAIL = "planted.victim@example.com"


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredDeployment]:
    env = {"GARRISON_LOG_FORMAT": "text", "LANGGRAPH_AES_KEY": AES_KEY}
    data_dir = tmp_path_factory.mktemp(f"audit-{request.param}")
    with secured(request.param, data_dir, env=env) as deployment:
        deployment.create_key("developer", "acme", "developer")
        deployment.create_key("viewer", "acme", "viewer")
        yield deployment


def _call(
    site: SecuredDeployment, request_id: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    headers = {"x-request-id": request_id, "x-aes-key": AES_KEY, **kwargs.pop("headers", {})}
    return httpx.request(method, site.url + path, headers=headers, timeout=30, **kwargs)


def _export(site: SecuredDeployment) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    done = site.cli("audit", "export", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    by_request: dict[str, list[dict[str, Any]]] = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        by_request.setdefault(record["request_id"], []).append(record)
    return done.stdout, by_request


def test_every_audited_call_writes_one_clean_record(site: SecuredDeployment) -> None:
    developer, viewer = site.headers("developer"), site.headers("viewer")
    bearer = {"authorization": f"Bearer {BEARER}"}
    body = {"metadata": {"email": EMAIL, "api_key": site.keys["developer"], "aes": AES_KEY}}
    created = _call(site, "a1-create", "POST", "/threads", headers=developer, json=body)
    assert created.status_code == 200
    thread_id = created.json()["thread_id"]
    calls = [
        ("a1-read", "GET", f"/threads/{thread_id}", viewer, 200),
        ("a1-denied", "DELETE", f"/threads/{thread_id}", viewer, 403),
        ("a1-bad-bearer", "GET", f"/threads/{thread_id}", bearer, 401),
        ("a1-no-key", "POST", "/threads", {}, 401),
        ("a1-delete", "DELETE", f"/threads/{thread_id}", developer, 204),
        ("a1-probe", "GET", "/ok", {}, 200),
    ]  # fmt: skip
    for request_id, method, path, headers, status in calls:
        response = _call(site, request_id, method, path, headers=headers)
        assert response.status_code == status, (request_id, response.text)

    raw, records = _export(site)
    expected = {
        "a1-create": ("threads.create", "success", "acme", "developer"),
        "a1-read": ("threads.read", "success", "acme", "viewer"),
        "a1-denied": ("threads.delete", "denied", "acme", "viewer"),
        "a1-bad-bearer": ("threads.read", "failure", None, None),
        "a1-no-key": ("threads.create", "failure", None, None),
        "a1-delete": ("threads.delete", "success", "acme", "developer"),
    }
    assert "a1-probe" not in records
    for request_id, (action, outcome, tenant, role) in expected.items():
        [record] = records[request_id]  # exactly one each
        assert (record["action"], record["outcome"], record["tenant_id"]) == (
            action,
            outcome,
            tenant,
        )
        assert (record["credential_id"] is not None) == (role is not None)
        assert record["client_ip"] == "127.0.0.1" and record["time"].endswith("+00:00")
    assert records["a1-read"][0]["object_ids"] == {"thread_id": thread_id}

    server_log = "\n".join(p.log() for p in site.deployment.processes)
    for secret in (site.keys["developer"], site.keys["viewer"], BEARER, AES_KEY, EMAIL):
        assert secret not in raw, secret
        assert secret not in server_log, secret
    verified = site.cli("audit", "verify")
    assert verified.returncode == 0 and "chain intact" in verified.stdout, verified.stderr
