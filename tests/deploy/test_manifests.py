"""Rendered Kubernetes objects through real validators: helm lint, kubernetes-validate
(strict), the strict CRD schemas, yamllint and checkov."""

import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import (
    CHART,
    CRD_SCHEMAS,
    DEPLOY,
    HELM_VALUES,
    K8S_VERSION,
    OVERLAYS,
    ROOT,
    check,
    run,
    tool,
)

RENDERS = [f"helm-{name}" for name in HELM_VALUES] + list(OVERLAYS)
CHECKOV_CONFIG = DEPLOY / "checkov.yaml"


def kubernetes_validate(text: str) -> "tuple[int, str]":
    result = run(
        tool("kubernetes-validate"), "--strict", "--quiet", "-k", K8S_VERSION, "-", stdin=text
    )
    return result.returncode, result.stdout + result.stderr


def validate_crds(text: str) -> "tuple[int, str]":
    script = str(DEPLOY / "tools" / "validate_crds.py")
    result = run(tool("python"), script, str(CRD_SCHEMAS), "-", stdin=text)
    return result.returncode, result.stdout + result.stderr


def test_helm_lint_strict() -> None:
    for values in HELM_VALUES.values():
        args = ["-f", str(values)] if values else []
        check(tool("helm"), "lint", "--strict", str(CHART), *args)


@pytest.mark.parametrize("render", RENDERS)
def test_rendered_objects_are_valid_kubernetes(render: str, all_renders: dict[str, str]) -> None:
    code, output = kubernetes_validate(all_renders[render])
    assert code == 0, output


@pytest.mark.parametrize("render", ["helm-production", "helm-canary", "helm-servicemonitor"])
def test_custom_resources_match_their_crd_schemas(render: str, all_renders: dict[str, str]) -> None:
    code, output = validate_crds(all_renders[render])
    assert code == 0, output


def test_validators_reject_broken_objects(helm_renders: dict[str, str]) -> None:
    # Negative controls: the checks above must be able to fail.
    typo = helm_renders["defaults"].replace("containerPort:", "containerPrt:", 1)
    assert kubernetes_validate(typo)[0] != 0
    canary = helm_renders["canary"].replace("setWeight: 10", 'setWeight: "ten"', 1)
    code, output = validate_crds(canary)
    assert code != 0 and "'ten' is not of type 'integer'" in output
    assert validate_crds(helm_renders["minimal"])[0] != 0, "no custom resource must not pass"


def test_values_schema_rejects_bad_values() -> None:
    result = run(tool("helm"), "template", "g", str(CHART), "--set", "api.replicaCount=two")
    assert result.returncode != 0 and "replicaCount" in result.stderr
    result = run(tool("helm"), "template", "g", str(CHART), "--set", "image.tag=latest")
    assert result.returncode != 0


def test_yamllint() -> None:
    check(tool("yamllint"), "-s", "-c", str(ROOT / ".yamllint.yaml"), "deploy")


def test_yamllint_catches_duplicate_keys(tmp_path: Path) -> None:
    broken = tmp_path / "dup.yaml"
    broken.write_text("a: 1\na: 2\n")
    assert run(tool("yamllint"), "-s", "-c", str(ROOT / ".yamllint.yaml"), str(broken)).returncode


@pytest.mark.parametrize(
    ("framework", "directory"), [("helm", "deploy/helm"), ("kustomize", "deploy/k8s")]
)
def test_checkov(framework: str, directory: str) -> None:
    out = check(
        tool("checkov"),
        *("-d", directory, "--framework", framework, "--config-file", str(CHECKOV_CONFIG)),
        *("--skip-download", "--compact", "--quiet"),
    )
    # Guard against checkov's vacuous pass (no runner, chart failed to render).
    assert "Passed checks" in out, out


def test_kustomize_rejects_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resourcse: [../x]\n")
    assert run(tool("kubectl"), "kustomize", str(tmp_path)).returncode != 0


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
