"""The GitHub Actions pipeline: actionlint (with shellcheck on run: blocks) and the
workflow JSON schema."""

from pathlib import Path

import yaml

from tests.deploy.conftest import DEPLOY, check, run, tool

PIPELINE = DEPLOY / "ci" / "pipeline.yml"


def test_actionlint() -> None:
    check(tool("actionlint"), "-shellcheck", tool("shellcheck"), str(PIPELINE))


def test_workflow_schema() -> None:
    check(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(PIPELINE))


def test_validators_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(PIPELINE.read_text().replace("needs: [test]", "needs: [tset]"))
    assert run(tool("actionlint"), str(broken)).returncode != 0
    broken.write_text(PIPELINE.read_text().replace("    branches: [main]", "    branch: [main]"))
    assert (
        run(
            tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)
        ).returncode
        != 0
    )


def test_pipeline_stages() -> None:
    jobs = yaml.safe_load(PIPELINE.read_text())["jobs"]
    assert {"postgres", "redis"} <= set(jobs["test"]["services"])
    assert jobs["production"]["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert jobs["staging"]["needs"] == ["image"]
    steps = " ".join(str(s) for s in jobs["image"]["steps"])
    assert "trivy" in steps and "linux/amd64,linux/arm64" in steps
    assert "canary-analysis.sh" in str(jobs["production"]["steps"])
