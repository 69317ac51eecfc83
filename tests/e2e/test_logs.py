"""JSON logs of a real server: one object per line, with the ids of the request or run."""

import json
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk import get_client

from tests.support.server import GarrisonProcess

PROBES = {"/ok", "/health", "/ready", "/metrics"}


def _lines(process: GarrisonProcess) -> list[dict[str, Any]]:
    lines = [line for line in process.log().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        record = json.loads(line)  # every line is one JSON object, uvicorn's included
        assert isinstance(record, dict), line
        parsed.append(record)
    return parsed


async def test_json_logs_carry_request_and_run_ids_and_skip_probes(tmp_path: Path) -> None:
    env = {"GARRISON_LOG_FORMAT": "json"}
    process = GarrisonProcess(tmp_path, env=env, args=("--access-log",)).start()
    try:
        sdk = get_client(url=process.url, api_key=None, headers={"x-request-id": "req-logs-1"})
        thread = await sdk.threads.create()
        run = await sdk.runs.create(thread["thread_id"], "failing", input={})
        await sdk.runs.join(thread["thread_id"], run["run_id"])
        await sdk.http.client.aclose()
        async with httpx.AsyncClient(base_url=process.url) as raw:
            for probe in sorted(PROBES):
                assert (await raw.get(probe)).status_code == 200
            assert (await raw.get("/ok?check_db=1")).status_code == 200
    finally:
        assert process.stop() == 0

    records = _lines(process)
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert record["time"].endswith("Z")
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert not [r for r in access if r["path"].split("?")[0] in PROBES]
    created = [r for r in access if r["path"] == "/threads" and r["method"] == "POST"]
    assert created and created[0]["request_id"] == "req-logs-1" and created[0]["status"] == 200
    # A request on a thread's path names the thread.
    on_run = [r for r in access if r["path"] == f"/threads/{thread['thread_id']}/runs"]
    assert on_run and on_run[0]["thread_id"] == thread["thread_id"]
    # The worker's lines about a run carry the run, its thread and its tenant.
    failure = [r for r in records if r["level"] == "error" and r.get("run_id") == run["run_id"]]
    assert failure, records
    assert failure[0]["thread_id"] == thread["thread_id"] and failure[0]["tenant"] == "default"
    assert "ValueError" in failure[0]["exception"]
