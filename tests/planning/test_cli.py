"""`garrison plan`, `garrison plan cost` and argument errors, through the real CLI."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from garrison.cli import app

runner = CliRunner()


def test_plan_prints_tables_and_assumptions() -> None:
    result = runner.invoke(app, ["plan", "--daily-active-users", "5000"])
    assert result.exit_code == 0, result.output
    for text in ("API", "workers", "PostgreSQL", "Redis", "max_connections", "Assumptions"):
        assert text in result.output
    assert "reference" in result.output  # names the shipped profile and its machine


def test_plan_json_and_helm_values(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    result = runner.invoke(app, ["plan", "--format", "json", "--emit-helm-values", str(values)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["worker"]["replicas"] >= 2
    helm = yaml.safe_load(values.read_text())
    assert helm == data["helm_values"]


def test_plan_with_a_profile_file(tmp_path: Path) -> None:
    from garrison.planning.profile import reference_profile

    path = tmp_path / "p.json"
    reference_profile().save(path)
    result = runner.invoke(app, ["plan", "--profile", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["profile_source"] == str(path)


def test_cost_for_each_provider() -> None:
    for provider in ("aws", "azure", "gcp"):
        result = runner.invoke(app, ["plan", "cost", "--provider", provider, "--format", "json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["provider"] == provider
        assert data["total_with_spot"] < data["total_on_demand"]
        assert set(data["lines"]) >= {"compute_on_demand", "database", "storage", "network"}


def test_cost_table_and_plot(tmp_path: Path) -> None:
    png = tmp_path / "cost.png"
    result = runner.invoke(
        app,
        ["plan", "--daily-active-users", "2000", "cost", "--provider", "gcp", "--plot", str(png)],
    )
    assert result.exit_code == 0, result.output
    assert "total, on-demand" in result.output and "spot savings" in result.output
    assert "Prices:" in result.output  # the table's source is printed with the plan's assumptions
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fails_cleanly(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    _fails_cleanly(["plan", "--peak-concurrency", "2"], "--peak-concurrency must be in (0, 1]")
    _fails_cleanly(["plan", "--profile", str(tmp_path / "nope.json")], "cannot read profile")
    (tmp_path / "bad.json").write_text("[]")
    _fails_cleanly(["plan", "--profile", str(tmp_path / "bad.json")], "not a profile")
    _fails_cleanly(["plan", "cost", "--provider", "ibm"], "unknown provider")
    missing_dir = tmp_path / "no" / "values.yaml"
    _fails_cleanly(["plan", "--emit-helm-values", str(missing_dir)], "cannot write")
    _fails_cleanly(["plan", "cost", "--provider", "aws", "--spot-share", "3"], "--spot-share")
    _fails_cleanly(["plan", "--daily-active-users", "many"], "Invalid value")
    _fails_cleanly(["bench", "profile", "--topology", "cloud"], "unknown topology")
    _fails_cleanly(["bench", "profile", "--config", str(tmp_path / "x.json")], "not found")
    _fails_cleanly(["bench", "profile", "--graph", "other"], "the only graph is 'echo'")
    unreachable = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1
    _fails_cleanly(["bench", "profile", "--postgres-url", unreachable], "profile failed")
