"""JSON for graph values, and importing graphs named like langgraph.json names them."""

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.types import Interrupt, Send

from garrison import serde
from garrison.domain.errors import InvalidArgumentError
from garrison.runtime.loader import import_object


@dataclass
class Point:
    x: int


def test_langchain_and_langgraph_values_become_json() -> None:
    value = {
        "messages": [HumanMessage("hi", id="1"), AIMessage("yo", id="2")],
        "interrupt": Interrupt(value={"q": 1}, id="i"),
        "send": Send("node", {"a": 1}),
        "point": Point(3),
        "tags": {"x"},
        "blob": b"\x00\x01",
        "error": ValueError("bad"),
    }
    decoded = serde.loads(serde.dumps(value))
    assert decoded["messages"][0]["type"] == "human" and decoded["messages"][0]["content"] == "hi"
    assert decoded["interrupt"] == {"value": {"q": 1}, "id": "i", "response_schema": None}
    assert decoded["send"] == {"node": "node", "arg": {"a": 1}}
    assert decoded["point"] == {"x": 3}
    assert decoded["tags"] == ["x"] and decoded["blob"] == "AAE="
    assert decoded["error"] == {"error": "ValueError", "message": "bad"}


def test_unknown_objects_do_not_fail_a_run() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    assert serde.loads(serde.dumps({"o": Opaque()})) == {"o": "<opaque>"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    package = tmp_path / "agentpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("VALUE = 7\n")
    (package / "graph.py").write_text(
        "from __future__ import annotations\nfrom .helpers import VALUE\ngraph = VALUE\n"
    )
    (tmp_path / "loose.py").write_text("answer = 42\n")
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith(("agentpkg", "garrison_graphs.loose"))]:
        del sys.modules[name]


def test_loads_loose_files_and_package_modules(project: Path) -> None:
    assert import_object("./loose.py:answer", project) == 42
    # inside a package on sys.path: imported under its real name, relative imports work
    assert import_object("./agentpkg/graph.py:graph", project) == 7
    assert "agentpkg.graph" in sys.modules
    assert import_object("agentpkg.helpers:VALUE", project) == 7


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("./loose.py:missing", "no attribute"),
        ("./absent.py:x", "not found"),
        ("no_such_module_xyz:x", "cannot import"),
        ("justtext", "expected"),
    ],
)
def test_load_errors_are_clear(project: Path, reference: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        import_object(reference, project)
