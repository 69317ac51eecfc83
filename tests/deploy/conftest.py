"""Shared helpers for the deployment-artifact tests: tool lookup and one render per session.

The validators come from `make tools` (./.tools, plus promtool/shellcheck from Debian); a
missing tool fails the test rather than skipping it.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SHARED = ROOT.parent / "shared"
CRD_SCHEMAS = SHARED / "schemas" / "k8s-crds"
TOOLS_BIN = ROOT / ".tools" / "bin"
CHART = DEPLOY / "helm" / "garrison"
HELM_VALUES = {
    "defaults": None,
    "production": CHART / "ci" / "production-values.yaml",
    "canary": CHART / "ci" / "canary-values.yaml",
    "servicemonitor": CHART / "ci" / "servicemonitor-values.yaml",
    "minimal": CHART / "ci" / "minimal-values.yaml",
}
OVERLAYS = ("dev", "staging", "prod")
K8S_VERSION = "1.30.0"


def tool(name: str) -> str:
    """Absolute path of a validator: ./.tools/bin first, then PATH. Fails when missing."""
    candidate = TOOLS_BIN / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run `make tools`")
    return found


def run(
    *command: str, stdin: str | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    # helm must be on PATH for checkov's helm runner (without it checkov passes vacuously).
    env = {**os.environ, "PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def check(*command: str, stdin: str | None = None, cwd: Path = ROOT) -> str:
    result = run(*command, stdin=stdin, cwd=cwd)
    assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render_chart(values: Path | None, *extra: str) -> str:
    args = ["-f", str(values)] if values else []
    return check(tool("helm"), "template", "garrison", str(CHART), "-n", "garrison", *args, *extra)


@pytest.fixture(scope="session")
def helm_renders() -> dict[str, str]:
    return {name: render_chart(values) for name, values in HELM_VALUES.items()}


@pytest.fixture(scope="session")
def kustomize_renders() -> dict[str, str]:
    kubectl = tool("kubectl")
    return {o: check(kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / o)) for o in OVERLAYS}


@pytest.fixture(scope="session")
def all_renders(helm_renders: dict[str, str], kustomize_renders: dict[str, str]) -> dict[str, str]:
    return {**{f"helm-{k}": v for k, v in helm_renders.items()}, **kustomize_renders}


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
