"""The deployments the end-to-end suite runs against, started from real processes.

- embedded: one `garrison serve` on SQLite (the default install);
- postgres: one `garrison serve` on PostgreSQL + Redis (API and worker in one process);
- split: two `garrison serve --no-worker` and two `garrison worker` on PostgreSQL + Redis,
  behind a round-robin proxy, so consecutive requests of one client hit different API
  processes and runs execute in other processes (no sticky routing).

Each PostgreSQL deployment gets its own database and Redis key prefix, dropped afterwards.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

from tests.support.server import PROJECT, GarrisonProcess, free_port

POSTGRES_URL = os.environ.get(
    "GARRISON_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("GARRISON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOPOLOGIES = ("embedded", "postgres", "split")


@dataclass
class Deployment:
    name: str
    url: str
    processes: list[GarrisonProcess] = field(default_factory=list)
    database_url: str | None = None
    redis_prefix: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    semantic_store: bool = True  # whether `store.index` (semantic search) is configured

    @property
    def api(self) -> list[GarrisonProcess]:
        return [p for p in self.processes if p.command == "serve"]

    @property
    def workers(self) -> list[GarrisonProcess]:
        return [p for p in self.processes if p.command == "worker"]


@contextmanager
def postgres_database(prefix: str = "garrison_test") -> Iterator[str]:
    """A fresh, empty database; dropped (even with open connections) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_prefix() -> Iterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@contextmanager
def round_robin_proxy(backends: list[str], log_dir: Path) -> Iterator[str]:
    port = free_port()
    with open(log_dir / f"proxy-{port}.log", "ab") as log:
        proxy = subprocess.Popen(
            [sys.executable, "-m", "tests.support.proxy", "--port", str(port)]
            + [arg for url in backends for arg in ("--backend", url)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proxy.terminate()
        proxy.wait(10)


def pgvector_available() -> bool:
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    return row is not None


def without_semantic_index(config: Path, directory: Path) -> Path:
    """A copy of a project file without `store.index`, its paths made absolute.

    PostgreSQL refuses to start with `store.index` when pgvector is missing (as it should);
    machines without pgvector still run everything else against PostgreSQL.
    """
    data = json.loads(config.read_text())
    if "index" not in data.get("store", {}):
        return config
    root = config.parent.resolve()

    def absolute(path: str) -> str:
        return str((root / path).resolve()) if path.startswith(".") else path

    data["dependencies"] = [absolute(d) for d in data.get("dependencies", [])]
    for graph_id, spec in data["graphs"].items():
        location, _, attribute = spec.rpartition(":")
        data["graphs"][graph_id] = f"{absolute(location)}:{attribute}"
    if isinstance(data.get("auth", {}).get("path"), str):
        location, _, attribute = data["auth"]["path"].rpartition(":")
        data["auth"]["path"] = f"{absolute(location)}:{attribute}"
    data.get("store", {}).pop("index", None)
    copy = directory / "langgraph-no-index.json"
    copy.write_text(json.dumps(data))
    return copy


@contextmanager
def deploy(
    name: str,
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    config: Path = PROJECT,
) -> Iterator[Deployment]:
    """Start a deployment of the given topology; stop everything afterwards."""
    env = dict(env or {})
    if name == "embedded":
        process = GarrisonProcess(data_dir, config=config, env=env).start()
        try:
            yield Deployment(name, process.url, [process], env=env)
        finally:
            process.stop()
        return
    semantic = pgvector_available()
    if not semantic:
        config = without_semantic_index(config, data_dir)
    with postgres_database() as database_url, redis_prefix() as prefix:
        env = {
            **env,
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "GARRISON_REDIS_KEY_PREFIX": prefix,
        }
        processes: list[GarrisonProcess] = []
        try:
            if name == "postgres":
                processes.append(GarrisonProcess(data_dir, config=config, env=env).start())
                url = processes[0].url
                yield Deployment(name, url, processes, database_url, prefix, env, semantic)
            else:
                for _ in range(2):
                    processes.append(
                        GarrisonProcess(
                            data_dir, config=config, env=env, args=("--no-worker",)
                        ).start()
                    )
                for _ in range(2):
                    processes.append(
                        GarrisonProcess(data_dir, config=config, env=env, command="worker").start()
                    )
                with round_robin_proxy([p.url for p in processes[:2]], data_dir) as url:
                    yield Deployment(name, url, processes, database_url, prefix, env, semantic)
        finally:
            for process in processes:
                process.stop()
