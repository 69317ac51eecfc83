"""Options shared by every test directory."""

import os

import pytest

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
