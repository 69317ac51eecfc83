"""`garrison audit verify | export` on an embedded data directory."""

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from garrison.cli import app
from garrison.security.audit import AuditEvent
from garrison.storage.sqlite import SqliteStorage
from tests.support.server import PROJECT

NOW = datetime.now(UTC)


@pytest.fixture
async def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GARRISON_DATA_DIR", str(tmp_path))
    storage = await SqliteStorage.open(tmp_path / "garrison.sqlite")
    for n, age in enumerate([3, 2, 0]):
        await storage.audit.append(
            AuditEvent(
                time=NOW - timedelta(days=age), request_id=f"r{n}", actor="alice",
                credential_id=None, tenant_id="t", action="threads.delete",
                resource="/threads/{thread_id}", object_ids={"thread_id": f"th{n}"},
            )
        )  # fmt: skip
    await storage.close()
    return tmp_path


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["audit", *args, "--config", str(PROJECT)])
    return result.exit_code, result.stdout, result.stderr


def test_verify_passes_then_names_the_edited_record(data_dir: Path) -> None:
    code, out, _ = _cli("verify")
    assert code == 0 and "3 records" in out
    with sqlite3.connect(data_dir / "garrison.sqlite") as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    code, _, err = _cli("verify")
    assert code == 1 and "record 2" in err and "edited" in err


def test_export_writes_json_lines_since_a_time(data_dir: Path) -> None:
    since = (NOW - timedelta(days=2, hours=1)).strftime("%Y-%m-%dT%H:%M")
    code, out, err = _cli("export", "--since", since, "--format", "jsonl")
    assert code == 0 and "exported 2 records" in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["seq"] for line in lines] == [2, 3]
    assert lines[0]["object_ids"] == {"thread_id": "th1"} and len(lines[0]["hash"]) == 64


def test_export_refuses_a_bad_date(data_dir: Path) -> None:
    code, _, err = _cli("export", "--since", "yesterday")
    assert code == 2 and "ISO" in err
