"""Health, readiness, info, docs, request ids, CORS, and the route table itself."""

import uuid

import httpx
import pytest

# Every endpoint of the LangGraph Server API tables (assistants, threads, runs, crons, store)
# that Garrison serves, as (method, OpenAPI path).
EXPECTED_ROUTES = [
    ("post", "/assistants"),
    ("post", "/assistants/search"),
    ("post", "/assistants/count"),
    ("get", "/assistants/{assistant_id}"),
    ("patch", "/assistants/{assistant_id}"),
    ("delete", "/assistants/{assistant_id}"),
    ("get", "/assistants/{assistant_id}/graph"),
    ("get", "/assistants/{assistant_id}/schemas"),
    ("get", "/assistants/{assistant_id}/subgraphs"),
    ("get", "/assistants/{assistant_id}/subgraphs/{namespace}"),
    ("post", "/assistants/{assistant_id}/versions"),
    ("post", "/assistants/{assistant_id}/latest"),
    ("post", "/threads"),
    ("post", "/threads/search"),
    ("post", "/threads/count"),
    ("post", "/threads/prune"),
    ("get", "/threads/{thread_id}"),
    ("patch", "/threads/{thread_id}"),
    ("delete", "/threads/{thread_id}"),
    ("post", "/threads/{thread_id}/copy"),
    ("get", "/threads/{thread_id}/state"),
    ("get", "/threads/{thread_id}/state/{checkpoint_id}"),
    ("post", "/threads/{thread_id}/state/checkpoint"),
    ("post", "/threads/{thread_id}/state"),
    ("get", "/threads/{thread_id}/history"),
    ("post", "/threads/{thread_id}/history"),
    ("get", "/threads/{thread_id}/stream"),
    ("post", "/threads/{thread_id}/runs"),
    ("post", "/runs"),
    ("post", "/runs/batch"),
    ("post", "/threads/{thread_id}/runs/stream"),
    ("post", "/runs/stream"),
    ("post", "/threads/{thread_id}/runs/wait"),
    ("post", "/runs/wait"),
    ("get", "/threads/{thread_id}/runs"),
    ("get", "/threads/{thread_id}/runs/{run_id}"),
    ("delete", "/threads/{thread_id}/runs/{run_id}"),
    ("get", "/threads/{thread_id}/runs/{run_id}/join"),
    ("get", "/threads/{thread_id}/runs/{run_id}/stream"),
    ("post", "/threads/{thread_id}/runs/{run_id}/cancel"),
    ("post", "/runs/cancel"),
    ("post", "/threads/{thread_id}/runs/crons"),
    ("post", "/runs/crons"),
    ("post", "/runs/crons/search"),
    ("post", "/runs/crons/count"),
    ("get", "/runs/crons/{cron_id}"),
    ("patch", "/runs/crons/{cron_id}"),
    ("delete", "/runs/crons/{cron_id}"),
    ("put", "/store/items"),
    ("get", "/store/items"),
    ("delete", "/store/items"),
    ("post", "/store/items/search"),
    ("post", "/store/namespaces"),
    ("get", "/ok"),
    ("get", "/info"),
    ("get", "/health"),
    ("get", "/ready"),
]


async def test_every_api_route_is_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    served = {(method, path) for path, ops in document["paths"].items() for method in ops}
    missing = [route for route in EXPECTED_ROUTES if route not in served]
    assert missing == []


async def test_docs_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/docs")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]


async def test_health_probes(http: httpx.AsyncClient) -> None:
    assert (await http.get("/ok")).json() == {"ok": True}
    assert (await http.get("/")).json() == {"ok": True}
    checked = (await http.get("/ok", params={"check_db": 1})).json()
    assert checked == {"ok": True, "services": {"database": "healthy"}}
    assert (await http.get("/health")).json() == {"status": "ok"}
    assert (await http.get("/ready")).json() == {"status": "ready"}


async def test_info(http: httpx.AsyncClient) -> None:
    info = (await http.get("/info")).json()
    assert info["flags"]["assistants"] is True and info["flags"]["crons"] is True
    assert "echo" in info["graphs"] and info["version"]


async def test_request_ids_are_echoed_or_made(http: httpx.AsyncClient) -> None:
    given = await http.get("/ok", headers={"x-request-id": "req-123"})
    assert given.headers["x-request-id"] == "req-123"
    made = await http.get("/ok", headers={"x-request-id": "bad id with spaces"})
    assert uuid.UUID(made.headers["x-request-id"])


async def test_cors_exposes_the_headers_the_sdk_reads(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/assistants/search", json={}, headers={"Origin": "https://ui.example.com"}
    )
    exposed = response.headers["access-control-expose-headers"].lower()
    for header in ("x-pagination-total", "x-pagination-next", "content-location", "location"):
        assert header in exposed
    preflight = await http.options(
        "/threads",
        headers={
            "Origin": "https://ui.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )
    assert preflight.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/no/such/route", 404), ("put", "/threads", 405), ("get", "/runs/cancel", 405)],
)
async def test_unknown_routes_answer_json(
    http: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await http.request(method, path)
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)
