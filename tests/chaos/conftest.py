"""Fault-injection harness: real `garrison` API and worker processes on loopback, sharing
one PostgreSQL database and one Redis key prefix, with short leases so faults resolve in
seconds. Tests kill, stop and restart processes (and PostgreSQL and Redis themselves) and
then check what clients and the side-effect log saw.

Timing used by every test (the defaults are 30/10/15/5 s; the tests only need the ratios):
lease 3 s, heartbeat 1 s, reaper 1 s, poll 0.5 s, max attempts 3.
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.postgres_server import PrivatePostgres
from tests.support.redis_server import RedisServer
from tests.support.server import GarrisonProcess
from tests.support.topology import POSTGRES_URL, REDIS_URL, round_robin_proxy

pytestmark = pytest.mark.chaos

PROJECT = Path(__file__).resolve().parent / "project" / "langgraph.json"

LEASE_SECONDS = 3.0
HEARTBEAT_SECONDS = 1.0
REAPER_SECONDS = 1.0
POLL_SECONDS = 0.5
MAX_ATTEMPTS = 3

CHAOS_ENV = {
    "GARRISON_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
    "GARRISON_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
    "GARRISON_WORKER_REAPER_SECONDS": str(REAPER_SECONDS),
    "GARRISON_WORKER_POLL_SECONDS": str(POLL_SECONDS),
    "GARRISON_WORKER_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "GARRISON_WORKER_CONCURRENCY": "16",
    "GARRISON_WORKER_SHUTDOWN_GRACE_SECONDS": "10",
    "GARRISON_STREAM_HEARTBEAT_SECONDS": "1",
}

# Every status a run ever takes, recorded by the database itself: the only honest way to
# count "success" transitions (webhooks and logs can be lost with the process that sent them).
_TRANSITION_LOG = """
CREATE TABLE chaos_run_transitions (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    status text NOT NULL,
    attempt integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION chaos_record_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO chaos_run_transitions (run_id, status, attempt)
        VALUES (NEW.run_id, NEW.status, NEW.attempt);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER chaos_run_transitions AFTER INSERT OR UPDATE OF status ON runs
    FOR EACH ROW EXECUTE FUNCTION chaos_record_transition();
"""


class EffectLog:
    """The side-effect log the chaos graphs append to (one JSON object per line)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self, run_id: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                if run_id is None or entry["run_id"] == run_id:
                    found.append(entry)
        return found

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], within_seconds: float = 20.0
    ) -> dict[str, Any]:
        """The first entry matching `predicate`, waiting for it to be written."""
        deadline = time.monotonic() + within_seconds
        while True:
            for entry in self.entries():
                if predicate(entry):
                    return entry
            if time.monotonic() > deadline:
                recent = self.entries()[-5:]
                pytest.fail(f"no side effect matched within {within_seconds} s: {recent}")
            await asyncio.sleep(0.05)


@dataclass
class Cluster:
    """One deployment under test: API processes behind a round-robin proxy, workers,
    one database and one Redis prefix. Processes can be added, killed and restarted."""

    root: Path
    database_url: str
    redis_url: str
    env: dict[str, str]
    effects: EffectLog
    apis: list[GarrisonProcess] = field(default_factory=list)
    workers: list[GarrisonProcess] = field(default_factory=list)
    url: str = ""

    def start_api(self) -> GarrisonProcess:
        process = GarrisonProcess(
            self.root, config=PROJECT, env=self.env, args=("--no-worker",)
        ).start()
        self.apis.append(process)
        return process

    def start_worker(self, env: dict[str, str] | None = None) -> GarrisonProcess:
        process = GarrisonProcess(
            self.root, config=PROJECT, env={**self.env, **(env or {})}, command="worker"
        ).start()
        self.workers.append(process)
        return process

    def worker_with_pid(self, pid: int) -> GarrisonProcess:
        for worker in self.workers:
            if worker.process is not None and worker.pid == pid:
                return worker
        raise AssertionError(f"no worker process has pid {pid}")

    def live_workers(self) -> list[GarrisonProcess]:
        return [w for w in self.workers if w.process is not None and w.process.poll() is None]

    def client(self) -> LangGraphClient:
        return get_client(url=self.url, api_key=None)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the deployment's database directly (what no API reply can hide)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def success_transitions(self) -> dict[str, int]:
        """How many times each run became `success`, by the database's own trigger."""
        rows = self.query(
            "SELECT run_id, count(*) FROM chaos_run_transitions"
            " WHERE status = 'success' GROUP BY run_id"
        )
        return {run_id: count for run_id, count in rows}

    def logs(self) -> str:
        """Every process's output, for failure messages."""
        return "\n".join(
            f"--- {p.command} {p.port} ---\n{p.log()[-4000:]}" for p in self.apis + self.workers
        )


def _install_transition_log(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_TRANSITION_LOG)


@contextmanager
def _database(admin_url: str) -> Iterator[str]:
    name = f"garrison_chaos_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.OperationalError:
            pass  # a private server that a test left stopped is removed with its files


@contextmanager
def chaos_cluster(
    root: Path,
    *,
    apis: int = 2,
    workers: int = 2,
    postgres_url: str = POSTGRES_URL,
    redis_url: str = REDIS_URL,
    env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """Start `apis` API processes (migrating the database first) and `workers` workers."""
    root.mkdir(parents=True, exist_ok=True)
    effects = EffectLog(root / "effects.jsonl")
    with ExitStack() as stack:
        database_url = stack.enter_context(_database(postgres_url))
        prefix = f"chaos-{uuid.uuid4().hex[:12]}"
        cluster = Cluster(
            root=root,
            database_url=database_url,
            redis_url=redis_url,
            env={
                **CHAOS_ENV,
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "GARRISON_REDIS_KEY_PREFIX": prefix,
                "GARRISON_CHAOS_EFFECTS": str(effects.path),
                **(env or {}),
            },
            effects=effects,
        )
        try:
            cluster.start_api()  # migrates the schema the trigger hangs on
            _install_transition_log(database_url)
            for _ in range(apis - 1):
                cluster.start_api()
            for _ in range(workers):
                cluster.start_worker()
            if apis > 1:
                cluster.url = stack.enter_context(
                    round_robin_proxy([p.url for p in cluster.apis], root)
                )
            else:
                cluster.url = cluster.apis[0].url
            yield cluster
        finally:
            for process in cluster.workers + cluster.apis:
                process.kill()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own, which it may stop and restart."""
    with PrivatePostgres() as server:
        yield server


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own, which it may stop, restart or flush."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


SdkFactory = Callable[["Cluster"], LangGraphClient]


@pytest.fixture
async def sdk(request: pytest.FixtureRequest) -> AsyncIterator[SdkFactory]:
    """Makes SDK clients for clusters and closes them after the test."""
    made: list[LangGraphClient] = []

    def make(cluster: Cluster) -> LangGraphClient:
        client = cluster.client()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.http.client.aclose()
