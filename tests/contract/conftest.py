"""One contract suite for every storage adapter: each test gets a fresh, empty backend.

PostgreSQL: a template database is migrated once per session, and each test gets its own
database copied from it (`CREATE DATABASE ... TEMPLATE`, tens of milliseconds), dropped
when the test ends. Names carry the process id and a random tag, so concurrent runs on
one server never collide. The server is `GARRISON_TEST_POSTGRES_URL` (default: local,
user postgres); when it cannot be reached the PostgreSQL tests fail, they never skip.
"""

import asyncio
import concurrent.futures
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from garrison.storage.ports import Storage
from garrison.storage.postgres import PostgresStorage
from garrison.storage.postgres.migrate import migrate
from garrison.storage.sqlite import SqliteStorage

ADAPTERS = ["sqlite", "postgres"]

POSTGRES_URL = os.environ.get(
    "GARRISON_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even when an event loop is
    already running in this thread (fixtures requested from async fixtures)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class PostgresDatabases:
    """Creates and drops this test process's databases on one PostgreSQL server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._prefix = f"garrison_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._serial = itertools.count()

    def url_for(self, name: str) -> str:
        return make_conninfo(self.url, dbname=name)

    def _admin(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            pytest.fail(
                f"PostgreSQL at {self.safe_url} is unreachable ({exc}); the contract suite "
                "needs it (set GARRISON_TEST_POSTGRES_URL)",
                pytrace=False,
            )

    @property
    def safe_url(self) -> str:
        params = conninfo_to_dict(self.url)
        params.pop("password", None)
        return make_conninfo("", **params)

    def create(self, template: str | None = None) -> str:
        """A new database (empty, or a copy of `template`); returns its name."""
        name = f"{self._prefix}_{next(self._serial)}"
        statement = sql.SQL("CREATE DATABASE {name}").format(name=sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{create} TEMPLATE {template}").format(
                create=statement, template=sql.Identifier(template)
            )
        with self._admin() as admin:
            admin.execute(statement)
        return name

    def drop(self, name: str) -> None:
        with self._admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {name} WITH (FORCE)").format(
                    name=sql.Identifier(name)
                )
            )


@pytest.fixture(scope="session")
def postgres_databases() -> PostgresDatabases:
    return PostgresDatabases(POSTGRES_URL)


@pytest.fixture(scope="session")
def postgres_template(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """A database migrated to the latest schema, copied for each test."""
    name = postgres_databases.create()
    try:
        run_sync(migrate(postgres_databases.url_for(name)))
        yield name
    finally:
        postgres_databases.drop(name)


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases, postgres_template: str) -> Iterator[str]:
    """The URL of a fresh, migrated database of this test's own."""
    name = postgres_databases.create(template=postgres_template)
    yield postgres_databases.url_for(name)
    postgres_databases.drop(name)


@pytest.fixture
def empty_postgres_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """The URL of a fresh database with no schema at all."""
    name = postgres_databases.create()
    yield postgres_databases.url_for(name)
    postgres_databases.drop(name)


async def open_postgres(url: str, **options: Any) -> PostgresStorage:
    return await PostgresStorage.open(
        url,
        pool_min_size=options.pop("pool_min_size", 1),
        pool_max_size=options.pop("pool_max_size", 10),
        connect_timeout_seconds=options.pop("connect_timeout_seconds", 5.0),
        **options,
    )


@pytest.fixture(params=ADAPTERS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    backend: SqliteStorage | PostgresStorage
    if request.param == "sqlite":
        backend = await SqliteStorage.open(tmp_path / "contract.sqlite")
    elif request.param == "postgres":
        backend = await open_postgres(request.getfixturevalue("postgres_url"))
    else:  # pragma: no cover - adapters are listed above
        raise ValueError(request.param)
    yield backend
    await backend.close()
