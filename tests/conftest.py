"""Options and fixtures shared by every test directory."""

import os
from collections.abc import AsyncIterator

import pytest

from garrison.broker.memory import MemoryBroker
from tests.support.topology import TOPOLOGIES


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--topology",
        default=os.environ.get("GARRISON_TEST_TOPOLOGIES", ",".join(TOPOLOGIES)),
        help="comma-separated deployments the end-to-end suite runs against: "
        + ", ".join(TOPOLOGIES),
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # The shared end-to-end server is parametrized by topology: every e2e test runs
    # unchanged against each deployment.
    if "topology" in metafunc.fixturenames:
        chosen = [t.strip() for t in metafunc.config.getoption("topology").split(",") if t.strip()]
        unknown = set(chosen) - set(TOPOLOGIES)
        if unknown:
            raise pytest.UsageError(
                f"unknown --topology {sorted(unknown)}; choose from {TOPOLOGIES}"
            )
        metafunc.parametrize("topology", chosen, scope="session")


@pytest.fixture
async def memory_broker() -> AsyncIterator[MemoryBroker]:
    """The in-process broker, for tests that drive a worker or an executor directly."""
    memory = MemoryBroker(retention_seconds=60, max_events_per_run=10_000)
    await memory.start()
    yield memory
    await memory.close()
