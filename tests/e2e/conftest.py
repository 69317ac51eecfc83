"""A real Garrison deployment on loopback, driven by the official SDK and raw httpx.

The shared `server` runs every test against each topology in `--topology` (embedded SQLite;
PostgreSQL + Redis in one process; PostgreSQL + Redis split into API and worker processes
behind a round-robin proxy).
"""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.topology import Deployment, deploy

pytestmark = pytest.mark.e2e

# Short stream heartbeats let tests see them; small leases keep chaos out of these tests.
SERVER_ENV = {"GARRISON_WORKER_CONCURRENCY": "8", "GARRISON_STREAM_HEARTBEAT_SECONDS": "1"}


@pytest.fixture(scope="session")
def server(topology: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deploy(topology, tmp_path_factory.mktemp(f"garrison-{topology}"), env=SERVER_ENV) as d:
        yield d


@pytest.fixture
async def client(server: Deployment) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


@pytest.fixture
async def http(server: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as raw:
        yield raw


@pytest.fixture
def side_effects(tmp_path: Path) -> Path:
    return tmp_path / "side-effects.log"


@pytest.fixture
def semantic_store(server: Deployment) -> None:
    """For tests of semantic search: it needs `store.index`, which needs pgvector on
    PostgreSQL (the start-up error without it is tested in tests/contract)."""
    if not server.semantic_store:
        pytest.skip(f"pgvector is not installed on this PostgreSQL ({server.name} topology)")
