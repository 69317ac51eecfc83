"""`garrison plan spot` end to end against moto's EC2 server (never the real cloud).

moto serves real instance type data (vCPUs, memory, architectures, zones) and a flat
spot price for every pool, so these tests check the plumbing and the output; the ranking
arithmetic is in test_spot.py. Pagination, which moto does not do, is in test_spot_prices.py.
"""

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from garrison.cli import app

runner = CliRunner()
TYPES = "m7i.large,c7i.xlarge,r7i.large,m7g.large"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake keys only; the machine's own AWS config and instance metadata stay out."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _spot(moto_url: str, *extra: str, plan: tuple[str, ...] = ()) -> Any:
    args = ["plan", *plan, "spot", "--region", "us-east-1", "--instance-types", TYPES]
    return runner.invoke(app, [*args, "--endpoint-url", moto_url, *extra])


def _json(moto_url: str, *plan: str) -> dict[str, Any]:
    result = _spot(moto_url, "--format", "json", plan=plan)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def test_table_ranks_types_and_prints_mix_and_assumptions(moto_url: str) -> None:
    result = _spot(moto_url, "--hours", "6")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("Spot Linux/UNIX in us-east-1", "last 6 h", "$/vCPU-h", "$/GiB-h", "nodes"):
        assert text in out
    for name in TYPES.split(","):
        assert name in out
    assert "Suggested spot mix" in out and "plan needs" in out
    assert "Assumptions" in out and "time-weighted" in out and "profile: reference" in out


def test_json_uses_ec2_sizes_and_covers_the_plan(moto_url: str) -> None:
    data = _json(moto_url)
    assert data["region"] == "us-east-1"
    rows = {r["instance_type"]: r for r in data["ranking"]}
    assert set(rows) == set(TYPES.split(","))
    # Sizes come from DescribeInstanceTypes, not from a table of ours.
    assert (rows["m7i.large"]["vcpus"], rows["m7i.large"]["memory_gib"]) == (2, 8)
    assert (rows["c7i.xlarge"]["vcpus"], rows["c7i.xlarge"]["memory_gib"]) == (4, 8)
    assert rows["r7i.large"]["memory_gib"] == 16
    assert rows["m7g.large"]["architecture"] == "arm64"
    for row in rows.values():
        assert row["zones"] >= 2  # priced in every zone moto offers the type in
        assert row["per_vcpu_hour"] == pytest.approx(row["average_hour"] / row["vcpus"])
        assert row["per_gib_hour"] == pytest.approx(row["average_hour"] / row["memory_gib"])
    costs = [r["cover_cost_hour"] for r in data["ranking"]]
    assert costs == sorted(costs)
    # moto prices every pool alike, so the type with most capacity per dollar for this
    # CPU-heavy plan wins: 4 vCPU for the price of 2.
    assert data["ranking"][0]["instance_type"] == "c7i.xlarge"
    mix, demand = data["mix"], data["demand"]
    assert mix["vcpus"] >= demand["vcpus"] and mix["memory_gib"] >= demand["memory_gib"]
    assert len(mix["zones"]) >= 2
    assert len({p["architecture"] for p in mix["pools"]}) == 1
    assert data["assumptions"]


def test_workload_flags_change_the_node_count(moto_url: str) -> None:
    small = _json(moto_url)
    large = _json(moto_url, "--daily-active-users", "300000")
    assert large["demand"]["vcpus"] > 5 * small["demand"]["vcpus"]
    assert large["mix"]["instances"] > small["mix"]["instances"]
    assert large["mix"]["vcpus"] >= large["demand"]["vcpus"]


def _fails_cleanly(result: Any, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_unknown_instance_type(moto_url: str) -> None:
    args = ["plan", "spot", "--region", "us-east-1", "--instance-types", "m7i.large,m7i.bogus"]
    result = runner.invoke(app, [*args, "--endpoint-url", moto_url])
    _fails_cleanly(result, "unknown instance type")
    assert "m7i.bogus" in result.output


def test_unknown_region(moto_url: str) -> None:
    args = ["plan", "spot", "--region", "mars-1", "--instance-types", "m7i.large"]
    _fails_cleanly(runner.invoke(app, [*args, "--endpoint-url", moto_url]), "unknown AWS region")


def test_missing_credentials(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    _fails_cleanly(_spot(moto_url), "no usable AWS credentials")


def test_unreachable_endpoint() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    _fails_cleanly(_spot(url), "cannot reach")


def test_bad_hours(moto_url: str) -> None:
    _fails_cleanly(_spot(moto_url, "--hours", "0"), "--hours")
    _fails_cleanly(_spot(moto_url, "--hours", "5000"), "AWS keeps 90 days")


def test_without_boto3_says_what_to_install(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import boto3` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, "boto3", None)
    result = _spot(moto_url)
    _fails_cleanly(result, "needs boto3")
    assert "pip install 'garrison[spot]'" in result.output
