"""deploy/scripts: shellcheck, and the canary script's decisions against a fake Prometheus
and a fake kubectl that records what it was asked to do."""

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.deploy.conftest import DEPLOY, check, run, tool

SCRIPT = DEPLOY / "scripts" / "canary-analysis.sh"


class FakePrometheus(ThreadingHTTPServer):
    """Answers /api/v1/query: `error` for the 5xx-ratio query, `p95` for the latency one;
    None gives an empty result, "down" a 503."""

    error: str | None = "0"
    p95: str | None = "0.1"
    queries: list[str]

    def answer(self, query: str) -> tuple[int, dict[str, object]]:
        self.queries.append(query)
        value = self.p95 if "histogram_quantile(0.95" in query else self.error
        if value == "down":
            return 503, {"status": "error"}
        result = [] if value is None else [{"metric": {}, "value": [1700000000, value]}]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}


class Handler(BaseHTTPRequestHandler):
    server: FakePrometheus

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        query = parse_qs(self.rfile.read(length).decode())["query"][0]
        assert self.path == "/api/v1/query"
        status, body = self.server.answer(query)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    server = FakePrometheus(("127.0.0.1", 0), Handler)
    server.queries = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def kubectl_log(tmp_path: Path) -> Path:
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$*" >> "$KUBECTL_LOG"\n')
    fake.chmod(0o755)
    return tmp_path / "kubectl.log"


def analyse(
    prometheus: FakePrometheus, kubectl_log: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{kubectl_log.parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "KUBECTL_LOG": str(kubectl_log),
    }
    url = f"http://127.0.0.1:{prometheus.server_address[1]}"
    command = [str(SCRIPT), "--prometheus", url, "--namespace", "garrison-staging"]
    command += ["--checks", "2", "--interval", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def rollbacks(kubectl_log: Path) -> list[str]:
    return kubectl_log.read_text().splitlines() if kubectl_log.exists() else []


def test_shellcheck() -> None:
    check(tool("shellcheck"), "--severity=style", *map(str, (DEPLOY / "scripts").glob("*.sh")))


def test_shellcheck_catches_unquoted_expansion(tmp_path: Path) -> None:
    broken = tmp_path / "bad.sh"
    broken.write_text("#!/bin/bash\nfor f in $(ls *.txt); do cd $f; done\n")
    assert run(tool("shellcheck"), str(broken)).returncode != 0


@pytest.mark.parametrize(
    ("error", "p95"), [("0.01", "0.4"), (None, None), ("NaN", "NaN"), ("0.05", "2")]
)
def test_healthy_canary_is_kept(
    prometheus: FakePrometheus, kubectl_log: Path, error: str | None, p95: str | None
) -> None:
    prometheus.error, prometheus.p95 = error, p95
    result = analyse(prometheus, kubectl_log)
    assert result.returncode == 0, result.stderr
    assert rollbacks(kubectl_log) == []
    assert len(prometheus.queries) == 4  # both queries, both checks
    assert 'job="garrison-api",namespace="garrison-staging"' in prometheus.queries[0]


@pytest.mark.parametrize(
    ("error", "p95", "reason"), [("0.2", "0.4", "error ratio"), ("0.01", "3.5", "p95")]
)
def test_breach_rolls_the_deployment_back(
    prometheus: FakePrometheus, kubectl_log: Path, error: str, p95: str, reason: str
) -> None:
    prometheus.error, prometheus.p95 = error, p95
    result = analyse(prometheus, kubectl_log)
    assert result.returncode == 2 and reason in result.stderr
    assert rollbacks(kubectl_log) == [
        "rollout undo deployment/garrison-api --namespace garrison-staging"
    ]


def test_breach_aborts_an_argo_rollout(prometheus: FakePrometheus, kubectl_log: Path) -> None:
    prometheus.error = "0.5"
    result = analyse(
        prometheus, kubectl_log, "--rollout", "garrison-api", "--max-error-ratio", "0.1"
    )
    assert result.returncode == 2
    assert rollbacks(kubectl_log) == [
        "argo rollouts abort garrison-api --namespace garrison-staging"
    ]


def test_custom_thresholds(prometheus: FakePrometheus, kubectl_log: Path) -> None:
    prometheus.error, prometheus.p95 = "0.08", "1.5"
    assert analyse(prometheus, kubectl_log, "--max-error-ratio", "0.1").returncode == 0
    assert analyse(prometheus, kubectl_log, "--max-p95", "1").returncode == 2


def test_prometheus_down_fails_without_rollback(
    prometheus: FakePrometheus, kubectl_log: Path
) -> None:
    prometheus.error = "down"
    result = analyse(prometheus, kubectl_log)
    assert result.returncode == 1 and rollbacks(kubectl_log) == []
