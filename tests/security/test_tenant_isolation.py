"""S2 (BOLA / tenant matrix) and S3 (no mass assignment), on SQLite and PostgreSQL.

Tenant A ("acme") owns an assistant, a thread with a finished run, a cron, a store item and
a checkpoint. Tenant B ("globex"), an admin of its own tenant, then calls every
authenticated route of the route table with A's ids: each call must answer 404 (object
routes) or leave A's objects out (list and search routes), and A's objects must be intact
afterwards. The cases are keyed by the route table, and a test fails when a route has no
case, so a new endpoint cannot ship without its isolation check.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from garrison.auth.route_policy import PUBLIC, classified_routes
from tests.support.secured import SecuredDeployment, secured

BACKENDS = ["embedded", "postgres"]


@dataclass(frozen=True)
class Owned:
    """Tenant A's objects."""

    assistant_id: str
    thread_id: str
    run_id: str
    cron_id: str
    checkpoint_id: str
    namespace: list[str]
    marker: str  # in A's metadata and store values, to spot leaks in listings


@dataclass(frozen=True)
class Probe:
    """One cross-tenant call: the path, the body or params, and how to judge the answer."""

    path: str
    body: Any = None
    params: dict[str, Any] | None = None
    # "404"; "409": a create naming A's id, refused as a conflict (ids are global, as in
    # LangGraph Server, so a clash says the id is taken, never whose it is or what it holds);
    # "copy": 409, LangGraph Server's answer to copying an unknown thread; "zero": a count
    # of 0; "hidden": 2xx whose body never mentions A's objects.
    expect: str = "404"


def _cases(a: Owned) -> dict[tuple[str, str], Probe]:
    t, r, asst, cron = a.thread_id, a.run_id, a.assistant_id, a.cron_id
    run_body = {"assistant_id": asst, "input": {"messages": []}}
    ns = ".".join(a.namespace)
    hidden_search = Probe("", {"limit": 100}, expect="hidden")
    return {
        ("POST", "/assistants"): Probe(
            "/assistants",
            {"graph_id": "echo", "assistant_id": asst, "if_exists": "do_nothing"},
            expect="409",
        ),
        ("POST", "/assistants/search"): Probe(
            "/assistants/search", hidden_search.body, expect="hidden"
        ),
        ("POST", "/assistants/count"): Probe(
            "/assistants/count", {"metadata": {"marker": a.marker}}, expect="zero"
        ),
        ("GET", "/assistants/{assistant_id}"): Probe(f"/assistants/{asst}"),
        ("PATCH", "/assistants/{assistant_id}"): Probe(
            f"/assistants/{asst}", {"metadata": {"x": 1}}
        ),
        ("DELETE", "/assistants/{assistant_id}"): Probe(f"/assistants/{asst}"),
        ("GET", "/assistants/{assistant_id}/graph"): Probe(f"/assistants/{asst}/graph"),
        ("GET", "/assistants/{assistant_id}/schemas"): Probe(f"/assistants/{asst}/schemas"),
        ("GET", "/assistants/{assistant_id}/subgraphs"): Probe(f"/assistants/{asst}/subgraphs"),
        ("GET", "/assistants/{assistant_id}/subgraphs/{namespace}"): Probe(
            f"/assistants/{asst}/subgraphs/x"
        ),
        ("POST", "/assistants/{assistant_id}/versions"): Probe(f"/assistants/{asst}/versions", {}),
        ("POST", "/assistants/{assistant_id}/latest"): Probe(
            f"/assistants/{asst}/latest", {"version": 1}
        ),
        ("POST", "/threads"): Probe(
            "/threads", {"thread_id": t, "if_exists": "do_nothing"}, expect="409"
        ),
        ("POST", "/threads/search"): Probe("/threads/search", hidden_search.body, expect="hidden"),
        ("POST", "/threads/count"): Probe(
            "/threads/count", {"metadata": {"marker": a.marker}}, expect="zero"
        ),
        ("POST", "/threads/prune"): Probe("/threads/prune", {"thread_ids": [t]}, expect="hidden"),
        ("GET", "/threads/{thread_id}"): Probe(f"/threads/{t}"),
        ("PATCH", "/threads/{thread_id}"): Probe(f"/threads/{t}", {"metadata": {"x": 1}}),
        ("DELETE", "/threads/{thread_id}"): Probe(f"/threads/{t}"),
        ("POST", "/threads/{thread_id}/copy"): Probe(f"/threads/{t}/copy", {}, expect="copy"),
        ("GET", "/threads/{thread_id}/state"): Probe(f"/threads/{t}/state"),
        ("POST", "/threads/{thread_id}/state"): Probe(
            f"/threads/{t}/state", {"values": {"messages": []}}
        ),
        ("POST", "/threads/{thread_id}/state/checkpoint"): Probe(
            f"/threads/{t}/state/checkpoint", {"checkpoint": {"checkpoint_id": a.checkpoint_id}}
        ),
        ("GET", "/threads/{thread_id}/state/{checkpoint_id}"): Probe(
            f"/threads/{t}/state/{a.checkpoint_id}"
        ),
        ("GET", "/threads/{thread_id}/history"): Probe(f"/threads/{t}/history"),
        ("POST", "/threads/{thread_id}/history"): Probe(f"/threads/{t}/history", {}),
        ("GET", "/threads/{thread_id}/stream"): Probe(f"/threads/{t}/stream"),
        ("POST", "/threads/{thread_id}/runs"): Probe(f"/threads/{t}/runs", run_body),
        ("POST", "/threads/{thread_id}/runs/stream"): Probe(f"/threads/{t}/runs/stream", run_body),
        ("POST", "/threads/{thread_id}/runs/wait"): Probe(f"/threads/{t}/runs/wait", run_body),
        ("POST", "/runs"): Probe("/runs", run_body),
        ("POST", "/runs/stream"): Probe("/runs/stream", run_body),
        ("POST", "/runs/wait"): Probe("/runs/wait", run_body),
        ("POST", "/runs/batch"): Probe("/runs/batch", [run_body]),
        ("GET", "/threads/{thread_id}/runs"): Probe(f"/threads/{t}/runs"),
        ("GET", "/threads/{thread_id}/runs/{run_id}"): Probe(f"/threads/{t}/runs/{r}"),
        ("DELETE", "/threads/{thread_id}/runs/{run_id}"): Probe(f"/threads/{t}/runs/{r}"),
        ("GET", "/threads/{thread_id}/runs/{run_id}/join"): Probe(f"/threads/{t}/runs/{r}/join"),
        ("GET", "/runs/{run_id}/join"): Probe(f"/runs/{r}/join"),
        ("GET", "/threads/{thread_id}/runs/{run_id}/stream"): Probe(
            f"/threads/{t}/runs/{r}/stream"
        ),
        ("GET", "/runs/{run_id}/stream"): Probe(f"/runs/{r}/stream"),
        ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"): Probe(
            f"/threads/{t}/runs/{r}/cancel", {}
        ),
        ("POST", "/runs/cancel"): Probe(
            # cancel_many answers 204 whether or not ids match, as for unknown ids
            "/runs/cancel",
            {"thread_id": t, "run_ids": [r]},
            expect="hidden",
        ),
        ("POST", "/threads/{thread_id}/runs/crons"): Probe(
            f"/threads/{t}/runs/crons", {"assistant_id": "echo", "schedule": "0 0 1 1 *"}
        ),
        ("POST", "/runs/crons"): Probe(
            "/runs/crons", {"assistant_id": asst, "schedule": "0 0 1 1 *"}
        ),
        ("POST", "/runs/crons/search"): Probe(
            "/runs/crons/search", hidden_search.body, expect="hidden"
        ),
        ("POST", "/runs/crons/count"): Probe(
            "/runs/crons/count", {"metadata": {"marker": a.marker}}, expect="zero"
        ),
        ("GET", "/runs/crons/{cron_id}"): Probe(f"/runs/crons/{cron}"),
        ("PATCH", "/runs/crons/{cron_id}"): Probe(f"/runs/crons/{cron}", {"enabled": False}),
        ("DELETE", "/runs/crons/{cron_id}"): Probe(f"/runs/crons/{cron}"),
        ("PUT", "/store/items"): Probe(
            "/store/items",
            {"namespace": a.namespace, "key": "k", "value": {"v": "B"}},
            expect="hidden",
        ),
        # B's own item at the same visible path (the PUT case wrote one), never A's
        ("GET", "/store/items"): Probe(
            "/store/items", params={"namespace": ns, "key": "k"}, expect="hidden"
        ),
        ("DELETE", "/store/items"): Probe(
            "/store/items", {"namespace": a.namespace, "key": "k"}, expect="hidden"
        ),
        ("POST", "/store/items/search"): Probe(
            "/store/items/search", {"namespace_prefix": a.namespace[:1]}, expect="hidden"
        ),
        ("POST", "/store/namespaces"): Probe("/store/namespaces", {}, expect="hidden"),
    }


def test_every_authenticated_route_has_an_isolation_case() -> None:
    fake = Owned("a", "t", "r", "c", "k", ["n"], "m")
    authenticated = {key for key, perm in classified_routes().items() if perm is not PUBLIC}
    missing = authenticated - set(_cases(fake))
    assert not missing, f"routes without a tenant-isolation case: {sorted(missing)}"


def _make_owned(site: SecuredDeployment) -> Owned:
    a = site.headers("a")
    marker = f"acme-{uuid.uuid4().hex[:8]}"

    def post(path: str, body: Any) -> Any:
        response = httpx.post(site.url + path, json=body, headers=a, timeout=60)
        assert response.is_success, (path, response.text)
        return response.json()

    assistant = post("/assistants", {"graph_id": "echo", "metadata": {"marker": marker}})
    thread = post("/threads", {"metadata": {"marker": marker}})
    t = thread["thread_id"]
    post(
        f"/threads/{t}/runs/wait",
        {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": marker}]}},
    )
    runs = httpx.get(f"{site.url}/threads/{t}/runs", headers=a, timeout=30).json()
    state = httpx.get(f"{site.url}/threads/{t}/state", headers=a, timeout=30).json()
    cron = post(
        f"/threads/{t}/runs/crons",
        {"assistant_id": "echo", "schedule": "0 0 1 1 *", "metadata": {"marker": marker}},
    )
    namespace = ["acme-docs", "shared"]
    put = httpx.put(
        site.url + "/store/items",
        json={"namespace": namespace, "key": "k", "value": {"v": marker}},
        headers=a,
        timeout=30,
    )
    assert put.status_code == 204, put.text
    return Owned(
        assistant["assistant_id"],
        t,
        runs[0]["run_id"],
        cron["cron_id"],
        state["checkpoint"]["checkpoint_id"],
        namespace,
        marker,
    )


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredDeployment]:
    with secured(request.param, tmp_path_factory.mktemp(f"tenants-{request.param}")) as deployment:
        deployment.create_key("a", "acme", "admin")
        deployment.create_key("b", "globex", "admin")
        yield deployment


def _judge(owned: Owned, probe: Probe, response: httpx.Response) -> str | None:
    """None when the answer keeps A's objects from B, else what went wrong."""
    if response.status_code >= 500:
        return f"server error {response.status_code}"
    text = response.text
    leaked = [v for v in (owned.marker, owned.thread_id, owned.run_id, owned.cron_id) if v in text]
    if probe.expect == "404":
        return (
            None
            if response.status_code == 404
            else f"expected 404, got {response.status_code}: {text[:200]}"
        )
    if probe.expect in ("409", "copy"):
        detail = response.json().get("detail", "") if response.status_code == 409 else ""
        wanted = "already exists" if probe.expect == "409" else "not found"
        if response.status_code == 409 and wanted in detail and owned.marker not in text:
            return None
        return f"expected a 409 ({wanted}), got {response.status_code}: {text[:200]}"
    if probe.expect == "zero":
        return None if response.is_success and response.json() == 0 else f"count saw A: {text}"
    return f"A's objects visible: {leaked}" if leaked else None


def test_tenant_b_cannot_reach_tenant_a(site: SecuredDeployment) -> None:
    owned = _make_owned(site)
    b = site.headers("b")
    failures = {}
    for (method, template), probe in _cases(owned).items():
        response = httpx.request(
            method,
            site.url + probe.path,
            json=probe.body,
            params=probe.params,
            headers=b,
            timeout=30,
        )
        problem = _judge(owned, probe, response)
        if problem:
            failures[f"{method} {template}"] = problem
    assert not failures, failures
    _assert_a_intact(site, owned)


def _assert_a_intact(site: SecuredDeployment, owned: Owned) -> None:
    a = site.headers("a")

    def get(path: str) -> httpx.Response:
        return httpx.get(site.url + path, headers=a, timeout=30)

    assert get(f"/assistants/{owned.assistant_id}").json()["metadata"] == {"marker": owned.marker}
    thread = get(f"/threads/{owned.thread_id}").json()
    assert thread["metadata"]["marker"] == owned.marker and "x" not in thread["metadata"]
    assert get(f"/threads/{owned.thread_id}/runs/{owned.run_id}").status_code == 200
    assert get(f"/runs/crons/{owned.cron_id}").json()["enabled"] is True
    item = httpx.get(
        site.url + "/store/items",
        params={"namespace": ".".join(owned.namespace), "key": "k"},
        headers=a,
        timeout=30,
    )
    assert item.json()["value"] == {"v": owned.marker}


def test_ownership_fields_from_clients_are_ignored(site: SecuredDeployment) -> None:
    """S3: `tenant_id`, `owner`, `user_id` in a body cannot move an object to another
    tenant or show up as server-side fields."""
    a, b = site.headers("a"), site.headers("b")
    forged = {"tenant_id": "globex", "owner": "mallory", "user_id": "mallory"}
    thread = httpx.post(
        site.url + "/threads", json={"metadata": {"marker": "s3"}, **forged}, headers=a, timeout=30
    )
    assert thread.status_code in (200, 422), thread.text
    if thread.status_code == 200:
        body = thread.json()
        assert "tenant_id" not in body and "owner" not in body
        assert (
            httpx.get(f"{site.url}/threads/{body['thread_id']}", headers=b, timeout=30).status_code
            == 404
        )
    made = httpx.post(
        site.url + "/assistants", json={"graph_id": "echo", **forged}, headers=a, timeout=30
    )
    assert made.status_code in (200, 422), made.text
    if made.status_code == 200:
        assistant = made.json()
        assert "tenant_id" not in assistant and "owner" not in assistant
        assert (
            httpx.get(
                f"{site.url}/assistants/{assistant['assistant_id']}", headers=b, timeout=30
            ).status_code
            == 404
        )


def _system_assistant(site: SecuredDeployment, graph_id: str) -> dict[str, Any]:
    found = httpx.post(
        site.url + "/assistants/search",
        json={"graph_id": graph_id, "metadata": {"created_by": "system"}},
        headers=site.headers("a"),
        timeout=30,
    )
    assert found.is_success, found.text
    (assistant,) = found.json()
    return dict(assistant)


def test_a_tenant_cannot_change_the_system_assistants_every_tenant_shares(
    site: SecuredDeployment,
) -> None:
    system = _system_assistant(site, "echo")
    path = f"/assistants/{system['assistant_id']}"
    writes = [
        ("PATCH", path, {"metadata": {"marker": "globex"}, "config": {"recursion_limit": 3}}),
        ("POST", f"{path}/latest", {"version": 1}),
        ("DELETE", path, None),
    ]
    for method, url, body in writes:
        response = httpx.request(
            method, site.url + url, json=body, headers=site.headers("b"), timeout=30
        )
        assert response.status_code == 403, (method, url, response.text)
        assert "shared by every tenant" in response.json()["detail"]
    assert _system_assistant(site, "echo") == system  # tenant A's view is untouched


def test_the_default_tenant_administers_the_system_assistants(site: SecuredDeployment) -> None:
    """What every caller is when authentication is off: LangGraph Server's behaviour."""
    site.create_key("operator", "default", "admin")
    system = _system_assistant(site, "echo")
    path = f"{site.url}/assistants/{system['assistant_id']}"
    operator = site.headers("operator")
    patched = httpx.patch(path, json={"metadata": {"tier": "gold"}}, headers=operator, timeout=30)
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == system["version"] + 1
    restored = httpx.post(
        f"{path}/latest", json={"version": system["version"]}, headers=operator, timeout=30
    )
    assert restored.status_code == 200, restored.text
    assert _system_assistant(site, "echo")["metadata"] == system["metadata"]
