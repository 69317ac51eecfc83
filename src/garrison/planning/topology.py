"""The deployments the benchmark measures, each started from real processes:

- embedded: one `garrison serve` on SQLite (API, worker and broker in one process);
- postgres: one `garrison serve` on PostgreSQL (API and worker in one process, in-process
  broker, no Redis);
- split: one `garrison serve --no-worker` (HTTP only) plus `garrison worker` processes on
  PostgreSQL + Redis, the scale-out shape.

PostgreSQL deployments get a fresh database (dropped afterwards); split deployments get
their own Redis key prefix (deleted afterwards), so benchmarks never see each other's data.
"""

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from garrison.planning.launcher import ServerProcess

TOPOLOGIES = ("embedded", "postgres", "split")
DEFAULT_POSTGRES_URL = os.environ.get(
    "GARRISON_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DEFAULT_REDIS_URL = os.environ.get("GARRISON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Deployment:
    """Running processes of one topology; `api` answers HTTP, `workers` execute runs
    (empty when the API process runs them itself)."""

    name: str
    api: ServerProcess
    workers: list[ServerProcess] = field(default_factory=list)
    database_url: str | None = None
    redis_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    data_dir: Path = Path()
    profile_to: Path | None = None  # the API's cProfile file; worker N writes OUT-worker-N

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def database_name(self) -> str | None:
        return self.database_url.rsplit("/", 1)[1] if self.database_url else None

    @property
    def pids(self) -> list[int]:
        """Every process whose CPU counts as the server's."""
        return [self.api.pid, *(w.pid for w in self.workers)]

    def add_worker(self) -> ServerProcess:
        """Start one more `garrison worker` (split topology only)."""
        if self.name != "split":
            raise ValueError(f"the {self.name} topology runs its worker in the API process")
        index = len(self.workers)
        profile_to = None
        if self.profile_to is not None:
            profile_to = self.profile_to.with_stem(f"{self.profile_to.stem}-worker-{index}")
        worker = ServerProcess(
            self.api.config,
            self.data_dir / f"worker-{index}",
            env=self.env,
            profile_to=profile_to,
            command="worker",
        ).start()
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for process in [*self.workers, self.api]:
            process.stop()


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"garrison_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_redis_prefix(url: str) -> Iterator[str]:
    prefix = f"garrison-bench-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def redis_server_pid(url: str) -> int | None:
    """The pid of the Redis server at `url` when it runs on this machine, so its CPU can be
    metered; None when it is elsewhere (its pid would name some other process here)."""
    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    try:
        command = Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return None
    return pid if "redis" in command else None


def service_versions(postgres_url: str, redis_url: str) -> dict[str, str]:
    """Server versions, for the JSON's machine section."""
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    client = redis.Redis.from_url(redis_url)
    try:
        redis_version = str(client.info("server")["redis_version"])
    finally:
        client.close()
    return {"postgresql": str(row[0]) if row else "?", "redis": redis_version}


@contextlib.contextmanager
def deploy(
    name: str,
    config: Path,
    data_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    postgres_url: str = DEFAULT_POSTGRES_URL,
    redis_url: str = DEFAULT_REDIS_URL,
    profile_to: Path | None = None,
) -> Iterator[Deployment]:
    """Start `name` and stop it (and drop its database and keys) afterwards."""
    if name not in TOPOLOGIES:
        raise ValueError(f"unknown topology {name!r}; choose from {TOPOLOGIES}")
    base_env = dict(env or {})
    with contextlib.ExitStack() as stack:
        database_url = None
        if name != "embedded":
            database_url = stack.enter_context(fresh_database(postgres_url))
            base_env["DATABASE_URL"] = database_url
        if name == "split":
            base_env["REDIS_URL"] = redis_url
            base_env["GARRISON_REDIS_KEY_PREFIX"] = stack.enter_context(
                fresh_redis_prefix(redis_url)
            )
        api = ServerProcess(
            config,
            data_dir / "api",
            env=base_env,
            profile_to=profile_to,
            args=("--no-worker",) if name == "split" else (),
        ).start()  # the API process migrates the schema before any worker starts
        deployment = Deployment(
            name,
            api,
            database_url=database_url,
            redis_url=redis_url if name == "split" else None,
            env=base_env,
            data_dir=data_dir,
            profile_to=profile_to,
        )
        stack.callback(deployment.stop)
        for _ in range(workers if name == "split" else 0):
            deployment.add_worker()
        yield deployment
