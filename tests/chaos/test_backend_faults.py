"""R8 and R9 of reliability-targets.md: Redis and PostgreSQL faults under real processes.

Setup: the chaos harness (conftest.py) starts two `garrison serve --no-worker` API
processes behind a round-robin proxy and two `garrison worker` processes, with the short
timing the harness exports (lease 3 s, heartbeat 1 s, reaper 1 s, poll 0.5 s).

- R8 (Redis is optional for correctness): each test gets a private `redis-server` that it
  kills (`RedisServer.stop`), restarts empty on the same port, or FLUSHALLs; the database
  is a fresh one on the machine's shared PostgreSQL, which the tests never touch.
- R9 (PostgreSQL blip): each test gets a private PostgreSQL server that it stops
  (`pg_ctl stop -m immediate|fast`) and starts again on the same port, and a private Redis.

What the tests believe is what the database and the side-effect log say, not only what
the API answers: run statuses and attempts come from the `runs` table, and the
`chaos_run_transitions` trigger counts every `success` transition.
"""

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
from langgraph_sdk.client import LangGraphClient

from garrison.broker.redis._layout import Keys
from garrison.broker.redis._outage import BACKOFF_CAP_SECONDS
from tests.chaos.conftest import (
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    POLL_SECONDS,
    Cluster,
    SdkFactory,
    chaos_cluster,
)
from tests.support.postgres_server import PrivatePostgres
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.chaos


TERMINAL = frozenset({"success", "error", "timeout", "interrupted"})
# How long settling may take once a fault is over: generous, because it only bounds a
# wait for a condition; the targets' own bounds are asserted separately where they exist.
SETTLE_SECONDS = 60.0


# Helpers --------------------------------------------------------------------------------
async def start_runs(
    client: LangGraphClient, count: int, graph: str, graph_input: dict[str, Any]
) -> list[dict[str, Any]]:
    """Create `count` background runs, each on a new thread of its own (so all can run at
    once); every returned run is accepted, i.e. committed."""
    return list(
        await asyncio.gather(
            *(
                client.runs.create(
                    str(uuid.uuid4()), graph, input=graph_input, if_not_exists="create"
                )
                for _ in range(count)
            )
        )
    )


def run_ids(runs: Sequence[dict[str, Any]]) -> list[str]:
    return [str(run["run_id"]) for run in runs]


def statuses(cluster: Cluster, ids: Sequence[str]) -> dict[str, str]:
    rows = cluster.query("SELECT run_id, status FROM runs WHERE run_id = ANY(%s)", (list(ids),))
    return {str(run_id): str(status) for run_id, status in rows}


async def settled(cluster: Cluster, ids: Sequence[str], within_seconds: float) -> dict[str, str]:
    """The final status of every run, once all are terminal (fails after the deadline)."""
    deadline = time.monotonic() + within_seconds
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            found = await asyncio.to_thread(statuses, cluster, ids)
        except psycopg.OperationalError:
            found = {}  # a database that is still coming back; ask again
        if len(found) == len(ids) and TERMINAL.issuperset(found.values()):
            return found
        await asyncio.sleep(0.2)
    missing = len(ids) - len(found)
    pytest.fail(
        f"runs not settled within {within_seconds} s: {Counter(found.values())}, "
        f"{missing} missing\n{cluster.logs()}"
    )


def started(cluster: Cluster, run_id: str) -> list[dict[str, Any]]:
    return [e for e in cluster.effects.entries(run_id) if e["phase"] == "start"]


async def all_started(cluster: Cluster, ids: Sequence[str], within_seconds: float) -> None:
    deadline = time.monotonic() + within_seconds
    while any(not started(cluster, run_id) for run_id in ids):
        if time.monotonic() > deadline:
            pytest.fail(f"not every run started within {within_seconds} s\n{cluster.logs()}")
        await asyncio.sleep(0.05)


def work_channel(cluster: Cluster) -> str:
    return Keys(cluster.env["GARRISON_REDIS_KEY_PREFIX"]).work_channel


async def listeners(redis_server: RedisServer, channel: str) -> int:
    """How many connections are subscribed to `channel` (one per garrison process)."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        counts = await client.pubsub_numsub(channel)
    finally:
        await client.aclose()
    return int(counts[0][1])


async def every_process_listens(cluster: Cluster, redis_server: RedisServer, within: float) -> None:
    """Wait until every API and worker process has subscribed to its signals again."""
    expected = len(cluster.apis) + len(cluster.workers)
    deadline = time.monotonic() + within
    while (count := await listeners(redis_server, work_channel(cluster))) < expected:
        if time.monotonic() > deadline:
            pytest.fail(
                f"{count}/{expected} processes resubscribed within {within} s\n{cluster.logs()}"
            )
        await asyncio.sleep(0.05)


async def assert_streams_and_waits_work(client: LangGraphClient) -> None:
    """A streamed run delivers each of its events, and a waited-for run its output."""
    thread = await client.threads.create()
    parts = [
        part
        async for part in client.runs.stream(
            thread["thread_id"], "steps", input={"count": 3, "step_seconds": 0.05}
        )
    ]
    events = [part.event for part in parts]
    assert events[0] == "metadata", events
    values = [part.data.get("done") for part in parts if part.event == "values"]
    assert values == [None, 1, 2, 3], events  # the input state, then one per superstep

    other = await client.threads.create()  # a fresh state: `done` counts on from 0
    output = await client.runs.wait(
        other["thread_id"], "steps", input={"count": 1, "step_seconds": 0.0}
    )
    assert isinstance(output, dict) and output["done"] == 1, output


# R8: Redis is optional for correctness --------------------------------------------------
async def test_redis_down_loses_no_run_in_flight_or_created_during_the_outage(
    tmp_path: Path, private_redis: RedisServer, sdk: SdkFactory
) -> None:
    steps = {"count": 4, "step_seconds": 0.5}
    with chaos_cluster(tmp_path / "c", redis_url=private_redis.url) as cluster:
        client = sdk(cluster)
        in_flight = await start_runs(client, 8, "steps", steps)
        await all_started(cluster, run_ids(in_flight), within_seconds=10)
        # Each takes 2 s and all have just started: Redis goes while every one runs.
        assert set(statuses(cluster, run_ids(in_flight)).values()) == {"running"}

        private_redis.stop()
        created_during = await start_runs(client, 8, "steps", steps)
        runs = in_flight + created_during

        # Joins answer from the database while Redis cannot carry the end of a run.
        outputs = await asyncio.gather(
            *(client.runs.join(run["thread_id"], run["run_id"]) for run in runs)
        )
        assert [output.get("done") for output in outputs] == [4] * len(runs), outputs

        ids = run_ids(runs)
        final = await settled(cluster, ids, SETTLE_SECONDS)
        assert Counter(final.values()) == {"success": len(runs)}
        assert cluster.success_transitions() == dict.fromkeys(ids, 1)
        # Losing Redis never costs a lease: no run needed a second attempt.
        attempts = cluster.query("SELECT attempt FROM runs WHERE run_id = ANY(%s)", (ids,))
        assert {attempt for (attempt,) in attempts} == {1}


async def test_redis_down_pickup_latency_is_within_the_poll_interval_plus_1s(
    tmp_path: Path, private_redis: RedisServer, sdk: SdkFactory
) -> None:
    with chaos_cluster(tmp_path / "c", redis_url=private_redis.url) as cluster:
        client = sdk(cluster)
        private_redis.stop()
        latencies = []
        for offset in (0.0, 0.13, 0.29, 0.41, 0.07, 0.36):
            # Offsets spread creation over the workers' poll phase instead of one point.
            await asyncio.sleep(offset)
            (run,) = await start_runs(client, 1, "steps", {"count": 1, "step_seconds": 0.0})
            entry = await cluster.effects.wait_for(
                lambda e, rid=run["run_id"]: e["run_id"] == rid and e["phase"] == "start",
                within_seconds=10,
            )
            created = datetime.fromisoformat(run["created_at"]).timestamp()
            latencies.append(entry["at"] - created)
        # Nothing wakes the workers without Redis: they must find each run by polling.
        print("DIAG latencies", latencies)
        assert max(latencies) <= POLL_SECONDS + 1.0, latencies


async def test_redis_down_cancel_reaches_the_run_through_the_db_flag(
    tmp_path: Path, private_redis: RedisServer, sdk: SdkFactory
) -> None:
    with chaos_cluster(tmp_path / "c", redis_url=private_redis.url) as cluster:
        client = sdk(cluster)
        # 40 steps of 0.25 s: the run is still going long after the bound below.
        (run,) = await start_runs(client, 1, "steps", {"count": 40, "step_seconds": 0.25})
        run_id = str(run["run_id"])
        await all_started(cluster, [run_id], within_seconds=10)

        private_redis.stop()
        sent = time.time()
        await client.runs.cancel(run["thread_id"], run_id, action="interrupt")
        final = await settled(cluster, [run_id], within_seconds=SETTLE_SECONDS)
        assert final == {run_id: "interrupted"}
        assert (await client.runs.get(run["thread_id"], run_id))["status"] == "interrupted"

        (ended_at,) = cluster.query(
            "SELECT extract(epoch FROM at)::float8 FROM chaos_run_transitions"
            " WHERE run_id = %s AND status = 'interrupted'",
            (run_id,),
        )[0]
        # The heartbeat reads the flag at most one period after it is set; 1 s of margin
        # covers the cancel request, the state snapshot and the final write.
        print("DIAG cancel", ended_at - sent)
        assert ended_at - sent <= HEARTBEAT_SECONDS + 1.0, ended_at - sent
        # The cancel stopped the graph: no step began after the run ended.
        assert [e for e in started(cluster, run_id) if e["at"] > ended_at] == []


async def test_streams_and_waits_work_again_after_redis_returns(
    tmp_path: Path, private_redis: RedisServer, sdk: SdkFactory
) -> None:
    with chaos_cluster(tmp_path / "c", redis_url=private_redis.url) as cluster:
        client = sdk(cluster)
        await every_process_listens(cluster, private_redis, within=10)
        private_redis.stop()
        # A run made during the outage still completes (its events are simply not kept).
        (during,) = await start_runs(client, 1, "steps", {"count": 2, "step_seconds": 0.1})
        assert (await client.runs.join(during["thread_id"], during["run_id"]))["done"] == 2

        private_redis.start()  # same port, empty
        # Each process retries on a backoff capped at BACKOFF_CAP_SECONDS; 2 s of margin
        # covers the resubscription round trips.
        await every_process_listens(cluster, private_redis, within=BACKOFF_CAP_SECONDS + 2.0)
        await assert_streams_and_waits_work(client)


async def test_redis_flushall_loses_no_run_and_new_runs_keep_working(
    tmp_path: Path, private_redis: RedisServer, sdk: SdkFactory
) -> None:
    with chaos_cluster(tmp_path / "c", redis_url=private_redis.url) as cluster:
        client = sdk(cluster)
        runs = await start_runs(client, 12, "steps", {"count": 3, "step_seconds": 0.5})
        # Joins already blocked in Redis when it is flushed must still get their output.
        joins = [
            asyncio.ensure_future(client.runs.join(run["thread_id"], run["run_id"])) for run in runs
        ]
        await all_started(cluster, run_ids(runs), within_seconds=10)

        assert private_redis.command("FLUSHALL") == b"+OK"
        outputs = await asyncio.wait_for(asyncio.gather(*joins), SETTLE_SECONDS)
        assert [output.get("done") for output in outputs] == [3] * len(runs), outputs

        ids = run_ids(runs)
        final = await settled(cluster, ids, SETTLE_SECONDS)
        assert Counter(final.values()) == {"success": len(runs)}
        assert cluster.success_transitions() == dict.fromkeys(ids, 1)
        await assert_streams_and_waits_work(client)


# R9: PostgreSQL blip --------------------------------------------------------------------
# How long a caller waits for a pooled connection before its 503 (the default is 5 s): two
# seconds let the outages below outlast it, so calls fail instead of only waiting.
DB_WAIT_SECONDS = 2.0
R9_ENV = {"GARRISON_DATABASE_CONNECT_TIMEOUT_SECONDS": str(DB_WAIT_SECONDS)}


async def test_postgres_restart_with_100_runs_in_flight_all_succeed_exactly_once(
    tmp_path: Path, private_postgres: PrivatePostgres, private_redis: RedisServer, sdk: SdkFactory
) -> None:
    with chaos_cluster(
        tmp_path / "c",
        postgres_url=private_postgres.url,
        redis_url=private_redis.url,
        env=R9_ENV,
    ) as cluster:
        client = sdk(cluster)
        runs = await start_runs(client, 100, "steps", {"count": 2, "step_seconds": 1.0})
        ids = run_ids(runs)
        await cluster.effects.wait_for(lambda e: e["phase"] == "start", within_seconds=20)
        unfinished = [s for s in statuses(cluster, ids).values() if s not in TERMINAL]
        # The fault must hit runs really in flight: 2 workers x 16 running, the rest queued.
        assert len(unfinished) >= 50, len(unfinished)

        private_postgres.stop("immediate")
        # Down for longer than a lease and than a caller's wait: every lease held at the
        # crash expires, and the running attempts' checkpoint writes fail rather than wait.
        # Those are the paths that could fail a run, or (through the reaper and the
        # attempt fencing) record a second success.
        await asyncio.sleep(max(LEASE_SECONDS, DB_WAIT_SECONDS) + 2.0)
        private_postgres.start()

        final = await settled(cluster, ids, SETTLE_SECONDS)
        assert Counter(final.values()) == {"success": len(ids)}, cluster.logs()
        assert cluster.success_transitions() == dict.fromkeys(ids, 1)


async def assert_unavailable(http: httpx.AsyncClient, cluster: Cluster, thread_id: str) -> None:
    """Every API process answers its database-backed routes with a clean 503."""
    checks = [
        (api.url, method, path)
        for api in cluster.apis
        for method, path in (
            ("GET", f"/threads/{thread_id}"),
            ("POST", "/threads"),
            ("GET", "/ready"),
        )
    ]
    # Each call waits for a pooled connection before it answers: ask all at once.
    answers = await asyncio.gather(
        *(
            http.request(method, base + path, json={} if method == "POST" else None)
            for base, method, path in checks
        )
    )
    for check, response in zip(checks, answers, strict=True):
        assert response.status_code == 503, (check, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json"), check
        body = response.json()
        assert isinstance(body.get("detail"), str), (check, body)
        assert set(body) <= {"detail", "request_id"}, (check, body)
        assert "Traceback" not in response.text and "psycopg" not in response.text, check
    for api in cluster.apis:  # liveness does not depend on the database
        assert (await http.get(api.url + "/ok")).status_code == 200


async def test_api_answers_503_while_postgres_is_down_and_recovers_by_itself(
    tmp_path: Path, private_postgres: PrivatePostgres, private_redis: RedisServer, sdk: SdkFactory
) -> None:
    with chaos_cluster(
        tmp_path / "c",
        workers=0,
        postgres_url=private_postgres.url,
        redis_url=private_redis.url,
        env=R9_ENV,
    ) as cluster:
        thread_id = (await sdk(cluster).threads.create())["thread_id"]
        pids = [api.pid for api in cluster.apis]
        async with httpx.AsyncClient(timeout=30) as http:
            private_postgres.stop("fast")
            stopped = time.monotonic()
            await assert_unavailable(http, cluster, thread_id)
            # 8 s of callers failing: psycopg's reconnection backoff (1, 2, 4, 8 s...)
            # would by now have its next attempt up to 7 s away.
            while time.monotonic() - stopped < 8.0:
                assert (await http.get(cluster.apis[0].url + "/ready")).status_code == 503
            await assert_unavailable(http, cluster, thread_id)  # and still clean

            private_postgres.start()
            back = time.monotonic()

            async def recovery_seconds(base: str) -> float:
                while (await http.get(base + "/ready")).status_code != 200:
                    assert time.monotonic() - back < SETTLE_SECONDS, cluster.logs()
                    await asyncio.sleep(0.05)
                return time.monotonic() - back

            recovered = await asyncio.gather(*(recovery_seconds(a.url) for a in cluster.apis))
            # Ready again within one caller's wait for a connection, plus 1 s of margin.
            assert max(recovered) <= DB_WAIT_SECONDS + 1.0, (recovered, cluster.logs())
            for api in cluster.apis:
                assert (await http.get(f"{api.url}/threads/{thread_id}")).status_code == 200
                assert (await http.post(api.url + "/threads", json={})).status_code == 200
        # The same processes recovered: none was restarted.
        assert [api.pid for api in cluster.apis] == pids
        assert all(api.process is not None and api.process.poll() is None for api in cluster.apis)
