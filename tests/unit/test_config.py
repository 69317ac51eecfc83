"""Settings precedence and the langgraph.json / garrison.json loader."""

import json
import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from garrison.config.project import find_project_file, load_project, parse_project
from garrison.config.settings import Settings, WorkerSettings
from garrison.domain.errors import InvalidArgumentError


def test_graph_specs_as_strings_or_objects(tmp_path: Path) -> None:
    project = parse_project(
        {
            "graphs": {
                "a": "./agent.py:graph",
                "b": {"path": "pkg.mod:make", "description": "the b graph"},
            },
            "python_version": "3.12",  # image-build keys are accepted and ignored
            "dockerfile_lines": [],
        },
        tmp_path,
    )
    assert project.graphs["a"].path == "./agent.py:graph"
    assert project.graphs["b"].description == "the b graph"


@pytest.mark.parametrize(
    "graphs",
    [{}, {"a": "./no_attribute.py"}, {"a": 42}, {"a": {"description": "no path"}}],
)
def test_bad_graphs_are_refused_with_a_clear_message(tmp_path: Path, graphs: object) -> None:
    with pytest.raises(InvalidArgumentError, match="graphs"):
        parse_project({"graphs": graphs}, tmp_path)


def test_files_and_discovery(tmp_path: Path) -> None:
    assert find_project_file(tmp_path) is None
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {"a": "./a.py:g"}}))
    assert find_project_file(tmp_path) == tmp_path / "langgraph.json"
    (tmp_path / "garrison.json").write_text(json.dumps({"graphs": {"b": "./b.py:g"}}))
    assert find_project_file(tmp_path) == tmp_path / "garrison.json"
    assert load_project(tmp_path / "garrison.json").root == tmp_path.resolve()
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InvalidArgumentError, match="invalid JSON"):
        load_project(tmp_path / "broken.json")
    with pytest.raises(InvalidArgumentError, match="not found"):
        load_project(tmp_path / "missing.json")


def test_env_and_dependencies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / ".env").write_text("GARRISON_T_FROM_FILE=file\nGARRISON_T_KEPT=file\n")
    monkeypatch.setenv("GARRISON_T_KEPT", "already-set")
    monkeypatch.setattr(sys, "path", list(sys.path))
    project = parse_project(
        {"graphs": {"a": "./a.py:g"}, "env": ".env", "dependencies": ["./lib", "requests>=2"]},
        tmp_path,
    )
    project.apply_environment()
    assert os.environ["GARRISON_T_FROM_FILE"] == "file"
    assert os.environ["GARRISON_T_KEPT"] == "already-set"  # never overridden
    assert str((tmp_path / "lib").resolve()) in sys.path
    monkeypatch.delenv("GARRISON_T_FROM_FILE")


def test_garrison_keys_become_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GARRISON_WORKER_MAX_ATTEMPTS", "7")
    project = parse_project(
        {
            "graphs": {"a": "./a.py:g"},
            "worker": {"concurrency": 3, "max_attempts": 2},
            "server": {"port": 9000},
            "webhooks": {"url": {"disable_loopback": False, "require_https": True}},
        },
        tmp_path,
    )
    settings = Settings.load(project.settings_values(), {"server": {"port": 9100}})
    assert settings.worker.concurrency == 3  # from the file
    assert settings.worker.max_attempts == 7  # the environment beats the file
    assert settings.server.port == 9100  # the command line beats both
    assert settings.webhooks.allow_loopback and settings.webhooks.require_https


def test_disabling_webhooks_in_http(tmp_path: Path) -> None:
    project = parse_project(
        {"graphs": {"a": "./a.py:g"}, "http": {"disable_webhooks": True}}, tmp_path
    )
    assert not Settings.load(project.settings_values()).webhooks.enabled


def test_a_lease_must_outlive_two_heartbeats() -> None:
    with pytest.raises(ValidationError, match="lease"):
        WorkerSettings(lease_seconds=10, heartbeat_seconds=5)
