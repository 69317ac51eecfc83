"""Processes that start while PostgreSQL is down (pods rescheduled during a database
restart, or started before it): they wait for it, or give up with a clear error."""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.chaos.conftest import PROJECT, SdkFactory, chaos_cluster
from tests.support.postgres_server import PrivatePostgres
from tests.support.server import GarrisonProcess, free_port

pytestmark = pytest.mark.chaos

DOWN_SECONDS = 3.0


async def test_api_and_worker_started_while_postgres_is_down_wait_for_it_and_serve(
    tmp_path: Path, private_postgres: PrivatePostgres, sdk: SdkFactory
) -> None:
    with chaos_cluster(
        tmp_path / "c", apis=1, workers=0, postgres_url=private_postgres.url
    ) as cluster:
        cluster.apis[0].kill()
        private_postgres.stop("immediate")
        api = GarrisonProcess(cluster.root, config=PROJECT, env=cluster.env, args=("--no-worker",))
        worker = GarrisonProcess(cluster.root, config=PROJECT, env=cluster.env, command="worker")
        starting = [
            asyncio.create_task(asyncio.to_thread(process.start, 30.0)) for process in (api, worker)
        ]
        cluster.apis.append(api)
        cluster.workers.append(worker)

        # The processes must reach the database and wait for it before it comes back
        # (how long they take to get there depends on the machine's load).
        deadline = time.monotonic() + 60
        while not any("waiting for the database" in p.log() for p in (api, worker)):
            assert time.monotonic() < deadline, "the processes never waited for the database"
            await asyncio.sleep(0.2)
        await asyncio.sleep(DOWN_SECONDS)
        assert not any(task.done() for task in starting), "started without a database"
        await asyncio.to_thread(private_postgres.start)
        await asyncio.gather(*starting)

        cluster.url = api.url  # the cluster's first API was replaced
        client = sdk(cluster)
        thread = await client.threads.create()
        result = await client.runs.wait(thread["thread_id"], "quick", input={"n": 7})
        assert result == {"n": 7, "echoed": 7}


def test_a_worker_gives_up_with_a_clear_error_when_postgres_stays_down(
    tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    private_postgres.stop("immediate")
    env = {
        **os.environ,
        "DATABASE_URL": private_postgres.url,
        "GARRISON_DATABASE_STARTUP_WAIT_SECONDS": "2",
    }
    command = [sys.executable, "-m", "garrison", "worker", "--config", str(PROJECT)]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "--health-port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    waited = time.monotonic() - started

    assert done.returncode == 2, done.stderr
    assert "error:" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "╭" not in done.stderr, done.stderr  # no rich traceback either
    assert 2.0 <= waited < 30.0, waited
