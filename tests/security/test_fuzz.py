"""S1: Schemathesis fuzzes the whole OpenAPI of a real server on loopback.

Every operation gets positive and negative cases (stateless), then a state machine chains
operations along the links the OpenAPI document declares (stateful: create a thread, then
read, patch, run and delete *that* thread). A case fails on a 5xx (`not_a_server_error`), on
a response the document does not describe (`response_schema_conformance`) or when data the
document forbids is accepted (`negative_data_rejection`). No operation is excluded.

The server runs in `api_key` mode and the fuzzer holds a key of role `user` (a normal
caller); `GARRISON_FUZZ_ROLES=user,developer` also fuzzes what only developers may call
(crons, the store, assistant changes), which a user only ever sees refused.
`GARRISON_FUZZ_EXAMPLES` sets the examples per operation: the default is the short profile
`make test` runs (about 1,200 cases); `make fuzz` runs the long one.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import negative_data_rejection, response_schema_conformance

from tests.support.server import GarrisonProcess

EXAMPLES = int(os.environ.get("GARRISON_FUZZ_EXAMPLES", "20"))
# One test item runs a whole profile: the per-test timeout grows with it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(max(300, EXAMPLES * 15))]
ROLES = [r.strip() for r in os.environ.get("GARRISON_FUZZ_ROLES", "user").split(",") if r.strip()]
SCENARIOS = max(10, EXAMPLES // 2)  # stateful scenarios, each up to MAX_STEPS calls
MAX_STEPS = 10
# Generous: a busy CI machine must not turn a slow answer into a flaky failure.
REQUEST_TIMEOUT = 30.0
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    response_schema_conformance,
    negative_data_rejection,
]
GRAPHS_DIR = Path(__file__).resolve().parents[1] / "e2e" / "project" / "graphs"
# The e2e graphs minus `blocking` and `steps`: they sleep for as long as their input says, so
# a fuzzed `/runs/wait` would measure the fuzzer's patience, not the server.
FUZZ_GRAPHS = {
    "echo": "graph",
    "approval": "graph",
    "failing": "graph",
    "nested": "graph",
    "configured": "make_graph",
    "memory": "graph",
}


_KEYS_CREATE = (sys.executable, "-m", "garrison", "keys", "create")


@dataclass
class FuzzTarget:
    url: str
    role: str
    # Sent with every fuzzed request: the one place the fuzzer's credential is set.
    headers: dict[str, str]
    cases: int = 0


def _project(directory: Path) -> Path:
    config = directory / "langgraph.json"
    graphs = {name: f"{GRAPHS_DIR / name}.py:{attr}" for name, attr in FUZZ_GRAPHS.items()}
    config.write_text(json.dumps({"dependencies": [str(GRAPHS_DIR)], "graphs": graphs}))
    return config


def _api_key(role: str, config: Path, env: dict[str, str]) -> str:
    """A fresh API key, created as an operator does (`garrison keys create`)."""
    created = subprocess.run(
        [*_KEYS_CREATE, "--tenant", "fuzz", "--role", role, "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return created.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module", params=ROLES)
def fuzz_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzTarget]:
    role = str(request.param)
    data_dir = tmp_path_factory.mktemp(f"garrison-fuzz-{role}")
    config = _project(data_dir)
    env = {"GARRISON_AUTH_MODE": "api_key", "GARRISON_DATA_DIR": str(data_dir)}
    headers = {"x-api-key": _api_key(role, config, env)}
    process = GarrisonProcess(data_dir, config=config, env=env).start()
    target = FuzzTarget(process.url, role, headers)
    try:
        yield target
    finally:
        process.stop()
        capture = request.config.pluginmanager.getplugin("capturemanager")
        assert capture is not None
        with capture.global_and_fixture_disabled():
            print(f"\nS1 fuzz as {role}: {target.cases} cases ({EXAMPLES} per operation)")


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_target: FuzzTarget) -> Any:
    return schemathesis.openapi.from_url(
        f"{fuzz_target.url}/openapi.json", headers=fuzz_target.headers, timeout=REQUEST_TIMEOUT
    )


def _fuzz_operation(operation: Any, target: FuzzTarget) -> None:
    # Schemathesis' pytest wrapper (`schema.parametrize()`) breaks on pytest 9
    # (`Function._nodeid`), so each operation gets a plain Hypothesis test.
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: schemathesis.Case[Any]) -> None:
        target.cases += 1
        case.call_and_validate(headers=target.headers, checks=CHECKS, timeout=REQUEST_TIMEOUT)

    fuzz()


def _describe(exc: BaseException) -> str:
    # Schemathesis' failure groups describe themselves; others (e.g. Hypothesis' flaky
    # failures around a timeout) only say what went wrong in their sub-exceptions.
    if isinstance(exc, FailureGroup) or not isinstance(exc, BaseExceptionGroup):
        return f"{exc}"
    return "\n".join([str(exc)] + [f"{type(e).__name__}: {_describe(e)}" for e in exc.exceptions])


def test_every_operation_survives_fuzzing(fuzz_schema: Any, fuzz_target: FuzzTarget) -> None:
    failures: dict[str, str] = {}
    for loaded in fuzz_schema.get_all_operations():
        operation = loaded.ok()
        try:
            _fuzz_operation(operation, fuzz_target)
        except (FailureGroup, Exception) as exc:  # report every operation's failures at once
            failures[operation.label] = _describe(exc)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def test_linked_operations_survive_stateful_fuzzing(
    fuzz_schema: Any, fuzz_target: FuzzTarget
) -> None:
    # Before `as_state_machine()`, which adds the links Schemathesis infers on its own.
    assert fuzz_schema.statistic.transitions.total >= 40, "the OpenAPI document lost its links"
    machine = fuzz_schema.as_state_machine()

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            fuzz_target.cases += 1
            return {"headers": fuzz_target.headers, "timeout": REQUEST_TIMEOUT}

        def validate_response(
            self, response: Any, case: schemathesis.Case[Any], *args: Any, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, headers=fuzz_target.headers)

    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=MAX_STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        ),
    )


# What earlier fuzz runs found, replayed on every run whatever Hypothesis generates.
FOUND = [
    # Integers past 64 bits reached orjson/SQLite: 500.
    ("POST", "/threads", {"metadata": {"n": 2**64}}, 422),
    ("POST", "/threads/search", {"offset": 25905529312337457152}, 422),
    # A TTL of 5e16 minutes overflowed `datetime`: 500.
    ("POST", "/threads", {"ttl": {"ttl": 5.2e16, "strategy": "delete"}}, 422),
    # Lax coercion accepted what the document forbids (`false` as an offset, "10" as a limit).
    ("POST", "/threads/search", {"offset": False}, 422),
    ("POST", "/threads/search", {"limit": "10"}, 422),
    # An empty extract path put the thread inside itself: a cycle orjson refused, 500.
    ("POST", "/threads/search", {"extract": {"all": ""}}, 200),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), FOUND)
def test_fuzz_findings_stay_fixed(
    fuzz_target: FuzzTarget, method: str, path: str, body: dict[str, Any], status: int
) -> None:
    with httpx.Client(base_url=fuzz_target.url, headers=fuzz_target.headers) as client:
        client.post("/threads", json={})  # something for searches to find
        response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
